"""``order`` of a multi-address answer over real sockets (dnspython): an
``all`` pool of 4 origins rotated (``cyclic``), shuffled (``random``) or
kept (``fixed``) over 1,000 answers, with the answer cache on and off
(``cache_entries`` 0); a dead origin never shows while rotating; ECS and
per-client cache entries rotate too (RFC 1794, RFC 2181 section 5)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise
from pathlib import Path

import pytest
import pytest_asyncio

from gslb.config.load import load
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, Running, addresses, write_config

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

ADDRS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
MULTI = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"]
DEADLINE_S = 60.0
CACHE = pytest.mark.parametrize("entries", [0, 1024], ids=["no-cache", "cache"])


def config(check_port: int) -> str:
    """Pools of origins a-d (d checked on ``check_port``, the others
    unchecked: always up): one per ``order``, one without the key, and a geo
    pool whose network map picks origin ``m`` (4 addresses) for the whole
    IPv4 space (an answer that depends on the client)."""
    check = (f"{{type: http, target: 127.0.0.1, port: {check_port}, interval: 0.1, "
             "timeout: 0.1, fall: 1, rise: 1}")
    return f"""
origins:
  a: {{ipv4: [{ADDRS[0]}]}}
  b: {{ipv4: [{ADDRS[1]}]}}
  c: {{ipv4: [{ADDRS[2]}]}}
  d: {{ipv4: [{ADDRS[3]}], check: {check}}}
  m: {{ipv4: [{", ".join(MULTI)}]}}
pools:
  cyc: {{policy: all, origins: [a, b, c, d], order: cyclic}}
  rnd: {{policy: all, origins: [a, b, c, d], order: random}}
  fix: {{policy: all, origins: [a, b, c, d], order: fixed}}
  dflt: {{policy: all, origins: [a, b, c, d]}}
  near: {{policy: geo, origins: [a, m], networks: {{0.0.0.0/0: m}}, default: a}}
""" + BASE_ZONE.format(minimum=30) + """
      cyc: {gslb: cyc}
      rnd: {gslb: rnd}
      fix: {gslb: fix}
      dflt: {gslb: dflt}
      near: {gslb: near}
"""


Start = Callable[[int], Awaitable[tuple[Service, Running, object]]]


@pytest_asyncio.fixture
async def served(tmp_path: Path, fake_origin: Callable[..., Awaitable[object]]
                 ) -> AsyncIterator[Start]:
    """Factory: ``(service, running, origin d)`` with an answer cache of
    that many entries (0: off), once origin ``d`` is checked up."""
    made: list[Service] = []

    async def factory(entries: int) -> tuple[Service, Running, object]:
        origin = await fake_origin()
        path = write_config(tmp_path, config(origin.port), f"zone{len(made)}.yaml")  # type: ignore[attr-defined]
        service = Service(load([path]), [("127.0.0.1", 0)], rng=random.Random(1),
                          answer_cache=entries)
        await service.start()
        made.append(service)
        await service.quorum.wait_for(
            lambda: "d" in service.quorum.snapshot() and service.quorum.is_up("d"), 5)
        return service, Running(service), origin

    yield factory
    for service in made:
        await service.stop()


async def answers(server: Running, name: str, count: int, **kw: object) -> list[list[str]]:
    """The addresses of ``count`` answers to ``name`` A, in order."""
    got = []
    for _ in range(count):
        got.append(addresses(await server.query(f"{name}.gslb.example.test", **kw)))  # type: ignore[arg-type]
    return got


def rotation_of(order: list[str], configured: list[str]) -> bool:
    """Whether ``order`` is ``configured`` rotated."""
    return any(order == configured[k:] + configured[:k] for k in range(len(configured)))


def assert_cyclic(got: list[list[str]], configured: list[str]) -> None:
    """Every answer a rotation of ``configured``, the first address moving
    on by one each time (so each first in ``len(got) / n`` ± 1 answers)."""
    n = len(configured)
    assert all(rotation_of(order, configured) for order in got), got[:8]
    firsts = [configured.index(order[0]) for order in got]
    assert all(b == (a + 1) % n for a, b in pairwise(firsts)), firsts[:16]
    counts = Counter(order[0] for order in got)
    assert set(counts) == set(configured)
    assert all(abs(c - len(got) / n) <= 1 for c in counts.values()), counts


@CACHE
async def test_cyclic_moves_the_first_address_on_every_answer(served: Start,
                                                              entries: int) -> None:
    async def body() -> None:
        service, server, _ = await served(entries)
        assert_cyclic(await answers(server, "cyc", 1000), ADDRS)
        assert_cyclic(await answers(server, "dflt", 400), ADDRS)  # the default
        assert_cyclic(await answers(server, "cyc", 100, tcp=True), ADDRS)
        if entries:
            assert service.answering.authority.cache.hits >= 1000  # type: ignore[union-attr]
    await asyncio.wait_for(body(), DEADLINE_S)


@CACHE
async def test_ecs_and_per_client_answers_rotate(served: Start, entries: int) -> None:
    async def body() -> None:
        _, server, _ = await served(entries)
        # an ECS query: its own cache entry (the shape holds the ECS option)
        assert_cyclic(await answers(server, "cyc", 400, ecs=("203.0.113.0", 24)), ADDRS)
        # an answer that depends on the client: per-client entries, by ECS
        # subnet or, without ECS, by source address
        assert_cyclic(await answers(server, "near", 400, ecs=("203.0.113.0", 24)), MULTI)
        assert_cyclic(await answers(server, "near", 400, edns=False), MULTI)
    await asyncio.wait_for(body(), DEADLINE_S)


@CACHE
async def test_random_shuffles_each_answer(served: Start, entries: int) -> None:
    async def body() -> None:
        _, server, _ = await served(entries)
        got = await answers(server, "rnd", 1000)
        assert all(sorted(order) == ADDRS for order in got)
        counts = Counter(order[0] for order in got)
        # each first with p = 1/4: 250, standard deviation 13.7; ± 60 is 4.4 sigma
        assert set(counts) == set(ADDRS) and all(abs(c - 250) <= 60 for c in counts.values()), \
            counts
        assert len({tuple(order) for order in got}) >= 20  # of the 24 orders
    await asyncio.wait_for(body(), DEADLINE_S)


@CACHE
async def test_fixed_keeps_the_configured_order(served: Start, entries: int) -> None:
    async def body() -> None:
        _, server, _ = await served(entries)
        assert all(order == ADDRS for order in await answers(server, "fix", 300))
    await asyncio.wait_for(body(), DEADLINE_S)


@CACHE
async def test_a_dead_origin_never_shows_while_rotating(served: Start, entries: int) -> None:
    async def body() -> None:
        service, server, origin = await served(entries)
        assert_cyclic(await answers(server, "cyc", 101), ADDRS)
        await origin.stop()  # type: ignore[attr-defined]
        await service.quorum.wait_for(lambda: not service.quorum.is_up("d"), 5)
        alive = ADDRS[:3]
        assert_cyclic(await answers(server, "cyc", 999), alive)
        shuffled = await answers(server, "rnd", 300)
        assert all(sorted(order) == alive for order in shuffled)
        assert all(order == alive for order in await answers(server, "fix", 100))
    await asyncio.wait_for(body(), DEADLINE_S)
