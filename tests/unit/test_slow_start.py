"""Slow start and timed drains (docs/steering.md "Slow start and timed
drains"): shares measured at several points of the ramp, by an injected
clock (never a sleep); the ramp reported as ``Basis.RAMP``; the worker
mirror gives the same factors; the config keys and the drain record."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import Origin, Pool, slow_starts
from gslb.errors import ConfigError
from gslb.health.overrides import DrainedView, Override, Overrides
from gslb.health.state import VantageReport
from gslb.health.view import SLOW_START_FLOOR, QuorumView
from gslb.steering import Steering
from gslb.steering.base import Basis, Client
from gslb.workers.messages import snapshot_of
from gslb.workers.worker import MirrorView

T0 = 1000.0
SAMPLES = 2000
#: Shares are checked within this of what the weights say (2,000 draws: one
#: standard deviation is at most 1.1 points, so this is over 4).
TOLERANCE = 0.05


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rep(origin: str, up: bool, at: float) -> VantageReport:
    return VantageReport(origin, "v", up, 1, up, 5.0, None, "x", at)


def setup(policy: str = "weighted", slow_start: float | None = 10.0,
          origin_slow: float | None = None) -> tuple[Steering, DrainedView, QuorumView,
                                                     Overrides, Clock]:
    """Two origins, weight 1:1, in one pool (one tier for failover), both
    checked and decided up at ``T0``."""
    clock = Clock()
    origins = {"a": Origin("a", ("192.0.2.1",)),
               "b": Origin("b", ("192.0.2.2",), slow_start_s=origin_slow)}
    pool = Pool("web", policy, ("a", "b"), (("a", "b"),), slow_start_s=slow_start)
    quorum = QuorumView(1, 1e9, clock=clock)
    quorum.set_origins(("a", "b"), ("v",))
    quorum.set_slow_start(slow_starts(origins, {"web": pool}))
    for o in ("a", "b"):
        quorum.apply(rep(o, True, clock.now))
    overrides = Overrides(clock=clock)
    return (Steering({"web": pool}, origins, random.Random(7)), DrainedView(quorum, overrides),
            quorum, overrides, clock)


def share_of_b(steering: Steering, view: DrainedView) -> tuple[float, int]:
    """The share of answers that are b over ``SAMPLES`` choices, and the
    basis of every choice or'ed together."""
    counts: Counter[str] = Counter()
    basis = 0
    for _ in range(SAMPLES):
        choice = steering.choose("web", 4, Client("198.51.100.1"), view)
        counts[choice.addresses[0]] += 1
        basis |= choice.basis
    return counts["192.0.2.2"] / SAMPLES, basis


def comes_back(quorum: QuorumView, clock: Clock) -> None:
    """b goes (decided) down, then up again at ``T0`` + 1."""
    quorum.apply(rep("b", False, clock.now))
    clock.now += 1
    quorum.apply(rep("b", True, clock.now))


@pytest.mark.parametrize("policy", ["weighted", "failover"])
def test_slow_start_share_rises_linearly_from_the_floor(policy: str) -> None:
    steering, view, quorum, _, clock = setup(policy)
    assert not view.ramping  # up from the start: no ramp
    comes_back(quorum, clock)
    start = clock.now
    for elapsed in (0.0, 2.5, 5.0, 7.5, 10.0, 30.0):
        clock.now = start + elapsed
        factor = min(1.0, max(SLOW_START_FLOOR, elapsed / 10))
        assert view.weight_factor("b") == pytest.approx(factor)
        share, basis = share_of_b(steering, view)
        expected = factor / (1 + factor)
        assert abs(share - expected) <= TOLERANCE, (elapsed, share, expected)
        assert bool(basis & Basis.RAMP) == (factor < 1), elapsed
        assert basis & Basis.DRAW
    assert not view.ramping and quorum.rising() == {}


def test_no_ramp_at_start_nor_without_slow_start() -> None:
    steering, view, quorum, _, clock = setup(slow_start=None)
    comes_back(quorum, clock)
    assert not view.ramping and view.weight_factor("b") == 1.0
    share, basis = share_of_b(steering, view)
    assert abs(share - 0.5) <= TOLERANCE and not basis & Basis.RAMP
    # unknown at start, answered as up, then decided up: no ramp either
    clock2 = Clock()
    fresh = QuorumView(1, 1e9, clock=clock2)
    fresh.set_origins(("b",), ("v",))
    fresh.set_slow_start({"b": 10.0})
    fresh.apply(rep("b", True, clock2.now))
    assert not fresh.ramping and fresh.weight_factor("b") == 1.0


def test_origin_slow_start_overrides_the_pool() -> None:
    _, view, quorum, _, clock = setup(slow_start=100.0, origin_slow=4.0)
    comes_back(quorum, clock)
    clock.now += 2
    assert view.weight_factor("b") == pytest.approx(0.5)
    clock.now += 2
    assert not view.ramping
    origins = {"a": Origin("a", slow_start_s=None), "b": Origin("b", slow_start_s=3.0)}
    pools = {"p": Pool("p", "weighted", ("a", "b"), (("a", "b"),), slow_start_s=5.0),
             "q": Pool("q", "weighted", ("a",), (("a",),), slow_start_s=8.0),
             "r": Pool("r", "weighted", ("a", "b"), (("a", "b"),))}
    assert slow_starts(origins, pools) == {"a": 8.0, "b": 3.0}


def test_going_down_again_ends_the_ramp() -> None:
    _, view, quorum, _, clock = setup()
    comes_back(quorum, clock)
    assert view.ramping
    quorum.apply(rep("b", False, clock.now + 1))
    assert not quorum.ramping and quorum.weight_factor("b") == 1.0


def test_timed_drain_share_falls_to_zero_then_drained() -> None:
    steering, view, _, overrides, clock = setup(slow_start=None)
    generation = view.generation
    overrides.apply(Override("b", "deploy", "test", clock.now, ramp_s=10.0))
    assert overrides.get("b") is not None and not overrides.is_drained("b")
    start = clock.now
    for elapsed in (0.0, 2.5, 5.0, 7.5, 9.5):
        clock.now = start + elapsed
        factor = 1 - elapsed / 10
        share, basis = share_of_b(steering, view)
        expected = factor / (1 + factor)
        assert abs(share - expected) <= TOLERANCE, (elapsed, share, expected)
        assert basis & Basis.RAMP
    clock.now = start + 10
    moved = view.generation
    assert not view.ramping  # the ramp is over: the drain takes effect, generation moves
    assert view.generation > moved > generation
    assert overrides.is_drained("b") and not view.is_up("b")
    share, basis = share_of_b(steering, view)
    assert share == 0.0 and not basis & Basis.RAMP


def test_ramping_down_to_nothing_still_answers_when_alone() -> None:
    steering, view, quorum, overrides, clock = setup(slow_start=None)
    quorum.apply(rep("a", False, clock.now))
    overrides.apply(Override("b", "deploy", "test", clock.now, ramp_s=10.0))
    clock.now += 9.999
    choice = steering.choose("web", 4, Client("198.51.100.1"), view)
    assert choice.addresses == ("192.0.2.2",) and choice.basis & Basis.RAMP


def test_drain_record_carries_the_ramp() -> None:
    drain = Override("b", "r", "w", 5.0, 99.0, 30.0)
    assert Override.from_fields("b", drain.to_fields()) == drain
    plain = Override("b", "r", "w", 5.0)
    assert "ramp_s" not in plain.to_fields()  # signed as before
    assert Override.from_fields("b", plain.to_fields()) == plain


def test_overrides_file_keeps_the_ramp(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "drains.json"
    first = Overrides(path, clock=clock)
    first.apply(Override("b", "r", "w", clock.now, ramp_s=30.0))
    again = Overrides(path, clock=clock)
    assert again.load_file() == 1
    assert again.ramping and again.weight_factor("b") == pytest.approx(1.0)
    clock.now += 15
    assert again.weight_factor("b") == pytest.approx(0.5)


def test_worker_mirror_gives_the_same_factors() -> None:
    _, view, quorum, overrides, clock = setup()
    comes_back(quorum, clock)
    overrides.apply(Override("a", "r", "w", clock.now, ramp_s=20.0))
    snap = snapshot_of(view, overrides.is_drained, ("a", "b"), (), quorum.rising(),
                       overrides.ramps())
    assert snap.ramp_until == pytest.approx(clock.now + 20)
    mirror = MirrorView(snap)
    for elapsed in (0.0, 3.0, 9.0, 15.0):
        now = clock.now + elapsed
        for origin in ("a", "b"):
            assert mirror.weight_factor(origin, now) == pytest.approx(
                view.weight_factor(origin, now))
    quiet = snapshot_of(view, overrides.is_drained, ("a", "b"), ())
    assert quiet.ramp_until == 0.0 and not MirrorView(quiet).ramping


ZONE = """\
zones:
  example.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 30, NS: ns1}
"""


@pytest.mark.parametrize(("text", "line", "key", "message"), [
    ("origins:\n  a: {ipv4: 192.0.2.1, slow_start: 0}\n"
     "pools:\n  p: {policy: weighted, origins: [a]}\n",
     2, "origins.a.slow_start", "must be above 0 seconds"),
    ("origins:\n  a: {ipv4: 192.0.2.1}\n"
     "pools:\n  p:\n    policy: weighted\n    origins: [a]\n    slow_start: soon\n",
     7, "pools.p.slow_start", "expected a number of seconds"),
])
def test_bad_slow_start_says_file_line_and_key(tmp_path: Path, text: str, line: int, key: str,
                                               message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + ZONE)
    with pytest.raises(ConfigError) as info:
        load([path])
    prefix = f"{path}:{line}: {key}: "
    assert any(r.startswith(prefix) and message in r for r in info.value.reasons), \
        info.value.reasons


def test_slow_start_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("origins:\n  a: {ipv4: 192.0.2.1, slow_start: 5}\n"
                    "  b: {ipv4: 192.0.2.2}\n"
                    "pools:\n  p: {policy: weighted, origins: [a, b], slow_start: 30}\n" + ZONE)
    config = load([path])
    assert config.origins["a"].slow_start_s == 5 and config.pools["p"].slow_start_s == 30
    assert slow_starts(config.origins, config.pools) == {"a": 5, "b": 30}


def test_slow_start_in_a_hash_pool_moves_only_networks_to_the_ramping_member() -> None:
    """``hash`` scales a ramping member's weight too: its share of client
    networks rises with the factor, and a network it has taken stays with
    it as the ramp goes on (rendezvous hashing moves networks only to or
    from the member whose weight moves); the answers report ``RAMP``."""
    steering, view, quorum, _, clock = setup("hash")
    nets = [f"10.{i // 256}.{i % 256}.0" for i in range(SAMPLES)]

    def on_b() -> tuple[set[str], int]:
        got, basis = set(), 0
        for net in nets:
            choice = steering.choose("web", 4, Client("198.51.100.1", net, 24, 4), view)
            basis |= choice.basis
            if choice.addresses == ("192.0.2.2",):
                got.add(net)
        return got, basis

    comes_back(quorum, clock)
    start, before = clock.now, set()
    for elapsed in (0.0, 2.5, 5.0, 7.5, 10.0):
        clock.now = start + elapsed
        factor = min(1.0, max(SLOW_START_FLOOR, elapsed / 10))
        now, basis = on_b()
        assert abs(len(now) / SAMPLES - factor / (1 + factor)) <= TOLERANCE, (elapsed, len(now))
        assert before <= now, elapsed  # none taken away from it while it rises
        assert bool(basis & Basis.RAMP) == (factor < 1) and basis & Basis.CLIENT
        before = now
