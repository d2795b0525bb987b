"""A trace on the client records what ``Steering.choose`` decided and
changes nothing it decides: the same choice, reason and basis, with the
same random draws, traced or not."""

from __future__ import annotations

import random

from gslb.config.model import Location, Origin, Pool
from gslb.geo import GeoLocation
from gslb.steering import Steering
from gslb.steering.base import Client
from gslb.steering.trace import Trace
from tests.unit.fakes import Health

ORIGINS = {
    "gb": Origin("gb", ("192.0.2.1",), location=Location(51.5, -0.1)),
    "us": Origin("us", ("192.0.2.2",), location=Location(38.9, -77.4)),
    "jp": Origin("jp", ("192.0.2.3",), location=Location(35.7, 139.7)),
    "x": Origin("x", ("192.0.2.4",)),
    "y": Origin("y", ("192.0.2.5",)),
}
POOLS = {
    "geo": Pool("geo", "geo", ("gb", "us", "jp"), (("gb", "us", "jp"),),
                countries={"GB": (("gb",),)}, continents={"NA": (("us",),)},
                default=(("us",),)),
    "fo": Pool("fo", "failover", ("x", "y"), (("x",), ("y",))),
    "w": Pool("w", "weighted", ("x", "y"), (("x", "y"),)),
    "dead": Pool("dead", "failover", ("x",), (("x",),), fallback="w"),
    "tree": Pool("tree", "failover", ("fo", "geo"), (("fo",), ("geo",))),
}
PLACES = [GeoLocation("GB", "EU", 51.5, -0.1, 24), GeoLocation("US", "NA", 40.0, -74.0, 20),
          GeoLocation("SG", "AS", 1.3, 103.9, 16), GeoLocation(None, None, prefix_len=8),
          GeoLocation("FR", "EU", None, None, 24)]


def test_traced_choice_is_the_untraced_one():
    for states in ({}, {"x": False}, {"x": False, "y": False}, {"gb": False, "jp": False}):
        health = Health(**states)
        plain, traced = Steering(POOLS, ORIGINS, quiet=True), Steering(POOLS, ORIGINS, quiet=True)
        for i in range(300):
            place = PLACES[i % len(PLACES)]
            pool = list(POOLS)[i % len(POOLS)]

            def client(place: GeoLocation = place) -> Client:
                return Client("198.51.100.1", "203.0.113.0", 24, 4, locator=lambda a: place)

            a = plain.choose(pool, 4, client(), health, random.Random(i))
            c = client()
            c.trace = Trace()
            b = traced.choose(pool, 4, c, health, random.Random(i))
            assert a == b, (pool, place, states)
            assert c.trace.of("pool")[0]["pool"] == pool
            assert c.trace.of("selected") or c.trace.of("pool_down") or not a.addresses


def test_geo_trace_names_the_entry_and_the_tiers():
    steering = Steering(POOLS, ORIGINS, quiet=True)
    c = Client("198.51.100.1", "203.0.113.0", 24, 4, locator=lambda a: PLACES[0])
    c.trace = Trace()
    steering.choose("tree", 4, c, Health(x=False, y=False), random.Random(1))
    kinds = [(e["event"], e.get("pool") or e.get("rule") or e.get("tier")) for e in c.trace.events]
    assert kinds == [("pool", "tree"), ("tier", 1), ("tier", 2), ("selected", "tree"),
                     ("pool", "geo"), ("located", None), ("match", "country"), ("tier", 1),
                     ("selected", "geo")]
    assert c.trace.of("match")[0] == {"event": "match", "rule": "country", "key": "GB",
                                      "scope": 24, "outcome": "answered"}


def test_a_client_without_a_trace_records_nothing():
    assert Client("192.0.2.1").trace is None
