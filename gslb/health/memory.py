"""In-process health store: the state when no Redis is configured.

The unit of state is (origin, vantage): each vantage (a prober's point of
view; ``"local"`` for the embedded prober) runs its own rise/fall
``Hysteresis`` per origin. An origin's overall state combines its vantages
by majority: it is down when more than half of the vantages that reported
say down (a tie counts as up, so one vantage of two cannot take an origin
out alone). With one vantage the origin's state is that vantage's state.

``MemoryHealth`` is both the read side steering uses (``HealthView``:
``generation``, ``is_up``) and the write side the prober uses (``report``),
plus ``snapshot`` for status pages and ``wait_for`` so tests and callers
await a state change instead of polling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from gslb.health.state import CheckResult, Hysteresis

log = logging.getLogger("gslb.health")


@dataclass(frozen=True, slots=True)
class VantageStatus:
    """One vantage's view of one origin, as of its last report.

    ``up``: state after hysteresis; ``consecutive``: results in a row equal
    to the last (``last_ok``); ``rtt_ms``: the last check's round trip in
    milliseconds (None when it failed to connect); ``detail``: the last
    check's detail (the error when it failed); ``checked_at``: when the last
    result arrived, epoch seconds.
    """

    up: bool
    consecutive: int
    last_ok: bool | None
    rtt_ms: float | None
    detail: str
    checked_at: float


@dataclass(frozen=True, slots=True)
class OriginStatus:
    """An origin's overall ``up`` and each vantage's status, by vantage name."""

    up: bool
    vantages: Mapping[str, VantageStatus]


class _Slot:
    __slots__ = ("checked_at", "result", "state")

    def __init__(self, state: Hysteresis) -> None:
        self.state = state
        self.result = CheckResult(True, None, "not checked yet")
        self.checked_at = 0.0


class MemoryHealth:
    """Health state of every checked origin, in memory (see the module doc).

    Not thread-safe: use from one event loop. Origins it has no report for
    are up.
    """

    def __init__(self) -> None:
        self._slots: dict[str, dict[str, _Slot]] = {}
        self._down: set[str] = set()
        self._generation = 0
        self._changed = asyncio.Event()

    # -- read side (HealthView) -------------------------------------------

    @property
    def generation(self) -> int:
        """Moves (by one) whenever any origin's overall state changes."""
        return self._generation

    def is_up(self, origin: str) -> bool:
        """The origin's overall state; True for an origin never reported."""
        return origin not in self._down

    def snapshot(self) -> dict[str, OriginStatus]:
        """A copy of every reported origin's state, by origin name."""
        return {
            origin: OriginStatus(
                up=origin not in self._down,
                vantages=MappingProxyType({
                    vantage: VantageStatus(slot.state.up, slot.state.consecutive,
                                           slot.state.last_ok, slot.result.rtt_ms,
                                           slot.result.detail, slot.checked_at)
                    for vantage, slot in slots.items()
                }),
            )
            for origin, slots in self._slots.items()
        }

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` is true, re-testing it after every
        report and every reset. ``timeout`` in seconds; raises
        ``TimeoutError`` when it passes first."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    # -- write side ---------------------------------------------------------

    def report(self, origin: str, vantage: str, result: CheckResult, rise: int,
               fall: int) -> bool:
        """Count one check result of ``origin`` seen from ``vantage`` with
        the thresholds ``rise``/``fall`` (consecutive results; ``ValueError``
        when below 1). Returns True when the origin's overall state changed
        (``generation`` then moved). Logs each (origin, vantage) state change
        once: WARNING for down, INFO for up."""
        slots = self._slots.setdefault(origin, {})
        slot = slots.get(vantage)
        if slot is None:
            slot = slots[vantage] = _Slot(Hysteresis(rise, fall))
        else:
            slot.state.rise, slot.state.fall = rise, fall
        slot.result, slot.checked_at = result, time.time()
        state = slot.state
        if state.feed(result.ok):
            what = "successes" if result.ok else "failures"
            level = logging.INFO if state.up else logging.WARNING
            overall = ""
            if len(slots) > 1:
                ups = sum(s.state.up for s in slots.values())
                overall = f" ({ups} of {len(slots)} vantages up)"
            log.log(level, "origin %s %s at vantage %s after %d consecutive %s: %s%s",
                    origin, "UP" if state.up else "DOWN", vantage, state.consecutive, what,
                    result.detail, overall)
        return self._settle(origin)

    def reset(self, origin: str, vantage: str) -> bool:
        """Forget ``vantage``'s state of ``origin`` (its check changed): the
        next report starts afresh (up). Returns True when the origin's overall
        state changed."""
        slots = self._slots.get(origin, {})
        slots.pop(vantage, None)
        if not slots:
            self._slots.pop(origin, None)
        return self._settle(origin)

    def set_origins(self, names: Iterable[str]) -> None:
        """Keep only the state of origins in ``names`` (a config reload
        removed the others or their checks); moves ``generation`` when a
        dropped origin was down."""
        keep = set(names)
        for origin in [o for o in self._slots if o not in keep]:
            del self._slots[origin]
            self._settle(origin)

    def _settle(self, origin: str) -> bool:
        """Recompute ``origin``'s overall state by majority of vantages; move
        the generation if it changed, and wake ``wait_for`` callers."""
        slots = self._slots.get(origin, {})
        down = 2 * sum(not s.state.up for s in slots.values()) > len(slots)
        changed = down != (origin in self._down)
        if changed:
            (self._down.add if down else self._down.discard)(origin)
            self._generation += 1
        self._changed.set()
        self._changed = asyncio.Event()
        return changed

