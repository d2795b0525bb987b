"""The ``zones`` section: each zone's records (static RRsets, checked and made
canonical by ``gslb.dns.zonetext``, and ``gslb`` records naming a pool), the
rules between the records of a zone (SOA and NS at the apex, CNAME alone, DS
only at a delegation, no NS at a wildcard), RRsets too big for any DNS
message, and records that lie inside another configured zone."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gslb.config.loader import MarkedDict
from gslb.config.model import DEFAULT_GSLB_TTL, GslbRecord, RRset, Zone
from gslb.config.validate.dnssec import read_dnssec
from gslb.config.validate.reader import At, Reader, absolute, bad_name, inside, kind
from gslb.dns.wire import compile_rdata
from gslb.dns.zonetext import STATIC_TYPES, normalize_rdata

ZONE_KEYS = ("ttl", "records", "dnssec")
RECORD_TYPES = (*STATIC_TYPES, "gslb")
_TYPE_NAMES = {t: t for t in RECORD_TYPES}
MAX_TTL = 2**31 - 1
"""Largest TTL, seconds (RFC 2181 section 8)."""
DEFAULT_ZONE_TTL = 3600
"""TTL (seconds) of static RRsets when neither the RRset nor the zone gives one."""

MAX_MESSAGE = 65535
"""Largest DNS message, octets: what the two-octet length prefix of DNS over
TCP can frame (RFC 1035 section 4.2.2)."""
OPT_RESERVE = 11 + (4 + 20) + (4 + 255) + (4 + 40)
"""Octets kept free in that message for the response's OPT record (RFC 6891
section 6.1.2: 11 fixed) with the largest options it may carry: an ECS echo
(RFC 7871 section 6: 4 + up to 20), an NSID (RFC 5001: 4 + up to 255) and a
COOKIE (RFC 7873 section 4: 4 + up to 40)."""
MAX_QNAME = 255
"""Longest name in wire form, octets (RFC 1035 section 2.3.4): the question
a wildcard answers may be that long."""

_ROUGH_BASE = 12 + MAX_QNAME + 4 + OPT_RESERVE
"""Header, the longest question and the OPT reserve: the part of
``message_size`` that does not depend on the records."""

Owners = dict[str, dict[str, At]]
"""Zone → owner name → where the owner is written."""


def read_zones(r: Reader, defs: Mapping[str, tuple[Any, At]],
          pools: Mapping[str, object]) -> dict[str, Zone]:
    """The valid zones of the section, by absolute name; ``pools`` are the
    pool names declared (valid or not)."""
    owners: Owners = {}
    found: dict[str, Zone] = {}
    for key, (v, at) in defs.items():
        zone = _zone(r, absolute(key), v, at, pools, owners)
        if zone is not None:
            found[zone.name] = zone
    _nested_zones(r, owners)
    return found


def _zone(r: Reader, zone: str, value: object, at: At, pools: Mapping[str, object],
          owners_of: Owners) -> Zone | None:
    """One zone mapping; its owners are added to ``owners_of[zone]``."""
    m = r.mapping(value, at)
    name_problem = bad_name(zone)
    if name_problem:
        r.report(at, name_problem)
    if m is None or name_problem:
        return None
    before = r.count
    r.fields(m, at, ZONE_KEYS, required=("records",))
    ttl = r.integer(m["ttl"], at.key(m, "ttl"), 0, MAX_TTL) if "ttl" in m else DEFAULT_ZONE_TTL
    records = r.mapping(m["records"], at.key(m, "records")) if "records" in m else None
    if records is None:
        return None
    rrsets: dict[tuple[str, str], RRset] = {}
    gslb: dict[str, GslbRecord] = {}
    owners: dict[str, At] = owners_of.setdefault(zone, {})
    declared: dict[str, list[str]] = {}  # owner -> types written, valid or not
    rat = at.key(m, "records")
    for owner_key, types in records.items():
        oat = rat.key(records, owner_key)
        owner = _owner(r, owner_key, zone, oat)
        if owner is None:
            continue
        if owner in owners:
            r.report(oat, f"name {owner} is defined twice in this zone "
                          f"(first at line {owners[owner].loc.line})")
            continue
        owners[owner] = oat
        tm = r.mapping(types, rat.key(records, owner_key))
        if tm is None:
            continue
        for type_key, data in tm.items():
            tat = oat.key(tm, type_key)
            rtype = _record_type(r, type_key, tat, declared.setdefault(owner, []))
            if rtype == "gslb":
                if (record := _gslb(r, owner, data, tat, pools)) is not None:
                    gslb[owner] = record
            elif rtype is not None:
                rrset = _rrset(r, owner, rtype, data, tat, zone, ttl or 0)
                if rrset is not None:
                    rrsets[owner, rtype] = rrset
                    _fits_a_message(r, rrset, tat)
    _zone_rules(r, zone, at, owners, declared, rrsets)
    signing = read_dnssec(r, zone, m["dnssec"], at.key(m, "dnssec")) if "dnssec" in m else None
    soa = rrsets.get((zone, "SOA"))
    if r.count > before or soa is None:
        return None
    return Zone(name=zone, soa=soa, rrsets=MappingProxyType(rrsets),
                gslb=MappingProxyType(gslb), dnssec=signing)


def _record_type(r: Reader, type_key: str, at: At, declared: list[str]) -> str | None:
    """The record type ``type_key`` names (``gslb`` or a mnemonic from
    ``RECORD_TYPES``), added to the owner's ``declared`` types; None after
    reporting an unknown type or one given twice."""
    rtype = "gslb" if type_key.lower() == "gslb" else type_key.upper()
    rtype = _TYPE_NAMES.get(rtype, rtype)  # one string per type, not per record
    if rtype not in RECORD_TYPES:
        r.report(at, f"unknown record type {type_key!r} (allowed: {', '.join(RECORD_TYPES)})")
        return None
    if rtype in declared:
        r.report(at, f"{rtype} is given twice for this name")
        return None
    declared.append(rtype)
    return rtype


def _owner(r: Reader, key: str, zone: str, at: At) -> str | None:
    """The absolute owner name a records key means (``@``: the apex; a
    relative name is below ``zone``)."""
    if key == "@":
        return zone
    if key.endswith("."):
        owner = key.lower()
        if not inside(owner, zone):
            r.report(at, f"record outside its zone: {owner} is not in {zone}")
            return None
    else:
        owner = f"{key.lower()}.{zone}"
    if any("*" in label and label != "*" for label in owner.split(".")):
        r.report(at, f"bad owner {owner!r}: '*' must be a whole label, the leftmost for a "
                     "wildcard (RFC 4592 §2.1.1)")
        return None
    problem = bad_name(owner)
    if problem:
        r.report(at, problem)
        return None
    return owner


def _gslb(r: Reader, owner: str, value: object, at: At,
          pools: Mapping[str, object]) -> GslbRecord | None:
    """A ``gslb`` record: a pool name, or a mapping of ``pool``, ``ttl``
    and ``ttl_when_degraded`` (0 to the record's ``ttl``)."""
    ttl: int | None = DEFAULT_GSLB_TTL
    degraded: int | None = None
    pat = at
    if isinstance(value, MarkedDict):
        m = r.mapping(value, at)
        r.fields(value, at, ("pool", "ttl", "ttl_when_degraded"), required=("pool",))
        if "ttl" in value:
            ttl = r.integer(value["ttl"], at.key(value, "ttl"), 0, MAX_TTL)
        if "ttl_when_degraded" in value:
            degraded = _ttl_when_degraded(r, value, at, ttl)
        if m is None or "pool" not in m:
            return None
        pat, value = at.key(m, "pool"), m["pool"]
    pool = r.text(value, pat)
    if pool is not None and pool not in pools:
        r.report(pat, f"unknown pool {pool!r}")
        return None
    if not pool or ttl is None:
        return None
    return GslbRecord(name=owner, pool=pool, ttl=ttl, ttl_when_degraded=degraded)


def _ttl_when_degraded(r: Reader, m: MarkedDict, at: At, ttl: int | None) -> int | None:
    """A gslb record's ``ttl_when_degraded``: seconds, 0 to its ``ttl``
    (a longer one would lengthen what it is meant to shorten)."""
    kat = at.key(m, "ttl_when_degraded")
    found = r.integer(m["ttl_when_degraded"], kat, 0, MAX_TTL)
    if found is not None and ttl is not None and found > ttl:
        r.report(kat, f"{found} is above the record's ttl ({ttl})")
        return None
    return found


def _rrset(r: Reader, owner: str, rtype: str, value: object, at: At, zone: str,
           ttl: int) -> RRset | None:
    """A static RRset: one value or a list, or a mapping of ``ttl`` and
    ``values``/``value``; each value canonical, a repeat reported."""
    vat = at
    given_ttl: int | None = ttl
    if isinstance(value, MarkedDict):
        r.mapping(value, at)
        r.fields(value, at, ("ttl", "values", "value"))
        if "ttl" in value:
            given_ttl = r.integer(value["ttl"], at.key(value, "ttl"), 0, MAX_TTL)
        given = [k for k in ("values", "value") if k in value]
        if len(given) != 1:
            r.report(at, "give exactly one of 'values' or 'value'")
            return None
        vat, value = at.key(value, given[0]), value[given[0]]

    def one(text: object, a: At) -> str | None:
        if isinstance(text, bool) or not isinstance(text, str | int | float):
            r.report(a, f"expected {rtype} data as a string, got {kind(text)}")
            return None
        try:
            return normalize_rdata(rtype, str(text), zone)
        except ValueError as exc:
            r.report(a, str(exc))
            return None

    items = r.items(value, vat, one, f"{rtype} value")
    if items is None or given_ttl is None:
        return None
    seen: dict[str, None] = {}
    for text, a in items:
        if text in seen:
            r.report(a, f"duplicate value {text!r}")
        seen[text] = None
    return RRset(name=owner, rtype=rtype, ttl=given_ttl, rdata=tuple(seen))


def message_size(rrset: RRset, wire_lengths: list[int] | None = None) -> int:
    """Octets of the largest response carrying ``rrset`` alone, as
    ``gslb.dns.wire.encode`` writes it: the header (12), the question (the
    owner, or for a wildcard owner the longest name, + 4), each record (its
    owner a 2-octet pointer to the question, 10 fixed, the RDATA) and
    ``OPT_RESERVE``. ``wire_lengths``: the RDATA lengths, when known."""
    if wire_lengths is None:
        wire_lengths = [len(compile_rdata(rrset.rtype, text).wire) for text in rrset.rdata]
    qname = MAX_QNAME if rrset.name.startswith("*.") else len(rrset.name) + 1
    return 12 + qname + 4 + sum(12 + n for n in wire_lengths) + OPT_RESERVE


def _fits_a_message(r: Reader, rrset: RRset, at: At) -> None:
    """Report ``rrset`` (written at ``at``) when a response carrying it
    cannot fit in one DNS message of ``MAX_MESSAGE`` octets, even over TCP:
    it could never be answered (RFC 2181 section 5: an RRset is sent whole).
    RDATA is compiled only for an RRset near that size (every type's RDATA
    is at most its canonical text's length + 24 octets)."""
    texts = rrset.rdata
    if _ROUGH_BASE + 36 * len(texts) + sum(map(len, texts)) <= MAX_MESSAGE:
        return
    size = message_size(rrset)
    if size > MAX_MESSAGE:
        r.report(at, f"this {rrset.rtype} RRset ({len(texts)} records) makes a response of "
                     f"{size} octets: it cannot fit in a DNS message ({MAX_MESSAGE} octets, "
                     f"{OPT_RESERVE} kept for EDNS options, RFC 1035 §4.2.2)")


def _zone_rules(r: Reader, zone: str, at: At, owners: Mapping[str, At],
                types: Mapping[str, list[str]],
                rrsets: Mapping[tuple[str, str], RRset]) -> None:
    """Rules between the RRsets of one zone: ``types`` is owner -> record
    types written there (``gslb`` included), ``rrsets`` the valid ones."""
    for owner, present in types.items():
        oat = owners[owner]
        if "SOA" in present and owner != zone:
            r.report(oat, "SOA is only allowed at the zone apex")
        if "CNAME" in present:
            _cname_alone(r, zone, owner, oat, present, rrsets)
        if "gslb" in present and {"A", "AAAA"} & set(present):
            r.report(oat, "a gslb name cannot also have static A or AAAA records")
        if "NS" in present and owner.startswith("*."):
            r.report(oat, "NS is not allowed at a wildcard owner (RFC 4592 §4.2)")
        if "DS" in present and (owner == zone or "NS" not in present):
            r.report(oat, "DS is only allowed at a delegation (a name with NS, not the apex) "
                          "(RFC 4035 §2.4)")
    apex = types.get(zone, [])
    if "SOA" not in apex:
        r.report(at, f"missing SOA record at the zone apex of {zone}")
    elif len(getattr(rrsets.get((zone, "SOA")), "rdata", (1,))) != 1:
        r.report(owners[zone], "the SOA record must have exactly one value")
    if "NS" not in apex:
        r.report(at, f"missing NS records at the zone apex of {zone}")


def _cname_alone(r: Reader, zone: str, owner: str, at: At, present: list[str],
                 rrsets: Mapping[tuple[str, str], RRset]) -> None:
    """A CNAME is not at the apex, shares its name with nothing else and has
    one value (RFC 1034 section 3.6.2)."""
    if owner == zone:
        r.report(at, "CNAME is not allowed at the zone apex (RFC 1034 §3.6.2)")
    elif len(present) > 1:
        others = ", ".join(t for t in present if t != "CNAME")
        r.report(at, f"CNAME cannot share a name with other data ({others}) "
                     "(RFC 1034 §3.6.2)")
    if len(getattr(rrsets.get((owner, "CNAME")), "rdata", ())) > 1:
        r.report(at, "CNAME must have exactly one value (RFC 1034 §3.6.2)")


def _nested_zones(r: Reader, owners: Owners) -> None:
    """Records of a zone that lie inside another configured (more specific)
    zone are an error: that zone answers for them."""
    for name, names in owners.items():
        inner = [z for z in owners if z != name and inside(z, name)]
        for owner, oat in names.items():
            sub = max((z for z in inner if inside(owner, z)), key=len, default=None)
            if sub is not None:
                r.report(oat, f"record {owner} lies inside the configured zone {sub}; "
                              "define it there")
