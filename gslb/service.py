"""Wiring: configuration, health, probing, GeoIP and DNS listeners.

Two processes exist:

* ``Service`` (``gslb serve``): the nameserver. Embedded default: an
  in-process prober (vantage ``local``) reports straight into the health
  view. With Redis: a ``RedisWatcher`` keeps the view in step with every
  probe worker's reports instead.
* ``ProbeService`` (``gslb probe``): a probe worker for one vantage, writing
  its reports to Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path
from typing import Protocol, runtime_checkable

from gslb.authority import Authority, respond
from gslb.config.model import Config
from gslb.dns.server import DnsServer
from gslb.geo import GeoDB
from gslb.health.view import QuorumView
from gslb.probe.worker import Prober

log = logging.getLogger("gslb.service")

LOCAL_VANTAGE = "local"
"""Vantage name of the embedded prober."""


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


class Service:
    """One serving nameserver.

    ``listen`` holds ``(address, port)`` pairs (port 0: any free port, see
    ``addresses`` after ``start``). ``geoip`` is an mmdb path or None (then
    clients cannot be located: geo pools answer from their ``default``).
    ``redis_url``: None for the embedded prober, else the Redis to read the
    shared health state from (``gslb.health.redis.parse_url`` forms).
    Raises ``GslbError`` subclasses for a bad GeoIP file or Redis URL.
    """

    def __init__(
        self,
        config: Config,
        listen: list[tuple[str, int]],
        geoip: str | Path | None = None,
        rng: random.Random | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.config = config
        self.health = QuorumView(config.health.quorum, config.health.stale_after_s)
        self.geo = GeoDB(geoip) if geoip is not None else None
        self.authority = Authority(
            config, self.health, self.geo.locate if self.geo else None, rng=rng)
        self.health_source: _Part
        if redis_url is None:
            self.health_source = Prober(config.origins, self.health, LOCAL_VANTAGE,
                                        heartbeat_interval_s=config.health.heartbeat_interval_s)
        else:
            from gslb.health.redis import RedisWatcher

            self.health_source = RedisWatcher(
                redis_url, self.health, resync_interval_s=config.health.resync_interval_s)
        self.server = DnsServer(self.handle, listen)
        self._ticker: asyncio.Task[None] | None = None

    def handle(self, data: bytes, who: str, udp: bool) -> bytes | None:
        """Answer one query message (the DNS listeners' handler)."""
        return respond(self.authority, data, who, udp)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Bound ``(address, port)`` pairs."""
        return self.server.addresses

    async def start(self) -> None:
        """Start the health source (prober or Redis watcher), then the
        listeners. Raises ``OSError`` when a listen address cannot be bound."""
        await self.health_source.start()
        if isinstance(self.health_source, _Syncing):
            # answer from the shared view, not from "everything up", when
            # Redis is there; never wait long for a Redis that is not
            with contextlib.suppress(TimeoutError):
                await self.health_source.wait_synced(STARTUP_SYNC_S)
        self._ticker = asyncio.create_task(self._tick(), name="gslb-health-ticker")
        try:
            await self.server.start()
        except BaseException:
            await self.stop()
            raise
        log.info("serving %d zone(s): %s", len(self.config.zones),
                 ", ".join(z.rstrip(".") for z in self.config.zones))

    async def stop(self) -> None:
        """Stop listening, then stop the health source."""
        await self.server.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.health_source.stop()
        if self.geo is not None:
            self.geo.close()

    async def _tick(self) -> None:
        """Re-evaluate staleness (it moves with time, not with messages)."""
        period = min(1.0, self.health.stale_after_s / 4)
        while True:
            await asyncio.sleep(period)
            self.health.refresh()


class ProbeService:
    """A probe worker: checks every origin of ``config`` from ``vantage`` and
    writes the reports to the Redis at ``redis_url``. Raises ``GslbError``
    subclasses for a bad Redis URL, ``ValueError`` for a vantage the config
    does not declare."""

    def __init__(self, config: Config, vantage: str, redis_url: str,
                 rng: random.Random | None = None) -> None:
        from gslb.health.redis import RedisSink

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
