"""The in-memory health store: reports, generation, vantages, logs, waits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gslb.health.memory import MemoryHealth
from gslb.health.view import HealthView
from gslb.probe.checks import CheckResult

OK = CheckResult(True, 1.5, "status 200")
REFUSED = CheckResult(False, None, "connection refused")


def test_is_a_health_view_and_unknown_origins_are_up() -> None:
    store: HealthView = MemoryHealth()
    assert store.is_up("nowhere") and store.generation == 0


def test_one_vantage_goes_down_after_fall_and_up_after_rise(
        caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryHealth()
    caplog.set_level(logging.INFO, logger="gslb.health")
    assert store.report("london", "local", REFUSED, 2, 2) is False
    assert store.is_up("london") and store.generation == 0
    assert store.report("london", "local", REFUSED, 2, 2) is True
    assert not store.is_up("london") and store.generation == 1
    assert store.report("london", "local", REFUSED, 2, 2) is False
    assert store.report("london", "local", OK, 2, 2) is False
    assert store.report("london", "local", OK, 2, 2) is True
    assert store.is_up("london") and store.generation == 2
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING,
         "origin london DOWN at vantage local after 2 consecutive failures: connection refused"),
        (logging.INFO,
         "origin london UP at vantage local after 2 consecutive successes: status 200"),
    ]


def test_snapshot_reports_each_vantage() -> None:
    store = MemoryHealth()
    store.report("london", "local", OK, 2, 2)
    store.report("london", "local", REFUSED, 2, 2)
    snap = store.snapshot()
    assert set(snap) == {"london"}
    status = snap["london"]
    assert status.up is True
    v = status.vantages["local"]
    assert (v.up, v.consecutive, v.last_ok, v.rtt_ms, v.detail) == (
        True, 1, False, None, "connection refused")
    assert v.checked_at > 1_600_000_000  # epoch seconds


def test_vantages_combine_by_majority() -> None:
    store = MemoryHealth()
    for vantage in ("eu", "us", "ap"):
        store.report("x", vantage, OK, 1, 1)
    assert store.report("x", "eu", REFUSED, 1, 1) is False  # 1 of 3 down
    assert store.is_up("x")
    assert store.report("x", "us", REFUSED, 1, 1) is True  # 2 of 3 down
    assert not store.is_up("x") and store.generation == 1
    assert store.report("x", "eu", OK, 1, 1) is True
    assert store.is_up("x")


def test_a_tie_counts_as_up() -> None:
    store = MemoryHealth()
    store.report("x", "eu", OK, 1, 1)
    store.report("x", "us", REFUSED, 1, 1)
    assert store.is_up("x")


def test_reset_and_set_origins_drop_state() -> None:
    store = MemoryHealth()
    store.report("a", "local", REFUSED, 1, 1)
    store.report("b", "local", REFUSED, 1, 1)
    assert store.generation == 2
    assert store.reset("a", "local") is True
    assert store.is_up("a") and "a" not in store.snapshot()
    store.set_origins(["a"])
    assert store.is_up("b") and store.snapshot() == {} and store.generation == 4
    assert store.reset("nobody", "local") is False


def test_changed_thresholds_apply_to_kept_state() -> None:
    store = MemoryHealth()
    store.report("a", "local", REFUSED, 2, 3)
    assert store.report("a", "local", REFUSED, 2, 2) is True


async def test_wait_for_wakes_on_report_and_times_out() -> None:
    store = MemoryHealth()
    waiter = asyncio.create_task(store.wait_for(lambda: not store.is_up("a"), 2.0))
    await asyncio.sleep(0)
    store.report("a", "local", REFUSED, 1, 1)
    await waiter
    with pytest.raises(TimeoutError):
        await store.wait_for(lambda: store.is_up("a"), 0.05)
