"""``weighted`` policy and weighted sampling: proportions, max_answers, health."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gslb.config.model import Origin, Pool
from gslb.steering.base import Client
from gslb.steering.weighted import WeightedPolicy, pick_weighted
from tests.unit.fakes import Health

LONDON = Origin("london", ("192.0.2.11",), ("2001:db8::11",), weight=3)
VIRGINIA = Origin("virginia", ("192.0.2.13",), weight=1)
STOCKHOLM = Origin("stockholm", ("192.0.2.12",), ("2001:db8::12",), weight=2)
CANDIDATES = (LONDON, VIRGINIA, STOCKHOLM)
ECS_CLIENT = Client("198.51.100.1", "81.2.69.0", 24, 4)


def pool(max_answers: int = 1) -> Pool:
    names = tuple(o.name for o in CANDIDATES)
    return Pool("api", "weighted", names, (names,), max_answers=max_answers)


@pytest.mark.parametrize(
    ("down", "max_answers", "possible", "count"),
    [
        ((), 1, {"london", "virginia", "stockholm"}, 1),
        (("london",), 1, {"virginia", "stockholm"}, 1),
        (("london", "stockholm"), 1, {"virginia"}, 1),
        (("london", "stockholm"), 3, {"virginia"}, 1),
        ((), 2, {"london", "virginia", "stockholm"}, 2),
        ((), 9, {"london", "virginia", "stockholm"}, 3),
        (("london", "virginia", "stockholm"), 1, set(), 0),
    ],
)
def test_up_down_and_max_answers(
    down: tuple[str, ...], max_answers: int, possible: set[str], count: int
) -> None:
    health = Health(**dict.fromkeys(down, False))
    rng = random.Random(7)
    for _ in range(50):
        sel = WeightedPolicy().select(pool(max_answers), CANDIDATES, ECS_CLIENT, health, rng)
        names = [o.name for o in sel.members]
        assert len(names) == count == len(set(names))
        assert set(names) <= possible
        assert sel.scope == 0  # weighted answers do not depend on the client


def test_proportions_follow_weight() -> None:
    rng = random.Random(1)
    p = pool()
    picks = Counter(
        WeightedPolicy().select(p, CANDIDATES, ECS_CLIENT, Health(), rng).members[0].name
        for _ in range(10_000)
    )
    for name, weight in (("london", 3), ("virginia", 1), ("stockholm", 2)):
        assert picks[name] / 10_000 == pytest.approx(weight / 6, abs=0.02)


def test_proportions_among_healthy_only() -> None:
    rng = random.Random(2)
    health = Health(stockholm=False)
    picks = Counter(
        WeightedPolicy().select(pool(), CANDIDATES, ECS_CLIENT, health, rng).members[0].name
        for _ in range(10_000)
    )
    assert set(picks) == {"london", "virginia"}
    assert picks["london"] / 10_000 == pytest.approx(0.75, abs=0.02)


def test_sampling_without_replacement_second_pick() -> None:
    # Given london (3) first, the second is virginia (1) or stockholm (2): 1/3 vs 2/3.
    rng = random.Random(3)
    seconds = Counter(b.name for a, b in (pick_weighted(CANDIDATES, 2, rng) for _ in range(20_000))
                      if a is LONDON)
    total = sum(seconds.values())
    assert seconds["stockholm"] / total == pytest.approx(2 / 3, abs=0.03)


def test_pick_weighted_edges() -> None:
    rng = random.Random(0)
    assert pick_weighted((), 1, rng) == ()
    assert pick_weighted(CANDIDATES, 0, rng) == ()
    assert pick_weighted((VIRGINIA,), 3, rng) == (VIRGINIA,)
    assert sorted(o.name for o in pick_weighted(CANDIDATES, 5, rng)) == [
        "london", "stockholm", "virginia"]


def test_seeded_rng_is_deterministic() -> None:
    def run(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [WeightedPolicy().select(pool(), CANDIDATES, ECS_CLIENT, Health(), rng)
                .members[0].name for _ in range(20)]

    assert run(42) == run(42)


def test_remembered_healthy_set_draws_as_pick_weighted_and_follows_the_generation() -> None:
    import time

    from gslb.health.state import VantageReport
    from gslb.health.view import QuorumView

    many = tuple(Origin(f"o{i}", (f"192.0.2.{i + 1}",), weight=i % 4 + 1) for i in range(100))
    names = tuple(o.name for o in many)
    big = Pool("big", "weighted", names, (names,))
    view = QuorumView()
    policy = WeightedPolicy()
    mine, ref = random.Random(9), random.Random(9)
    for _ in range(2000):  # the same draws as the plain sampler, one for one
        got = policy.select(big, many, ECS_CLIENT, view, mine).members
        assert got == pick_weighted(many, 1, ref)
    view.apply(VantageReport("o99", "local", False, 3, False, None, None, "down", time.time()))
    drawn = {policy.select(big, many, ECS_CLIENT, view, mine).members[0].name
             for _ in range(3000)}
    assert "o99" not in drawn and len(drawn) > 90
