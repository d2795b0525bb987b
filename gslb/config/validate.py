"""Turn loaded YAML documents into the frozen model, collecting every problem.

``Validator`` walks the documents produced by ``gslb.config.loader`` and
builds ``gslb.config.model.Config``. Each problem becomes one reason
``FILE:LINE: KEY.PATH: message`` (LINE 1-based, of the YAML node at fault;
KEY.PATH a breadcrumb such as ``pools.web.origins[2]``). Nothing stops at the
first problem: every reason is collected, then one ``ConfigError`` lists them
all (octoDNS style). The YAML format is described in ``docs/config.md``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeVar, cast

from gslb import countries
from gslb.config.loader import Loc, MarkedDict, MarkedList
from gslb.config.model import (
    CONTINENTS,
    DEFAULT_GSLB_TTL,
    LOCAL_VANTAGE,
    Check,
    CheckType,
    Config,
    GslbRecord,
    HealthSettings,
    Location,
    Origin,
    PolicyName,
    Pool,
    RRset,
    Tiers,
    Vantage,
    Zone,
)
from gslb.dns.zonetext import STATIC_TYPES, normalize_rdata
from gslb.errors import ConfigError

T = TypeVar("T")

TOP_KEYS = ("origins", "pools", "zones", "vantages", "health")
NAMED_SECTIONS = ("origins", "pools", "zones", "vantages")
"""Top-level sections mapping names to entries; a name may be defined once."""
ORIGIN_KEYS = ("ipv4", "ipv6", "weight", "location", "check")
CHECK_KEYS = ("type", "port", "target", "path", "expect", "body", "host", "tls_verify",
              "interval", "timeout", "rise", "fall")
HTTP_ONLY = ("path", "expect", "body", "host")
POLICIES: tuple[PolicyName, ...] = ("failover", "weighted", "geo", "latency", "all")
POOL_KEYS = ("policy", "origins", "max_answers", "fallback")
GEO_KEYS = ("countries", "continents", "default")
LATENCY_KEYS = ("vantage_countries", "vantage_continents", "switch_margin", "switch_margin_ms")
POLICY_KEYS: dict[str, tuple[str, ...]] = {
    "failover": ("tiers",), "geo": GEO_KEYS, "latency": GEO_KEYS + LATENCY_KEYS}
"""Keys only some policies accept: policy → its keys."""
ZONE_KEYS = ("ttl", "records")
VANTAGE_KEYS = ("location", "continent")
HEALTH_KEYS = ("quorum", "stale_after", "heartbeat_interval", "resync_interval")
RESERVED_VANTAGE = LOCAL_VANTAGE
"""The vantage name of the prober embedded in ``gslb serve`` (no Redis)."""
RECORD_TYPES = (*STATIC_TYPES, "gslb")
_TYPE_NAMES = {t: t for t in RECORD_TYPES}
MAX_TTL = 2**31 - 1
"""Largest TTL, seconds (RFC 2181 section 8)."""
DEFAULT_ZONE_TTL = 3600
"""TTL (seconds) of static RRsets when neither the RRset nor the zone gives one."""
_LABEL = re.compile(r"\*|[a-z0-9_-]{1,63}")
_VANTAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


class At:
    """Where a value is: its breadcrumb ``path`` and its ``loc`` in a file.

    A child's path and place are worked out when first read: only an error
    reads them, and a valid config makes several children per record.
    """

    __slots__ = ("_base", "_loc", "_path", "_ref", "_source")

    def __init__(self, path: str, loc: Loc) -> None:
        self._path: str | None = path
        self._loc: Loc | None = loc
        self._base: At | None = None
        self._source: MarkedDict | MarkedList | None = None
        self._ref: str | int = ""

    @classmethod
    def _below(cls, base: At, ref: str | int, loc: Loc | None,
               source: MarkedDict | MarkedList | None) -> At:
        at = cls.__new__(cls)
        at._path, at._loc, at._base, at._ref, at._source = None, loc, base, ref, source
        return at

    @property
    def path(self) -> str:
        """The breadcrumb, e.g. ``pools.web.origins[2]``."""
        if self._path is None:
            base, ref = cast(At, self._base).path, self._ref
            if isinstance(ref, int):
                self._path = f"{base}[{ref}]"
            else:
                self._path = f"{base}.{ref}" if base else ref
        return self._path

    @property
    def loc(self) -> Loc:
        """Where the value is written."""
        if self._loc is None:
            source, ref = self._source, self._ref
            self._loc = (source.item_loc(ref) if isinstance(ref, int)  # type: ignore[union-attr]
                         else source.key_loc(ref))  # type: ignore[union-attr,arg-type]
        return self._loc

    def child(self, key: str, loc: Loc) -> At:
        """The breadcrumb one key deeper, at ``loc``."""
        return At._below(self, key, loc, None)

    def key(self, mapping: MarkedDict, key: str) -> At:
        """The value of ``key`` in ``mapping`` (which lives here), located at the
        key: the line a user reads as "where ``key`` is set"."""
        return At._below(self, key, None, mapping)

    def item(self, seq: MarkedList, index: int) -> At:
        """Item ``index`` of ``seq`` (which lives here)."""
        return At._below(self, index, None, seq)


def _kind(value: object) -> str:
    for typ, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                      (str, "a string"), (dict, "a mapping"), (list, "a list")):
        if isinstance(value, typ):
            return name
    return "null" if value is None else type(value).__name__


def _absolute(name: str) -> str:
    """``name`` lower-cased with exactly one trailing dot."""
    return name.strip().lower().rstrip(".") + "."


def _bad_name(name: str) -> str | None:
    """Why ``name`` (absolute) is not a usable domain name (RFC 1035 section 2.3.4),
    or None when it is fine."""
    if len(name) > 254:
        return f"name {name!r} is longer than 253 characters"
    labels = name[:-1].split(".")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if name == "." or bad is not None:
        return (f"bad domain name {name!r}: each label must be 1-63 characters "
                "of letters, digits, '-' or '_' (or a lone '*')")
    return None


def _inside(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


class Validator:
    """Collects reasons while building a ``Config`` from loaded documents.

    Use ``error()`` to add a problem found elsewhere (unreadable file, YAML
    syntax error), then ``build(documents)``.
    """

    def __init__(self) -> None:
        self._reasons: list[tuple[Loc, str, str]] = []
        self._files: list[str] = []
        self._owners: dict[str, dict[str, At]] = {}  # zone -> owner -> where

    # -- reporting -------------------------------------------------------

    def error(self, loc: Loc, path: str, message: str) -> None:
        """Record one problem at ``loc`` for breadcrumb ``path``."""
        self._reasons.append((loc, path, message))

    def _err(self, at: At, message: str) -> None:
        self.error(at.loc, at.path, message)

    def reasons(self) -> list[str]:
        """Every reason so far as ``FILE:LINE: KEY.PATH: message``, by file then line."""
        order = {name: i for i, name in enumerate(self._files)}
        ranked = sorted(self._reasons, key=lambda r: (order.get(r[0].file, -1), r[0].line,
                                                      r[0].col))
        return list(dict.fromkeys(f"{loc}: {path}: {msg}" for loc, path, msg in ranked))

    # -- typed accessors (each returns None after reporting a problem) --

    def _mapping(self, value: object, at: At) -> MarkedDict | None:
        if not isinstance(value, MarkedDict):
            self._err(at, f"expected a mapping, got {_kind(value)}")
            return None
        for key, here, first in value.duplicates:
            self._err(at.child(key, here),
                      f"duplicate key {key!r} (first at line {first.line})")
        return value

    def _fields(self, m: MarkedDict, at: At, allowed: Sequence[str],
                required: Sequence[str] = ()) -> None:
        for key in m:
            if key not in allowed:
                self._err(at.key(m, key),
                          f"unknown key {key!r} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in m:
                self._err(at, f"missing required key {key!r}")

    def _int(self, value: object, at: At, lo: int, hi: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self._err(at, f"expected an integer, got {_kind(value)}")
            return None
        if value < lo:
            self._err(at, f"{value} is below {lo}")
            return None
        if hi is not None and value > hi:
            self._err(at, f"{value} is above {hi}")
            return None
        return value

    def _seconds(self, value: object, at: At) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._err(at, f"expected a number of seconds, got {_kind(value)}")
            return None
        if not 0 < value < float("inf"):
            self._err(at, f"{value} must be above 0 seconds")
            return None
        return float(value)

    def _degrees(self, value: object, at: At, limit: int) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._err(at, f"expected decimal degrees, got {_kind(value)}")
            return None
        if not -limit <= value <= limit:
            self._err(at, f"{value} is outside -{limit}..{limit} degrees")
            return None
        return float(value)

    def _str(self, value: object, at: At) -> str | None:
        if not isinstance(value, str) or not value:
            self._err(at, f"expected a non-empty string, got {_kind(value)}")
            return None
        return value

    def _bool(self, value: object, at: At) -> bool | None:
        if not isinstance(value, bool):
            self._err(at, f"expected true or false, got {_kind(value)}")
            return None
        return value

    def _items(self, value: object, at: At, each: Callable[[object, At], T | None],
               what: str, partial: bool = False) -> list[tuple[T, At]] | None:
        """A single value or a non-empty list of them, each checked by ``each``.

        Returns None when any item is bad, unless ``partial``: then the good ones.
        """
        if isinstance(value, MarkedList):
            if not value:
                self._err(at, f"expected at least one {what}, got an empty list")
                return None
            pairs = [(item, at.item(value, i)) for i, item in enumerate(value)]
        else:
            pairs = [(value, at)]
        good = [(v, a) for v, a in ((each(item, a), a) for item, a in pairs) if v is not None]
        return good if partial or len(good) == len(pairs) else None

    # -- the whole config ------------------------------------------------

    def build(self, documents: Iterable[tuple[str, Any]]) -> Config:
        """Validate ``(file name, document)`` pairs as one merged config.

        Raises ``ConfigError`` listing every reason (including any added with
        ``error()`` before) when anything is wrong.
        """
        sections: dict[str, dict[str, tuple[Any, At]]] = {k: {} for k in NAMED_SECTIONS}
        first: dict[str, dict[str, At]] = {k: {} for k in NAMED_SECTIONS}
        health: tuple[Any, At] | None = None
        for name, doc in documents:
            self._files.append(name)
            if not isinstance(doc, MarkedDict):
                self._err(At("(top)", getattr(doc, "loc", Loc(name, 1, 1))),
                          f"the file must be a mapping with keys {', '.join(TOP_KEYS)}, "
                          f"got {_kind(doc) if doc is not None else 'an empty document'}")
                continue
            top = At("", doc.loc)
            self._mapping(doc, top)
            self._fields(doc, top, TOP_KEYS)
            if "health" in doc:
                hat = top.key(doc, "health")
                if health is not None:
                    self._err(hat, f"health is given twice (first at {health[1].loc})")
                else:
                    health = (doc["health"], hat)
            for section in (k for k in NAMED_SECTIONS if k in doc):
                sat = top.key(doc, section)
                body = self._mapping(doc[section], sat)
                for key, value in (body or {}).items():
                    ident = _absolute(key) if section == "zones" else key
                    kat = sat.key(body, key)  # type: ignore[arg-type]
                    if ident in first[section]:
                        self._err(kat, f"{section[:-1]} {key!r} is defined twice "
                                       f"(first at {first[section][ident].loc})")
                        continue
                    first[section][ident] = kat
                    sections[section][key] = (value, sat.key(body, key))  # type: ignore[arg-type]

        origins = {name: self._origin(name, v, at)
                   for name, (v, at) in sections["origins"].items()}
        pools = {name: self._pool(name, v, at, origins, sections["pools"],
                                  sections["vantages"])
                 for name, (v, at) in sections["pools"].items()}
        self._fallback_cycles(pools, sections["pools"])
        zones = {}
        for key, (v, at) in sections["zones"].items():
            zone = self._zone(_absolute(key), v, at, sections["pools"])
            if zone is not None:
                zones[zone.name] = zone
        self._nested_zones()
        vantages = {name: self._vantage(name, v, at)
                    for name, (v, at) in sections["vantages"].items()}
        settings = self._health(*health, len(vantages)) if health else HealthSettings()

        if self._reasons:
            raise ConfigError(self.reasons())
        return Config(
            zones=MappingProxyType(zones),
            origins=MappingProxyType(cast(dict[str, Origin], origins)),
            pools=MappingProxyType(cast(dict[str, Pool], pools)),
            files=tuple(self._files),
            vantages=MappingProxyType(cast(dict[str, Vantage], vantages)),
            health=cast(HealthSettings, settings),
        )

    # -- origins ----------------------------------------------------------

    def _origin(self, name: str, value: object, at: At) -> Origin | None:
        m = self._mapping(value, at)
        if m is None:
            return None
        before = len(self._reasons)
        self._fields(m, at, ORIGIN_KEYS)
        addrs: dict[int, tuple[str, ...]] = {4: (), 6: ()}
        for version in (4, 6):
            key = f"ipv{version}"
            if key in m:
                addrs[version] = self._addresses(m[key], at.key(m, key), version)
        if not addrs[4] and not addrs[6] and "ipv4" not in m and "ipv6" not in m:
            self._err(at, "an origin needs at least one address (ipv4 or ipv6)")
        weight = self._int(m["weight"], at.key(m, "weight"), 1) if "weight" in m else 1
        location, country = None, None
        if "location" in m:
            location, country = self._location(m["location"], at.key(m, "location"))
        target = (addrs[4] or addrs[6] or ("",))[0]
        check = self._check(m["check"], at.key(m, "check"), target) if "check" in m else None
        if len(self._reasons) > before:
            return None
        return Origin(name=name, ipv4=addrs[4], ipv6=addrs[6], weight=weight or 1,
                      location=location, country=country, check=check)

    def _addresses(self, value: object, at: At, version: int) -> tuple[str, ...]:
        def one(text: object, a: At) -> str | None:
            if (text := self._str(text, a)) is None:
                return None
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                self._err(a, f"bad IPv{version} address {text!r}")
                return None
            if addr.version != version:
                self._err(a, f"{text!r} is an IPv{addr.version} address, not IPv{version}")
                return None
            return str(addr)

        items = self._items(value, at, one, f"IPv{version} address", partial=True) or []
        seen: dict[str, At] = {}
        for addr, a in items:
            if addr in seen:
                self._err(a, f"duplicate address {addr}")
            seen.setdefault(addr, a)
        return tuple(seen)

    def _location(self, value: object, at: At) -> tuple[Location | None, str | None]:
        m = self._mapping(value, at)
        if m is None:
            return None, None
        self._fields(m, at, ("lat", "lon", "country"))
        if "country" in m:
            if "lat" in m or "lon" in m:
                self._err(at, "give either country or lat/lon, not both")
            code = self._str(m["country"], at.key(m, "country"))
            found = countries.lookup(code) if code else None
            if code and found is None:
                self._err(at.key(m, "country"), f"unknown country code {code!r}")
            return ((Location(found.lat, found.lon), found.code) if found else (None, None))
        if "lat" not in m or "lon" not in m:
            self._err(at, "a location needs lat and lon, or country")
            return None, None
        lat = self._degrees(m["lat"], at.key(m, "lat"), 90)
        lon = self._degrees(m["lon"], at.key(m, "lon"), 180)
        return (Location(lat, lon) if lat is not None and lon is not None else None), None

    def _check(self, value: object, at: At, default_target: str) -> Check | None:
        m = self._mapping(value, at)
        if m is None:
            return None
        self._fields(m, at, CHECK_KEYS, required=("type",))
        kind = self._str(m.get("type"), at.key(m, "type")) if "type" in m else None
        if kind is not None and kind not in ("http", "https", "tcp"):
            self._err(at.key(m, "type"), f"unknown check type {kind!r} (allowed: http, https, tcp)")
            kind = None
        for key in m:
            https_only = key == "tls_verify" and kind in ("http", "tcp")
            if https_only or (kind == "tcp" and key in HTTP_ONLY):
                only = "https" if https_only else "http and https"
                self._err(at.key(m, key), f"key {key!r} is only valid for {only} checks")
        opt: dict[str, Any] = {}
        if "port" in m:
            opt["port"] = self._int(m["port"], at.key(m, "port"), 1, 65535)
        elif kind == "tcp":
            self._err(at, "missing required key 'port' (tcp checks have no default port)")
        else:
            opt["port"] = 443 if kind == "https" else 80
        if "target" in m:
            text = self._str(m["target"], at.key(m, "target"))
            try:
                opt["target"] = str(ipaddress.ip_address(text or ""))
            except ValueError:
                if text:
                    self._err(at.key(m, "target"), f"target {text!r} is not an IP address")
        else:
            opt["target"] = default_target
        if "path" in m and (path := self._str(m["path"], at.key(m, "path"))) is not None:
            if not path.startswith("/"):
                self._err(at.key(m, "path"), f"path {path!r} must start with '/'")
            opt["path"] = path
        if "expect" in m:
            codes = self._items(m["expect"], at.key(m, "expect"),
                                lambda v, a: self._int(v, a, 100, 599), "HTTP status")
            opt["expect_status"] = tuple(c for c, _ in codes or ())
        for key, field in (("body", "body"), ("host", "host_header")):
            if key in m:
                opt[field] = self._str(m[key], at.key(m, key))
        if "tls_verify" in m:
            opt["tls_verify"] = self._bool(m["tls_verify"], at.key(m, "tls_verify"))
        for key, field in (("interval", "interval_s"), ("timeout", "timeout_s")):
            if key in m:
                opt[field] = self._seconds(m[key], at.key(m, key))
        for key in ("rise", "fall"):
            if key in m:
                opt[key] = self._int(m[key], at.key(m, key), 1)
        interval, timeout = opt.get("interval_s", 5.0), opt.get("timeout_s", 2.0)
        if interval is not None and timeout is not None and timeout > interval:
            self._err(at.key(m, "timeout") if "timeout" in m else at,
                      f"timeout {timeout:g} s is longer than interval {interval:g} s")
        if kind is None or None in opt.values() or not opt.get("target") or "port" not in opt:
            return None
        return Check(type=cast(CheckType, kind), **opt)

    # -- pools -----------------------------------------------------------

    def _pool(self, name: str, value: object, at: At, origins: Mapping[str, object],
              pools: Mapping[str, object], vantages: Mapping[str, object]) -> Pool | None:
        m = self._mapping(value, at)
        if m is None:
            return None
        before = len(self._reasons)
        every = POOL_KEYS + tuple(dict.fromkeys(k for keys in POLICY_KEYS.values() for k in keys))
        self._fields(m, at, every, required=("policy",))
        policy = self._str(m["policy"], at.key(m, "policy")) if "policy" in m else None
        if policy is not None and policy not in POLICIES:
            self._err(at.key(m, "policy"),
                      f"unknown policy {policy!r} (allowed: {', '.join(POLICIES)})")
            policy = None
        if policy is not None:
            for key in m:
                owners = [p for p, keys in POLICY_KEYS.items() if key in keys]
                if owners and policy not in owners:
                    self._err(at.key(m, key), f"key {key!r} is only valid for policy "
                              f"{' or '.join(owners)} (this pool's policy is {policy})")

        def known(v: object, a: At) -> str | None:
            if (text := self._str(v, a)) is not None and text not in origins:
                self._err(a, f"unknown origin {text!r}")
                return None
            return text

        members: tuple[str, ...] = ()
        if "origins" in m:
            items = self._items(m["origins"], at.key(m, "origins"), known, "origin",
                                partial=True) or []
            members = self._unique(items)
        elif policy not in (None, "failover"):
            self._err(at, "missing required key 'origins'")

        tiers: Tiers = (members,)
        if policy == "failover":
            if "tiers" not in m:
                self._err(at, "missing required key 'tiers' (failover pools list their tiers)")
            else:
                tiers = self._targets(m["tiers"], at.key(m, "tiers"), known, nested=True)
                order = tuple(dict.fromkeys(n for tier in tiers for n in tier))
                if "origins" in m:
                    for n in (n for n in members if n not in order):
                        self._err(at.key(m, "origins"), f"origin {n!r} is in no tier")
                members = order

        def member(v: object, a: At) -> str | None:
            if (text := known(v, a)) is not None and text not in members:
                self._err(a, f"origin {text!r} is not a member of this pool "
                          f"(origins: {', '.join(members)})")
                return None
            return text

        maps: dict[str, dict[str, Tiers]] = {"countries": {}, "continents": {}}
        geo_like = policy in ("geo", "latency")
        for key in maps if geo_like else ():
            if key in m and (table := self._mapping(m[key], at.key(m, key))) is not None:
                for code, targets in table.items():
                    where = At(f"{at.path}.{key}", table.loc).key(table, code)
                    norm = self._region(key, code, where)
                    if norm is not None and norm in maps[key]:
                        self._err(where, f"{norm} is mapped twice")
                    elif norm is not None:
                        maps[key][norm] = self._targets(targets, where, member)
        default: Tiers = ()
        if geo_like and "default" in m:
            default = self._targets(m["default"], at.key(m, "default"), member)
        latency = self._latency(m, at, vantages) if policy == "latency" else {}

        max_answers = (self._int(m["max_answers"], at.key(m, "max_answers"), 1)
                       if "max_answers" in m else 1)
        fallback = "all"
        if "fallback" in m and (fb := self._str(m["fallback"], at.key(m, "fallback"))):
            fallback = fb
            if fb == name:
                self._err(at.key(m, "fallback"), "a pool cannot fall back to itself")
            elif fb not in ("all", "none") and fb not in pools:
                self._err(at.key(m, "fallback"),
                          f"fallback {fb!r} is neither 'all', 'none' nor a known pool")
        if len(self._reasons) > before or policy is None:
            return None
        return Pool(name=name, policy=cast(PolicyName, policy), origins=members, tiers=tiers,
                    max_answers=max_answers or 1, fallback=fallback,
                    countries=MappingProxyType(maps["countries"]),
                    continents=MappingProxyType(maps["continents"]), default=default,
                    **latency)

    def _latency(self, m: MarkedDict, at: At, vantages: Mapping[str, object]) -> dict[str, Any]:
        """The ``latency`` keys of pool ``m`` as ``Pool`` keyword arguments;
        ``vantages`` are the declared vantage names."""
        opt: dict[str, Any] = {}
        for key, table in (("vantage_countries", "countries"),
                           ("vantage_continents", "continents")):
            found: dict[str, str] = {}
            if key in m and (body := self._mapping(m[key], at.key(m, key))) is not None:
                for code, target in body.items():
                    where = At(f"{at.path}.{key}", body.loc).key(body, code)
                    norm = self._region(table, code, where)
                    vantage = self._str(target, where)
                    if norm is not None and norm in found:
                        self._err(where, f"{norm} is mapped twice")
                    elif vantage is not None and vantage not in vantages:
                        declared = ", ".join(vantages) or "none declared"
                        self._err(where, f"unknown vantage {vantage!r} (vantages: {declared})")
                    elif norm is not None and vantage is not None:
                        found[norm] = vantage
            opt[key] = MappingProxyType(found)
        if "switch_margin" in m:
            pct = self._number(m["switch_margin"], at.key(m, "switch_margin"), "percent", 100)
            opt["switch_margin_pct"] = pct
        if "switch_margin_ms" in m:
            opt["switch_margin_ms"] = self._number(m["switch_margin_ms"],
                                                   at.key(m, "switch_margin_ms"), "milliseconds")
        return opt

    def _number(self, value: object, at: At, unit: str, below: float | None = None
                ) -> float | None:
        """A number ≥ 0 (and < ``below`` when given) of ``unit``."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._err(at, f"expected a number of {unit}, got {_kind(value)}")
            return None
        if not 0 <= value < (below if below is not None else float("inf")):
            bound = f"0 up to (not including) {below:g}" if below is not None else "0 or more"
            self._err(at, f"{value} {unit} is out of bounds: {bound}")
            return None
        return float(value)

    def _unique(self, items: Iterable[tuple[str, At]]) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for n, a in items:
            if n in seen:
                self._err(a, f"origin {n!r} is listed twice")
            seen[n] = None
        return tuple(seen)

    def _region(self, table: str, code: str, at: At) -> str | None:
        if table == "continents":
            if code.upper() not in CONTINENTS:
                self._err(at, f"unknown continent code {code!r} "
                          f"(allowed: {', '.join(sorted(CONTINENTS))})")
                return None
            return code.upper()
        found = countries.lookup(code)
        if found is None:
            self._err(at, f"unknown country code {code!r} (ISO 3166-1 alpha-2 expected)")
            return None
        return found.code

    def _targets(self, value: object, at: At, name: Callable[[object, At], str | None],
                 nested: bool = False) -> Tiers:
        """Ordered tiers from an origin name, a list of names (one tier) or a list
        of lists (ordered tiers); with ``nested`` (failover ``tiers``) every item
        of the list is one tier, a name or a list of names. An origin may appear
        once."""
        tiers: list[list[tuple[str, At]]] = []
        if not isinstance(value, MarkedList):
            tiers = [[(n, at)]] if (n := name(value, at)) is not None else []
        elif not value:
            self._err(at, "expected at least one origin, got an empty list")
        elif nested or all(isinstance(v, MarkedList) for v in value):
            tiers = [self._items(tier, at.item(value, i), name, "origin", partial=True) or []
                     for i, tier in enumerate(value)]
        elif any(isinstance(v, MarkedList) for v in value):
            self._err(at, "mix of names and lists: give one tier (a list of names) "
                          "or ordered tiers (a list of lists)")
        else:
            tiers = [self._items(value, at, name, "origin", partial=True) or []]
        self._unique(pair for tier in tiers for pair in tier)
        return tuple(tuple(n for n, _ in tier) for tier in tiers)

    def _fallback_cycles(self, pools: Mapping[str, Pool | None],
                         defs: Mapping[str, tuple[Any, At]]) -> None:
        reported: set[str] = set()
        for start, pool in pools.items():
            chain, cur = [start], pool
            while cur is not None and cur.fallback in pools and cur.fallback not in chain:
                chain.append(cur.fallback)
                cur = pools[cur.fallback]
            if (cur is not None and cur.fallback == start and len(chain) > 1
                    and not reported & set(chain)):
                reported.update(chain)
                m, at = defs[start]
                self._err(at.key(m, "fallback"),
                          f"fallback cycle: {' -> '.join([*chain, start])}")

    # -- vantages and health ---------------------------------------------

    def _vantage(self, name: str, value: object, at: At) -> Vantage | None:
        """A probe vantage; a null value is a vantage with no location."""
        before = len(self._reasons)
        if not _VANTAGE_NAME.fullmatch(name):
            self._err(at, f"bad vantage name {name!r}: 1-63 characters of lower-case "
                          "letters, digits, '-', '_' or '.', starting with a letter or digit")
        elif name == RESERVED_VANTAGE:
            self._err(at, f"vantage name {name!r} is reserved for the prober embedded "
                          "in 'gslb serve'")
        if value is None:
            return None if len(self._reasons) > before else Vantage(name=name)
        m = self._mapping(value, at)
        if m is None:
            return None
        self._fields(m, at, VANTAGE_KEYS)
        location, country = None, None
        if "location" in m:
            location, country = self._location(m["location"], at.key(m, "location"))
        found = countries.lookup(country) if country else None
        continent = found.continent if found else None
        if "continent" in m:
            cat = at.key(m, "continent")
            code = self._str(m["continent"], cat)
            given = self._region("continents", code, cat) if code else None
            if given and continent and given != continent:
                self._err(cat, f"continent {given} does not match country {country}, "
                               f"which is in {continent}")
            continent = given or continent
        if len(self._reasons) > before:
            return None
        return Vantage(name=name, location=location, country=country, continent=continent)

    def _health(self, value: object, at: At, vantages: int) -> HealthSettings | None:
        """The ``health`` section; ``vantages`` is how many are declared (0: none)."""
        m = self._mapping(value, at)
        if m is None:
            return None
        before = len(self._reasons)
        self._fields(m, at, HEALTH_KEYS)
        opt: dict[str, Any] = {}
        if "quorum" in m and (quorum := m["quorum"]) != "majority":
            qat = at.key(m, "quorum")
            if isinstance(quorum, str):
                self._err(qat, f"expected 'majority' or an integer, got {quorum!r}")
            else:
                opt["quorum"] = self._int(quorum, qat, 1)
                if opt["quorum"] and vantages and quorum > vantages:
                    self._err(qat, f"quorum {quorum} is more than the {vantages} "
                                   "declared vantages")
        for key in ("stale_after", "heartbeat_interval", "resync_interval"):
            if key in m:
                opt[f"{key}_s"] = self._seconds(m[key], at.key(m, key))
        defaults = HealthSettings()
        stale = opt.get("stale_after_s", defaults.stale_after_s)
        beat = opt.get("heartbeat_interval_s", defaults.heartbeat_interval_s)
        if stale is not None and beat is not None and stale < 2 * beat:
            self._err(at.key(m, "stale_after") if "stale_after" in m else at,
                      f"stale_after {stale:g} s is below 2 × heartbeat_interval ({beat:g} s): "
                      "a live vantage would look stale")
        if len(self._reasons) > before:
            return None
        return HealthSettings(**opt)

    # -- zones -----------------------------------------------------------

    def _zone(self, zone: str, value: object, at: At,
              pools: Mapping[str, object]) -> Zone | None:
        m = self._mapping(value, at)
        name_problem = _bad_name(zone)
        if name_problem:
            self._err(at, name_problem)
        if m is None or name_problem:
            return None
        before = len(self._reasons)
        self._fields(m, at, ZONE_KEYS, required=("records",))
        ttl = self._int(m["ttl"], at.key(m, "ttl"), 0, MAX_TTL) if "ttl" in m else DEFAULT_ZONE_TTL
        records = self._mapping(m["records"], at.key(m, "records")) if "records" in m else None
        if records is None:
            return None
        rrsets: dict[tuple[str, str], RRset] = {}
        gslb: dict[str, GslbRecord] = {}
        owners: dict[str, At] = self._owners.setdefault(zone, {})
        declared: dict[str, list[str]] = {}  # owner -> types written, valid or not
        rat = at.key(m, "records")
        for owner_key, types in records.items():
            oat = rat.key(records, owner_key)
            owner = self._owner(owner_key, zone, oat)
            if owner is None:
                continue
            if owner in owners:
                self._err(oat, f"name {owner} is defined twice in this zone "
                               f"(first at line {owners[owner].loc.line})")
                continue
            owners[owner] = oat
            tm = self._mapping(types, rat.key(records, owner_key))
            for type_key, data in (tm or {}).items():
                tat = oat.key(tm, type_key)  # type: ignore[arg-type]
                rtype = "gslb" if type_key.lower() == "gslb" else type_key.upper()
                rtype = _TYPE_NAMES.get(rtype, rtype)  # one string per type, not per record
                if rtype not in RECORD_TYPES:
                    self._err(tat, f"unknown record type {type_key!r} "
                              f"(allowed: {', '.join(RECORD_TYPES)})")
                    continue
                if rtype in declared.setdefault(owner, []):
                    self._err(tat, f"{rtype} is given twice for this name")
                    continue
                declared[owner].append(rtype)
                if rtype == "gslb":
                    if (record := self._gslb(owner, data, tat, pools)) is not None:
                        gslb[owner] = record
                else:
                    rrset = self._rrset(owner, rtype, data, tat, zone, ttl or 0)
                    if rrset is not None:
                        rrsets[owner, rtype] = rrset
        self._zone_rules(zone, at, owners, declared, rrsets)
        soa = rrsets.get((zone, "SOA"))
        if len(self._reasons) > before or soa is None:
            return None
        return Zone(name=zone, soa=soa, rrsets=MappingProxyType(rrsets),
                    gslb=MappingProxyType(gslb))

    def _owner(self, key: str, zone: str, at: At) -> str | None:
        if key == "@":
            return zone
        if key.endswith("."):
            owner = key.lower()
            if not _inside(owner, zone):
                self._err(at, f"record outside its zone: {owner} is not in {zone}")
                return None
        else:
            owner = f"{key.lower()}.{zone}"
        problem = _bad_name(owner)
        if problem:
            self._err(at, problem)
            return None
        return owner

    def _gslb(self, owner: str, value: object, at: At,
              pools: Mapping[str, object]) -> GslbRecord | None:
        ttl: int | None = DEFAULT_GSLB_TTL
        pat = at
        if isinstance(value, MarkedDict):
            m = self._mapping(value, at)
            self._fields(value, at, ("pool", "ttl"), required=("pool",))
            if "ttl" in value:
                ttl = self._int(value["ttl"], at.key(value, "ttl"), 0, MAX_TTL)
            if m is None or "pool" not in m:
                return None
            pat, value = at.key(m, "pool"), m["pool"]
        pool = self._str(value, pat)
        if pool is not None and pool not in pools:
            self._err(pat, f"unknown pool {pool!r}")
            return None
        return GslbRecord(name=owner, pool=pool, ttl=ttl) if pool and ttl is not None else None

    def _rrset(self, owner: str, rtype: str, value: object, at: At, zone: str,
               ttl: int) -> RRset | None:
        vat = at
        if isinstance(value, MarkedDict):
            self._mapping(value, at)
            self._fields(value, at, ("ttl", "values", "value"))
            if "ttl" in value:
                ttl = self._int(value["ttl"], at.key(value, "ttl"), 0, MAX_TTL)  # type: ignore[assignment]
            given = [k for k in ("values", "value") if k in value]
            if len(given) != 1:
                self._err(at, "give exactly one of 'values' or 'value'")
                return None
            vat, value = at.key(value, given[0]), value[given[0]]

        def one(text: object, a: At) -> str | None:
            if isinstance(text, bool) or not isinstance(text, str | int | float):
                self._err(a, f"expected {rtype} data as a string, got {_kind(text)}")
                return None
            try:
                return normalize_rdata(rtype, str(text), zone)
            except ValueError as exc:
                self._err(a, str(exc))
                return None

        items = self._items(value, vat, one, f"{rtype} value")
        if items is None or ttl is None:
            return None
        seen: dict[str, None] = {}
        for text, a in items:
            if text in seen:
                self._err(a, f"duplicate value {text!r}")
            seen[text] = None
        return RRset(name=owner, rtype=rtype, ttl=ttl, rdata=tuple(seen))

    def _zone_rules(self, zone: str, at: At, owners: Mapping[str, At],
                    types: Mapping[str, list[str]],
                    rrsets: Mapping[tuple[str, str], RRset]) -> None:
        """Rules between the RRsets of one zone: ``types`` is owner -> record
        types written there (``gslb`` included), ``rrsets`` the valid ones."""
        for owner, present in types.items():
            oat = owners[owner]
            if "SOA" in present and owner != zone:
                self._err(oat, "SOA is only allowed at the zone apex")
            if "CNAME" in present:
                if owner == zone:
                    self._err(oat, "CNAME is not allowed at the zone apex (RFC 1034 §3.6.2)")
                elif len(present) > 1:
                    others = ", ".join(t for t in present if t != "CNAME")
                    self._err(oat, f"CNAME cannot share a name with other data ({others}) "
                                   "(RFC 1034 §3.6.2)")
                if len(getattr(rrsets.get((owner, "CNAME")), "rdata", ())) > 1:
                    self._err(oat, "CNAME must have exactly one value (RFC 1034 §3.6.2)")
            if "gslb" in present and {"A", "AAAA"} & set(present):
                self._err(oat, "a gslb name cannot also have static A or AAAA records")
        apex = types.get(zone, [])
        if "SOA" not in apex:
            self._err(at, f"missing SOA record at the zone apex of {zone}")
        elif len(getattr(rrsets.get((zone, "SOA")), "rdata", (1,))) != 1:
            self._err(owners[zone], "the SOA record must have exactly one value")
        if "NS" not in apex:
            self._err(at, f"missing NS records at the zone apex of {zone}")

    def _nested_zones(self) -> None:
        """Records of a zone that lie inside another configured (more specific)
        zone are an error: that zone answers for them."""
        for name, owners in self._owners.items():
            inner = [z for z in self._owners if z != name and _inside(z, name)]
            for owner, oat in owners.items():
                sub = max((z for z in inner if _inside(owner, z)), key=len, default=None)
                if sub is not None:
                    self._err(oat, f"record {owner} lies inside the configured zone {sub}; "
                                   "define it there")

