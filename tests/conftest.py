"""Shared fixtures for unit and integration tests."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

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
    * ``drop`` (bool, False): close the connection without any response;
    * ``headers`` (dict, empty): extra response headers (a reported load).

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
        self.headers: dict[str, str] = {}
        self.port = 0
        self.requests = 0
        self.last_headers: dict[str, str] = {}
        self._runner: web.ServerRunner | None = None
        self._server: web.Server | None = None
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
        return web.Response(status=self.status, text=self.body, headers=self.headers)

    async def start(self) -> None:
        """Listen (again) on ``port`` (0 the first time: the OS picks it)."""
        if self._runner is not None:
            return
        self._release = asyncio.Event()
        self._server = web.Server(self._handle)
        runner = web.ServerRunner(self._server, shutdown_timeout=1.0)
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
        # A connection the listener accepted just before it closed has its
        # connection_made run after aiohttp's shutdown looked at its
        # connections (aiohttp 3.14 web.Server.shutdown): close those too,
        # or they are collected as unclosed transports (a ResourceWarning,
        # an error here). A probe checking every 0.2 s hits that window, and
        # on a loaded machine it lasts more than a few turns of the loop
        # (stop 24's CI: three were not enough): look five times over 50 ms.
        for _ in range(5):
            await asyncio.sleep(0.01)
            if self._server is not None:
                for transport in list(self._server._connections.values()):
                    transport.close()


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


REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real ``redis-server`` on 127.0.0.1 (no persistence: a restart
    starts empty, as a crashed cache would).

    * ``port``, ``url`` (``redis://[:password@]127.0.0.1:PORT/0``, or
      ``rediss://`` with ``tls``), ``unix_path``/``unix_url`` (a Unix socket,
      plain even with TLS), ``password`` (requirepass) or None.
    * ``tls``: ``(cert_file, key_file, ca_file)`` paths: TLS only, on ``port``
      (``--tls-port``, clients not asked for certificates); ``ca_file`` is
      what a client trusts.
    * ``sentinel_of``: run as a Sentinel monitoring that server under the
      service name ``"gslbmaster"`` (quorum 1); ``url`` is then the
      ``redis+sentinel://`` URL of the master through it.
    * ``await start()`` (again on the SAME port, so tests can simulate an
      outage) waits until the server answers PING (5 s bound);
      ``await stop()`` kills it (SIGKILL: a crash, not a clean shutdown).
    """

    def __init__(self, workdir: Path, password: str | None = None,
                 tls: tuple[Path, Path, Path] | None = None,
                 sentinel_of: RedisServer | None = None, args: Sequence[str] = ()) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.password = password
        self.tls = tls
        self.sentinel_of = sentinel_of
        self.args = tuple(args)
        self.unix_path = workdir / f"redis-{self.port}.sock"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.sentinel_of is not None:
            master = self.sentinel_of
            auth = f":{master.password}@" if master.password else ""
            return f"redis+sentinel://{auth}127.0.0.1:{self.port}/gslbmaster/0"
        return f"{'rediss' if self.tls else 'redis'}://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        query = f"&password={self.password}" if self.password else ""
        return f"unix://{self.unix_path}?db=0{query}"

    def _argv(self) -> list[str]:
        assert REDIS_SERVER is not None
        if self.sentinel_of is not None:
            master = self.sentinel_of
            conf = self.workdir / f"sentinel-{self.port}.conf"
            lines = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.workdir}",
                     f"sentinel monitor gslbmaster 127.0.0.1 {master.port} 1"]
            if master.password:
                lines.append(f"sentinel auth-pass gslbmaster {master.password}")
            if self.password:
                lines.append(f"requirepass {self.password}")
            conf.write_text("\n".join(lines) + "\n")
            return [REDIS_SERVER, str(conf), "--sentinel", *self.args]
        argv = [REDIS_SERVER, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--unixsocket", str(self.unix_path),
                "--unixsocketperm", "700"]
        if self.tls:
            cert, key, ca = self.tls
            argv += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(cert),
                     "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                     "--tls-auth-clients", "no"]
        else:
            argv += ["--port", str(self.port)]
        if self.password:
            argv += ["--requirepass", self.password]
        return [*argv, *self.args]

    async def start(self) -> None:
        """Start (again, on ``port``) and wait until it answers PING."""
        if self._proc is not None:
            return
        self._proc = subprocess.Popen(self._argv(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        async with asyncio.timeout(5.0):
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self._proc.returncode}: "
                                       f"{self._argv()}")
                try:
                    if self.sentinel_of is not None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    else:
                        reader, writer = await asyncio.open_unix_connection(self.unix_path)
                except OSError:
                    await asyncio.sleep(0.01)  # polling a process that gives no event
                    continue
                try:
                    writer.write(b"PING\r\n")
                    line = await reader.readline()  # +PONG, or -NOAUTH: up either way
                finally:
                    writer.close()
                    await writer.wait_closed()
                if line:
                    return
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Kill the server (connections drop; later connects are refused)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        proc.kill()
        await asyncio.to_thread(proc.wait)


@pytest_asyncio.fixture
async def redis_servers() -> AsyncIterator[Callable[..., Awaitable[RedisServer]]]:
    """Factory: ``server = await redis_servers(password=None, tls=False,
    sentinel_of=None, args=())`` starts a ``RedisServer`` (see its
    docstring; ``tls=True`` makes certificates for 127.0.0.1 with trustme)
    and returns it; every one is killed after the test. Skips the test when
    ``redis-server`` is not installed."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="gslb-redis-"))  # short: Unix socket paths
    made: list[RedisServer] = []

    async def factory(password: str | None = None, tls: bool = False,
                      sentinel_of: RedisServer | None = None,
                      args: Sequence[str] = ()) -> RedisServer:
        files = None
        if tls:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            n = len(made)
            files = (workdir / f"cert{n}.pem", workdir / f"key{n}.pem", workdir / f"ca{n}.pem")
            cert.cert_chain_pems[0].write_to_path(str(files[0]))
            cert.private_key_pem.write_to_path(str(files[1]))
            ca.cert_pem.write_to_path(str(files[2]))
        server = RedisServer(workdir, password, files, sentinel_of, args)
        made.append(server)
        await server.start()
        return server

    try:
        yield factory
    finally:
        for server in reversed(made):
            await server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest_asyncio.fixture
async def redis_server(redis_servers: Callable[..., Awaitable[RedisServer]]) -> RedisServer:
    """One ``RedisServer`` without password on a free port (see ``redis_servers``)."""
    return await redis_servers()


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """For a test that calls ``gslb.cli.main`` in-process: it sets up the
    root logger on this test's captured stderr; put back what was there,
    so later tests do not log to a closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def require_compiled_path() -> None:
    """Fail the test (not skip it) where ``gslb.dns._packets`` is not built:
    ``tests/run.sh`` builds it, so a missing one is a broken install."""
    from gslb.dns.server import compiled_path

    if compiled_path() is None:
        pytest.fail("gslb.dns._packets is not built: `pip install -e .` builds it (gcc)")


@pytest.fixture(params=["compiled", "python"])
def packet_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on each UDP packet path (``gslb.dns.server.compiled_path``):
    the compiled one (``gslb.dns._packets``; a failure, not a skip, where it
    is not built: ``tests/run.sh`` builds it) and the pure-Python one
    (``GSLB_NO_EXT=1``, inherited by the servers and workers a test starts).
    Modules whose tests see answers on the packet path use it with
    ``pytestmark = pytest.mark.usefixtures("packet_path")``."""
    from gslb.dns.server import NO_EXT_ENV

    if request.param == "compiled":
        monkeypatch.setenv(NO_EXT_ENV, "0")
        require_compiled_path()
    else:
        monkeypatch.setenv(NO_EXT_ENV, "1")
    return str(request.param)
