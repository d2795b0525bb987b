"""QuorumView: quorum over fresh vantages, staleness, last known state held,
full reloads; ProbeState: smoothed RTT and when a report is announced."""

from __future__ import annotations

import logging

import pytest

from gslb.health.state import CheckResult, ProbeState, VantageReport
from gslb.health.view import QuorumView


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rep(origin: str, vantage: str, up: bool, at: float, srtt: float | None = None
        ) -> VantageReport:
    return VantageReport(origin, vantage, up, 1, up, 5.0, srtt, "x", at)


def view(quorum: int | None = None, stale: float = 10.0) -> tuple[QuorumView, Clock]:
    clock = Clock()
    return QuorumView(quorum, stale, clock=clock), clock


@pytest.mark.parametrize(
    ("quorum", "votes", "up"),
    [
        (None, (True, True, True), True),
        (None, (True, True, False), True),  # 1 of 3 down: still up (majority 2)
        (None, (True, False, False), False),  # 2 of 3 down: down
        (None, (True, False), False),  # majority of 2 is 2
        (None, (True,), True),
        (None, (False,), False),
        (1, (True, False, False), True),
        (3, (True, True, False), False),
        (3, (True, True), True),  # quorum capped at the fresh vantages
        (2, (False, True), False),
        (2, (True, True, False), True),
    ],
)
def test_quorum_over_fresh_vantages(quorum, votes, up):
    v, clock = view(quorum)
    for i, vote in enumerate(votes):
        v.apply(rep("o", f"v{i}", vote, clock.now))
    assert v.is_up("o") is up


def test_unknown_origins_are_up():
    v, _ = view()
    assert v.is_up("never-reported")


def test_a_silent_vantage_stops_counting_after_stale_after():
    v, clock = view(stale=10.0)
    v.apply(rep("o", "a", True, clock.now))
    v.apply(rep("o", "b", False, clock.now))
    v.apply(rep("o", "c", False, clock.now))
    assert not v.is_up("o")
    clock.now += 5
    v.heartbeat("a", clock.now)  # only "a" stays alive
    clock.now += 6  # b and c: 11 s silent
    gen = v.generation
    assert v.refresh() == 1
    assert v.is_up("o") and v.generation == gen + 1
    assert v.status("o").fresh == ("a",) and v.status("o").stale == ("b", "c")
    assert v.fresh_vantages() == {"a"}


def test_with_no_fresh_vantage_the_last_known_state_holds(caplog):
    caplog.set_level(logging.WARNING, logger="gslb.health")
    v, clock = view(stale=10.0)
    v.apply(rep("o", "a", False, clock.now))
    assert not v.is_up("o") and not v.degraded
    clock.now += 60
    v.refresh()
    assert not v.is_up("o") and v.degraded  # still down: held
    assert v.status("o").quorum == 0
    assert sum("holding last known state DOWN" in r.getMessage() for r in caplog.records) == 1
    v.refresh()  # logged once, not per refresh
    assert sum("holding" in r.getMessage() for r in caplog.records) == 1
    v.apply(rep("o", "a", True, clock.now))
    assert v.is_up("o") and not v.degraded


def test_older_reports_are_ignored():
    v, clock = view()
    v.apply(rep("o", "a", False, clock.now))
    assert v.apply(rep("o", "a", True, clock.now - 1)) is False
    assert not v.is_up("o")


def test_replace_drops_reports_of_vanished_vantages_and_keeps_newer_ones():
    v, clock = view()
    v.apply(rep("o", "a", False, clock.now))
    v.apply(rep("o", "b", False, clock.now))
    assert not v.is_up("o")
    # the reload knows only "a", with an older report than ours, and "c"
    changed = v.replace([rep("o", "a", True, clock.now - 5), rep("o", "c", True, clock.now)],
                        {"a": clock.now, "c": clock.now})
    assert v.status("o").reports["a"].up is False  # ours was newer
    assert set(v.status("o").reports) == {"a", "c"}
    assert changed == 0 and not v.is_up("o")  # a down, c up: 1 of 2 < majority 2


def test_forget_and_set_origins():
    v, clock = view()
    v.apply(rep("o", "a", False, clock.now))
    v.apply(rep("p", "a", False, clock.now))
    v.forget("o", "a")
    assert v.is_up("o")
    v.set_origins(["q"])
    assert v.is_up("p") and v.snapshot() == {}


async def test_wait_for_wakes_on_updates():
    import asyncio

    v, clock = view()
    waiter = asyncio.create_task(v.wait_for(lambda: not v.is_up("o"), 2))
    await asyncio.sleep(0)
    v.apply(rep("o", "a", False, clock.now))
    await waiter
    with pytest.raises(TimeoutError):
        await v.wait_for(lambda: False, 0.05)


def test_report_fields_round_trip():
    r = VantageReport("o", "eu", False, 3, None, None, 12.5, "connection refused", 1234.5)
    assert VantageReport.from_fields("o", "eu", r.to_fields()) == r
    r = VantageReport("o", "eu", True, 1, True, 1.25, 1.5, "status 200", 1.0)
    assert VantageReport.from_fields("o", "eu", r.to_fields()) == r
    with pytest.raises((ValueError, KeyError)):
        VantageReport.from_fields("o", "eu", {"up": "1"})


def test_probe_state_smooths_rtt_and_announces_only_real_moves():
    state = ProbeState("eu", alpha=0.5)
    r, changed, notify = state.observe("o", CheckResult(True, 10.0, "ok"), 2, 2, 1.0)
    assert r.srtt_ms == 10.0 and not changed and notify  # first report: announced
    r, _, notify = state.observe("o", CheckResult(True, 10.4, "ok"), 2, 2, 2.0)
    assert r.srtt_ms == pytest.approx(10.2) and not notify  # < 1 ms and < 10 %
    r, _, notify = state.observe("o", CheckResult(True, 30.0, "ok"), 2, 2, 3.0)
    assert r.srtt_ms == pytest.approx(20.1) and notify
    r, _, notify = state.observe("o", CheckResult(False, None, "refused"), 2, 2, 4.0)
    assert r.srtt_ms == pytest.approx(20.1) and r.up and not notify  # failures keep srtt
    r, changed, notify = state.observe("o", CheckResult(False, None, "refused"), 2, 2, 5.0)
    assert not r.up and changed and notify and r.consecutive == 2
    state.forget("o")
    assert state.origins() == frozenset()


def test_srtt_only_from_fresh_vantages():
    v, clock = view(stale=10.0)
    v.apply(rep("o", "a", True, clock.now, srtt=12.5))
    assert v.srtt_ms("o", "a") == 12.5
    assert v.srtt_ms("o", "b") is None and v.srtt_ms("x", "a") is None
    clock.now += 11
    assert v.srtt_ms("o", "a") is None
