"""``latency``: the origin with the lowest smoothed RTT measured from the
vantage that stands for the client (Cloudflare's dynamic steering, from our
own probes).

Per query:

1. **vantage**: with one vantage (or none declared: the embedded prober's
   ``local``) it stands for every client. Otherwise the client (ECS subnet,
   else source address) is located: its country in
   ``pool.vantage_countries``, else its continent in
   ``pool.vantage_continents``, else the declared vantage nearest to it by
   great-circle distance (vantages without a location are not eligible).
2. **RTT**: among the healthy candidates with a smoothed RTT from that
   vantage (``HealthView.srtt_ms``: None when the vantage is not fresh,
   says the origin is down, or never measured it), the ``max_answers`` fastest, fastest first,
   subject to the anti-flap rule below. Candidates without an RTT (no check)
   are not eligible here.
3. **fallback**: no vantage for the client, or no RTT data from it: the
   ``geo`` rules on the pool's ``countries``/``continents``/``default``, then
   nearest origin by distance, then any healthy (:mod:`gslb.steering.geo`).

**No flapping.** Per (pool, address family, vantage) the chosen origins are
remembered. A remembered origin stays while it is a healthy candidate with
an RTT; an outsider replaces the slowest remembered one only when it is
faster by more than ``pool.switch_margin_pct`` percent of that one's RTT AND
by more than ``pool.switch_margin_ms`` milliseconds. The memory lives in the
policy object, which a :class:`gslb.steering.Steering` builds per (pool,
family): a config reload starts afresh. It moves only when queries come.
A switch is logged at INFO (``gslb.steering``), unless the policy was built
with ``logger=None``.

**What it depended on**: every answer reports ``Basis.RTT`` (even one the
geo fallback gave: RTT data arriving would change it, and RTTs move without
the health generation moving), ``Basis.CLIENT`` when the vantage or the geo
fallback depends on where the client is, and the geo fallback's draw.

**ECS scope** (RFC 7871 section 7.2.1): ``client.geo_scope`` (the deciding
prefix, as for ``geo``) when the answer depends on where the client is;
0 when it cannot: one vantage stands for every client and it answered from
RTTs, or (no usable vantage for anyone, or the one vantage has no data) the
geo fallback cannot tell clients apart (no ``countries``/``continents`` and
no candidate with a location). An unlocated client of a pool whose vantage
depends on location gets the geo scope, as in ``geo``: being unlocatable is
a fact about its subnet.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from gslb.config.loader import MarkedDict
from gslb.config.model import Pool
from gslb.config.validate.places import region
from gslb.config.validate.reader import At, Reader
from gslb.config.validate.targets import PoolKeys
from gslb.health.view import HealthView
from gslb.steering.base import (
    Basis,
    Client,
    Member,
    Policy,
    PolicySpec,
    Selection,
    VantageFinder,
    stick,
)
from gslb.steering.geo import GEO_KEYS, GeoPolicy, geo_status, read_geo

log = logging.getLogger("gslb.steering")


class LatencyPolicy:
    """Lowest smoothed RTT from the client's vantage, with anti-flap
    memory (see the module doc). Bound to one pool and one address family:
    ``candidates`` are the pool's members with an address of that family
    (the same sequence ``select`` is called with). ``finder`` knows the
    config's vantages; ``geo`` the fallback policy (a ``GeoPolicy``);
    ``logger`` where switches are logged (None: nowhere). ``reason``
    examples: ``"vantage eu (country GB): fra 12.3 ms"``, ``"vantage eu
    (nearest, 340 km): kept fra 30.0 ms (ams 27.0 ms within margins)"``,
    ``"vantage eu (nearest, 340 km) has no RTT data;
    geo: country GB tier 1"``.
    """

    reads_rtt = True

    def __init__(self, pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
                 geo: Policy | None = None, *, logger: logging.Logger | None = log) -> None:
        self.pool = pool
        self._logger = logger
        self.finder = finder
        self.geo: Policy = geo if geo is not None else GeoPolicy()
        possible = {*finder.names, *pool.vantage_countries.values(),
                    *pool.vantage_continents.values()}
        self.fixed: str | None = possible.pop() if len(possible) == 1 else None
        """The vantage that stands for every client, or None."""
        self.dependent = self.fixed is None and bool(
            finder.located or pool.vantage_countries or pool.vantage_continents)
        """Whether the vantage depends on where the client is (False: one
        vantage for everyone, or none for anyone)."""
        self.geo_dependent = bool(pool.countries or pool.continents) or any(
            o.location is not None for o in candidates)
        """Whether the geo fallback can answer clients differently."""
        self._rel = pool.switch_margin_pct / 100.0
        self._abs_ms = pool.switch_margin_ms
        self._current: dict[str, tuple[Member, ...]] = {}

    def vantage_for(self, client: Client) -> tuple[str | None, str]:
        """The vantage standing for ``client`` (None when there is none) and
        how it was found, for the reason."""
        if self.fixed is not None:
            return self.fixed, "the only vantage"
        loc = client.location
        if loc is None:
            return None, "client not located"
        pool = self.pool
        if loc.country is not None and loc.country in pool.vantage_countries:
            return pool.vantage_countries[loc.country], f"country {loc.country}"
        if loc.continent is not None and loc.continent in pool.vantage_continents:
            return pool.vantage_continents[loc.continent], f"continent {loc.continent}"
        if loc.lat is None or loc.lon is None:
            return None, "client has no coordinates"
        near = self.finder.nearest(loc.lat, loc.lon)
        if near is None:
            return None, "no vantage has a location"
        return near[0], f"nearest, {near[1]:.0f} km"

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy` (``pool`` and
        ``candidates`` must be those this object was built for); empty when
        no candidate is healthy."""
        vantage, how = self.vantage_for(client)
        if vantage is not None:
            measured: list[tuple[float, Member]] = []
            for o in candidates:
                if health.is_up(o.name):
                    rtt = health.srtt_ms(o.name, vantage)
                    if rtt is not None:
                        measured.append((rtt, o))
            if measured:
                note = self._stick(vantage, measured, pool.max_answers)
                return Selection(self._current[vantage],
                                 client.geo_scope if self.dependent else 0,
                                 f"vantage {vantage} ({how}): {note}",
                                 Basis.RTT | Basis.RANKED
                                 | (Basis.CLIENT if self.dependent else Basis.NONE))
            why = f"vantage {vantage} ({how}) has no RTT data"
        else:
            why = f"no vantage: {how}"
        sel = self.geo.select(pool, candidates, client, health, rng)
        client_bound = self.dependent or self.geo_dependent
        basis = Basis.RTT | (sel.basis & Basis.DRAW)
        if client_bound:
            basis |= Basis.CLIENT
        return Selection(sel.members, sel.scope if client_bound else 0,
                         f"{why}; geo: {sel.reason}", basis)

    def _better(self, new_ms: float, cur_ms: float) -> bool:
        gain = cur_ms - new_ms
        return gain > self._abs_ms and gain > cur_ms * self._rel

    def _stick(self, vantage: str, measured: list[tuple[float, Member]], k: int) -> str:
        """Update the memory for ``vantage`` from ``measured`` ((srtt ms,
        origin) of the eligible candidates) and say what happened."""
        got = stick(self._current.get(vantage, ()), measured, k, self._better)
        self._current[vantage] = tuple(o for _, o in got.chosen)
        what = ", ".join(f"{o.name} {r:.1f} ms" for r, o in got.chosen)
        if got.swaps:
            swaps = "; ".join(f"{old.name} {old_ms:.1f} ms → {new.name} {new_ms:.1f} ms"
                              for (old_ms, old), (new_ms, new) in got.swaps)
            if self._logger is not None:
                self._logger.info("pool %s, vantage %s: switched %s", self.pool.name, vantage,
                                  swaps)
            return f"{what} (switched {swaps})"
        if got.challenger is not None:
            r, o = got.challenger  # faster than a member, but not past both margins
            return f"kept {what} ({o.name} {r:.1f} ms within margins)"
        return what


# -- configuration: the keys only latency pools accept ---------------------------------

LATENCY_KEYS = ("vantage_countries", "vantage_continents", "switch_margin", "switch_margin_ms")


def read_latency(keys: PoolKeys) -> dict[str, Any]:
    """The geo keys (:func:`gslb.steering.geo.read_geo`, for the fallback)
    and the latency keys of a pool, as ``Pool`` keyword arguments."""
    return {**read_geo(keys), **_latency(keys.r, keys.m, keys.at, keys.vantages)}


def latency_status(pool: Pool) -> dict[str, Any]:
    """The vantage maps and margins of ``pool`` for the status document."""
    return {**geo_status(pool), "vantage_countries": dict(pool.vantage_countries),
            "vantage_continents": dict(pool.vantage_continents),
            "switch_margin_pct": pool.switch_margin_pct,
            "switch_margin_ms": pool.switch_margin_ms}


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


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> LatencyPolicy:
    return LatencyPolicy(pool, candidates, finder, logger=logger)  # its own anti-flap memory


SPEC = PolicySpec("latency", _build, GEO_KEYS + LATENCY_KEYS, read_latency,
                  status=latency_status)
