"""Response rate limiting on real sockets: a UDP flood from one loopback
prefix is held at the limit (slipped responses truncated) while a client on
another prefix keeps every answer; log-only drops nothing; an exempt prefix
and TCP are not limited; slip 1 truncates every limited response; IPv6
clients are limited by their prefix too."""

from __future__ import annotations

import asyncio
import random
import textwrap
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import pytest

from gslb.config.load import load
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, write_config

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
pools:
  web: {policy: all, origins: [a]}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: web}
      static: {A: 192.0.2.10}
"""

RATE = 100
"""responses_per_second of the flood tests."""

DEADLINE_S = 20.0
"""No test here runs longer (asyncio.wait_for around each)."""


@dataclass
class Flood:
    """What one flood got back: ``sent`` queries over ``elapsed_s``
    seconds (first send to last reply), ``answered`` (full answers),
    ``slipped`` (TC set, no answer records), ``other`` replies."""

    sent: int
    elapsed_s: float
    answered: int
    slipped: int
    other: int


async def flood(host: str, port: int, sources: list[str], qname: str, total: int,
                chunk: int = 20, pause_s: float = 0.01, settle_s: float = 0.5,
                options: list[dns.edns.Option] | None = None) -> Flood:
    """Send ``total`` queries for ``qname`` A from ``sources`` (round
    robin), ``chunk`` at a time every ``pause_s`` seconds, then wait
    ``settle_s`` for the last replies; ``options``: EDNS options of each."""
    loop = asyncio.get_running_loop()
    replies: list[bytes] = []
    last = [0.0]

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            replies.append(data)
            last[0] = time.monotonic()

    family = 10 if ":" in host else 2
    transports = []
    for source in sources:
        transport, _ = await loop.create_datagram_endpoint(
            Collect, local_addr=(source, 0), remote_addr=(host, port), family=family)
        transports.append(transport)
    edns = {} if options is None else {"use_edns": 0, "options": options}
    wires = [dns.message.make_query(qname, "A", id=i & 0xFFFF, **edns).to_wire()
             for i in range(64)]
    start = time.monotonic()
    try:
        for i in range(total):
            transports[i % len(transports)].sendto(wires[i % len(wires)])
            if i % chunk == chunk - 1:
                await asyncio.sleep(pause_s)
        await asyncio.sleep(settle_s)
    finally:
        for transport in transports:
            transport.close()
    answered = sum(1 for r in replies if not r[2] & 0x02 and (r[6] or r[7]))
    slipped = sum(1 for r in replies if r[2] & 0x02 and not (r[6] or r[7]))
    return Flood(total, (last[0] or time.monotonic()) - start, answered, slipped,
                 len(replies) - answered - slipped)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[object]:
    started: list[Service] = []

    async def go(rate_limit: str, answer_cache: int = 1000,
                 listen: tuple[str, int] = ("127.0.0.1", 0), workers: int = 1) -> Service:
        path = write_config(tmp_path, ZONE + textwrap.dedent(rate_limit))
        service = Service(load([path]), [listen], rng=random.Random(1),
                          answer_cache=answer_cache, workers=workers)
        await service.start()
        started.append(service)
        return service

    yield go
    for service in started:
        await service.stop()


def limited(service: Service, action: str) -> int:
    return sum(n for (a, _k), n in service.stats.rrl.items() if a == action)


@pytest.mark.parametrize("answer_cache", [1000, 0])
async def test_a_flood_is_held_at_the_limit_while_another_prefix_gets_every_answer(
        serve, answer_cache: int) -> None:
    service = await serve(f"""
        rate_limit:
          responses_per_second: {RATE}
          window: 1
          slip: 2
        """, answer_cache=answer_cache)
    host, port = service.addresses[0]
    good_answers: list[bool] = []

    async def good_client() -> None:
        q = dns.message.make_query("www.gslb.example.test", "A")
        for _ in range(40):  # 20 a second, within its own prefix's limit
            r = await dns.asyncquery.udp(q, host, port=port, timeout=2.0, source="127.0.2.1")
            good_answers.append(bool(r.answer) and not r.flags & dns.flags.TC)
            await asyncio.sleep(0.05)

    sources = [f"127.0.1.{i}" for i in range(1, 9)]
    got, _ = await asyncio.wait_for(asyncio.gather(
        flood(host, port, sources, "www.gslb.example.test", 4000), good_client()), DEADLINE_S)
    assert good_answers == [True] * 40  # 100 % for the other prefix
    bound = RATE * got.elapsed_s + RATE  # rate × elapsed + the bucket's depth
    assert got.answered <= bound + 5, got
    assert got.answered >= 0.6 * RATE * got.elapsed_s, got  # held at, not below, the limit
    assert got.other == 0
    limited_n = got.sent - got.answered
    assert got.slipped >= 0.45 * limited_n - 5, got  # slip 2: every other limited one
    assert got.slipped <= 0.5 * limited_n + 1, got
    assert limited(service, "slipped") == got.slipped
    assert limited(service, "dropped") >= got.sent - got.answered - got.slipped - 1


async def test_log_only_drops_nothing(serve) -> None:
    service = await serve(f"""
        rate_limit: {{responses_per_second: {RATE}, log_only: true}}
        """)
    host, port = service.addresses[0]
    got = await asyncio.wait_for(flood(host, port, ["127.0.1.1"], "static.gslb.example.test",
                                       1500), DEADLINE_S)
    assert (got.answered, got.slipped, got.other) == (1500, 0, 0)
    assert limited(service, "logged_only") >= 1500 - RATE * (got.elapsed_s + 1)
    assert limited(service, "dropped") == limited(service, "slipped") == 0


async def test_an_exempt_prefix_and_tcp_are_not_limited(serve) -> None:
    service = await serve("""
        rate_limit:
          responses_per_second: 10
          exempt: [127.0.3.0/24]
        """)
    host, port = service.addresses[0]
    got = await asyncio.wait_for(flood(host, port, ["127.0.3.5", "127.0.3.200"],
                                       "www.gslb.example.test", 1000), DEADLINE_S)
    assert (got.answered, got.slipped, got.other) == (1000, 0, 0)
    q = dns.message.make_query("www.gslb.example.test", "A")

    async def over_tcp() -> list[bool]:  # a limited prefix, over TCP: all answered
        return [bool((await dns.asyncquery.tcp(q, host, port=port, timeout=2.0,
                                               source="127.0.1.1")).answer)
                for _ in range(100)]

    assert await asyncio.wait_for(over_tcp(), DEADLINE_S) == [True] * 100
    assert limited(service, "dropped") == limited(service, "slipped") == 0


async def test_slip_1_truncates_every_limited_response(serve) -> None:
    service = await serve("""
        rate_limit: {responses_per_second: 50, slip: 1}
        """)
    host, port = service.addresses[0]
    got = await asyncio.wait_for(flood(host, port, ["127.0.1.7"], "www.gslb.example.test",
                                       1000), DEADLINE_S)
    assert got.answered + got.slipped == 1000 and got.other == 0
    assert got.slipped >= 1000 - 50 * (got.elapsed_s + 1)
    assert limited(service, "dropped") == 0


async def test_ipv6_clients_are_limited_by_prefix(serve) -> None:
    try:
        service = await serve("""
            rate_limit: {responses_per_second: 50, slip: 0}
            """, listen=("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    host, port = service.addresses[0]
    got = await asyncio.wait_for(flood(host, port, ["::1"], "www.gslb.example.test", 1000),
                                 DEADLINE_S)
    assert got.answered <= 50 * got.elapsed_s + 50 + 5
    assert got.slipped == 0 and limited(service, "dropped") == 1000 - got.answered


async def test_with_workers_each_holds_the_limit_and_the_supervisor_counts_them_all(
        serve) -> None:
    workers = 2
    service = await serve(f"""
        rate_limit: {{responses_per_second: {RATE}, slip: 2}}
        """, workers=workers)
    host, port = service.addresses[0]
    sources = [f"127.0.1.{i}" for i in range(1, 17)]  # many source ports: both workers
    got = await asyncio.wait_for(flood(host, port, sources, "www.gslb.example.test", 3000),
                                 DEADLINE_S)
    assert got.answered <= workers * (RATE * got.elapsed_s + RATE) + 5, got  # per worker
    assert got.answered >= 0.6 * RATE * got.elapsed_s, got
    deadline = time.monotonic() + 5.0  # workers ship their counters every second
    while limited(service, "slipped") != got.slipped:
        assert time.monotonic() < deadline, (dict(service.stats.rrl), got)
        await asyncio.sleep(0.1)
    assert limited(service, "dropped") + got.slipped + got.answered >= got.sent - 2


async def test_reload_turns_limiting_on_and_off(serve, tmp_path: Path) -> None:
    service = await serve("")
    host, port = service.addresses[0]
    got = await asyncio.wait_for(flood(host, port, ["127.0.1.1"], "www.gslb.example.test", 600),
                                 DEADLINE_S)
    assert got.answered == 600  # no section: nothing limited
    path = write_config(tmp_path, ZONE + "rate_limit: {responses_per_second: 20, slip: 0}\n")
    assert (await service.reloader.reload([path])).ok
    got = await asyncio.wait_for(flood(host, port, ["127.0.1.1"], "www.gslb.example.test", 600),
                                 DEADLINE_S)
    assert got.answered <= 20 * got.elapsed_s + 20 + 5, got
    path = write_config(tmp_path, ZONE)
    assert (await service.reloader.reload([path])).ok
    got = await asyncio.wait_for(flood(host, port, ["127.0.1.1"], "www.gslb.example.test", 600),
                                 DEADLINE_S)
    assert got.answered == 600


async def test_a_client_with_a_valid_server_cookie_is_not_limited(serve) -> None:
    """A valid server cookie proves the client's address (RFC 7873 section
    5.2.3): its flood is answered whole, where the same flood with a forged
    server cookie from the same address is held at the limit."""
    service = await serve("""
        rate_limit: {responses_per_second: 20, slip: 0}
        """)
    host, port = service.addresses[0]
    client = bytes(range(1, 9))
    q = dns.message.make_query("www.gslb.example.test", "A", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.COOKIE, client)])
    first = await dns.asyncquery.udp(q, host, port=port, timeout=2, source="127.0.4.1")
    cookie = next(o for o in first.options if o.otype == dns.edns.COOKIE).to_wire()
    assert cookie is not None and len(cookie) == 24 and cookie[:8] == client
    valid = [dns.edns.GenericOption(dns.edns.COOKIE, cookie)]
    got = await asyncio.wait_for(flood(host, port, ["127.0.4.1"], "www.gslb.example.test", 600,
                                       options=valid), DEADLINE_S)
    assert got.answered == 600, got
    forged = [dns.edns.GenericOption(dns.edns.COOKIE, client + bytes(16))]
    got = await asyncio.wait_for(flood(host, port, ["127.0.4.1"], "www.gslb.example.test", 600,
                                       options=forged), DEADLINE_S)
    assert got.answered <= 20 * got.elapsed_s + 20 + 5, got
