"""The ``pools`` section: a policy over members (origins, or other pools: a
tree), with the keys of each policy (failover ``tiers``; geo and latency
maps and ``default``; the latency keys naming vantages and the anti-flap
margins), ``max_answers``, ``weight`` and ``min_healthy`` (a pool as a
member), and ``fallback`` (to ``all``, ``none`` or another pool, without
cycles); trees without cycles, at most ``MAX_TREE_DEPTH`` pools deep."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gslb.config.loader import Loc, MarkedDict, MarkedList
from gslb.config.model import MAX_TREE_DEPTH, NetworkMap, PolicyName, Pool, Tiers
from gslb.config.validate.places import region
from gslb.config.validate.reader import At, Reader

POLICIES: tuple[PolicyName, ...] = ("failover", "weighted", "geo", "latency", "all")
POOL_KEYS = ("policy", "origins", "max_answers", "fallback", "weight", "min_healthy")

GEO_KEYS = ("networks", "networks_file", "asns", "countries", "continents", "default")
LATENCY_KEYS = ("vantage_countries", "vantage_continents", "switch_margin", "switch_margin_ms")
POLICY_KEYS: dict[str, tuple[str, ...]] = {
    "failover": ("tiers",), "geo": GEO_KEYS, "latency": GEO_KEYS + LATENCY_KEYS}
"""Keys only some policies accept: policy → its keys."""
_EVERY_KEY = POOL_KEYS + tuple(dict.fromkeys(k for keys in POLICY_KEYS.values() for k in keys))

Name = Callable[[object, At], str | None]
"""Reads one member name (an origin's or a pool's) at a place: the name, or
None after reporting."""


def read_pools(r: Reader, defs: Mapping[str, tuple[Any, At]], origins: Mapping[str, object],
          vantages: Mapping[str, object]) -> dict[str, Pool | None]:
    """Each pool of the section, by name (None: it has problems, reported),
    then the fallback cycles among them. ``origins`` and ``vantages`` are the
    names declared (valid or not)."""
    found = {name: pool(r, name, v, at, origins, defs, vantages)
             for name, (v, at) in defs.items()}
    fallback_cycles(r, found, defs)
    tree_cycles(r, found, defs, origins)
    return found


def pool(r: Reader, name: str, value: object, at: At, origins: Mapping[str, object],
         pools: Mapping[str, object], vantages: Mapping[str, object]) -> Pool | None:
    """One pool mapping; ``origins``, ``pools`` and ``vantages`` are the names
    declared in those sections."""
    m = r.mapping(value, at)
    if m is None:
        return None
    before = r.count
    policy = _policy(r, m, at)
    names = _OriginNames(r, origins, pools, name)
    members, tiers = _members(r, m, at, policy, names)
    names.members = members
    maps: dict[str, dict[str, Tiers]] = {"countries": {}, "continents": {}}
    default: Tiers = ()
    networks = NetworkMap()
    asns: dict[int, Tiers] = {}
    if policy in ("geo", "latency"):
        default = _geo(r, m, at, names.member, maps)
        networks = _networks(r, m, at, names.member)
        asns = _asns(r, m, at, names.member)
    latency = _latency(r, m, at, vantages) if policy == "latency" else {}
    max_answers = (r.integer(m["max_answers"], at.key(m, "max_answers"), 1)
                   if "max_answers" in m else 1)
    weight = r.integer(m["weight"], at.key(m, "weight"), 1) if "weight" in m else 1
    healthy = _min_healthy(r, m, at)
    fallback = _fallback(r, m, at, name, pools)
    if r.count > before or policy is None:
        return None
    return Pool(name=name, policy=policy, origins=members, tiers=tiers,
                max_answers=max_answers or 1, fallback=fallback,
                countries=MappingProxyType(maps["countries"]),
                continents=MappingProxyType(maps["continents"]), default=default,
                networks=networks, asns=MappingProxyType(asns), weight=weight or 1,
                **healthy, **latency)


def _asns(r: Reader, m: MarkedDict, at: At, member: Name) -> dict[int, Tiers]:
    """The ``asns`` map: autonomous system number (1 to 4294967295, RFC 6793;
    written ``64496`` or ``AS64496``) → targets."""
    found: dict[int, Tiers] = {}
    if "asns" not in m or (table := r.mapping(m["asns"], at.key(m, "asns"))) is None:
        return found
    for key, targets in table.items():
        where = At(f"{at.path}.asns", table.loc).key(table, key)
        text = str(key).strip().upper().removeprefix("AS")
        number = int(text) if text.isdigit() else 0
        if not 1 <= number <= 2**32 - 1:
            r.report(where, f"not an AS number: {key!r} (1 to 4294967295, as 64496 or AS64496)")
            continue
        if number in found:
            r.report(where, f"AS{number} is mapped twice")
            continue
        tiers = _targets(r, targets, where, member)
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
        for cidr, targets in table.items():
            where = At(f"{at.path}.networks", table.loc).key(table, cidr)
            network = _cidr(r, cidr, where)
            tiers = _targets(r, targets, where, member)
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


def _min_healthy(r: Reader, m: MarkedDict, at: At) -> dict[str, Any]:
    """``min_healthy`` as ``Pool`` keyword arguments: a count (1 or more) or
    a percentage of the members, written ``"50%"`` (above 0, at most 100)."""
    if "min_healthy" not in m:
        return {}
    value, where = m["min_healthy"], at.key(m, "min_healthy")
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            pct = -1.0
        if not 0 < pct <= 100:
            r.report(where, f"expected a percentage above 0 and at most 100%, got {value!r}")
            return {}
        return {"min_healthy_pct": pct}
    count = r.integer(value, where, 1)
    return {} if count is None else {"min_healthy": count}


def _policy(r: Reader, m: MarkedDict, at: At) -> PolicyName | None:
    """The pool's ``policy``; keys of other policies are reported."""
    r.fields(m, at, _EVERY_KEY, required=("policy",))
    text = r.text(m["policy"], at.key(m, "policy")) if "policy" in m else None
    policy = next((p for p in POLICIES if p == text), None)
    if text is not None and policy is None:
        r.report(at.key(m, "policy"),
                 f"unknown policy {text!r} (allowed: {', '.join(POLICIES)})")
    if policy is not None:
        for key in m:
            owners = [p for p, keys in POLICY_KEYS.items() if key in keys]
            if owners and policy not in owners:
                r.report(at.key(m, key), f"key {key!r} is only valid for policy "
                         f"{' or '.join(owners)} (this pool's policy is {policy})")
    return policy


class _OriginNames:
    """Reads the member names of one pool (``pool``): ``known`` (an origin
    declared in ``origins``, else another pool declared in ``pools``: a name
    is an origin's before a pool's), and ``member`` (in this pool's
    ``members``, once those are known)."""

    def __init__(self, r: Reader, origins: Mapping[str, object], pools: Mapping[str, object],
                 pool: str) -> None:
        self._r = r
        self._origins = origins
        self._pools = pools
        self._pool = pool
        self.members: tuple[str, ...] = ()

    def known(self, v: object, a: At) -> str | None:
        """A declared origin's name, or another pool's."""
        text = self._r.text(v, a)
        if text is None or text in self._origins:
            return text
        if text == self._pool:
            self._r.report(a, "a pool cannot be a member of itself")
            return None
        if text not in self._pools:
            self._r.report(a, f"unknown origin or pool {text!r}")
            return None
        return text

    def member(self, v: object, a: At) -> str | None:
        """The name of a member of this pool."""
        if (text := self.known(v, a)) is not None and text not in self.members:
            self._r.report(a, f"{text!r} is not a member of this pool "
                              f"(origins: {', '.join(self.members)})")
            return None
        return text


def _members(r: Reader, m: MarkedDict, at: At, policy: str | None,
             names: _OriginNames) -> tuple[tuple[str, ...], Tiers]:
    """The pool's origins and its tiers: one tier of ``origins``, or failover's
    ``tiers`` (whose origins, in order, are then the members)."""
    members: tuple[str, ...] = ()
    if "origins" in m:
        items = r.items(m["origins"], at.key(m, "origins"), names.known, "origin",
                        partial=True) or []
        members = _unique(r, items)
    elif policy not in (None, "failover"):
        r.report(at, "missing required key 'origins'")
    tiers: Tiers = (members,)
    if policy == "failover":
        if "tiers" not in m:
            r.report(at, "missing required key 'tiers' (failover pools list their tiers)")
        else:
            tiers = _targets(r, m["tiers"], at.key(m, "tiers"), names.known, nested=True)
            order = tuple(dict.fromkeys(n for tier in tiers for n in tier))
            if "origins" in m:
                for n in (n for n in members if n not in order):
                    r.report(at.key(m, "origins"), f"origin {n!r} is in no tier")
            members = order
    return members, tiers


def _geo(r: Reader, m: MarkedDict, at: At, member: Name,
         maps: dict[str, dict[str, Tiers]]) -> Tiers:
    """The ``countries`` and ``continents`` maps of a geo or latency pool into
    ``maps`` (code → tiers); returns its ``default`` tiers."""
    for key in maps:
        if key in m and (table := r.mapping(m[key], at.key(m, key))) is not None:
            for code, targets in table.items():
                where = At(f"{at.path}.{key}", table.loc).key(table, code)
                norm = region(r, key, code, where)
                if norm is not None and norm in maps[key]:
                    r.report(where, f"{norm} is mapped twice")
                elif norm is not None:
                    maps[key][norm] = _targets(r, targets, where, member)
    if "default" in m:
        return _targets(r, m["default"], at.key(m, "default"), member)
    return ()


def _latency(r: Reader, m: MarkedDict, at: At,
             vantages: Mapping[str, object]) -> dict[str, Any]:
    """The ``latency`` keys of pool ``m`` as ``Pool`` keyword arguments;
    ``vantages`` are the declared vantage names."""
    opt: dict[str, Any] = {}
    for key, table in (("vantage_countries", "countries"),
                       ("vantage_continents", "continents")):
        found: dict[str, str] = {}
        if key in m and (body := r.mapping(m[key], at.key(m, key))) is not None:
            for code, target in body.items():
                where = At(f"{at.path}.{key}", body.loc).key(body, code)
                norm = region(r, table, code, where)
                vantage = r.text(target, where)
                if norm is not None and norm in found:
                    r.report(where, f"{norm} is mapped twice")
                elif vantage is not None and vantage not in vantages:
                    declared = ", ".join(vantages) or "none declared"
                    r.report(where, f"unknown vantage {vantage!r} (vantages: {declared})")
                elif norm is not None and vantage is not None:
                    found[norm] = vantage
        opt[key] = MappingProxyType(found)
    if "switch_margin" in m:
        pct = r.number(m["switch_margin"], at.key(m, "switch_margin"), "percent", 100)
        opt["switch_margin_pct"] = pct
    if "switch_margin_ms" in m:
        opt["switch_margin_ms"] = r.number(m["switch_margin_ms"],
                                           at.key(m, "switch_margin_ms"), "milliseconds")
    return opt


def _fallback(r: Reader, m: MarkedDict, at: At, name: str, pools: Mapping[str, object]) -> str:
    """The pool's ``fallback``: ``all`` (the default), ``none`` or another pool."""
    fallback = "all"
    if "fallback" in m and (fb := r.text(m["fallback"], at.key(m, "fallback"))):
        fallback = fb
        if fb == name:
            r.report(at.key(m, "fallback"), "a pool cannot fall back to itself")
        elif fb not in ("all", "none") and fb not in pools:
            r.report(at.key(m, "fallback"),
                     f"fallback {fb!r} is neither 'all', 'none' nor a known pool")
    return fallback


def _unique(r: Reader, items: Iterable[tuple[str, At]]) -> tuple[str, ...]:
    """The names in order, each once; a repeat is reported."""
    seen: dict[str, None] = {}
    for n, a in items:
        if n in seen:
            r.report(a, f"origin {n!r} is listed twice")
        seen[n] = None
    return tuple(seen)


def _targets(r: Reader, value: object, at: At, name: Name, nested: bool = False) -> Tiers:
    """Ordered tiers from an origin name, a list of names (one tier) or a list
    of lists (ordered tiers); with ``nested`` (failover ``tiers``) every item
    of the list is one tier, a name or a list of names. An origin may appear
    once."""
    tiers: list[list[tuple[str, At]]] = []
    if not isinstance(value, MarkedList):
        tiers = [[(n, at)]] if (n := name(value, at)) is not None else []
    elif not value:
        r.report(at, "expected at least one origin, got an empty list")
    elif nested or all(isinstance(v, MarkedList) for v in value):
        tiers = [r.items(tier, at.item(value, i), name, "origin", partial=True) or []
                 for i, tier in enumerate(value)]
    elif any(isinstance(v, MarkedList) for v in value):
        r.report(at, "mix of names and lists: give one tier (a list of names) "
                     "or ordered tiers (a list of lists)")
    else:
        tiers = [r.items(value, at, name, "origin", partial=True) or []]
    _unique(r, (pair for tier in tiers for pair in tier))
    return tuple(tuple(n for n, _ in tier) for tier in tiers)


def fallback_cycles(r: Reader, pools: Mapping[str, Pool | None],
                    defs: Mapping[str, tuple[Any, At]]) -> None:
    """Report each cycle of ``fallback`` pools once, at its first pool's
    ``fallback`` key; ``defs`` are the pools' mappings as written."""
    reported: set[str] = set()
    for start, found in pools.items():
        chain, cur = [start], found
        while cur is not None and cur.fallback in pools and cur.fallback not in chain:
            chain.append(cur.fallback)
            cur = pools[cur.fallback]
        if (cur is not None and cur.fallback == start and len(chain) > 1
                and not reported & set(chain)):
            reported.update(chain)
            m, at = defs[start]
            r.report(at.key(m, "fallback"), f"fallback cycle: {' -> '.join([*chain, start])}")


def tree_cycles(r: Reader, pools: Mapping[str, Pool | None], defs: Mapping[str, tuple[Any, At]],
                origins: Mapping[str, object]) -> None:
    """Report each cycle of member pools once (at its first pool's
    ``origins`` or ``tiers``) and each pool whose tree is deeper than
    ``MAX_TREE_DEPTH`` pools; ``origins`` are the declared origin names (a
    name is an origin's before a pool's)."""
    def children(name: str) -> list[str]:
        found = pools.get(name)
        return [] if found is None else [n for n in found.origins
                                         if n not in origins and n in pools]

    def where(name: str) -> At:
        m, at = defs[name]
        key = "tiers" if "tiers" in m else "origins"
        return at.key(m, key) if key in m else at

    reported: set[str] = set()
    depth: dict[str, int] = {}

    def walk(name: str, path: list[str]) -> int:
        if name in depth:
            return depth[name]
        if name in path:
            cycle = path[path.index(name):]
            if not reported & set(cycle):
                reported.update(cycle)
                r.report(where(cycle[0]), f"pool cycle: {' -> '.join([*cycle, cycle[0]])}")
            return 0
        below = max((walk(c, [*path, name]) for c in children(name)), default=0)
        depth[name] = below + 1
        return depth[name]

    for name in pools:
        if walk(name, []) > MAX_TREE_DEPTH and name not in reported:
            r.report(where(name), f"tree of pools {depth[name]} deep (at most {MAX_TREE_DEPTH})")
