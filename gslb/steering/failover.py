"""``failover``: the first priority tier with a healthy origin answers.

Also home of :func:`first_healthy_tier`, which ``geo`` uses for its mapped
tiers.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from gslb.config.loader import MarkedDict, MarkedList
from gslb.config.model import Pool, Tiers
from gslb.config.validate.reader import At, Reader
from gslb.config.validate.targets import Name, PoolKeys, min_healthy, targets, unique
from gslb.health.view import HealthView
from gslb.steering.base import (
    Client,
    Member,
    PolicySpec,
    Selection,
    VantageFinder,
    drawn,
    ramped,
)
from gslb.steering.trace import Trace
from gslb.steering.weighted import pick_weighted


def first_healthy_tier(
    tiers: Tiers, by_name: Mapping[str, Member], health: HealthView,
    needs: Sequence[tuple[int, float | None]] = (),
    trace: Trace | None = None,
) -> tuple[int, list[Member]]:
    """The 1-based index and healthy members of the first tier that has
    enough healthy members in ``by_name`` (the candidates, keyed by name):
    one, or for tier ``i`` what ``needs[i]`` asks (``(count, percent or
    None)``, as ``Pool.tier_min_healthy``: the percentage of the tier's
    candidates, rounded up); ``(0, [])`` when no tier has. Members that are
    not candidates (no address of the queried family) are ignored, so a tier
    of only such members is skipped. ``trace`` (explaining only) gets a
    ``tier`` event per tier looked at: ``tier`` (1-based), ``outcome``
    (``answered``, ``down``: no healthy candidate, ``empty``: no candidate,
    ``below min_healthy``), ``members`` (its candidates), ``up`` and ``need``."""
    for i, tier in enumerate(tiers, 1):
        up = [by_name[n] for n in tier if n in by_name and health.is_up(n)]
        if not up:
            if trace is not None:
                members = [n for n in tier if n in by_name]
                trace.add("tier", tier=i, outcome="down" if members else "empty",
                          members=members, up=[], need=1)
            continue
        need = 1
        if i <= len(needs):
            count, pct = needs[i - 1]
            candidates = sum(1 for n in tier if n in by_name)
            need = max(1, count, math.ceil(pct * candidates / 100 - 1e-9) if pct else 0)
            if len(up) < need:
                if trace is not None:
                    trace.add("tier", tier=i, outcome="below min_healthy",
                              members=[n for n in tier if n in by_name],
                              up=[m.name for m in up], need=need)
                continue
        if trace is not None:
            trace.add("tier", tier=i, outcome="answered", members=[n for n in tier if n in by_name],
                      up=[m.name for m in up], need=need)
        return i, up
    return 0, []


class FailoverPolicy:
    """Walk ``pool.tiers`` in order; in the first tier with a healthy
    candidate, pick ``pool.max_answers`` of them by weight. The answer does
    not depend on the client: ECS scope 0; it was drawn (``Basis.DRAW``)
    when that tier had two or more healthy candidates."""

    reads_rtt = False

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy`; empty when no tier is up."""
        tier, up = first_healthy_tier(pool.tiers, {o.name: o for o in candidates}, health,
                                      pool.tier_min_healthy, client.trace)
        if not up:
            return Selection((), 0, "no healthy origin in any tier")
        basis = ramped(up, health)  # the one ramp check; RAMP: weights scaled
        return Selection(pick_weighted(up, pool.max_answers, rng, health if basis else None),
                         0, f"tier {tier}", drawn(len(up)) | basis)


# -- configuration: failover pools list their tiers ------------------------------------


def read_tiers(keys: PoolKeys) -> tuple[tuple[str, ...], Tiers]:
    """A failover pool's ``tiers`` (required; each item one tier: a name, a
    list of names, or ``{origins: name or list, min_healthy: ...}``) and its
    members, in tier order; ``origins``, when given too, must all be in some
    tier."""
    r, m, at = keys.r, keys.m, keys.at
    members: tuple[str, ...] = ()
    if "origins" in m:
        items = r.items(m["origins"], at.key(m, "origins"), keys.known, "origin",
                        partial=True) or []
        members = unique(r, items)
    if "tiers" not in m:
        r.report(at, "missing required key 'tiers' (failover pools list their tiers)")
        return members, (members,)
    value, where = m["tiers"], at.key(m, "tiers")
    if isinstance(value, MarkedList) and any(isinstance(v, MarkedDict) for v in value):
        found = [_tier(r, item, where.item(value, i), keys.known)
                 for i, item in enumerate(value)]
        unique(r, (pair for tier in found for pair in tier))
        tiers: Tiers = tuple(tuple(n for n, _ in tier) for tier in found)
    else:
        tiers = targets(r, value, where, keys.known, nested=True)
    order = tuple(dict.fromkeys(n for tier in tiers for n in tier))
    if "origins" in m:
        for n in (n for n in members if n not in order):
            r.report(at.key(m, "origins"), f"origin {n!r} is in no tier")
    return order, tiers


def _tier(r: Reader, item: object, at: At, known: Name) -> list[tuple[str, At]]:
    """One item of ``tiers``: its names, with where each is."""
    if isinstance(item, MarkedDict):
        r.fields(item, at, ("origins", "min_healthy"), required=("origins",))
        if "origins" not in item:
            return []
        mapping = item
        item, at = mapping["origins"], at.key(mapping, "origins")
    if isinstance(item, MarkedList):
        return r.items(item, at, known, "origin", partial=True) or []
    name = known(item, at)
    return [] if name is None else [(name, at)]


def read_tier_thresholds(keys: PoolKeys) -> dict[str, Any]:
    """``tier_min_healthy`` from the ``min_healthy`` of the tiers given as
    mappings (``Pool`` keyword arguments; none when no tier has one)."""
    r, m, at = keys.r, keys.m, keys.at
    value = m.get("tiers")
    if not isinstance(value, MarkedList):
        return {}
    needs: list[tuple[int, float | None]] = []
    for i, item in enumerate(value):
        got = (min_healthy(r, item, at.key(m, "tiers").item(value, i))
               if isinstance(item, MarkedDict) else {})
        needs.append((got.get("min_healthy", 1), got.get("min_healthy_pct")))
    return {"tier_min_healthy": tuple(needs)} if any(n != (1, None) for n in needs) else {}


SHARED = FailoverPolicy()


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> FailoverPolicy:
    return SHARED  # stateless


def _status(pool: Pool) -> dict[str, Any]:
    return {"tier_min_healthy": [f"{p:g}%" if p is not None else c
                                 for c, p in pool.tier_min_healthy]}


SPEC = PolicySpec("failover", _build, ("tiers",), read_tier_thresholds, members=read_tiers,
                  status=_status)
