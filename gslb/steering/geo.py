"""``geo``: steer by where the client is.

Order of rules, first that yields a healthy candidate wins:

0. the longest network of ``pool.networks`` holding the client's address
   (the ECS address, else the packet's source) → its tiers; such an answer
   carries that network's prefix-length as its ECS scope, never more than
   the query's source prefix-length (RFC 7871 section 7.2.1); then the
   client's autonomous system in ``pool.asns`` → its tiers, with the ASN
   database network's prefix-length (``Client.asn_scope``);
1. the client's country in ``pool.countries`` → its tiers; else its
   continent in ``pool.continents`` → its tiers (a country match is not
   followed by the continent map: the country entry is the operator's word);
2. nearest healthy candidates by great-circle distance from the client's
   coordinates to ``Origin.location`` (origins without a location are not
   eligible; ``max_answers`` > 1 takes the N nearest);
3. ``pool.default`` tiers (for clients that cannot be located at all);
4. any healthy candidate, by weight.

Every geo answer depends on the client (``Basis.CLIENT``), and on a draw
(``Basis.DRAW``) when a tier or the "any" rule had two or more healthy
candidates to pick from.

ECS scope (RFC 7871 section 7.2.1): ``client.geo_scope`` on every answer
the location decided, even when the client could not be located: the
prefix-length of the database network that placed it (or of the empty
network it is in), capped by the source prefix-length and /24 or /56. Being
unlocatable is itself a fact about the client's network: with scope 0 a
resolver would reuse the default answer for located clients elsewhere. A
network or AS entry's answer carries that entry's prefix-length instead.
"""

from __future__ import annotations

import heapq
import ipaddress
import logging
import random
from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gslb.config.loader import Loc, MarkedDict
from gslb.config.model import NetworkMap, Pool, Tiers
from gslb.config.validate.places import region
from gslb.config.validate.reader import At, Reader
from gslb.config.validate.targets import Name, PoolKeys, targets
from gslb.geo import distance_km
from gslb.health.view import HealthView
from gslb.steering.base import (
    Basis,
    Client,
    Member,
    PolicySpec,
    Selection,
    VantageFinder,
    drawn,
    ramped,
)
from gslb.steering.failover import first_healthy_tier
from gslb.steering.trace import Trace
from gslb.steering.weighted import pick_weighted


class GeoPolicy:
    """Country → continent → nearest → default → any (see the module doc).
    ``reason`` names the rule that matched, e.g. ``"country SE tier 1"``,
    ``"continent EU tier 1"``, ``"nearest to (59.3, 18.1): stockholm 12 km"``,
    ``"client not located; default tier 1"``."""

    reads_rtt = False

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy`; empty (with the geo scope)
        when no candidate is healthy."""
        scope = client.geo_scope
        by_name = {o.name: o for o in candidates}
        k = pool.max_answers
        notes: list[str] = []
        trace = client.trace
        if pool.networks and (sel := _by_network(pool, client, by_name, health, k, rng,
                                                 notes)) is not None:
            return sel
        if pool.asns:
            asn = client.asn
            number = asn.number if asn is not None else None
            mapped = pool.asns.get(number) if number is not None else None
            if trace is not None:
                _note_asn(trace, client, mapped is not None)
            if mapped is not None:
                sel = _mapped(f"AS{number}", mapped, by_name, health, k, rng, client.asn_scope,
                              notes, trace)
                if sel is not None:
                    return sel
            # what follows depended on the AS lookup too (no entry for the
            # client's AS network): the more specific of the two scopes holds
            scope = max(scope, client.asn_scope)
        loc = client.location
        if trace is not None:
            _note_location(trace, client)
        if loc is None:
            notes.append("client not located")
        else:
            if loc.country is not None and loc.country in pool.countries:
                rule, tiers = f"country {loc.country}", pool.countries[loc.country]
            elif loc.continent is not None and loc.continent in pool.continents:
                rule, tiers = f"continent {loc.continent}", pool.continents[loc.continent]
            else:
                rule, tiers = "", ()
            if rule:
                sel = _mapped(rule, tiers, by_name, health, k, rng, scope, notes, trace)
                if sel is not None:
                    return sel
            if loc.lat is not None and loc.lon is not None:
                sel = _nearest(loc.lat, loc.lon, candidates, health, k, scope, notes, trace)
                if sel is not None:
                    return sel
            else:
                notes.append("client has no coordinates")
        return _default(pool, candidates, by_name, health, k, rng, scope, notes, trace)


def _by_network(pool: Pool, client: Client, by_name: Mapping[str, Member], health: HealthView,
                k: int, rng: random.Random, notes: list[str]) -> Selection | None:
    """The answer of the longest ``pool.networks`` entry holding the client's
    address, with that network's prefix-length as the ECS scope (never more
    than the source prefix-length); None when no entry holds it or its
    tiers are down."""
    found = pool.networks.lookup(client.bestwho)
    if found is None:
        return None
    network, tiers = found
    return _mapped(f"network {network}", tiers, by_name, health, k, rng,
                   min(network.prefixlen, client.ecs_source or 0), notes, client.trace)


def _note_asn(trace: Trace, client: Client, mapped: bool) -> None:
    """An ``asn`` event: the client's AS (``asn``: None when the database has
    none), whether the pool maps it (``mapped``), and the ``prefix_len`` of
    the ASN database network."""
    asn = client.asn
    trace.add("asn", asn=asn.number if asn is not None else None, mapped=mapped,
              prefix_len=asn.prefix_len if asn is not None else None)


def _note_location(trace: Trace, client: Client) -> None:
    """A ``located`` event: where the client was placed (``located``,
    ``country``, ``continent``, ``lat``, ``lon``) and the ``prefix_len`` of
    the database network that placed it (or of the empty one it is in)."""
    loc, found = client.location, client.found
    trace.add("located", located=loc is not None,
              country=loc.country if loc else None, continent=loc.continent if loc else None,
              lat=loc.lat if loc else None, lon=loc.lon if loc else None,
              prefix_len=found.prefix_len if found else None)


def _nearest(lat: float, lon: float, candidates: Sequence[Member], health: HealthView, k: int,
             scope: int, notes: list[str], trace: Trace | None) -> Selection | None:
    """The ``k`` healthy candidates with a location nearest to the client
    at (``lat``, ``lon``); None, noted, when none has a location.
    ``trace``: a ``nearest`` event (``chosen`` and every ``healthy``
    located candidate, each ``name`` and ``km``)."""
    located = [
        (distance_km(lat, lon, o.location.lat, o.location.lon), o)
        for o in candidates
        if o.location is not None and health.is_up(o.name)
    ]
    near = heapq.nsmallest(k, located, key=lambda d_o: d_o[0])
    if trace is not None:
        trace.add("nearest", lat=lat, lon=lon, scope=scope,
                  chosen=[{"name": o.name, "km": round(d, 1)} for d, o in near],
                  healthy=[{"name": o.name, "km": round(d, 1)}
                           for d, o in sorted(located, key=lambda d_o: d_o[0])])
    if not near:
        notes.append("no healthy origin with a location")
        return None
    what = ", ".join(f"{o.name} {d:.0f} km" for d, o in near)
    notes.append(f"nearest to ({lat:.1f}, {lon:.1f}): {what}")
    return Selection(tuple(o for _, o in near), scope, "; ".join(notes), Basis.CLIENT)


def _default(pool: Pool, candidates: Sequence[Member], by_name: Mapping[str, Member],
             health: HealthView, k: int, rng: random.Random, scope: int, notes: list[str],
             trace: Trace | None) -> Selection:
    """The last rules: ``pool.default``'s first healthy tier, else any
    healthy candidate by weight (empty when none is). ``trace``: a
    ``match`` event for each (``rule`` default, then any)."""
    event = (trace.add("match", rule="default", key=None, scope=scope)
             if trace is not None and pool.default else None)
    tier, up = first_healthy_tier(pool.default, by_name, health, (), trace)
    if event is not None:
        event["outcome"] = "answered" if up else "down"
    if up:
        notes.append(f"default tier {tier}")
    else:
        up = [o for o in candidates if health.is_up(o.name)]
        notes.append("any healthy" if up else "no healthy origin")
        if trace is not None:
            trace.add("match", rule="any", key=None, scope=scope,
                      up=[o.name for o in up], outcome="answered" if up else "down")
    basis = ramped(up, health)
    return Selection(pick_weighted(up, k, rng, health if basis else None), scope,
                     "; ".join(notes), Basis.CLIENT | drawn(len(up)) | basis)


def _mapped(rule: str, tiers: Tiers, by_name: Mapping[str, Member], health: HealthView, k: int,
            rng: random.Random, scope: int, notes: list[str],
            trace: Trace | None = None) -> Selection | None:
    """The answer of a map entry (``rule``: what matched, for the reason)
    from its first tier with a healthy candidate, with ``scope``; None, and
    the entry noted down, when every tier is down. ``trace``: gets a
    ``match`` event (``rule``: network, AS, country or continent; ``key``;
    ``scope``; ``outcome``: answered or down), then the tiers'."""
    event = None
    if trace is not None:
        kind, _, key = rule.partition(" ")
        if kind.startswith("AS"):
            kind, key = "asn", kind[2:]
        event = trace.add("match", rule=kind, key=key, scope=scope)
    tier, up = first_healthy_tier(tiers, by_name, health, (), trace)
    if event is not None:
        event["outcome"] = "answered" if up else "down"
    if not up:
        notes.append(f"{rule} down")
        return None
    notes.append(f"{rule} tier {tier}")
    basis = ramped(up, health)
    return Selection(pick_weighted(up, k, rng, health if basis else None), scope,
                     "; ".join(notes), Basis.CLIENT | drawn(len(up)) | basis)


# -- configuration: the keys only geo (and latency) pools accept -----------------------

#: The keys of a ``geo`` pool (``latency`` pools accept them too).
GEO_KEYS = ("networks", "networks_file", "asns", "countries", "continents", "default")


def read_geo(keys: PoolKeys) -> dict[str, Any]:
    """``networks`` (and ``networks_file``), ``asns``, ``countries``,
    ``continents`` and ``default`` of a geo or latency pool, as ``Pool``
    keyword arguments; problems are reported on ``keys.r``."""
    r, m, at, member = keys.r, keys.m, keys.at, keys.member
    maps: dict[str, dict[str, Tiers]] = {"countries": {}, "continents": {}}
    default = _geo(r, m, at, member, maps)
    return {"countries": MappingProxyType(maps["countries"]),
            "continents": MappingProxyType(maps["continents"]), "default": default,
            "networks": _networks(r, m, at, member),
            "asns": MappingProxyType(_asns(r, m, at, member))}


def geo_status(pool: Pool) -> dict[str, Any]:
    """The geo maps of ``pool`` for the status document."""
    return {"countries": {c: [list(t) for t in tiers] for c, tiers in pool.countries.items()},
            "continents": {c: [list(t) for t in tiers] for c, tiers in pool.continents.items()},
            "default": [list(t) for t in pool.default],
            "networks": len(pool.networks.entries), "asns": sorted(pool.asns)}


def _geo(r: Reader, m: MarkedDict, at: At, member: Name,
         maps: dict[str, dict[str, Tiers]]) -> Tiers:
    """The ``countries`` and ``continents`` maps of a geo or latency pool into
    ``maps`` (code → tiers); returns its ``default`` tiers."""
    for key in maps:
        if key in m and (table := r.mapping(m[key], at.key(m, key))) is not None:
            for code, value in table.items():
                where = At(f"{at.path}.{key}", table.loc).key(table, code)
                norm = region(r, key, code, where)
                if norm is not None and norm in maps[key]:
                    r.report(where, f"{norm} is mapped twice")
                elif norm is not None:
                    maps[key][norm] = targets(r, value, where, member)
    if "default" in m:
        return targets(r, m["default"], at.key(m, "default"), member)
    return ()


def _asns(r: Reader, m: MarkedDict, at: At, member: Name) -> dict[int, Tiers]:
    """The ``asns`` map: autonomous system number (1 to 4294967295, RFC 6793;
    written ``64496`` or ``AS64496``) → targets."""
    found: dict[int, Tiers] = {}
    if "asns" not in m or (table := r.mapping(m["asns"], at.key(m, "asns"))) is None:
        return found
    for key, value in table.items():
        where = At(f"{at.path}.asns", table.loc).key(table, key)
        text = str(key).strip().upper().removeprefix("AS")
        number = int(text) if text.isdigit() else 0
        if not 1 <= number <= 2**32 - 1:
            r.report(where, f"not an AS number: {key!r} (1 to 4294967295, as 64496 or AS64496)")
            continue
        if number in found:
            r.report(where, f"AS{number} is mapped twice")
            continue
        tiers = targets(r, value, where, member)
        if tiers:
            found[number] = tiers
    return found


def _networks(r: Reader, m: MarkedDict, at: At, member: Name) -> NetworkMap:
    """The ``networks`` map (CIDR → targets) and the ``networks_file`` lines
    (``CIDR target``; ``#`` starts a comment), the file named relative to
    the config file: one :class:`NetworkMap`, longest prefix first. A
    network given twice is reported (in the file: at its second line)."""
    entries: list[tuple[IPv4Network | IPv6Network, Tiers, At]] = []
    if "networks" in m and (table := r.mapping(m["networks"], at.key(m, "networks"))):
        for cidr, value in table.items():
            where = At(f"{at.path}.networks", table.loc).key(table, cidr)
            network = _cidr(r, cidr, where)
            tiers = targets(r, value, where, member)
            if network is not None and tiers:
                entries.append((network, tiers, where))
    if "networks_file" in m and (name := r.text(m["networks_file"],
                                                at.key(m, "networks_file"))) is not None:
        entries += _networks_file(r, name, at.key(m, "networks_file"), member)
    seen: dict[IPv4Network | IPv6Network, At] = {}
    for network, _tiers, where in entries:
        if network in seen:
            r.report(where, f"network {network} is mapped twice")
        seen[network] = where
    return NetworkMap((n, t) for n, t, _w in entries)


def _cidr(r: Reader, value: object, at: At) -> IPv4Network | IPv6Network | None:
    """A network in CIDR form (host bits zero), IPv4 or IPv6."""
    try:
        return ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError as exc:
        r.report(at, f"not a CIDR network: {exc}")
        return None


def _networks_file(r: Reader, name: str, at: At,
                   member: Name) -> list[tuple[IPv4Network | IPv6Network, Tiers, At]]:
    path = Path(at.loc.file).parent / name
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        r.report(at, f"cannot read networks file {path}: {getattr(exc, 'strerror', exc)}")
        return []
    found: list[tuple[IPv4Network | IPv6Network, Tiers, At]] = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        where = At(f"{at.path}[{number}]", Loc(str(path), number, 1))
        if len(words) != 2:
            r.report(where, f"expected 'CIDR target', got {line.strip()!r}")
            continue
        network = _cidr(r, words[0], where)
        target = member(words[1], where)
        if network is not None and target is not None:
            found.append((network, ((target,),), where))
    return found


SHARED = GeoPolicy()


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> GeoPolicy:
    return SHARED  # stateless


SPEC = PolicySpec("geo", _build, GEO_KEYS, read_geo, status=geo_status)
