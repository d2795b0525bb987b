"""Recent overall changes of origins: up, down, drained, undrained.

What the status page lists and ``gslb_health_transitions_total`` counts.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gslb.errors import raise_if_cancelling
from gslb.health.overrides import Override
from gslb.health.view import QuorumView, generation_moved
from gslb.stats import QueryStats

#: How many recent transitions a :class:`Transitions` keeps.
RECENT_TRANSITIONS = 200


@dataclass(frozen=True, slots=True)
class Transition:
    """An overall change of ``origin`` at ``at`` (epoch seconds): ``state``
    is ``up``, ``down``, ``drained`` or ``undrained``; ``cause`` says why."""

    at: float
    origin: str
    state: str
    cause: str


class Transitions:
    """The last ``keep`` transitions (``recent``, oldest first), each also
    counted in ``stats.transitions``."""

    def __init__(self, stats: QueryStats, keep: int = RECENT_TRANSITIONS) -> None:
        self.stats = stats
        self.recent: deque[Transition] = deque(maxlen=keep)

    def record(self, origin: str, state: str, cause: str) -> None:
        """Keep and count one transition, at the current time."""
        self.recent.append(Transition(time.time(), origin, state, cause))
        self.stats.transition(origin, state)

    def on_override(self, drain: Override, drained: bool) -> None:
        """Record a drain put in force or lifted (``Overrides.on_change``)."""
        self.record(drain.origin, "drained" if drained else "undrained",
                    f"{drain.who}: {drain.reason}" if drained else "drain lifted")

    async def watch(self, health: QuorumView, origins: Callable[[], Iterable[str]]) -> None:
        """Record every overall up/down change of ``health`` among
        ``origins()`` (the config in force), until cancelled."""
        def down_now() -> set[str]:
            return {o for o in origins() if not health.is_up(o)}

        down, seen = down_now(), health.generation
        while True:
            with contextlib.suppress(TimeoutError):
                await health.wait_for(generation_moved(health, seen), 3600)
            raise_if_cancelling()
            seen = health.generation
            now = down_now()
            for origin in sorted(now - down):
                self.record(origin, "down", "health checks")
            for origin in sorted(down - now):
                self.record(origin, "up", "health checks")
            down = now

