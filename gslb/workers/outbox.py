"""The messages between the supervisor and one worker, written without
ever blocking the event loop: :class:`Outbox` (each side has one).

``Connection.send`` blocks once the socket buffer to a worker is full,
which happens as soon as a worker stops reading (stopped by SIGSTOP, stuck
in a long computation, paged out): the supervisor's loop, and with it the
admin server, the prober or Redis watcher and every other worker, would
wait for it. An :class:`Outbox` writes each message with ``MSG_DONTWAIT``
and, when the buffer is full, keeps the rest for when the socket is
writable again (``loop.add_writer``). Only the latest message of each kind
is kept waiting: a :class:`~gslb.workers.messages.View` replaces the view
not yet begun (each snapshot is the whole view, so the latest is all a
worker needs), a :class:`~gslb.workers.messages.Reload` the reload not yet
begun. So what waits for one worker is bounded: the rest of the one frame
being written, plus at most one message of each kind.

A worker writes to the supervisor through one too, for the same reason the
other way round: a supervisor that stops reading (stopped, stuck) must not
stop the workers answering. Its :class:`~gslb.workers.messages.Stats` are
counts since the last ones sent, so it sends none while anything waits
(:func:`ship_stats`): the counts go on adding up in the worker and are sent
whole once the supervisor reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Generic, TypeVar

from gslb.stats import QueryStats
from gslb.workers.messages import Stats, ToSupervisor, ToWorker

M = TypeVar("M", bound=ToWorker | ToSupervisor)
"""What one outbox carries: the supervisor's ``ToWorker``, a worker's ``ToSupervisor``."""


def frame(message: ToWorker | ToSupervisor) -> bytes:
    """``message`` as ``multiprocessing.connection.Connection.send`` puts it
    on the wire (a signed 32-bit big-endian length, or -1 and a 64-bit one,
    then the pickle), so the worker reads it with ``Connection.recv``."""
    payload = bytes(ForkingPickler.dumps(message))
    n = len(payload)
    header = struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)
    return header + payload


class Outbox(Generic[M]):
    """Messages to the process at the other end of ``conn`` (one end of a
    ``multiprocessing`` duplex ``Pipe``: a Unix stream socket), written
    from the running event loop without blocking.

    ``conn`` itself stays blocking (this side reads the other's messages
    from it): the outbox writes through a duplicate of its file descriptor
    with ``MSG_DONTWAIT`` on each call.
    """

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._loop = loop
        self._frame: memoryview | None = None  # being written
        self._waiting: list[M] = []  # not begun: at most one per kind
        self._watching = False  # loop.add_writer in force
        self.closed = False
        self.sent = 0
        """Messages written whole so far."""
        self.replaced = 0
        """Messages dropped for a newer one of their kind before being begun."""

    @property
    def backlog(self) -> int:
        """Bytes of the frame being written not yet in the socket, plus the
        number of messages waiting behind it."""
        return (len(self._frame) if self._frame is not None else 0) + len(self._waiting)

    def send(self, message: M) -> None:
        """Queue ``message`` and write what the socket takes now; never
        blocks. A message of the same kind waiting (not begun) is replaced.
        Does nothing once closed (the worker's death is seen on its read
        side)."""
        if self.closed:
            return
        kind = type(message)
        kept = [m for m in self._waiting if type(m) is not kind]
        self.replaced += len(self._waiting) - len(kept)
        kept.append(message)
        self._waiting = kept
        self._flush()

    def _flush(self) -> None:
        while not self.closed:
            if self._frame is None:
                if not self._waiting:
                    break
                self._frame = memoryview(frame(self._waiting.pop(0)))
            try:
                n = self._sock.send(self._frame, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:  # the worker is gone: its read side says so
                self.close()
                return
            self._frame = self._frame[n:]
            if len(self._frame):
                self._watch(True)
                return
            self._frame = None
            self.sent += 1
        self._watch(False)

    def _watch(self, on: bool) -> None:
        if on and not self._watching:
            self._loop.add_writer(self._sock.fileno(), self._flush)
        elif not on and self._watching:
            self._loop.remove_writer(self._sock.fileno())
        self._watching = on

    def close(self) -> None:
        """Drop what waits and close the duplicate descriptor (``conn`` is
        the caller's to close)."""
        if self.closed:
            return
        with contextlib.suppress(ValueError, OSError, RuntimeError):
            self._watch(False)
        self.closed = True
        self._frame = None
        self._waiting = []
        self._sock.close()


def ship_stats(outbox: Outbox[ToSupervisor], stats: QueryStats,
               cache_counts: tuple[int, int, int], in_fallback: frozenset[tuple[str, int]]
               ) -> bool:
    """Send a worker's counts since the last ones sent (``stats.take()``,
    with its answer cache's ``(hits, misses, entries)`` and the pools in
    fallback) through ``outbox``, unless something waits there (the
    supervisor is not reading): then nothing is taken, the counts go on
    adding up in ``stats``, and the call returns False. Never blocks."""
    if outbox.backlog:
        return False
    outbox.send(Stats(stats.take(), cache_counts, in_fallback))
    return True


__all__ = ["Outbox", "frame", "ship_stats"]
