"""Steering: which origins answer a GSLB name for one client.

Policies are looked up by name (``Pool.policy``) in
:data:`gslb.steering.registry.REGISTRY`, the one place that lists them;
each policy's module holds its selection, its config keys and its status
fields. The DNS side builds one :class:`Steering` per loaded config (rebuild
it on reload, which resets the policies' state, such as ``latency``'s
anti-flap memory) and calls :meth:`Steering.choose` per query.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import cast

from gslb.config.model import MAX_TREE_DEPTH, Origin, Pool, Vantage
from gslb.health.view import HealthView
from gslb.steering.base import (
    Basis,
    Client,
    Member,
    Policy,
    PolicySpec,
    PoolMember,
    Selection,
    VantageFinder,
    basis_names,
)
from gslb.steering.fallback import Choice, FallbackLog, addresses_of, fall_back
from gslb.steering.fallback import log as steering_log
from gslb.steering.registry import REGISTRY
from gslb.steering.trace import Trace

__all__ = ["DEGRADED_DOWN", "DEGRADED_RAMP", "HEALTHY", "Choice", "Client", "Policy",
           "Selection", "Steering"]

#: What :meth:`Steering.degraded` says of an answer: not degraded; degraded
#: until the health generation moves (a fallback, a member down); degraded
#: by a ramp, which moves with time.
HEALTHY, DEGRADED_DOWN, DEGRADED_RAMP = 0, 1, 2

#: A choice whose order came from a draw (random already) or is a ranking
#: (best first) is not rotated by its pool's ``order``.
_KEEP_ORDER = Basis.DRAW | Basis.RANKED


class _Plan:
    """What a query needs of one pool, computed once per config: its
    members per address family (the origins with an address of the family
    and the member pools with some origin of it), the policy object per
    family, and whether any member is a pool (``nested``)."""

    __slots__ = ("flat", "nested", "p4", "p6", "pool", "v4", "v6")

    def __init__(self, pool: Pool, v4: tuple[Member, ...], v6: tuple[Member, ...]) -> None:
        self.pool = pool
        self.v4 = v4
        self.v6 = v6
        self.nested = any(isinstance(m, PoolMember) for m in (*v4, *v6))
        self.flat = not self.nested and pool.min_healthy == 1 and pool.min_healthy_pct is None
        """Origins only, no threshold: the policy's selection is the answer."""
        self.p4: Policy
        self.p6: Policy

    def need(self, members: int) -> int:
        """Healthy members below which the pool counts as down (at least 1):
        ``min_healthy``, or ``min_healthy_pct`` percent of ``members``."""
        pool = self.pool
        need = pool.min_healthy
        if pool.min_healthy_pct is not None:
            need = max(need, math.ceil(pool.min_healthy_pct * members / 100 - 1e-9))
        return max(1, need)


class _TreeView:
    """The health view a tree pool's policy reads: origins as ``base`` says;
    a member pool is up while it has at least its ``min_healthy`` healthy
    members (recursively), and its smoothed RTT from a vantage is the lowest
    of its healthy members'. ``generation`` is the base view's."""

    __slots__ = ("base", "family", "steering")

    def __init__(self, steering: Steering, base: HealthView, family: int) -> None:
        self.steering = steering
        self.base = base
        self.family = family

    @property
    def generation(self) -> int:
        return self.base.generation

    @property
    def ramping(self) -> bool:
        return self.base.ramping

    def weight_factor(self, name: str, now: float | None = None) -> float:
        """An origin's as ``base`` says; a member pool's is 1.0."""
        if name in self.steering._origins:
            return self.base.weight_factor(name, now)
        return 1.0

    def is_up(self, name: str) -> bool:
        if name in self.steering._origins:  # a name is an origin's before a pool's
            return self.base.is_up(name)
        return self.steering._pool_up(name, self.family, self.base)

    def srtt_ms(self, name: str, vantage: str) -> float | None:
        if name in self.steering._origins:
            return self.base.srtt_ms(name, vantage)
        plan = self.steering._plans[name]
        found = [ms for m in (plan.v4 if self.family == 4 else plan.v6)
                 if self.is_up(m.name) and (ms := self.srtt_ms(m.name, vantage)) is not None]
        return min(found, default=None)

    def load(self, name: str) -> float | None:
        """An origin's as ``base`` says; a member pool reports none."""
        return self.base.load(name) if name in self.steering._origins else None


class Steering:
    """Steering for one loaded config: per-pool member lists per address
    family are computed here, so a query does little more than ask the
    policy. Holds the fallback log state (:class:`FallbackLog`) and the
    ``latency`` anti-flap memory (per pool, family and vantage: a new
    Steering, as on reload, starts afresh); answers are not cached here.

    A pool's members may be pools (a tree, at most ``MAX_TREE_DEPTH``
    deep): a member pool is up while at least its ``min_healthy`` members
    are; when chosen, it answers with its own policy, and the answer keeps
    the most specific ECS scope, everything each choice depended on and
    every reason along the path. A pool below its own ``min_healthy``
    follows its ``fallback``.

    ``vantages``: the config's probe vantages (``Config.vantages``), which
    ``latency`` pools steer by; none means only the embedded prober's
    ``local`` vantage. ``registry``: the policies by name (default
    :data:`gslb.steering.registry.REGISTRY`).
    ``quiet``: log nothing, neither fallback transitions nor ``latency``
    switches (the ``gslb.steering`` logger otherwise): for a Steering that
    previews answers (status pages) beside the one that serves them, whose
    log alone tells what clients got. ``in_fallback`` is kept either way.

    Raises ValueError when a pool names an unknown origin or pool, policy
    or fallback pool, or its members form a cycle or a tree deeper than
    ``MAX_TREE_DEPTH`` (the config validator should have caught it).
    """

    def __init__(
        self,
        pools: Mapping[str, Pool],
        origins: Mapping[str, Origin],
        rng: random.Random | None = None,
        vantages: Mapping[str, Vantage] | None = None,
        registry: Mapping[str, PolicySpec] = REGISTRY,
        *,
        quiet: bool = False,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        logger = None if quiet else steering_log
        self._log = FallbackLog(logger)
        self._plans: dict[str, _Plan] = {}
        self._origins = frozenset(origins)
        self._up: dict[tuple[str, int], tuple[HealthView, int, bool]] = {}
        self._down: dict[tuple[str, int], tuple[HealthView, int, bool]] = {}
        """Per (pool, family): whether some origin of its tree is down, per view and generation."""
        self._leaves: dict[tuple[str, int], tuple[str, ...]] = {}
        """Per (pool, family): the origins of its tree with an address of the family."""
        self._shuffles = {name: pool.order == "random" for name, pool in pools.items()
                          if pool.order != "fixed"}
        """Pools whose answers rotate → whether randomly (``Pool.order``)."""
        self._turns: dict[tuple[str, int], int] = {}
        """Per (pool, family) with ``order: cyclic``: answers given so far."""
        finder = VantageFinder(vantages or {})
        self.vantages: tuple[str, ...] = finder.names
        """The vantage names ``latency`` pools steer by (``("local",)`` when
        none were given)."""
        families = _families(pools, origins)
        self._pools = pools
        self._families = families
        for name, pool in pools.items():
            if pool.policy not in registry:
                raise ValueError(f"pool {name}: unknown policy {pool.policy!r}")
            if pool.fallback not in ("all", "none") and pool.fallback not in pools:
                raise ValueError(f"pool {name}: unknown fallback pool {pool.fallback!r}")
            members: list[tuple[Member, frozenset[int]]] = []
            for n in pool.origins:
                if n in origins:  # a name is an origin's before a pool's
                    o = origins[n]
                    members.append((o, frozenset(f for f, a in ((4, o.ipv4), (6, o.ipv6)) if a)))
                else:
                    members.append((PoolMember(n, pools[n].weight), families[n]))
            plan = _Plan(pool, tuple(m for m, f in members if 4 in f),
                         tuple(m for m, f in members if 6 in f))
            build = registry[pool.policy].build
            plan.p4 = build(pool, plan.v4, finder, logger)
            plan.p6 = build(pool, plan.v6, finder, logger)
            self._plans[name] = plan
        self._reads_rtt = any(p.p4.reads_rtt or p.p6.reads_rtt for p in self._plans.values())

    def families(self, pool: str) -> frozenset[int]:
        """The address families (4, 6) an answer of ``pool`` can hold:
        those some origin of its tree has, or of the pools its fallback
        leads to. Raises ``KeyError`` for an unknown pool."""
        found: set[int] = set()
        seen: set[str] = set()
        name: str | None = pool
        while name is not None and name not in seen:
            seen.add(name)
            found |= self._families[name]
            fallback = self._pools[name].fallback
            name = fallback if fallback in self._pools else None
        return frozenset(found)

    @property
    def reads_rtt(self) -> bool:
        """Whether some pool's policy steers by smoothed RTTs (its policy
        object's ``reads_rtt``, as ``latency``'s): only then do answers read
        ``HealthView.srtt_ms``, and a worker process needs those RTTs."""
        return self._reads_rtt

    @property
    def in_fallback(self) -> frozenset[tuple[str, int]]:
        """(pool, family) pairs whose last query found no healthy origin."""
        return self._log.in_fallback

    def pool_up(self, name: str, family: int, health: HealthView) -> bool | None:
        """Whether pool ``name`` has at least its ``min_healthy`` healthy
        members of ``family`` (4 or 6) under ``health``, whatever the client:
        False means its answers of that family come from its fallback
        (what alerts report, on every nameserver alike, without a query);
        None when it has no member of that family. Raises ``KeyError`` for
        an unknown pool."""
        plan = self._plans[name]
        if not (plan.v4 if family == 4 else plan.v6):
            return None
        return self._pool_up(name, family, health)

    def choose(
        self,
        pool_name: str,
        family: int,
        client: Client,
        health: HealthView,
        rng: random.Random | None = None,
    ) -> Choice:
        """Choose the answer for ``pool_name`` and ``family`` (4 for A, 6 for
        AAAA) for ``client``, reading health from ``health``; ``rng``
        defaults to this object's own generator.

        NODATA when the pool has no member with an address of the family;
        when no member is healthy (or fewer than ``min_healthy``), the pool's
        fallback decides (see :mod:`gslb.steering.fallback`). Raises
        KeyError for an unknown pool and ValueError for a family other than
        4 or 6.
        """
        if family != 4 and family != 6:
            raise ValueError(f"family must be 4 or 6, not {family!r}")
        rng = rng if rng is not None else self._rng
        choice = self._choose(pool_name, family, client, health, rng, 0)
        if (pool_name in self._shuffles and len(choice.addresses) > 1
                and not choice.basis & _KEEP_ORDER):
            ordered = self._ordered(pool_name, family, choice, rng)
            if client.trace is not None:
                client.trace.add("order", pool=pool_name, order=self._pools[pool_name].order,
                                 before=list(choice.addresses), after=list(ordered.addresses))
            return ordered
        return choice

    def _ordered(self, pool_name: str, family: int, choice: Choice,
                 rng: random.Random) -> Choice:
        """``choice`` (two or more addresses, in the order the selection
        gave) in the order ``pool_name``'s ``order`` asks: ``cyclic``, the
        k-th answer for (pool, family) starts at address k mod n (RFC 1794's
        round robin, as BIND's ``rrset-order cyclic``); ``random``, shuffled.
        A tree's ``leaves`` follow their addresses. An order a weighted draw
        made is left alone (the caller's test): it is random already; so is
        a ranking (``Basis.RANKED``: fastest or best-hashed first)."""
        addresses, leaves = choice.addresses, choice.leaves
        n = len(addresses)
        shuffle = self._shuffles[pool_name]
        if shuffle:
            index = list(range(n))
            rng.shuffle(index)
            addresses = tuple([addresses[i] for i in index])
            leaves = tuple([leaves[i] for i in index]) if leaves else ()
        else:
            key = (pool_name, family)
            turn = self._turns.get(key, 0)
            self._turns[key] = turn + 1
            k = turn % n
            if k:
                addresses = addresses[k:] + addresses[:k]
                leaves = leaves[k:] + leaves[:k]
        # not dataclasses.replace: several times slower on this path
        return Choice(choice.kind, addresses, choice.scope, choice.pool, choice.fallback,
                      choice.reason, choice.basis, leaves, n, shuffle)

    def _choose(
        self,
        pool_name: str,
        family: int,
        client: Client,
        health: HealthView,
        rng: random.Random,
        depth: int,
    ) -> Choice:
        plan = self._plans[pool_name]
        candidates = plan.v4 if family == 4 else plan.v6
        trace = client.trace
        if trace is not None:
            trace.add("pool", pool=pool_name, policy=plan.pool.policy, family=family,
                      depth=depth, members=[m.name for m in candidates],
                      min_healthy=plan.need(len(candidates)), fallback=plan.pool.fallback)
        if not candidates:
            return Choice("nodata", (), 0, pool_name, False,
                          f"no IPv{family} origin in pool {pool_name}")
        why = None
        if plan.flat:  # no view to wrap, no member to expand
            policy = plan.p4 if family == 4 else plan.p6
            sel = policy.select(plan.pool, candidates, client, health, rng)
            if trace is not None:
                _selected(trace, pool_name, sel, candidates, health)
            if sel.members:
                self._log.healthy(pool_name, family)
                # a flat pool's members are origins
                chosen = cast("tuple[Origin, ...]", sel.members)
                return Choice("answer", addresses_of(chosen, family), sel.scope, pool_name,
                              False, sel.reason, sel.basis)
            scope, basis = sel.scope, sel.basis
        elif self._pool_up(pool_name, family, health):
            done = self._answer(plan, family, client, health, rng, depth)
            if done.kind == "answer":
                self._log.healthy(pool_name, family)
                return done
            scope, basis = done.scope, done.basis
        else:
            up, need = self._count(plan, family, health), plan.need(len(candidates))
            scope, basis = 0, Basis.NONE
            if trace is not None:
                shown = _TreeView(self, health, family) if plan.nested else health
                trace.add("pool_down", pool=pool_name, up=up, of=len(candidates), need=need,
                          members=[{"name": m.name, "up": shown.is_up(m.name)}
                                   for m in candidates])
            if up:
                why = (f"{up} of {len(candidates)} healthy in pool {pool_name}, below "
                       f"min_healthy {need}")
        return fall_back(plan.pool, family, client, health, rng, scope=scope, basis=basis,
                         why=why,
                         depth=depth, choose=self._choose, flog=self._log,
                         answer=lambda view: self._answer(plan, family, client, view, rng,
                                                          depth))

    def _answer(self, plan: _Plan, family: int, client: Client, health: HealthView,
                rng: random.Random, depth: int) -> Choice:
        """The pool's own answer under ``health`` (no fallback): its policy's
        selection, each chosen member pool answering in turn."""
        candidates = plan.v4 if family == 4 else plan.v6
        policy = plan.p4 if family == 4 else plan.p6
        view: HealthView = _TreeView(self, health, family) if plan.nested else health
        sel = policy.select(plan.pool, candidates, client, view, rng)
        name = plan.pool.name
        if client.trace is not None:
            _selected(client.trace, name, sel, candidates, view)
        if not sel.members:
            return Choice("nodata", (), sel.scope, name, False, sel.reason, sel.basis)
        addresses: list[str] = []
        leaves: list[str] = []
        scope, basis, reasons = sel.scope, sel.basis, [sel.reason]
        for member in sel.members:
            if isinstance(member, PoolMember):
                # no cycle and a bounded depth: the constructor checked the tree
                sub = self._choose(member.name, family, client, health, rng, depth)
                scope, basis = max(scope, sub.scope), basis | sub.basis
                reasons.append(f"pool {member.name}: {sub.reason}")
                for i, address in enumerate(sub.addresses):
                    addresses.append(address)
                    leaves.append(sub.leaves[i] if sub.leaves else sub.pool)
            elif isinstance(member, Origin):
                for address in (member.ipv4 if family == 4 else member.ipv6):
                    addresses.append(address)
                    leaves.append(name)
        unique = dict(zip(addresses, leaves, strict=True))  # RFC 2181 section 5: no duplicates
        if not unique:
            return Choice("nodata", (), scope, name, False, "; ".join(reasons), basis)
        return Choice("answer", tuple(unique), scope, name, False, " → ".join(reasons), basis,
                      tuple(unique.values()) if plan.nested else ())

    def degraded(self, choice: Choice, family: int, health: HealthView) -> int:
        """Whether ``choice`` (this Steering's answer for ``family`` under
        ``health``) is degraded, so that its TTL may be shortened
        (``ttl_when_degraded``, docs/steering.md "TTL that follows health"):

        * ``DEGRADED_DOWN`` when it came from a fallback (``choice.fallback``)
          or some origin of the answering pool's tree (``choice.pool``, every
          member with an address of ``family``: each could be in this answer)
          is down under ``health``: holds until ``health.generation`` moves;
        * else ``DEGRADED_RAMP`` when a ramping weight decided it
          (``Basis.RAMP``) or some origin of that tree ramps now (slow start,
          a drain's ramp: ``weight_factor`` below 1): moves with time, so
          the answer must not be reused;
        * else ``HEALTHY`` (0).

        Decided from what the selection reported and the health of the
        members it chose among, never from a policy's name. Raises
        ``KeyError`` for a pool this Steering does not know."""
        if choice.fallback:
            return DEGRADED_DOWN
        key = (choice.pool, family)
        generation = health.generation
        memo = self._down.get(key)
        if memo is None or memo[0] is not health or memo[1] != generation:
            leaves = self._tree_origins(choice.pool, family)
            # not all(): the package's submodule ``all`` (a policy) shadows it here
            memo = (health, generation, any(not health.is_up(o) for o in leaves))
            self._down[key] = memo
        if memo[2]:
            return DEGRADED_DOWN
        if choice.basis & Basis.RAMP:
            return DEGRADED_RAMP
        if health.ramping and any(health.weight_factor(o) < 1.0
                                  for o in self._tree_origins(choice.pool, family)):
            return DEGRADED_RAMP
        return HEALTHY

    def _tree_origins(self, name: str, family: int) -> tuple[str, ...]:
        """The origins of pool ``name``'s tree with an address of ``family``
        (each once, in declaration order), computed once."""
        found = self._leaves.get((name, family))
        if found is None:
            plan = self._plans[name]
            names: dict[str, None] = {}
            for member in (plan.v4 if family == 4 else plan.v6):
                if isinstance(member, PoolMember):
                    names.update(dict.fromkeys(self._tree_origins(member.name, family)))
                else:
                    names[member.name] = None
            found = self._leaves[(name, family)] = tuple(names)
        return found

    def _pool_up(self, name: str, family: int, health: HealthView) -> bool:
        """Whether pool ``name`` has at least its ``min_healthy`` healthy
        members of ``family`` under ``health`` (remembered per generation)."""
        generation = health.generation
        memo = self._up.get((name, family))
        if memo is not None and memo[0] is health and memo[1] == generation:
            return memo[2]
        plan = self._plans[name]
        members = plan.v4 if family == 4 else plan.v6
        up = self._count(plan, family, health) >= plan.need(len(members))
        self._up[(name, family)] = (health, generation, up)
        return up

    def _count(self, plan: _Plan, family: int, health: HealthView) -> int:
        """How many members of ``family`` of ``plan``'s pool are up."""
        view: HealthView = _TreeView(self, health, family) if plan.nested else health
        return sum(1 for m in (plan.v4 if family == 4 else plan.v6) if view.is_up(m.name))


def _selected(trace: Trace, pool: str, sel: Selection, candidates: Sequence[Member],
              view: HealthView) -> None:
    """A ``selected`` event: what ``pool``'s policy chose (``chosen``,
    ``reason``, ``scope``, ``basis`` flag names) and each candidate as the
    view it read saw it (``members``: ``name``, ``up``)."""
    trace.add("selected", pool=pool, chosen=[m.name for m in sel.members], reason=sel.reason,
              scope=sel.scope, basis=basis_names(sel.basis),
              members=[{"name": m.name, "up": view.is_up(m.name)} for m in candidates])


def _families(pools: Mapping[str, Pool],
              origins: Mapping[str, Origin]) -> dict[str, frozenset[int]]:
    """Per pool, the address families (4, 6) some origin of its tree has.
    Raises ValueError for an unknown member, a cycle or a tree deeper than
    ``MAX_TREE_DEPTH``."""
    found: dict[str, frozenset[int]] = {}

    def walk(name: str, path: tuple[str, ...]) -> frozenset[int]:
        if name in found:
            return found[name]
        if name in path:
            raise ValueError(f"pool cycle: {' -> '.join((*path, name))}")
        if len(path) >= MAX_TREE_DEPTH:
            raise ValueError(f"pool {path[0]}: tree deeper than {MAX_TREE_DEPTH} pools")
        families: set[int] = set()
        for member in pools[name].origins:
            if member in origins:  # a name is an origin's before a pool's
                families |= {f for f, a in ((4, origins[member].ipv4),
                                            (6, origins[member].ipv6)) if a}
            elif member in pools:
                families |= walk(member, (*path, name))
            else:
                raise ValueError(f"pool {name}: unknown origin or pool {member!r}")
        found[name] = frozenset(families)
        return found[name]

    for name in pools:
        walk(name, ())
    return found
