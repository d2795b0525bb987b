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
* the signed lab (``signed_lab``, ``gslb_keys``, ``signed_parent``,
  ``insecure_parent``, ``signed_gslb``, ``signed_resolver``; below): NSDs
  on 127.0.53.11 (signed root and parent) and 127.0.53.12 (gslb's child
  zones), gslb signing, a validating unbound. Skipped without ldnsutils.

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
import signal
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
from tests.ttl import lab, signing

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


def _start_nsd(conf: Path, address: str, probe: str) -> subprocess.Popen[bytes]:
    """NSD in the foreground from ``conf``, once it answers ``probe`` SOA on
    ``address`` port 53; fails with NSD's output (next to ``conf``) if it
    exits or stays silent for ``READY_TIMEOUT_S``."""
    out = conf.with_suffix(".out")
    with out.open("wb") as log:
        proc = subprocess.Popen([_binary("nsd"), "-d", "-c", str(conf)],
                                stdout=log, stderr=subprocess.STDOUT)
    query = dns.message.make_query(probe, "SOA", use_edns=0)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            logs = [out, *conf.parent.glob(f"{address}-nsd.log"), conf.parent / "nsd.log"]
            text = "".join(path.read_text() for path in logs if path.exists())
            pytest.fail(f"nsd did not start on {address}:53:\n{text}")
        try:
            dns.query.udp(query, address, timeout=0.2)
            return proc
        except (OSError, dns.exception.Timeout):
            time.sleep(0.02)  # startup poll of an external daemon


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
    proc = _start_nsd(workdir / "nsd.conf", lab.PARENT, ".")
    try:
        yield lab.PARENT
    finally:
        _stop(proc)


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
        cache = {} if seen.answer_cache is None else {"answer_cache": seen.answer_cache}
        super().__init__(seen.config, [(address, 53)], lab.MMDB, rng=random.Random(1), **cache)
        self._seen = seen
        self._address = address
        assert isinstance(self.server, DnsServer)
        self.server.handler = self.handle  # before start: the listeners take it then
        # and no answer-cache hit answered by the compiled packet path, which would pass
        # the recording handler by: every query must reach it
        self.server.cached = None

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
    ``n`` such queries and returns the n-th (raises ``TimeoutError``);
    ``reload()`` re-reads ``config_path`` in both, as SIGHUP does;
    ``answer_cache``: entries of their answer caches (None: the default).
    """

    def __init__(self, config_path: Path, answer_cache: int | None = None) -> None:
        self.config = load([config_path])
        self.answer_cache = answer_cache
        self.seen: list[Seen] = []
        self.services: list[Service] = []
        self.config_path = config_path
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

    async def reload(self) -> None:
        """Reload both from their config file, as SIGHUP does; fails the
        test with the messages if the new config is refused."""
        for service in self.services:
            result = await service.reloader.reload()
            assert result.ok, result.messages

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
                  timeout_s: float = 2.0, dnssec: bool = False) -> dns.message.Message:
        """Ask ``qname``/``rdtype`` with RD set, over UDP (TCP when the
        reply is truncated); ``ecs`` is a client subnet ``"ADDR/PREFIX"``
        to send (RFC 7871); ``dnssec`` sets DO (RFC 3225), so that the
        reply carries AD and RRSIGs (RFC 4035 section 3.2.3). Raises
        ``dns.exception.Timeout`` after ``timeout_s`` seconds."""
        options = [dns.edns.ECSOption.from_text(ecs)] if ecs else []
        query = dns.message.make_query(qname, rdtype, use_edns=0, options=options,
                                       want_dnssec=dnssec)
        reply = await dns.asyncquery.udp(query, lab.RESOLVER, port=53, timeout=timeout_s)
        if reply.flags & dns.flags.TC:
            reply = await dns.asyncquery.tcp(query, lab.RESOLVER, port=53, timeout=timeout_s)
        return reply

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 5)


StartResolver = Callable[..., Awaitable[Resolver]]


async def _start_unbound(workdir: Path) -> Resolver:
    """unbound from ``workdir/unbound.conf``, once it answers (a query
    answered locally, so the cache stays empty)."""
    log = workdir / "unbound.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            _binary("unbound"), "-d", "-c", str(workdir / "unbound.conf"),
            stdout=out, stderr=subprocess.STDOUT)
    running = Resolver(proc, log)
    probe = dns.message.make_query("id.server", "TXT", rdclass=dns.rdataclass.CH)
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                if proc.returncode is not None:
                    pytest.fail(f"unbound exited {proc.returncode}:\n{log.read_text()}")
                try:
                    await dns.asyncquery.udp(probe, lab.RESOLVER, port=53, timeout=0.2)
                    return running
                except (OSError, dns.exception.Timeout):
                    await asyncio.sleep(0.02)  # startup poll of an external daemon
    except BaseException:
        await running.stop()
        raise


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
        started.append(running := await _start_unbound(workdir))
        return running

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


# --- the signed lab (tests/ttl/test_dnssec.py) --------------------------------


class SignedParent:
    """The signed lab's two NSDs, started from ``zones``
    (``signing.write_signed_zones``): ``lab.SIGNED_PARENT`` serving the
    signed root and ``example.test.``, ``lab.CHILD`` gslb's two child zones.

    ``workdir`` holds zones and keys; ``anchor`` is the trust-anchor file
    (the root's DNSKEY); ``gslb_ds`` the DS RDATA texts of
    ``gslb.example.test.`` the parent serves now; ``secure_ds`` the DS of
    the signed child (for gslb's zone); ``keys`` the gslb keys made for the
    session (``gslb_keys``): ``"gslb"`` (``gslb dnssec keygen``, its DS is
    ``default_ds``), ``"ldns"`` (``ldns-keygen``), ``"wrong"`` (never in
    the parent).
    """

    def __init__(self, zones: signing.SignedZones) -> None:
        self.zones = zones
        self.workdir = zones.workdir
        self.anchor = zones.anchor
        self.secure_ds = zones.secure_ds
        self.keys: dict[str, Path] = {}
        self.default_ds: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            for conf, address, probe in zones.nsd_confs:
                self.procs.append(_start_nsd(conf, address, probe))
        except BaseException:
            self.stop()
            raise

    @property
    def gslb_ds(self) -> list[str]:
        return self.zones.gslb_ds

    async def publish(self, gslb_ds: list[str]) -> None:
        """Serve ``gslb_ds`` as the DS RRset of ``gslb.example.test.`` (empty:
        an insecure delegation): re-sign ``example.test.`` with the next
        serial, SIGHUP NSD (it reads changed zone files) and return once
        NSD serves the new serial (raises ``TimeoutError`` after
        ``READY_TIMEOUT_S``)."""
        await asyncio.to_thread(self.zones.sign_parent, gslb_ds)
        self.procs[0].send_signal(signal.SIGHUP)
        query = dns.message.make_query("example.test.", "SOA")
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                with contextlib.suppress(dns.exception.Timeout):
                    reply = await dns.asyncquery.udp(query, lab.SIGNED_PARENT, timeout=0.2)
                    if [rr.serial for rr in reply.answer[0]] == [self.zones.serial]:
                        return
                await asyncio.sleep(0.02)  # NSD's reload is not observable otherwise

    def stop(self) -> None:
        for proc in self.procs:
            _stop(proc)


@pytest.fixture(scope="session")
def signed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedParent]:
    """The signed lab's NSDs for the session (see ``SignedParent``), the
    parent with no DS for gslb yet (an insecure delegation). Skipped, with
    the reason, without ldnsutils, nsd, unbound or root."""
    reason = _missing() or signing.missing_tools()
    if reason:
        pytest.skip(reason)
    zones = signing.write_signed_zones(tmp_path_factory.mktemp("signed"))
    lab_parent = SignedParent(zones)
    try:
        yield lab_parent
    finally:
        lab_parent.stop()


@pytest.fixture(scope="session")
def gslb_keys(signed_lab: SignedParent) -> SignedParent:
    """The session's gslb keys in ``signed_lab.keys`` (see ``SignedParent``)
    and, as its default DS, what ``gslb dnssec ds`` prints for ``"gslb"``."""
    keys = signed_lab.workdir / "gslb-keys"
    signed_lab.keys = {"gslb": signing.gslb_keygen(lab.ZONE, keys),
                       "ldns": signing.ldns_keygen(lab.ZONE, keys),
                       "wrong": signing.ldns_keygen(lab.ZONE, signed_lab.workdir / "wrong")}
    config = signed_lab.workdir / "ds.yaml"
    config.write_text(signed_yaml(signed_lab, [("gslb", "active")]))
    signed_lab.default_ds = signing.gslb_ds(lab.ZONE, config)
    return signed_lab


@pytest_asyncio.fixture
async def signed_parent(gslb_keys: SignedParent) -> AsyncIterator[SignedParent]:
    """The session's ``SignedParent`` holding its default DS (a test that
    publishes other DS gets the default back afterwards)."""
    if gslb_keys.gslb_ds != gslb_keys.default_ds:
        await gslb_keys.publish(gslb_keys.default_ds)
    yield gslb_keys
    if gslb_keys.gslb_ds != gslb_keys.default_ds:
        await gslb_keys.publish(gslb_keys.default_ds)


@pytest_asyncio.fixture
async def insecure_parent(signed_lab: SignedParent) -> SignedParent:
    """The session's ``SignedParent`` with no DS for gslb (an insecure
    delegation of ``gslb.example.test.``)."""
    if signed_lab.gslb_ds:
        await signed_lab.publish([])
    return signed_lab


StartSigned = Callable[..., Awaitable[Authoritatives]]


@pytest_asyncio.fixture
async def signed_gslb(signed_parent: SignedParent,
                      tmp_path: Path) -> AsyncIterator[StartSigned]:
    """Factory: ``await signed_gslb(keys=[("gslb", "active")], **dnssec)``
    starts the two gslb nameservers from ``lab.signed_gslb_yaml`` with those
    session keys (name, state) and further ``dnssec:`` settings, and
    returns them (``config_path`` set: rewrite it and ``reload()``;
    ``answer_cache=0`` turns their answer caches off);
    ``unsigned=True`` serves plain ``lab.GSLB_YAML`` instead. Stopped
    after the test."""
    started: list[Authoritatives] = []

    async def factory(keys: list[tuple[str, str]] | None = None, unsigned: bool = False,
                      answer_cache: int | None = None, **dnssec: int) -> Authoritatives:
        path = tmp_path / f"gslb{len(started)}.yaml"
        path.write_text(lab.GSLB_YAML if unsigned else signed_yaml(
            signed_parent, keys or [("gslb", "active")], **dnssec))
        servers = Authoritatives(path, answer_cache)
        started.append(servers)
        await servers.start()
        return servers

    yield factory
    for servers in started:
        await servers.stop()


def signed_yaml(lab_parent: SignedParent, keys: list[tuple[str, str]], **dnssec: int) -> str:
    """``lab.signed_gslb_yaml`` with the session keys named in ``keys``."""
    return lab.signed_gslb_yaml([(str(lab_parent.keys[name]), state) for name, state in keys],
                                lab_parent.secure_ds, dnssec=dnssec)


@pytest_asyncio.fixture
async def signed_resolver(signed_lab: SignedParent,
                          tmp_path: Path) -> AsyncIterator[StartResolver]:
    """Factory like ``resolver`` for a validating unbound (ECS on, trust
    anchor ``signed_lab.anchor``, root at ``lab.SIGNED_PARENT``)."""
    started: list[Resolver] = []

    async def factory(**options: str | int) -> Resolver:
        workdir = tmp_path / f"vunbound{len(started)}"
        settings: Mapping[str, str | int] = {k.replace("_", "-"): v for k, v in options.items()}
        lab.write_signed_resolver(workdir, signed_lab.anchor, settings)
        started.append(running := await _start_unbound(workdir))
        return running

    yield factory
    for running in started:
        await running.stop()
