"""The ``pools`` section: a policy over members (origins, or other pools: a
tree), ``max_answers``, ``weight`` and ``min_healthy`` (a pool as a member),
and ``fallback`` (to ``all``, ``none`` or another pool, without cycles);
trees without cycles, at most ``MAX_TREE_DEPTH`` pools deep. Each policy's
own keys (failover ``tiers``, the geo maps, the latency vantage keys) are
read by the policy itself (``gslb.steering.registry``), so this module is
above steering in the layers and compares no policy name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gslb.config.loader import MarkedDict
from gslb.config.model import DEFAULT_ORDER, MAX_TREE_DEPTH, ORDERS, Pool
from gslb.config.validate.reader import At, Reader
from gslb.config.validate.targets import PoolKeys, min_healthy, one_tier
from gslb.config.validate.zones import MAX_TTL
from gslb.steering.base import PolicySpec
from gslb.steering.registry import REGISTRY

POOL_KEYS = ("policy", "origins", "max_answers", "fallback", "weight", "min_healthy", "order",
             "slow_start", "ttl_when_degraded")
"""Keys every pool accepts; each policy adds its own (``PolicySpec.keys``)."""
_POLICY_KEYS = tuple(dict.fromkeys(k for spec in REGISTRY.values() for k in spec.keys))
_EVERY_KEY = POOL_KEYS + _POLICY_KEYS


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
    spec = _policy(r, m, at)
    names = _OriginNames(r, origins, pools, name)
    keys = PoolKeys(r, m, at, names.known, names.member, vantages)
    members, tiers = (spec.members if spec is not None else one_tier)(keys)
    names.members = members
    own = spec.read(keys) if spec is not None and spec.read is not None else {}
    max_answers = (r.integer(m["max_answers"], at.key(m, "max_answers"), 1)
                   if "max_answers" in m else 1)
    weight = r.integer(m["weight"], at.key(m, "weight"), 1) if "weight" in m else 1
    healthy = min_healthy(r, m, at)
    if "slow_start" in m:
        healthy["slow_start_s"] = r.seconds(m["slow_start"], at.key(m, "slow_start"))
    if "ttl_when_degraded" in m:  # seconds, capped at each record's ttl (degraded_ttl)
        healthy["ttl_when_degraded"] = r.integer(
            m["ttl_when_degraded"], at.key(m, "ttl_when_degraded"), 0, MAX_TTL)
    fallback = _fallback(r, m, at, name, pools)
    order = _order(r, m, at)
    if r.count > before or spec is None:
        return None
    return Pool(name=name, policy=spec.name, origins=members, tiers=tiers,
                max_answers=max_answers or 1, fallback=fallback, weight=weight or 1,
                order=order, **healthy, **own)


def _order(r: Reader, m: MarkedDict, at: At) -> str:
    """The pool's ``order``, one of ``ORDERS`` (``DEFAULT_ORDER`` when not
    given)."""
    if "order" not in m:
        return DEFAULT_ORDER
    text = r.text(m["order"], at.key(m, "order"))
    if text is not None and text not in ORDERS:
        r.report(at.key(m, "order"), f"unknown order {text!r} (allowed: {', '.join(ORDERS)})")
    return text if text in ORDERS else DEFAULT_ORDER






def _policy(r: Reader, m: MarkedDict, at: At) -> PolicySpec | None:
    """The pool's ``policy`` (its spec); keys of other policies are reported."""
    r.fields(m, at, _EVERY_KEY, required=("policy",))
    text = r.text(m["policy"], at.key(m, "policy")) if "policy" in m else None
    spec = REGISTRY.get(text) if text is not None else None
    if text is not None and spec is None:
        r.report(at.key(m, "policy"),
                 f"unknown policy {text!r} (allowed: {', '.join(REGISTRY)})")
    if spec is not None:
        for key in m:
            owners = [p for p, other in REGISTRY.items() if key in other.keys]
            if owners and key not in spec.keys:
                r.report(at.key(m, key), f"key {key!r} is only valid for policy "
                         f"{' or '.join(owners)} (this pool's policy is {spec.name})")
    return spec


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
