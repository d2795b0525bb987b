"""The ``tcp`` check: the origin passes when a TCP connection opens."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from gslb.health.state import CheckResult

if TYPE_CHECKING:
    import aiohttp

    from gslb.config.model import Check


def os_error_detail(exc: OSError) -> str:
    """A short text for a socket error: ``"connection refused"`` for
    ECONNREFUSED, else the system's message in lower case."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


async def check(check: Check, session: aiohttp.ClientSession | None = None) -> CheckResult:
    """Connect to ``check.target``:``check.port`` and close at once.

    ``rtt_ms`` is the connect time in milliseconds. The attempt is bounded
    by ``check.timeout_s`` seconds. ``session`` is ignored (the common check
    signature). Never raises for a failing origin.
    """
    start = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout_s):
            _, writer = await asyncio.open_connection(check.target, check.port)
    except TimeoutError:
        return CheckResult(False, None, f"timeout after {check.timeout_s:g} s")
    except OSError as exc:
        return CheckResult(False, None, os_error_detail(exc))
    rtt_ms = (time.perf_counter() - start) * 1000.0
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return CheckResult(True, rtt_ms, "connected")
