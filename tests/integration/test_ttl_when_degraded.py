"""``ttl_when_degraded`` over real sockets (dnspython as the client): the
TTL of a GSLB answer is the record's ``ttl`` while every origin of its
pool's tree is up, and the shorter ``ttl_when_degraded`` (the record's, else
its pool's) while the pool is in fallback or a member origin is down or
ramping; back to ``ttl`` once healed. Each test runs with the answer cache
on and off: a state change moves the health generation, so a cached answer
follows, and an answer shortened by a ramp (which moves with time) is not
reused."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest
import pytest_asyncio

from gslb.config.load import load
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.health.overrides import Override
from gslb.health.state import VantageReport
from gslb.serve.service import Service
from gslb.workers.supervisor import WorkerPool
from tests.integration.adminutil import start_service
from tests.integration.dnsutil import BASE_ZONE, Running, addresses, write_config

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
  b: {ipv4: [192.0.2.2]}
  c: {ipv4: [192.0.2.3]}
  d: {ipv4: [192.0.2.4]}
  e: {ipv4: [192.0.2.5]}
  f: {ipv4: [192.0.2.6]}
  g: {ipv4: [192.0.2.7]}
  h: {ipv4: [192.0.2.8]}
pools:
  fo: {policy: failover, tiers: [[a], [b]], ttl_when_degraded: 7}
  plainfo: {policy: failover, tiers: [[a], [b]]}
  solo: {policy: weighted, origins: [c], fallback: spare}
  spare: {policy: weighted, origins: [d]}
  ramp: {policy: failover, tiers: [[e], [f]], slow_start: 10}
  eu: {policy: weighted, origins: [g, h]}
  tree: {policy: failover, tiers: [[eu], [d]], ttl_when_degraded: 2}
""" + BASE_ZONE.format(minimum=30) + """
      fo: {gslb: {pool: fo, ttl: 30}}
      own: {gslb: {pool: fo, ttl: 30, ttl_when_degraded: 3}}
      short: {gslb: {pool: fo, ttl: 5}}
      zero: {gslb: {pool: plainfo, ttl: 30, ttl_when_degraded: 0}}
      nokey: {gslb: {pool: plainfo, ttl: 30}}
      solo: {gslb: {pool: solo, ttl: 30, ttl_when_degraded: 4}}
      ramp: {gslb: {pool: ramp, ttl: 30, ttl_when_degraded: 5}}
      tree: {gslb: {pool: tree, ttl: 30}}
      alias: {CNAME: fo}
"""

Z = ".gslb.example.test."
QUERIES = 20
"""Queries per name and state: the TTL must hold on every one (cache hits included)."""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(params=[DEFAULT_ENTRIES, 0], ids=["cache", "no-cache"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    path = write_config(tmp_path, ZONE)
    service = Service(load([path]), [("127.0.0.1", 0)], rng=random.Random(5),
                      answer_cache=request.param)
    await service.start()
    try:
        yield Running(service)
    finally:
        await service.stop()


def set_up(server: Running, origin: str, up: bool, clock: Clock | None = None) -> None:
    """Tell the server's health view that ``origin`` is up or down now."""
    quorum = server.service.quorum
    now = clock.now if clock is not None else time.time()
    quorum.apply(VantageReport(origin, "local", up, 1, up, 5.0, None, "test", now))


async def ttls(server: Running, name: str, n: int = QUERIES) -> set[tuple[int, tuple[str, ...]]]:
    """(TTL, addresses) of the A answers to ``n`` queries for ``name``."""
    found = set()
    for _ in range(n):
        m = await server.query(name + Z)
        a = [r for r in m.answer if r.rdtype == 1]
        assert len(a) == 1, m
        found.add((a[0].ttl, tuple(addresses(m))))
    return found


def hits(server: Running) -> int:
    counts = server.service.cache_counts()
    return 0 if counts is None else counts[0]


async def test_normal_ttl_while_everything_is_up(server: Running) -> None:
    for name, address in (("fo", "192.0.2.1"), ("own", "192.0.2.1"), ("short", "192.0.2.1"),
                          ("zero", "192.0.2.1"), ("nokey", "192.0.2.1"),
                          ("solo", "192.0.2.3"), ("alias", "192.0.2.1")):
        expected = 5 if name == "short" else 30
        assert await ttls(server, name) == {(expected, (address,))}, name
    assert {ttl for ttl, _ in await ttls(server, "tree")} == {30}
    if server.service.cache_counts() is not None:
        assert hits(server) >= 7 * (QUERIES - 1)


async def test_member_down_shortens_then_heals(server: Running) -> None:
    """a down: the failover answers b with the degraded TTL (the pool's 7,
    the record's own 3 and 0, the pool's 7 capped by a 5 s ttl: 5; no key
    anywhere: 30), on every query, from the cache too; a back: 30 again."""
    assert await ttls(server, "fo") == {(30, ("192.0.2.1",))}  # cached while up
    set_up(server, "a", False)
    expected = {"fo": 7, "own": 3, "short": 5, "zero": 0, "nokey": 30, "alias": 7}
    for name, ttl in expected.items():
        assert await ttls(server, name) == {(ttl, ("192.0.2.2",))}, name
    set_up(server, "a", True)
    for name, ttl in expected.items():
        healed = 5 if name == "short" else 30
        assert await ttls(server, name) == {(healed, ("192.0.2.1",))}, (name, ttl)


async def test_a_down_member_shortens_even_when_not_answered(server: Running) -> None:
    """The backup b down: the primary a still answers, but the answer is
    degraded (b could be in it): the pool's TTL 7; b back: 30."""
    set_up(server, "b", False)
    assert await ttls(server, "fo") == {(7, ("192.0.2.1",))}
    set_up(server, "b", True)
    assert await ttls(server, "fo") == {(30, ("192.0.2.1",))}


async def test_fallback_shortens(server: Running) -> None:
    """c down: pool solo falls back to pool spare (all up there): TTL 4."""
    set_up(server, "c", False)
    assert await ttls(server, "solo") == {(4, ("192.0.2.4",))}
    set_up(server, "c", True)
    assert await ttls(server, "solo") == {(30, ("192.0.2.3",))}


async def test_fallback_all_shortens(server: Running) -> None:
    """a and b down: pool fo answers as if all were up (fallback all): TTL 7."""
    set_up(server, "a", False)
    set_up(server, "b", False)
    assert await ttls(server, "fo") == {(7, ("192.0.2.1",))}
    set_up(server, "a", True)
    set_up(server, "b", True)
    assert await ttls(server, "fo") == {(30, ("192.0.2.1",))}


async def test_tree_member_down_shortens(server: Running) -> None:
    """h down in the member pool eu of tree: g still answers, TTL 2 (the
    tree pool's default); h back: 30."""
    set_up(server, "h", False)
    assert await ttls(server, "tree") == {(2, ("192.0.2.7",))}
    set_up(server, "h", True)
    assert {ttl for ttl, _ in await ttls(server, "tree")} == {30}


async def test_slow_start_shortens_and_is_not_reused(server: Running) -> None:
    """e comes back with a 10 s slow start: TTL 5 while it ramps, never from
    the cache (the ramp moves with time); once the ramp is over TTL 30, and
    reused again."""
    service = server.service
    clock = Clock(time.time())
    service.quorum.clock = clock
    set_up(server, "e", False, clock)
    assert await ttls(server, "ramp") == {(5, ("192.0.2.6",))}
    clock.now += 1
    set_up(server, "e", True, clock)
    start, before = clock.now, hits(server)
    for elapsed in (0.0, 5.0, 9.9):
        clock.now = start + elapsed
        assert await ttls(server, "ramp") == {(5, ("192.0.2.5",))}, elapsed
    assert hits(server) == before
    clock.now = start + 10
    assert await ttls(server, "ramp") == {(30, ("192.0.2.5",))}
    if service.cache_counts() is not None:
        assert hits(server) == before + QUERIES - 1


async def test_drain_ramp_shortens(server: Running) -> None:
    """The backup f drained with a 10 s ramp: e answers with TTL 5 while f
    ramps (never from the cache) and once it is drained (a member that
    could come back)."""
    service = server.service
    clock = Clock(time.time())
    service.overrides.clock = clock
    service.overrides.apply(Override("f", "deploy", "test", clock.now, ramp_s=10.0))
    before = hits(server)
    assert await ttls(server, "ramp") == {(5, ("192.0.2.5",))}
    assert hits(server) == before  # shortened by a ramp: not reused
    clock.now += 11
    assert await ttls(server, "ramp") == {(5, ("192.0.2.5",))}


async def _ttl_from_workers(service: Service, qname: str, want: int, timeout_s: float) -> None:
    """Until 50 answers in a row (each from a new socket: the kernel spreads
    them over the workers) carry TTL ``want``; fails after ``timeout_s``."""
    host, port = service.addresses[0]

    async def one() -> int:
        msg = await dns.asyncquery.udp(dns.message.make_query(qname, "A"), host, port=port,
                                       timeout=2)
        return int(msg.answer[0].ttl)

    async with asyncio.timeout(timeout_s):
        while set(await asyncio.gather(*(one() for _ in range(50)))) != {want}:
            await asyncio.sleep(0.05)  # the supervisor's next snapshot


async def test_workers_shorten_too(tmp_path: Path) -> None:
    """With --workers 2 each worker answers from the supervisor's health
    snapshot: a down shortens every worker's TTL, its return restores it."""
    service = await start_service(tmp_path, ZONE, workers=2, answer_cache=DEFAULT_ENTRIES)
    try:
        assert isinstance(service.server, WorkerPool)
        await _ttl_from_workers(service, "fo" + Z, 30, 10.0)
        now = time.time()
        service.quorum.apply(VantageReport("a", "local", False, 1, False, 5.0, None, "x", now))
        await _ttl_from_workers(service, "fo" + Z, 7, 10.0)
        service.quorum.apply(VantageReport("a", "local", True, 1, True, 5.0, None, "x", now))
        await _ttl_from_workers(service, "fo" + Z, 30, 10.0)
    finally:
        await service.stop()
