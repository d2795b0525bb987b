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
import random
from collections.abc import Sequence

from gslb.config.model import Pool
from gslb.geo import distance_km
from gslb.health.view import HealthView
from gslb.steering.base import Basis, Client, Member, Selection, drawn
from gslb.steering.failover import first_healthy_tier
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
        if pool.networks:
            found = pool.networks.lookup(client.bestwho)
            if found is not None:
                network, tiers = found
                tier, up = first_healthy_tier(tiers, by_name, health)
                if up:
                    source = client.ecs_source or 0
                    return Selection(pick_weighted(up, k, rng), min(network.prefixlen, source),
                                     f"network {network} tier {tier}",
                                     Basis.CLIENT | drawn(len(up)))
                notes.append(f"network {network} down")
        if pool.asns:
            asn = client.asn
            number = asn.number if asn is not None else None
            mapped = pool.asns.get(number) if number is not None else None
            if mapped is not None:
                tier, up = first_healthy_tier(mapped, by_name, health)
                if up:
                    notes.append(f"AS{number} tier {tier}")
                    return Selection(pick_weighted(up, k, rng), client.asn_scope,
                                     "; ".join(notes), Basis.CLIENT | drawn(len(up)))
                notes.append(f"AS{number} down")
            # what follows depended on the AS lookup too (no entry for the
            # client's AS network): the more specific of the two scopes holds
            scope = max(scope, client.asn_scope)
        loc = client.location
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
                tier, up = first_healthy_tier(tiers, by_name, health)
                if up:
                    notes.append(f"{rule} tier {tier}")
                    return Selection(pick_weighted(up, k, rng), scope, "; ".join(notes),
                                     Basis.CLIENT | drawn(len(up)))
                notes.append(f"{rule} down")
            if loc.lat is not None and loc.lon is not None:
                lat, lon = loc.lat, loc.lon
                located = [
                    (distance_km(lat, lon, o.location.lat, o.location.lon), o)
                    for o in candidates
                    if o.location is not None and health.is_up(o.name)
                ]
                if located:
                    near = heapq.nsmallest(k, located, key=lambda d_o: d_o[0])
                    what = ", ".join(f"{o.name} {d:.0f} km" for d, o in near)
                    notes.append(f"nearest to ({lat:.1f}, {lon:.1f}): {what}")
                    return Selection(tuple(o for _, o in near), scope, "; ".join(notes),
                                     Basis.CLIENT)
                notes.append("no healthy origin with a location")
            else:
                notes.append("client has no coordinates")
        tier, up = first_healthy_tier(pool.default, by_name, health)
        if up:
            notes.append(f"default tier {tier}")
        else:
            up = [o for o in candidates if health.is_up(o.name)]
            notes.append("any healthy" if up else "no healthy origin")
        return Selection(pick_weighted(up, k, rng), scope, "; ".join(notes),
                         Basis.CLIENT | drawn(len(up)))
