"""Fixtures for integration tests: real gslb nameservers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest_asyncio

from tests.integration.dnsutil import Running, start, write_config

StartServer = Callable[..., Awaitable[Running]]


@pytest_asyncio.fixture
async def dns_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Factory: ``await dns_server(yaml_text, geoip=None)`` starts a nameserver
    on 127.0.0.1 port 0 from that config; all are stopped after the test."""
    running: list[Running] = []

    async def factory(yaml_text: str, geoip: Path | None = None, **kw: object) -> Running:
        path = write_config(tmp_path, yaml_text, f"zone{len(running)}.yaml")
        server = await start(path, geoip, **kw)
        running.append(server)
        return server

    yield factory
    for server in running:
        await server.service.stop()
