"""Health state as steering reads it, and where probers send their reports.

``QuorumView`` combines the reports of every vantage into one state per
origin (docs/checks.md "Several vantages: quorum", exactly):

* a vantage is **fresh** while its last sign of life (a heartbeat or a
  report) was **received** at most ``stale_after_s`` seconds ago, by this
  view's own clock (a full load from Redis dates it by Redis ``TIME``); the
  sender's timestamps never decide freshness, and one in the future is
  clamped to now and logged;
* each fresh vantage with a report on the origin **votes** up or down (an
  ``unknown`` report votes as ``unknown_up`` says, and unknown votes alone
  decide nothing); ``need`` is ``quorum``,
  or, for a majority, more than half of the known vantages (those declared,
  ``set_origins``; else those ever heard from), never of the fresh ones only;
* the origin goes **up** when at least ``need`` votes say up, **down** when
  at least ``need`` say down (both: the larger side, a tie holds); otherwise
  its state **holds**: fewer than ``need`` vantages cannot change it, in
  either direction. When fewer than ``need`` vantages vote the hold is
  **degraded** (logged, ``degraded``, ``/readyz``);
* an origin never decided is **unknown** and answered as ``unknown_up``
  says; an origin without a check is always up.

Reports are dropped only by ``forget`` and ``set_origins``: an expired key
or an emptied Redis (a full load without them) keeps the last known state.

Staleness moves with time, not with messages: call ``refresh()`` now and
then (the service does, every ``stale_after_s / 4`` seconds at most); it
logs each vantage going stale and fresh again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
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

    ``ramping`` is True while some origin's weight is ramping (slow start
    after coming back up, or a drain with a ramp; docs/steering.md "Slow
    start and timed drains"): the one check a weight-aware policy makes per
    query; only then need it ask ``weight_factor(origin)``, the share of
    its weight an origin gets now (0.0 to 1.0; 1.0 when it does not ramp),
    and report ``Basis.RAMP`` when a factor below 1 was used. Ramps move
    with time, not with ``generation``.

    ``load(origin)`` is the load figure the origin reports to its checks
    (``load:``, docs/checks.md "Reported load"), combined over the fresh
    vantages that say it is up; None when none has one. Loads move without
    ``generation`` moving, like RTTs.
    """

    @property
    def generation(self) -> int: ...

    @property
    def ramping(self) -> bool: ...

    def is_up(self, origin: str) -> bool: ...

    def srtt_ms(self, origin: str, vantage: str) -> float | None: ...

    def load(self, origin: str) -> float | None: ...

    def weight_factor(self, origin: str, now: float | None = None) -> float: ...


SLOW_START_FLOOR = 0.1
"""The share of its weight an origin gets the moment it comes back up with
``slow_start``: enough traffic to show at once whether it really serves,
small enough not to be the thundering herd (docs/steering.md)."""


def ramp_up(since: float, seconds: float, now: float) -> float:
    """The slow-start factor ``seconds`` (> 0) after coming up at ``since``
    (epoch seconds): ``min(1, max(SLOW_START_FLOOR, elapsed / seconds))``."""
    return min(1.0, max(SLOW_START_FLOOR, (now - since) / seconds))


def ramp_down(since: float, seconds: float, now: float) -> float:
    """The timed-drain factor ``seconds`` (> 0) after a drain at ``since``:
    from 1 down to 0, linearly; just below 1 at the very start, so a policy
    reading it reports the ramp (``Basis.RAMP``) from the first query."""
    return min(RAMP_START, max(0.0, 1.0 - (now - since) / seconds))


RAMP_START = 1.0 - 1e-9
"""The most a ramping factor is (below 1: it moves)."""


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

    ramping = False

    def is_up(self, origin: str) -> bool:
        return origin not in self.out

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return None

    def load(self, origin: str) -> float | None:
        return None

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        return 1.0


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


#: Seconds a sender's timestamp may run ahead of this view's clock before
#: it is logged (it is clamped to now whatever the amount).
FUTURE_LOG_S = 1.0


@dataclass(frozen=True, slots=True)
class OriginStatus:
    """One origin as the view sees it: overall ``up``; ``fresh`` and
    ``stale`` vantage names (of its reports); ``quorum``: the votes ``need``ed
    to change its state; ``held``: why its state holds (None: it follows the
    votes; ``"fresh"``: fewer than ``quorum`` fresh vantages, degraded;
    ``"split"``: no side has ``quorum`` votes); ``unknown``: never decided
    (answered by the ``unknown`` policy); every vantage's last ``reports``."""

    up: bool
    fresh: tuple[str, ...]
    stale: tuple[str, ...]
    quorum: int
    reports: Mapping[str, VantageReport]
    held: str | None = None
    unknown: bool = False


class QuorumView:
    """The combined health view (see the module doc); also a ``ReportSink``,
    so the embedded prober reports straight into it.

    An origin with a slow start (``set_slow_start``) that goes from a
    decided down to up ramps from then (``weight_factor``: ``ramp_up``); an
    origin up, or unknown and answered as up, when the process starts does
    not ramp.

    ``quorum``: None (majority) or at least 1 (``ValueError`` otherwise).
    ``stale_after_s``: seconds. ``unknown_up``: how an undecided origin and
    an ``unknown`` vote count. ``clock``: epoch seconds (``time.time``),
    replaceable in tests. Not thread-safe: use from one event loop.
    """

    def __init__(self, quorum: int | None = None, stale_after_s: float = 10.0,
                 clock: Callable[[], float] = time.time, *, unknown_up: bool = True) -> None:
        if quorum is not None and quorum < 1:
            raise ValueError(f"quorum must be at least 1, not {quorum}")
        self.quorum = quorum
        self.stale_after_s = stale_after_s
        self.unknown_up = unknown_up
        self.clock = clock
        self._reports: dict[str, dict[str, VantageReport]] = {}
        self._seen: dict[str, float] = {}  # vantage: when last heard (our clock)
        self._fresh_now: set[str] = set()  # fresh at the last refresh (for the log)
        self._vantages: frozenset[str] | None = None  # declared; None: those heard from
        self._checked: set[str] = set()  # origins with a check (unknown until decided)
        self._reporting: set[str] = set()  # vantages that ever sent a report
        self._state: dict[str, bool] = {}  # decided origins: up?
        self._down: set[str] = set()
        self._held: dict[str, str] = {}  # origin: why held ("fresh" or "split")
        self._generation = 0
        self._changes = Changes()
        self._future_logged: dict[str, float] = {}
        self._slow_start: Mapping[str, float] = {}  # origin: seconds
        self._rising: dict[str, tuple[float, float]] = {}  # ramping: (since, seconds)

    # -- HealthView ----------------------------------------------------------

    @property
    def ramping(self) -> bool:
        """True while some origin that came back up is within its slow start
        (an ended ramp is dropped here)."""
        return bool(self._rising) and self._still_rising()

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        """``ramp_up`` of ``origin`` at ``now`` (this view's clock when None);
        1.0 when it does not ramp."""
        rising = self._rising.get(origin)
        if rising is None:
            return 1.0
        return ramp_up(rising[0], rising[1], self.clock() if now is None else now)

    def rising(self) -> dict[str, tuple[float, float]]:
        """The origins in slow start: ``(since, seconds)``, ``since`` in epoch
        seconds of this view's clock (what a worker's mirror needs)."""
        self._still_rising()
        return dict(self._rising)

    def set_slow_start(self, seconds: Mapping[str, float]) -> None:
        """Per origin, the seconds of its slow start (a config (re)load;
        :func:`gslb.config.model.slow_starts`); a ramp of an origin left
        out ends."""
        self._slow_start = dict(seconds)
        for origin in [o for o in self._rising if o not in self._slow_start]:
            del self._rising[origin]

    def _still_rising(self) -> bool:
        now = self.clock()
        for origin in [o for o, (t, s) in self._rising.items() if now - t >= s]:
            del self._rising[origin]
            log.info("origin %s: slow start over, full weight", origin)
        return bool(self._rising)

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

    def load(self, origin: str) -> float | None:
        """The highest load among the latest reports of the fresh vantages
        that say ``origin`` is up; None when none of them has a figure. The
        origin reports one figure; vantages read it at different times, and
        the highest is the fail-safe one: underrating a loaded origin sends
        it more traffic, overrating one only sends traffic elsewhere."""
        reports = self._reports.get(origin)
        if not reports:
            return None
        now = self.clock()
        found = [r.load for v, r in reports.items()
                 if r.load is not None and r.up and self._fresh(v, now)]
        return max(found, default=None)

    # -- ReportSink -----------------------------------------------------------

    def report(self, report: VantageReport, notify: bool) -> None:
        """Apply ``report`` at once (``apply``). ``notify`` is ignored: this
        view is where the report is read, so there is no one else to tell;
        a sink that ships reports elsewhere (``RedisSink``) publishes by it."""
        self.apply(report)

    def heartbeat(self, vantage: str, now: float) -> None:
        """``vantage`` is alive: it counts as heard from at this view's clock;
        ``now`` (the sender's epoch seconds) is only checked, and logged
        when it runs ahead."""
        self._clamp(vantage, now, "heartbeat")
        self._heard(vantage, self.clock())

    def forget(self, origin: str, vantage: str) -> None:
        """Drop ``vantage``'s report on ``origin`` (its check was removed
        there). When it was the last report of an origin this view does not
        know as checked (``set_origins``), the origin's state goes too; a
        checked origin keeps its last decided state."""
        reports = self._reports.get(origin)
        if reports is not None and reports.pop(vantage, None) is not None:
            if not reports:
                del self._reports[origin]
                if origin not in self._checked:
                    self._state.pop(origin, None)
            self._settle(origin, self.clock())

    # -- updates ----------------------------------------------------------------

    def apply(self, report: VantageReport) -> bool:
        """Take one report just received (newer than what we hold; an older
        one is ignored; a ``checked_at`` in the future is clamped to now and
        logged); its vantage counts as heard from now. Returns True when the
        origin's overall state changed."""
        now = self.clock()
        report = self._clamped(report, now)
        reports = self._reports.setdefault(report.origin, {})
        old = reports.get(report.vantage)
        if old is not None and old.checked_at > report.checked_at:
            return False  # older: not a sign of life either
        self._heard(report.vantage, now)
        self._reporting.add(report.vantage)
        reports[report.vantage] = report
        return self._settle(report.origin, now)

    def replace(self, reports: Iterable[VantageReport], seen: Mapping[str, float]) -> int:
        """A full load (resync): ``reports`` is every report the store holds,
        ``seen`` when each vantage was last heard from, in this view's clock
        (epoch seconds; a time in the future counts as now). A report newer
        than the one held replaces it; reports missing from the load are
        KEPT (an expired key or an emptied store never changes a state).
        Returns how many origins changed state."""
        now = self.clock()
        for r in reports:
            r = self._clamped(r, now)
            held = self._reports.setdefault(r.origin, {})
            old = held.get(r.vantage)
            if old is None or old.checked_at <= r.checked_at:
                held[r.vantage] = r
                self._reporting.add(r.vantage)
        for vantage, ts in seen.items():
            self._heard(vantage, min(ts, now))
        return self.refresh()

    def set_origins(self, checked: Iterable[str],
                    vantages: Iterable[str] | None = None) -> None:
        """A config (re)load: ``checked`` are the origins with a check (one
        never decided is unknown; the state of any other is dropped: it is
        up); ``vantages`` the declared ones (None: those heard from): a
        majority is counted on them, and reports of others are dropped."""
        self._checked = set(checked)
        if vantages is not None:
            self._vantages = frozenset(vantages)
            for reports in self._reports.values():
                for v in [v for v in reports if v not in self._vantages]:
                    del reports[v]
        for origin in [o for o in self._reports if o not in self._checked]:
            del self._reports[origin]
        for origin in [o for o in self._state if o not in self._checked]:
            del self._state[origin]
        self.refresh()

    def refresh(self) -> int:
        """Re-evaluate every origin at the current time (staleness moves with
        time); log each vantage gone stale. Returns how many origins changed
        state."""
        now = self.clock()
        for vantage in sorted(self._fresh_now):
            if not self._fresh(vantage, now):
                self._fresh_now.discard(vantage)
                log.warning("vantage %s stale: not heard from for %.1f s (stale_after %g s); "
                            "it stops counting", vantage, now - self._seen[vantage],
                            self.stale_after_s)
        origins = self._reports.keys() | self._checked | self._state.keys() | self._down
        return sum(self._settle(origin, now) for origin in sorted(origins))

    # -- reading -----------------------------------------------------------------

    def fresh_vantages(self, now: float | None = None) -> frozenset[str]:
        """Vantages heard from within ``stale_after_s`` seconds."""
        now = self.clock() if now is None else now
        return frozenset(v for v, ts in self._seen.items() if now - ts <= self.stale_after_s)

    def known_vantages(self) -> frozenset[str]:
        """The vantages a majority is counted on: those declared
        (``set_origins``), else every vantage heard from."""
        if self._vantages is not None:
            return self._vantages
        return frozenset(self._seen.keys() | self._reporting)

    def need(self) -> int:
        """Votes that change an origin's state: ``quorum``, or more than half
        of ``known_vantages()`` (at least 1)."""
        if self.quorum is not None:
            return self.quorum
        return len(self.known_vantages()) // 2 + 1

    @property
    def degraded(self) -> bool:
        """True when some origin with reports holds its state because fewer
        than ``need()`` of its vantages are fresh."""
        return any(why == "fresh" for why in self._held.values())

    def status(self, origin: str) -> OriginStatus:
        """How ``origin``'s state comes about now."""
        now = self.clock()
        reports = self._reports.get(origin, {})
        fresh = tuple(sorted(v for v in reports if self._fresh(v, now)))
        stale = tuple(sorted(v for v in reports if v not in fresh))
        unknown = origin in self._checked and origin not in self._state
        return OriginStatus(self.is_up(origin), fresh, stale, self.need(),
                            MappingProxyType(dict(reports)), self._held.get(origin), unknown)

    def report_of(self, origin: str, vantage: str) -> VantageReport | None:
        """The report held from ``vantage`` on ``origin``, if any."""
        return self._reports.get(origin, {}).get(vantage)

    def state(self, origin: str) -> str:
        """``origin``'s state as operators see it (drains aside): ``down``
        (not answered), ``unknown`` (answered or not per ``unknown_up``,
        never decided), ``degraded`` (answered, but the last check of some
        fresh vantage failed, fewer than ``fall`` times or outvoted), or
        ``up``."""
        if origin in self._down:
            return "down"
        if origin in self._checked and origin not in self._state:
            return "unknown"
        now = self.clock()
        if any(r.last_ok is False for v, r in self._reports.get(origin, {}).items()
               if self._fresh(v, now)):
            return "degraded"
        return "up"

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
        seen = self._seen.get(vantage)
        return seen is not None and now - seen <= self.stale_after_s

    def _heard(self, vantage: str, at: float) -> None:
        """``vantage`` heard from at ``at`` (our clock)."""
        if at <= self._seen.get(vantage, -float("inf")):
            return
        was = self._seen.get(vantage)
        self._seen[vantage] = at
        now = self.clock()
        if vantage not in self._fresh_now and now - at <= self.stale_after_s:
            self._fresh_now.add(vantage)
            if was is None:
                log.info("vantage %s fresh: first heard from", vantage)
            else:
                log.info("vantage %s fresh again after %.1f s of silence", vantage, at - was)
        self._changes.wake()

    def _clamp(self, vantage: str, at: float, what: str) -> float:
        """``at`` (a sender's epoch seconds) clamped to now; logged (once a
        minute per vantage) when it ran ahead by more than ``FUTURE_LOG_S``."""
        now = self.clock()
        if at <= now:
            return at
        if at - now > FUTURE_LOG_S and now - self._future_logged.get(vantage, -1e18) >= 60:
            self._future_logged[vantage] = now
            log.warning("vantage %s: %s timestamp %.6g is %.3g s in the future (its clock, "
                        "or a forgery); clamped to now", vantage, what, at, at - now)
        return now

    def _clamped(self, report: VantageReport, now: float) -> VantageReport:
        if report.checked_at <= now:
            return report
        return replace(report, checked_at=self._clamp(report.vantage, report.checked_at,
                                                      "report"))

    def _decide(self, origin: str, now: float) -> tuple[bool | None, str | None]:
        """``(up, held)`` by the votes: ``up`` None when they change nothing;
        ``held`` why (None, ``"fresh"``, ``"split"``)."""
        fresh = [r.up for v, r in self._reports.get(origin, {}).items() if self._fresh(v, now)]
        need = self.need()
        if len(fresh) < need:
            return None, ("fresh" if origin in self._reports else None)
        if all(up is None for up in fresh):
            return None, None  # unknown everywhere: still undecided (the policy answers)
        votes = [up if up is not None else self.unknown_up for up in fresh]
        ups = sum(votes)
        downs = len(votes) - ups
        if ups >= need and downs >= need:
            return (None, "split") if ups == downs else (ups > downs, None)
        if ups >= need or downs >= need:
            return ups >= need, None
        return None, "split"

    def _settle(self, origin: str, now: float) -> bool:
        was_up = origin not in self._down
        decided, held = self._decide(origin, now)
        before = self._state.get(origin)
        if decided is not None:
            self._state[origin] = decided
        up = self._state.get(origin, self.unknown_up or origin not in self._checked)
        self._log_hold(origin, held, up)
        changed = up != was_up
        if changed:
            (self._down.discard if up else self._down.add)(origin)
            self._generation += 1
            self._rising.pop(origin, None)
            slow = self._slow_start.get(origin)
            if up and before is False and slow is not None:
                self._rising[origin] = (now, slow)  # back from a decided down
            reports = self._reports.get(origin, {})
            fresh = [r for v, r in reports.items() if self._fresh(v, now)]
            log.log(logging.INFO if up else logging.WARNING,
                    "origin %s %s: %d of %d fresh vantage(s) up, quorum %d%s", origin,
                    "UP" if up else "DOWN", sum(bool(r.up) for r in fresh), len(fresh),
                    self.need(), "" if decided is not None else " (unknown)")
        self._changes.wake()
        return changed

    def _log_hold(self, origin: str, held: str | None, up: bool) -> None:
        was = self._held.get(origin)
        if held == was:
            return
        if held is None:
            del self._held[origin]
            if was == "fresh":
                log.info("origin %s: enough fresh vantages again (quorum %d)", origin,
                         self.need())
            return
        self._held[origin] = held
        state = "UP" if up else "DOWN"
        if held == "fresh":
            reports = self._reports.get(origin, {})
            log.warning("origin %s: fewer than %d fresh vantage(s) (of %s); holding last known "
                        "state %s", origin, self.need(), ", ".join(sorted(reports)), state)
        else:
            log.info("origin %s: no %d fresh vantages agree; holding state %s", origin,
                     self.need(), state)
