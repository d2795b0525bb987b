"""``ProbeService``: the ``gslb probe`` process, a probe worker for one
vantage writing its reports to Redis (docs/operations.md)."""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING

from gslb.config.model import Config
from gslb.probe.worker import Prober

if TYPE_CHECKING:
    from gslb.health.redis.sink import RedisSink

log = logging.getLogger("gslb.service")


def key_ttl_s(config: Config) -> float:
    """Seconds a vantage's Redis keys outlive its last write: long enough to
    ride out a short outage, short enough that a vantage that went away
    disappears: ``max(60, 6 × stale_after)``."""
    return max(60.0, 6 * config.health.stale_after_s)


class ProbeService:
    """A probe worker: checks every origin of ``config`` from ``vantage`` and
    writes the reports to the Redis at ``redis_url``. Raises ``GslbError``
    subclasses for a bad Redis URL, ``ValueError`` for a vantage the config
    does not declare."""

    def __init__(self, config: Config, vantage: str, redis_url: str,
                 rng: random.Random | None = None) -> None:
        # redis-py only where it is used: gslb serve, check and status never load it
        from gslb.health.redis.sink import RedisSink

        if vantage not in config.vantages:
            declared = ", ".join(sorted(config.vantages)) or "none declared"
            raise ValueError(f"vantage {vantage!r} is not in the config's vantages "
                             f"({declared})")
        self.config = config
        self.vantage = vantage
        self.sink: RedisSink = RedisSink(redis_url, key_ttl_s=key_ttl_s(config))
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


__all__ = ["ProbeService", "key_ttl_s"]
