"""The status document: what ``/api/v1/status``, the status page and
``gslb status`` show of a serving nameserver (docs/admin.md)."""

from __future__ import annotations

import math
import random
import time
from typing import Any, Protocol

from gslb import __version__
from gslb.answering import AnswerSettings
from gslb.config.model import LOCAL_VANTAGE, Config
from gslb.health.overrides import DrainedView, Overrides
from gslb.health.view import QuorumView
from gslb.serve.operations import RedisClients
from gslb.serve.reload import Reloader
from gslb.serve.transitions import Transitions
from gslb.steering import Choice, Client
from gslb.steering.registry import REGISTRY

#: How many recent transitions ``/api/v1/status`` returns (newest first).
STATUS_TRANSITIONS = 50


class Serving(Protocol):
    """What the status document reads of a serving nameserver
    (:class:`gslb.serve.service.Service` is one)."""

    reloader: Reloader
    quorum: QuorumView
    view: DrainedView
    overrides: Overrides
    transitions: Transitions
    settings: AnswerSettings
    redis: RedisClients | None
    started_at: float | None
    admin_token: str | None

    @property
    def config(self) -> Config: ...

    def not_ready(self) -> list[str]: ...

    def workers_status(self) -> list[dict[str, Any]]: ...

    def in_fallback(self) -> frozenset[tuple[str, int]]: ...


def _num(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or math.isnan(value) else round(value, digits)


def status_of(service: Serving) -> dict[str, Any]:
    """What ``/api/v1/status`` returns: ``version``, ``generation``,
    ``files``, ``loaded_at``/``started_at``/``now`` (epoch seconds),
    ``ready``/``not_ready``, ``redis``, ``degraded``, ``vantages`` (names,
    ``fresh_vantages``), ``zones``, ``origins`` (each: ``state`` up |
    degraded | unknown | down | drained, ``held`` (degraded hold: fewer than
    quorum fresh vantages), ``hold`` (None, ``fresh`` or ``split``),
    ``drain``, and per vantage ``up`` (true, false, null: unknown),
    ``state`` (up | degraded | unknown | down), ``fresh``, ``rtt_ms``,
    ``srtt_ms`` (milliseconds), ``detail``, ``checked_at``, ``load`` (the
    reported load, null: none)), ``pools`` (each
    with the fields its policy adds (``PolicySpec.status``: the geo maps,
    the latency vantage keys), its ``members`` (``name``, ``kind`` origin | pool: a tree of
    pools), ``weight``, ``min_healthy``, the ``answers`` it would give now
    per family for a client of unknown location (with the ``leaves``, the
    pool each origin came from, and the ``reason`` along the path), and
    ``in_fallback``), ``overrides`` and recent ``transitions`` (newest
    first)."""
    loaded = service.reloader.loaded
    config, view = loaded.config, service.quorum
    not_ready = service.not_ready()
    return {
        "version": __version__, "server_id": service.settings.server_id,
        "generation": loaded.generation,
        "files": list(loaded.paths), "loaded_at": loaded.loaded_at,
        "started_at": service.started_at, "now": time.time(),
        "ready": not not_ready, "not_ready": not_ready,
        "redis": {"configured": service.redis is not None,
                  "connected": service.redis.connected() if service.redis else {}},
        "degraded": view.degraded, "health_generation": view.generation,
        "vantages": _vantages(service), "fresh_vantages": sorted(view.fresh_vantages()),
        "zones": [{"name": zone.name, "records": len(zone.rrsets),
                   "gslb": [{"name": r.name, "pool": r.pool, "ttl": r.ttl}
                            for r in zone.gslb.values()]} for zone in config.zones.values()],
        "origins": _origins(service), "pools": _pools(service),
        "overrides": [d.to_json() for d in service.overrides.all()],
        "admin_token_configured": service.admin_token is not None,
        "workers": service.workers_status(),
        "transitions": [{"at": t.at, "origin": t.origin, "state": t.state, "cause": t.cause}
                        for t in list(service.transitions.recent)[::-1][:STATUS_TRANSITIONS]],
    }


def _vantages(service: Serving) -> list[str]:
    names: set[str] = set(service.config.vantages)
    if service.redis is None:
        names.add(LOCAL_VANTAGE)
    for st in service.quorum.snapshot().values():
        names.update(st.reports)
    return sorted(names)


def _origins(service: Serving) -> list[dict[str, Any]]:
    view = service.quorum
    snapshot = view.snapshot()
    origins = []
    for name, origin in service.config.origins.items():
        st = snapshot.get(name)
        drain = service.overrides.get(name)
        per: dict[str, Any] = {}
        if st is not None:
            for vantage, r in sorted(st.reports.items()):
                per[vantage] = {"up": r.up, "state": r.state, "fresh": vantage in st.fresh,
                                "rtt_ms": _num(r.rtt_ms), "srtt_ms": _num(r.srtt_ms),
                                "detail": r.detail, "checked_at": r.checked_at,
                                "consecutive": r.consecutive, "load": _num(r.load)}
        check = origin.check
        origins.append({
            "name": name, "ipv4": list(origin.ipv4), "ipv6": list(origin.ipv6),
            "weight": origin.weight,
            "check": f"{check.type} {check.target}:{check.port}" if check else None,
            "state": "drained" if drain else view.state(name),
            "health_up": view.is_up(name), "drain": drain.to_json() if drain else None,
            "held": bool(st and st.held == "fresh"), "hold": st.held if st else None,
            "quorum": st.quorum if st else None, "vantages": per})
    return origins


def _pools(service: Serving) -> list[dict[str, Any]]:
    loaded = service.reloader.loaded
    in_fallback = service.in_fallback()
    by_address = {a: o.name for o in loaded.config.origins.values()
                  for a in (*o.ipv4, *o.ipv6)}
    pools = []
    for pool in loaded.config.pools.values():
        answers = {}
        for family, rrtype in ((4, "A"), (6, "AAAA")):
            choice = loaded.preview.choose(pool.name, family, Client(""), service.view,
                                           random.Random(0))
            answers[rrtype] = _choice(choice, by_address)
        members = [{"name": n, "kind": "origin" if n in loaded.config.origins else "pool"}
                   for n in pool.origins]
        healthy: int | str = (f"{pool.min_healthy_pct:g}%" if pool.min_healthy_pct is not None
                              else pool.min_healthy)
        pools.append({**REGISTRY[pool.policy].status(pool),  # the policy's own fields
                      "name": pool.name, "policy": pool.policy, "members": members,
                      "weight": pool.weight, "min_healthy": healthy, "order": pool.order,
                      "origins": list(pool.origins), "tiers": [list(t) for t in pool.tiers],
                      "fallback": pool.fallback, "answers": answers,
                      "in_fallback": sorted(f"IPv{f}" for p, f in in_fallback
                                            if p == pool.name)})
    return pools


def _choice(choice: Choice, by_address: dict[str, str]) -> dict[str, Any]:
    return {"kind": choice.kind, "addresses": list(choice.addresses),
            "origins": [by_address.get(a, a) for a in choice.addresses],
            "leaves": list(choice.leaves) or [choice.pool] * len(choice.addresses),
            "pool": choice.pool, "fallback": choice.fallback, "reason": choice.reason}


__all__ = ["STATUS_TRANSITIONS", "Serving", "status_of"]
