"""Riding out Redis outages: capped exponential backoff with jitter
(``Backoff``), and one log line when an outage starts and one when it ends
(``Outage``)."""

from __future__ import annotations

import logging
import random
import time

from redis.exceptions import AuthenticationError

from gslb.health.redis.client import RedisTarget

log = logging.getLogger("gslb.health.redis")  # one logger for every module of the package


BACKOFF_CAP_S = 0.5
"""Longest wait, seconds, between two attempts to reach Redis: once Redis is
back, every probe and nameserver is reconnected within it (docs/redis.md:
views whole within 1 s). An attempt to a Redis that refuses costs one
connect; one that hangs is bounded by the connect timeout (2 s)."""


class Backoff:
    """Capped exponential backoff with jitter: ``base_s`` doubling up to
    ``cap_s`` seconds (default ``BACKOFF_CAP_S``), each delay drawn from
    [half, all] of the step."""

    def __init__(self, base_s: float = 0.1, cap_s: float = BACKOFF_CAP_S) -> None:
        self.base_s, self.cap_s, self.attempt = base_s, cap_s, 0

    def next(self) -> float:
        step = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return random.uniform(step / 2, step)


class Outage:
    """One warning when an outage starts, one info line when it ends."""

    def __init__(self, what: str, target: RedisTarget, consequence: str) -> None:
        self.what, self.target, self.consequence = what, target, consequence
        self.since: float | None = None  # monotonic seconds

    def failed(self, exc: BaseException) -> None:
        if self.since is not None:
            log.debug("%s: Redis still unreachable at %s: %s: %s", self.what, self.target,
                      type(exc).__name__, exc)
            return
        self.since = time.monotonic()
        why = ("authentication failed (check the password or GSLB_REDIS_PASSWORD)"
               if isinstance(exc, AuthenticationError) else "unreachable")
        log.warning("%s: Redis %s at %s: %s: %s; %s", self.what, why, self.target,
                    type(exc).__name__, str(exc).rstrip("."), self.consequence)

    def succeeded(self) -> None:
        if self.since is not None:
            log.info("%s: Redis at %s reachable again after %.1f s", self.what, self.target,
                     time.monotonic() - self.since)
            self.since = None
