"""The admin endpoints (docs/admin.md).

Read-only, open to whoever reaches the admin address: ``GET /`` (status
page), ``/healthz``, ``/readyz``, ``/metrics``, ``/api/v1/status``.
Mutating, each needing ``Authorization: Bearer <token>`` (RFC 6750 section
2.1; compared in constant time): ``POST /api/v1/origins/{name}/drain``,
``/undrain``, ``/api/v1/reload``. Without a token configured they answer
403 (disabled, not open); with a missing or wrong token, 401.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import random
import time
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gslb import __version__
from gslb.config.model import LOCAL_VANTAGE
from gslb.health.overrides import OverrideError
from gslb.steering import Choice, Client

if TYPE_CHECKING:
    from gslb.service import Service

log = logging.getLogger("gslb.admin")

SERVICE = web.AppKey("service", "Service")
"""The ``gslb.service.Service`` the app reports on and acts upon."""

STATIC_DIR = Path(str(files("gslb.admin") / "static"))
"""The status page's HTML, JS and CSS (package data, no build step)."""

#: How many recent transitions ``/api/v1/status`` returns (newest first).
STATUS_TRANSITIONS = 50

TOKEN_HELP = ("mutating endpoints are disabled: no admin token is configured "
              "(gslb serve --admin-token-file PATH, or the GSLB_ADMIN_TOKEN environment variable)")


def _json(data: Any, status: int = 200, **headers: str) -> web.Response:
    return web.json_response(data, status=status, headers=headers or None,
                             dumps=lambda d: json.dumps(d, indent=1))


def _service(request: web.Request) -> Service:
    return request.app[SERVICE]


def _authorize(request: web.Request) -> None:
    """Raise 403 (no token configured) or 401 (missing or wrong bearer)."""
    token = _service(request).admin_token
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
    reasons = _service(request).not_ready()
    return _json({"ready": not reasons, "reasons": reasons}, 503 if reasons else 200)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text format (``gslb.admin.metrics``)."""
    return web.Response(body=generate_latest(_service(request).registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: the whole picture as JSON (``status_of``)."""
    return _json(status_of(_service(request)))


def _num(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def status_of(service: Service) -> dict[str, Any]:
    """What ``/api/v1/status`` returns: ``version``, ``generation``,
    ``files``, ``loaded_at``/``started_at``/``now`` (epoch seconds),
    ``ready``/``not_ready``, ``redis``, ``degraded``, ``vantages`` (names,
    ``fresh_vantages``), ``zones``, ``origins`` (each: ``state`` up | down |
    drained, ``drain``, and per vantage ``up``, ``fresh``, ``rtt_ms``,
    ``srtt_ms`` (milliseconds), ``detail``, ``checked_at``), ``pools`` (each
    with the ``answers`` it would give now per family for a client of
    unknown location, and ``in_fallback``), ``overrides`` and recent
    ``transitions`` (newest first)."""
    config, view = service.config, service.health
    snapshot = view.snapshot()
    names: set[str] = set(config.vantages)
    if service.redis_url is None:
        names.add(LOCAL_VANTAGE)
    for st in snapshot.values():
        names.update(st.reports)
    origins = []
    for name, origin in config.origins.items():
        st = snapshot.get(name)
        drain = service.overrides.get(name)
        per: dict[str, Any] = {}
        for vantage, r in sorted(st.reports.items()) if st else ():
            per[vantage] = {"up": r.up, "fresh": vantage in st.fresh, "rtt_ms": _num(r.rtt_ms),
                            "srtt_ms": _num(r.srtt_ms), "detail": r.detail,
                            "checked_at": r.checked_at, "consecutive": r.consecutive}
        check = origin.check
        origins.append({
            "name": name, "ipv4": list(origin.ipv4), "ipv6": list(origin.ipv6),
            "weight": origin.weight,
            "check": f"{check.type} {check.target}:{check.port}" if check else None,
            "state": "drained" if drain else ("up" if view.is_up(name) else "down"),
            "health_up": view.is_up(name), "drain": drain.to_json() if drain else None,
            "held": bool(st and st.reports and not st.fresh),
            "quorum": st.quorum if st else None, "vantages": per})
    in_fallback = service.authority.steering.in_fallback
    pools = []
    steering_log = logging.getLogger("gslb.steering")
    steering_log.disabled = True  # previews must not log fallbacks (synchronous: no leak)
    try:
        for pool in config.pools.values():
            answers = {}
            for family, rrtype in ((4, "A"), (6, "AAAA")):
                choice = service.preview.choose(pool.name, family, Client(""), service.view,
                                                random.Random(0))
                answers[rrtype] = _choice(service, choice)
            pools.append({"name": pool.name, "policy": pool.policy,
                          "origins": list(pool.origins), "tiers": [list(t) for t in pool.tiers],
                          "fallback": pool.fallback, "answers": answers,
                          "in_fallback": sorted(f"IPv{f}" for p, f in in_fallback
                                                if p == pool.name)})
    finally:
        steering_log.disabled = False
    zones = [{"name": zone.name, "records": len(zone.rrsets),
              "gslb": [{"name": r.name, "pool": r.pool, "ttl": r.ttl}
                       for r in zone.gslb.values()]} for zone in config.zones.values()]
    not_ready = service.not_ready()
    return {
        "version": __version__, "server_id": service.server_id,
        "generation": service.generation,
        "files": list(service.config_paths), "loaded_at": service.loaded_at,
        "started_at": service.started_at, "now": time.time(),
        "ready": not not_ready, "not_ready": not_ready,
        "redis": {"configured": service.redis_url is not None,
                  "connected": service.redis_connected()},
        "degraded": view.degraded, "health_generation": view.generation,
        "vantages": sorted(names), "fresh_vantages": sorted(view.fresh_vantages()),
        "zones": zones, "origins": origins, "pools": pools,
        "overrides": [d.to_json() for d in service.overrides.all()],
        "admin_token_configured": service.admin_token is not None,
        "workers": service.workers_status(),
        "transitions": [{"at": t.at, "origin": t.origin, "state": t.state, "cause": t.cause}
                        for t in list(service.transitions)[::-1][:STATUS_TRANSITIONS]],
    }


def _choice(service: Service, choice: Choice) -> dict[str, Any]:
    by_address = {a: o.name for o in service.config.origins.values()
                  for a in (*o.ipv4, *o.ipv6)}
    return {"kind": choice.kind, "addresses": list(choice.addresses),
            "origins": [by_address.get(a, a) for a in choice.addresses],
            "pool": choice.pool, "fallback": choice.fallback, "reason": choice.reason}


# -- mutating ------------------------------------------------------------------------------


def _who(request: web.Request, body: dict[str, Any]) -> str:
    who = body.get("who")
    return str(who) if who else f"admin@{request.remote}"


async def drain(request: web.Request) -> web.Response:
    """``POST /api/v1/origins/{name}/drain`` with ``{"reason": text,
    "who": text (optional), "expires_in": seconds (optional, > 0)}``: take
    the origin out of every answer. 200 ``{"drain": {...}}``; 400 bad body;
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
    try:
        done = await _service(request).drain(name, reason.strip(), _who(request, body),
                                             expires_in)
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
        was = await _service(request).undrain(name, _who(request, body),
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
    result = await _service(request).reload()
    return _json({"ok": result.ok, "generation": result.generation,
                  "errors": list(result.messages)}, 200 if result.ok else 422)
