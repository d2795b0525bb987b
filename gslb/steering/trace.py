"""What a selection decided, as structured facts, for ``gslb explain``.

A :class:`Trace` rides on the :class:`gslb.steering.base.Client` of one
query (``Client.trace``, None on every query but an explained one). Each
step of :meth:`gslb.steering.Steering.choose` and the policies that know
their rules (``geo``'s map entries, ``failover``'s tiers) add one event as
they decide, so the explanation is what that very call decided, never a
second run of the rules. A query without a trace pays one attribute check
per step, nothing more (no event is built).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Trace"]


class Trace:
    """The events of one explained lookup, in the order they happened:
    each a dict with ``event`` (its kind) and its facts (JSON values only).

    Kinds (the fields each carries are documented in docs/admin.md,
    ``/api/v1/explain``): ``wildcard``, ``cname``, ``record`` (the
    authority); ``pool``, ``pool_down``, ``selected``, ``fallback``,
    ``order`` (steering); ``match``, ``nearest``, ``tier`` (the policies).
    """

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, event: str, **facts: Any) -> dict[str, Any]:
        """Append one event of kind ``event`` with ``facts``; returns it
        (a step may add a fact once it knows it, as its outcome)."""
        found = {"event": event, **facts}
        self.events.append(found)
        return found

    def of(self, event: str) -> list[dict[str, Any]]:
        """The events of kind ``event``, in order."""
        return [e for e in self.events if e["event"] == event]
