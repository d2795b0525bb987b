"""The health state in Redis read once, as ``gslb serve --redis`` reads it
on start, for the tools that look and then leave (``gslb explain
--config --redis``, ``gslb drill --redis``): nothing is written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gslb.config.model import Config
from gslb.health.overrides import Overrides
from gslb.health.view import QuorumView


def quorum_view(config: Config, clock: Callable[[], float] | None = None) -> QuorumView:
    """An empty ``QuorumView`` set up as ``gslb serve --redis`` sets up its
    own: the config's quorum, ``stale_after_s`` and ``unknown`` policy, its
    checked origins and declared vantages (none declared: those heard
    from). ``clock``: epoch seconds (default ``time.time``)."""
    health = config.health
    view = (QuorumView(health.quorum, health.stale_after_s, unknown_up=health.unknown_up)
            if clock is None else
            QuorumView(health.quorum, health.stale_after_s, clock, unknown_up=health.unknown_up))
    checked = [name for name, o in config.origins.items() if o.check is not None]
    view.set_origins(checked, set(config.vantages) if config.vantages else None)
    return view


async def load_once(config: Config, url: str, view: QuorumView,
                    timeout_s: float) -> Overrides:
    """Every vantage's reports in Redis at ``url`` loaded into ``view``, and
    the shared drains, each by one full load (``RedisWatcher`` and
    ``RedisOverrides``: SUBSCRIBE, the load, then stopped). Raises
    ``TimeoutError`` (its message names the Redis, password masked) when a
    load does not finish within ``timeout_s`` seconds, ``RedisConfigError``
    for a bad URL."""
    # redis-py only when Redis is asked for (quorum_view needs none of it)
    from gslb.health.overrides import RedisOverrides
    from gslb.health.redis.client import mask_url
    from gslb.health.redis.watcher import RedisWatcher
    from gslb.health.signing import signer_of

    settings = config.health
    overrides = Overrides()
    watcher = RedisWatcher(url, view, resync_interval_s=settings.resync_interval_s,
                           signer=signer_of(settings))
    shared = RedisOverrides(url, overrides, resync_interval_s=settings.resync_interval_s,
                            signer=signer_of(settings))
    await watcher.start()
    await shared.start()
    try:
        await asyncio.gather(watcher.wait_synced(timeout_s), shared.wait_synced(timeout_s))
    except TimeoutError:
        raise TimeoutError(f"Redis at {mask_url(url)} not read within {timeout_s:g} s"
                           ) from None
    finally:
        await watcher.stop()
        await shared.stop()
    return overrides


__all__ = ["load_once", "quorum_view"]
