"""``gslb serve --workers N``: N answering processes on one port.

Python answers on one core per process, so a nameserver that must use
several cores runs several processes. The process started by ``gslb serve``
becomes the **supervisor**: it keeps everything that must exist once (the
embedded prober or the Redis watcher, the drains, the admin server, reload
and metrics) and answers no query itself. Each **worker** is a child
process (``multiprocessing``, spawned) that binds every listen address with
``SO_REUSEPORT`` (the kernel spreads UDP datagrams and TCP connections over
the workers by a hash of the client's address and port) and answers from
its own :class:`gslb.authority.Authority` and answer cache.

One health view: the supervisor ships a :class:`ViewSnapshot` of its view
(health with drains applied) to every worker over a pipe whenever it
changes: at once on a health state change (the supervisor waits on the
view's change event), within ``SNAPSHOT_INTERVAL_S`` on a drain or on a
change of a smoothed RTT that ``latency`` pools read. Workers answer from a :class:`MirrorView` of
the last snapshot, so every worker answers alike: the only difference
between two workers is the ``latency`` anti-flap memory, kept per process
as it is per nameserver.

Workers ship their query counters to the supervisor every
``STATS_INTERVAL_S`` seconds, so ``/metrics`` counts every worker's
queries. A reload (SIGHUP or the admin API) is validated by the supervisor,
then each worker loads the same files. A worker that dies is started again
after ``RESTART_DELAY_S`` seconds; its share of queries goes to the other
workers meanwhile (the kernel rehashes over the remaining sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from gslb.admin.metrics import QueryStats
from gslb.authority import Authority, respond
from gslb.config import load
from gslb.dns.server import DnsServer
from gslb.errors import GslbError, raise_if_cancelling
from gslb.geo import GeoDB
from gslb.health.view import AllUpExcept
from gslb.logs import JsonFormatter, setup, with_query_log

if TYPE_CHECKING:
    from gslb.service import Service

log = logging.getLogger("gslb.workers")

#: Seconds between checks of the drains and the smoothed RTTs ``latency``
#: pools read (health state changes are shipped at once, not on this clock).
SNAPSHOT_INTERVAL_S = 0.1
#: Seconds between two shipments of a worker's query counters.
STATS_INTERVAL_S = 1.0
#: Seconds a worker may take from spawn to listening.
START_TIMEOUT_S = 60.0
#: Seconds before a dead worker is started again.
RESTART_DELAY_S = 1.0
#: Longest wait (seconds) between two attempts to start a worker again.
MAX_RESTART_DELAY_S = 30.0
#: Seconds a worker may take to stop before it is killed.
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ViewSnapshot:
    """What a worker needs of the supervisor's health view: its
    ``generation``; the origins ``down`` (health or drain) and ``drained``
    (by an operator); ``srtt_ms[(origin, vantage)]`` in milliseconds, only
    where the view gives one (fresh vantage that says up)."""

    generation: int
    down: frozenset[str] = frozenset()
    drained: frozenset[str] = frozenset()
    srtt_ms: dict[tuple[str, str], float] = field(default_factory=dict)


class MirrorView:
    """A :class:`gslb.health.view.HealthView` answering from the last
    :class:`ViewSnapshot` a worker received."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: ViewSnapshot) -> None:
        self.snapshot = snapshot

    @property
    def generation(self) -> int:
        return self.snapshot.generation

    def is_up(self, origin: str) -> bool:
        return origin not in self.snapshot.down

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return self.snapshot.srtt_ms.get((origin, vantage))

    def everyone_up(self) -> AllUpExcept:
        """For ``fallback: all``: every origin up but the drained ones."""
        return AllUpExcept(self.snapshot.drained, self.snapshot.generation)


def snapshot_of(service: Service) -> ViewSnapshot:
    """The supervisor's view now, as workers need it."""
    view, origins = service.view, service.config.origins
    srtt: dict[tuple[str, str], float] = {}
    if any(p.policy == "latency" for p in service.config.pools.values()):
        for origin in origins:
            for vantage in service.preview.vantages:
                ms = view.srtt_ms(origin, vantage)
                if ms is not None:
                    srtt[(origin, vantage)] = ms
    return ViewSnapshot(view.generation,
                        frozenset(o for o in origins if not view.is_up(o)),
                        frozenset(o for o in origins if service.overrides.is_drained(o)),
                        srtt)


@dataclass(frozen=True, slots=True)
class WorkerArgs:
    """What a worker is started with (pickled to the child)."""

    index: int
    config_paths: tuple[str, ...]
    listen: tuple[tuple[str, int], ...]
    geoip: str | None
    answer_cache: int
    query_log_sample: float
    server_id: str | None
    log_level: int
    log_json: bool


class WorkerPool:
    """The supervisor's side: ``n`` worker processes serving ``listen``
    (port 0: one free port is chosen here for every worker) for
    ``service``, which keeps the health view, drains and admin.

    Has ``start``/``stop``/``addresses`` like a
    :class:`gslb.dns.server.DnsServer`, so a ``Service`` runs either.
    Raises ``OSError`` from ``start`` when an address cannot be bound or a
    worker does not start within ``START_TIMEOUT_S``.
    """

    def __init__(self, service: Service, n: int, listen: Sequence[tuple[str, int]],
                 geoip: str | None, answer_cache: int, query_log_sample: float) -> None:
        if n < 2:
            raise ValueError(f"a worker pool needs at least 2 workers, not {n}")
        self.service = service
        self.n = n
        self.listen = list(listen)
        self.geoip = geoip
        self.answer_cache = answer_cache
        self.query_log_sample = query_log_sample
        self.addresses: list[tuple[str, int]] = []
        self.workers: dict[int, _Worker] = {}
        self.cache_stats: dict[int, tuple[int, int, int]] = {}
        """Per worker index: answer cache ``(hits, misses, entries)``."""
        self._retired_cache_counts = (0, 0)  # (hits, misses) of workers that died
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._restarts: set[asyncio.Task[None]] = set()
        self._sent: ViewSnapshot | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        reserved = _reserve(self.listen)
        try:
            self.addresses = [(host, sock.getsockname()[1]) for host, sock, _t in reserved]
            self._sent = snapshot_of(self.service)
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
        svc = self.service
        args = WorkerArgs(index, tuple(svc.config_paths),
                          tuple(self.addresses), self.geoip, self.answer_cache,
                          self.query_log_sample, svc.server_id, logging.getLogger().level,
                          _json_logs())
        ctx = multiprocessing.get_context("spawn")
        here, there = ctx.Pipe(duplex=True)
        process = ctx.Process(target=worker_main, args=(args, there), daemon=True,
                              name=f"gslb-worker-{index}")
        process.start()
        there.close()
        loop = asyncio.get_running_loop()
        worker = _Worker(index, process, here, loop.create_future())
        self.workers[index] = worker
        here.send(("view", self._sent or snapshot_of(svc)))
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
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("stop",))
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
        returns one message per worker that failed (it keeps its config)."""
        futures = []
        loop = asyncio.get_running_loop()
        for worker in list(self.workers.values()):
            worker.reloaded = loop.create_future()
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("reload", tuple(paths)))
                futures.append((worker, worker.reloaded))
        errors = []
        for worker, future in futures:
            try:
                ok, message = await asyncio.wait_for(future, START_TIMEOUT_S)
            except (TimeoutError, EOFError) as exc:
                ok, message = False, f"no answer ({type(exc).__name__})"
            if not ok:
                errors.append(f"worker {worker.index}: {message}")
        return errors

    # -- messages ----------------------------------------------------------------------

    def _readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._on_message(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._died(worker)

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            if not worker.ready.done():
                worker.ready.set_result(None)
        elif kind == "stats":
            self.service.stats.add(message[1])
            self.cache_stats[worker.index] = message[2]
        elif kind == "reloaded":
            if worker.reloaded is not None and not worker.reloaded.done():
                worker.reloaded.set_result((message[1], message[2]))
        elif kind == "failed" and not worker.ready.done():
            worker.ready.set_exception(OSError(f"worker {worker.index}: {message[1]}"))

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
        while not self._stopping:
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
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        with contextlib.suppress(OSError):
            worker.conn.close()

    async def _ship_views(self) -> None:
        """Send the view to every worker when it changes: at once on a
        health change, within ``SNAPSHOT_INTERVAL_S`` on a drain or an RTT
        change."""
        health = self.service.health
        view = self.service.view
        while not self._stopping:
            seen = self._sent.generation if self._sent is not None else -1
            with contextlib.suppress(TimeoutError):
                await health.wait_for(lambda seen=seen: view.generation != seen,
                                      SNAPSHOT_INTERVAL_S)
            raise_if_cancelling()  # a stop that came out as the TimeoutError
            now = snapshot_of(self.service)
            if now != self._sent:
                self._sent = now
                for worker in list(self.workers.values()):
                    with contextlib.suppress(OSError, ValueError):
                        worker.conn.send(("view", now))


@dataclass(slots=True)
class _Worker:
    index: int
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    ready: asyncio.Future[None]
    reloaded: asyncio.Future[tuple[bool, str]] | None = None


def _reserve(listen: Sequence[tuple[str, int]]) -> list[tuple[str, socket.socket,
                                                             socket.socket]]:
    """Bind a UDP and a TCP socket (``SO_REUSEPORT``, not listening) per
    address, on one port for both (a free one for port 0), to learn and hold
    the port until the workers have bound it too."""
    held: list[tuple[str, socket.socket, socket.socket]] = []
    try:
        for host, port in listen:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            for _attempt in range(20):
                udp = socket.socket(family, socket.SOCK_DGRAM)
                tcp = socket.socket(family, socket.SOCK_STREAM)
                for sock in (udp, tcp):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    udp.bind((host, port))
                    tcp.bind((host, udp.getsockname()[1]))
                except OSError:
                    udp.close()
                    tcp.close()
                    if port:
                        raise
                    continue
                held.append((host, udp, tcp))
                break
            else:
                raise OSError(f"no port free for both UDP and TCP on {host}")
    except BaseException:
        for _h, udp, tcp in held:
            udp.close()
            tcp.close()
        raise
    return held


def _json_logs() -> bool:
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


# -- the worker process ----------------------------------------------------------------


def worker_main(args: WorkerArgs, conn: Connection) -> None:
    """Entry point of a worker process (``multiprocessing`` target)."""
    setup(args.log_level, "json" if args.log_json else "text")
    # the supervisor decides when workers stop; Ctrl-C reaches the whole
    # process group, so leave it to the supervisor
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        asyncio.run(_Answering(args, conn).run())
    except Exception as exc:  # tell the supervisor, which logs it
        log.exception("worker %d failed", args.index)
        with contextlib.suppress(OSError):
            conn.send(("failed", f"{type(exc).__name__}: {exc}"))


class _Answering:
    """A worker: DNS listeners on shared ports, answering from a mirror of
    the supervisor's view."""

    def __init__(self, args: WorkerArgs, conn: Connection) -> None:
        self.args = args
        self.conn = conn
        self.stopped = asyncio.Event()
        self._reloads: set[asyncio.Future[None]] = set()

    async def run(self) -> None:
        first = self.conn.recv()
        assert first[0] == "view", first
        self.view = MirrorView(first[1])
        self.stats = QueryStats()
        self.geo = GeoDB(self.args.geoip) if self.args.geoip else None
        self.authority = self._build(self.args.config_paths)
        gc.freeze()  # as Service.start: the zone stays out of later collections
        self._observe = with_query_log(self.stats.query, self.args.query_log_sample)
        server = DnsServer(self.handle, list(self.args.listen), reuse_port=True)
        await server.start()
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._readable)
        loop.add_signal_handler(signal.SIGTERM, self.stopped.set)
        self.conn.send(("ready", server.addresses))
        log.info("worker %d (pid %d) answering", self.args.index, os.getpid())
        shipping = asyncio.create_task(self._ship_stats())
        try:
            await self.stopped.wait()
        finally:
            shipping.cancel()
            loop.remove_reader(self.conn.fileno())
            await server.stop()
            with contextlib.suppress(OSError):
                self._send_stats()
            if self.geo is not None:
                self.geo.close()

    def _build(self, paths: Sequence[str]) -> Authority:
        return Authority(load(list(paths)), self.view,
                         self.geo.locate if self.geo else None,
                         on_choice=self.stats.choice, cache_entries=self.args.answer_cache,
                         server_id=self.args.server_id)

    def handle(self, data: bytes, who: str, udp: bool) -> bytes | None:
        start = time.perf_counter()
        response = respond(self.authority, data, who, udp, self._observe)
        self.stats.duration(time.perf_counter() - start)
        return response

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                message = self.conn.recv()
                kind = message[0]
                if kind == "view":
                    self.view.snapshot = message[1]
                elif kind == "reload":
                    task = asyncio.ensure_future(self._reload(message[1]))
                    self._reloads.add(task)
                    task.add_done_callback(self._reloads.discard)
                elif kind == "stop":
                    self.stopped.set()
        except (EOFError, OSError):  # the supervisor is gone: so are we
            self.stopped.set()

    async def _reload(self, paths: Sequence[str]) -> None:
        try:  # loading may take seconds for a large zone: keep answering meanwhile
            authority = await asyncio.to_thread(self._build, paths)
            if authority.cache is not None:
                authority.cache.carry_counts(self.authority.cache)
            self.authority = authority
            gc.freeze()
        except (GslbError, ValueError, OSError) as exc:
            log.error("worker %d: reload failed, keeping the config in force: %s",
                      self.args.index, exc)
            self.conn.send(("reloaded", False, str(exc)))
            return
        self.conn.send(("reloaded", True, ""))

    async def _ship_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            self._send_stats()

    def _send_stats(self) -> None:
        cache = self.authority.cache
        cache_stats = (cache.hits, cache.misses, len(cache)) if cache is not None else (0, 0, 0)
        self.conn.send(("stats", self.stats.take(), cache_stats))


__all__ = ["MirrorView", "ViewSnapshot", "WorkerArgs", "WorkerPool", "snapshot_of",
           "worker_main"]
