"""``gslb.steering``: the registry and Steering.choose: kinds, addresses per
family, NODATA, ECS scope, errors."""

from __future__ import annotations

import random
from types import MappingProxyType

import pytest

from gslb.config.model import Location, Origin, Pool
from gslb.geo import GeoLocation
from gslb.steering import Choice, Client, Steering
from gslb.steering.base import Basis
from gslb.steering.registry import REGISTRY
from tests.unit.fakes import Health

ORIGINS = {
    "london": Origin("london", ("192.0.2.11", "192.0.2.111"), ("2001:db8::11",), weight=3,
                     location=Location(51.51, -0.13)),
    "stockholm": Origin("stockholm", ("192.0.2.12",), ("2001:db8::12",),
                        location=Location(59.33, 18.07)),
    "virginia": Origin("virginia", ("192.0.2.13",), location=Location(38.95, -77.45)),
    "singapore": Origin("singapore", ("192.0.2.14",), location=Location(1.35, 103.82)),
    "shared": Origin("shared", ("192.0.2.11",)),  # same address as london
}


def mk(name: str, policy: str, *tiers: tuple[str, ...], **kw: object) -> Pool:
    members = tuple(dict.fromkeys(n for t in tiers for n in t))
    return Pool(name, policy, members, tiers, **kw)  # type: ignore[arg-type]


POOLS = {
    p.name: p
    for p in (
        mk("web", "geo", ("london", "stockholm", "virginia", "singapore"),
           countries=MappingProxyType({"SE": (("stockholm",), ("london",))}),
           default=(("virginia",),)),
        mk("api", "weighted", ("london", "virginia")),
        mk("db", "failover", ("london",), ("stockholm", "virginia"), fallback="none"),
        mk("everyone", "all", ("london", "stockholm", "virginia", "singapore", "shared")),
        mk("v4only", "all", ("virginia", "singapore")),
    )
}
SE = GeoLocation("SE", "EU", 59.3, 18.1)


def client(loc: GeoLocation | None = SE, source: int = 24) -> Client:
    return Client("198.51.100.1", "81.2.69.0", source, 4, locator=lambda _ip: loc)


def test_registry_is_explicit() -> None:
    assert list(REGISTRY) == ["failover", "weighted", "geo", "latency", "all", "hash",
                              "least_loaded"]
    assert all(spec.name == name for name, spec in REGISTRY.items())


@pytest.mark.parametrize(
    ("pool", "family", "down", "expect"),
    [
        ("web", 4, (), Choice("answer", ("192.0.2.12",), 24, "web", False, "country SE tier 1",
                              Basis.CLIENT)),
        ("web", 6, (), Choice("answer", ("2001:db8::12",), 24, "web", False,
                              "country SE tier 1", Basis.CLIENT)),
        ("db", 4, (), Choice("answer", ("192.0.2.11", "192.0.2.111"), 0, "db", False, "tier 1",
                                rotate=2)),
        ("db", 6, ("london",), Choice("answer", ("2001:db8::12",), 0, "db", False, "tier 2")),
        # Two healthy IPv4 members in tier 2: the answer was drawn.
        ("db", 4, ("london",), Choice("answer", ("192.0.2.13",), 0, "db", False, "tier 2",
                                      Basis.DRAW)),
        # Duplicate addresses across origins appear once (RFC 2181 section 5).
        ("everyone", 4, ("stockholm",), Choice(
            "answer", ("192.0.2.11", "192.0.2.111", "192.0.2.13", "192.0.2.14"), 0, "everyone",
            False, "all 4 healthy", rotate=4)),
        ("everyone", 6, (), Choice("answer", ("2001:db8::11", "2001:db8::12"), 0, "everyone",
                                   False, "all 2 healthy", rotate=2)),
        # No member with an IPv6 address: NODATA, whatever the health.
        ("v4only", 6, (), Choice(
            "nodata", (), 0, "v4only", False, "no IPv6 origin in pool v4only")),
        ("v4only", 6, ("virginia", "singapore"), Choice(
            "nodata", (), 0, "v4only", False, "no IPv6 origin in pool v4only")),
    ],
)
def test_choose(pool: str, family: int, down: tuple[str, ...], expect: Choice) -> None:
    steering = Steering(POOLS, ORIGINS)
    health = Health(**dict.fromkeys(down, False))
    assert steering.choose(pool, family, client(), health, random.Random(0)) == expect


def test_two_steerings_of_one_config_agree() -> None:
    got = Steering(POOLS, ORIGINS).choose("web", 4, client(), Health(), random.Random(0))
    assert got == Steering(POOLS, ORIGINS).choose("web", 4, client(), Health(), random.Random(0))


def test_reads_rtt_is_decided_by_the_policy_objects_not_by_names() -> None:
    from dataclasses import replace

    from gslb.steering.all import AllPolicy

    class Measured(AllPolicy):
        reads_rtt = True

    assert not Steering(POOLS, ORIGINS).reads_rtt
    with_latency = {**POOLS, "fast": mk("fast", "latency", ("london", "virginia"))}
    assert Steering(with_latency, ORIGINS).reads_rtt
    # the same policies under other names: it is the object that says
    renamed = {"fast": mk("fast", "speedy", ("london",)), "rtt": mk("rtt", "rtt", ("london",))}
    speedy = {"speedy": replace(REGISTRY["latency"], name="speedy")}
    assert Steering({"fast": renamed["fast"]}, ORIGINS, registry=speedy).reads_rtt
    measured = {"rtt": replace(REGISTRY["all"], name="rtt", build=lambda *_a: Measured())}
    assert Steering({"rtt": renamed["rtt"]}, ORIGINS, registry=measured).reads_rtt
    plain = {"rtt": replace(REGISTRY["all"], name="rtt")}
    assert not Steering({"rtt": renamed["rtt"]}, ORIGINS, registry=plain).reads_rtt


def test_default_rng_and_injected_rng() -> None:
    steering = Steering(POOLS, ORIGINS, rng=random.Random(9))
    seen = {steering.choose("api", 4, client(), Health()).addresses[0] for _ in range(100)}
    assert seen == {"192.0.2.11", "192.0.2.13"}


def test_errors() -> None:
    steering = Steering(POOLS, ORIGINS)
    with pytest.raises(ValueError, match="family must be 4 or 6"):
        steering.choose("web", 5, client(), Health())
    with pytest.raises(KeyError):
        steering.choose("nope", 4, client(), Health())
    with pytest.raises(ValueError, match="pool bad: unknown origin or pool 'ghost'"):
        Steering({"bad": mk("bad", "all", ("ghost",))}, ORIGINS)
    with pytest.raises(ValueError, match="unknown fallback pool 'ghost'"):
        Steering({"bad": mk("bad", "all", ("london",), fallback="ghost")}, ORIGINS)
    with pytest.raises(ValueError, match="unknown policy 'fastest'"):
        Steering({"bad": mk("bad", "fastest", ("london",))}, ORIGINS)


def test_fallback_all_leaves_drained_origins_out_until_every_one_is_drained() -> None:
    from gslb.health.overrides import DrainedView, Override, Overrides

    overrides = Overrides()
    all_down = Health(virginia=False, singapore=False)
    view = DrainedView(all_down, overrides)
    steering = Steering(POOLS, ORIGINS)
    got = steering.choose("v4only", 4, client(), view, random.Random(0))
    assert got.fallback and set(got.addresses) == {"192.0.2.13", "192.0.2.14"}
    overrides.apply(Override("virginia", "maintenance", "test", 1.0))
    got = steering.choose("v4only", 4, client(), view, random.Random(0))
    assert got.fallback and got.addresses == ("192.0.2.14",)
    overrides.apply(Override("singapore", "maintenance", "test", 1.0))
    got = steering.choose("v4only", 4, client(), view, random.Random(0))
    assert got.fallback and set(got.addresses) == {"192.0.2.13", "192.0.2.14"}
