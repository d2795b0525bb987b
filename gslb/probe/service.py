"""``ProbeService``: the ``gslb probe`` process, a probe worker for one
vantage writing its reports to Redis (docs/operations.md)."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gslb.config.model import Config
from gslb.errors import raise_if_cancelling
from gslb.health.signing import signer_of
from gslb.probe.worker import Prober

if TYPE_CHECKING:
    from gslb.health.redis.sink import RedisSink
    from gslb.health.state import VantageReport

log = logging.getLogger("gslb.service")


#: Seconds a starting or reloading probe waits for its last reports in
#: Redis before it probes without them (origins then start unknown).
SEED_TIMEOUT_S = 2.0


class ProbeService:
    """A probe worker: checks every origin of ``config`` from ``vantage`` and
    writes the reports to the Redis at ``redis_url``. Raises ``GslbError``
    subclasses for a bad Redis URL, ``ValueError`` for a vantage the config
    does not declare. ``config_paths`` are the files ``reload()`` reads
    (default ``config.files``)."""

    def __init__(self, config: Config, vantage: str, redis_url: str,
                 rng: random.Random | None = None,
                 config_paths: Sequence[str | Path] | None = None) -> None:
        # redis-py only where it is used: gslb serve, check and status never load it
        from gslb.health.redis.sink import RedisSink

        _check_vantage(config, vantage)
        self.config = config
        self.vantage = vantage
        self.paths = tuple(str(p) for p in (config_paths or config.files))
        self.sink: RedisSink = RedisSink(redis_url, key_ttl_s=config.health.key_ttl_s,
                                         signer=signer_of(config.health))
        self.prober = Prober(config.origins, self.sink, vantage, rng=rng,
                             heartbeat_interval_s=config.health.heartbeat_interval_s)

    async def start(self) -> None:
        """Seed from the vantage's last reports in Redis (bounded by
        ``SEED_TIMEOUT_S``), start writing, then probing (returns even if
        Redis is down: origins then start unknown and reports wait for it)."""
        await self._seed()
        await self.sink.start()
        await self.prober.start()
        log.info("probing %d origin(s) from vantage %s", len(self.prober.running),
                 self.vantage)

    async def reload(self) -> bool:
        """Read the config files again and apply them: origins added are
        seeded from Redis and probed at once, removed ones stop at once,
        changed checks keep their state (``Prober.update``). A bad config
        (``ConfigError``, logged with every reason) or one that no longer
        declares this vantage is refused and the old one keeps probing.
        Returns whether the new config is in force."""
        from gslb.config.load import load
        from gslb.errors import ConfigError

        try:
            config = load(list(self.paths))
            _check_vantage(config, self.vantage)
        except (ConfigError, OSError, ValueError) as exc:
            reasons = exc.reasons if isinstance(exc, ConfigError) else [str(exc)]
            log.error("probe reload refused, the old config keeps probing: %s",
                      "; ".join(reasons))
            return False
        added = {n for n, o in config.origins.items() if o.check is not None
                 and n not in self.prober.checks}
        reports = await self._last_reports() if added else []
        self.config = config
        self.sink.key_ttl_s = config.health.key_ttl_s
        self.sink.signer = signer_of(config.health)
        self.prober.heartbeat_interval_s = config.health.heartbeat_interval_s
        self.prober.update(config.origins)  # the new tasks run after the seeds
        self._log_seeded(self.prober.seed(r for r in reports if r.origin in added))
        return True

    async def _seed(self) -> None:
        self._log_seeded(self.prober.seed(await self._last_reports()))

    async def _last_reports(self) -> list[VantageReport]:
        """This vantage's last reports in Redis; none when Redis cannot be
        read within ``SEED_TIMEOUT_S`` (logged)."""
        try:
            return await self.sink.last_reports(self.vantage, SEED_TIMEOUT_S)
        except Exception as exc:
            raise_if_cancelling()
            log.warning("vantage %s: cannot read its last reports from Redis (%s: %s); "
                        "origins without state start unknown", self.vantage,
                        type(exc).__name__, exc)
            return []

    def _log_seeded(self, seeded: int) -> None:
        log.info("vantage %s: %d origin(s) seeded from their last report in Redis",
                 self.vantage, seeded)

    async def stop(self) -> None:
        """Stop probing, then flush what is pending (bounded) and close."""
        await self.prober.stop()
        await self.sink.stop()


def _check_vantage(config: Config, vantage: str) -> None:
    if vantage not in config.vantages:
        declared = ", ".join(sorted(config.vantages)) or "none declared"
        raise ValueError(f"vantage {vantage!r} is not in the config's vantages "
                         f"({declared})")


__all__ = ["SEED_TIMEOUT_S", "ProbeService"]
