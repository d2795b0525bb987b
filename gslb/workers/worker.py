"""The worker process of ``gslb serve --workers N``: DNS listeners on the
shared ports (``SO_REUSEPORT``), answering from a mirror of the
supervisor's health view (:mod:`gslb.workers.messages`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection

from gslb.answering import Answering, build_authority, freeze_loaded
from gslb.authority import Authority
from gslb.config.load import load
from gslb.config.loader import gc_paused
from gslb.dns.server import DnsServer
from gslb.errors import GslbError
from gslb.geo import AsnDB, GeoDB
from gslb.health.view import AllUpExcept, ramp_down, ramp_up
from gslb.logs import setup
from gslb.stats import QueryStats
from gslb.workers.messages import (
    Failed,
    Ready,
    Reload,
    Reloaded,
    Stop,
    ToSupervisor,
    View,
    ViewSnapshot,
    WorkerArgs,
)
from gslb.workers.outbox import Outbox, ship_stats

log = logging.getLogger("gslb.workers")

#: Seconds between two shipments of a worker's query counters.
STATS_INTERVAL_S = 1.0


class MirrorView:
    """A :class:`gslb.health.view.HealthView` answering from the last
    :class:`ViewSnapshot` a worker received."""

    __slots__ = ("snapshot",)

    def __init__(self, snapshot: ViewSnapshot) -> None:
        self.snapshot = snapshot

    @property
    def generation(self) -> int:
        return self.snapshot.generation

    @property
    def ramping(self) -> bool:
        """While a ramp of the snapshot is not over (this process's clock,
        epoch seconds like the supervisor's)."""
        until = self.snapshot.ramp_until
        return until > 0.0 and until > time.time()

    def is_up(self, origin: str) -> bool:
        return origin not in self.snapshot.down

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return self.snapshot.srtt_ms.get((origin, vantage))

    def load(self, origin: str) -> float | None:
        return self.snapshot.load.get(origin)

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        """As the supervisor's view: slow start times drain ramp."""
        snap = self.snapshot
        rising, falling = snap.rising.get(origin), snap.falling.get(origin)
        if rising is None and falling is None:
            return 1.0
        now = time.time() if now is None else now
        factor = 1.0 if rising is None else ramp_up(rising[0], rising[1], now)
        return factor if falling is None else factor * ramp_down(falling[0], falling[1], now)

    def everyone_up(self) -> AllUpExcept:
        """For ``fallback: all``: every origin up but the drained ones."""
        return AllUpExcept(self.snapshot.drained, self.snapshot.generation)


def worker_main(args: WorkerArgs, conn: Connection) -> None:
    """Entry point of a worker process (``multiprocessing`` target)."""
    setup(args.log_level, "json" if args.log_json else "text")
    # the supervisor decides when workers stop; Ctrl-C reaches the whole
    # process group, so leave it to the supervisor
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    worker = _Worker(args, conn)
    try:
        asyncio.run(worker.run())
    except Exception as exc:  # tell the supervisor, which logs it
        log.exception("worker %d failed", args.index)
        outbox = getattr(worker, "outbox", None)
        if outbox is None or not outbox.backlog:  # never inside a frame half written
            with contextlib.suppress(OSError):
                conn.send(Failed(f"{type(exc).__name__}: {exc}"))


class _Worker:
    """A worker: DNS listeners on shared ports, answering from a mirror of
    the supervisor's view."""

    def __init__(self, args: WorkerArgs, conn: Connection) -> None:
        self.args = args
        self.conn = conn
        self.stopped = asyncio.Event()
        self._reloads: set[asyncio.Future[None]] = set()

    def _send(self, message: ToSupervisor) -> None:
        self.outbox.send(message)  # never blocks: a stopped supervisor stops no answer

    async def run(self) -> None:
        first = self.conn.recv()
        if not isinstance(first, View):
            raise RuntimeError(f"expected the first view from the supervisor, not {first!r}")
        self.view = MirrorView(first.snapshot)
        self.stats = QueryStats()
        self.geo = GeoDB(self.args.geoip) if self.args.geoip else None
        self.asn = AsnDB(self.args.asn_db) if self.args.asn_db else None
        self.answering = Answering(self._build(self.args.config_paths), self.stats,
                                   self.args.settings.query_log_sample)
        freeze_loaded()
        server = DnsServer(self.answering.handle, list(self.args.listen), self.args.tcp,
                           reuse_port=True, tcp_counters=self.stats.tcp,
                           cached=self.answering)
        await server.start()
        loop = asyncio.get_running_loop()
        self.outbox: Outbox[ToSupervisor] = Outbox(self.conn, loop)
        loop.add_reader(self.conn.fileno(), self._readable)
        loop.add_signal_handler(signal.SIGTERM, self.stopped.set)
        self._send(Ready(tuple(server.addresses)))
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
            if self.asn is not None:
                self.asn.close()

    def _build(self, paths: Sequence[str]) -> Authority:
        """Load and build ``paths`` (in a thread on reload), the collector
        off throughout and the result frozen before it is on again (as
        ``gslb.serve.reload.Reloader`` does: the first collection over the
        new objects would hold the GIL and stall answering)."""
        with gc_paused():
            authority = build_authority(load(list(paths)), self.view, self.geo, self.stats,
                                        self.args.settings, asn=self.asn)
            freeze_loaded()
        return authority

    def _readable(self) -> None:
        try:
            while self.conn.poll():
                message = self.conn.recv()
                if isinstance(message, View):
                    self.view.snapshot = message.snapshot
                elif isinstance(message, Reload):
                    task = asyncio.ensure_future(self._reload(message.paths))
                    self._reloads.add(task)
                    task.add_done_callback(self._reloads.discard)
                elif isinstance(message, Stop):
                    self.stopped.set()
        except (EOFError, OSError):  # the supervisor is gone: so are we
            self.stopped.set()

    async def _reload(self, paths: Sequence[str]) -> None:
        try:  # loading may take seconds for a large zone: keep answering meanwhile
            authority = await asyncio.to_thread(self._build, paths)
        except (GslbError, ValueError, OSError) as exc:
            log.error("worker %d: reload failed, keeping the config in force: %s",
                      self.args.index, exc)
            self._send(Reloaded(False, str(exc)))
            return
        self.answering.install(authority)
        self._send(Reloaded(True))

    async def _ship_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            self._send_stats()

    def _send_stats(self) -> None:
        cache = self.answering.authority.cache
        counts = (cache.hits, cache.misses, len(cache)) if cache is not None else (0, 0, 0)
        ship_stats(self.outbox, self.stats, counts, self.answering.authority.steering.in_fallback)


__all__ = ["STATS_INTERVAL_S", "MirrorView", "worker_main"]
