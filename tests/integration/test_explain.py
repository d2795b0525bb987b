"""``gslb explain`` and ``GET /api/v1/explain`` against real nameservers:
the reasons are the events the selection recorded on that very call, and
the addresses explained are the ones a real DNS query with the same client
and ECS gets (dnspython over UDP, the answer cache on and off)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.edns
import dns.message
import pytest

from gslb.explain import query_message
from gslb.health.redis.sink import RedisSink
from gslb.health.state import VantageReport
from gslb.serve.service import Service
from tests.integration.adminutil import admin_url, call, start_service
from tests.integration.dnsutil import BASE_ZONE, addresses, write_config

FAKE_MMDB = Path(__file__).parent.parent / "data" / "geoip" / "fake-country.mmdb"
NAME = "gslb.example.test."
DEADLINE_S = 5.0

#: Origins: d is checked against a refused port (down after one failure);
#: the rest are unchecked (up).
ZONE = """
origins:
  london: {ipv4: [192.0.2.11], ipv6: ["2001:db8:a::11"], location: {country: GB}}
  stockholm: {ipv4: [192.0.2.12], location: {country: SE}}
  virginia: {ipv4: [192.0.2.13], ipv6: ["2001:db8:a::13"], location: {lat: 38.95, lon: -77.45}}
  tokyo: {ipv4: [192.0.2.14], location: {country: JP}}
  d: {ipv4: [192.0.2.21], check: {type: tcp, target: 127.0.0.1, port: DOWN_PORT,
                                  interval: 0.2, timeout: 0.2, fall: 1, rise: 1}}
  e: {ipv4: [192.0.2.22]}
pools:
  web:
    policy: geo
    origins: [london, stockholm, virginia, tokyo]
    countries: {GB: london}
    continents: {NA: virginia}
    default: virginia
  fo: {policy: failover, tiers: [[d], [e]]}
  only-e: {policy: all, origins: [e]}
  only-d: {policy: all, origins: [d], fallback: only-e}
  tree: {policy: failover, tiers: [only-d, web]}
  coin: {policy: weighted, origins: [e, tokyo]}
  pair: {policy: weighted, origins: [e, tokyo, stockholm], max_answers: 2}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: web}
      db: {gslb: fo}
      short: {gslb: {pool: fo, ttl: 30, ttl_when_degraded: 5}}
      dead: {gslb: only-d}
      tree: {gslb: tree}
      "*.wild": {gslb: web}
      alias: {CNAME: www}
      coin: {gslb: coin}
      pair: {gslb: pair}
"""

#: Subnets of the fake database: GB (a /24 and a /16), US (NA), SE (nearest
#: stockholm), SG (nearest tokyo), and one the database does not hold.
SUBNETS = ["81.2.69.0/24", "51.0.7.0/24", "8.8.8.0/24", "89.160.16.0/20", "5.5.10.0/24",
           "5.5.6.0/24", "203.0.113.0/24"]

#: Top-level keys of the document (docs/admin.md): a change is a schema change.
DOC_KEYS = {"schema", "query", "zone", "kind", "rcode", "wildcard", "cname", "record",
            "steps", "members", "pool", "fallback", "reason", "basis", "ecs_scope", "ttl",
            "addresses", "answer", "cache"}
STEP_KEYS = {
    "pool": {"event", "pool", "policy", "family", "depth", "members", "min_healthy",
             "fallback"},
    "selected": {"event", "pool", "chosen", "reason", "scope", "basis", "members"},
    "tier": {"event", "tier", "outcome", "members", "up", "need"},
    "match": {"event", "rule", "key", "scope", "outcome"},
    "located": {"event", "located", "country", "continent", "lat", "lon", "prefix_len"},
    "nearest": {"event", "lat", "lon", "scope", "chosen", "healthy"},
    "fallback": {"event", "pool", "mode", "why"},
    "pool_down": {"event", "pool", "up", "of", "need", "members"},
}


def zone_text(down_port: int) -> str:
    return ZONE.replace("DOWN_PORT", str(down_port))


async def started(tmp_path: Path, refused_port: int, **kw: Any) -> Service:
    service = await start_service(tmp_path, zone_text(refused_port), geoip=FAKE_MMDB, **kw)
    await service.quorum.wait_for(lambda: not service.view.is_up("d"), DEADLINE_S)
    return service


async def explained(service: Service, name: str, ecs: str | None = None,
                    client: str = "127.0.0.1", rrtype: str = "A") -> dict[str, Any]:
    params = f"name={name}&type={rrtype}&client={client}" + (f"&ecs={ecs}" if ecs else "")
    status, doc = await call(service, "GET", "/api/v1/explain?" + params)
    assert status == 200, doc
    return doc


async def dns_answer(service: Service, name: str, ecs: str | None = None,
                     rrtype: str = "A") -> tuple[list[str], int | None]:
    """The addresses and ECS scope a real query gets."""
    host, port = service.addresses[0]
    options = []
    if ecs:
        net = ipaddress.ip_network(ecs, strict=False)
        options = [dns.edns.ECSOption(str(net.network_address), net.prefixlen)]
    q = dns.message.make_query(name, rrtype, use_edns=0, payload=1232, options=options)
    msg = await dns.asyncquery.udp(q, host, port=port, timeout=2)
    scope = next((o.scopelen for o in msg.options if o.otype == dns.edns.ECS), None)
    return addresses(msg), scope


async def dns_answer_ttl(service: Service, name: str) -> int:
    """The TTL of the A RRset a real query gets."""
    host, port = service.addresses[0]
    msg = await dns.asyncquery.udp(dns.message.make_query(name, "A"), host, port=port,
                                   timeout=2)
    return int(msg.answer[0].ttl)


def steps(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in doc["steps"] if s["event"] == kind]


@pytest.fixture
async def service(tmp_path, refused_port):
    service = await started(tmp_path, refused_port)
    yield service
    await service.stop()


@pytest.mark.parametrize(("ecs", "rule", "key", "address", "scope"), [
    ("81.2.69.0/24", "country", "GB", "192.0.2.11", 24),
    ("51.0.7.0/24", "country", "GB", "192.0.2.11", 16),  # a /16 database network
    ("8.8.8.0/24", "continent", "NA", "192.0.2.13", 24),
    ("5.5.6.0/24", "default", None, "192.0.2.13", 24),  # not in the database
])
async def test_geo_map_entry_is_explained(service, ecs, rule, key, address, scope):
    doc = await explained(service, "www." + NAME, ecs)
    (match,) = [m for m in steps(doc, "match") if m["outcome"] == "answered"]
    assert (match["rule"], match["key"]) == (rule, key)
    assert doc["addresses"] == [address]
    assert doc["ecs_scope"]["scope"] == scope
    assert f"/{scope}" in doc["ecs_scope"]["why"]
    assert doc["ttl"] == doc["record"]["ttl"] == 30 and doc["record"]["pool"] == "web"
    assert (doc["addresses"], scope) == tuple(await dns_answer(service, "www." + NAME, ecs))


async def test_geo_nearest_is_explained_with_its_distance(service):
    doc = await explained(service, "www." + NAME, "5.5.10.0/24")  # SG: no map entry
    (near,) = steps(doc, "nearest")
    assert near["chosen"][0]["name"] == "tokyo"
    assert 4000 < near["chosen"][0]["km"] < 6000  # Singapore to Tokyo, about 5,300 km
    kms = [c["km"] for c in near["healthy"]]
    assert kms == sorted(kms) and len(kms) == 4
    assert doc["addresses"] == ["192.0.2.14"]
    (located,) = steps(doc, "located")
    assert located["country"] == "SG"


async def test_failover_says_tier_1_down_tier_2_answered(service):
    doc = await explained(service, "db." + NAME)
    tiers = steps(doc, "tier")
    assert [(t["tier"], t["outcome"]) for t in tiers] == [(1, "down"), (2, "answered")]
    assert tiers[0]["members"] == ["d"] and tiers[1]["up"] == ["e"]
    assert doc["members"]["d"]["state"] == "down"
    assert doc["members"]["d"]["vantages"]["local"]["up"] is False
    assert doc["members"]["e"]["state"] == "up"
    assert doc["addresses"] == ["192.0.2.22"] == (await dns_answer(service, "db." + NAME))[0]
    assert doc["reason"] == "tier 2"
    assert doc["ecs_scope"]["scope"] == 0


async def test_ttl_when_degraded_is_explained(service):
    """``short`` answers from ``fo`` with d down: the TTL shown, and the
    reason for it, are the ones the lookup applied (and a DNS query gets)."""
    doc = await explained(service, "short." + NAME)
    [event] = steps(doc, "degraded_ttl")
    assert (event["ttl"], event["full"], event["why"]) == (5, 30, "down")
    assert doc["ttl"] == 5 == (await dns_answer_ttl(service, "short." + NAME))


async def test_tree_of_pools_shows_each_pool_on_the_path(service):
    doc = await explained(service, "tree." + NAME, "81.2.69.0/24")
    pools = [(p["pool"], p["depth"]) for p in steps(doc, "pool")]
    assert pools == [("tree", 0), ("web", 0)]
    (top,) = [s for s in steps(doc, "selected") if s["pool"] == "tree"]
    assert {m["name"]: m["up"] for m in top["members"]} == {"only-d": False, "web": True}
    assert top["chosen"] == ["web"]
    assert doc["members"]["only-d"] == {"kind": "pool"}
    assert doc["addresses"] == ["192.0.2.11"]
    assert doc["reason"] == "tier 2 → pool web: country GB tier 1"


async def test_fallback_to_another_pool_is_explained(service):
    doc = await explained(service, "dead." + NAME)
    (fb,) = steps(doc, "fallback")
    assert (fb["pool"], fb["mode"]) == ("only-d", "only-e")
    assert "no healthy origin in pool only-d" in fb["why"]
    assert doc["fallback"] is True and doc["pool"] == "only-e"
    assert doc["addresses"] == ["192.0.2.22"] == (await dns_answer(service, "dead." + NAME))[0]


async def test_wildcard_and_cname(service):
    doc = await explained(service, "x.wild." + NAME, "81.2.69.0/24")
    assert doc["wildcard"] == {"name": "x.wild." + NAME, "source": "*.wild." + NAME}
    assert doc["record"]["owner"] == "x.wild." + NAME
    assert doc["addresses"] == ["192.0.2.11"]
    doc = await explained(service, "alias." + NAME, "8.8.8.0/24")
    assert doc["cname"] == [{"name": "alias." + NAME, "target": "www." + NAME, "ttl": 300}]
    assert doc["record"]["owner"] == "www." + NAME
    assert doc["addresses"] == ["192.0.2.13"]
    assert doc["answer"][0] == f"alias.{NAME} 300 IN CNAME www.{NAME}"


@pytest.mark.parametrize("cache", [True, False])
async def test_explained_addresses_equal_dns_answers_for_many_clients(tmp_path, refused_port,
                                                                       cache):
    service = await started(tmp_path, refused_port, answer_cache=4096 if cache else 0)
    try:
        rng = random.Random(7)
        subnets = list(SUBNETS)
        for _ in range(60):  # random /24s inside and outside the fake database
            base = ipaddress.ip_network(rng.choice(SUBNETS))
            size = max(base.num_addresses // 256, 1)
            start = int(base.network_address) + 256 * rng.randrange(size)
            subnets.append(f"{ipaddress.ip_address(start)}/24")
        subnets.append(f"{ipaddress.ip_address(rng.getrandbits(32))}/24")
        for name in ("www.", "tree.", "db.", "dead.", "x.wild.", "alias."):
            for ecs in subnets:
                for _ in range(2):  # the second may come from the answer cache
                    got, scope = await dns_answer(service, name + NAME, ecs)
                    doc = await explained(service, name + NAME, ecs)
                    assert doc["addresses"] == got, (name, ecs, doc["reason"])
                    assert doc["ecs_scope"]["scope"] == scope, (name, ecs)
        for rrtype in ("A", "AAAA"):  # no ECS: located by the source address
            got, _ = await dns_answer(service, "www." + NAME, None, rrtype)
            assert (await explained(service, "www." + NAME, rrtype=rrtype))["addresses"] == got
    finally:
        await service.stop()


async def test_cache_state_is_read_without_changing_it(service):
    host, port = service.addresses[0]
    name, ecs = "db." + NAME, "81.2.69.0/24"
    doc = await explained(service, name, ecs)
    assert doc["cache"]["checked"] and doc["cache"]["cached"] is False
    assert doc["cache"]["reusable"] is True
    cache = service.answering.authority.cache
    assert cache is not None
    before = (cache.hits, cache.misses, len(cache))
    doc = await explained(service, name, ecs)
    assert (cache.hits, cache.misses, len(cache)) == before  # explain stores nothing
    reply = await asyncio.wait_for(asyncio.to_thread(_udp, host, port,
                                                     query_message(name, "A", ecs)), 3)
    assert reply
    doc = await explained(service, name, ecs)
    assert doc["cache"]["cached"] is True
    assert (cache.hits, len(cache)) == (before[0], before[2] + 1)


async def test_a_draw_is_explained_as_stored_once_and_two_are_not(service):
    # one weighted draw: stored as the draw (every outcome, drawn again per
    # hit); two members drawn: not stored; what a lookup drew is its own,
    # never the last query's
    host, port = service.addresses[0]
    await asyncio.wait_for(asyncio.to_thread(_udp, host, port,  # a query of two draws
                                             query_message("pair." + NAME, "A", None)), 3)
    coin = await explained(service, "coin." + NAME)
    assert coin["cache"]["drawn"] is True and coin["cache"]["reusable"] is True
    reply = await asyncio.wait_for(asyncio.to_thread(_udp, host, port,
                                                     query_message("coin." + NAME, "A", None)), 3)
    assert reply
    assert (await explained(service, "coin." + NAME))["cache"]["cached"] is True
    pair = await explained(service, "pair." + NAME)
    assert pair["cache"]["drawn"] is True and pair["cache"]["reusable"] is False
    await asyncio.wait_for(asyncio.to_thread(_udp, host, port,
                                             query_message("coin." + NAME, "A", None)), 3)
    db = await explained(service, "db." + NAME)
    assert db["cache"]["drawn"] is False and db["cache"]["reusable"] is True


def _udp(host: str, port: int, data: bytes) -> bytes:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(data, (host, port))
        return s.recv(65535)


async def test_explain_is_not_counted_as_an_answer(service):
    await dns_answer(service, "dead." + NAME)
    answers, fallbacks = dict(service.stats.answers), dict(service.stats.fallbacks)
    assert answers and fallbacks
    for name in ("db.", "dead.", "www."):
        await explained(service, name + NAME)
    assert (dict(service.stats.answers), dict(service.stats.fallbacks)) == (answers, fallbacks)


async def test_bad_parameters_get_400(service):
    for query in ("", "name=www." + NAME + "&type=MX", "name=www." + NAME + "&client=nope",
                  "name=www." + NAME + "&ecs=300.1.1.0/24"):
        status, body = await call(service, "GET", "/api/v1/explain?" + query)
        assert status == 400 and body["error"], query


async def run_cli(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def assert_schema(doc: dict[str, Any]) -> None:
    assert set(doc) == DOC_KEYS
    assert doc["schema"] == 1
    for step in doc["steps"]:
        if step["event"] in STEP_KEYS:
            assert set(step) == STEP_KEYS[step["event"]], step


async def test_cli_asks_the_running_server_json_schema_is_stable(service):
    for name, ecs in (("www.", "89.160.16.0/20"), ("db.", None), ("dead.", None),
                      ("tree.", "8.8.8.0/24"), ("www.", "5.5.6.0/24")):
        argv = ["explain", name + NAME, "--admin", admin_url(service), "--json"]
        rc, out, err = await run_cli(*argv, *(["--ecs", ecs] if ecs else []))
        assert rc == 0, err
        assert_schema(json.loads(out))
    rc, out, err = await run_cli("explain", "db." + NAME, "--admin", admin_url(service))
    assert rc == 0, err
    assert "tier 1: down (members d; up: none)" in out
    assert "tier 2: answered (members e; up: e)" in out
    assert "- d: down; votes local=down" in out
    assert "db.gslb.example.test. 30 IN A 192.0.2.22" in out


async def test_cli_offline_without_redis_assumes_every_origin_up(tmp_path, refused_port):
    path = write_config(tmp_path, zone_text(refused_port))
    rc, out, err = await run_cli("explain", "db." + NAME, "--config", str(path), "--json",
                                 "--geoip", str(FAKE_MMDB))
    assert rc == 0, err
    doc = json.loads(out)
    assert_schema(doc)
    assert [(t["tier"], t["outcome"]) for t in steps(doc, "tier")] == [(1, "answered")]
    assert doc["members"]["d"]["state"] == "up" and doc["members"]["d"]["assumed"] is True
    assert doc["addresses"] == ["192.0.2.21"]
    assert doc["cache"]["checked"] is False
    rc, out, err = await run_cli("explain", "www." + NAME, "--config", str(path), "--ecs",
                                 "81.2.69.0/24", "--geoip", str(FAKE_MMDB))
    assert rc == 0, err
    assert "map: country GB matched -> answered" in out
    rc, out, err = await run_cli("explain", "www." + NAME, "--config",
                                 str(write_config(tmp_path, "origins: {a: 1}", "bad.yaml")))
    assert rc == 1 and "bad.yaml:1" in err


async def test_cli_offline_reads_live_health_from_redis(tmp_path, refused_port, redis_server):
    url = redis_server.url
    text = zone_text(refused_port).replace("origins:\n", "health: {quorum: 1}\norigins:\n", 1)
    path = write_config(tmp_path, text)
    sink = RedisSink(url, key_ttl_s=60)
    await sink.start()
    try:
        now = time.time()
        sink.heartbeat("eu", now)
        sink.report(VantageReport("d", "eu", False, 3, False, None, None, "connection refused",
                                  now), notify=True)
        async with asyncio.timeout(DEADLINE_S):
            while not any(r.origin == "d" for r in await sink.last_reports("eu")):
                await asyncio.sleep(0.02)
    finally:
        await sink.stop()
    rc, out, err = await run_cli("explain", "db." + NAME, "--config", str(path), "--redis", url,
                                 "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert [(t["tier"], t["outcome"]) for t in steps(doc, "tier")] == [(1, "down"),
                                                                      (2, "answered")]
    assert doc["members"]["d"]["state"] == "down"
    assert doc["members"]["d"]["vantages"]["eu"] == {"up": False, "fresh": True,
                                                    "detail": "connection refused",
                                                    "srtt_ms": None}
    assert doc["addresses"] == ["192.0.2.22"]
