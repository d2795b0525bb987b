"""The admin endpoints (docs/admin.md).

Read-only, open to whoever reaches the admin address: ``GET /`` (status
page), ``/healthz``, ``/readyz``, ``/metrics``, ``/api/v1/status``,
``/api/v1/explain``.
Mutating, each needing ``Authorization: Bearer <token>`` (RFC 6750 section
2.1; compared in constant time): ``POST /api/v1/origins/{name}/drain``,
``/undrain``, ``/api/v1/reload``. Without a token configured they answer
403 (disabled, not open); with a missing or wrong token, 401.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gslb.explain import ExplainError
from gslb.health.overrides import Override, OverrideError

log = logging.getLogger("gslb.admin")

STATIC_DIR = Path(str(files("gslb.admin") / "static"))
"""The status page's HTML, JS and CSS (package data, no build step)."""


class DrainControl(Protocol):
    """What ``POST .../drain`` and ``.../undrain`` act through
    (:class:`gslb.serve.operations.Drains`)."""

    async def drain(self, origin: str, reason: str, who: str,
                    expires_in_s: float | None = None, ramp_s: float | None = None
                    ) -> Override:
        """Raises KeyError for an unknown origin, ``OverrideError`` when
        the drain cannot be shared."""
        ...

    async def undrain(self, origin: str, who: str, reason: str = "") -> bool:
        """Returns whether it was drained; ``OverrideError`` as above."""
        ...


class Reloaded(Protocol):
    """The outcome of a reload (:class:`gslb.serve.reload.ReloadResult`)."""

    @property
    def ok(self) -> bool: ...

    @property
    def generation(self) -> int: ...

    @property
    def messages(self) -> tuple[str, ...]: ...


STATUS = web.AppKey[Callable[[], dict[str, Any]]]("status")
"""Builds the status document (:func:`gslb.serve.status.status_of`)."""
NOT_READY = web.AppKey[Callable[[], list[str]]]("not_ready")
"""Why the nameserver should not get traffic now (empty: ready)."""
REGISTRY = web.AppKey("registry", CollectorRegistry)
"""The Prometheus registry ``/metrics`` renders."""
DRAINS = web.AppKey[DrainControl]("drains")
"""Drains, for the POST endpoints."""
RELOAD = web.AppKey[Callable[[], Awaitable[Reloaded]]]("reload")
"""Reloads the config files in use."""
Explainer = Callable[[str, str, str, str | None], dict[str, Any]]
"""``(name, type, client, ecs)`` → the explain document."""
EXPLAIN = web.AppKey[Explainer | None]("explain")
"""Explains one query's answer, ``(name, type, client, ecs)`` → the document
(:func:`gslb.explain.explain` over the authority in force); None: no route."""
TOKEN = web.AppKey[str | None]("token")
"""The bearer token of the POST endpoints (None: they are disabled)."""

TOKEN_HELP = ("mutating endpoints are disabled: no admin token is configured "
              "(gslb serve --admin-token-file PATH, or the GSLB_ADMIN_TOKEN environment variable)")


def _json(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(data, status=status, headers=headers or None,
                             dumps=lambda d: json.dumps(d, indent=1))


def _authorize(request: web.Request) -> None:
    """Raise 403 (no token configured) or 401 (missing or wrong bearer)."""
    token = request.app[TOKEN]
    if token is None:
        raise web.HTTPForbidden(text=json.dumps({"error": TOKEN_HELP}),
                                content_type="application/json")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             token.encode()):
        log.warning("admin %s %s from %s: bad or missing bearer token", request.method,
                    request.path, request.remote)
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "a valid 'Authorization: Bearer <token>' is required"}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="gslb"'})


async def _body(request: web.Request) -> dict[str, Any]:
    """The JSON object body (empty body: ``{}``); 400 otherwise."""
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object"}),
                                 content_type="application/json") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object"}),
                                 content_type="application/json")
    return data


def _bad(message: str) -> web.Response:
    return _json({"error": message}, 400)


# -- read-only ------------------------------------------------------------------------


async def index(request: web.Request) -> web.FileResponse:
    """``GET /``: the status page."""
    return web.FileResponse(STATIC_DIR / "index.html")


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 while the process runs."""
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 ``{"ready": true}`` when zones are loaded, the
    health view is fresh and Redis (when configured) is reachable; else 503
    with ``reasons``."""
    reasons = request.app[NOT_READY]()
    return _json({"ready": not reasons, "reasons": reasons}, 503 if reasons else 200)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format (:mod:`gslb.serve.metrics`)."""
    return web.Response(body=generate_latest(request.app[REGISTRY]),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: the whole picture as JSON
    (:func:`gslb.serve.status.status_of`)."""
    return _json(request.app[STATUS]())


async def explain(request: web.Request) -> web.Response:
    """``GET /api/v1/explain?name=&type=&client=&ecs=``: why a query gets
    its answer (:func:`gslb.explain.explain`; docs/admin.md): ``type`` A
    (default) or AAAA, ``client`` the packet source address (default
    127.0.0.1), ``ecs`` an ECS subnet (none by default). Read-only: the
    outcome is not counted and the answer cache only looked at. 400 with
    ``{"error": ...}`` for a bad parameter."""
    run = request.app[EXPLAIN]
    q = request.query
    name = q.get("name", "").strip()
    if run is None:
        return _json({"error": "explain is not available here"}, 404)
    if not name:
        return _json({"error": "name: required (?name=www.example.com)"}, 400)
    try:
        return _json(run(name, q.get("type", "A"), q.get("client", "127.0.0.1"),
                         q.get("ecs") or None))
    except ExplainError as exc:
        return _json({"error": str(exc)}, 400)


# -- mutating ------------------------------------------------------------------------------


def _who(request: web.Request, body: dict[str, Any]) -> str:
    who = body.get("who")
    return str(who) if who else f"admin@{request.remote}"


async def drain(request: web.Request) -> web.Response:
    """``POST /api/v1/origins/{name}/drain`` with ``{"reason": text,
    "who": text (optional), "expires_in": seconds (optional, > 0), "ramp":
    seconds (optional, > 0, below ``expires_in``)}``: take the origin out of
    every answer, at once or, with ``ramp``, after its weight has fallen
    linearly to zero over that time (docs/steering.md "Slow start and timed
    drains"). 200 ``{"drain": {...}}``; 400 bad body;
    404 unknown origin; 503 when Redis is unreachable (nothing changed)."""
    _authorize(request)
    body = await _body(request)
    name = request.match_info["name"]
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return _bad("a non-empty 'reason' is required")
    expires_in = body.get("expires_in")
    if expires_in is not None and (isinstance(expires_in, bool)
                                   or not isinstance(expires_in, int | float)
                                   or not 0 < expires_in < 10 * 365 * 86400):
        return _bad("'expires_in' must be a number of seconds above 0")
    ramp = body.get("ramp")
    if ramp is not None and (isinstance(ramp, bool) or not isinstance(ramp, int | float)
                             or not 0 < ramp < 86400):
        return _bad("'ramp' must be a number of seconds above 0 and below a day")
    if ramp is not None and expires_in is not None and expires_in <= ramp:
        return _bad("'expires_in' must be longer than 'ramp' (the drain would lift before "
                    "it took effect)")
    try:
        done = await request.app[DRAINS].drain(name, reason.strip(), _who(request, body),
                                               expires_in, None if ramp is None else float(ramp))
    except KeyError:
        return _json({"error": f"no origin named {name!r} in the config"}, 404)
    except OverrideError as exc:
        return _json({"error": f"not drained: {exc}"}, 503)
    return _json({"drain": done.to_json()})


async def undrain(request: web.Request) -> web.Response:
    """``POST /api/v1/origins/{name}/undrain`` with an optional ``{"who",
    "reason"}``: put the origin back. 200 ``{"undrained": bool}`` (False:
    it was not drained); 503 when Redis is unreachable."""
    _authorize(request)
    body = await _body(request)
    name = request.match_info["name"]
    try:
        was = await request.app[DRAINS].undrain(name, _who(request, body),
                                                str(body.get("reason") or ""))
    except OverrideError as exc:
        return _json({"error": f"not undrained: {exc}"}, 503)
    return _json({"undrained": was})


async def reload(request: web.Request) -> web.Response:
    """``POST /api/v1/reload``: reload the config files in use. 200 ``{"ok":
    true, "generation": n}``; 422 ``{"ok": false, "generation": n,
    "errors": ["file:line: key: message", ...]}`` (the old config still
    serves)."""
    _authorize(request)
    result = await request.app[RELOAD]()
    return _json({"ok": result.ok, "generation": result.generation,
                  "errors": list(result.messages)}, 200 if result.ok else 422)
