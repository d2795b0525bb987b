"""The key schema and the message encoding shared by ``RedisSink``,
``RedisWatcher`` and ``RedisOverrides`` (docs/redis.md). Imports no Redis
client: ``gslb.health.overrides`` uses it without loading redis-py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

NAMESPACE = "gslb:v1:"
"""Prefix of every key and channel (versioned: see docs/redis.md)."""


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys and the channel under ``namespace`` (normally ``NAMESPACE``)."""

    namespace: str

    def report(self, vantage: str, origin: str) -> str:
        """The hash of ``vantage``'s latest report on ``origin``."""
        return f"{self.namespace}report:{vantage}:{origin}"

    def vantage(self, vantage: str) -> str:
        """The hash of ``vantage``'s heartbeat (``at``, epoch seconds) and identity."""
        return f"{self.namespace}vantage:{vantage}"

    @property
    def channel(self) -> str:
        """The pub/sub channel of reports, heartbeats and forgets."""
        return f"{self.namespace}events"


def dumps(message: Mapping[str, object]) -> str:
    """``message`` as compact JSON, as published on the channel."""
    return json.dumps(message, separators=(",", ":"))


def hash_items(fields: Mapping[str, str]) -> list[str]:
    """``fields`` flattened to ``field, value, field, value...``: the
    arguments of HSET (``hset(key, items=...)``) and of a script's HSET."""
    return [x for kv in fields.items() for x in kv]
