"""Health checks: one async function per check type, and the registry.

A check is dumb: it connects once, measures, and returns a ``CheckResult``.
It keeps no state; rise/fall hysteresis lives in ``gslb.health.state`` and
the schedule in ``gslb.probe.worker``. Every check has the signature::

    async def check(check: Check, session: aiohttp.ClientSession | None) -> CheckResult

and never raises for a failure of the origin (refused, timeout, bad status):
those are ``CheckResult(ok=False, ...)``. The whole check is bounded by
``check.timeout_s`` seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from gslb.health.state import CheckResult
from gslb.probe.checks import http, tcp

if TYPE_CHECKING:
    import aiohttp

    from gslb.config.model import Check


CheckFn = Callable[["Check", "aiohttp.ClientSession | None"], Awaitable[CheckResult]]
"""An async check function (see the module docstring)."""

#: Check type (``Check.type``) → check function. One place, no magic.
CHECKS: Mapping[str, CheckFn] = MappingProxyType(
    {"http": http.check, "https": http.check, "tcp": tcp.check}
)


async def run_check(check: Check, session: aiohttp.ClientSession | None) -> CheckResult:
    """Run ``check`` with the function registered for its type.

    ``session`` is the shared session from ``http.make_session()`` (http and
    https checks make a temporary one when it is None; tcp ignores it).
    Raises ``KeyError`` for an unknown check type.
    """
    return await CHECKS[check.type](check, session)


__all__ = ["CHECKS", "CheckFn", "CheckResult", "run_check"]
