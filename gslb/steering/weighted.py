"""``weighted``: healthy origins chosen in proportion to their weight.

Also home of :func:`pick_weighted`, the weighted sampling every policy uses
inside a tier.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gslb.config.model import Origin, Pool
from gslb.health.view import HealthView
from gslb.steering.base import Client, Selection


def pick_weighted(origins: Sequence[Origin], k: int, rng: random.Random) -> tuple[Origin, ...]:
    """Up to ``k`` distinct origins drawn from ``origins`` in proportion to
    ``Origin.weight`` (weighted random sampling without replacement: each
    draw picks among those left with probability weight / remaining total).

    Returns every origin (in drawn order) when ``k >= len(origins)``; an empty
    tuple for no origins. Weights must be positive integers (the config
    validator ensures it); ``rng.randrange`` raises ValueError otherwise.
    """
    n = len(origins)
    if n == 0 or k <= 0:
        return ()
    if n == 1:
        return (origins[0],)
    left = list(origins)
    weights = [o.weight for o in left]
    total = sum(weights)
    chosen: list[Origin] = []
    for _ in range(min(k, n)):
        r = rng.randrange(total)
        i = 0
        while r >= weights[i]:
            r -= weights[i]
            i += 1
        chosen.append(left.pop(i))
        total -= weights.pop(i)
    return tuple(chosen)


class WeightedPolicy:
    """Pick ``pool.max_answers`` distinct healthy candidates in proportion to
    weight. The answer does not depend on the client: ECS scope 0."""

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Origin],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy`; empty when none is healthy."""
        up = [o for o in candidates if health.is_up(o.name)]
        if not up:
            return Selection((), 0, "no healthy origin")
        return Selection(pick_weighted(up, pool.max_answers, rng), 0,
                         f"weighted among {len(up)} healthy")
