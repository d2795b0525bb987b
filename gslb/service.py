"""Wiring: configuration, health, probing, GeoIP and DNS listeners.

Two processes exist:

* ``Service`` (``gslb serve``): the nameserver. Embedded default: an
  in-process prober (vantage ``local``) reports straight into the health
  view. With Redis: a ``RedisWatcher`` keeps the view in step with every
  probe worker's reports instead.
  It also runs the operations surface: drain overrides (shared through
  Redis when configured), metrics, safe reload and the admin HTTP server
  (``gslb.admin``, docs/admin.md).
* ``ProbeService`` (``gslb probe``): a probe worker for one vantage, writing
  its reports to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiohttp import web

from gslb.admin.metrics import QueryStats, make_registry
from gslb.authority import Authority, Observer, respond
from gslb.config import load as load_config
from gslb.config.model import LOCAL_VANTAGE, Config
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.dns.server import DnsServer
from gslb.errors import ConfigError, GslbError, raise_if_cancelling
from gslb.geo import GeoDB
from gslb.health.overrides import DrainedView, Override, Overrides, RedisOverrides
from gslb.health.view import QuorumView
from gslb.logs import with_query_log
from gslb.probe.worker import Prober
from gslb.steering import Steering

if TYPE_CHECKING:
    from gslb.health.redis.watcher import RedisWatcher
    from gslb.workers import WorkerPool

log = logging.getLogger("gslb.service")

#: Seconds ``gslb serve --redis`` waits for the first full load before it
#: starts answering (then it answers anyway: Redis may be down).
STARTUP_SYNC_S = 2.0


class _Part(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class _Syncing(Protocol):
    async def wait_synced(self, timeout: float) -> None: ...


def key_ttl_s(config: Config) -> float:
    """Seconds a vantage's Redis keys outlive its last write: long enough to
    ride out a short outage, short enough that a vantage that went away
    disappears: ``max(60, 6 × stale_after)``."""
    return max(60.0, 6 * config.health.stale_after_s)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The outcome of ``Service.reload``: ``ok``; ``generation`` in force
    afterwards; ``messages``: on failure every ``file:line: key: message``
    (the old config is still served), empty on success."""

    ok: bool
    generation: int
    messages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Transition:
    """An overall change of ``origin`` at ``at`` (epoch seconds): ``state``
    is ``up``, ``down``, ``drained`` or ``undrained``; ``cause`` says why."""

    at: float
    origin: str
    state: str
    cause: str


#: How many recent transitions ``Service.transitions`` keeps.
RECENT_TRANSITIONS = 200


class Service:
    """One serving nameserver.

    ``listen`` holds ``(address, port)`` pairs (port 0: any free port, see
    ``addresses`` after ``start``). ``geoip`` is an mmdb path or None (then
    clients cannot be located: geo pools answer from their ``default``).
    ``redis_url``: None for the embedded prober, else the Redis to read the
    shared health state (and share drains) through
    (``gslb.health.redis.parse_url`` forms).

    Operations (docs/admin.md): ``admin`` is the ``(address, port)`` of the
    admin HTTP server (None: none; port 0: any free port, see
    ``admin_addresses``); when ``admin_optional`` a failure to bind it is
    logged and the nameserver serves without it. ``admin_token`` (None:
    mutating endpoints disabled) is the bearer token of the POST endpoints.
    ``overrides_path``: without Redis, a JSON file persisting the drains
    (None: in memory only). ``query_log_sample``: fraction (0 to 1) of
    queries logged on ``gslb.query``. ``config_paths``: the files
    ``reload()`` reads by default (default ``config.files``).
    ``answer_cache``: bound of each config's answer cache (entries;
    :mod:`gslb.dns.cache`), 0 to disable it. ``workers``: with 2 or more,
    this process answers no query itself but supervises that many worker
    processes sharing the listen ports (:mod:`gslb.workers`).
    ``server_id``: the identity answered to NSID and CHAOS ``id.server``
    queries (:func:`gslb.authority.server_identity`; None: not answered).

    Raises ``GslbError`` subclasses for a bad GeoIP file or Redis URL,
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
    ) -> None:
        self.config = config
        self.config_paths = tuple(str(p) for p in (config_paths or config.files))
        self.generation = 1
        self.loaded_at = time.time()
        self.started_at: float | None = None
        self.redis_url = redis_url
        self.health = QuorumView(config.health.quorum, config.health.stale_after_s)
        self.overrides = Overrides(overrides_path if redis_url is None else None)
        self.overrides.load_file()
        self.overrides.on_change = self._on_override
        self.view = DrainedView(self.health, self.overrides)
        """What steering reads: health with the drains applied."""
        self.stats = QueryStats()
        self.transitions: deque[Transition] = deque(maxlen=RECENT_TRANSITIONS)
        """Recent overall changes, oldest first."""
        self.geo = GeoDB(geoip) if geoip is not None else None
        self._rng = rng
        if answer_cache < 0:
            raise ValueError(f"answer cache size must be 0 or more, not {answer_cache}")
        self.answer_cache = answer_cache
        self.server_id = server_id
        self.authority, self.preview = self._build(config)
        self.health_source: _Part
        self.shared_overrides: RedisOverrides | None = None
        self.watcher: RedisWatcher | None = None
        if redis_url is None:
            self.health_source = Prober(config.origins, self.health, LOCAL_VANTAGE,
                                        heartbeat_interval_s=config.health.heartbeat_interval_s)
        else:
            from gslb.health.redis.watcher import RedisWatcher

            self.health_source = self.watcher = RedisWatcher(
                redis_url, self.health, resync_interval_s=config.health.resync_interval_s)
            self.shared_overrides = RedisOverrides(
                redis_url, self.overrides, resync_interval_s=config.health.resync_interval_s)
        self._observe: Observer = with_query_log(self.stats.query, query_log_sample)
        self.server: DnsServer | WorkerPool
        if workers > 1:
            from gslb.workers import WorkerPool

            self.server = WorkerPool(self, workers, listen,
                                     str(geoip) if geoip is not None else None,
                                     answer_cache, query_log_sample)
        elif workers == 1:
            self.server = DnsServer(self.handle, listen)
        else:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.admin = admin
        self.admin_optional = admin_optional
        self.admin_token = admin_token or None
        self.admin_addresses: list[tuple[str, int]] = []
        self.registry = make_registry(self)
        self._admin: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    def _build(self, config: Config) -> tuple[Authority, Steering]:
        """The authority answering from ``config``, and a separate Steering
        for status previews (so they touch no live steering state)."""
        authority = Authority(config, self.view, self.geo.locate if self.geo else None,
                              rng=self._rng, on_choice=self.stats.choice,
                              cache_entries=self.answer_cache, server_id=self.server_id)
        return authority, Steering(config.pools, config.origins, vantages=config.vantages)

    def handle(self, data: bytes, who: str, udp: bool) -> bytes | None:
        """Answer one query message (the DNS listeners' handler)."""
        start = perf_counter()
        response = respond(self.authority, data, who, udp, self._observe)
        self.stats.duration(perf_counter() - start)
        return response

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Bound ``(address, port)`` pairs."""
        return self.server.addresses

    async def start(self) -> None:
        """Start the health source (prober or Redis watcher) and the drain
        watcher, then the DNS listeners, then the admin server. Raises
        ``OSError`` when a listen address cannot be bound (the admin one
        too, unless ``admin_optional``)."""
        await self.health_source.start()
        if self.shared_overrides is not None:
            await self.shared_overrides.start()
        # answer from the shared view, not from "everything up", when Redis
        # is there; never wait long for a Redis that is not
        await asyncio.gather(*(_synced(part) for part in (self.health_source,
                                                          self.shared_overrides)
                               if isinstance(part, _Syncing)))
        self._tasks = [asyncio.create_task(self._tick(), name="gslb-health-ticker"),
                       asyncio.create_task(self._watch_transitions(), name="gslb-transitions")]
        try:
            await self.server.start()
            if self.admin is not None:
                await self._start_admin(*self.admin)
        except BaseException:
            await self.stop()
            raise
        self.started_at = time.time()
        # the loaded zone is millions of long-lived objects: keep them out of
        # every later collection (a full one would pause answering)
        gc.freeze()
        log.info("serving %d zone(s): %s", len(self.config.zones),
                 ", ".join(z.rstrip(".") for z in self.config.zones))

    async def _start_admin(self, host: str, port: int) -> None:
        from gslb.admin.app import make_app

        runner = web.AppRunner(make_app(self), access_log=None, shutdown_timeout=1.0)
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
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.shared_overrides is not None:
            await self.shared_overrides.stop()
        await self.health_source.stop()
        if self.geo is not None:
            self.geo.close()

    # -- operations -------------------------------------------------------------------

    async def reload(self, paths: Sequence[str | Path] | None = None) -> ReloadResult:
        """Load the config from ``paths`` (default: the files loaded last)
        and, when it is valid, swap it in at once: one assignment of the
        ``Authority`` (a query sees the old config or the new one, never a
        mix); the prober and health settings follow. On error nothing
        changes and the result holds every ``file:line: key: message``.
        Listen addresses are not part of the config: they never change on
        reload. Logs one line either way. Never raises for a bad config."""
        async with self._reload_lock:
            chosen = tuple(str(p) for p in (paths or self.config_paths))
            try:
                config = await asyncio.to_thread(load_config, list(chosen))
                authority, preview = self._build(config)
            except (GslbError, ValueError) as exc:
                reasons = exc.reasons if isinstance(exc, ConfigError) else (str(exc),)
                self.stats.reloads["error"] += 1
                log.error("reload rejected, still serving generation %d: %s", self.generation,
                          " | ".join(reasons),
                          extra={"event": "reload", "ok": False, "errors": list(reasons)})
                return ReloadResult(False, self.generation, tuple(reasons))
            self.health.quorum = config.health.quorum
            self.health.stale_after_s = config.health.stale_after_s
            if isinstance(self.health_source, Prober):
                self.health.set_origins(config.origins)
                self.health_source.update(config.origins)
            if self.watcher is not None:
                self.watcher.resync_interval_s = config.health.resync_interval_s
                if self.shared_overrides is not None:
                    self.shared_overrides.resync_interval_s = config.health.resync_interval_s
            self.config, self.config_paths = config, chosen
            if authority.cache is not None:
                authority.cache.carry_counts(self.authority.cache)
            self.authority, self.preview = authority, preview  # the swap
            gc.freeze()
            self.generation += 1
            self.loaded_at = time.time()
            self.health.refresh()
            if not isinstance(self.server, DnsServer):
                for message in await self.server.reload(chosen):
                    log.error("reload: %s", message)
            self.stats.reloads["ok"] += 1
            log.info("reloaded %s: generation %d, %d zone(s), %d pool(s), %d origin(s)",
                     ", ".join(chosen), self.generation, len(config.zones), len(config.pools),
                     len(config.origins), extra={"event": "reload", "ok": True,
                                                 "generation": self.generation})
            return ReloadResult(True, self.generation)

    async def drain(self, origin: str, reason: str, who: str,
                    expires_in_s: float | None = None) -> Override:
        """Take ``origin`` out of every answer (of every nameserver, with
        Redis) for ``expires_in_s`` seconds (None: until undrained). Raises
        KeyError for an origin the config does not have, ``OverrideError``
        when Redis cannot be reached (nothing changes then)."""
        if origin not in self.config.origins:
            raise KeyError(origin)
        now = time.time()
        drain = Override(origin, reason, who, now,
                         None if expires_in_s is None else now + expires_in_s)
        if self.shared_overrides is not None:
            await self.shared_overrides.drain(drain)
        else:
            self.overrides.apply(drain)
        return drain

    async def undrain(self, origin: str, who: str, reason: str = "") -> bool:
        """Put ``origin`` back (everywhere); returns whether it was drained.
        Raises ``OverrideError`` when Redis cannot be reached."""
        if self.shared_overrides is not None:
            return await self.shared_overrides.undrain(origin, who, reason)
        return self.overrides.lift(origin, who, reason)

    def redis_connected(self) -> dict[str, bool]:
        """Per Redis client (``health``, ``overrides``): connected and
        synced; empty without Redis."""
        if self.redis_url is None:
            return {}
        return {"health": bool(self.watcher and self.watcher.connected),
                "overrides": bool(self.shared_overrides and self.shared_overrides.connected)}

    def workers_status(self) -> list[dict[str, Any]]:
        """With ``--workers``: per worker ``index``, ``pid``, ``answering``
        (:meth:`gslb.workers.WorkerPool.status`); empty otherwise."""
        return [] if isinstance(self.server, DnsServer) else self.server.status()

    def not_ready(self) -> list[str]:
        """Why this nameserver should not get traffic; empty when ready:
        not started, Redis unreachable (when configured), a worker not
        answering (``--workers``), or the health view degraded (an origin
        with no fresh vantage)."""
        reasons = []
        if self.started_at is None:
            reasons.append("not started: zones not loaded yet")
        for client, ok in self.redis_connected().items():
            if not ok:
                reasons.append(f"Redis unreachable ({client} watcher)")
        if self.started_at is not None:
            down = [w["index"] for w in self.workers_status() if not w["answering"]]
            if down:
                reasons.append("worker(s) not answering (being started again): "
                               + ", ".join(map(str, down)))
        if self.health.degraded:
            held = sorted(o for o, st in self.health.snapshot().items()
                          if st.reports and not st.fresh)
            reasons.append("health view degraded: no fresh vantage for "
                           + ", ".join(held[:10]) + (" ..." if len(held) > 10 else ""))
        return reasons

    # -- background ---------------------------------------------------------------------

    async def _tick(self) -> None:
        """Re-evaluate staleness (it moves with time, not with messages)."""
        while True:
            await asyncio.sleep(min(1.0, self.health.stale_after_s / 4))
            self.health.refresh()

    async def _watch_transitions(self) -> None:
        """Record every overall up/down change of the health view."""
        def down_now() -> set[str]:
            return {o for o in self.config.origins if not self.health.is_up(o)}

        down, seen = down_now(), self.health.generation
        while True:
            with contextlib.suppress(TimeoutError):
                await self.health.wait_for(lambda seen=seen: self.health.generation != seen, 3600)
            raise_if_cancelling()
            seen = self.health.generation
            now = down_now()
            for origin in sorted(now - down):
                self._record(origin, "down", "health checks")
            for origin in sorted(down - now):
                self._record(origin, "up", "health checks")
            down = now

    def _on_override(self, drain: Override, drained: bool) -> None:
        self._record(drain.origin, "drained" if drained else "undrained",
                     f"{drain.who}: {drain.reason}" if drained else "drain lifted")

    def _record(self, origin: str, state: str, cause: str) -> None:
        self.transitions.append(Transition(time.time(), origin, state, cause))
        self.stats.transition(origin, state)


async def _synced(part: _Syncing) -> None:
    with contextlib.suppress(TimeoutError):
        await part.wait_synced(STARTUP_SYNC_S)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ProbeService:
    """A probe worker: checks every origin of ``config`` from ``vantage`` and
    writes the reports to the Redis at ``redis_url``. Raises ``GslbError``
    subclasses for a bad Redis URL, ``ValueError`` for a vantage the config
    does not declare."""

    def __init__(self, config: Config, vantage: str, redis_url: str,
                 rng: random.Random | None = None) -> None:
        from gslb.health.redis.sink import RedisSink

        if vantage not in config.vantages:
            declared = ", ".join(sorted(config.vantages)) or "none declared"
            raise ValueError(f"vantage {vantage!r} is not in the config's vantages "
                             f"({declared})")
        self.config = config
        self.vantage = vantage
        self.sink = RedisSink(redis_url, key_ttl_s=key_ttl_s(config))
        self.prober = Prober(config.origins, self.sink, vantage, rng=rng,
                             heartbeat_interval_s=config.health.heartbeat_interval_s)

    async def start(self) -> None:
        """Start writing, then probing (returns at once even if Redis is
        down: reports wait for it)."""
        await self.sink.start()
        await self.prober.start()
        log.info("probing %d origin(s) from vantage %s", len(self.prober.running),
                 self.vantage)

    async def stop(self) -> None:
        """Stop probing, then flush what is pending (bounded) and close."""
        await self.prober.stop()
        await self.sink.stop()
