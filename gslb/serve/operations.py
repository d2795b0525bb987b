"""What operators act through: drains, and whether to send traffic here.

The admin server (:mod:`gslb.admin`) reaches these through narrow objects:
:class:`Drains` for ``POST .../drain`` and ``.../undrain``, and
:func:`not_ready` behind ``/readyz``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gslb.config.model import Origin
from gslb.health.overrides import Override, Overrides, RedisOverrides
from gslb.health.view import QuorumView

if TYPE_CHECKING:  # redis-py is loaded only by a nameserver that uses Redis
    from gslb.health.redis.watcher import RedisWatcher


class Drains:
    """Drains of this nameserver: in ``overrides`` only, or, with Redis
    (``shared``), of every nameserver sharing it. ``origins()`` gives the
    origins of the config in force."""

    def __init__(self, overrides: Overrides, shared: RedisOverrides | None,
                 origins: Callable[[], Mapping[str, Origin]]) -> None:
        self.overrides = overrides
        self.shared = shared
        self._origins = origins

    async def drain(self, origin: str, reason: str, who: str,
                    expires_in_s: float | None = None, ramp_s: float | None = None
                    ) -> Override:
        """Take ``origin`` out of every answer (of every nameserver, with
        Redis) for ``expires_in_s`` seconds from now (None: until
        undrained), after its weight falls to zero over ``ramp_s`` seconds
        (None: at once; ``Override.ramp_s``). Raises
        KeyError for an origin the config does not have, ``OverrideError``
        when Redis cannot be reached (nothing changes then)."""
        if origin not in self._origins():
            raise KeyError(origin)
        now = time.time()
        drain = Override(origin, reason, who, now,
                         None if expires_in_s is None else now + expires_in_s, ramp_s)
        if self.shared is not None:
            await self.shared.drain(drain)
        else:
            self.overrides.apply(drain)
        return drain

    async def undrain(self, origin: str, who: str, reason: str = "") -> bool:
        """Put ``origin`` back (everywhere); returns whether it was drained.
        Raises ``OverrideError`` when Redis cannot be reached."""
        if self.shared is not None:
            return await self.shared.undrain(origin, who, reason)
        return self.overrides.lift(origin, who, reason)


@dataclass(frozen=True, slots=True)
class RedisClients:
    """The Redis clients of ``gslb serve --redis``: the health ``watcher``
    and the drain follower ``overrides``."""

    watcher: RedisWatcher
    overrides: RedisOverrides

    def connected(self) -> dict[str, bool]:
        """Per client (``health``, ``overrides``): connected and synced."""
        return {"health": self.watcher.connected, "overrides": self.overrides.connected}


def not_ready(started: bool, redis: RedisClients | None, workers: Sequence[Mapping[str, Any]],
              health: QuorumView) -> list[str]:
    """Why a nameserver should not get traffic; empty when ready: not
    ``started``, a ``redis`` client not connected, one of ``workers``
    (:meth:`gslb.workers.supervisor.WorkerPool.status`) not answering, or
    ``health`` degraded (an origin holding its state: fewer than quorum
    fresh vantages)."""
    reasons = []
    if not started:
        reasons.append("not started: zones not loaded yet")
    for client, ok in (redis.connected() if redis is not None else {}).items():
        if not ok:
            reasons.append(f"Redis unreachable ({client} watcher)")
    if started:
        down = [w["index"] for w in workers if not w["answering"]]
        if down:
            reasons.append("worker(s) not answering (being started again): "
                           + ", ".join(map(str, down)))
    if health.degraded:
        held = sorted(o for o, st in health.snapshot().items() if st.held == "fresh")
        reasons.append(f"health view degraded: fewer than quorum ({health.need()}) fresh "
                       "vantages for " + ", ".join(held[:10]) + (" ..." if len(held) > 10 else ""))
    return reasons


__all__ = ["Drains", "RedisClients", "not_ready"]
