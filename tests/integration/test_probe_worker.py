"""The embedded prober end to end: real origins, real checks, real timing.

Timing bound: an origin that fails is out of answers within
``interval × fall + timeout`` seconds (the worst case, see docs/checks.md)
plus ``SLACK_S`` for event-loop scheduling on a busy test machine.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gslb.config.model import Check, Origin
from gslb.health.view import QuorumView
from gslb.probe.worker import Prober
from tests.conftest import FakeOrigin

MakeOrigin = Callable[..., Awaitable[FakeOrigin]]

INTERVAL_S, TIMEOUT_S, RISE, FALL = 0.2, 0.15, 2, 2
SLACK_S = 0.5
DETECT_S = INTERVAL_S * FALL + TIMEOUT_S + SLACK_S
RECOVER_S = INTERVAL_S * RISE + TIMEOUT_S + SLACK_S


def origin(name: str, port: int, **kw: Any) -> Origin:
    check = Check(**{"type": "http", "target": "127.0.0.1", "port": port,
                     "interval_s": INTERVAL_S, "timeout_s": TIMEOUT_S,
                     "rise": RISE, "fall": FALL, **kw})
    return Origin(name, ipv4=("127.0.0.1",), check=check)


def reported(store: QuorumView, name: str, ok: bool | None = None) -> Callable[[], bool]:
    """Predicate: ``name`` has a report (whose last result is ``ok``, if given)."""
    def predicate() -> bool:
        status = store.snapshot().get(name)
        return status is not None and (ok is None or status.reports["local"].last_ok is ok)
    return predicate


def probe_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("gslb-probe-")]


async def timed_wait(store: QuorumView, predicate: Callable[[], bool], bound_s: float) -> float:
    start = time.monotonic()
    await store.wait_for(predicate, bound_s)
    return time.monotonic() - start


@pytest.mark.parametrize("failure", ["status", "stopped", "timeout"])
async def test_origin_leaves_after_fall_and_returns_after_rise(
        fake_origin: MakeOrigin, failure: str) -> None:
    web = await fake_origin()
    store = QuorumView()
    prober = Prober({"web": origin("web", web.port)}, store, rng=random.Random(1))
    await prober.start()
    try:
        await store.wait_for(lambda: reported(store, "web", ok=True)()
                             and store.snapshot()["web"].reports["local"].up is True, 2.0)
        if failure == "status":
            web.status = 503
        elif failure == "stopped":
            await web.stop()
        else:
            web.delay_s = 1.0
        took = await timed_wait(store, lambda: not store.is_up("web"), DETECT_S)
        assert took <= DETECT_S
        status = store.snapshot()["web"].reports["local"]
        assert (status.up, status.consecutive, status.last_ok) == (False, FALL, False)
        web.status, web.delay_s = 200, 0.0
        await web.start()
        took = await timed_wait(store, lambda: store.is_up("web"), RECOVER_S)
        assert took <= RECOVER_S
        assert store.snapshot()["web"].reports["local"].consecutive == RISE
        assert store.generation == 2
    finally:
        await prober.stop()


async def test_tcp_origin(fake_origin: MakeOrigin) -> None:
    web = await fake_origin()
    store = QuorumView()
    prober = Prober({"t": origin("t", web.port, type="tcp")}, store)
    await prober.start()
    try:
        await store.wait_for(reported(store, "t", ok=True), 2.0)
        assert store.snapshot()["t"].reports["local"].rtt_ms > 0  # type: ignore[operator]
        await web.stop()
        await store.wait_for(lambda: not store.is_up("t"), DETECT_S)
        assert store.snapshot()["t"].reports["local"].detail == "connection refused"
    finally:
        await prober.stop()


async def test_origins_without_a_check_are_not_probed() -> None:
    store = QuorumView()
    prober = Prober({"plain": Origin("plain", ipv4=("192.0.2.1",))}, store)
    await prober.start()
    assert prober.running == frozenset() and probe_tasks() == []
    await prober.stop()
    assert store.is_up("plain")


async def test_a_raising_check_counts_as_failure_and_probing_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="gslb.probe")
    store = QuorumView()
    bogus = origin("b", 1, type="bogus")  # no check function: run_check raises KeyError
    prober = Prober({"b": bogus}, store)
    await prober.start()
    try:
        await store.wait_for(lambda: not store.is_up("b"), DETECT_S)
        assert store.snapshot()["b"].reports["local"].detail == "check raised KeyError: 'bogus'"
        await store.wait_for(
            lambda: store.snapshot()["b"].reports["local"].consecutive > FALL, DETECT_S)
        assert "b" in prober.running and not probe_tasks()[0].done()
        assert any("check raised" in r.getMessage() for r in caplog.records)
    finally:
        await prober.stop()


async def test_update_keeps_unchanged_state_and_restarts_changed_checks(
        fake_origin: MakeOrigin, refused_port: int) -> None:
    web = await fake_origin()
    store = QuorumView()
    dead, alive = origin("dead", refused_port), origin("alive", web.port)
    prober = Prober({"dead": dead, "alive": alive}, store)
    await prober.start()
    try:
        await store.wait_for(lambda: not store.is_up("dead"), DETECT_S)
        await store.wait_for(reported(store, "alive"), 2.0)
        dead_task = next(t for t in probe_tasks() if t.get_name().endswith("-dead"))

        # unchanged "dead" keeps its state and task; "alive" removed; "new" added
        new = origin("new", web.port, type="tcp")
        prober.update({"dead": dead, "new": new})
        assert not store.is_up("dead") and "alive" not in store.snapshot()
        assert prober.running == {"dead", "new"} and dead_task in probe_tasks()
        await store.wait_for(reported(store, "new", ok=True), 2.0)

        # "dead" now checks the live origin: its state carries on (down) until
        # rise successes of the new check
        prober.update({"dead": origin("dead", web.port), "new": new})
        assert not store.is_up("dead") and "dead" in store.snapshot()
        await store.wait_for(reported(store, "dead", ok=True), 2.0)
        assert not store.is_up("dead")  # one success of RISE
        await store.wait_for(lambda: store.is_up("dead"), 2.0)
        assert store.snapshot()["dead"].reports["local"].consecutive == RISE
        assert dead_task.cancelled()
    finally:
        await prober.stop()


async def test_stop_leaves_no_pending_tasks_and_closes_the_session(
        fake_origin: MakeOrigin) -> None:
    web = await fake_origin()
    web.delay_s = 1.0  # stop while checks are in flight
    store = QuorumView()
    prober = Prober({f"o{i}": origin(f"o{i}", web.port) for i in range(5)}, store,
                    rng=random.Random(0))
    await prober.start()
    await asyncio.sleep(0)
    prober.update({f"o{i}": origin(f"o{i}", web.port) for i in range(3)})
    session = prober._session
    await prober.stop()
    assert probe_tasks() == [] and prober.running == frozenset()
    assert session is not None and session.closed
