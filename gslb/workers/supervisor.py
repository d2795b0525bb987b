"""The supervisor's side of ``gslb serve --workers N``: :class:`WorkerPool`
starts the worker processes (:mod:`gslb.workers.worker`), ships them the
health view, collects their counters, reloads and restarts them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from gslb.answering import AnswerSettings
from gslb.dns.server import TcpLimits, bind_udp_tcp
from gslb.errors import raise_if_cancelling
from gslb.health.view import generation_moved
from gslb.logs import JsonFormatter
from gslb.stats import QueryStats
from gslb.workers.messages import (
    Failed,
    Ready,
    Reload,
    Reloaded,
    Stats,
    Stop,
    ToSupervisor,
    ToWorker,
    View,
    ViewSnapshot,
    WorkerArgs,
)
from gslb.workers.outbox import Outbox
from gslb.workers.worker import worker_main

log = logging.getLogger("gslb.workers")

#: Seconds between checks of the drains and the smoothed RTTs ``latency``
#: pools read (health state changes are shipped at once, not on this clock).
SNAPSHOT_INTERVAL_S = 0.1
#: Seconds a worker may take from spawn to listening.
START_TIMEOUT_S = 60.0
#: Seconds before a dead worker is started again.
RESTART_DELAY_S = 1.0
#: Longest wait (seconds) between two attempts to start a worker again.
MAX_RESTART_DELAY_S = 30.0
#: Seconds a worker may take to stop before it is killed.
STOP_TIMEOUT_S = 5.0


class ViewSource(Protocol):
    """The supervisor's health view, as the workers follow it."""

    @property
    def generation(self) -> int:
        """Moves on every health state change (not on drains or RTTs)."""
        ...

    def snapshot(self) -> ViewSnapshot:
        """The view now, health and drains applied."""
        ...

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` holds, re-tested on every health
        change; ``TimeoutError`` after ``timeout`` seconds."""
        ...


class WorkerPool:
    """The supervisor's side: ``n`` worker processes serving ``listen``
    (port 0: one free port is chosen here for every worker).

    ``view`` is the health view the workers answer from; ``paths()`` the
    config files in force (what a started worker loads); ``geoip`` and
    ``asn_db`` the GeoIP and ASN mmdb paths (None: none); ``settings`` how
    workers answer; the workers' query counters are added to ``stats``;
    ``tcp`` how each worker shares its TCP connections (None: the defaults).

    Has ``start``/``stop``/``addresses`` like a
    :class:`gslb.dns.server.DnsServer`, so a ``Service`` runs either.
    Raises ``OSError`` from ``start`` when an address cannot be bound or a
    worker does not start within ``START_TIMEOUT_S``.
    """

    def __init__(self, n: int, listen: Sequence[tuple[str, int]], *, view: ViewSource,
                 paths: Callable[[], tuple[str, ...]], geoip: str | None,
                 settings: AnswerSettings, stats: QueryStats,
                 asn_db: str | None = None, tcp: TcpLimits | None = None) -> None:
        if n < 2:
            raise ValueError(f"a worker pool needs at least 2 workers, not {n}")
        self.n = n
        self.listen = list(listen)
        self.view = view
        self.paths = paths
        self.geoip = geoip
        self.asn_db = asn_db
        self.settings = settings
        self.tcp = tcp if tcp is not None else TcpLimits()
        self.stats = stats
        self.addresses: list[tuple[str, int]] = []
        self.workers: dict[int, _Worker] = {}
        self.cache_stats: dict[int, tuple[int, int, int]] = {}
        """Per worker index: answer cache ``(hits, misses, entries)``."""
        self._retired_cache_counts = (0, 0)  # (hits, misses) of workers that died
        self._in_fallback: dict[int, frozenset[tuple[str, int]]] = {}  # per worker index
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._restarts: set[asyncio.Task[None]] = set()
        self._sent: ViewSnapshot | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        reserved = _reserve(self.listen)
        try:
            self.addresses = [(host, sock.getsockname()[1]) for host, sock, _t in reserved]
            self._sent = self.view.snapshot()
            await self._started([self._spawn(i) for i in range(self.n)])
        except BaseException:
            await self.stop()
            raise
        finally:
            for _host, udp, tcp in reserved:
                udp.close()
                tcp.close()
        self._tasks = [asyncio.create_task(self._ship_views(), name="gslb-worker-views")]
        for host, port in self.addresses:
            log.info("%d workers listening on %s port %d (UDP and TCP, SO_REUSEPORT)",
                     self.n, host, port)

    def _spawn(self, index: int) -> _Worker:
        args = WorkerArgs(index, self.paths(), tuple(self.addresses), self.geoip, self.asn_db,
                          self.settings, logging.getLogger().level, _json_logs(), self.tcp)
        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe(duplex=True)
        process = ctx.Process(target=worker_main, args=(args, there), daemon=True,
                              name=f"gslb-worker-{index}")
        process.start()
        there.close()
        loop = asyncio.get_running_loop()
        worker = _Worker(index, process, here, Outbox(here, loop), loop.create_future())
        self.workers[index] = worker
        worker.outbox.send(View(self._sent or self.view.snapshot()))
        loop.add_reader(here.fileno(), self._readable, worker)
        return worker

    @staticmethod
    async def _started(workers: Sequence[_Worker]) -> None:
        """Wait until every one of ``workers`` listens; ``OSError`` when one
        fails or ``START_TIMEOUT_S`` passes."""
        try:
            await asyncio.wait_for(asyncio.gather(*(w.ready for w in workers)),
                                   START_TIMEOUT_S)
        except TimeoutError:
            raise OSError(f"workers did not start within {START_TIMEOUT_S:.0f} s") from None

    async def stop(self) -> None:
        self._stopping = True
        for task in (*self._tasks, *self._restarts):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._restarts, return_exceptions=True)
        self._tasks = []
        workers, self.workers = list(self.workers.values()), {}
        for worker in workers:
            worker.outbox.send(Stop())
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for worker in workers:
            while worker.process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if worker.process.is_alive():
                log.warning("worker %d did not stop in %.0f s: killing it", worker.index,
                            STOP_TIMEOUT_S)
                worker.process.kill()
            worker.process.join(timeout=1.0)
            self._close(worker)

    def status(self) -> list[dict[str, Any]]:
        """One entry per worker slot: ``index``, ``pid`` (None while being
        started again), ``answering`` (listening and alive)."""
        out = []
        for index in range(self.n):
            worker = self.workers.get(index)
            answering = bool(worker is not None and worker.ready.done()
                             and worker.ready.exception() is None
                             and worker.process.is_alive())
            out.append({"index": index, "pid": worker.process.pid if worker else None,
                        "answering": answering})
        return out

    async def reload(self, paths: Sequence[str]) -> list[str]:
        """Have every worker load ``paths`` (already validated here);
        returns one message per worker that failed (it keeps its config)
        or gave no answer within ``START_TIMEOUT_S`` seconds (all waited
        for together: a stopped worker does not delay the others)."""
        futures = []
        loop = asyncio.get_running_loop()
        for worker in list(self.workers.values()):
            worker.reloaded = loop.create_future()
            worker.outbox.send(Reload(tuple(paths)))
            futures.append((worker, worker.reloaded))

        async def outcome(future: asyncio.Future[tuple[bool, str]]) -> tuple[bool, str]:
            try:
                return await asyncio.wait_for(future, START_TIMEOUT_S)
            except (TimeoutError, EOFError) as exc:
                return False, f"no answer ({type(exc).__name__})"
        outcomes = await asyncio.gather(*(outcome(f) for _w, f in futures))
        return [f"worker {worker.index}: {message}"
                for (worker, _f), (ok, message) in zip(futures, outcomes, strict=True) if not ok]

    # -- messages ----------------------------------------------------------------------

    def _readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._on_message(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._died(worker)

    def _on_message(self, worker: _Worker, message: ToSupervisor) -> None:
        if isinstance(message, Ready):
            if not worker.ready.done():
                worker.ready.set_result(None)
        elif isinstance(message, Stats):
            self.stats.add(message.taken)
            self.cache_stats[worker.index] = message.cache
            self._in_fallback[worker.index] = message.in_fallback
        elif isinstance(message, Reloaded):
            if worker.reloaded is not None and not worker.reloaded.done():
                worker.reloaded.set_result((message.ok, message.message))
        elif isinstance(message, Failed) and not worker.ready.done():
            worker.ready.set_exception(OSError(f"worker {worker.index}: {message.why}"))

    def in_fallback(self) -> frozenset[tuple[str, int]]:
        """The ``(pool, family)`` pairs whose last query in some worker found
        no healthy origin, as the workers last reported (each second)."""
        return frozenset().union(*self._in_fallback.values())

    def cache_totals(self) -> tuple[int, int, int]:
        """Every worker's answer cache together: ``(hits, misses, entries)``.
        Hits and misses never go down (they keep what workers that died had
        sent, and each worker counts on across reloads)."""
        hits, misses = self._retired_cache_counts
        entries = 0
        for h, m, n in self.cache_stats.values():
            hits, misses, entries = hits + h, misses + m, entries + n
        return hits, misses, entries

    def _died(self, worker: _Worker) -> None:
        self._close(worker)
        if self.workers.get(worker.index) is not worker:
            return
        del self.workers[worker.index]
        hits, misses, _n = self.cache_stats.pop(worker.index, (0, 0, 0))
        self._in_fallback.pop(worker.index, None)
        retired = self._retired_cache_counts
        self._retired_cache_counts = (retired[0] + hits, retired[1] + misses)
        if not worker.ready.done():
            worker.ready.set_exception(OSError(f"worker {worker.index} exited while starting"))
            return
        if worker.reloaded is not None and not worker.reloaded.done():
            worker.reloaded.set_exception(EOFError())
        if self._stopping:
            return
        worker.process.join(timeout=1.0)
        log.error("worker %d (pid %s) exited with status %s; starting it again in %.0f s",
                  worker.index, worker.process.pid, worker.process.exitcode, RESTART_DELAY_S)
        task = asyncio.ensure_future(self._restart(worker.index))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, index: int) -> None:
        """Start worker ``index`` again, after ``RESTART_DELAY_S`` seconds,
        then after twice as long on each failure (at most ``MAX_RESTART_DELAY_S``)."""
        delay = RESTART_DELAY_S
        while True:
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                await self._started([self._spawn(index)])
                return
            except OSError as exc:
                delay = min(2 * delay, MAX_RESTART_DELAY_S)
                log.error("worker %d did not start again: %s; next try in %.0f s", index,
                          exc, delay)
                failed = self.workers.pop(index, None)
                if failed is not None:  # alive but not listening in time
                    failed.process.kill()
                    self._close(failed)

    def _close(self, worker: _Worker) -> None:
        worker.outbox.close()
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        with contextlib.suppress(OSError):
            worker.conn.close()

    async def _ship_views(self) -> None:
        """Send the view to every worker when it changes: at once on a
        health change, within ``SNAPSHOT_INTERVAL_S`` on a drain or an RTT
        change."""
        view = self.view
        while not self._stopping:
            seen = self._sent.generation if self._sent is not None else -1
            with contextlib.suppress(TimeoutError):
                await view.wait_for(generation_moved(view, seen), SNAPSHOT_INTERVAL_S)
            raise_if_cancelling()  # a stop that came out as the TimeoutError
            now = view.snapshot()
            if now != self._sent:
                self._sent = now
                for worker in list(self.workers.values()):
                    worker.outbox.send(View(now))  # never blocks: the latest view waits


@dataclass(slots=True)
class _Worker:
    index: int
    process: BaseProcess
    conn: Connection
    outbox: Outbox[ToWorker]  # every message to the worker goes through it
    ready: asyncio.Future[None]
    reloaded: asyncio.Future[tuple[bool, str]] | None = None


def _reserve(listen: Sequence[tuple[str, int]]) -> list[tuple[str, socket.socket,
                                                             socket.socket]]:
    """Bind a UDP and a TCP socket (``SO_REUSEPORT``, not listening) per
    address, on one port for both (a free one for port 0), to learn and hold
    the port until the workers have bound it too. Raises ``OSError`` as
    :func:`gslb.dns.server.bind_udp_tcp` does, with nothing left open."""
    held: list[tuple[str, socket.socket, socket.socket]] = []
    try:
        for host, port in listen:
            held.append((host, *bind_udp_tcp(host, port, reuse_port=True)))
    except BaseException:
        for _h, udp, tcp in held:
            udp.close()
            tcp.close()
        raise
    return held


def _json_logs() -> bool:
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


__all__ = ["MAX_RESTART_DELAY_S", "RESTART_DELAY_S", "SNAPSHOT_INTERVAL_S", "START_TIMEOUT_S",
           "STOP_TIMEOUT_S", "ViewSource", "WorkerPool"]
