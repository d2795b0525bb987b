"""TCP that no client can starve (issue 15, item 6): the per-address limit,
the eviction of the connection idle longest when the listener is full
(RFC 7766 section 6.2.3), the write timeout of a client that does not read
its answers, the idle timeout a trickled query does not reset, and the
whole under a flood: 1,000 idle connections and 20 non-reading pipelining
clients while a new client's query is answered within 100 ms, every 50 ms.

The first tests run a :class:`DnsServer` in-process with a handler that
echoes (or pads) the query bytes, on real loopback sockets from their own
source addresses (all of 127.0.0.0/8 is loopback on Linux); the flood test
runs ``gslb serve`` and the flood (``tests/integration/tcpflood.py``) as
processes of their own, so neither delays the client it times."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import resource
import signal
import socket
import struct
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode
import pytest
from prometheus_client import generate_latest

from gslb.config.load import load
from gslb.dns.server import TCP_SOCKET_BUFFER, TCP_WRITE_CHUNK, DnsServer, TcpLimits
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, addresses, write_config

ROOT = Path(__file__).resolve().parent.parent.parent
#: Seconds any single step of a test may take before it fails.
STEP_S = 3.0


class Echo:
    """A handler answering each query with its own bytes plus ``pad``
    zero bytes; counts the queries it was given."""

    def __init__(self, pad: int = 0) -> None:
        self.pad = b"\0" * pad
        self.calls = 0

    def __call__(self, data: bytes, who: str, udp: bool) -> bytes:
        self.calls += 1
        return data + self.pad


def frame(payload: bytes) -> bytes:
    return struct.pack("!H", len(payload)) + payload


async def until(condition: Callable[[], bool], what: str, timeout_s: float = STEP_S) -> None:
    """Wait (polling the loop, every 5 ms) until ``condition()``; fails the
    test after ``timeout_s`` seconds naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.005)


class Client:
    """One TCP connection to the server from loopback address ``source``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, source: str, rcvbuf: int | None = None) -> Client:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(
            sock, ("127.0.0.1", port)), STEP_S)
        return cls(*await asyncio.open_connection(sock=sock))

    async def ask(self, payload: bytes) -> bytes:
        """Send one framed query, read one framed answer."""
        self.writer.write(frame(payload))
        head = await asyncio.wait_for(self.reader.readexactly(2), STEP_S)
        return await asyncio.wait_for(self.reader.readexactly(struct.unpack("!H", head)[0]),
                                      STEP_S)

    async def closed_by_server(self) -> bool:
        """True when the server closed or reset the connection (EOF or
        reset within ``STEP_S``), False when it still answers."""
        try:
            answer = await self.ask(b"still there?")
        except (asyncio.IncompleteReadError, ConnectionError):
            return True
        assert answer.startswith(b"still there?")
        return False

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., object]]:
    """Factory: ``await start(handler, TcpLimits(...))`` runs a DnsServer on
    127.0.0.1 port 0; returns it, its port; all stopped after the test."""
    servers: list[DnsServer] = []

    async def factory(handler: Echo, limits: TcpLimits) -> tuple[DnsServer, int]:
        server = DnsServer(handler, [("127.0.0.1", 0)], limits)
        await server.start()
        servers.append(server)
        return server, server.addresses[0][1]

    yield factory
    for server in servers:
        await server.stop()


async def test_a_client_address_beyond_its_limit_is_closed_at_once(start, caplog) -> None:
    caplog.set_level(logging.WARNING, "gslb.dns")
    server, port = await start(Echo(), TcpLimits(per_source=3))
    mine = [await Client.open(port, "127.0.3.1") for _ in range(3)]
    for client in mine:
        assert await client.ask(b"q") == b"q"
    extra = [await Client.open(port, "127.0.3.1") for _ in range(4)]
    for client in extra:
        assert await client.closed_by_server()
    assert server.tcp_counters["refused_per_source"] == 4
    other = await Client.open(port, "127.0.3.2")  # another address is not held back
    assert await other.ask(b"q") == b"q"
    mine.pop().close()  # a slot freed is a slot again
    await until(lambda: server.tcp_connections == 3, "the closed connection forgotten")
    again = await Client.open(port, "127.0.3.1")
    assert await again.ask(b"q") == b"q"
    # one log line for the four refusals (the next would come TCP_LOG_INTERVAL_S later)
    lines = [r.getMessage() for r in caplog.records if r.name == "gslb.dns"]
    assert len(lines) == 1 and "refused from addresses at their limit of 3" in lines[0], lines
    for client in [*mine, *extra, other, again]:
        client.close()


async def test_a_full_listener_closes_the_connection_idle_longest(start) -> None:
    server, port = await start(Echo(), TcpLimits(clients=3))
    a = await Client.open(port, "127.0.4.1")
    b = await Client.open(port, "127.0.4.2")
    c = await Client.open(port, "127.0.4.3")
    assert await a.ask(b"a") == b"a"  # a was opened first but has asked since: b idled longest
    d = await Client.open(port, "127.0.4.4")
    assert await d.ask(b"d") == b"d"
    assert await b.closed_by_server()
    assert server.tcp_counters["evicted"] == 1
    for client in (a, c, d):
        assert not await client.closed_by_server()
    assert server.tcp_connections == 3
    for client in (a, b, c, d):
        client.close()


async def blocked(port: int, source: str, server: DnsServer, handler: Echo) -> Client:
    """A client that sends queries and never reads: with 60,000-byte
    answers and a 4 KiB receive buffer, the server's answers soon wait."""
    client = await Client.open(port, source, rcvbuf=4096)
    before = server.tcp_blocked
    client.writer.write(frame(b"big") * 20)
    await until(lambda: server.tcp_blocked > before, f"{source}'s answers waiting")
    return client


async def test_a_busy_connection_is_never_evicted_and_with_none_idle_a_new_one_is_refused(
        start) -> None:
    handler = Echo(pad=60_000)
    server, port = await start(handler, TcpLimits(clients=2))
    busy = await blocked(port, "127.0.5.1", server, handler)  # the oldest, but busy
    idle = await Client.open(port, "127.0.5.2")
    newer = await Client.open(port, "127.0.5.3")  # evicts idle, not busy
    assert await idle.closed_by_server()
    assert server.tcp_counters["evicted"] == 1
    newer.writer.write(frame(b"big") * 40)  # and does not read: now both slots are busy
    await until(lambda: server.tcp_blocked == 2, "both connections' answers waiting")
    refused = await Client.open(port, "127.0.5.4")
    assert await refused.closed_by_server()
    assert server.tcp_counters["refused_full"] == 1
    assert server.tcp_connections == 2 and server.tcp_counters["evicted"] == 1
    for client in (busy, idle, newer, refused):
        client.close()


async def test_a_client_that_does_not_read_is_reset_after_the_write_timeout(start) -> None:
    handler = Echo(pad=60_000)
    server, port = await start(handler, TcpLimits(write_timeout_s=0.5))
    client = await blocked(port, "127.0.6.1", server, handler)
    loop = asyncio.get_running_loop()
    since, answered = loop.time(), handler.calls
    # one turn's answers wait in the process (under TCP_WRITE_CHUNK plus one answer of at most
    # 65,537 bytes), the queries behind them unread
    assert 0 < server.tcp_queued_bytes() <= TCP_WRITE_CHUNK + 65_537 + 20 * len(frame(b"big"))
    (conn,) = server._connections
    assert conn.transport is not None and not conn.transport.is_reading()
    for _ in range(50):  # more queries while it waits: they are not read
        client.writer.write(frame(b"big"))
    await asyncio.sleep(0.3)  # not before its time
    assert server.tcp_connections == 1
    await until(lambda: server.tcp_connections == 0, "the connection reset", 0.5 + 1.0)
    # within the timeout of the first wait, though the kernel let a few more bytes through
    assert loop.time() - since < 0.5 + 1.0
    assert handler.calls < answered + 10  # of the 70 queries sent
    assert server.tcp_counters["write_timeouts"] == 1 and server.tcp_queued_bytes() == 0
    with pytest.raises(ConnectionResetError):  # a reset: the client learns of it at once
        while await asyncio.wait_for(client.reader.read(1 << 16), STEP_S):
            pass
    client.close()


async def test_a_client_reading_a_little_now_and_then_is_reset_all_the_same(start) -> None:
    """Reading 64 KiB every 0.1 s lets each waiting answer out within the
    timeout, but never drains the answers of its 40 queries (2.4 MB): reset
    within the write timeout of the first wait all the same."""
    handler = Echo(pad=60_000)
    server, port = await start(handler, TcpLimits(write_timeout_s=0.5))
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.6.2", 0))
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), STEP_S)
        await loop.sock_sendall(sock, frame(b"big") * 40)
        await until(lambda: server.tcp_blocked == 1, "answers waiting for the client")
        since, got = loop.time(), 0
        with pytest.raises(ConnectionResetError):
            while loop.time() - since < 0.5 + 1.0:
                data = await asyncio.wait_for(loop.sock_recv(sock, 64 << 10), STEP_S)
                assert data, "closed rather than reset"
                got += len(data)
                await asyncio.sleep(0.1)
        assert got > 0 and loop.time() - since < 0.5 + 1.0
        assert server.tcp_counters["write_timeouts"] == 1
    finally:
        sock.close()


async def test_a_query_trickled_byte_by_byte_does_not_keep_its_connection(start) -> None:
    server, port = await start(Echo(), TcpLimits(idle_s=0.3))
    client = await Client.open(port, "127.0.7.1")
    loop = asyncio.get_running_loop()
    since = loop.time()
    data = frame(b"x" * 200)
    for i in range(len(data) - 1):  # never the last byte
        if server.tcp_connections == 0:
            break
        client.writer.write(data[i:i + 1])
        await asyncio.sleep(0.02)
    assert server.tcp_connections == 0, "still open after a trickle of 4 s"
    assert loop.time() - since < 0.3 + 0.3
    assert server.tcp_counters["idle_timeouts"] == 1
    client.close()


async def read_answers(client: Client, count: int) -> list[bytes]:
    answers = []
    for _ in range(count):
        head = await asyncio.wait_for(client.reader.readexactly(2), STEP_S)
        answers.append(await asyncio.wait_for(
            client.reader.readexactly(struct.unpack("!H", head)[0]), STEP_S))
    return answers


async def test_pipelined_queries_are_all_answered_in_order(start) -> None:
    """500 queries in one write, then 500 in pieces cut anywhere (a length
    split from its query, a query over several reads): every answer, in
    order, one turn of TCP_BATCH at a time."""
    _server, port = await start(Echo(), TcpLimits())
    client = await Client.open(port, "127.0.8.1")
    queries = [f"query {n}".encode() * (1 + n % 7) for n in range(500)]
    client.writer.write(b"".join(frame(q) for q in queries))
    assert await read_answers(client, len(queries)) == queries
    rng = random.Random(15)
    stream = b"".join(frame(q) for q in queries)
    pos = 0
    while pos < len(stream):
        cut = pos + rng.randint(1, 300)
        client.writer.write(stream[pos:cut])
        await client.writer.drain()
        await asyncio.sleep(0.001)  # mostly one read each
        pos = cut
    assert await read_answers(client, len(queries)) == queries
    client.close()


async def test_answers_held_back_by_a_slow_reader_all_arrive_in_order(start) -> None:
    """A client that reads only once its answers have stopped the server's
    reading (within the write timeout) gets every answer, in order."""
    handler = Echo(pad=30_000)
    server, port = await start(handler, TcpLimits())
    client = await Client.open(port, "127.0.8.2", rcvbuf=4096)
    queries = [f"q{n}".encode() for n in range(40)]
    client.writer.write(b"".join(frame(q) for q in queries))
    await until(lambda: server.tcp_blocked == 1, "answers waiting for the client")
    assert handler.calls < len(queries)  # reading stopped while they wait
    answers = await read_answers(client, len(queries))
    assert answers == [q + handler.pad for q in queries]
    assert server.tcp_counters["write_timeouts"] == 0
    client.close()


async def start_serve(tmp_path: Path, *flags: str) -> tuple[asyncio.subprocess.Process, int]:
    """``gslb serve`` on 127.0.0.1 port 0 with ``flags``, from
    ``FLOOD_ZONE``; the process and its port."""
    config = write_config(tmp_path, FLOOD_ZONE)
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(config),
        "--listen", "127.0.0.1:0", "--no-admin", *flags,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert serve.stdout is not None
    while True:
        line = (await asyncio.wait_for(serve.stdout.readline(), 15)).decode()
        assert line, "gslb serve exited early"
        if match := re.search(r"serving DNS on 127\.0\.0\.1 port (\d+)", line):
            return serve, int(match[1])


async def stop_serve(serve: asyncio.subprocess.Process) -> bytes:
    """SIGTERM ``serve``, wait for it; its stderr."""
    if serve.returncode is None:
        serve.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(serve.communicate(), 15)
    return err


async def test_the_tcp_flags_reach_every_worker(tmp_path: Path) -> None:
    """``--tcp-per-source 1`` with two workers: each admits one connection
    from an address, so of three open at once from it, one or two are
    answered and the rest closed (without the flag in the workers, all
    three would be answered)."""
    serve, port = await start_serve(tmp_path, "--workers", "2", "--tcp-per-source", "1")
    try:
        q = dns.message.make_query("static.gslb.example.test.", "A").to_wire()
        clients = [await Client.open(port, "127.0.10.1") for _ in range(3)]
        answered = 0
        for client in clients:
            try:
                answer = await client.ask(q)
            except (asyncio.IncompleteReadError, ConnectionError):
                continue
            assert dns.message.from_wire(answer).rcode() == dns.rcode.NOERROR
            answered += 1
        assert 1 <= answered <= 2
        for client in clients:
            client.close()
    finally:
        await stop_serve(serve)


@pytest.mark.parametrize("workers", [1, 2])
async def test_refused_connections_reach_the_metrics(tmp_path: Path, workers: int) -> None:
    """What the DNS server counts lands in the service's QueryStats (from
    every worker: shipped with their stats) and so on ``/metrics`` as
    ``gslb_dns_tcp_connections_closed_total{reason}``."""
    config = load([write_config(tmp_path, FLOOD_ZONE)])
    service = Service(config, [("127.0.0.1", 0)], workers=workers,
                      tcp=TcpLimits(per_source=1))
    await service.start()
    try:
        port = service.addresses[0][1]
        q = dns.message.make_query("static.gslb.example.test.", "A").to_wire()
        clients = [await Client.open(port, "127.0.10.2") for _ in range(2 * workers + 2)]
        answered = 0
        for client in clients:
            try:
                await client.ask(q)
                answered += 1
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
        assert 1 <= answered <= workers
        refused = len(clients) - answered
        await until(lambda: service.stats.tcp.get("refused_per_source") == refused,
                    f"{refused} refused in the stats", 5.0)
        text = generate_latest(service.registry).decode()
        assert (f'gslb_dns_tcp_connections_closed_total{{reason="refused_per_source"}} '
                f"{float(refused)}") in text
        for client in clients:
            client.close()
    finally:
        await service.stop()


# -- the flood -----------------------------------------------------------------------

FLOOD_ZONE = BASE_ZONE.format(minimum=30) + """
      static: {A: 192.0.2.10}
"""
WRITE_TIMEOUT_S = 2.0
#: Seconds every probe of the flood test takes, at most.
PROBE_LIMIT_S = 0.100


def raise_open_files(needed: int) -> None:
    """This process's soft RLIMIT_NOFILE up to its hard limit (CI's soft
    limit may be 1024); the processes it starts inherit it. Skips the test
    when even the hard limit is below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} the flood needs")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def server_queues(port: int) -> tuple[int, int, int]:
    """The server's TCP connections on ``port`` as the kernel has them:
    ``(count, largest Recv-Q, largest Send-Q)`` in bytes (``ss``)."""
    proc = await asyncio.create_subprocess_exec(
        "ss", "-tnH", "state", "established", f"( sport = :{port} )",
        stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), STEP_S)
    rows = [line.split() for line in out.decode().splitlines() if line.strip()]
    return (len(rows), max((int(r[0]) for r in rows), default=0),
            max((int(r[1]) for r in rows), default=0))


@pytest.mark.skipif(sys.platform != "linux", reason="loopback sources 127.0.x.y are Linux's")
async def test_a_new_client_is_answered_within_100_ms_under_a_tcp_flood(tmp_path: Path) -> None:
    raise_open_files(4096)
    serve, port = await start_serve(tmp_path, "--tcp-write-timeout", str(WRITE_TIMEOUT_S))
    flood = None
    try:
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.tcpflood", "127.0.0.1", str(port),
            "--idle-sources", "100", "--per-source", "10", "--nonreaders", "20",
            "--seconds", "20", cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        reports: list[dict[str, object]] = []

        async def read_reports() -> None:
            assert flood is not None and flood.stdout is not None
            async for line in flood.stdout:
                reports.append(json.loads(line))

        reading = asyncio.create_task(read_reports())
        # the flood holds its 1,000 idle connections: the listener (512) is full, evicting
        await until(lambda: bool(reports) and reports[-1]["idle_peak"] >= 1000  # type: ignore[operator]
                    and reports[-1]["idle_closed"] >= 100, "the flood at full strength",  # type: ignore[operator]
                    10)
        loop = asyncio.get_running_loop()
        latencies: list[float] = []
        queues: list[tuple[int, int, int]] = []
        end = loop.time() + 4.0
        while loop.time() < end:  # a new connection and query every 50 ms, from 127.0.9.1
            q = dns.message.make_query("static.gslb.example.test.", "A")
            sent = loop.time()
            reply = await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=1.0,
                                             source="127.0.9.1")
            latencies.append(loop.time() - sent)
            assert reply.rcode() == dns.rcode.NOERROR and addresses(reply) == ["192.0.2.10"]
            if len(latencies) % 20 == 0:
                queues.append(await server_queues(port))
            await asyncio.sleep(max(0.0, sent + 0.05 - loop.time()))
        flood.send_signal(signal.SIGTERM)
        await asyncio.wait_for(reading, 10)
    finally:
        if flood is not None and flood.returncode is None:
            flood.send_signal(signal.SIGTERM)
            await asyncio.wait_for(flood.wait(), 10)
        err = await stop_serve(serve)
    slow = [round(s * 1000, 1) for s in latencies if s >= PROBE_LIMIT_S]
    assert len(latencies) >= 60 and not slow, (
        f"{len(slow)} of {len(latencies)} queries took 100 ms or more: {slow}")
    # the flood more than filled the listener throughout: the server kept closing its idle
    # connections to admit new ones (the flood's own and the probes)
    assert reports[-1]["idle_closed"] > 1000  # type: ignore[operator]
    # every non-reading client was ended, each within the write timeout of its stall
    lives = [life for r in reports for life in r["nonreader_lives"]]  # type: ignore[attr-defined]
    assert len(lives) >= 20
    late = [life for life in lives if life[1] is not None and life[1] > WRITE_TIMEOUT_S + 1.0]
    assert not late, late
    # what the kernel holds for any one connection stays within its socket buffers (main:
    # 2.9 MB sent and 2.7 MB received after 30 s of one non-reading client)
    bound = 2 * TCP_SOCKET_BUFFER + TCP_WRITE_CHUNK + 65_537  # the buffer, and one last write
    assert all(recv_q <= bound and send_q <= bound for _c, recv_q, send_q in queues), queues
    # and it said so in a few lines, not one per connection
    lines = [line for line in err.decode().splitlines() if "gslb.dns: TCP connections" in line]
    assert 1 <= len(lines) <= 3 and "idle ones closed to admit new ones" in " ".join(lines), lines
