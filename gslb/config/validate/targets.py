"""What pools and their policies read alike: member names (``Name``),
targets (one name, one tier or ordered tiers), and the context a policy's
own keys are read in (``PoolKeys``). The pool section (``pools``) and every
policy's config reader (``gslb.steering.registry``) use these; this module
imports no steering, so policies can."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gslb.config.loader import MarkedDict, MarkedList
from gslb.config.model import Tiers
from gslb.config.validate.reader import At, Reader

Name = Callable[[object, At], str | None]
"""Reads one member name (an origin's or a pool's) at a place: the name, or
None after reporting."""


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """Where a policy reads its own keys: the reasons ``r``, the pool's
    mapping ``m`` at ``at``, ``known`` (reads a declared origin's or pool's
    name), ``member`` (reads the name of a member of this pool, once the
    members are known) and the declared ``vantages``."""

    r: Reader
    m: MarkedDict
    at: At
    known: Name
    member: Name
    vantages: Mapping[str, object]


def unique(r: Reader, items: Iterable[tuple[str, At]]) -> tuple[str, ...]:
    """The names in order, each once; a repeat is reported."""
    seen: dict[str, None] = {}
    for n, a in items:
        if n in seen:
            r.report(a, f"origin {n!r} is listed twice")
        seen[n] = None
    return tuple(seen)


def targets(r: Reader, value: object, at: At, name: Name, nested: bool = False) -> Tiers:
    """Ordered tiers from an origin name, a list of names (one tier) or a list
    of lists (ordered tiers); with ``nested`` (failover ``tiers``) every item
    of the list is one tier, a name or a list of names. An origin may appear
    once."""
    tiers: list[list[tuple[str, At]]] = []
    if not isinstance(value, MarkedList):
        tiers = [[(n, at)]] if (n := name(value, at)) is not None else []
    elif not value:
        r.report(at, "expected at least one origin, got an empty list")
    elif nested or all(isinstance(v, MarkedList) for v in value):
        tiers = [r.items(tier, at.item(value, i), name, "origin", partial=True) or []
                 for i, tier in enumerate(value)]
    elif any(isinstance(v, MarkedList) for v in value):
        r.report(at, "mix of names and lists: give one tier (a list of names) "
                     "or ordered tiers (a list of lists)")
    else:
        tiers = [r.items(value, at, name, "origin", partial=True) or []]
    unique(r, (pair for tier in tiers for pair in tier))
    return tuple(tuple(n for n, _ in tier) for tier in tiers)


def one_tier(keys: PoolKeys) -> tuple[tuple[str, ...], Tiers]:
    """The members of a pool from its ``origins`` (required), as one tier:
    what every policy but ``failover`` reads."""
    r, m, at = keys.r, keys.m, keys.at
    if "origins" not in m:
        r.report(at, "missing required key 'origins'")
        return (), ((),)
    items = r.items(m["origins"], at.key(m, "origins"), keys.known, "origin",
                    partial=True) or []
    members = unique(r, items)
    return members, (members,)


def min_healthy(r: Reader, m: MarkedDict, at: At) -> dict[str, Any]:
    """``m``'s ``min_healthy`` as ``Pool`` keyword arguments (``min_healthy``,
    ``min_healthy_pct``): a count (1 or more) or a percentage of the members,
    written ``"50%"`` (above 0, at most 100); ``{}`` when absent or bad
    (reported)."""
    if "min_healthy" not in m:
        return {}
    value, where = m["min_healthy"], at.key(m, "min_healthy")
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            pct = -1.0
        if not 0 < pct <= 100:
            r.report(where, f"expected a percentage above 0 and at most 100%, got {value!r}")
            return {}
        return {"min_healthy_pct": pct}
    count = r.integer(value, where, 1)
    return {} if count is None else {"min_healthy": count}
