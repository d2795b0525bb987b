"""Drain overrides: the local store, expiry, the file, and the view wrapper."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from gslb.health.overrides import DrainedView, Override, Overrides
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_drain_and_lift_move_the_generation_and_call_back():
    overrides = Overrides(clock=Clock())
    seen = []
    overrides.on_change = lambda d, drained: seen.append((d.origin, drained))
    assert overrides.apply(Override("a", "why", "me", 1000.0))
    assert not overrides.apply(Override("a", "why", "me", 1000.0))  # same: no change
    assert overrides.is_drained("a") and not overrides.is_drained("b")
    assert overrides.generation == 1
    assert overrides.lift("a", "me")
    assert not overrides.lift("a", "me")
    assert overrides.generation == 2 and seen == [("a", True), ("a", False)]


def test_an_expired_drain_counts_as_lifted():
    clock = Clock()
    overrides = Overrides(clock=clock)
    assert not overrides.apply(Override("a", "r", "w", 990.0, expires_at=999.0))  # past
    overrides.apply(Override("a", "r", "w", 1000.0, expires_at=1010.0))
    assert overrides.is_drained("a") and [d.origin for d in overrides.all()] == ["a"]
    clock.now = 1010.0
    assert not overrides.is_drained("a") and overrides.all() == []
    assert overrides.get("a") is None  # lifted for readers even before a timer removes it


async def test_the_timer_lifts_an_expiring_drain():
    overrides = Overrides()
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert overrides.apply(Override("a", "r", "w", 0.0, expires_at=time.time() + 0.1))
    await overrides.wait_for(lambda: overrides.all() == [] and overrides.generation == 2, 2)
    assert 0.05 < loop.time() - start < 1.0


def test_replace_makes_the_set_exact():
    overrides = Overrides(clock=Clock())
    overrides.apply(Override("a", "r", "w", 1.0))
    overrides.apply(Override("b", "r", "w", 1.0))
    assert overrides.replace([Override("b", "r", "w", 1.0), Override("c", "r", "w", 2.0)]) == 2
    assert [d.origin for d in overrides.all()] == ["b", "c"]


def test_fields_round_trip():
    for drain in (Override("a", "r", "w", 1.5), Override("a", "r", "w", 1.5, 9.25)):
        assert Override.from_fields("a", drain.to_fields()) == drain
    with pytest.raises(KeyError):
        Override.from_fields("a", {"reason": "r"})


def test_drains_persist_in_the_file(tmp_path):
    path = tmp_path / "drains.json"
    clock = Clock()
    first = Overrides(path, clock=clock)
    first.apply(Override("a", "r", "w", 1000.0))
    first.apply(Override("b", "r", "w", 1000.0, expires_at=1005.0))
    assert {d["origin"] for d in json.loads(path.read_text())["drains"]} == {"a", "b"}
    clock.now = 1006.0
    second = Overrides(path, clock=clock)
    assert second.load_file() == 1 and [d.origin for d in second.all()] == ["a"]
    assert Overrides(tmp_path / "none.json").load_file() == 0


def test_drained_view_wraps_the_health_view():
    health = QuorumView(stale_after_s=60)
    overrides = Overrides()
    view = DrainedView(health, overrides)
    gens = [view.generation]
    health.apply(VantageReport("a", "local", False, 3, False, 5.0, 4.0, "refused", time.time()))
    gens.append(view.generation)
    overrides.apply(Override("b", "r", "w", 1.0))
    gens.append(view.generation)
    assert gens[0] < gens[1] < gens[2]
    assert not view.is_up("a") and not view.is_up("b") and view.is_up("c")
    assert view.srtt_ms("a", "local") is None  # a down vantage report gives no RTT
    health.apply(VantageReport("c", "local", True, 3, True, 5.0, 4.5, "", time.time()))
    assert view.srtt_ms("c", "local") == 4.5


def test_fallback_all_keeps_drained_origins_out_unless_every_one_is_drained():
    from gslb.steering.fallback import everyone_up

    overrides = Overrides()
    view = DrainedView(QuorumView(stale_after_s=60), overrides)
    overrides.apply(Override("b", "r", "w", 1.0))
    everyone = everyone_up(view)
    assert everyone.is_up("a") and not everyone.is_up("b")
    assert everyone.srtt_ms("a", "local") is None
