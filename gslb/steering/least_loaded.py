"""``least_loaded``: the healthy origin(s) with the lowest reported load
per unit of capacity (the DNS form of "least connections": a nameserver
never sees connections, so the origins report their load to the checks;
F5 GTM reading its LTMs, NS1's "shed load", Cloudflare's least outstanding
requests).

Per query, over the healthy candidates:

1. **score**: ``HealthView.load(origin) / (capacity × factor)``, where
   ``capacity`` is the origin's (``Origin.capacity``, default 1; a member
   pool counts 1 and reports no load) and ``factor`` its slow-start or
   drain-ramp share (``HealthView.weight_factor``, only while something
   ramps: :func:`gslb.steering.base.ramped`): a member coming back up looks
   more loaded than it is, so it takes traffic only as its ramp goes on
   (a factor of 0 ranks it after every figure).
2. **rank**: the ``max_answers`` lowest scores, lowest first; candidates
   whose load is unknown (no ``load:`` on the check, no fresh vantage with
   a figure, an unparseable figure) rank after every known one, in
   declaration order. Fail safe: an origin that stopped reporting may be
   the overloaded one, and counting it as idle would send everyone to it;
   when no candidate has a figure the answer is the first healthy ones, in
   declaration order.
3. **no flapping**: the chosen origins are remembered (per pool and address
   family; a reload starts afresh). A remembered origin stays while it is
   healthy with a known load; an outsider replaces the most loaded
   remembered one only when its score is lower by more than
   ``pool.switch_margin_pct`` percent of that one's (``switch_margin``,
   default ``DEFAULT_MARGIN_PCT`` here). A switch is logged at INFO
   (``gslb.steering``) unless built with ``logger=None``.

**What it depended on**: ``Basis.RTT`` always (reported loads move without
the health generation moving, as RTTs do: never reused from the answer
cache), ``Basis.RANKED`` (lowest load first: a pool's ``order`` does not
rotate it), ``Basis.RAMP`` when a ramp factor was used. The answer does not
depend on the client: ECS scope 0.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from gslb.config.model import Pool
from gslb.config.validate.targets import PoolKeys
from gslb.health.view import HealthView
from gslb.steering.base import (
    Basis,
    Client,
    Member,
    PolicySpec,
    Selection,
    VantageFinder,
    ramped,
    stick,
)

log = logging.getLogger("gslb.steering")

DEFAULT_MARGIN_PCT = 10.0
"""``switch_margin`` of a ``least_loaded`` pool that gives none, percent:
loads are read once per check interval, so a small margin is enough to
stop two origins with about the same load from taking turns."""

_BASIS = Basis.RTT | Basis.RANKED
_INF = float("inf")


def score(member: Member, health: HealthView, ramp: int) -> float | None:
    """``member``'s load ÷ (capacity × ramp factor) now; None when its load
    is unknown; ``inf`` when a ramp has brought its share to nothing."""
    load = health.load(member.name)
    if load is None:
        return None
    capacity: float = getattr(member, "capacity", 1.0)
    if ramp:
        capacity *= health.weight_factor(member.name)
    return load / capacity if capacity > 0 else _INF


class LeastLoadedPolicy:
    """Lowest load ÷ capacity among the healthy candidates, with anti-flap
    memory (see the module doc). Bound to one pool and address family.
    ``reason`` examples: ``"least loaded: b 0.20"``, ``"least loaded: kept
    a 0.50 (b 0.47 within margin)"``, ``"no load known; first healthy"``."""

    __slots__ = ("_current", "_logger", "_pool", "_rel")

    reads_rtt = False

    def __init__(self, pool: Pool, *, logger: logging.Logger | None = log) -> None:
        self._pool = pool
        self._logger = logger
        self._rel = pool.switch_margin_pct / 100.0
        self._current: tuple[Member, ...] = ()

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy`; empty when none is
        healthy. ``rng`` is not used."""
        up = [m for m in candidates if health.is_up(m.name)]
        if not up:
            return Selection((), 0, "no healthy origin", _BASIS)
        ramp = ramped(up, health)
        known: list[tuple[float, Member]] = []
        unknown: list[Member] = []
        for m in up:
            s = score(m, health, ramp)
            if s is None:
                unknown.append(m)
            else:
                known.append((s, m))
        k = pool.max_answers
        if not known:
            self._current = ()
            return Selection(tuple(unknown[:k]), 0, "no load known; first healthy",
                             _BASIS | ramp)
        note = self._stick(known, k)
        chosen = self._current
        if len(chosen) < k:
            chosen += tuple(unknown[:k - len(chosen)])
        return Selection(chosen, 0, f"least loaded: {note}", _BASIS | ramp)

    def _better(self, new: float, cur: float) -> bool:
        """Whether score ``new`` beats ``cur`` by more than the margin (any
        finite score beats ``inf``, a member ramped to nothing)."""
        if cur == _INF:
            return new < cur
        return cur - new > cur * self._rel

    def _stick(self, known: list[tuple[float, Member]], k: int) -> str:
        """Update the memory from ``known`` ((score, member) of the healthy
        candidates with a load) and say what happened."""
        got = stick(self._current, known, k, self._better)
        self._current = tuple(m for _, m in got.chosen)
        what = ", ".join(f"{m.name} {s:.2f}" for s, m in got.chosen)
        if got.swaps:
            swaps = "; ".join(f"{old.name} {old_s:.2f} → {new.name} {new_s:.2f}"
                              for (old_s, old), (new_s, new) in got.swaps)
            if self._logger is not None:
                self._logger.info("pool %s: switched %s (least loaded)", self._pool.name, swaps)
            return f"{what} (switched {swaps})"
        if got.challenger is not None:
            s, m = got.challenger
            return f"kept {what} ({m.name} {s:.2f} within margin)"
        return what


# -- configuration ------------------------------------------------------------------

LEAST_LOADED_KEYS = ("switch_margin",)


def read_least_loaded(keys: PoolKeys) -> dict[str, Any]:
    """``switch_margin`` (percent, 0 ≤ x < 100; default
    ``DEFAULT_MARGIN_PCT``) as the ``Pool.switch_margin_pct`` keyword."""
    r, m, at = keys.r, keys.m, keys.at
    if "switch_margin" not in m:
        return {"switch_margin_pct": DEFAULT_MARGIN_PCT}
    return {"switch_margin_pct": r.number(m["switch_margin"], at.key(m, "switch_margin"),
                                          "percent", 100)}


def least_loaded_status(pool: Pool) -> dict[str, Any]:
    """The margin of ``pool`` for the status document."""
    return {"switch_margin_pct": pool.switch_margin_pct}


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> LeastLoadedPolicy:
    return LeastLoadedPolicy(pool, logger=logger)  # its own anti-flap memory


SPEC = PolicySpec("least_loaded", _build, LEAST_LOADED_KEYS, read_least_loaded,
                  status=least_loaded_status)
