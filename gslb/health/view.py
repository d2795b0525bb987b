"""Health state as steering reads it, and where probers send their reports.

``QuorumView`` combines the reports of every vantage into one state per
origin (DESIGN "Semantics worth getting right"):

* an origin is **up** when at least ``quorum`` of its **fresh** vantages say
  up; ``quorum`` None means a majority: more than half of the fresh ones.
  The quorum is capped at the number of fresh vantages, so a lone fresh
  vantage decides alone;
* a vantage is **fresh** while its last sign of life (a heartbeat, or a
  report's ``checked_at``) is at most ``stale_after_s`` seconds old; a
  vantage that falls silent stops counting;
* when no vantage of an origin is fresh, the **last known state holds**
  (and ``degraded`` says so);
* an origin with no report at all is up (no check configured, or not
  checked yet).

Staleness moves with time, not with messages: call ``refresh()`` now and
then (the service does, every ``stale_after_s / 4`` seconds at most).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from gslb.health.changes import Changes
from gslb.health.state import VantageReport

log = logging.getLogger("gslb.health")


class HealthView(Protocol):
    """What steering reads: synchronous, no I/O, cheap per call.

    ``generation`` is an integer that moves whenever any origin's state
    changes, so cached answers can be dropped when it differs. ``is_up``
    returns the current state of an origin by name; an origin the view does
    not know (no check configured) is up. ``srtt_ms`` is the smoothed RTT
    (milliseconds) of ``origin`` measured from ``vantage``, None when that
    vantage is not fresh, says the origin is down, or has no RTT for it.
    """

    @property
    def generation(self) -> int: ...

    def is_up(self, origin: str) -> bool: ...

    def srtt_ms(self, origin: str, vantage: str) -> float | None: ...


class Generational(Protocol):
    """Anything with a ``generation`` that moves on every change."""

    @property
    def generation(self) -> int: ...


def generation_moved(view: Generational, generation: int) -> Callable[[], bool]:
    """A ``wait_for`` predicate: true once ``view.generation`` is no longer
    ``generation``."""
    return lambda: view.generation != generation


class AllUpExcept:
    """A :class:`HealthView` in which every origin is up but those in
    ``out``, no RTT is known and ``generation`` is fixed: what ``fallback:
    all`` selects with (``out``: the drained origins)."""

    __slots__ = ("generation", "out")

    def __init__(self, out: frozenset[str] = frozenset(), generation: int = 0) -> None:
        self.out, self.generation = out, generation

    def is_up(self, origin: str) -> bool:
        return origin not in self.out

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return None


class ReportSink(Protocol):
    """Where a prober sends what it learns. Calls are synchronous and must
    not block: a sink that does I/O queues and ships in the background.

    * ``report(report, notify)``: the latest state of (origin, vantage);
      ``notify`` is True when others should hear of it at once (state
      changed, or smoothed RTT moved: ``ProbeState.observe`` decides). A
      sink that ships reports to other processes announces only those; a
      sink that is itself the view (``QuorumView``) ignores it.
    * ``heartbeat(vantage, now)``: the vantage is alive at ``now`` (epoch s).
    * ``forget(origin, vantage)``: drop that state (check removed/changed).
    """

    def report(self, report: VantageReport, notify: bool) -> None: ...

    def heartbeat(self, vantage: str, now: float) -> None: ...

    def forget(self, origin: str, vantage: str) -> None: ...


@dataclass(frozen=True, slots=True)
class OriginStatus:
    """One origin as the view sees it: overall ``up``; ``fresh`` and
    ``stale`` vantage names; ``quorum`` needed at the last evaluation (0
    when no vantage was fresh: last known state held); every vantage's last
    ``reports``."""

    up: bool
    fresh: tuple[str, ...]
    stale: tuple[str, ...]
    quorum: int
    reports: Mapping[str, VantageReport]


class QuorumView:
    """The combined health view (see the module doc); also a ``ReportSink``,
    so the embedded prober reports straight into it.

    ``quorum``: None (majority) or at least 1. ``stale_after_s``: seconds.
    ``clock``: epoch seconds (``time.time``), replaceable in tests. Not
    thread-safe: use from one event loop.
    """

    def __init__(self, quorum: int | None = None, stale_after_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        if quorum is not None and quorum < 1:
            raise ValueError(f"quorum must be at least 1, not {quorum}")
        self.quorum = quorum
        self.stale_after_s = stale_after_s
        self.clock = clock
        self._reports: dict[str, dict[str, VantageReport]] = {}
        self._seen: dict[str, float] = {}
        self._down: set[str] = set()
        self._held: set[str] = set()  # origins whose state is held (no fresh vantage)
        self._generation = 0
        self._changes = Changes()

    # -- HealthView ----------------------------------------------------------

    @property
    def generation(self) -> int:
        """Moves (by one) whenever any origin's overall state changes."""
        return self._generation

    def is_up(self, origin: str) -> bool:
        return origin not in self._down

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        report = self._reports.get(origin, {}).get(vantage)
        if report is None or not report.up or not self._fresh(vantage, self.clock()):
            return None
        return report.srtt_ms

    # -- ReportSink -----------------------------------------------------------

    def report(self, report: VantageReport, notify: bool) -> None:
        """Apply ``report`` at once (``apply``). ``notify`` is ignored: this
        view is where the report is read, so there is no one else to tell;
        a sink that ships reports elsewhere (``RedisSink``) publishes by it."""
        self.apply(report)

    def heartbeat(self, vantage: str, now: float) -> None:
        if now > self._seen.get(vantage, 0.0):
            self._seen[vantage] = now
            self._changes.wake()

    def forget(self, origin: str, vantage: str) -> None:
        reports = self._reports.get(origin)
        if reports is not None and reports.pop(vantage, None) is not None:
            if not reports:
                del self._reports[origin]
            self._settle(origin, self.clock())

    # -- updates ----------------------------------------------------------------

    def apply(self, report: VantageReport) -> bool:
        """Take one report (newer than what we hold; an older one is ignored).
        Returns True when the origin's overall state changed."""
        reports = self._reports.setdefault(report.origin, {})
        old = reports.get(report.vantage)
        if old is not None and old.checked_at > report.checked_at:
            return False
        reports[report.vantage] = report
        self.heartbeat(report.vantage, report.checked_at)
        return self._settle(report.origin, self.clock())

    def replace(self, reports: Iterable[VantageReport], seen: Mapping[str, float]) -> int:
        """A full reload (resync): ``reports`` is every report there is,
        ``seen`` each vantage's last heartbeat (epoch s). Reports absent
        from it are dropped (their vantage went away). Returns how many
        origins changed state."""
        fresh: dict[str, dict[str, VantageReport]] = {}
        for r in reports:
            old = self._reports.get(r.origin, {}).get(r.vantage)
            fresh.setdefault(r.origin, {})[r.vantage] = (
                old if old is not None and old.checked_at > r.checked_at else r)
        for vantage, ts in seen.items():
            self.heartbeat(vantage, ts)
        origins = self._reports.keys() | fresh.keys()
        self._reports = fresh
        now = self.clock()
        return sum(self._settle(origin, now) for origin in origins)

    def set_origins(self, names: Iterable[str]) -> None:
        """Keep only the state of origins in ``names`` (a config reload)."""
        keep = set(names)
        now = self.clock()
        for origin in [o for o in self._reports if o not in keep]:
            del self._reports[origin]
            self._settle(origin, now)
        for origin in [o for o in self._down if o not in keep]:
            self._settle(origin, now)

    def refresh(self) -> int:
        """Re-evaluate every origin at the current time (staleness moves with
        time). Returns how many origins changed state."""
        now = self.clock()
        return sum(self._settle(origin, now) for origin in list(self._reports))

    # -- reading -----------------------------------------------------------------

    def fresh_vantages(self, now: float | None = None) -> frozenset[str]:
        """Vantages heard from within ``stale_after_s`` seconds."""
        now = self.clock() if now is None else now
        return frozenset(v for v, ts in self._seen.items() if now - ts <= self.stale_after_s)

    @property
    def degraded(self) -> bool:
        """True when some checked origin has no fresh vantage (its last known
        state is held)."""
        return bool(self._held)

    def status(self, origin: str) -> OriginStatus:
        """How ``origin``'s state comes about now."""
        now = self.clock()
        reports = self._reports.get(origin, {})
        fresh = tuple(sorted(v for v in reports if self._fresh(v, now)))
        stale = tuple(sorted(v for v in reports if v not in fresh))
        return OriginStatus(self.is_up(origin), fresh, stale, self._need(len(fresh)),
                            MappingProxyType(dict(reports)))

    def snapshot(self) -> dict[str, OriginStatus]:
        """``status`` of every origin with reports."""
        return {origin: self.status(origin) for origin in self._reports}

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` is true, re-testing it after every
        update (``Changes.wait_for``). ``timeout`` in seconds; raises
        ``TimeoutError`` when it passes first."""
        await self._changes.wait_for(predicate, timeout)

    # -- internals ----------------------------------------------------------------

    def _fresh(self, vantage: str, now: float) -> bool:
        return now - self._seen.get(vantage, 0.0) <= self.stale_after_s

    def _need(self, fresh: int) -> int:
        if fresh == 0:
            return 0
        return min(self.quorum, fresh) if self.quorum is not None else fresh // 2 + 1

    def _settle(self, origin: str, now: float) -> bool:
        reports = self._reports.get(origin, {})
        fresh = [r for v, r in reports.items() if self._fresh(v, now)]
        was_up = origin not in self._down
        if reports and not fresh:
            if origin not in self._held:
                self._held.add(origin)
                log.warning("origin %s: no fresh vantage (of %s); holding last known state %s",
                            origin, ", ".join(sorted(reports)), "UP" if was_up else "DOWN")
            up = was_up
        else:
            if origin in self._held:
                self._held.discard(origin)
                log.info("origin %s: fresh vantages again: %s", origin,
                         ", ".join(sorted(r.vantage for r in fresh)))
            need = self._need(len(fresh))
            ups = sum(r.up for r in fresh)
            up = ups >= need if fresh else True
        changed = up != was_up
        if changed:
            (self._down.discard if up else self._down.add)(origin)
            self._generation += 1
            log.log(logging.INFO if up else logging.WARNING,
                    "origin %s %s: %d of %d fresh vantage(s) up, quorum %d", origin,
                    "UP" if up else "DOWN", sum(r.up for r in fresh), len(fresh),
                    self._need(len(fresh)))
        self._changes.wake()
        return changed
