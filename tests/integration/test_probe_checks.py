"""Each check type against real servers on loopback."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import trustme

from gslb.config.model import Check
from gslb.probe.checks import CHECKS, run_check
from gslb.probe.checks.http import make_session, url_of
from tests.conftest import FakeOrigin

MakeOrigin = Callable[..., Awaitable[FakeOrigin]]


def http(port: int, **kw: Any) -> Check:
    return Check(**{"type": "http", "target": "127.0.0.1", "port": port, "timeout_s": 1.0, **kw})


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with make_session() as s:
        yield s


def test_registry_and_url() -> None:
    assert set(CHECKS) == {"http", "https", "tcp"}
    assert url_of(Check("http", "2001:db8::1", 8080, path="/h?x=1")) == "http://[2001:db8::1]:8080/h?x=1"
    assert url_of(Check("https", "127.0.0.1", 443)) == "https://127.0.0.1:443/"


async def test_http_ok_has_rtt(fake_origin: MakeOrigin, session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    result = await run_check(http(origin.port), session)
    assert result.ok and result.detail == "status 200"
    assert result.rtt_ms is not None and 0 < result.rtt_ms < 1000


async def test_http_bad_status(fake_origin: MakeOrigin, session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    origin.status = 503
    result = await run_check(http(origin.port), session)
    assert not result.ok and result.detail == "status 503 not in [200]"
    assert result.rtt_ms is not None and result.rtt_ms > 0
    ok = await run_check(http(origin.port, expect_status=(200, 503)), session)
    assert ok.ok


async def test_http_redirect_is_not_followed(fake_origin: MakeOrigin,
                                             session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    origin.status = 301
    result = await run_check(http(origin.port), session)
    assert not result.ok and result.detail == "status 301 not in [200]"
    assert origin.requests == 1


async def test_http_body(fake_origin: MakeOrigin, session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    origin.body = "service is healthy"
    assert (await run_check(http(origin.port, body="healthy"), session)).ok
    result = await run_check(http(origin.port, body="ok"), session)
    assert not result.ok and result.detail == "body lacks 'ok'"


async def test_http_path_and_host_header(fake_origin: MakeOrigin,
                                         session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    result = await run_check(http(origin.port, path="/health", host_header="www.example.test"),
                             session)
    assert result.ok
    assert origin.last_headers["Host"] == "www.example.test"
    assert origin.last_headers["User-Agent"].startswith("gslb-health-check/")


async def test_http_timeout(fake_origin: MakeOrigin, session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    origin.delay_s = 5.0
    result = await run_check(http(origin.port, timeout_s=0.2), session)
    assert (result.ok, result.rtt_ms, result.detail) == (False, None, "timeout after 0.2 s")


async def test_http_refused(refused_port: int, session: aiohttp.ClientSession) -> None:
    result = await run_check(http(refused_port), session)
    assert (result.ok, result.rtt_ms, result.detail) == (False, None, "connection refused")


async def test_http_dropped_connection(fake_origin: MakeOrigin,
                                       session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    origin.drop = True
    result = await run_check(http(origin.port), session)
    assert not result.ok and "disconnected" in result.detail.lower()


async def test_http_detects_a_stopped_origin_despite_the_shared_session(
        fake_origin: MakeOrigin, session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    assert (await run_check(http(origin.port), session)).ok
    await origin.stop()
    assert (await run_check(http(origin.port), session)).detail == "connection refused"
    await origin.start()
    assert (await run_check(http(origin.port), session)).ok


async def test_http_without_a_session(fake_origin: MakeOrigin) -> None:
    origin = await fake_origin()
    assert (await run_check(http(origin.port), None)).ok


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest_asyncio.fixture
async def tls_origin(fake_origin: MakeOrigin, ca: trustme.CA) -> tuple[FakeOrigin, list[str]]:
    """An https origin with a certificate for origin.test and 127.0.0.1 from
    an untrusted CA; the list collects the SNI names it was offered."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("origin.test", "127.0.0.1").configure_cert(ctx)
    sni: list[str] = []
    ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)
    return await fake_origin(tls=ctx), sni


def https(port: int, **kw: Any) -> Check:
    return http(port, type="https", **kw)


async def test_https_verified_fails_on_an_untrusted_certificate(
        tls_origin: tuple[FakeOrigin, list[str]], session: aiohttp.ClientSession) -> None:
    origin, _ = tls_origin
    result = await run_check(https(origin.port), session)
    assert not result.ok and result.detail.startswith("TLS certificate:")
    assert "verify failed" in result.detail
    assert origin.requests == 0


async def test_https_unverified_is_ok_and_sends_sni(
        tls_origin: tuple[FakeOrigin, list[str]], session: aiohttp.ClientSession) -> None:
    origin, sni = tls_origin
    check = https(origin.port, tls_verify=False, host_header="origin.test")
    result = await run_check(check, session)
    assert result.ok and result.rtt_ms is not None and result.rtt_ms > 0
    assert sni == ["origin.test"]
    assert origin.last_headers["Host"] == "origin.test"


async def test_tcp_ok_and_refused(fake_origin: MakeOrigin, refused_port: int) -> None:
    origin = await fake_origin()
    ok = await run_check(Check("tcp", "127.0.0.1", origin.port), None)
    assert ok.ok and ok.detail == "connected"
    assert ok.rtt_ms is not None and 0 < ok.rtt_ms < 1000
    bad = await run_check(Check("tcp", "127.0.0.1", refused_port), None)
    assert (bad.ok, bad.rtt_ms, bad.detail) == (False, None, "connection refused")


async def test_http_reads_a_load_header(fake_origin: MakeOrigin,
                                        session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    origin.headers = {"X-Load": "42.5"}
    result = await run_check(http(origin.port, load_header="x-load"), session)
    assert result.ok and result.load == 42.5  # header names are case-insensitive
    origin.headers = {"X-Load": "busy"}
    result = await run_check(http(origin.port, load_header="X-Load"), session)
    assert result.ok and result.load is None  # no figure: the status still decides
    origin.headers = {}
    assert (await run_check(http(origin.port, load_header="X-Load"), session)).load is None
    assert (await run_check(http(origin.port), session)).load is None


async def test_http_reads_a_load_json_pointer(fake_origin: MakeOrigin,
                                              session: aiohttp.ClientSession) -> None:
    origin = await fake_origin()
    origin.body = '{"pool": {"a/b": [3, 17]}, "state": "healthy"}'
    result = await run_check(http(origin.port, load_json="/pool/a~1b/1"), session)
    assert result.ok and result.load == 17.0
    both = await run_check(http(origin.port, load_json="/pool/a~1b/0", body="healthy"),
                           session)
    assert both.ok and both.load == 3.0
    origin.body = "not json"
    result = await run_check(http(origin.port, load_json="/pool"), session)
    assert result.ok and result.load is None
    origin.status = 503
    assert not (await run_check(http(origin.port, load_json="/pool"), session)).ok
