"""``Service``: the ``gslb serve`` process, wired together and run.

Embedded default: an in-process prober (vantage ``local``) reports straight
into the health view. With Redis: a ``RedisWatcher`` keeps the view in
step with every probe worker's reports instead, and drains are shared.
Around the answer path (:mod:`gslb.answering`, or :mod:`gslb.workers` with
``--workers N``) it runs the operations surface: reload
(:mod:`gslb.serve.reload`), drains and readiness
(:mod:`gslb.serve.operations`), transitions, metrics and the admin HTTP
server (:mod:`gslb.admin`, docs/admin.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from gslb.admin.app import AdminParts, make_app
from gslb.answering import Answering, AnswerSettings, build_authority, freeze_loaded
from gslb.authority import Authority
from gslb.config.model import LOCAL_VANTAGE, Config, slow_starts
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.dns.server import DnsServer, TcpLimits
from gslb.errors import ConfigError
from gslb.explain import explain
from gslb.geo import AsnDB, GeoDB, GeoDBError
from gslb.health.overrides import DrainedView, Overrides, RedisOverrides
from gslb.health.signing import signer_of
from gslb.health.view import QuorumView
from gslb.probe.worker import Prober
from gslb.serve.alerts import Alerts
from gslb.serve.metrics import make_registry
from gslb.serve.operations import Drains, RedisClients, not_ready
from gslb.serve.reload import Loaded, Reloader
from gslb.serve.status import status_of
from gslb.serve.transitions import Transitions
from gslb.stats import QueryStats
from gslb.steering import Steering
from gslb.workers.messages import ViewSnapshot, snapshot_of
from gslb.workers.supervisor import WorkerPool

log = logging.getLogger("gslb.service")

#: Seconds ``gslb serve --redis`` waits for the first full load before it
#: starts answering (then it answers anyway: Redis may be down).
STARTUP_SYNC_S = 2.0


class _Part(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Service:
    """One serving nameserver.

    ``listen`` holds ``(address, port)`` pairs (port 0: any free port, see
    ``addresses`` after ``start``). ``geoip`` is an mmdb path or None (then
    clients cannot be located: geo pools answer from their ``default``);
    ``asn_db`` an ASN mmdb path (GeoLite2-ASN layout, :class:`gslb.geo.AsnDB`)
    or None (then clients have no AS: ``Client.asn`` is None).
    ``redis_url``: None for the embedded prober, else the Redis to read the
    shared health state (and share drains) through
    (``gslb.health.redis.client.parse_url`` forms).

    Operations (docs/admin.md): ``admin`` is the ``(address, port)`` of the
    admin HTTP server (None: none; port 0: any free port, see
    ``admin_addresses``); when ``admin_optional`` a failure to bind it is
    logged and the nameserver serves without it. ``admin_token`` (None:
    mutating endpoints disabled) is the bearer token of the POST endpoints.
    ``overrides_path``: without Redis, a JSON file persisting the drains
    (None: in memory only). ``query_log_sample``: fraction (0 to 1) of
    queries logged on ``gslb.query``. ``config_paths``: the files
    ``reloader.reload()`` reads by default (default ``config.files``).
    ``answer_cache``: bound of each config's answer cache (entries;
    :mod:`gslb.dns.cache`), 0 to disable it. ``workers``: with 2 or more,
    this process answers no query itself but supervises that many worker
    processes sharing the listen ports (:mod:`gslb.workers`).
    ``server_id``: the identity answered to NSID and CHAOS ``id.server``
    queries (:func:`gslb.authority.server_identity`; None: not answered).
    ``tcp``: how the TCP connections of each answering process are shared
    (:class:`gslb.dns.server.TcpLimits`; None: its defaults).

    The parts, for those who read them: ``quorum`` (health as the vantages
    report it), ``overrides`` (drains), ``view`` (what steering reads:
    ``quorum`` with the drains applied), ``reloader`` (the config in force,
    ``reloader.loaded``), ``drains``, ``transitions``, ``stats``,
    ``server`` (a ``DnsServer``, or the ``WorkerPool``).

    Raises ``GslbError`` subclasses for a bad GeoIP or ASN file or Redis URL,
    ``ValueError`` for a bad sample, ``OSError``/``ValueError`` for an
    unreadable overrides file or a bad ``server_id``.
    """

    def __init__(
        self,
        config: Config,
        listen: list[tuple[str, int]],
        geoip: str | Path | None = None,
        rng: random.Random | None = None,
        redis_url: str | None = None,
        *,
        admin: tuple[str, int] | None = None,
        admin_optional: bool = False,
        admin_token: str | None = None,
        overrides_path: str | Path | None = None,
        query_log_sample: float = 0.0,
        config_paths: Sequence[str | Path] | None = None,
        answer_cache: int = DEFAULT_ENTRIES,
        workers: int = 1,
        server_id: str | None = None,
        asn_db: str | Path | None = None,
        tcp: TcpLimits | None = None,
    ) -> None:
        if answer_cache < 0:
            raise ValueError(f"answer cache size must be 0 or more, not {answer_cache}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.started_at: float | None = None
        self.settings = AnswerSettings(answer_cache, query_log_sample, server_id)
        self.quorum = QuorumView(config.health.quorum, config.health.stale_after_s,
                                 unknown_up=config.health.unknown_up)
        """Health as the vantages report it (before drains)."""
        self._embedded = redis_url is None
        self._set_origins(config)
        self.overrides = Overrides(overrides_path if redis_url is None else None)
        self.overrides.load_file()
        self.view = DrainedView(self.quorum, self.overrides)
        """What steering reads: ``quorum`` with the drains applied."""
        self.stats = QueryStats()
        self.transitions = Transitions(self.stats)
        self.overrides.on_change = self.transitions.on_override
        self.geo = GeoDB(geoip) if geoip is not None else None
        try:
            self.asn = AsnDB(asn_db) if asn_db is not None else None
        except GeoDBError:
            if self.geo is not None:
                self.geo.close()
            raise
        self._rng = rng
        paths = tuple(str(p) for p in (config_paths or config.files))
        try:
            authority, preview = self._build(config)
        except BaseException:
            for db in (self.geo, self.asn):
                if db is not None:
                    db.close()
            raise
        self.reloader = Reloader(Loaded(config, paths, 1, time.time(), authority, preview),
                                 self._build, self._apply, self.stats)
        self.answering = Answering(authority, self.stats, query_log_sample)
        self.prober: Prober | None = None
        self.redis: RedisClients | None = None
        shared: RedisOverrides | None = None
        self.health_source: _Part
        if redis_url is None:
            self.health_source = self.prober = Prober(
                config.origins, self.quorum, LOCAL_VANTAGE,
                heartbeat_interval_s=config.health.heartbeat_interval_s)
        else:
            # redis-py only where it is used (the embedded default never loads it)
            from gslb.health.redis.watcher import RedisWatcher

            watcher = RedisWatcher(redis_url, self.quorum,
                                   resync_interval_s=config.health.resync_interval_s,
                                   signer=signer_of(config.health))
            shared = RedisOverrides(redis_url, self.overrides,
                                    resync_interval_s=config.health.resync_interval_s,
                                    signer=signer_of(config.health))
            self.health_source = watcher
            self.redis = RedisClients(watcher, shared)
        self.drains = Drains(self.overrides, shared, lambda: self.config.origins)
        self.server: DnsServer | WorkerPool
        if workers > 1:
            self.server = WorkerPool(workers, listen, view=_SupervisedView(self),
                                     paths=lambda: self.reloader.loaded.paths,
                                     geoip=str(geoip) if geoip is not None else None,
                                     asn_db=str(asn_db) if asn_db is not None else None,
                                     settings=self.settings, stats=self.stats, tcp=tcp)
        else:
            self.server = DnsServer(self.answering.handle, listen, tcp, cached=self.answering,
                                    tcp_counters=self.stats.tcp)
        self.admin = admin
        self.admin_optional = admin_optional
        self.admin_token = admin_token or None
        self.admin_addresses: list[tuple[str, int]] = []
        self.registry = make_registry(self)
        self.alerts = Alerts(config.alerts, self,
                             config.alerts.nameserver or server_id or socket.gethostname(),
                             redis_url)
        """State-change webhooks (docs/operations.md "Alerts")."""
        self.registry.register(self.alerts.collector())
        self._admin: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self.reloader.loaded.config

    def _build(self, config: Config) -> tuple[Authority, Steering]:
        """The authority answering from ``config``, and a separate, silent
        Steering for status previews (so they touch no live steering state).
        Raises ``ConfigError`` for ``asns`` maps without an ASN database."""
        if self.asn is None:
            needing = [name for name, pool in config.pools.items() if pool.asns]
            if needing:
                raise ConfigError([f"pools.{name}.asns: an asns map needs an ASN database: "
                                   "gslb serve --asn-db PATH" for name in needing])
        authority = build_authority(config, self.view, self.geo, self.stats, self.settings,
                                    self._rng, self.asn)
        return authority, Steering(config.pools, config.origins, vantages=config.vantages,
                                   quiet=True)

    async def _apply(self, loaded: Loaded) -> list[str]:
        """Put a reloaded config in force: health settings, the prober's
        origins, the answer path, then the workers."""
        config = loaded.config
        self.quorum.quorum = config.health.quorum
        self.quorum.stale_after_s = config.health.stale_after_s
        self.quorum.unknown_up = config.health.unknown_up
        self._set_origins(config)
        if self.prober is not None:
            self.prober.update(config.origins)
        if self.redis is not None:
            self.redis.watcher.resync_interval_s = config.health.resync_interval_s
            self.redis.watcher.signer = self.redis.overrides.signer = signer_of(config.health)
            self.redis.overrides.resync_interval_s = config.health.resync_interval_s
        self.answering.install(loaded.authority)
        self.alerts.update(config.alerts)
        self.quorum.refresh()
        if isinstance(self.server, WorkerPool):
            return await self.server.reload(loaded.paths)
        return []

    def _set_origins(self, config: Config) -> None:
        """The checked origins and the vantages counted, into the view."""
        checked = [name for name, o in config.origins.items() if o.check is not None]
        vantages = ({LOCAL_VANTAGE} if self._embedded
                    else set(config.vantages) if config.vantages else None)
        self.quorum.set_origins(checked, vantages)
        self.quorum.set_slow_start(slow_starts(config.origins, config.pools))

    def alert_inputs(self) -> tuple[Iterable[str], Iterable[str], Steering]:
        """What alerts watch (:class:`gslb.serve.alerts.Watched`): the
        checked origins, the pools and the quiet Steering in force."""
        loaded = self.reloader.loaded
        checked = [n for n, o in loaded.config.origins.items() if o.check is not None]
        return checked, loaded.config.pools, loaded.preview

    def redis_connected(self) -> bool | None:
        """Whether the health watcher is connected to Redis (None: no Redis)."""
        return None if self.redis is None else self.redis.watcher.connected

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Bound ``(address, port)`` pairs."""
        return self.server.addresses

    def cache_counts(self) -> tuple[int, int, int] | None:
        """The answer cache ``(hits, misses, entries)``: of every worker with
        ``--workers``, else of this process (None when disabled)."""
        if isinstance(self.server, WorkerPool):
            return self.server.cache_totals()
        cache = self.answering.authority.cache
        return None if cache is None else (cache.hits, cache.misses, len(cache))

    def in_fallback(self) -> frozenset[tuple[str, int]]:
        """``(pool, family)`` pairs whose last query found no healthy origin:
        in some worker with ``--workers`` (as they last reported, each
        second), else in this process."""
        if isinstance(self.server, WorkerPool):
            return self.server.in_fallback()
        return self.answering.authority.steering.in_fallback

    def explain(self, name: str, rrtype: str, client: str, ecs: str | None) -> dict[str, Any]:
        """Why a query for ``name`` and ``rrtype`` from ``client`` (ECS
        ``ecs``) gets its answer now (:func:`gslb.explain.explain`, over the
        authority in force; with ``--workers`` the supervisor's, which
        answers from the view the workers mirror, and the workers' own
        caches are not looked at). Raises ``ExplainError``."""
        note = None
        if isinstance(self.server, WorkerPool):
            note = ("not checked: answered by worker processes, each with its own "
                    "answer cache")
        return explain(self.answering.authority, name, rrtype, client, ecs, cache_note=note)

    def workers_status(self) -> list[dict[str, Any]]:
        """With ``--workers``: per worker ``index``, ``pid``, ``answering``
        (:meth:`gslb.workers.supervisor.WorkerPool.status`); empty otherwise."""
        return self.server.status() if isinstance(self.server, WorkerPool) else []

    def not_ready(self) -> list[str]:
        """Why this nameserver should not get traffic; empty when ready
        (:func:`gslb.serve.operations.not_ready`)."""
        return not_ready(self.started_at is not None, self.redis, self.workers_status(),
                         self.quorum)

    async def start(self) -> None:
        """Start the health source (prober or Redis watcher) and the drain
        watcher, then the DNS listeners, then the admin server. Raises
        ``OSError`` when a listen address cannot be bound (the admin one
        too, unless ``admin_optional``)."""
        await self.health_source.start()
        if self.redis is not None:
            await self.redis.overrides.start()
            # answer from the shared view, not from "everything up", when
            # Redis is there; never wait long for a Redis that is not
            await asyncio.gather(_synced(self.redis.watcher.wait_synced),
                                 _synced(self.redis.overrides.wait_synced))
        self._tasks = [asyncio.create_task(self._tick(), name="gslb-health-ticker"),
                       asyncio.create_task(self.transitions.watch(
                           self.quorum, lambda: self.config.origins), name="gslb-transitions")]
        await self.alerts.start()
        try:
            await self.server.start()
            if self.admin is not None:
                await self._start_admin(*self.admin)
        except BaseException:
            await self.stop()
            raise
        self.started_at = time.time()
        freeze_loaded()
        log.info("serving %d zone(s): %s", len(self.config.zones),
                 ", ".join(z.rstrip(".") for z in self.config.zones))

    async def _start_admin(self, host: str, port: int) -> None:
        parts = AdminParts(status=lambda: status_of(self), not_ready=self.not_ready,
                           registry=self.registry, drains=self.drains,
                           reload=self.reloader.reload, token=self.admin_token,
                           explain=self.explain)
        runner = web.AppRunner(make_app(parts), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_address=True).start()
        except OSError as exc:
            await runner.cleanup()
            if not self.admin_optional:
                raise
            log.warning("admin server not started on %s port %d: %s; serving DNS without it",
                        host, port, exc)
            return
        self._admin = runner
        self.admin_addresses = [a[:2] for a in runner.addresses]
        for bound_host, bound_port in self.admin_addresses:
            log.info("admin server on http://%s/", _hostport(bound_host, bound_port))
            if not ipaddress.ip_address(bound_host).is_loopback:
                log.warning("admin server on a non-loopback address %s: keep it behind a "
                            "firewall", bound_host)

    async def stop(self) -> None:
        """Stop the admin server and the listeners, then the health source."""
        if self._admin is not None:
            runner, self._admin = self._admin, None
            await runner.cleanup()
        await self.server.stop()
        await self.alerts.stop()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.redis is not None:
            await self.redis.overrides.stop()
        await self.health_source.stop()
        if self.geo is not None:
            self.geo.close()
        if self.asn is not None:
            self.asn.close()

    async def _tick(self) -> None:
        """Re-evaluate staleness (it moves with time, not with messages)."""
        while True:
            await asyncio.sleep(min(1.0, self.quorum.stale_after_s / 4))
            self.quorum.refresh()


class _SupervisedView:
    """The supervisor's view as :class:`gslb.workers.supervisor.WorkerPool`
    ships it to the workers."""

    def __init__(self, service: Service) -> None:
        self._service = service

    @property
    def generation(self) -> int:
        return self._service.view.generation

    def snapshot(self) -> ViewSnapshot:
        service = self._service
        loaded = service.reloader.loaded
        return snapshot_of(service.view, service.overrides.is_drained, loaded.config.origins,
                           loaded.preview.vantages if loaded.preview.reads_rtt else (),
                           service.quorum.rising(), service.overrides.ramps())

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        await self._service.quorum.wait_for(predicate, timeout)


async def _synced(wait_synced: Callable[[float], Any]) -> None:
    with contextlib.suppress(TimeoutError):
        await wait_synced(STARTUP_SYNC_S)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = ["STARTUP_SYNC_S", "Service"]
