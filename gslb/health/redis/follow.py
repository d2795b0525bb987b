"""Following a Redis pub/sub channel: subscribe, load in full, apply
each message, load again now and then, and start over after any error
(``follow_channel``, for the health watcher and the drain watcher)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from redis.asyncio import Redis

from gslb.errors import raise_if_cancelling
from gslb.health.redis.client import RedisTarget, make_client
from gslb.health.redis.outage import Backoff, Outage


class ChannelFollower(Protocol):
    """What :func:`follow_channel` drives: a Redis ``target``; ``connected``
    (set by it); ``resync_interval_s`` (read at every resync, so a reload
    may change it); ``_outage`` to log through; ``_load(client)``, a full
    load; ``_on_message(data)``, one message of the channel."""

    target: RedisTarget
    connected: bool
    resync_interval_s: float
    _outage: Outage

    async def _load(self, client: Redis) -> None: ...

    def _on_message(self, data: str) -> None: ...


async def follow_channel(follower: ChannelFollower, channel: str, backoff: Backoff) -> None:
    """Keep ``follower`` in step with Redis, until cancelled: on a fresh
    connection, subscribe to ``channel``, load in full, then hand over each
    message and load again every ``follower.resync_interval_s`` seconds. On
    any error: not connected, one log line per outage, connections closed,
    ``backoff`` before starting over (reset once connected)."""
    loop = asyncio.get_running_loop()
    while True:
        client = make_client(follower.target)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            await follower._load(client)
            follower.connected = True
            follower._outage.succeeded()
            backoff.attempt = 0
            next_load = loop.time() + follower.resync_interval_s
            while True:
                wait = next_load - loop.time()
                if wait <= 0:
                    await follower._load(client)
                    next_load = loop.time() + follower.resync_interval_s
                    continue
                message = await pubsub.get_message(timeout=wait)
                # redis-py returns None when its read timeout and a cancellation
                # land together (the CancelledError became its TimeoutError):
                # without this check a stop would wait out the next read
                raise_if_cancelling()
                if message is not None and message.get("type") == "message":
                    follower._on_message(message["data"])
        except Exception as exc:
            raise_if_cancelling()
            follower.connected = False
            follower._outage.failed(exc)
        finally:
            for closing in (pubsub, client):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await closing.aclose()
        await asyncio.sleep(backoff.next())
