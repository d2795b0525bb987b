"""``failover`` policy: ordered tiers, weight within a tier, family filtering."""

from __future__ import annotations

import random

import pytest

from gslb.config.model import Origin, Pool
from gslb.steering.base import Client
from gslb.steering.failover import FailoverPolicy
from tests.unit.fakes import Health

ORIGINS = {
    "london": Origin("london", ("192.0.2.11",), ("2001:db8::11",)),
    "stockholm": Origin("stockholm", ("192.0.2.12",), ("2001:db8::12",)),
    "virginia": Origin("virginia", ("192.0.2.13",)),
}
V4 = tuple(ORIGINS.values())
V6 = (ORIGINS["london"], ORIGINS["stockholm"])
TIERS = (("london",), ("stockholm", "virginia"))
CLIENT = Client("198.51.100.1", "81.2.69.0", 24, 4)


def pool(max_answers: int = 1) -> Pool:
    return Pool("db", "failover", tuple(ORIGINS), TIERS, max_answers=max_answers)


@pytest.mark.parametrize(
    ("down", "candidates", "max_answers", "expect", "reason"),
    [
        ((), V4, 1, [{"london"}], "tier 1"),
        (("stockholm",), V4, 1, [{"london"}], "tier 1"),
        (("london",), V4, 1, [{"stockholm"}, {"virginia"}], "tier 2"),
        (("london",), V4, 2, [{"stockholm", "virginia"}], "tier 2"),
        (("london", "stockholm"), V4, 1, [{"virginia"}], "tier 2"),
        (("london", "stockholm", "virginia"), V4, 1, [set()], "no healthy origin in any tier"),
        # AAAA: virginia has no IPv6 address, so it is not a candidate.
        (("london",), V6, 2, [{"stockholm"}], "tier 2"),
        (("london", "stockholm"), V6, 1, [set()], "no healthy origin in any tier"),
    ],
)
def test_tiers(
    down: tuple[str, ...], candidates: tuple[Origin, ...], max_answers: int,
    expect: list[set[str]], reason: str,
) -> None:
    health = Health(**dict.fromkeys(down, False))
    rng = random.Random(5)
    seen = []
    for _ in range(40):
        sel = FailoverPolicy().select(pool(max_answers), candidates, CLIENT, health, rng)
        assert sel.scope == 0
        assert sel.reason == reason
        seen.append({o.name for o in sel.members})
    assert {frozenset(s) for s in seen} == {frozenset(e) for e in expect}


def test_tier_of_only_non_candidates_is_skipped() -> None:
    p = Pool("db", "failover", ("virginia", "london"), (("virginia",), ("london",)))
    sel = FailoverPolicy().select(p, V6, CLIENT, Health(), random.Random(0))
    assert [o.name for o in sel.members] == ["london"]
    assert sel.reason == "tier 2"
