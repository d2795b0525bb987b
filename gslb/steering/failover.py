"""``failover``: the first priority tier with a healthy origin answers.

Also home of :func:`first_healthy_tier`, which ``geo`` uses for its mapped
tiers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence

from gslb.config.model import Pool, Tiers
from gslb.config.validate.targets import PoolKeys, targets, unique
from gslb.health.view import HealthView
from gslb.steering.base import Client, Member, PolicySpec, Selection, VantageFinder, drawn
from gslb.steering.weighted import pick_weighted


def first_healthy_tier(
    tiers: Tiers, by_name: Mapping[str, Member], health: HealthView
) -> tuple[int, list[Member]]:
    """The 1-based index and healthy members of the first tier that has a
    healthy member in ``by_name`` (the candidates, keyed by origin name);
    ``(0, [])`` when no tier has one. Members that are not candidates (no
    address of the queried family) are ignored, so a tier of only such
    members is skipped."""
    for i, tier in enumerate(tiers, 1):
        up = [by_name[n] for n in tier if n in by_name and health.is_up(n)]
        if up:
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
        tier, up = first_healthy_tier(pool.tiers, {o.name: o for o in candidates}, health)
        if not up:
            return Selection((), 0, "no healthy origin in any tier")
        return Selection(pick_weighted(up, pool.max_answers, rng), 0, f"tier {tier}",
                         drawn(len(up)))


# -- configuration: failover pools list their tiers ------------------------------------


def read_tiers(keys: PoolKeys) -> tuple[tuple[str, ...], Tiers]:
    """A failover pool's ``tiers`` (required; each item one tier, a name or
    a list of names) and its members, in tier order; ``origins``, when given
    too, must all be in some tier."""
    r, m, at = keys.r, keys.m, keys.at
    members: tuple[str, ...] = ()
    if "origins" in m:
        items = r.items(m["origins"], at.key(m, "origins"), keys.known, "origin",
                        partial=True) or []
        members = unique(r, items)
    if "tiers" not in m:
        r.report(at, "missing required key 'tiers' (failover pools list their tiers)")
        return members, (members,)
    tiers = targets(r, m["tiers"], at.key(m, "tiers"), keys.known, nested=True)
    order = tuple(dict.fromkeys(n for tier in tiers for n in tier))
    if "origins" in m:
        for n in (n for n in members if n not in order):
            r.report(at.key(m, "origins"), f"origin {n!r} is in no tier")
    return order, tiers


SHARED = FailoverPolicy()


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> FailoverPolicy:
    return SHARED  # stateless


SPEC = PolicySpec("failover", _build, ("tiers",), members=read_tiers)
