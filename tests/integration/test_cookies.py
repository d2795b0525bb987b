"""DNS Cookies over real sockets (RFC 7873, server cookies of RFC 9018):
dig's cookie comes back with a server cookie that validates when sent back,
a forged one is treated as client-only, a rotated secret still accepts the
previous one's cookies and a reload without it does not, an old timestamp
is refreshed, bad lengths get FORMERR with OPT kept, BADCOOKIE only with
``require`` over UDP, the answer cache on and off; and with ``gslb serve
--workers 2`` a cookie from one worker validates on the other."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import pytest
import pytest_asyncio

from gslb.config.load import load
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.dns.cookies import BADCOOKIE, OPTION_COOKIE, client_ip, server_cookie
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, TIMEOUT_S, Running, addresses, write_config

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET, OLD = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf"), os.urandom(16)
ZONE = BASE_ZONE.format(minimum=60) + """      www: {A: 192.0.2.80}
"""
QNAME = "www.gslb.example.test."


@pytest_asyncio.fixture
async def dns_server(tmp_path: Path):
    """Factory: ``await dns_server(yaml_text, answer_cache=N)`` starts a
    nameserver on 127.0.0.1 port 0; all are stopped after the test."""
    running: list[Service] = []

    async def factory(text: str, answer_cache: int = DEFAULT_ENTRIES) -> Running:
        path = write_config(tmp_path, text, f"zone{len(running)}.yaml")
        service = Service(load([path]), [("127.0.0.1", 0)], answer_cache=answer_cache,
                          config_paths=[path])
        await service.start()
        running.append(service)
        return Running(service)

    yield factory
    for service in running:
        await service.stop()


def secret_file(tmp_path: Path, *secrets: bytes) -> Path:
    path = tmp_path / "cookie.secret"
    path.write_text("".join(s.hex() + "\n" for s in secrets))
    path.chmod(0o600)
    return path


def config(path: Path, require: bool = False) -> str:
    return ZONE + f"cookies: {{secret_file: {path}, require: {str(require).lower()}}}\n"


def cookie_of(msg: dns.message.Message) -> bytes | None:
    found = [o.to_wire() for o in msg.options if o.otype == OPTION_COOKIE]
    assert len(found) <= 1
    return found[0] if found else None


async def ask(server: Running | tuple[str, int], option: bytes | None, *, tcp: bool = False,
              qname: str = QNAME) -> dns.message.Message:
    host, port = (server.host, server.port) if isinstance(server, Running) else server
    options = [] if option is None else [dns.edns.GenericOption(OPTION_COOKIE, option)]
    q = dns.message.make_query(qname, "A", use_edns=0, options=options)
    if tcp:
        return await dns.asyncquery.tcp(q, host, port=port, timeout=TIMEOUT_S)
    return await dns.asyncquery.udp(q, host, port=port, timeout=TIMEOUT_S)


def ours(client: bytes, at: float, secret: bytes = SECRET) -> bytes:
    """The option data we expect back for ``client`` from 127.0.0.1 at ``at``."""
    return client + server_cookie(secret, client, client_ip("127.0.0.1"), int(at))


def fresh(reply: bytes | None, client: bytes, before: float, after: float,
          secret: bytes = SECRET) -> bool:
    """Whether ``reply`` is a cookie made for ``client`` between ``before``
    and ``after`` (epoch seconds) with ``secret``."""
    return reply is not None and any(reply == ours(client, t, secret)
                                     for t in range(int(before), int(after) + 1))


async def dig(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "dig", "+time=2", "+tries=1", "+norec", *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return out.decode()


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig missing: apt-get install dnsutils")
@pytest.mark.parametrize("answer_cache", [1024, 0])
async def test_dig_gets_a_cookie_and_sending_it_back_validates(dns_server, tmp_path: Path,
                                                              answer_cache: int):
    server = await dns_server(config(secret_file(tmp_path, SECRET), require=True),
                              answer_cache=answer_cache)
    at = ["@127.0.0.1", "-p", str(server.port), QNAME]
    out = await dig(*at)  # dig sends a client cookie by default
    found = re.search(r"^; COOKIE: ([0-9a-f]{48}) \(good\)$", out, re.M)
    assert found and "status: NOERROR" in out, out
    cookie = found[1]
    for extra in ((), ("+tcp",)):
        out = await dig(*at, f"+cookie={cookie}", *extra)
        assert "status: NOERROR" in out and f"; COOKIE: {cookie} (good)" in out, out
        assert re.search(r"^www\.gslb\.example\.test\.\s+300\s+IN\s+A\s+192\.0\.2\.80$", out,
                         re.M), out
    # dig retries a BADCOOKIE itself with the cookie it got: a forged one still answers
    out = await dig(*at, f"+cookie={cookie[:16]}{'0' * 32}")
    assert "status: NOERROR" in out and "192.0.2.80" in out, out


@pytest.mark.parametrize("answer_cache", [1024, 0])
async def test_many_clients_each_get_their_own_cookie(dns_server, tmp_path: Path,
                                                      answer_cache: int):
    server = await dns_server(config(secret_file(tmp_path, SECRET)), answer_cache=answer_cache)
    clients = [os.urandom(8) for _ in range(30)]
    # over TCP at most 8 at once: one client address may hold 16 connections
    # (TcpLimits.per_source), and every client here is 127.0.0.1
    at_once = asyncio.Semaphore(8)

    async def asked(option: bytes, tcp: bool) -> dns.message.Message:
        async with at_once:
            return await ask(server, option, tcp=tcp)

    for tcp in (False, True):
        before = time.time()
        first = await asyncio.gather(*(asked(c, tcp) for c in clients))
        after = time.time()
        for client, msg in zip(clients, first, strict=True):
            assert msg.rcode() == dns.rcode.NOERROR and addresses(msg) == ["192.0.2.80"]
            assert fresh(cookie_of(msg), client, before, after)
        again = await asyncio.gather(*(asked(cookie_of(m), tcp) for m in first))
        for msg, back in zip(first, again, strict=True):
            assert cookie_of(back) == cookie_of(msg)  # valid and young: the same one
            assert addresses(back) == ["192.0.2.80"]
    cache = server.service.reloader.loaded.authority.cache
    if answer_cache:
        assert cache is not None and cache.hits >= 100
    else:
        assert cache is None


async def test_forged_and_foreign_server_cookies_are_treated_as_client_only(
        dns_server, tmp_path: Path):
    server = await dns_server(config(secret_file(tmp_path, SECRET)))
    for _ in range(20):
        client = os.urandom(8)
        forged = [client + bytes(16), client + os.urandom(16), ours(client, time.time(), OLD),
                  client + os.urandom(8), client + os.urandom(32)]
        for option in forged:
            before = time.time()
            msg = await ask(server, option)
            assert msg.rcode() == dns.rcode.NOERROR and addresses(msg) == ["192.0.2.80"]
            assert fresh(cookie_of(msg), client, before, time.time())


async def test_a_query_without_a_cookie_gets_none(dns_server, tmp_path: Path):
    server = await dns_server(config(secret_file(tmp_path, SECRET), require=True))
    for tcp in (False, True):
        msg = await ask(server, None, tcp=tcp)
        assert msg.rcode() == dns.rcode.NOERROR and addresses(msg) == ["192.0.2.80"]
        assert cookie_of(msg) is None


async def test_badcookie_only_with_require_and_only_over_udp(dns_server, tmp_path: Path):
    path = secret_file(tmp_path, SECRET)
    strict = await dns_server(config(path, require=True))
    lax = await dns_server(config(path, require=False))
    for _ in range(10):
        client = os.urandom(8)
        for option in (client, client + bytes(16)):
            before = time.time()
            msg = await ask(strict, option)
            assert msg.rcode() == BADCOOKIE and not msg.answer  # RFC 7873 section 5.2.3
            assert fresh(cookie_of(msg), client, before, time.time())
            retry = await ask(strict, cookie_of(msg))  # what a client does next (section 5.3)
            assert retry.rcode() == dns.rcode.NOERROR and addresses(retry) == ["192.0.2.80"]
            over_tcp = await ask(strict, option, tcp=True)
            assert over_tcp.rcode() == dns.rcode.NOERROR and addresses(over_tcp)
            assert (await ask(lax, option)).rcode() == dns.rcode.NOERROR


async def test_old_timestamps_are_refreshed_and_expired_ones_refused(dns_server,
                                                                    tmp_path: Path):
    server = await dns_server(config(secret_file(tmp_path, SECRET), require=True))
    client = os.urandom(8)
    for age_s in (60, 1700):  # young: sent back as it came
        option = ours(client, time.time() - age_s)
        assert cookie_of(await ask(server, option)) == option
    for age_s in (1900, 3500):  # older than half an hour: still valid, refreshed
        before = time.time()
        msg = await ask(server, ours(client, time.time() - age_s))
        assert msg.rcode() == dns.rcode.NOERROR and addresses(msg)
        assert fresh(cookie_of(msg), client, before, time.time())
    for age_s in (3700, -400):  # past the hour, or too far ahead: not valid
        before = time.time()
        msg = await ask(server, ours(client, time.time() - age_s))
        assert msg.rcode() == BADCOOKIE
        assert fresh(cookie_of(msg), client, before, time.time())


async def test_rotation_accepts_the_previous_secret_until_it_is_dropped(dns_server,
                                                                       tmp_path: Path):
    path = secret_file(tmp_path, OLD)
    server = await dns_server(config(path, require=True))
    clients = [os.urandom(8) for _ in range(10)]
    issued = [cookie_of(await ask(server, c)) for c in clients]  # BADCOOKIE, with a cookie
    assert all(issued)
    secret_file(tmp_path, SECRET, OLD)  # the new secret signs, the old one still validates
    assert (await server.service.reloader.reload()).ok
    for client, option in zip(clients, issued, strict=True):
        before = time.time()
        msg = await ask(server, option)
        assert msg.rcode() == dns.rcode.NOERROR and addresses(msg) == ["192.0.2.80"]
        assert fresh(cookie_of(msg), client, before, time.time(), SECRET)  # re-signed
    secret_file(tmp_path, SECRET)
    assert (await server.service.reloader.reload()).ok
    for option in issued:
        assert (await ask(server, option)).rcode() == BADCOOKIE
    # a bad secret file on reload keeps the config in force
    path.chmod(0o644)
    result = await server.service.reloader.reload()
    assert not result.ok and any("cookies.secret_file" in m and "chmod 600" in m
                                 for m in result.messages), result.messages
    msg = await ask(server, ours(clients[0], time.time()))
    assert msg.rcode() == dns.rcode.NOERROR


@pytest.mark.parametrize("length", [1, 7, 9, 15, 41])
async def test_bad_lengths_get_formerr_with_opt_kept(dns_server, tmp_path: Path, length: int):
    server = await dns_server(config(secret_file(tmp_path, SECRET)))
    q = dns.message.make_query(QNAME, "A", use_edns=0,
                               options=[dns.edns.GenericOption(OPTION_COOKIE, bytes(length))])
    q.id = 4242
    for _ in range(2):  # the second from the cache, were it stored
        raw = await server.raw_udp(q.to_wire())
        assert raw is not None
        msg = dns.message.from_wire(raw)
        assert msg.id == 4242 and msg.rcode() == dns.rcode.FORMERR and msg.edns == 0


async def test_without_a_cookies_section_a_per_process_secret_answers(dns_server):
    server = await dns_server(ZONE)
    client = os.urandom(8)
    first = cookie_of(await ask(server, client))
    assert first is not None and first[:8] == client and len(first) == 24
    assert cookie_of(await ask(server, first)) == first  # it validates in this process


async def test_enabled_false_sends_no_cookie(dns_server):
    server = await dns_server(ZONE + "cookies: {enabled: false}\n")
    msg = await ask(server, os.urandom(8))
    assert msg.rcode() == dns.rcode.NOERROR and cookie_of(msg) is None


# -- gslb serve --workers 2 ------------------------------------------------

async def serve(config_path: Path, workers: int) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(config_path),
        "--listen", "127.0.0.1:0", "--no-admin", "--workers", str(workers),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line, "gslb serve exited early"
        match = re.search(r"serving DNS on 127\.0\.0\.1 port (\d+)", line)
        if match:
            return proc, int(match[1])


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 10) == 0


async def until_answered(address: tuple[str, int], deadline_s: float) -> None:
    """Wait until every worker answers (a round of queries from new ports)."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            await asyncio.gather(*(ask(address, None) for _ in range(20)))
            return
        except dns.exception.Timeout:
            assert time.monotonic() < end, "the workers never answered"


@pytest.mark.parametrize("shared", [True, False])
async def test_a_cookie_from_one_worker_validates_on_the_other(tmp_path: Path, shared: bool):
    """Each query comes from a new socket (a new source port), so the
    kernel spreads them over both workers. With the shared secret every one
    validates (``require`` on: no BADCOOKIE); with a per-process secret some
    get a fresh cookie from the other worker (which RFC 7873 allows)."""
    text = config(secret_file(tmp_path, SECRET), require=True) if shared else ZONE
    proc, port = await serve(write_config(tmp_path, text), workers=2)
    address = ("127.0.0.1", port)
    try:
        await until_answered(address, 15)
        client = os.urandom(8)
        issued = None
        for _ in range(5):  # with require, the first answer is a BADCOOKIE carrying it
            issued = cookie_of(await ask(address, client))
            if issued is not None:
                break
        assert issued is not None
        replies = await asyncio.gather(*(ask(address, issued) for _ in range(40)))
        assert all(m.rcode() == dns.rcode.NOERROR and addresses(m) == ["192.0.2.80"]
                   for m in replies)
        same = sum(cookie_of(m) == issued for m in replies)
        if shared:
            assert same == len(replies)
        else:
            assert 0 < same < len(replies)
    finally:
        await stop(proc)


def cookie_only_query(client: bytes, qid: int = 0x5A5A) -> bytes:
    """A QUERY with QDCOUNT 0 and an OPT record holding only a COOKIE
    option of ``client``'s cookie: asking for a server cookie (RFC 7873
    section 5.4)."""
    option = OPTION_COOKIE.to_bytes(2, "big") + len(client).to_bytes(2, "big") + client
    opt = b"\0" + (41).to_bytes(2, "big") + (1232).to_bytes(2, "big") + bytes(4)
    return (qid.to_bytes(2, "big") + b"\x01\x00" + b"\0\0\0\0\0\0\0\x01"
            + opt + len(option).to_bytes(2, "big") + option)


async def udp_raw(server: Running, payload: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class One(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(
        One, remote_addr=(server.host, server.port))
    try:
        transport.sendto(payload)
        return await asyncio.wait_for(got, TIMEOUT_S)
    finally:
        transport.close()


@pytest.mark.parametrize("answer_cache", [DEFAULT_ENTRIES, 0])
async def test_a_query_with_no_question_gets_a_server_cookie(dns_server, tmp_path: Path,
                                                             answer_cache: int):
    """RFC 7873 section 5.4: QDCOUNT 0 with a COOKIE option gets NOERROR, no
    records, and a server cookie that then validates (``require`` answers
    the next query instead of sending BADCOOKIE)."""
    server = await dns_server(config(secret_file(tmp_path, SECRET), require=True),
                              answer_cache=answer_cache)
    for _ in range(3):  # never reused from the cache: each gets its own cookie
        client = os.urandom(8)
        before = time.time()
        reply = dns.message.from_wire(await udp_raw(server, cookie_only_query(client)),
                                      question_only=False)
        assert reply.id == 0x5A5A and reply.rcode() == dns.rcode.NOERROR
        assert not reply.question and not reply.answer and not reply.authority
        cookie = cookie_of(reply)
        assert fresh(cookie, client, before, time.time())
        msg = await ask(server, cookie)
        assert msg.rcode() == dns.rcode.NOERROR and addresses(msg) == ["192.0.2.80"]


async def test_a_query_with_no_question_and_no_cookie_is_still_formerr(dns_server):
    server = await dns_server(ZONE + "cookies: {enabled: false}\n")
    reply = await udp_raw(server, cookie_only_query(os.urandom(8)))
    assert reply[3] & 0xF == dns.rcode.FORMERR and reply[4:6] == b"\0\0"
    no_cookie = cookie_only_query(b"")[:-4]  # the OPT record without options
    no_cookie = no_cookie[:-2] + b"\0\0"
    server = await dns_server(ZONE)
    reply = await udp_raw(server, no_cookie)
    assert reply[3] & 0xF == dns.rcode.FORMERR
