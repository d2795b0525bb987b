"""A TCP proxy that adds latency in user space (no ``tc netem`` needed).

Each :class:`DelayProxy` listens on 127.0.0.1 (port picked by the OS) and
forwards every connection to one target after waiting ``delay_ms``
milliseconds: it holds the connection (and the first bytes the client
sends) for that long before it connects upstream. An HTTP check through it
therefore sees its time to response headers grow by ``delay_ms``, as if the
path to the origin were that much longer; a ``tcp`` check (connect time
only) would not, since the kernel accepts at once. Change ``delay_ms`` at
any time: new connections use the new value. When the target refuses, the
client's connection is closed without a byte (the check fails).

One proxy per (vantage, origin) gives each vantage its own network path to
each origin, as probes in different regions have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger("tests.delay_proxy")


class DelayProxy:
    """Forward 127.0.0.1:``port`` to ``target_host``:``target_port`` with
    ``delay_ms`` (milliseconds, float) of added latency per connection.
    ``connections`` counts accepted connections. ``await start()`` /
    ``await stop()`` (closes the listener and every open connection)."""

    def __init__(self, target_host: str, target_port: int, delay_ms: float = 0.0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.delay_ms = delay_ms
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # every stream of a connection, registered the moment it exists: a
        # handler task cancelled before its first step never runs its
        # ``finally``, and asyncio's stream server does not close the
        # transport of a cancelled handler; stop() closes what is left
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on 127.0.0.1 (port 0 the first time, then the same port)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection in flight; returns when
        every handler has ended and every socket is closed."""
        if self._server is not None:
            self._server.close()
            self._server = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writers = list(self._writers)
        for writer in writers:
            writer.close()
        await asyncio.gather(*(self._closed(w) for w in writers), return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a plain function: the writer and the task are registered before
        # the event loop runs anything else
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.get_running_loop().create_task(self._forward(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _closed(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self._writers.discard(writer)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_writer: asyncio.StreamWriter | None = None
        try:
            await asyncio.sleep(self.delay_ms / 1000.0)
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port)
            except OSError:
                return
            self._writers.add(up_writer)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except asyncio.CancelledError:
            # stop() ends the handler
            return
        finally:
            # close both at once, before any await: a cancel that arrives
            # while waiting for one to close must not leave the other open
            opened = [w for w in (writer, up_writer) if w is not None]
            for w in opened:
                w.close()
            for w in opened:
                await self._closed(w)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy ``reader`` to ``writer`` until end of stream, then half-close."""
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
