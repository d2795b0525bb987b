"""Slow start and timed drains over a real socket: the share of the ramping
origin moves with the view's clock while the answer cache is on (and off),
and an answer that used a ramping weight is never served from the cache;
once the ramp is over, caching resumes."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
from tests.integration.adminutil import TOKEN, ask, call, config_text, start_service
from tests.integration.dnsutil import BASE_ZONE, Running, addresses, write_config

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
  b: {ipv4: [192.0.2.2]}
pools:
  web: {policy: weighted, origins: [a, b], slow_start: 10}
  solo: {policy: weighted, origins: [b], slow_start: 10}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: web}
      solo: {gslb: solo}
"""

WWW = "www.gslb.example.test."
SOLO = "solo.gslb.example.test."
QUERIES = 400
#: 400 answers: one standard deviation is at most 2.5 points.
TOLERANCE = 0.09


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


async def share_of_b(server: Running) -> float:
    counts: Counter[str] = Counter()
    for _ in range(QUERIES):
        counts.update(addresses(await server.query(WWW)))
    return counts["192.0.2.2"] / QUERIES


def hits(server: Running) -> int:
    counts = server.service.cache_counts()
    return 0 if counts is None else counts[0]


async def test_slow_start_share_moves_over_udp(server: Running) -> None:
    service = server.service
    clock = Clock(time.time())
    service.quorum.clock = clock
    rep = lambda up: VantageReport("b", "local", up, 1, up, 5.0, None, "x", clock.now)  # noqa: E731
    service.quorum.apply(rep(False))
    clock.now += 1
    service.quorum.apply(rep(True))
    start = clock.now
    for elapsed, expected in ((0.0, 0.1 / 1.1), (5.0, 0.5 / 1.5), (10.0, 0.5)):
        clock.now = start + elapsed
        share = await share_of_b(server)
        assert abs(share - expected) <= TOLERANCE, (elapsed, share, expected)
        if elapsed == 5.0:
            # the one-origin pool: while b ramps its answer is not reused...
            before = hits(server)
            for _ in range(20):
                assert addresses(await server.query(SOLO)) == ["192.0.2.2"]
            assert hits(server) == before
    # ... and once the ramp is over it is
    for _ in range(20):
        assert addresses(await server.query(SOLO)) == ["192.0.2.2"]
    if service.cache_counts() is not None:
        assert hits(server) >= before + 19


async def test_timed_drain_share_falls_over_udp(server: Running) -> None:
    service = server.service
    clock = Clock(time.time())
    service.overrides.clock = clock
    service.overrides.apply(Override("b", "deploy", "test", clock.now, ramp_s=10.0))
    start = clock.now
    for elapsed, expected in ((0.0, 0.5), (5.0, 0.5 / 1.5), (9.0, 0.1 / 1.1)):
        clock.now = start + elapsed
        share = await share_of_b(server)
        assert abs(share - expected) <= TOLERANCE, (elapsed, share, expected)
    clock.now = start + 10
    assert await share_of_b(server) == 0.0
    # a drain never empties a pool on its own: fallback all answers b
    assert addresses(await server.query(SOLO)) == ["192.0.2.2"]


WORKERS_ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
  b: {ipv4: [192.0.2.2]}
  c: {ipv4: [192.0.2.3]}
  d: {ipv4: [192.0.2.4]}
pools:
  web: {policy: weighted, origins: [a, b], slow_start: 600}
  other: {policy: weighted, origins: [c, d]}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: web}
      other: {gslb: other}
"""


async def spread_share(service: Service, qname: str, address: str, n: int = 400) -> float:
    """The share of ``address`` over ``n`` answers, each from a new socket
    (a new source port: the kernel's REUSEPORT hash spreads them over the
    workers)."""
    host, port = service.addresses[0]

    async def one() -> list[str]:
        msg = await dns.asyncquery.udp(dns.message.make_query(qname, "A"), host, port=port,
                                       timeout=2)
        return addresses(msg)

    got: list[str] = []
    for _ in range(n // 50):
        for found in await asyncio.gather(*(one() for _ in range(50))):
            got.extend(found)
    return got.count(address) / len(got)


async def settled_share(service: Service, qname: str, address: str, below: float,
                        timeout_s: float = 10.0) -> float:
    """The share of ``address`` once a round of 100 answers gives less
    than ``below`` (the supervisor's snapshot has reached the workers), over
    400 more; fails after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while await spread_share(service, qname, address, 100) >= below:
        assert time.monotonic() < deadline, f"{qname}: share of {address} never fell"
    return await spread_share(service, qname, address)


async def test_ramps_reach_the_workers(tmp_path: Path) -> None:
    """With --workers 2 every worker scales the weights as the supervisor's
    view: a slow start 60 s into 600 (factor 0.1: ~9 % against 50 %) and a
    timed drain 450 s into 600 (factor 0.25: 20 %). The ramps are placed in
    the past (the workers read the real clock) rather than waited for."""
    service = await start_service(tmp_path, WORKERS_ZONE, workers=2, answer_cache=DEFAULT_ENTRIES)
    try:
        assert isinstance(service.server, WorkerPool)
        assert abs(await spread_share(service, WWW, "192.0.2.2") - 0.5) <= TOLERANCE
        shift = 60.0
        service.quorum.clock = lambda: time.time() - shift
        now = service.quorum.clock()
        service.quorum.apply(VantageReport("b", "local", False, 1, False, 5.0, None, "x", now))
        service.quorum.apply(VantageReport("b", "local", True, 1, True, 5.0, None, "x", now))
        service.quorum.clock = time.time  # b came up 60 s ago
        share = await settled_share(service, WWW, "192.0.2.2", 0.3)
        assert abs(share - 0.1 / 1.1) <= 0.05, share
        service.overrides.apply(Override("d", "deploy", "test", time.time() - 450, ramp_s=600))
        share = await settled_share(service, "other.gslb.example.test.", "192.0.2.4", 0.4)
        assert abs(share - 0.25 / 1.25) <= 0.07, share
    finally:
        await service.stop()


async def test_a_timed_drain_travels_through_redis(tmp_path: Path, redis_server: Any,
                                                   refused_port: int) -> None:
    """``POST .../drain`` with ``ramp`` on one nameserver: the other holds
    the same drain, ramping (answered, weight falling), then out of every
    answer when the ramp ends (awaited, bounded); bad ``ramp`` values are
    400."""
    text = config_text(refused_port, refused_port)  # no probe worker: every origin is up
    servers: list[Service] = []
    try:
        for i in range(2):
            servers.append(await start_service(tmp_path, text, redis_url=redis_server.url,
                                               name=f"zone{i}.yaml"))
        one, two = servers
        for body in ({"reason": "x", "ramp": 0}, {"reason": "x", "ramp": "soon"},
                     {"reason": "x", "ramp": 5, "expires_in": 5}):
            status, _ = await call(one, "POST", "/api/v1/origins/a/drain", token=TOKEN,
                                   json=body)
            assert status == 400, body
        status, body = await call(one, "POST", "/api/v1/origins/a/drain", token=TOKEN,
                                  json={"reason": "deploy", "ramp": 1.5})
        assert status == 200 and body["drain"]["ramp_s"] == 1.5
        await two.overrides.wait_for(lambda: two.overrides.get("a") is not None, 2)
        drain = two.overrides.get("a")
        assert drain is not None and drain.ramp_s == 1.5
        assert not two.overrides.is_drained("a") and two.view.ramping
        assert 0.0 < two.view.weight_factor("a") < 1.0
        assert "192.0.2.1" in await ask(two)  # still answered while it ramps
        for service in servers:
            await service.overrides.wait_for(lambda s=service: s.overrides.is_drained("a"), 5)
            assert await ask(service) == ["192.0.2.2", "192.0.2.3"]
            assert not service.view.ramping
    finally:
        for service in servers:
            await service.stop()
