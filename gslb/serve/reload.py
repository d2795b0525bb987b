"""Safe reload: a new config is validated and built whole, then swapped in.

SIGHUP and ``POST /api/v1/reload`` both end in :meth:`Reloader.reload`.
A config that fails to load or build changes nothing (the old one keeps
serving) and the result carries every ``file:line: key: message``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gslb.answering import freeze_loaded
from gslb.authority import Authority
from gslb.config.load import load as load_config
from gslb.config.loader import gc_paused
from gslb.config.model import Config
from gslb.errors import ConfigError, GslbError
from gslb.stats import QueryStats
from gslb.steering import Steering

log = logging.getLogger("gslb.service")


@dataclass(frozen=True, slots=True)
class Loaded:
    """One configuration in force: ``config`` read from ``paths``,
    ``generation`` (1 at start, +1 per successful reload), ``loaded_at``
    (epoch seconds), the ``authority`` built from it and ``preview``, a
    separate :class:`Steering` for status previews (it touches no live
    steering state and logs nothing)."""

    config: Config
    paths: tuple[str, ...]
    generation: int
    loaded_at: float
    authority: Authority
    preview: Steering


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The outcome of :meth:`Reloader.reload`: ``ok``; ``generation`` in
    force afterwards; ``messages``: on failure every ``file:line: key:
    message`` (the old config is still served), empty on success."""

    ok: bool
    generation: int
    messages: tuple[str, ...] = ()


Build = Callable[[Config], tuple[Authority, Steering]]
"""``config -> (authority, preview)``; raises ``ValueError`` (or a
``GslbError``) for a config that cannot be served. Called in a worker
thread, never on the event loop: it must only read shared state."""

Apply = Callable[[Loaded], Awaitable[list[str]]]
"""Put a new :class:`Loaded` in force everywhere (answer path, health
settings, workers); returns one message per part that failed to follow
(it keeps the old config)."""


class Reloader:
    """Holds the configuration in force (``loaded``) and replaces it.

    ``build`` turns a config into what answers it; ``apply`` puts a new
    one in force; reload outcomes are counted in ``stats.reloads``. One
    reload runs at a time.
    """

    def __init__(self, first: Loaded, build: Build, apply: Apply, stats: QueryStats) -> None:
        self.loaded = first
        self._build = build
        self._apply = apply
        self._stats = stats
        self._lock = asyncio.Lock()

    def _load_and_build(self, paths: Sequence[str]) -> tuple[Config, Authority, Steering]:
        """Read and build the config of ``paths`` (run in a thread; ``build``
        only reads what it is given, so a query never sees it half-built).

        The cyclic garbage collector stays off throughout and what was built
        is frozen (``gc.freeze``) before it is turned on again: otherwise the
        first collection after the build walks its millions of new objects
        holding the GIL, which stalls the event loop as long (150 ms for a
        100,000-name zone) as building it on the loop did."""
        with gc_paused():
            config = load_config(list(paths))
            authority, preview = self._build(config)
            freeze_loaded()
        return config, authority, preview

    async def reload(self, paths: Sequence[str | Path] | None = None) -> ReloadResult:
        """Load the config from ``paths`` (default: the files loaded last)
        and, when it is valid, swap it in at once (a query sees the old
        config or the new one, never a mix); reading and building run in a
        thread, so queries are answered from the old config meanwhile; the prober and health
        settings follow. On error nothing changes and the result holds
        every ``file:line: key: message``. Listen addresses are not part of
        the config: they never change on reload. Logs one line either way.
        Never raises for a bad config."""
        async with self._lock:
            old = self.loaded
            chosen = tuple(str(p) for p in (paths or old.paths))
            try:  # off the event loop: a big zone takes seconds, answering goes on
                config, authority, preview = await asyncio.to_thread(self._load_and_build,
                                                                     chosen)
            except (GslbError, ValueError) as exc:
                reasons = exc.reasons if isinstance(exc, ConfigError) else (str(exc),)
                self._stats.reloads["error"] += 1
                log.error("reload rejected, still serving generation %d: %s", old.generation,
                          " | ".join(reasons),
                          extra={"event": "reload", "ok": False, "errors": list(reasons)})
                return ReloadResult(False, old.generation, tuple(reasons))
            new = Loaded(config, chosen, old.generation + 1, time.time(), authority, preview)
            self.loaded = new
            for message in await self._apply(new):
                log.error("reload: %s", message)
            self._stats.reloads["ok"] += 1
            log.info("reloaded %s: generation %d, %d zone(s), %d pool(s), %d origin(s)",
                     ", ".join(chosen), new.generation, len(config.zones), len(config.pools),
                     len(config.origins), extra={"event": "reload", "ok": True,
                                                 "generation": new.generation})
            return ReloadResult(True, new.generation)


__all__ = ["Apply", "Build", "Loaded", "ReloadResult", "Reloader"]
