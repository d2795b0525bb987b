"""The prober: one asyncio task per checked origin, from one vantage.

Each task loops forever: run the origin's check, count it in the vantage's
``ProbeState`` (rise/fall, smoothed RTT), hand the report to the sink (the
in-memory view, or Redis), then wait so that checks *start* every
``interval_s`` seconds (the time the check took is subtracted; a check
that overruns its interval is followed at once, without catching up on
missed starts). The first check of each origin waits a random jitter in
``[0, min(interval_s, 1))`` seconds so that origins loaded together do not
all fire at once. A check that raises (a bug, never an origin failure)
counts as a failure, is logged, and never stops the task. A further task
sends the sink a heartbeat every ``heartbeat_interval_s`` seconds, so
nameservers can tell a silent vantage from a quiet one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Mapping

import aiohttp

from gslb.config.model import Check, Origin
from gslb.errors import raise_if_cancelling
from gslb.health.state import CheckResult, ProbeState, VantageReport
from gslb.health.view import ReportSink
from gslb.probe.checks import run_check
from gslb.probe.checks.http import make_session

log = logging.getLogger("gslb.probe")

MAX_JITTER_S = 1.0
"""Upper bound (seconds) of the random delay before an origin's first check."""


class Prober:
    """Checks ``origins`` (those with a ``check``) from ``vantage`` and
    reports into ``sink``.

    ``seed(reports)`` starts origins from their vantage's last reports
    (a restarted or reloaded probe: see ``ProbeState.seed``); ``start()``
    launches the tasks; ``update(origins)`` applies a reloaded config (new,
    removed and changed checks; the state of an origin whose check changed
    carries on, so a down origin stays down until the new check succeeds
    ``rise`` times; a removed check's state is dropped and forgotten by the
    sink); ``stop()`` cancels and awaits every task and closes the HTTP
    session. ``rng`` makes the jitter reproducible in tests.
    """

    def __init__(self, origins: Mapping[str, Origin], sink: ReportSink,
                 vantage: str = "local", rng: random.Random | None = None,
                 heartbeat_interval_s: float = 1.0) -> None:
        self.sink = sink
        self.vantage = vantage
        self.state = ProbeState(vantage)
        self.heartbeat_interval_s = heartbeat_interval_s
        self._heartbeat: asyncio.Task[None] | None = None
        self._rng = rng or random.Random()
        self._checks = _checks_of(origins)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    @property
    def running(self) -> frozenset[str]:
        """Names of the origins being checked now."""
        return frozenset(self._tasks)

    @property
    def checks(self) -> Mapping[str, Check]:
        """The check of every checked origin of the config in force."""
        return self._checks

    def seed(self, reports: Iterable[VantageReport]) -> int:
        """Start each origin of ``reports`` (this vantage's, with a check in
        the config in force and no state here yet) from that report; returns
        how many were seeded. Others are ignored."""
        seeded = 0
        for report in reports:
            check = self._checks.get(report.origin)
            if (check is None or report.vantage != self.vantage
                    or report.origin in self.state.origins()):
                continue
            self.state.seed(report, check.rise, check.fall)
            seeded += 1
        return seeded

    async def start(self) -> None:
        """Open the shared HTTP session and start one task per checked origin."""
        if self._session is None:
            self._session = make_session()
        for name in self._checks.keys() - self._tasks.keys():
            self._spawn(name)
        if self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat(),
                                                  name=f"gslb-heartbeat-{self.vantage}")

    def update(self, origins: Mapping[str, Origin]) -> None:
        """Apply a reloaded config: stop the tasks of origins removed or whose
        check changed; drop (and forget in the sink) the state of removed
        checks; keep the state of changed ones (``ProbeState.check_changed``);
        start tasks for new or changed checks at once. Call from the event
        loop; before ``start()`` it only records the new origins."""
        new = _checks_of(origins)
        old, self._checks = self._checks, new
        if self._session is None:
            return
        changed = [name for name in old if new.get(name) != old[name]]
        for name in changed:
            self._retire(name)
            if name in new:
                self.state.check_changed(name)
            else:
                self.state.forget(name)
                self.sink.forget(name, self.vantage)
        for name in new:
            if name not in self._tasks:
                self._spawn(name)
        log.info("prober %s reloaded: %d checked origins (%d added, %d removed, %d changed)",
                 self.vantage, len(new), len(new.keys() - old.keys()),
                 len(old.keys() - new.keys()), len(new.keys() & set(changed)))

    async def stop(self) -> None:
        """Cancel and await every task, then close the HTTP session."""
        for name in list(self._tasks):
            self._retire(name)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._retired.add(self._heartbeat)
            self._heartbeat = None
        retired, self._retired = self._retired, set()
        await asyncio.gather(*retired, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _spawn(self, name: str) -> None:
        self._tasks[name] = asyncio.create_task(self._run(name, self._checks[name]),
                                                name=f"gslb-probe-{self.vantage}-{name}")

    def _retire(self, name: str) -> None:
        task = self._tasks.pop(name)
        task.cancel()
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    async def _run(self, name: str, check: Check) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self._rng.uniform(0.0, min(check.interval_s, MAX_JITTER_S)))
        next_start = loop.time()
        while True:
            try:
                result = await run_check(check, self._session)
            except Exception as exc:  # a bug in a check must not stop probing
                raise_if_cancelling()
                log.exception("origin %s: %s check raised", name, check.type)
                result = CheckResult(False, None, f"check raised {type(exc).__name__}: {exc}")
            raise_if_cancelling()  # a check may have turned a stop into a failure
            log.debug("origin %s at vantage %s: ok=%s rtt_ms=%s %s", name, self.vantage,
                      result.ok, result.rtt_ms, result.detail)
            report, changed, notify = self.state.observe(name, result, check.rise, check.fall,
                                                         time.time())
            if changed:
                log.log(logging.INFO if report.up else logging.WARNING,
                        "origin %s %s at vantage %s after %d consecutive %s: %s", name,
                        "UP" if report.up else "DOWN", self.vantage, report.consecutive,
                        "successes" if report.up else "failures", result.detail)
            self.sink.report(report, notify)
            next_start = max(next_start + check.interval_s, loop.time())
            await asyncio.sleep(next_start - loop.time())


    async def _beat(self) -> None:
        while True:
            self.sink.heartbeat(self.vantage, time.time())
            await asyncio.sleep(self.heartbeat_interval_s)


def _checks_of(origins: Mapping[str, Origin]) -> dict[str, Check]:
    return {name: o.check for name, o in origins.items() if o.check is not None}
