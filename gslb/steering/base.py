"""What every steering policy takes and returns.

A policy picks origins of one pool for one client. It never does I/O: health
comes from a ``HealthView`` and the client's location from a lookup done at
most once per query (``Client.location``).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gslb.config.model import Location, Pool
from gslb.geo import GeoLocation
from gslb.health.view import HealthView

Locator = Callable[[str], GeoLocation | None]
"""Maps an IP address (text) to where it is, or None when unknown."""

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
    ``locator`` given.
    """

    __slots__ = ("_located", "_location", "_locator", "ecs_address", "ecs_source", "ecs_version",
                 "who")

    def __init__(
        self,
        who: str,
        ecs_address: str | None = None,
        ecs_source: int | None = None,
        ecs_version: int | None = None,
        locator: Locator | None = None,
    ) -> None:
        self.who = who
        self.ecs_address = ecs_address
        self.ecs_source = ecs_source
        self.ecs_version = ecs_version
        self._locator = locator
        self._location: GeoLocation | None = None
        self._located = False

    @property
    def bestwho(self) -> str:
        return self.ecs_address if self.ecs_address is not None else self.who

    @property
    def location(self) -> GeoLocation | None:
        if not self._located:
            self._located = True
            if self._locator is not None:
                self._location = self._locator(self.bestwho)
        return self._location

    @property
    def geo_scope(self) -> int:
        """The ECS scope prefix-length for an answer that depends on where the
        client is: the source prefix-length capped at /24 (IPv4) or /56
        (IPv6); 0 when the query had no ECS option."""
        if self.ecs_source is None or self.ecs_version is None:
            return 0
        return min(self.ecs_source, ECS_SCOPE_CAP.get(self.ecs_version, 0))


class Basis(enum.IntFlag):
    """What a selection depended on, as it happened (flags, combined with
    ``|`` along a fallback chain or a tree of pools). What may be reused of
    an answer follows from it alone (:mod:`gslb.dns.cache`), never from a
    policy's name:

    * ``DRAW``: a random draw decided between two or more candidates (their
      choice, or their order): the next query may get another answer, so it
      is never reused;
    * ``CLIENT``: where the client is (its network or its location) decided;
      the ECS scope says for how wide a network (RFC 7871 section 7.2.1), and
      without ECS the answer is reused only for the same source address;
    * ``RTT``: smoothed RTTs (and the anti-flap memory over them) decided:
      they move without the health generation moving, so never reused;
    * ``NONE``: nothing but health: the same for everyone until the health
      generation moves.
    """

    NONE = 0
    DRAW = 1
    CLIENT = 2
    RTT = 4


def drawn(candidates: int) -> Basis:
    """``Basis.DRAW`` when a weighted draw picks among ``candidates`` (2 or
    more: which one, or in which order), else ``Basis.NONE``."""
    return Basis.DRAW if candidates > 1 else Basis.NONE


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
    basis: Basis = Basis.NONE


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
