"""Wiring: configuration, health, prober, GeoIP and DNS listeners in one
process (the embedded default: in-process prober, in-memory health)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path

from gslb.authority import Authority, respond
from gslb.config.model import Config
from gslb.dns.server import DnsServer
from gslb.geo import GeoDB
from gslb.health.view import QuorumView
from gslb.probe.worker import Prober

log = logging.getLogger("gslb.service")


class Service:
    """One serving nameserver.

    ``listen`` holds ``(address, port)`` pairs (port 0: any free port, see
    ``addresses`` after ``start``). ``geoip`` is an mmdb path or None (then
    clients cannot be located: geo pools answer from their ``default``).
    """

    def __init__(
        self,
        config: Config,
        listen: list[tuple[str, int]],
        geoip: str | Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.health = QuorumView(config.health.quorum, config.health.stale_after_s)
        self.geo = GeoDB(geoip) if geoip is not None else None
        self.authority = Authority(
            config, self.health, self.geo.locate if self.geo else None, rng=rng)
        self.prober = Prober(config.origins, self.health,
                             heartbeat_interval_s=config.health.heartbeat_interval_s)
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
        """Start the prober, then the listeners. Raises ``OSError`` when a
        listen address cannot be bound."""
        await self.prober.start()
        self._ticker = asyncio.create_task(self._tick(), name="gslb-health-ticker")
        try:
            await self.server.start()
        except BaseException:
            await self.stop()
            raise
        log.info("serving %d zone(s): %s", len(self.config.zones),
                 ", ".join(z.rstrip(".") for z in self.config.zones))

    async def stop(self) -> None:
        """Stop listening, then stop the prober."""
        await self.server.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.prober.stop()
        if self.geo is not None:
            self.geo.close()

    async def _tick(self) -> None:
        """Re-evaluate staleness (it moves with time, not with messages)."""
        period = min(1.0, self.health.stale_after_s / 4)
        while True:
            await asyncio.sleep(period)
            self.health.refresh()
