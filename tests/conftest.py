"""Shared fixtures for unit and integration tests."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio
from aiohttp import web


class FakeOrigin:
    """A real aiohttp HTTP(S) server on 127.0.0.1 with a switchable handler.

    Attributes a test flips at any time (each request reads them afresh):

    * ``status`` (int, 200) and ``body`` (str, ``"ok"``): the response;
    * ``delay_s`` (float seconds, 0): wait before answering (a timeout test
      sets it above the check's timeout; ``stop()`` releases waiting
      handlers at once);
    * ``drop`` (bool, False): close the connection without any response.

    ``host``/``port`` (the port is picked by the OS at the first start and
    kept), ``url``, ``requests`` (count served), ``last_headers`` (of the
    last request) and ``tls`` (SSLContext or None) are read-only for tests.
    ``await stop()`` closes the listening socket (connections are then
    refused); ``await start()`` listens again on the SAME port, so a test can
    kill an origin and bring it back.
    """

    host = "127.0.0.1"

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.status = 200
        self.body = "ok"
        self.delay_s = 0.0
        self.drop = False
        self.port = 0
        self.requests = 0
        self.last_headers: dict[str, str] = {}
        self._runner: web.ServerRunner | None = None
        self._release = asyncio.Event()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests += 1
        self.last_headers = dict(request.headers)
        if self.delay_s > 0:
            try:
                async with asyncio.timeout(self.delay_s):
                    await self._release.wait()
            except TimeoutError:
                pass
        if self.drop and request.transport is not None:
            request.transport.close()
        return web.Response(status=self.status, text=self.body)

    async def start(self) -> None:
        """Listen (again) on ``port`` (0 the first time: the OS picks it)."""
        if self._runner is not None:
            return
        self._release = asyncio.Event()
        runner = web.ServerRunner(web.Server(self._handle), shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self.tls,
                           reuse_address=True)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Close the listener and every connection; later connects are refused."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        self._release.set()
        await runner.cleanup()


@pytest_asyncio.fixture
async def fake_origin() -> AsyncIterator[Callable[..., Awaitable[FakeOrigin]]]:
    """Factory: ``origin = await fake_origin(tls=None)`` starts a
    ``FakeOrigin`` (see its docstring) and returns it; every one is stopped
    after the test. Example::

        origin = await fake_origin()
        origin.status = 503          # checks now fail on status
        await origin.stop()          # connections refused
        await origin.start()         # back, on the same port
    """
    made: list[FakeOrigin] = []

    async def factory(tls: ssl.SSLContext | None = None) -> FakeOrigin:
        origin = FakeOrigin(tls)
        made.append(origin)
        await origin.start()
        return origin

    yield factory
    for origin in made:
        await origin.stop()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that refuses connections: bound (so nothing
    else takes it during the test) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
