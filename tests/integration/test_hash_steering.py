"""``policy: hash`` over real sockets (dnspython): an ECS client's /24 decides
its answer, the same on two nameservers, with the answer cache on and off,
on cache hits too; the ECS scope is the hashed prefix; a query without ECS
is hashed by its source address's /24; shares follow weights."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path

import dns.edns
import pytest

from gslb.config.load import load
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, Running, addresses, write_config

ZONE = """
origins:
  a: {ipv4: [192.0.2.1], ipv6: ["2001:db8::1"]}
  b: {ipv4: [192.0.2.2], ipv6: ["2001:db8::2"]}
  c: {ipv4: [192.0.2.3], ipv6: ["2001:db8::3"], weight: 2}
pools:
  sticky:
    policy: hash
    origins: [a, b, c]
    hash_seed: integration
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: sticky}
"""
NAME = "www.gslb.example.test."
DEADLINE_S = 60.0


def nets(n: int) -> list[str]:
    rng = random.Random(5407)
    return sorted({f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0"
                   for _ in range(n)})


async def serve(tmp_path: Path, name: str, cache: int) -> Running:
    path = write_config(tmp_path, ZONE, name)
    service = Service(load([path]), [("127.0.0.1", 0)], answer_cache=cache)
    await service.start()
    return Running(service)


def ecs_of(msg: dns.message.Message) -> tuple[str, int, int]:
    (opt,) = [o for o in msg.options if o.otype == dns.edns.ECS]
    return opt.address, opt.srclen, opt.scopelen


async def answers(server: Running, subnets: list[str], prefix: int = 24) -> dict[str, str]:
    got = {}
    for net in subnets:
        msg = await server.query(NAME, "A", ecs=(net, prefix))
        (got[net],) = addresses(msg)
        assert ecs_of(msg) == (net, prefix, min(prefix, 24))
    return got


@pytest.mark.parametrize("cache", [0, 1000])
async def test_the_client_network_decides_on_every_nameserver(tmp_path: Path,
                                                              cache: int) -> None:
    one = await serve(tmp_path, "one.yaml", cache)
    two = await serve(tmp_path, "two.yaml", 0)
    try:
        async with asyncio.timeout(DEADLINE_S):
            subnets = nets(600)
            first = await answers(one, subnets)
            assert await answers(one, subnets) == first  # again: cache hits when cached
            assert await answers(two, subnets) == first  # another nameserver
            shares = Counter(first.values())
            for address, share in (("192.0.2.1", 0.25), ("192.0.2.2", 0.25),
                                   ("192.0.2.3", 0.5)):
                assert abs(shares[address] / len(subnets) - share) <= 0.07, shares
            # a /32 of the same network gets the /24's answer, scope 24
            for net in subnets[:100]:
                host = net[:-1] + "77"
                msg = await one.query(NAME, "A", ecs=(host, 32))
                assert addresses(msg) == [first[net]] and ecs_of(msg) == (host, 32, 24)
            # AAAA: the same client network, the same member
            for net in subnets[:50]:
                msg = await one.query(NAME, "AAAA", ecs=(net, 24))
                assert addresses(msg) == ["2001:db8::" + first[net].rsplit(".", 1)[1]]
    finally:
        await one.service.stop()
        await two.service.stop()


@pytest.mark.parametrize("cache", [0, 1000])
async def test_without_ecs_the_source_address_decides(tmp_path: Path, cache: int) -> None:
    server = await serve(tmp_path, "z.yaml", cache)
    try:
        async with asyncio.timeout(DEADLINE_S):
            seen = set()
            for third in range(0, 40):
                by_ecs = addresses(await server.query(NAME, "A", ecs=(f"127.0.{third}.0", 24)))
                for host in (1, 2, 200):
                    source = f"127.0.{third}.{host}"
                    for _ in range(2):  # the second from the cache when cached
                        msg = await server.query(NAME, "A", source=source)
                        assert addresses(msg) == by_ecs, source
                        assert not [o for o in msg.options if o.otype == dns.edns.ECS]
                seen.add(by_ecs[0])
            assert len(seen) == 3  # 40 networks reach every member
    finally:
        await server.service.stop()
