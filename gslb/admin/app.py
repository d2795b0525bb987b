"""The admin HTTP application (aiohttp): routes, typed app keys.

``make_app(parts)`` returns the ``web.Application`` that ``gslb serve``
serves on its admin address (default ``127.0.0.1:8053``). It gets narrow
objects (:class:`AdminParts`), each under its own typed ``web.AppKey``,
never the serving process whole. Endpoints and their auth are in
``gslb.admin.handlers`` and docs/admin.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from gslb.admin import handlers
from gslb.admin.handlers import (
    DRAINS,
    EXPLAIN,
    NOT_READY,
    REGISTRY,
    RELOAD,
    STATIC_DIR,
    STATUS,
    TOKEN,
    DrainControl,
    Explainer,
    Reloaded,
)


@dataclass(frozen=True, slots=True)
class AdminParts:
    """What the admin server reads and acts through: ``status()`` builds
    the status document, ``not_ready()`` says why not to send traffic here
    (empty: ready), ``registry`` is rendered on ``/metrics``, ``drains``
    and ``reload()`` serve the POST endpoints, ``token`` guards them
    (None: disabled), ``explain`` answers ``/api/v1/explain`` (None: 404)."""

    status: Callable[[], dict[str, Any]]
    not_ready: Callable[[], list[str]]
    registry: CollectorRegistry
    drains: DrainControl
    reload: Callable[[], Awaitable[Reloaded]]
    token: str | None
    explain: Explainer | None = None


def make_app(parts: AdminParts) -> web.Application:
    """The admin application over ``parts``."""
    app = web.Application()
    app[STATUS] = parts.status
    app[NOT_READY] = parts.not_ready
    app[REGISTRY] = parts.registry
    app[DRAINS] = parts.drains
    app[RELOAD] = parts.reload
    app[TOKEN] = parts.token
    app[EXPLAIN] = parts.explain
    app.router.add_get("/", handlers.index)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/api/v1/status", handlers.status)
    app.router.add_get("/api/v1/explain", handlers.explain)
    app.router.add_post("/api/v1/origins/{name}/drain", handlers.drain)
    app.router.add_post("/api/v1/origins/{name}/undrain", handlers.undrain)
    app.router.add_post("/api/v1/reload", handlers.reload)
    return app
