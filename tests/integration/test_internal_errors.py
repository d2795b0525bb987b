"""A failure inside the answer path, on real sockets: a health view and a
steering observer that raise (injected through Authority's public API)
get SERVFAIL over UDP and TCP, the TCP connection stays usable, one
traceback is logged per distinct error a minute, and every failure counts
in gslb_dns_internal_errors_total on /metrics."""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import maxminddb
import pytest
import pytest_asyncio

from gslb.answering import AnswerSettings, build_authority
from gslb.authority import Authority
from gslb.config.load import load
from gslb.serve.service import Service
from tests.integration.adminutil import call, samples, start_service
from tests.integration.dnsutil import BASE_ZONE, TIMEOUT_S, write_config

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
pools:
  p: {policy: weighted, origins: [a]}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: p}
      static: {A: 192.0.2.10}
"""

WWW = "www.gslb.example.test."


class BrokenView:
    """A HealthView whose ``is_up`` raises: steering fails on every GSLB answer."""

    generation = 0

    def is_up(self, origin: str) -> bool:
        raise RuntimeError("health view broke")

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return None

    ramping = False

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        return 1.0


@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    service = await start_service(tmp_path, ZONE)
    yield service
    await service.stop()


async def internal_errors(service: Service) -> float:
    status, text = await call(service, "GET", "/metrics")
    assert status == 200
    return samples(text)[("gslb_dns_internal_errors_total", ())]


class Tcp:
    """One TCP connection to ``service``, asked one message at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, q: dns.message.Message) -> dns.message.Message:
        data = q.to_wire()
        self.writer.write(struct.pack("!H", len(data)) + data)
        await self.writer.drain()
        (length,) = struct.unpack("!H", await asyncio.wait_for(self.reader.readexactly(2),
                                                                TIMEOUT_S))
        return dns.message.from_wire(await asyncio.wait_for(self.reader.readexactly(length),
                                                            TIMEOUT_S))


def servfail_of(msg: dns.message.Message, q: dns.message.Message) -> bool:
    return (msg.rcode() == dns.rcode.SERVFAIL and msg.id == q.id and msg.question == q.question
            and bool(msg.flags & dns.flags.RD) and not msg.flags & dns.flags.AA
            and msg.edns == 0)


@pytest.mark.parametrize("answer_cache", [10000, 0])
async def test_failing_health_view_gets_servfail_logged_once_counted_always(
        service, caplog, answer_cache):
    service.answering.install(build_authority(service.config, BrokenView(), None, service.stats,
                                              AnswerSettings(answer_cache=answer_cache)))
    caplog.set_level(logging.ERROR, "gslb.dns")
    host, port = service.addresses[0]
    reader, writer = await asyncio.open_connection(host, port)
    tcp = Tcp(reader, writer)
    try:
        for i in range(50):
            q = dns.message.make_query(WWW, "A", use_edns=0,
                                       options=[dns.edns.ECSOption("192.0.2.0", 24)])
            udp_reply = await dns.asyncquery.udp(q, host, port=port, timeout=TIMEOUT_S)
            assert servfail_of(udp_reply, q), i
            assert servfail_of(await tcp.ask(q), q), i
        # the connection stays open and answers what does not fail
        good = await tcp.ask(dns.message.make_query("static.gslb.example.test.", "A"))
        assert good.rcode() == dns.rcode.NOERROR and good.answer
    finally:
        writer.close()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert "health view broke" in tracebacks[0].getMessage()
    assert WWW in tracebacks[0].getMessage()
    assert await internal_errors(service) == 100
    _status, text = await call(service, "GET", "/metrics")
    got = samples(text)
    assert got[("gslb_dns_queries_total", (("qtype", "A"), ("rcode", "SERVFAIL")))] == 100


async def test_failing_observer_on_a_cache_hit_gets_servfail(service):
    broken = [False]

    def on_choice(owner: str, pool: str, choice: object) -> None:
        if broken[0]:
            raise ValueError("observer broke")

    authority = Authority(service.config, service.view, on_choice=on_choice)
    service.answering.install(authority)
    host, port = service.addresses[0]
    q = dns.message.make_query(WWW, "A")
    first = await dns.asyncquery.udp(q, host, port=port, timeout=TIMEOUT_S)
    assert first.rcode() == dns.rcode.NOERROR  # and now in the answer cache
    broken[0] = True
    for tcp in (False, True):
        for _ in range(5):
            ask = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
            reply = await ask(q, host, port=port, timeout=TIMEOUT_S)
            assert reply.rcode() == dns.rcode.SERVFAIL and reply.question == q.question
    # the UDP ones were cache hits; over TCP (another cache shape) the
    # observer fails on the uncached answer
    assert authority.cache is not None and authority.cache.hits == 5
    assert await internal_errors(service) == 10


FAKE_MMDB = Path(__file__).parent.parent / "data" / "geoip" / "fake-country.mmdb"

GEO_ZONE = """
origins:
  london: {ipv4: [192.0.2.11], location: {country: GB}}
  virginia: {ipv4: [192.0.2.13], location: {lat: 38.95, lon: -77.45}}
pools:
  web: {policy: geo, origins: [london, virginia], countries: {GB: london}, default: virginia}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: web}
"""


def corrupt_copy(path: Path, into: Path) -> Path:
    """``path`` (an mmdb) with its data section overwritten: the search tree
    and metadata stay readable, so it opens, and every lookup that finds a
    network fails (maxminddb.InvalidDatabaseError): a broken database file
    deployed, a failure the answer path has no say in."""
    data = bytearray(path.read_bytes())
    with maxminddb.open_database(str(path)) as reader:
        meta = reader.metadata()
    start = meta.node_count * meta.record_size * 2 // 8 + 16  # tree, 16-octet separator
    end = data.rfind(b"\xab\xcd\xefMaxMind.com")
    data[start:end] = b"\xff" * (end - start)
    into.write_bytes(data)
    return into


async def test_workers_count_every_internal_error(tmp_path):
    """With --workers 2 and a corrupt GeoIP database, geo answers fail in
    every worker: each query gets SERVFAIL and the supervisor's /metrics
    counts them all."""
    geoip = corrupt_copy(FAKE_MMDB, tmp_path / "corrupt.mmdb")
    service = await start_service(tmp_path, GEO_ZONE, workers=2, geoip=geoip)
    try:
        host, port = service.addresses[0]

        async def one(i: int) -> None:  # a new socket each: the kernel picks the worker
            q = dns.message.make_query(WWW, "A", use_edns=0,
                                       options=[dns.edns.ECSOption("81.2.69.0", 24)])
            ask = dns.asyncquery.tcp if i % 2 else dns.asyncquery.udp
            # each from its own address: one address may hold 16 TCP
            # connections per worker (TcpLimits.per_source)
            reply = await ask(q, host, port=port, timeout=TIMEOUT_S, source=f"127.0.3.{i + 1}")
            assert servfail_of(reply, q)

        await asyncio.gather(*(one(i) for i in range(60)))
        # a located client that is not in the corrupt networks still answers
        q = dns.message.make_query(WWW, "A")
        ok = await dns.asyncquery.udp(q, host, port=port, timeout=TIMEOUT_S)
        assert ok.rcode() == dns.rcode.NOERROR

        async def counted() -> float:  # workers ship their counters every second
            while (n := await internal_errors(service)) < 60:
                await asyncio.sleep(0.1)
            return n
        assert await asyncio.wait_for(counted(), 10) == 60
        pool = service.server
        assert len(pool.cache_stats) == 2  # both workers reported
    finally:
        await service.stop()


class FailingSource(random.Random):
    """A random source whose ``getrandbits`` raises once ``broken``."""

    broken = False

    def getrandbits(self, k: int) -> int:
        if self.broken:
            raise RuntimeError("random source broke")
        return super().getrandbits(k)


async def test_a_stored_draw_whose_source_fails_gets_servfail(tmp_path: Path):
    # a weighted name of two origins is stored as a draw; once its random
    # source raises, every hit gets SERVFAIL (the compiled path hands the
    # query to the Python one, which fails the same way), none goes unanswered
    source = FailingSource(1)
    text = ZONE.replace("  a: {ipv4: [192.0.2.1]}", "  a: {ipv4: [192.0.2.1]}\n"
                        "  b: {ipv4: [192.0.2.2]}").replace("origins: [a]}", "origins: [a, b]}")
    service = Service(load([write_config(tmp_path, text)]), [("127.0.0.1", 0)], rng=source)
    await service.start()
    try:
        host, port = service.addresses[0]
        query = dns.message.make_query(WWW, "A")
        first = await dns.asyncquery.udp(query, host, port=port, timeout=TIMEOUT_S)
        assert first.rcode() == dns.rcode.NOERROR and first.answer
        cache = service.answering.authority.cache
        assert cache is not None and len(cache) == 1  # stored as the draw
        source.broken = True
        for _ in range(5):
            reply = await dns.asyncquery.udp(query, host, port=port, timeout=TIMEOUT_S)
            assert reply.rcode() == dns.rcode.SERVFAIL
        assert service.stats.internal_errors == 5
    finally:
        await service.stop()
