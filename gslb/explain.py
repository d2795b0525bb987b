"""``gslb explain``: why this client gets this address.

:func:`explain` runs one query through the real answer path
(:meth:`gslb.authority.Authority.explain_lookup`: the zone lookup,
``Steering.choose`` and the policies) with a
:class:`gslb.steering.trace.Trace` riding on its client, and turns what that
call recorded into a document: the zone and record matched, each pool along
the tree path with its policy, the map entry and tiers tried, every member's
state, the fallback taken, the ECS scope and why, the TTL, the addresses,
and whether the answer cache holds this query's shape. Nothing is decided
twice: the reasons are the events that very call recorded.

:func:`render` is the text form (``gslb explain`` without ``--json``);
:func:`offline_view` builds the health view ``gslb explain --config`` answers
from (Redis loaded once, or every origin up). The document's fields are in
docs/admin.md (``GET /api/v1/explain``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.rdatatype

from gslb.answering import AnswerSettings, build_authority
from gslb.authority import Authority
from gslb.config.model import Config, slow_starts
from gslb.dns import wire
from gslb.dns.cache import storable_draw
from gslb.geo import AsnDB, GeoDB
from gslb.health.overrides import DrainedView
from gslb.health.redis.once import load_once, quorum_view
from gslb.health.view import AllUpExcept, HealthView, QuorumView
from gslb.logs import rcode_name
from gslb.stats import QueryStats
from gslb.steering.base import ECS_SCOPE_CAP, Basis, Client, basis_names
from gslb.steering.trace import Trace

__all__ = ["ExplainError", "assumed_up", "explain", "offline_authority", "query_message",
           "redis_view", "render"]

#: The EDNS payload size of an explained query (as a resolver sends, RFC 9715's 1232).
EXPLAIN_PAYLOAD = 1232

#: The document's schema version (``schema``); bumped when a field changes meaning.
SCHEMA = 1


class ExplainError(ValueError):
    """A bad explain request: the message says which parameter and why."""


def query_message(name: str, rrtype: str, ecs: str | None) -> bytes:
    """The query ``gslb explain`` asks: ``name`` (absolute or not), type
    ``rrtype`` (A or AAAA), ID 0, RD clear (as a resolver asks an
    authoritative server), EDNS(0) with a 1232-octet payload, and an ECS
    option for ``ecs`` (``ADDRESS/PREFIX``, RFC 7871 section 6; a bare
    address is a /32 or /128) when given. Raises :class:`ExplainError` for
    a bad name, type or subnet."""
    if rrtype.upper() not in ("A", "AAAA"):
        raise ExplainError(f"type: {rrtype!r}: only A and AAAA are steered")
    options: list[dns.edns.Option] = []
    if ecs:
        try:
            network = ipaddress.ip_network(ecs, strict=False)
        except ValueError as exc:
            raise ExplainError(f"ecs: {exc}") from None
        options.append(dns.edns.ECSOption(str(network.network_address), network.prefixlen, 0))
    try:
        message = dns.message.make_query(name, rrtype.upper(), use_edns=0,
                                         payload=EXPLAIN_PAYLOAD, options=options)
    except (dns.exception.DNSException, ValueError) as exc:
        raise ExplainError(f"name: {name!r}: {exc}") from None
    message.id = 0
    message.flags &= ~dns.flags.RD
    return message.to_wire()


def explain(authority: Authority, name: str, rrtype: str = "A", client: str = "127.0.0.1",
            ecs: str | None = None, *, cache_note: str | None = None) -> dict[str, Any]:
    """Explain the answer ``authority`` gives now to a query for ``name``
    and ``rrtype`` (A or AAAA) from packet source address ``client``, with
    ECS subnet ``ecs`` (None: no ECS option). The lookup is the real one
    (see :meth:`Authority.explain_lookup` for what it moves); the answer
    cache is only looked at (``AnswerCache.holds``). ``cache_note``: why
    the cache cannot be checked here (``--workers``: each worker has its
    own), None to check it. Raises :class:`ExplainError` for a bad
    parameter. Returns the document of docs/admin.md."""
    try:
        who = str(ipaddress.ip_address(client))
    except ValueError as exc:
        raise ExplainError(f"client: {exc}") from None
    data = query_message(name, rrtype, ecs)
    query = wire.decode(data)
    trace = Trace()
    lookup = authority.explain_lookup(query, who, trace)
    partition = authority.rng.partition  # the one draw it made, if it drew once
    answer = lookup.answer
    zone = authority.find_zone(query.qname_lower)
    records = [_record(rr) for rr in answer.answer]
    cnames = [{"name": r["name"], "target": r["data"], "ttl": r["ttl"]}
              for r in records if r["type"] == "CNAME"]
    steered = trace.of("record")
    choice = lookup.choices[0][2] if lookup.choices else None
    addresses = [r["data"] for r in records if r["type"] in ("A", "AAAA")]
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "query": {"name": query.qname_lower, "type": rrtype.upper(), "client": who,
                  "ecs": ecs or None},
        "zone": zone.name if zone is not None else None,
        "kind": lookup.kind.name.lower(),
        "rcode": rcode_name(answer.rcode),
        "wildcard": next(({"name": e["name"], "source": e["source"]}
                          for e in trace.of("wildcard")), None),
        "cname": cnames,
        "record": None,
        "steps": [],
        "members": {},
        "pool": None, "fallback": False, "reason": None, "basis": [],
        "ecs_scope": {"scope": answer.ecs_scope, "why": _scope_why(None, None, answer)},
        "ttl": min((r["ttl"] for r in records), default=None) if records else min(
            (ttl for _o, rtype, ttl, _d in answer.authority if rtype == 6), default=None),
        "addresses": addresses,
        "answer": [f'{r["name"]} {r["ttl"]} IN {r["type"]} {r["data"]}' for r in records],
        "cache": _cache(authority, data, who, answer, partition, cache_note),
    }
    if steered:
        event = steered[0]
        steps = [_clean(e) for e in trace.events if e["event"] not in ("record", "wildcard")]
        doc.update({
            "record": {"owner": event["owner"], "pool": event["pool"], "ttl": event["ttl"],
                       "family": event["family"]},
            "steps": steps,
            "members": _members(authority.health, _member_names(steps), authority),
        })
        if choice is not None:
            doc.update({"pool": choice.pool, "fallback": choice.fallback,
                        "reason": choice.reason, "basis": basis_names(choice.basis),
                        "kind": choice.kind if choice.kind != "answer" else doc["kind"]})
            doc["ecs_scope"]["why"] = _scope_why(event["client"], choice.basis, answer,
                                                 trace.events)
    return doc


def _record(rr: tuple[str, int, int, wire.Rdata]) -> dict[str, Any]:
    owner, rtype, ttl, rdata = rr
    kind = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rtype))
    return {"name": owner, "type": kind, "ttl": ttl,
            "data": str(rdata)}


def _clean(event: dict[str, Any]) -> dict[str, Any]:
    """An event as JSON (the objects some carry for this module dropped)."""
    return {k: v for k, v in event.items() if k != "client"}


def _member_names(steps: Iterable[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for e in steps:
        if e["event"] in ("pool", "pool_down", "selected"):
            for m in e.get("members", ()):
                names[m if isinstance(m, str) else m["name"]] = None
    return list(names)


def _members(view: HealthView, names: Iterable[str], authority: Authority) -> dict[str, Any]:
    """Each member's state now: ``kind`` (origin | pool), ``state`` (up,
    down, drained, ramping, degraded, unknown; a pool: up or down as its
    parent's policy saw it), ``up``, ``weight_factor``, ``drain``, and per
    vantage (a QuorumView's reports) ``up``, ``fresh``, ``detail``,
    ``srtt_ms``, with the ``quorum`` needed."""
    base: Any = getattr(view, "base", view)
    overrides = getattr(view, "overrides", None)
    origins = authority.config.origins
    found: dict[str, Any] = {}
    for name in names:
        if name not in origins:
            found[name] = {"kind": "pool"}
            continue
        drain = overrides.get(name) if overrides is not None else None
        drained = overrides is not None and overrides.is_drained(name)
        factor = view.weight_factor(name)
        entry: dict[str, Any] = {"kind": "origin", "up": view.is_up(name),
                                 "weight_factor": round(factor, 3),
                                 "drain": drain.to_json() if drain is not None else None,
                                 "vantages": {}, "quorum": None}
        if isinstance(base, QuorumView):
            state = base.state(name)
            status = base.status(name)
            entry["quorum"] = status.quorum
            entry["held"] = status.held
            for vantage, r in sorted(status.reports.items()):
                entry["vantages"][vantage] = {
                    "up": r.up, "fresh": vantage in status.fresh, "detail": r.detail,
                    "srtt_ms": None if r.srtt_ms is None else round(r.srtt_ms, 3)}
        elif isinstance(base, AllUpExcept):
            state = "up" if base.is_up(name) else "down"
            entry["assumed"] = True
        else:
            state = "up" if base.is_up(name) else "down"
        if drained:
            state = "drained"
        elif factor < 1.0 and entry["up"]:
            state = "ramping"
        entry["state"] = state
        found[name] = entry
    return found


def _scope_why(client: Client | None, basis: int | None, answer: Any,
               events: Iterable[dict[str, Any]] = ()) -> str:
    """Why the ECS scope is what it is (RFC 7871 section 7.2.1)."""
    scope = answer.ecs_scope
    if client is None or client.ecs_source is None:
        return "the query carried no ECS option (or source /0): no scope is returned"
    if basis is not None and not basis & Basis.CLIENT:
        return "the answer does not depend on the client: scope 0, one answer for every network"
    cap = ECS_SCOPE_CAP.get(client.ecs_version or 0, 0)
    parts = [f"source prefix-length /{client.ecs_source}", f"cap /{cap}"]
    matched = [e for e in events if e["event"] in ("match", "nearest")
               and e.get("outcome", "answered") == "answered"]
    last = matched[-1] if matched else None
    if last is not None and last.get("rule") == "network":
        parts = [f"network entry {last['key']}", f"source prefix-length /{client.ecs_source}"]
    elif last is not None and last.get("rule") == "asn":
        asn = client.asn
        parts.append(f"ASN database network /{asn.prefix_len}" if asn else "no ASN database")
    else:
        found = client.found
        if found is not None and found.prefix_len is not None:
            parts.append(f"GeoIP database network /{found.prefix_len}")
        elif found is None:
            parts.append("no GeoIP database")
    return f"scope /{scope}: the least of " + ", ".join(parts)


def _cache(authority: Authority, data: bytes, who: str, answer: Any,
           partition: tuple[int, ...] | None, note: str | None) -> dict[str, Any]:
    """Whether a UDP query of this shape (the explained query's bytes)
    from ``who`` would be answered from the answer cache now, and whether
    such an answer is stored at all (``reusable``), as one outcome of a
    weighted draw each hit makes again (``drawn``: the lookup drew once,
    ``partition`` its cumulative weights, :mod:`gslb.steering.draws`) and
    per source address (``per_client``: it depended on the client and the
    query had no ECS)."""
    cache = authority.cache
    drawn = bool(answer.drawn)
    reusable = bool(answer.reusable) and (not drawn or storable_draw(partition, answer.rotate))
    per_client = bool(answer.per_client) and not _has_ecs(data)
    if note is not None or cache is None:
        return {"checked": False, "cached": None, "reusable": reusable, "drawn": drawn,
                "per_client": per_client, "note": note or "the answer cache is disabled"}
    held = cache.holds(cache.shape(data, True), who)
    return {"checked": True, "cached": bool(held), "reusable": reusable, "drawn": drawn,
            "per_client": per_client,
            "note": ("this query shape is answered from the cache (UDP, EDNS 1232, RD clear)"
                     if held else "not in the cache now: the next such query is answered "
                     "afresh" + ("" if reusable else ", and not stored (it depended on RTTs, a"
                                 " ramp, or more than one draw)"))}


def _has_ecs(data: bytes) -> bool:
    message = dns.message.from_wire(data)
    return any(isinstance(o, dns.edns.ECSOption) and o.srclen > 0 for o in message.options)


# -- offline (gslb explain --config) -------------------------------------------------


#: Seconds ``gslb explain --config --redis`` waits for the one full load.
REDIS_LOAD_TIMEOUT_S = 10.0


def assumed_up() -> HealthView:
    """The view of ``gslb explain --config`` without Redis: every origin up."""
    return AllUpExcept()


async def redis_view(config: Config, url: str,
                     timeout_s: float = REDIS_LOAD_TIMEOUT_S) -> HealthView:
    """The health view ``gslb serve --redis URL`` would answer from, loaded
    once: every vantage's reports (``RedisWatcher``'s full load, into a
    ``QuorumView`` set up as the nameserver sets it up) with the shared
    drains applied (``RedisOverrides``' full load). Raises
    ``RedisConfigError`` for a bad URL and ``ExplainError`` when Redis does
    not answer within ``timeout_s`` seconds."""
    quorum = quorum_view(config)
    quorum.set_slow_start(slow_starts(config.origins, config.pools))
    try:
        overrides = await load_once(config, url, quorum, timeout_s)
    except TimeoutError as exc:
        raise ExplainError(f"redis: {exc}") from None
    quorum.refresh()
    return DrainedView(quorum, overrides)


def offline_authority(config: Config, view: HealthView, geoip: str | None = None,
                      asn_db: str | None = None) -> Authority:
    """The authority ``gslb explain --config`` explains with: ``config``
    answered from ``view`` (:func:`assumed_up` or :func:`redis_view`),
    clients located through the GeoIP (``geoip``) and ASN (``asn_db``)
    databases given (as ``gslb serve --geoip``, ``--asn-db``); no answer
    cache. Raises ``GeoDBError`` for an unreadable database."""
    geo = GeoDB(geoip) if geoip is not None else None
    asn = AsnDB(asn_db) if asn_db is not None else None
    return build_authority(config, view, geo, QueryStats(), AnswerSettings(answer_cache=0),
                           asn=asn)


# -- text ----------------------------------------------------------------------------


def render(doc: Mapping[str, Any]) -> str:
    """The explanation as text, one fact a line, for a person at 3 a.m."""
    q = doc["query"]
    out = [f"{q['name']} {q['type']} from {q['client']}"
           + (f" (ECS {q['ecs']})" if q["ecs"] else "")]
    out.append(f"  zone: {doc['zone'] or '(none: REFUSED)'}")
    if doc["wildcard"]:
        out.append(f"  wildcard: {doc['wildcard']['name']} synthesised from "
                   f"{doc['wildcard']['source']}")
    for c in doc["cname"]:
        out.append(f"  CNAME: {c['name']} -> {c['target']} (TTL {c['ttl']})")
    record = doc["record"]
    if record is not None:
        out.append(f"  record: {record['owner']} -> pool {record['pool']} (TTL {record['ttl']})")
    members = doc["members"]
    steps = doc["steps"]
    for i, e in enumerate(steps):
        out.extend(_step(e, members))
        if e["event"] == "pool":  # each member's state, as the policy read it
            seen = next((s for s in steps[i + 1:] if s["event"] in ("selected", "pool_down")
                         and s["pool"] == e["pool"]), None)
            for m in seen["members"] if seen is not None else ():
                out.append(f"    - {m['name']}: {_state(m, members)}")
    if doc["pool"] is not None:
        out.append(f"  answered by pool {doc['pool']}" + (" (fallback)" if doc["fallback"]
                                                          else ""))
        out.append(f"  reason: {doc['reason']}")
    out.append(f"  ECS scope: {doc['ecs_scope']['why']}")
    out.append(f"  result: {doc['rcode']} {doc['kind']}, TTL {doc['ttl']}")
    for line in doc["answer"]:
        out.append(f"    {line}")
    if not doc["answer"]:
        out.append("    (no answer records)")
    c = doc["cache"]
    out.append(f"  cache: {c['note']}")
    return "\n".join(out) + "\n"


def _step(e: Mapping[str, Any], members: Mapping[str, Any]) -> list[str]:
    kind = e["event"]
    indent = "  " + "  " * (e.get("depth", 0) if kind == "pool" else 0)
    if kind == "pool":
        return [f"{indent}pool {e['pool']} (policy {e['policy']}, IPv{e['family']}, "
                f"min_healthy {e['min_healthy']}, fallback {e['fallback']}): "
                f"members {', '.join(e['members']) or '(none of this family)'}"]
    if kind == "selected":
        return [f"    {e['pool']} chose {', '.join(e['chosen']) or 'nothing'}"
                f" ({e['reason'] or 'its policy'})"]
    if kind == "pool_down":
        return [f"    pool {e['pool']} down: {e['up']} of {e['of']} healthy, "
                f"min_healthy {e['need']}"]
    if kind == "fallback":
        return [f"    FALLBACK from pool {e['pool']} to {e['mode']}: {e['why']}"]
    if kind == "match":
        key = f" {e['key']}" if e.get("key") else ""
        return [f"    map: {e['rule']}{key} matched -> {e.get('outcome', '?')}"]
    if kind == "tier":
        up = ", ".join(e["up"]) or "none"
        return [f"      tier {e['tier']}: {e['outcome']} (members "
                f"{', '.join(e['members']) or 'none'}; up: {up})"]
    if kind == "nearest":
        near = ", ".join(f"{c['name']} {c['km']:.0f} km" for c in e["chosen"]) or "none"
        return [f"    map: nearest to ({e['lat']:.1f}, {e['lon']:.1f}): {near}"]
    if kind == "located":
        if not e["located"]:
            return ["    client: not located" + (f" (database network /{e['prefix_len']})"
                                                 if e["prefix_len"] is not None else "")]
        return [f"    client: country {e['country']}, continent {e['continent']}"
                + (f", at ({e['lat']:.1f}, {e['lon']:.1f})" if e["lat"] is not None else "")]
    if kind == "asn":
        return [f"    client: AS{e['asn']}" + ("" if e["mapped"] else " (no entry)")]
    if kind == "order":
        return [f"    order {e['order']}: {', '.join(e['after'])}"]
    if kind == "degraded_ttl":
        cause = ("an origin of the pool is ramping (slow start or drain)" if e["why"] == "ramp"
                 else "the pool is in fallback or an origin of its tree is down")
        return [f"    TTL {e['ttl']} (ttl_when_degraded, not {e['full']}): {cause}"]
    return [f"    {kind}: {e}"]


def _state(m: Mapping[str, Any], members: Mapping[str, Any]) -> str:
    info = members.get(m["name"], {})
    seen = "up" if m["up"] else "down"
    if info.get("kind") != "origin":
        return f"pool, {seen}"
    text = str(info.get("state", seen))
    if info.get("assumed"):
        text += " (assumed: no health source)"
    if info.get("drain"):
        text += f" (drained by {info['drain'].get('who')}: {info['drain'].get('reason')})"
    if info.get("state") == "ramping":
        text += f" (weight x{info['weight_factor']})"
    votes = info.get("vantages") or {}
    if votes:
        text += "; votes " + ", ".join(
            f"{v}={'up' if r['up'] else 'down' if r['up'] is False else '?'}"
            + ("" if r["fresh"] else " (stale)") for v, r in votes.items())
        if info.get("quorum"):
            text += f", quorum {info['quorum']}"
    return text

