"""``geo`` policy: country > continent > nearest > default > any, and ECS scope."""

from __future__ import annotations

import random
from types import MappingProxyType

import pytest

from gslb.config.model import Location, Origin, Pool
from gslb.geo import GeoLocation
from gslb.steering.base import Client, Selection
from gslb.steering.geo import GeoPolicy, distance_km
from tests.unit.fakes import Health

ORIGINS = {
    "london": Origin("london", ("192.0.2.11",), ("2001:db8::11",), weight=3,
                     location=Location(51.51, -0.13)),
    "stockholm": Origin("stockholm", ("192.0.2.12",), ("2001:db8::12",),
                        location=Location(59.33, 18.07)),
    "virginia": Origin("virginia", ("192.0.2.13",), location=Location(38.95, -77.45)),
    "singapore": Origin("singapore", ("192.0.2.14",), location=Location(1.35, 103.82)),
}
V4 = tuple(ORIGINS.values())
V6 = (ORIGINS["london"], ORIGINS["stockholm"])

# Where clients are (coordinates of a city in each country).
SE = GeoLocation("SE", "EU", 59.3, 18.1)
GB = GeoLocation("GB", "EU", 51.5, -0.1)
US = GeoLocation("US", "NA", 38.9, -77.0)
JP = GeoLocation("JP", "AS", 35.7, 139.7)
BR = GeoLocation("BR", "SA", -15.8, -47.9)
NZ_NO_COORDS = GeoLocation("NZ", "OC")


def web(**changes: object) -> Pool:
    """The ``web`` pool of zones/example.yaml, as the loader builds it."""
    names = tuple(ORIGINS)
    fields: dict[str, object] = {
        "countries": MappingProxyType({"SE": (("stockholm",), ("london",))}),
        "continents": MappingProxyType({
            "EU": (("london", "stockholm"),), "NA": (("virginia",),),
            "AS": (("singapore",),)}),
        "default": (("virginia",),),
    }
    fields.update(changes)
    return Pool("web", "geo", names, (names,), **fields)  # type: ignore[arg-type]


def client(loc: GeoLocation | None, ecs: tuple[str, int, int] | None = ("81.2.69.0", 24, 4)
           ) -> Client:
    addr, source, version = ecs if ecs is not None else (None, None, None)
    return Client("198.51.100.1", addr, source, version, locator=lambda _ip: loc)


def select(pool: Pool, loc: GeoLocation | None, down: tuple[str, ...] = (),
           candidates: tuple[Origin, ...] = V4, seed: int = 0) -> Selection:
    health = Health(**dict.fromkeys(down, False))
    return GeoPolicy().select(pool, candidates, client(loc), health, random.Random(seed))


@pytest.mark.parametrize(
    ("loc", "down", "expect", "reason"),
    [
        (SE, (), "stockholm", "country SE tier 1"),
        (SE, ("stockholm",), "london", "country SE tier 2"),
        # Country map all down: nearest healthy, not the continent map.
        (SE, ("stockholm", "london"), "virginia",
         "country SE down; nearest to (59.3, 18.1): virginia 6"),
        (US, (), "virginia", "continent NA tier 1"),
        (JP, (), "singapore", "continent AS tier 1"),
        # Continent NA down: nearest healthy to Washington is London.
        (US, ("virginia",), "london",
         "continent NA down; nearest to (38.9, -77.0): london 5895 km"),
        # South America is unmapped: nearest is Virginia.
        (BR, (), "virginia", "nearest to (-15.8, -47.9): virginia 6"),
        (NZ_NO_COORDS, (), "virginia", "client has no coordinates; default tier 1"),
        (None, (), "virginia", "client not located; default tier 1"),
        (None, ("virginia",), None, "client not located; any healthy"),
    ],
)
def test_rules(loc: GeoLocation | None, down: tuple[str, ...], expect: str | None,
               reason: str) -> None:
    sel = select(web(), loc, down)
    assert len(sel.members) == 1
    if expect is not None:
        assert sel.members[0].name == expect
    assert sel.members[0].name not in down
    assert sel.reason.startswith(reason)


def test_continent_tier_is_weighted() -> None:
    names = [select(web(), GB, seed=s).members[0].name for s in range(400)]
    assert names.count("london") / 400 == pytest.approx(0.75, abs=0.07)  # weights 3:1


def test_nearest_by_real_coordinates() -> None:
    assert distance_km(51.51, -0.13, 59.33, 18.07) == pytest.approx(1434, rel=0.01)
    assert distance_km(0, 0, 0, 180) == pytest.approx(20_015, rel=0.001)
    assert distance_km(10, 20, 10, 20) == 0
    bare = web(countries=MappingProxyType({}), continents=MappingProxyType({}))
    sel = select(bare, SE)
    assert [o.name for o in sel.members] == ["stockholm"]  # Sweden picks stockholm over london
    assert sel.reason == "nearest to (59.3, 18.1): stockholm 4 km"
    assert [o.name for o in select(bare, GB).members] == ["london"]


def test_nearest_takes_n_nearest_in_distance_order() -> None:
    bare = web(countries=MappingProxyType({}), continents=MappingProxyType({}), max_answers=3)
    assert [o.name for o in select(bare, SE).members] == ["stockholm", "london", "virginia"]
    assert [o.name for o in select(bare, JP).members] == ["singapore", "stockholm", "london"]


def test_no_located_candidate_goes_to_default() -> None:
    unlocated = tuple(Origin(o.name, o.ipv4, o.ipv6) for o in V4)
    sel = select(web(countries=MappingProxyType({})), BR, candidates=unlocated)
    assert [o.name for o in sel.members] == ["virginia"]
    assert sel.reason == "no healthy origin with a location; default tier 1"


def test_family_filtering_skips_non_candidates() -> None:
    # AAAA for a US client: virginia has no IPv6, so the NA tier is empty.
    sel = select(web(), US, candidates=V6)
    assert [o.name for o in sel.members] == ["london"]
    assert "nearest" in sel.reason


def test_all_down_is_empty_with_geo_scope() -> None:
    sel = select(web(), SE, down=tuple(ORIGINS))
    assert sel.members == ()
    assert sel.scope == 24
    assert sel.reason.endswith("no healthy origin")


@pytest.mark.parametrize(
    ("loc", "ecs", "scope"),
    [
        (SE, ("81.2.69.0", 24, 4), 24),
        (SE, ("81.2.69.142", 32, 4), 24),  # capped at /24
        (SE, ("81.2.0.0", 16, 4), 16),
        (SE, ("2001:db8:1:2::", 64, 6), 56),  # capped at /56
        (SE, ("2001:db8::", 48, 6), 48),
        (SE, None, 0),  # no ECS option: nothing to scope
        (None, ("81.2.69.0", 24, 4), 24),  # unlocatable still depends on the subnet
        (BR, ("81.2.69.0", 24, 4), 24),
    ],
)
def test_ecs_scope(loc: GeoLocation | None, ecs: tuple[str, int, int] | None, scope: int) -> None:
    sel = GeoPolicy().select(web(), V4, client(loc, ecs), Health(), random.Random(0))
    assert sel.scope == scope


def test_client_located_once() -> None:
    calls: list[str] = []

    def locator(ip: str) -> GeoLocation:
        calls.append(ip)
        return BR

    c = Client("198.51.100.1", "81.2.69.0", 24, 4, locator=locator)
    GeoPolicy().select(web(), V4, c, Health(virginia=False), random.Random(0))
    assert calls == ["81.2.69.0"]
