"""Steering: which origins answer a GSLB name for one client.

``POLICIES`` is the explicit registry of policy names (``Pool.policy``) to
policy objects: one place, no magic. The DNS side builds one
:class:`Steering` per loaded config (rebuild it on reload) and calls
:meth:`Steering.choose` per query; :func:`choose` is the same as a one-shot
function.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from gslb.config.model import Origin, Pool
from gslb.health.view import HealthView
from gslb.steering.all import AllPolicy
from gslb.steering.base import Client, Policy, Selection
from gslb.steering.failover import FailoverPolicy
from gslb.steering.fallback import Choice, FallbackLog, addresses_of, fall_back
from gslb.steering.geo import GeoPolicy
from gslb.steering.weighted import WeightedPolicy

__all__ = ["POLICIES", "Choice", "Client", "Policy", "Selection", "Steering", "choose"]

POLICIES: dict[str, Policy] = {
    "failover": FailoverPolicy(),
    "weighted": WeightedPolicy(),
    "geo": GeoPolicy(),
    "all": AllPolicy(),
}
"""Policy name (``Pool.policy``) → the stateless object that selects."""


class _Plan:
    """What a query needs of one pool, computed once per config."""

    __slots__ = ("policy", "pool", "v4", "v6")

    def __init__(self, pool: Pool, policy: Policy, members: tuple[Origin, ...]) -> None:
        self.pool = pool
        self.policy = policy
        self.v4 = tuple(o for o in members if o.ipv4)
        self.v6 = tuple(o for o in members if o.ipv6)


class Steering:
    """Steering for one loaded config: per-pool candidate lists per address
    family are computed here, so a query does little more than ask the
    policy. Holds the fallback log state (:class:`FallbackLog`); answers are
    not cached here.

    Raises ValueError when a pool names an unknown origin, policy or
    fallback pool (the config validator should have caught it).
    """

    def __init__(
        self,
        pools: Mapping[str, Pool],
        origins: Mapping[str, Origin],
        policies: Mapping[str, Policy] = POLICIES,
        rng: random.Random | None = None,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._log = FallbackLog()
        self._plans: dict[str, _Plan] = {}
        for name, pool in pools.items():
            unknown = [n for n in pool.origins if n not in origins]
            if unknown:
                raise ValueError(f"pool {name}: unknown origins {unknown}")
            if pool.policy not in policies:
                raise ValueError(f"pool {name}: unknown policy {pool.policy!r}")
            if pool.fallback not in ("all", "none") and pool.fallback not in pools:
                raise ValueError(f"pool {name}: unknown fallback pool {pool.fallback!r}")
            members = tuple(origins[n] for n in pool.origins)
            self._plans[name] = _Plan(pool, policies[pool.policy], members)

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
        candidates = plan.v4 if family == 4 else plan.v6
        if not candidates:
            return Choice("nodata", (), 0, pool_name, False,
                          f"no IPv{family} origin in pool {pool_name}")
        sel = plan.policy.select(plan.pool, candidates, client, health, rng)
        if sel.origins:
            self._log.healthy(pool_name, family)
            return Choice("answer", addresses_of(sel.origins, family), sel.scope, pool_name,
                          False, sel.reason)
        return fall_back(plan.pool, family, plan.policy, candidates, client, health, rng,
                         scope=sel.scope, depth=depth, choose=self._choose, flog=self._log)


def choose(
    pools: Mapping[str, Pool],
    origins: Mapping[str, Origin],
    pool_name: str,
    family: int,
    client: Client,
    health: HealthView,
    rng: random.Random | None = None,
) -> Choice:
    """One-shot :meth:`Steering.choose`: builds a :class:`Steering` per
    call, so it costs more and logs every fallback it meets. Servers keep
    one ``Steering`` per config instead. Same errors as the method (plus
    ValueError from the constructor)."""
    return Steering(pools, origins).choose(pool_name, family, client, health, rng)
