"""Fixtures of the delegation lab (see ``tests/ttl/lab.py`` for the picture).

* ``parent`` (session): NSD on 127.0.53.10 serving the private root and
  ``example.test.``, which delegates ``gslb.example.test.`` by NS + glue.
* ``authoritatives`` (per test): the two gslb nameservers, in-process
  ``Service``s on 127.0.53.1:53 and 127.0.53.2:53 (what ``gslb serve`` runs),
  each with its own embedded prober, recording every query they receive.
* ``resolver`` (per test, a factory): a fresh unbound on 127.0.53.53:53, so
  every test starts with an empty cache (start-up takes about 50 ms).
* ``origin`` (per test): the ``fo`` pool's checked HTTP origin on
  127.0.54.1:8080, a ``FakeOrigin`` a test can stop and start.

Everything is skipped, with the reason, when ``nsd`` or ``unbound`` is not
installed or the tests cannot bind port 53 (not root). ``tests/run.sh``
installs both.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdataclass
import dns.rdatatype
import pytest
import pytest_asyncio

from gslb.config.load import load
from gslb.dns.server import DnsServer
from gslb.serve.service import Service
from tests.conftest import FakeOrigin
from tests.ttl import lab

READY_TIMEOUT_S = 5.0
"""Seconds a daemon may take to answer its first query."""


def _missing() -> str | None:
    for binary in ("nsd", "unbound"):
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists():
            return f"{binary} not installed (apt-get install -y nsd unbound; tests/run.sh does)"
    if os.geteuid() != 0:
        return "the delegation lab binds port 53 on 127.0.53.x: run as root"
    return None


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """NSD serving the root and ``example.test.`` on ``lab.PARENT`` port 53
    for the whole session; yields its address. Fails with NSD's log if it
    cannot start (port 53 on 127.0.53.10 taken, say by a packaged nsd)."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("nsd")
    lab.write_lab(workdir)
    log = (workdir / "nsd.out").open("wb")
    proc = subprocess.Popen([_binary("nsd"), "-d", "-c", str(workdir / "nsd.conf")],
                            stdout=log, stderr=subprocess.STDOUT)
    query = dns.message.make_query(".", "SOA", use_edns=0)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                text = (workdir / "nsd.out").read_text() + (workdir / "nsd.log").read_text()
                pytest.fail(f"nsd did not start on {lab.PARENT}:53:\n{text}")
            try:
                dns.query.udp(query, lab.PARENT, timeout=0.2)
                break
            except (OSError, dns.exception.Timeout):
                time.sleep(0.02)  # startup poll of an external daemon
        yield lab.PARENT
    finally:
        _stop(proc)
        log.close()


@dataclass(frozen=True, slots=True)
class Seen:
    """One query an authoritative received: ``at`` (event-loop clock,
    seconds), ``server`` and ``client`` addresses, ``qname`` (lower case,
    absolute), ``qtype`` mnemonic, ``ecs`` (``"ADDR/PREFIX"`` or None)."""

    at: float
    server: str
    client: str
    qname: str
    qtype: str
    ecs: str | None


class _RecordingService(Service):
    """A gslb ``Service`` that also notes each query (for counting the
    queries a resolver sends: a cache miss is a query, a hit is none)."""

    def __init__(self, seen: Authoritatives, address: str) -> None:
        super().__init__(seen.config, [(address, 53)], lab.MMDB, rng=random.Random(1))
        self._seen = seen
        self._address = address
        assert isinstance(self.server, DnsServer)
        self.server.handler = self.handle  # before start: the listeners take it then

    def handle(self, data: bytes, who: str, udp: bool) -> bytes | None:
        with contextlib.suppress(Exception):
            msg = dns.message.from_wire(data)
            ecs = next((f"{o.address}/{o.srclen}" for o in msg.options
                        if isinstance(o, dns.edns.ECSOption)), None)
            question = msg.question[0]
            self._seen.note(Seen(asyncio.get_running_loop().time(), self._address, who,
                                 question.name.to_text().lower(),
                                 dns.rdatatype.to_text(question.rdtype), ecs))
        return self.answering.handle(data, who, udp)


class Authoritatives:
    """The lab's two gslb nameservers and every query they received.

    ``start()``/``stop()`` both; ``seen`` lists ``Seen`` in arrival order;
    ``from_resolver(qname, qtype)`` the queries unbound sent for that name;
    ``wait_for(qname, qtype, n, timeout_s)`` waits until unbound has sent
    ``n`` such queries and returns the n-th (raises ``TimeoutError``).
    """

    def __init__(self, config_path: Path) -> None:
        self.config = load([config_path])
        self.seen: list[Seen] = []
        self.services: list[Service] = []
        self._changed = asyncio.Event()

    def note(self, seen: Seen) -> None:
        self.seen.append(seen)
        self._changed.set()

    async def start(self) -> None:
        for address in lab.GSLB_NS:
            service = _RecordingService(self, address)
            await service.start()
            self.services.append(service)

    async def stop(self) -> None:
        while self.services:
            await self.services.pop().stop()

    def from_resolver(self, qname: str, qtype: str = "A") -> list[Seen]:
        return [s for s in self.seen if s.client == lab.RESOLVER
                and s.qname == qname and s.qtype == qtype]

    async def wait_for(self, qname: str, qtype: str, n: int, timeout_s: float) -> Seen:
        async with asyncio.timeout(timeout_s):
            while len(found := self.from_resolver(qname, qtype)) < n:
                self._changed.clear()
                await self._changed.wait()
        return found[n - 1]


@pytest_asyncio.fixture
async def authoritatives(parent: str, tmp_path: Path) -> AsyncIterator[Authoritatives]:
    """The two gslb nameservers, started from ``lab.GSLB_YAML``; stopped after
    the test (a test may stop them earlier)."""
    path = tmp_path / "gslb.yaml"
    path.write_text(lab.GSLB_YAML)
    servers = Authoritatives(path)
    await servers.start()
    yield servers
    await servers.stop()


class Resolver:
    """A running unbound at ``lab.RESOLVER`` port 53, asked with dnspython."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc = proc
        self.log = log

    async def ask(self, qname: str, rdtype: str = "A", *, ecs: str | None = None,
                  timeout_s: float = 2.0) -> dns.message.Message:
        """Ask ``qname``/``rdtype`` with RD set, over UDP; ``ecs`` is a
        client subnet ``"ADDR/PREFIX"`` to send (RFC 7871). Raises
        ``dns.exception.Timeout`` after ``timeout_s`` seconds."""
        options = [dns.edns.ECSOption.from_text(ecs)] if ecs else []
        query = dns.message.make_query(qname, rdtype, use_edns=0, options=options)
        return await dns.asyncquery.udp(query, lab.RESOLVER, port=53, timeout=timeout_s)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 5)


StartResolver = Callable[..., Awaitable[Resolver]]


@pytest_asyncio.fixture
async def resolver(parent: str, tmp_path: Path) -> AsyncIterator[StartResolver]:
    """Factory: ``await resolver(ecs=True, **options)`` starts unbound with
    ``lab.unbound_conf`` plus ``options`` (unbound ``server:`` settings with
    ``_`` for ``-``, e.g. ``cache_min_ttl=6``) and returns a ``Resolver``
    once it answers; stopped after the test."""
    started: list[Resolver] = []

    async def factory(ecs: bool = True, **options: str | int) -> Resolver:
        workdir = tmp_path / f"unbound{len(started)}"
        settings: Mapping[str, str | int] = {k.replace("_", "-"): v for k, v in options.items()}
        lab.write_lab(workdir, unbound_options=settings, ecs=ecs)
        log = workdir / "unbound.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                _binary("unbound"), "-d", "-c", str(workdir / "unbound.conf"),
                stdout=out, stderr=subprocess.STDOUT)
        running = Resolver(proc, log)
        started.append(running)
        probe = dns.message.make_query("id.server", "TXT", rdclass=dns.rdataclass.CH)
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:  # answered locally: does not touch the cache
                if proc.returncode is not None:
                    pytest.fail(f"unbound exited {proc.returncode}:\n{log.read_text()}")
                try:
                    await dns.asyncquery.udp(probe, lab.RESOLVER, port=53, timeout=0.2)
                    return running
                except (OSError, dns.exception.Timeout):
                    await asyncio.sleep(0.02)  # startup poll of an external daemon

    yield factory
    for running in started:
        await running.stop()


@pytest_asyncio.fixture
async def origin() -> AsyncIterator[FakeOrigin]:
    """The ``fo`` pool's checked origin: HTTP 200 on ``lab.ORIGIN``, up at
    the start of the test; ``await origin.stop()`` kills it."""
    server = FakeOrigin()
    server.host, server.port = lab.ORIGIN
    await server.start()
    yield server
    await server.stop()


def addresses(msg: dns.message.Message) -> list[str]:
    """The A/AAAA addresses of the answer section, in order."""
    return [rr.address for rrset in msg.answer for rr in rrset
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]


def answer_ttl(msg: dns.message.Message) -> int:
    """TTL (seconds) of the first answer RRset."""
    return msg.answer[0].ttl


def ecs_scope(msg: dns.message.Message) -> int | None:
    """The ECS scope prefix-length of a response, None without ECS."""
    return next((o.scopelen for o in msg.options if isinstance(o, dns.edns.ECSOption)), None)


async def poll(ask: Callable[[], Awaitable[dns.message.Message]],
               done: Callable[[dns.message.Message], bool], timeout_s: float,
               every_s: float = 0.05) -> tuple[float, dns.message.Message, int]:
    """Call ``ask`` every ``every_s`` seconds until ``done(reply)``; return
    (event-loop time of that reply, the reply, replies seen before it).
    Raises ``TimeoutError`` after ``timeout_s`` seconds."""
    loop = asyncio.get_running_loop()
    before = 0
    async with asyncio.timeout(timeout_s):
        while True:
            reply = await ask()
            if done(reply):
                return loop.time(), reply, before
            before += 1
            await asyncio.sleep(every_s)
