"""Slow start and timed drains over a real socket: the share of the ramping
origin moves with the view's clock while the answer cache is on (and off),
and an answer that used a ramping weight is never served from the cache;
once the ramp is over, caching resumes."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from gslb.config.load import load
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.health.overrides import Override
from gslb.health.state import VantageReport
from gslb.serve.service import Service
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
