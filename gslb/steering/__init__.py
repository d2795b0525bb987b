"""Steering: which origins answer a GSLB name for one client.

``POLICIES`` (stateless policy objects) and ``BOUND_POLICIES`` (policies
built per pool and address family, because they keep state: ``latency``'s
anti-flap memory) are the explicit registry of policy names
(``Pool.policy``): one place, no magic. The DNS side builds one
:class:`Steering` per loaded config (rebuild it on reload, which resets that
state) and calls :meth:`Steering.choose` per query.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from typing import Protocol

from gslb.config.model import Origin, Pool, Vantage
from gslb.health.view import HealthView
from gslb.steering.all import AllPolicy
from gslb.steering.base import Client, Policy, Selection
from gslb.steering.failover import FailoverPolicy
from gslb.steering.fallback import Choice, FallbackLog, addresses_of, fall_back
from gslb.steering.fallback import log as steering_log
from gslb.steering.geo import GeoPolicy
from gslb.steering.latency import LatencyPolicy, VantageFinder
from gslb.steering.weighted import WeightedPolicy

__all__ = ["BOUND_POLICIES", "POLICIES", "Choice", "Client", "Policy", "Selection", "Steering"]

POLICIES: dict[str, Policy] = {
    "failover": FailoverPolicy(),
    "weighted": WeightedPolicy(),
    "geo": GeoPolicy(),
    "all": AllPolicy(),
}
"""Policy name (``Pool.policy``) → the stateless object that selects."""

class BoundPolicy(Protocol):
    """How a policy bound to one (pool, family) is built:
    ``(pool, candidates of one family, the config's vantages, *, logger)``;
    ``logger`` is where the policy logs its decisions, None for nowhere."""

    def __call__(self, pool: Pool, candidates: Sequence[Origin], finder: VantageFinder, *,
                 logger: logging.Logger | None) -> Policy: ...


BOUND_POLICIES: dict[str, BoundPolicy] = {
    "latency": LatencyPolicy,
}
"""Policy name → how a :class:`Steering` builds its object for one (pool,
family): these keep state (or precompute per pool), so each Steering holds
its own."""


class _Plan:
    """What a query needs of one pool, computed once per config: candidates
    and the policy object per address family."""

    __slots__ = ("p4", "p6", "pool", "v4", "v6")

    def __init__(self, pool: Pool, members: tuple[Origin, ...]) -> None:
        self.pool = pool
        self.v4 = tuple(o for o in members if o.ipv4)
        self.v6 = tuple(o for o in members if o.ipv6)
        self.p4: Policy
        self.p6: Policy


class Steering:
    """Steering for one loaded config: per-pool candidate lists per address
    family are computed here, so a query does little more than ask the
    policy. Holds the fallback log state (:class:`FallbackLog`) and the
    ``latency`` anti-flap memory (per pool, family and vantage: a new
    Steering, as on reload, starts afresh); answers are not cached here.

    ``vantages``: the config's probe vantages (``Config.vantages``), which
    ``latency`` pools steer by; none means only the embedded prober's
    ``local`` vantage. ``bound``: policies built per (pool, family).
    ``quiet``: log nothing, neither fallback transitions nor ``latency``
    switches (the ``gslb.steering`` logger otherwise): for a Steering that
    previews answers (status pages) beside the one that serves them, whose
    log alone tells what clients got. ``in_fallback`` is kept either way.

    Raises ValueError when a pool names an unknown origin, policy or
    fallback pool (the config validator should have caught it).
    """

    def __init__(
        self,
        pools: Mapping[str, Pool],
        origins: Mapping[str, Origin],
        policies: Mapping[str, Policy] = POLICIES,
        rng: random.Random | None = None,
        vantages: Mapping[str, Vantage] | None = None,
        bound: Mapping[str, BoundPolicy] = BOUND_POLICIES,
        *,
        quiet: bool = False,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        logger = None if quiet else steering_log
        self._log = FallbackLog(logger)
        self._plans: dict[str, _Plan] = {}
        finder = VantageFinder(vantages or {})
        self.vantages: tuple[str, ...] = finder.names
        """The vantage names ``latency`` pools steer by (``("local",)`` when
        none were given)."""
        for name, pool in pools.items():
            unknown = [n for n in pool.origins if n not in origins]
            if unknown:
                raise ValueError(f"pool {name}: unknown origins {unknown}")
            if pool.policy not in policies and pool.policy not in bound:
                raise ValueError(f"pool {name}: unknown policy {pool.policy!r}")
            if pool.fallback not in ("all", "none") and pool.fallback not in pools:
                raise ValueError(f"pool {name}: unknown fallback pool {pool.fallback!r}")
            plan = _Plan(pool, tuple(origins[n] for n in pool.origins))
            if isinstance(policies.get(pool.policy), WeightedPolicy):
                # its memo of healthy candidates belongs to one (pool, family)
                plan.p4, plan.p6 = WeightedPolicy(), WeightedPolicy()
            elif pool.policy in policies:
                plan.p4 = plan.p6 = policies[pool.policy]
            else:
                make = bound[pool.policy]
                plan.p4 = make(pool, plan.v4, finder, logger=logger)
                plan.p6 = make(pool, plan.v6, finder, logger=logger)
            self._plans[name] = plan
        self._reads_rtt = any(p.p4.reads_rtt or p.p6.reads_rtt for p in self._plans.values())

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
        when no member is healthy, the pool's fallback decides (see
        :mod:`gslb.steering.fallback`). Raises KeyError for an unknown pool
        and ValueError for a family other than 4 or 6.
        """
        if family != 4 and family != 6:
            raise ValueError(f"family must be 4 or 6, not {family!r}")
        return self._choose(pool_name, family, client, health,
                            rng if rng is not None else self._rng, 0)

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
        if family == 4:
            candidates, policy = plan.v4, plan.p4
        else:
            candidates, policy = plan.v6, plan.p6
        if not candidates:
            return Choice("nodata", (), 0, pool_name, False,
                          f"no IPv{family} origin in pool {pool_name}")
        sel = policy.select(plan.pool, candidates, client, health, rng)
        if sel.origins:
            self._log.healthy(pool_name, family)
            return Choice("answer", addresses_of(sel.origins, family), sel.scope, pool_name,
                          False, sel.reason, sel.basis)
        return fall_back(plan.pool, family, policy, candidates, client, health, rng,
                         scope=sel.scope, basis=sel.basis, depth=depth, choose=self._choose,
                         flog=self._log)

