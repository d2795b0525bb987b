"""The admin HTTP application (aiohttp): routes, typed app keys.

``make_app(service)`` returns the ``web.Application`` that ``Service``
serves on its admin address (default ``127.0.0.1:8053``). Endpoints and
their auth are in ``gslb.admin.handlers`` and docs/admin.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from gslb.admin import handlers
from gslb.admin.handlers import SERVICE, STATIC_DIR

if TYPE_CHECKING:
    from gslb.service import Service

def make_app(service: Service) -> web.Application:
    """The admin application for ``service`` (stored under ``SERVICE``)."""
    app = web.Application()
    app[SERVICE] = service
    app.router.add_get("/", handlers.index)
    app.router.add_static("/static/", STATIC_DIR)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/api/v1/status", handlers.status)
    app.router.add_post("/api/v1/origins/{name}/drain", handlers.drain)
    app.router.add_post("/api/v1/origins/{name}/undrain", handlers.undrain)
    app.router.add_post("/api/v1/reload", handlers.reload)
    return app
