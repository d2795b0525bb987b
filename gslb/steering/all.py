"""``all``: every healthy origin (a multivalue answer)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

from gslb.config.model import Pool
from gslb.health.view import HealthView
from gslb.steering.base import Client, Member, PolicySpec, Selection, VantageFinder


class AllPolicy:
    """Answer every healthy candidate, in declaration order; ignores
    ``pool.max_answers``. The answer does not depend on the client: ECS
    scope 0."""

    reads_rtt = False

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy`; empty when none is healthy."""
        up = tuple(o for o in candidates if health.is_up(o.name))
        return Selection(up, 0, f"all {len(up)} healthy" if up else "no healthy origin")


SHARED = AllPolicy()


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> AllPolicy:
    return SHARED  # stateless


SPEC = PolicySpec("all", _build)
