"""All down: fallback all / none / another pool (chained, cyclic), and
logging once per transition."""

from __future__ import annotations

import logging
import random
from types import MappingProxyType

import pytest

from gslb.config.model import Location, Origin, Pool
from gslb.geo import GeoLocation
from gslb.steering import Choice, Client, Steering
from gslb.steering.base import Basis
from gslb.steering.fallback import MAX_FALLBACK_DEPTH
from tests.unit.fakes import Health

ORIGINS = {
    "london": Origin("london", ("192.0.2.11",), ("2001:db8::11",), location=Location(51.5, -0.1)),
    "stockholm": Origin("stockholm", ("192.0.2.12",), ("2001:db8::12",),
                        location=Location(59.3, 18.1)),
    "virginia": Origin("virginia", ("192.0.2.13",), location=Location(38.9, -77.4)),
    "spare": Origin("spare", ("192.0.2.99",)),
}


def mk(name: str, policy: str, *tiers: tuple[str, ...], **kw: object) -> Pool:
    members = tuple(dict.fromkeys(n for t in tiers for n in t))
    return Pool(name, policy, members, tiers, **kw)  # type: ignore[arg-type]


POOLS = {
    p.name: p
    for p in (
        mk("prim", "failover", ("london",), ("stockholm",)),  # fallback all (default)
        mk("db", "failover", ("london",), ("stockholm",), fallback="none"),
        mk("web", "geo", ("london", "stockholm", "virginia"),
           countries=MappingProxyType({"SE": (("stockholm",),)}), fallback="all"),
        mk("chain1", "weighted", ("london",), fallback="chain2"),
        mk("chain2", "weighted", ("stockholm",), fallback="spare"),
        mk("spare", "all", ("spare",), fallback="none"),
        mk("tonone", "weighted", ("london",), fallback="db"),
        mk("cyc_a", "all", ("london",), fallback="cyc_b"),
        mk("cyc_b", "all", ("stockholm",), fallback="cyc_a"),
    )
}
ALL_DOWN = Health(london=False, stockholm=False, virginia=False, spare=False)
SE_CLIENT = Client("198.51.100.1", "81.2.69.0", 24, 4,
                   locator=lambda _ip: GeoLocation("SE", "EU", 59.3, 18.1))


@pytest.mark.parametrize(
    ("pool", "family", "health", "expect"),
    [
        # all: as if every member were up (the failover's tier 1).
        ("prim", 4, ALL_DOWN, Choice(
            "answer", ("192.0.2.11",), 0, "prim", True,
            "no healthy origin in pool prim; fallback to all: tier 1")),
        # all keeps the geo answer and its scope.
        ("web", 4, ALL_DOWN, Choice(
            "answer", ("192.0.2.12",), 24, "web", True,
            "no healthy origin in pool web; fallback to all: country SE tier 1", Basis.CLIENT)),
        # none: SERVFAIL.
        ("db", 4, ALL_DOWN, Choice(
            "servfail", (), 0, "db", True, "no healthy origin in pool db; fallback to none")),
        # Another pool: the first healthy one down the chain answers.
        ("chain1", 4, Health(london=False), Choice(
            "answer", ("192.0.2.12",), 0, "chain2", True,
            "no healthy origin in pool chain1; fallback to pool chain2: weighted among 1 healthy")),
        ("chain1", 4, Health(london=False, stockholm=False), Choice(
            "answer", ("192.0.2.99",), 0, "spare", True,
            "no healthy origin in pool chain1; fallback to pool chain2: "
            "no healthy origin in pool chain2; fallback to pool spare: all 1 healthy")),
        # ...until a pool says none.
        ("chain1", 4, ALL_DOWN, Choice(
            "servfail", (), 0, "spare", True,
            "no healthy origin in pool chain1; fallback to pool chain2: "
            "no healthy origin in pool chain2; fallback to pool spare: "
            "no healthy origin in pool spare; fallback to none")),
        # The fallback pool has no member of the family: NODATA.
        ("chain2", 6, Health(stockholm=False), Choice(
            "nodata", (), 0, "spare", True,
            "no healthy origin in pool chain2; fallback to pool spare: "
            "no IPv6 origin in pool spare")),
        ("tonone", 4, Health(london=False, stockholm=True), Choice(
            "answer", ("192.0.2.12",), 0, "db", True,
            "no healthy origin in pool tonone; fallback to pool db: tier 2")),
    ],
)
def test_fallback_modes(pool: str, family: int, health: Health, expect: Choice) -> None:
    got = Steering(POOLS, ORIGINS).choose(pool, family, SE_CLIENT, health, random.Random(0))
    assert got == expect


def test_healthy_pool_is_not_a_fallback() -> None:
    got = Steering(POOLS, ORIGINS).choose("chain1", 4, SE_CLIENT, Health(), random.Random(0))
    assert (got.pool, got.fallback, got.addresses) == ("chain1", False, ("192.0.2.11",))


def test_cycle_is_cut_by_depth_limit(caplog: pytest.LogCaptureFixture) -> None:
    steering = Steering(POOLS, ORIGINS)
    with caplog.at_level(logging.ERROR, logger="gslb.steering"):
        for _ in range(3):
            got = steering.choose("cyc_a", 4, SE_CLIENT, ALL_DOWN, random.Random(0))
            assert got.kind == "servfail"
            assert got.reason.endswith("chain too long")
            # MAX_FALLBACK_DEPTH fallbacks followed, the next one refused.
            assert got.reason.count("fallback to pool") == MAX_FALLBACK_DEPTH + 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "fallback chain longer than 8 pools" in errors[0].getMessage()


def test_logs_once_per_transition(caplog: pytest.LogCaptureFixture) -> None:
    steering = Steering(POOLS, ORIGINS)
    down, up = Health(london=False, stockholm=False), Health()

    def run(health: Health, times: int = 3) -> None:
        for _ in range(times):
            steering.choose("db", 4, SE_CLIENT, health, random.Random(0))

    with caplog.at_level(logging.INFO, logger="gslb.steering"):
        run(up)
        assert caplog.records == []
        run(down)
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("WARNING", "pool db: no healthy origin, falling back to none (IPv4)")]
        assert steering.in_fallback == {("db", 4)}
        caplog.clear()
        run(up)
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("INFO", "pool db: healthy origin again, leaving fallback (IPv4)")]
        assert steering.in_fallback == frozenset()
        caplog.clear()
        run(down)
        run(down)
        assert [r.levelname for r in caplog.records] == ["WARNING"]
        # Each family has its own state: AAAA enters fallback separately.
        steering.choose("db", 6, SE_CLIENT, down, random.Random(0))
        assert [r.getMessage() for r in caplog.records][-1] == (
            "pool db: no healthy origin, falling back to none (IPv6)")
        assert all(r.name == "gslb.steering" for r in caplog.records)


def test_a_quiet_steering_logs_no_transition_but_answers_and_tracks_alike(
        caplog: pytest.LogCaptureFixture) -> None:
    """A Steering for status previews (``quiet=True``) over all-down pools:
    the same answers and ``in_fallback`` as a serving one, no log record."""

    def run(steering: Steering) -> tuple[list[Choice], frozenset[tuple[str, int]]]:
        got = [steering.choose(name, 4, SE_CLIENT, ALL_DOWN, random.Random(0))
               for name in ("prim", "db", "chain1", "cyc_a")]
        down = steering.in_fallback
        got.append(steering.choose("prim", 4, SE_CLIENT, Health(), random.Random(0)))
        return got, down

    with caplog.at_level(logging.INFO, logger="gslb.steering"):
        quiet = run(Steering(POOLS, ORIGINS, quiet=True))
        assert caplog.records == []
        loud = run(Steering(POOLS, ORIGINS))
    assert quiet == loud and ("prim", 4) in quiet[1]
    assert {r.levelname for r in caplog.records} == {"WARNING", "ERROR", "INFO"}
    assert all(r.name == "gslb.steering" for r in caplog.records)


def test_chained_fallback_logs_each_pool_once(caplog: pytest.LogCaptureFixture) -> None:
    steering = Steering(POOLS, ORIGINS)
    with caplog.at_level(logging.WARNING, logger="gslb.steering"):
        for _ in range(3):
            steering.choose("chain1", 4, SE_CLIENT, ALL_DOWN, random.Random(0))
    assert [r.getMessage() for r in caplog.records] == [
        "pool chain1: no healthy origin, falling back to pool chain2 (IPv4)",
        "pool chain2: no healthy origin, falling back to pool spare (IPv4)",
        "pool spare: no healthy origin, falling back to none (IPv4)",
    ]
