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
    """A view whose clock is ``Clock``; vantages are those heard from unless
    ``declared``."""
    clock = Clock()
    return QuorumView(quorum, stale, clock=clock), clock


def declared(v: QuorumView, n: int, origins: tuple[str, ...] = ("o",)) -> list[str]:
    names = [f"v{i}" for i in range(n)]
    v.set_origins(origins, names)
    return names


def expected(initial: bool, fresh: int, ups: int, need: int) -> tuple[bool, str | None]:
    """docs/checks.md "Several vantages: quorum", written out independently."""
    downs = fresh - ups
    if fresh < need:
        return initial, "fresh"
    if ups >= need and downs >= need:
        return (initial, "split") if ups == downs else (ups > downs, None)
    if ups >= need:
        return True, None
    if downs >= need:
        return False, None
    return initial, "split"


TABLE = [(d, f, q) for d in (1, 2, 3, 5) for f in (1, 2, 3, 5) if f <= d
         for q in (None, *range(1, d + 1))]


@pytest.mark.parametrize(("declared_n", "fresh_n", "quorum"), TABLE)
def test_quorum_table_every_split(declared_n: int, fresh_n: int, quorum: int | None) -> None:
    """Over 1, 2, 3 and 5 fresh vantages (of 1, 2, 3 or 5 declared), every
    quorum and every up/down split, from an up and from a down origin: the
    state changes only when quorum vantages agree, and holds (saying why)
    otherwise."""
    need = quorum if quorum is not None else declared_n // 2 + 1
    for initial in (True, False):
        for ups in range(fresh_n + 1):
            v, clock = view(quorum)
            names = declared(v, declared_n)
            for name in names:  # every vantage agrees: the initial state
                v.apply(rep("o", name, initial, clock.now))
            assert v.is_up("o") is initial
            clock.now += 11  # all stale; the first fresh_n vote again, all at once
            v.replace([rep("o", name, i < ups, clock.now)
                       for i, name in enumerate(names[:fresh_n])],
                      dict.fromkeys(names[:fresh_n], clock.now))
            up, held = expected(initial, fresh_n, ups, need)
            st = v.status("o")
            case = (declared_n, fresh_n, quorum, initial, ups)
            assert (v.is_up("o"), st.held, st.quorum) == (up, held, need), case
            assert v.degraded is (held == "fresh"), case
            if up != initial:  # the property itself: a change needs quorum agreeing votes
                assert (ups if up else fresh_n - ups) >= need, case


def test_one_vantage_cannot_take_an_origin_out_with_quorum_2():
    """The lab case of issue 14: quorum 2 of 3, one probe stopped, one blind."""
    v, clock = view(2)
    declared(v, 3)
    for name in ("v0", "v1", "v2"):
        v.apply(rep("o", name, True, clock.now))
    clock.now += 11  # v2 stopped: stale
    v.apply(rep("o", "v0", False, clock.now))  # blind
    v.apply(rep("o", "v1", True, clock.now))
    v.refresh()
    assert v.is_up("o") and v.status("o").held == "split"
    clock.now += 11  # v1 stopped too: v0 alone
    v.apply(rep("o", "v0", False, clock.now))
    v.refresh()
    assert v.is_up("o") and v.status("o").held == "fresh" and v.degraded


@pytest.mark.parametrize("unknown_up", [True, False])
def test_unknown_origins_follow_the_policy(unknown_up):
    clock = Clock()
    v = QuorumView(None, 10.0, clock=clock, unknown_up=unknown_up)
    v.set_origins(["o", "p"], ["a"])
    assert v.is_up("o") is unknown_up and v.status("o").unknown
    assert v.is_up("never-checked")  # no check: always up
    v.apply(VantageReport("o", "a", None, 1, True, 5.0, 5.0, "ok", clock.now))
    assert v.is_up("o") is unknown_up  # an unknown vote counts as the policy says
    v.apply(rep("o", "a", False, clock.now + 0.1))
    assert not v.is_up("o") and not v.status("o").unknown
    v.apply(rep("p", "a", True, clock.now))
    assert v.is_up("p")


def test_a_silent_vantage_stops_counting_after_stale_after(caplog):
    caplog.set_level(logging.INFO, logger="gslb.health")
    v, clock = view(quorum=1, stale=10.0)
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
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("vantage b stale: not heard from for 11.0 s") for m in messages) == 1
    v.refresh()  # logged once per transition
    assert sum(m.startswith("vantage b stale") for m in
               (r.getMessage() for r in caplog.records)) == 1
    v.heartbeat("b", clock.now)
    assert any(r.getMessage() == "vantage b fresh again after 11.0 s of silence"
               for r in caplog.records)


def test_with_no_fresh_vantage_the_last_known_state_holds(caplog):
    caplog.set_level(logging.WARNING, logger="gslb.health")
    v, clock = view(stale=10.0)
    v.apply(rep("o", "a", False, clock.now))
    assert not v.is_up("o") and not v.degraded
    clock.now += 60
    v.refresh()
    assert not v.is_up("o") and v.degraded  # still down: held
    assert v.status("o").held == "fresh"
    assert sum("holding last known state DOWN" in r.getMessage() for r in caplog.records) == 1
    v.refresh()  # logged once, not per refresh
    assert sum("holding" in r.getMessage() for r in caplog.records) == 1
    v.apply(rep("o", "a", True, clock.now))
    assert v.is_up("o") and not v.degraded


def test_freshness_is_by_the_receivers_clock_and_future_times_are_clamped(caplog):
    caplog.set_level(logging.WARNING, logger="gslb.health")
    v, clock = view(quorum=1, stale=10.0)
    v.heartbeat("a", 1e300)  # a forged or wildly wrong clock
    v.apply(rep("o", "a", False, 1e300))
    assert not v.is_up("o")
    assert v.status("o").reports["a"].checked_at == clock.now  # clamped
    assert any("in the future" in r.getMessage() for r in caplog.records)
    clock.now += 11  # silent: stale by our clock, whatever it claimed
    v.refresh()
    assert v.fresh_vantages() == frozenset() and v.degraded
    v.apply(rep("o", "a", True, clock.now))  # a later honest report is not hidden
    assert v.is_up("o")
    v.heartbeat("b", 1.0)  # a heartbeat dated long ago still means alive now
    assert "b" in v.fresh_vantages()


def test_older_reports_are_ignored():
    v, clock = view()
    v.apply(rep("o", "a", False, clock.now))
    assert v.apply(rep("o", "a", True, clock.now - 1)) is False
    assert not v.is_up("o")


def test_replace_keeps_reports_missing_from_the_load_and_newer_ones():
    v, clock = view(quorum=1)
    v.apply(rep("o", "a", False, clock.now))
    v.apply(rep("o", "b", False, clock.now))
    assert not v.is_up("o")
    # the reload knows only "a", with an older report than ours, and "c"
    changed = v.replace([rep("o", "a", True, clock.now - 5), rep("o", "c", True, clock.now)],
                        {"a": clock.now, "c": clock.now})
    assert v.status("o").reports["a"].up is False  # ours was newer
    assert set(v.status("o").reports) == {"a", "b", "c"}  # b's key expired: kept
    assert changed == 0 and not v.is_up("o")  # 2 down, 1 up
    clock.now += 60
    assert v.replace([], {}) == 0 and not v.is_up("o")  # Redis emptied: still down, held
    assert v.degraded


def test_forget_and_set_origins():
    v, clock = view()
    v.set_origins(["o", "p", "q"])
    v.apply(rep("o", "a", False, clock.now))
    v.apply(rep("p", "a", False, clock.now))
    v.forget("o", "a")
    assert not v.is_up("o")  # decided down; forgetting the report changes nothing
    v.set_origins(["q"])  # o and p lost their check: up
    assert v.is_up("o") and v.is_up("p") and v.snapshot() == {}


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


def test_probe_state_smooths_rtt_and_announces_every_move():
    state = ProbeState("eu", alpha=0.5)
    r, changed, notify = state.observe("o", CheckResult(True, 10.0, "ok"), 1, 2, 1.0)
    assert r.srtt_ms == 10.0 and changed and notify  # unknown to up: announced
    r, _, notify = state.observe("o", CheckResult(True, 10.4, "ok"), 1, 2, 2.0)
    assert r.srtt_ms == pytest.approx(10.2) and notify  # any move: no threshold to compound
    r, _, notify = state.observe("o", CheckResult(True, 10.2, "ok"), 1, 2, 2.5)
    assert r.srtt_ms == pytest.approx(10.2) and not notify  # unchanged
    r, _, notify = state.observe("o", CheckResult(True, 30.0, "ok"), 1, 2, 3.0)
    assert r.srtt_ms == pytest.approx(20.1) and notify
    r, _, notify = state.observe("o", CheckResult(False, None, "refused"), 1, 2, 4.0)
    assert r.srtt_ms == pytest.approx(20.1) and r.up and not notify  # failures keep srtt
    r, changed, notify = state.observe("o", CheckResult(False, None, "refused"), 1, 2, 5.0)
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


def test_probe_state_seeds_from_a_last_report():
    """A restarted probe carries on from its vantage's last report: a down
    origin stays down after a first success, and is not announced again."""
    state = ProbeState("eu")
    state.seed(VantageReport("o", "eu", False, 4, False, None, 9.0, "refused", 1.0), 2, 2)
    r, changed, notify = state.observe("o", CheckResult(False, None, "refused"), 2, 2, 2.0)
    assert (r.up, r.consecutive, changed, notify) == (False, 5, False, False)
    r, changed, _ = state.observe("o", CheckResult(True, 8.0, "ok"), 2, 2, 3.0)
    assert r.up is False and not changed
    state.check_changed("o")  # a reload changed the check: state kept, RTT afresh
    r, changed, _ = state.observe("o", CheckResult(True, 30.0, "ok"), 2, 2, 4.0)
    assert r.up is True and changed and r.srtt_ms == 30.0
    r = VantageReport("o", "eu", None, 1, True, 1.0, 1.0, "ok", 5.0)
    assert VantageReport.from_fields("o", "eu", r.to_fields()) == r
    assert r.to_fields()["up"] == ""


def test_the_key_ttl_has_one_definition():
    """Issue 14 item 9: the probes' key TTL is HealthSettings.key_ttl_s, and
    nothing on the nameserver side must agree with it (no hold time: the
    view keeps reports past expiry)."""
    from gslb.config.model import Config, HealthSettings, Vantage
    from gslb.probe.service import ProbeService

    assert HealthSettings().key_ttl_s == 60.0
    assert HealthSettings(stale_after_s=20.0).key_ttl_s == 120.0
    config = Config({}, {}, {}, vantages={"eu": Vantage("eu")},
                    health=HealthSettings(stale_after_s=15.0))
    probe = ProbeService(config, "eu", "redis://127.0.0.1:1/0")
    assert probe.sink.key_ttl_s == config.health.key_ttl_s == 90.0
