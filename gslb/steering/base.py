"""What every steering policy takes and returns.

A policy picks origins of one pool for one client. It never does I/O: health
comes from a ``HealthView`` and the client's location from a lookup done at
most once per query (``Client.location``).
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Protocol

from gslb.config.model import LOCAL_VANTAGE, Location, Pool, Tiers, Vantage
from gslb.config.validate.targets import PoolKeys, one_tier
from gslb.geo import Asn, AsnLookup, GeoLocation, distance_km
from gslb.health.view import HealthView
from gslb.steering.trace import Trace

Locator = Callable[[str], GeoLocation | None]
"""Maps an IP address (text) to where it is (a ``GeoLocation`` that is not
``located`` when the database holds no record: it still says how wide the
empty network is), or None for junk input."""

#: Widest ECS scope we return for geo answers (RFC 7871 section 11.1 advises
#: /24 for IPv4 and /56 for IPv6 as the most a resolver should reveal).
ECS_SCOPE_CAP = {4: 24, 6: 56}


class Client:
    """Who asked: ``who`` is the packet's source address; ``ecs_address`` and
    ``ecs_source`` are the EDNS Client Subnet address and source
    prefix-length (RFC 7871 section 6) when the query carried one, and
    ``ecs_version`` the IP version of that address, 4 or 6 (``Ecs.version``;
    not the option's FAMILY code, 1 or 2).

    ``bestwho`` is the ECS address when present, else ``who`` (PowerDNS's
    names). ``location`` is looked up lazily, at most once, through the
    ``locator`` given (``GeoDB.locate``), and ``asn`` likewise through
    ``asn_lookup`` (``AsnDB.lookup``): nothing is looked up unless a policy
    asks.

    ``trace``: where the steering of this query records what it decided
    (:class:`gslb.steering.trace.Trace`), for ``gslb explain``; None (every
    query served) records nothing.
    """

    __slots__ = ("_asn", "_asn_looked_up", "_asn_lookup", "_found", "_located", "_locator",
                 "ecs_address", "ecs_source", "ecs_version", "trace", "who")

    def __init__(
        self,
        who: str,
        ecs_address: str | None = None,
        ecs_source: int | None = None,
        ecs_version: int | None = None,
        locator: Locator | None = None,
        asn_lookup: AsnLookup | None = None,
    ) -> None:
        self.who = who
        self.ecs_address = ecs_address
        self.ecs_source = ecs_source
        self.ecs_version = ecs_version
        self._locator = locator
        self._found: GeoLocation | None = None
        self._located = False
        self._asn_lookup = asn_lookup
        self._asn: Asn | None = None
        self._asn_looked_up = False
        self.trace: Trace | None = None

    @property
    def bestwho(self) -> str:
        return self.ecs_address if self.ecs_address is not None else self.who

    def _geo(self) -> GeoLocation | None:
        """What the locator says of ``bestwho`` (looked up once), a location
        that is not ``located`` included."""
        if not self._located:
            self._located = True
            if self._locator is not None:
                self._found = self._locator(self.bestwho)
        return self._found

    @property
    def found(self) -> GeoLocation | None:
        """What the locator said of ``bestwho`` if it was asked (a location
        that is not ``located`` included), without asking it: None when no
        policy looked the client up, or it could not be."""
        return self._found

    @property
    def location(self) -> GeoLocation | None:
        """Where the client is; None when it cannot be located (no locator,
        or the database has neither country nor continent for it)."""
        found = self._geo()
        return found if found is not None and found.located else None

    @property
    def geo_scope(self) -> int:
        """The ECS scope prefix-length for an answer that depends on where the
        client is (RFC 7871 section 7.2.1: the answer holds for every address
        the scope covers): the least of the query's source prefix-length,
        ``ECS_SCOPE_CAP`` (/24 for IPv4, /56 for IPv6, section 11.1) and the
        prefix length of the GeoIP database network that holds the ECS
        address (``GeoLocation.prefix_len``), so one resolver cache entry
        serves a whole database block. An unlocatable client is bounded the
        same way by the empty network it is in: every address there is
        unlocatable too. 0 when the query had no ECS option. Looks the
        client up when that is not done yet."""
        if self.ecs_source is None or self.ecs_version is None:
            return 0
        found = self._geo()
        return self._scope(found.prefix_len if found is not None else None)

    @property
    def asn(self) -> Asn | None:
        """The AS announcing the client (``bestwho``), looked up once:
        ``Asn.number`` (None when the ASN database has no record for the
        address) and ``Asn.prefix_len``, the database network's prefix
        length. None when there is no ASN database (``gslb serve --asn-db``)."""
        if not self._asn_looked_up:
            self._asn_looked_up = True
            if self._asn_lookup is not None:
                self._asn = self._asn_lookup(self.bestwho)
        return self._asn

    @property
    def asn_scope(self) -> int:
        """The ECS scope prefix-length for an answer decided by the client's
        AS number (RFC 7871 section 7.2.1), as ``geo_scope`` with the ASN
        database's network: the least of the source prefix-length,
        ``ECS_SCOPE_CAP`` and ``asn.prefix_len`` (a client without an AS
        record by the empty network it is in); 0 without ECS. Looks the AS
        up when that is not done yet."""
        if self.ecs_source is None or self.ecs_version is None:
            return 0
        found = self.asn
        return self._scope(found.prefix_len if found is not None else None)

    def _scope(self, prefix_len: int | None) -> int:
        """The ECS source prefix-length capped by ``ECS_SCOPE_CAP`` and by
        ``prefix_len`` (None: no database bound); only with ECS."""
        assert self.ecs_source is not None and self.ecs_version is not None
        scope = min(self.ecs_source, ECS_SCOPE_CAP.get(self.ecs_version, 0))
        return scope if prefix_len is None else min(scope, prefix_len)


class Basis:
    """What a selection depended on, as it happened: bit flags, plain ints
    combined with ``|`` along a fallback chain or a tree of pools (an
    ``enum.IntFlag`` costs about a microsecond per operation, several per
    answer, on the query path). What may be reused of
    an answer follows from it alone (:mod:`gslb.dns.cache`), never from a
    policy's name:

    * ``DRAW``: a random draw decided between two or more candidates (their
      choice, or their order): the next query may get another answer, so it
      is never reused;
    * ``CLIENT``: where the client is (its network or its location) decided;
      the ECS scope says for how wide a network (RFC 7871 section 7.2.1), and
      without ECS the answer is reused only for the same source address;
    * ``RTT``: smoothed RTTs or reported loads (``least_loaded``), and the
      anti-flap memory over them, decided: they move without the health
      generation moving, so never reused;
    * ``RAMP``: a weight ramping with time (slow start, a drain's ramp:
      ``HealthView.weight_factor`` below 1) decided: it moves without the
      health generation moving, so never reused; reuse resumes once the
      ramp is over;
    * ``RANKED``: the members are in an order that means something, best
      first (by RTT, by hash score): a pool's ``order`` does not rotate it
      (``Steering.choose``); says nothing about reuse;
    * ``NONE``: nothing but health: the same for everyone until the health
      generation moves.
    """

    NONE: Final = 0
    DRAW: Final = 1
    CLIENT: Final = 2
    RTT: Final = 4
    RAMP: Final = 8
    RANKED: Final = 16


def basis_names(basis: int) -> list[str]:
    """The :class:`Basis` flags set in ``basis``, by name (``["CLIENT",
    "DRAW"]``; empty for ``NONE``), for explanations."""
    return [name for name in ("DRAW", "CLIENT", "RTT", "RAMP", "RANKED")
            if basis & getattr(Basis, name)]


def drawn(candidates: int) -> int:
    """``Basis.DRAW`` when a weighted draw picks among ``candidates`` (2 or
    more: which one, or in which order), else ``Basis.NONE``."""
    return Basis.DRAW if candidates > 1 else Basis.NONE


def ramped(members: Sequence[Member], health: HealthView) -> int:
    """``Basis.RAMP`` when some of ``members`` has a ``weight_factor``
    below 1 now, else ``Basis.NONE``; one ``health.ramping`` check when
    nothing ramps. A policy calls it once per selection, and scales
    weights (``pick_weighted(..., health)``) only when it says RAMP."""
    if health.ramping and any(health.weight_factor(m.name) < 1.0 for m in members):
        return Basis.RAMP
    return Basis.NONE


class Member(Protocol):
    """What a pool chooses among: an origin (:class:`gslb.config.model.Origin`)
    or another pool (:class:`PoolMember`). ``weight`` is the member's share
    in weighted draws (a positive integer); ``location`` (None: none) is
    where it is, for nearest-by-distance steering."""

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int: ...

    @property
    def location(self) -> Location | None: ...


@dataclass(frozen=True, slots=True)
class PoolMember:
    """A pool as a member of another pool (a tree of pools): its ``name``,
    its ``weight`` in the parent's draws (``Pool.weight``); it has no
    ``location`` of its own. It is up when it has at least its
    ``min_healthy`` healthy members (:class:`gslb.steering.Steering`)."""

    name: str
    weight: int = 1
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    """What a policy chose.

    * ``members``: chosen members (origins, or pools of a tree) in answer
      order; empty means "none healthy" (the caller applies the pool's
      fallback).
    * ``scope``: ECS scope prefix-length to return (RFC 7871 section 7.2.1):
      0 when the choice does not depend on the client.
    * ``reason``: a short human-readable explanation (for logs and status).
    * ``basis``: what the choice depended on (:class:`Basis`).
    """

    members: tuple[Member, ...]
    scope: int = 0
    reason: str = ""
    basis: int = Basis.NONE


class Policy(Protocol):
    """A steering policy: ``select`` picks among ``candidates`` (the pool's
    members that have an address of the queried family, in declaration
    order). ``reads_rtt`` (a class attribute in gslb's policies) is True
    when ``select`` reads smoothed RTTs (``HealthView.srtt_ms``): its
    answers can then move while the health generation holds, and a worker
    process needs the supervisor's RTTs (``Steering.reads_rtt``)."""

    @property
    def reads_rtt(self) -> bool: ...

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection: ...


NEAREST_CACHE_SIZE = 4096
"""Client coordinates remembered by :meth:`VantageFinder.nearest`."""


class VantageFinder:
    """The vantages of one config, for locating a client's vantage; shared by
    every ``latency`` pool of a :class:`gslb.steering.Steering`.

    ``vantages``: the config's (name → Vantage); empty means only the
    embedded prober's ``local`` vantage exists.
    """

    def __init__(self, vantages: Mapping[str, Vantage]) -> None:
        self.names: tuple[str, ...] = tuple(vantages) or (LOCAL_VANTAGE,)
        self.located = tuple((v.name, v.location.lat, v.location.lon)
                             for v in vantages.values() if v.location is not None)
        """``(name, lat, lon)`` of each vantage with a location."""
        self.nearest = functools.lru_cache(maxsize=NEAREST_CACHE_SIZE)(self._nearest)

    def _nearest(self, lat: float, lon: float) -> tuple[str, float] | None:
        """``(vantage name, distance in km)`` of the vantage nearest to the
        point (decimal degrees), first declared on a tie; None when no
        vantage has a location."""
        best = min(((distance_km(lat, lon, vlat, vlon), i) for i, (_, vlat, vlon)
                    in enumerate(self.located)), default=None)
        return None if best is None else (self.located[best[1]][0], best[0])


ReadKeys = Callable[[PoolKeys], dict[str, Any]]
"""Reads a policy's own keys of one pool: ``Pool`` keyword arguments (a
problem is reported on ``keys.r``)."""

ReadMembers = Callable[[PoolKeys], tuple[tuple[str, ...], Tiers]]
"""Reads a pool's members and tiers (``one_tier``: its ``origins``)."""


class Build(Protocol):
    """Makes the policy object for one pool and address family:
    ``(pool, its members of that family, the config's vantages, logger)``;
    ``logger`` is where the policy logs its decisions, None for nowhere. A
    stateless policy may return one shared object."""

    def __call__(self, pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
                 logger: logging.Logger | None) -> Policy: ...


def _no_status(pool: Pool) -> dict[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One steering policy, all in its own module (``SPEC``), named once in
    :data:`gslb.steering.registry.REGISTRY`:

    * ``name``: what ``policy:`` says in the config;
    * ``build``: the object that selects (:class:`Build`);
    * ``keys``: the config keys only this policy accepts, read by ``read``
      into ``Pool`` fields (the validator reports those keys on any other
      policy's pool);
    * ``members``: how the pool's members and tiers are read (default: its
      ``origins``, one tier);
    * ``status``: the policy's own fields of the status document.
    """

    name: str
    build: Build
    keys: tuple[str, ...] = ()
    read: ReadKeys | None = None
    members: ReadMembers = one_tier
    status: Callable[[Pool], dict[str, Any]] = _no_status


Scored = tuple[float, Member]
"""A member with its score (an RTT in ms, a load per capacity): lower is better."""


@dataclass(frozen=True, slots=True)
class Stuck:
    """What :func:`stick` kept: ``chosen``, lowest score first; ``swaps``,
    each ``(left, came in)``; ``challenger``, when nothing moved, the best
    member left out although it scores below a chosen one (within the
    margin), else None."""

    chosen: tuple[Scored, ...]
    swaps: tuple[tuple[Scored, Scored], ...]
    challenger: Scored | None


def stick(previous: Sequence[Member], scored: list[Scored], k: int,
          better: Callable[[float, float], bool]) -> Stuck:
    """The anti-flap choice of ``k`` members by score (``latency``,
    ``least_loaded``): the members of ``previous`` that are still in
    ``scored`` stay, the best of them first, free places go to the lowest
    scores, and a member left out replaces the worst kept one only when
    ``better(its score, the kept one's)`` (the margin). ``scored`` is sorted
    in place (stable: declaration order on ties)."""
    scored.sort(key=itemgetter(0))
    by_name = {m.name: s for s, m in scored}
    inside = sorted(((by_name[m.name], m) for m in previous if m.name in by_name),
                    key=itemgetter(0))[:k]
    names = {m.name for _, m in inside}
    outside = [(s, m) for s, m in scored if m.name not in names]
    outside.reverse()  # pop() takes the lowest score
    while len(inside) < k and outside:
        inside.append(outside.pop())
    swaps: list[tuple[Scored, Scored]] = []
    while outside:
        worst = max(range(len(inside)), key=lambda i: inside[i][0])
        if not better(outside[-1][0], inside[worst][0]):
            break
        swaps.append((inside[worst], outside[-1]))
        inside[worst] = outside.pop()
    inside.sort(key=itemgetter(0))
    challenger = None
    if (not swaps and outside and outside[-1][0] < inside[-1][0]
            and tuple(previous) == tuple(m for _, m in inside)):
        challenger = outside[-1]
    return Stuck(tuple(inside), tuple(swaps), challenger)
