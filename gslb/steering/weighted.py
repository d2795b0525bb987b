"""``weighted``: healthy origins chosen in proportion to their weight.

Also home of :func:`pick_weighted`, the weighted sampling every policy uses
inside a tier.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from itertools import accumulate
from typing import TypeVar

from gslb.config.model import Pool
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
from gslb.steering.draws import draw_index

M = TypeVar("M", bound=Member)


def pick_weighted(origins: Sequence[M], k: int, rng: random.Random,
                  health: HealthView | None = None) -> tuple[M, ...]:
    """Up to ``k`` distinct origins drawn from ``origins`` in proportion to
    their ``weight`` (weighted random sampling without replacement: each
    draw picks among those left with probability weight / remaining total).
    While ``health`` (None: none) is ``ramping``, each weight is scaled by
    its ``weight_factor`` (the caller reports ``ramped``).

    Returns every origin (in drawn order) when ``k >= len(origins)``; an empty
    tuple for no origins. Weights must be positive integers (the config
    validator ensures it); ``rng.randrange`` raises ValueError otherwise.
    """
    n = len(origins)
    if n == 0 or k <= 0:
        return ()
    if n == 1:
        return (origins[0],)
    if health is not None and health.ramping:
        return _pick_scaled(origins, k, rng, health)
    if k == 1:  # one draw an answer cache can replay (gslb.steering.draws)
        return (origins[draw_index(rng, list(accumulate(o.weight for o in origins)))],)
    left = list(origins)
    weights = [o.weight for o in left]
    total = sum(weights)
    chosen: list[M] = []
    for _ in range(min(k, n)):
        r = rng.randrange(total)
        i = 0
        while r >= weights[i]:
            r -= weights[i]
            i += 1
        chosen.append(left.pop(i))
        total -= weights.pop(i)
    return tuple(chosen)


def _pick_scaled(origins: Sequence[M], k: int, rng: random.Random,
                 health: HealthView) -> tuple[M, ...]:
    """``pick_weighted`` with each weight times ``health.weight_factor``
    (real numbers); members scaled to 0 only once every other is drawn."""
    left = list(origins)
    weights = [o.weight * health.weight_factor(o.name) for o in left]
    chosen: list[M] = []
    for _ in range(min(k, len(left))):
        total = sum(weights)
        if total <= 0.0:  # only members ramped down to nothing left
            chosen.extend(left[:k - len(chosen)])
            break
        r = rng.random() * total
        i = 0
        while i < len(weights) - 1 and (r >= weights[i] or weights[i] <= 0.0):
            r -= weights[i]
            i += 1
        chosen.append(left.pop(i))
        weights.pop(i)
    return tuple(chosen)


class WeightedPolicy:
    """Pick ``pool.max_answers`` distinct healthy candidates in proportion to
    weight. The answer does not depend on the client: ECS scope 0; it was
    drawn (``Basis.DRAW``) when two or more candidates were healthy.

    The healthy candidates and their cumulative weights are remembered for
    the last ``(candidates, health view, generation)`` seen, so a query to a
    pool of n origins costs O(log n) (one ``randrange`` and a bisection for
    ``max_answers`` 1) rather than n health lookups: give each pool its own
    instance (``Steering`` does). The draw is the one ``pick_weighted``
    makes, so a seeded ``rng`` gives the same answers either way. While
    the view is ``ramping`` the memo is bypassed: weights are scaled by
    ``weight_factor`` on every query, and ``Basis.RAMP`` reported when a
    factor below 1 was used.
    """

    __slots__ = ("_memo",)

    reads_rtt = False

    def __init__(self) -> None:
        self._memo: tuple[object, object, int, tuple[Member, ...], list[int]] | None = None

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy`; empty when none is healthy."""
        if health.ramping:
            up = tuple(o for o in candidates if health.is_up(o.name))
            if not up:
                return Selection((), 0, "no healthy origin")
            basis = ramped(up, health)
            return Selection(pick_weighted(up, pool.max_answers, rng,
                                           health if basis else None), 0,
                             f"weighted among {len(up)} healthy"
                             f"{' (ramping)' if basis else ''}", drawn(len(up)) | basis)
        generation = health.generation
        memo = self._memo
        if memo is None or memo[0] is not candidates or memo[1] is not health or (
                memo[2] != generation):
            up = tuple(o for o in candidates if health.is_up(o.name))
            memo = self._memo = (candidates, health, generation, up,
                                 list(accumulate(o.weight for o in up)))
        up, cumulative = memo[3], memo[4]
        if not up:
            return Selection((), 0, "no healthy origin")
        if pool.max_answers == 1 and len(up) > 1:
            chosen: tuple[Member, ...] = (up[draw_index(rng, cumulative)],)
        else:
            chosen = pick_weighted(up, pool.max_answers, rng)
        return Selection(chosen, 0, f"weighted among {len(up)} healthy", drawn(len(up)))


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> WeightedPolicy:
    return WeightedPolicy()  # its memo of healthy candidates is per (pool, family)


SPEC = PolicySpec("weighted", _build)
