"""``latency`` policy: the client's vantage, lowest smoothed RTT from it,
anti-flap margins, fallbacks and ECS scope (through ``Steering``)."""

from __future__ import annotations

import logging
import random
from types import MappingProxyType

import pytest

from gslb.config.model import Location, Origin, Pool, Vantage
from gslb.geo import GeoLocation
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView
from gslb.steering import Choice, Client, Steering
from gslb.steering.latency import VantageFinder
from tests.unit.fakes import Health

ORIGINS = {
    "lon": Origin("lon", ("192.0.2.1",), ("2001:db8::1",), location=Location(51.5, -0.1)),
    "fra": Origin("fra", ("192.0.2.2",), ("2001:db8::2",), location=Location(50.1, 8.7)),
    "nyc": Origin("nyc", ("192.0.2.3",), location=Location(40.7, -74.0)),
    "sin": Origin("sin", ("192.0.2.4",), location=Location(1.35, 103.8)),
}
ADDR = {name: o.ipv4[0] for name, o in ORIGINS.items()}
VANTAGES = {
    "eu": Vantage("eu", Location(53.0, -8.0), "IE", "EU"),
    "us": Vantage("us", Location(39.0, -77.5), "US", "NA"),
    "ap": Vantage("ap", Location(1.3, 103.8), "SG", "AS"),
}
GB = GeoLocation("GB", "EU", 51.5, -0.1)
SE = GeoLocation("SE", "EU", 59.3, 18.1)
US = GeoLocation("US", "NA", 38.9, -77.0)
SG = GeoLocation("SG", "AS", 1.35, 103.8)
BR = GeoLocation("BR", "SA", -15.8, -47.9)
NO_COORDS = GeoLocation("NZ", "OC")


class Rtts(Health):
    """A HealthView with smoothed RTTs: ``rtt[(origin, vantage)]`` in ms."""

    def __init__(self, rtt: dict[tuple[str, str], float] | None = None, **states: bool) -> None:
        super().__init__(**states)
        self.rtt = rtt or {}

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return self.rtt.get((origin, vantage))


def table(**by_vantage: dict[str, float]) -> dict[tuple[str, str], float]:
    """``table(eu={"lon": 10})`` → ``{("lon", "eu"): 10}``."""
    return {(o, v): ms for v, row in by_vantage.items() for o, ms in row.items()}


def pool(origins: tuple[str, ...] = tuple(ORIGINS), **fields: object) -> Pool:
    for key in ("countries", "continents", "vantage_countries", "vantage_continents"):
        if key in fields:
            fields[key] = MappingProxyType(fields[key])  # type: ignore[arg-type]
    return Pool("web", "latency", origins, (origins,), **fields)  # type: ignore[arg-type]


def client(loc: GeoLocation | None, ecs: tuple[str, int, int] | None = ("81.2.69.0", 24, 4)
           ) -> Client:
    addr, source, version = ecs if ecs is not None else (None, None, None)
    return Client("198.51.100.1", addr, source, version, locator=lambda _ip: loc)


def steering(p: Pool, vantages: dict[str, Vantage] | None = VANTAGES,
             origins: dict[str, Origin] = ORIGINS) -> Steering:
    return Steering({p.name: p}, origins, vantages=vantages)


def ask(s: Steering, loc: GeoLocation | None, health: Health, family: int = 4,
        ecs: tuple[str, int, int] | None = ("81.2.69.0", 24, 4)) -> Choice:
    return s.choose("web", family, client(loc, ecs), health, random.Random(0))


# -- the client's vantage ---------------------------------------------------------

RTT = table(eu={"lon": 9, "fra": 20, "nyc": 80, "sin": 170},
            us={"lon": 75, "fra": 90, "nyc": 4, "sin": 220},
            ap={"lon": 160, "fra": 150, "nyc": 230, "sin": 2})


@pytest.mark.parametrize(("loc", "vantage", "how", "origin"), [
    (GB, "eu", "nearest, 5", "lon"),
    (SE, "eu", "nearest", "lon"),
    (US, "us", "nearest, 4", "nyc"),
    (SG, "ap", "nearest, 6", "sin"),
    (BR, "us", "nearest", "nyc"),  # Brasília: Virginia 6,800 km beats Ireland 8,000 km
])
def test_nearest_vantage_and_its_fastest_origin(loc, vantage, how, origin):
    got = ask(steering(pool()), loc, Rtts(RTT))
    assert got.addresses == (ADDR[origin],)
    assert got.reason.startswith(f"vantage {vantage} ({how}")
    assert got.scope == 24


def test_country_map_beats_continent_map_beats_nearest():
    p = pool(vantage_countries={"GB": "us"}, vantage_continents={"EU": "ap", "SA": "eu"})
    s = steering(p)
    assert ask(s, GB, Rtts(RTT)).reason.startswith("vantage us (country GB)")
    assert ask(s, SE, Rtts(RTT)).reason.startswith("vantage ap (continent EU)")
    assert ask(s, SE, Rtts(RTT)).addresses == (ADDR["sin"],)
    assert ask(s, BR, Rtts(RTT)).addresses == (ADDR["lon"],)
    assert ask(s, US, Rtts(RTT)).reason.startswith("vantage us (nearest")


def test_max_answers_fastest_first():
    got = ask(steering(pool(max_answers=3)), GB, Rtts(RTT))
    assert got.addresses == (ADDR["lon"], ADDR["fra"], ADDR["nyc"])


def test_a_down_origin_is_never_chosen_even_when_fastest():
    s = steering(pool())
    assert ask(s, GB, Rtts(RTT)).addresses == (ADDR["lon"],)
    got = ask(s, GB, Rtts(RTT, lon=False))
    assert got.addresses == (ADDR["fra"],)  # at once: no margin for a down one
    # back up: 9 against fra's 20 ms is past both margins (5 ms, 20 %), so it moves back
    assert ask(s, GB, Rtts(RTT)).addresses == (ADDR["lon"],)


def test_origins_without_rtt_are_not_eligible_while_others_have_one():
    rtt = table(eu={"fra": 30})  # lon has no check (always up, never measured)
    assert ask(steering(pool()), GB, Rtts(rtt)).addresses == (ADDR["fra"],)


# -- anti-flap ------------------------------------------------------------------------


@pytest.mark.parametrize(("new_ms", "moves"), [
    (41, False),  # 9 ms better: past 5 ms, not past 20 % of 50
    (40, False),  # exactly 20 %: not more than the margin
    (39.9, True),  # past both
])
def test_switch_only_past_the_relative_margin(new_ms, moves):
    s = steering(pool())
    assert ask(s, GB, Rtts(table(eu={"lon": 50, "fra": 60}))).addresses == (ADDR["lon"],)
    got = ask(s, GB, Rtts(table(eu={"lon": 50, "fra": new_ms})))
    assert got.addresses == (ADDR["fra"] if moves else ADDR["lon"],)
    assert ("switched lon 50.0 ms → fra" in got.reason) is moves
    assert ("kept lon 50.0 ms" in got.reason) is not moves


@pytest.mark.parametrize(("new_ms", "moves"), [(6, False), (5, False), (4.9, True)])
def test_switch_only_past_the_absolute_margin(new_ms, moves):
    s = steering(pool())  # 10 → 6 ms is 40 % better but only 4 ms
    assert ask(s, GB, Rtts(table(eu={"lon": 10, "fra": 12}))).addresses == (ADDR["lon"],)
    got = ask(s, GB, Rtts(table(eu={"lon": 10, "fra": new_ms})))
    assert got.addresses == (ADDR["fra"] if moves else ADDR["lon"],)


def test_margins_are_configurable_and_zero_means_always_the_fastest():
    s = steering(pool(switch_margin_pct=0.0, switch_margin_ms=0.0))
    assert ask(s, GB, Rtts(table(eu={"lon": 10, "fra": 12}))).addresses == (ADDR["lon"],)
    assert ask(s, GB, Rtts(table(eu={"lon": 10, "fra": 9.9}))).addresses == (ADDR["fra"],)
    assert ask(s, GB, Rtts(table(eu={"lon": 10, "fra": 10}))).addresses == (ADDR["fra"],)


def test_memory_is_per_vantage_and_per_family():
    s = steering(pool())
    start = Rtts(table(eu={"lon": 50, "fra": 60}, us={"lon": 60, "fra": 50}))
    assert ask(s, GB, start).addresses == (ADDR["lon"],)
    assert ask(s, US, start).addresses == (ADDR["fra"],)
    assert ask(s, GB, start, family=6).addresses == ("2001:db8::1",)
    swapped = Rtts(table(eu={"lon": 60, "fra": 50}, us={"lon": 50, "fra": 60}))
    assert ask(s, GB, swapped).addresses == (ADDR["lon"],)  # within margins: each keeps its own
    assert ask(s, US, swapped).addresses == (ADDR["fra"],)
    # a first AAAA answer from us starts from the fastest, not from the A memory
    assert ask(s, US, swapped, family=6).addresses == ("2001:db8::1",)
    # what each (vantage, family) remembers, each kept against a faster one within margins:
    # eu/IPv4 lon, us/IPv4 fra, eu/IPv6 lon, us/IPv6 lon
    for loc, health, family, kept in ((GB, swapped, 4, ADDR["lon"]), (US, swapped, 4, ADDR["fra"]),
                                      (GB, swapped, 6, "2001:db8::1"),
                                      (US, start, 6, "2001:db8::1")):
        got = ask(s, loc, health, family=family)
        assert got.addresses == (kept,) and "within margins" in got.reason, (loc, family)


def test_a_new_steering_a_reload_starts_afresh():
    p = pool()
    s = steering(p)
    ask(s, GB, Rtts(table(eu={"lon": 50, "fra": 60})))
    later = Rtts(table(eu={"lon": 50, "fra": 45}))
    assert ask(s, GB, later).addresses == (ADDR["lon"],)
    assert ask(steering(p), GB, later).addresses == (ADDR["fra"],)


def test_max_answers_set_swaps_one_member_at_a_time():
    s = steering(pool(max_answers=2, order="fixed"))  # the set, fastest first
    h = Rtts(table(eu={"lon": 10, "fra": 20, "nyc": 30, "sin": 40}))
    assert ask(s, GB, h).addresses == (ADDR["lon"], ADDR["fra"])
    # nyc becomes fastest, but within margin of fra (20 → 18): the set stays
    h = Rtts(table(eu={"lon": 10, "fra": 20, "nyc": 18, "sin": 40}))
    assert ask(s, GB, h).addresses == (ADDR["lon"], ADDR["fra"])
    # order inside the set follows the current RTTs
    h = Rtts(table(eu={"lon": 22, "fra": 20, "nyc": 18, "sin": 40}))
    assert ask(s, GB, h).addresses == (ADDR["fra"], ADDR["lon"])
    # sin past both margins of the slowest member (lon 22): it replaces lon only
    h = Rtts(table(eu={"lon": 22, "fra": 20, "nyc": 18, "sin": 3}))
    got = ask(s, GB, h)
    assert got.addresses == (ADDR["sin"], ADDR["fra"])
    assert "switched lon 22.0 ms → sin 3.0 ms" in got.reason
    # a member going down is replaced at once by the fastest outsider
    assert ask(s, GB, Rtts(h.rtt, sin=False)).addresses == (ADDR["nyc"], ADDR["fra"])


def test_a_switch_is_logged_once(caplog):
    s = steering(pool())
    ask(s, GB, Rtts(table(eu={"lon": 50, "fra": 60})))
    with caplog.at_level(logging.INFO, logger="gslb.steering"):
        for _ in range(3):
            ask(s, GB, Rtts(table(eu={"lon": 50, "fra": 10})))
    assert [r.getMessage() for r in caplog.records] == [
        "pool web, vantage eu: switched lon 50.0 ms → fra 10.0 ms"]


def test_a_quiet_steering_switches_alike_but_logs_nothing(caplog):
    p = pool()
    quiet = Steering({p.name: p}, ORIGINS, vantages=VANTAGES, quiet=True)
    ask(quiet, GB, Rtts(table(eu={"lon": 50, "fra": 60})))
    with caplog.at_level(logging.INFO, logger="gslb.steering"):
        got = ask(quiet, GB, Rtts(table(eu={"lon": 50, "fra": 10})))
    assert got.addresses == (ADDR["fra"],) and "switched lon 50.0 ms → fra 10.0 ms" in got.reason
    assert caplog.records == []


# -- fallbacks --------------------------------------------------------------------------


def test_no_rtt_data_from_the_vantage_falls_back_to_geo_rules():
    p = pool(countries={"GB": (("nyc",),)})
    rtt = table(us={"lon": 1})  # nothing from eu
    got = ask(steering(p), GB, Rtts(rtt))
    assert got.addresses == (ADDR["nyc"],)
    assert got.reason == "vantage eu (nearest, 563 km) has no RTT data; geo: country GB tier 1"
    assert got.scope == 24


def test_then_nearest_origin_by_distance():
    got = ask(steering(pool()), SE, Rtts())
    assert got.addresses == (ADDR["fra"],)  # Stockholm: Frankfurt 1,200 km, London 1,400 km
    assert "has no RTT data; geo: nearest to (59.3, 18.1): fra" in got.reason


def test_a_stale_vantage_has_no_data():
    view = QuorumView(stale_after_s=10.0, clock=lambda: 1000.0)
    view.apply(VantageReport("lon", "eu", True, 3, True, 9.0, 9.0, "ok", 1000.0))
    view.apply(VantageReport("fra", "eu", True, 3, True, 20.0, 20.0, "ok", 1000.0))
    s = steering(pool())
    assert ask(s, GB, view).addresses == (ADDR["lon"],)
    view.clock = lambda: 1011.0
    got = ask(s, GB, view)
    assert "has no RTT data" in got.reason
    assert got.addresses == (ADDR["lon"],)  # geo nearest: London


def test_unlocated_client_goes_to_geo_default_with_the_geo_scope():
    got = ask(steering(pool(default=(("sin",),))), None, Rtts(RTT))
    assert got.addresses == (ADDR["sin"],)
    assert got.reason == "no vantage: client not located; geo: client not located; default tier 1"
    assert got.scope == 24  # other subnets would get another answer


def test_client_without_coordinates_and_no_located_vantage():
    assert ask(steering(pool()), NO_COORDS, Rtts(RTT)).reason.startswith(
        "no vantage: client has no coordinates")
    unplaced = {"a": Vantage("a"), "b": Vantage("b")}
    got = ask(steering(pool(), unplaced), GB, Rtts(RTT))
    assert got.reason.startswith("no vantage: no vantage has a location")


def test_all_down_with_fallback_all_answers_by_geo_rules():
    down = dict.fromkeys(ORIGINS, False)
    got = ask(steering(pool()), SG, Rtts(RTT, **down))
    assert got.kind == "answer" and got.fallback
    assert got.addresses == (ADDR["sin"],)
    assert "fallback to all: no vantage" not in got.reason
    assert "has no RTT data; geo: nearest" in got.reason


def test_nodata_when_no_member_has_the_family():
    assert ask(steering(pool(("nyc", "sin"))), GB, Rtts(RTT), family=6).kind == "nodata"


# -- ECS scope -----------------------------------------------------------------------------


@pytest.mark.parametrize("vantages", [None, {"eu": VANTAGES["eu"]}, {"x": Vantage("x")}])
def test_one_vantage_stands_for_everyone_scope_0(vantages):
    name = next(iter(vantages)) if vantages else "local"
    rtt = table(**{name: {"lon": 30, "fra": 10}})
    for loc in (GB, SG, None):
        got = ask(steering(pool(), vantages), loc, Rtts(rtt))
        assert got.addresses == (ADDR["fra"],)
        assert got.scope == 0
        assert got.reason.startswith(f"vantage {name} (the only vantage): fra 10.0 ms")


def test_one_vantage_without_data_scope_follows_geo():
    only = {"eu": VANTAGES["eu"]}
    located = ask(steering(pool(), only), GB, Rtts())  # origins have locations
    assert (located.addresses, located.scope) == ((ADDR["lon"],), 24)
    bare = {n: Origin(n, o.ipv4) for n, o in ORIGINS.items()}
    unlocated = ask(steering(pool(), only, bare), GB, Rtts())
    assert unlocated.scope == 0  # any healthy, by weight: the same for every client
    mapped = ask(steering(pool(countries={"GB": (("sin",),)}), only, bare), SG, Rtts())
    assert mapped.scope == 24


def test_no_usable_vantage_and_client_independent_fallback_scope_0():
    bare = {n: Origin(n, o.ipv4) for n, o in ORIGINS.items()}
    unplaced = {"a": Vantage("a"), "b": Vantage("b")}
    got = ask(steering(pool(), unplaced, bare), GB, Rtts(RTT))
    assert got.scope == 0
    assert "geo: client" not in got.reason


def test_no_ecs_no_scope():
    got = ask(steering(pool()), GB, Rtts(RTT), ecs=None)
    assert (got.addresses, got.scope) == ((ADDR["lon"],), 0)


def test_scope_capped_like_geo():
    got = ask(steering(pool()), GB, Rtts(RTT), ecs=("81.2.69.142", 32, 4))
    assert got.scope == 24


# -- the vantage finder ------------------------------------------------------------------


def test_finder_nearest_and_cache():
    finder = VantageFinder(VANTAGES)
    assert finder.names == ("eu", "us", "ap")
    name, km = finder.nearest(51.5, -0.1)  # type: ignore[misc]
    assert name == "eu" and 500 < km < 700
    finder.nearest(51.5, -0.1)
    assert finder.nearest.cache_info().hits == 1
    assert VantageFinder({}).names == ("local",)
    assert VantageFinder({}).nearest(0.0, 0.0) is None


def test_a_steering_built_for_one_query_answers_by_rtt():
    got = steering(pool()).choose("web", 4, client(SG), Rtts(RTT))
    assert got.addresses == (ADDR["sin"],)
