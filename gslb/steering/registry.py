"""Every steering policy, by the name a pool's ``policy:`` gives: one line
each. A policy lives in one module (its selection, its config keys and
their reading, its status fields) that exports ``SPEC``, a
:class:`gslb.steering.base.PolicySpec`; adding a policy is that module and
one line here (docs/architecture.md, "Adding a policy")."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gslb.steering import all as all_policy
from gslb.steering import failover, geo, latency, least_loaded, weighted
from gslb.steering import hash as hash_policy
from gslb.steering.base import PolicySpec

REGISTRY: Mapping[str, PolicySpec] = MappingProxyType({spec.name: spec for spec in (
    failover.SPEC,
    weighted.SPEC,
    geo.SPEC,
    latency.SPEC,
    all_policy.SPEC,
    hash_policy.SPEC,
    least_loaded.SPEC,
)})
"""Policy name → its :class:`gslb.steering.base.PolicySpec`."""

__all__ = ["REGISTRY"]
