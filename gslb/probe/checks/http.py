"""The ``http`` and ``https`` checks: one GET, judged by status and body.

The origin passes when ``GET {scheme}://{target}:{port}{path}`` answers with
a status in ``check.expect_status`` and, when ``check.body`` is set, the
first ``MAX_BODY_BYTES`` of the (decoded) body contain that text. Redirects
are not followed (a 301 is judged as a 301). ``check.host_header`` sets the
``Host`` header and, for https, the TLS SNI name, which is also the name the
certificate is verified against; ``check.tls_verify=False`` skips
certificate verification.

With ``check.load_header`` or ``check.load_json`` the result carries the
origin's reported load (:mod:`gslb.probe.checks.load`; a JSON body is read
up to ``MAX_BODY_BYTES``): None when the figure is missing or no number,
which never changes whether the check passes.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import TYPE_CHECKING

import aiohttp

from gslb import __version__
from gslb.health.state import CheckResult
from gslb.probe.checks.load import as_load, load_from_json
from gslb.probe.checks.tcp import os_error_detail

if TYPE_CHECKING:
    from gslb.config.model import Check

MAX_BODY_BYTES = 64 * 1024
"""Bytes of the body read at most when ``check.body`` or ``check.load_json`` is set."""

USER_AGENT = f"gslb-health-check/{__version__}"


def make_session() -> aiohttp.ClientSession:
    """The session every http/https check shares: a fresh connection per
    check (``force_close``, so a dead origin is not hidden by a pooled
    connection), no connection limit, no cookies kept, no session timeout
    (each check bounds itself). Call from a running event loop and close it
    when done."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, limit=0),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT},
    )


def url_of(check: Check) -> str:
    """``{type}://{target}:{port}{path}``, an IPv6 target in brackets."""
    host = f"[{check.target}]" if ":" in check.target else check.target
    return f"{check.type}://{host}:{check.port}{check.path}"


async def check(check: Check, session: aiohttp.ClientSession | None = None) -> CheckResult:
    """Run one http(s) check; ``rtt_ms`` is milliseconds to the response
    headers (connect and TLS included). Bounded by ``check.timeout_s``
    seconds. With ``session`` None a temporary session is made. Never raises
    for a failing origin."""
    if session is None:
        async with make_session() as own:
            return await _get(check, own)
    return await _get(check, session)


async def _get(check: Check, session: aiohttp.ClientSession) -> CheckResult:
    headers = {"Host": check.host_header} if check.host_header else None
    start = time.perf_counter()
    load: float | None = None
    try:
        async with asyncio.timeout(check.timeout_s):
            async with session.get(
                url_of(check),
                headers=headers,
                allow_redirects=False,
                ssl=check.tls_verify,  # False: no certificate verification
                server_hostname=check.host_header if check.type == "https" else None,
            ) as resp:
                rtt_ms = (time.perf_counter() - start) * 1000.0
                if resp.status not in check.expect_status:
                    expected = ", ".join(map(str, check.expect_status))
                    return CheckResult(False, rtt_ms, f"status {resp.status} not in [{expected}]")
                if check.load_header is not None:
                    load = as_load(resp.headers.get(check.load_header))
                if check.body is None and check.load_json is None:
                    return CheckResult(True, rtt_ms, f"status {resp.status}", load)
                head = bytearray()
                while len(head) < MAX_BODY_BYTES:
                    chunk = await resp.content.read(MAX_BODY_BYTES - len(head))
                    if not chunk:
                        break
                    head += chunk
    except TimeoutError:
        return CheckResult(False, None, f"timeout after {check.timeout_s:g} s")
    except aiohttp.ClientConnectorCertificateError as exc:
        return CheckResult(False, None, f"TLS certificate: {exc.certificate_error}")
    except aiohttp.ClientSSLError as exc:
        return CheckResult(False, None, f"TLS: {exc.os_error}")
    except aiohttp.ClientConnectorError as exc:
        return CheckResult(False, None, os_error_detail(exc.os_error))
    except (aiohttp.ClientError, ssl.SSLError) as exc:
        return CheckResult(False, None, f"{type(exc).__name__}: {exc}".rstrip(": "))
    except OSError as exc:
        return CheckResult(False, None, os_error_detail(exc))
    if check.load_json is not None:
        load = load_from_json(bytes(head), check.load_json)
    if check.body is None:
        return CheckResult(True, rtt_ms, f"status {resp.status}", load)
    if check.body.encode() in head:
        return CheckResult(True, rtt_ms, f"status {resp.status}, body has {check.body!r}", load)
    return CheckResult(False, rtt_ms, f"body lacks {check.body!r}", load)
