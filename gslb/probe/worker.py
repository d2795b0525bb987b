"""The embedded prober: one asyncio task per checked origin.

Each task loops forever: run the origin's check, report the result to the
store (which owns rise/fall), then wait so that checks *start* every
``interval_s`` seconds (the time the check took is subtracted; a check
that overruns its interval is followed at once, without catching up on
missed starts). The first check of each origin waits a random jitter in
``[0, min(interval_s, 1))`` seconds so that origins loaded together do not
all fire at once. A check that raises (a bug, never an origin failure)
counts as a failure, is logged, and never stops the task.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping

import aiohttp

from gslb.config.model import Check, Origin
from gslb.health.memory import MemoryHealth
from gslb.health.state import CheckResult
from gslb.probe.checks import run_check
from gslb.probe.checks.http import make_session

log = logging.getLogger("gslb.probe")

MAX_JITTER_S = 1.0
"""Upper bound (seconds) of the random delay before an origin's first check."""


class Prober:
    """Checks ``origins`` (those with a ``check``) from ``vantage`` and
    reports into ``store``.

    ``start()`` launches the tasks; ``update(origins)`` applies a reloaded
    config (new, removed and changed checks; the state of origins whose
    check is unchanged is kept, the state of a changed check starts afresh);
    ``stop()`` cancels and awaits every task and closes the HTTP session.
    ``rng`` makes the jitter reproducible in tests.
    """

    def __init__(self, origins: Mapping[str, Origin], store: MemoryHealth,
                 vantage: str = "local", rng: random.Random | None = None) -> None:
        self.store = store
        self.vantage = vantage
        self._rng = rng or random.Random()
        self._checks = _checks_of(origins)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    @property
    def running(self) -> frozenset[str]:
        """Names of the origins being checked now."""
        return frozenset(self._tasks)

    async def start(self) -> None:
        """Open the shared HTTP session and start one task per checked origin."""
        if self._session is None:
            self._session = make_session()
        self.store.set_origins(self._checks)
        for name in self._checks.keys() - self._tasks.keys():
            self._spawn(name)

    def update(self, origins: Mapping[str, Origin]) -> None:
        """Apply a reloaded config: stop tasks of origins removed or whose
        check changed, drop their state, start tasks for new or changed
        checks. Call from the event loop; before ``start()`` it only records
        the new origins."""
        new = _checks_of(origins)
        old, self._checks = self._checks, new
        if self._session is None:
            return
        changed = [name for name in old if new.get(name) != old[name]]
        for name in changed:
            self._retire(name)
        self.store.set_origins(new)
        for name in changed:
            if name in new:
                self.store.reset(name, self.vantage)
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
                log.exception("origin %s: %s check raised", name, check.type)
                result = CheckResult(False, None, f"check raised {type(exc).__name__}: {exc}")
            log.debug("origin %s at vantage %s: ok=%s rtt_ms=%s %s", name, self.vantage,
                      result.ok, result.rtt_ms, result.detail)
            self.store.report(name, self.vantage, result, check.rise, check.fall)
            next_start = max(next_start + check.interval_s, loop.time())
            await asyncio.sleep(next_start - loop.time())


def _checks_of(origins: Mapping[str, Origin]) -> dict[str, Check]:
    return {name: o.check for name, o in origins.items() if o.check is not None}
