"""``hash``: sticky answers: the client's network hashed over the healthy
members by weighted rendezvous hashing.

The network is the EDNS Client Subnet address (RFC 7871 section 6) when the
query carried one, else the packet's source address (the resolver's),
truncated to ``Pool.hash_prefix_v4`` or ``hash_prefix_v6`` bits (/24 and /56
by default, the widest RFC 7871 section 11.1 advises a resolver to send).
An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, RFC 4291 section 2.5.5.2)
counts as its IPv4 address.

Each healthy member gets a score from a keyed BLAKE2b hash (RFC 7693) of
(``Pool.hash_seed``, member name, network): ``h``, uniform in (0, 1), and
score ``ln(h) / weight`` (weighted rendezvous hashing, "highest random
weight": the best score wins, a member of weight w wins for w / total of
the networks; the same order as ``-weight / ln(h)``). ``max_answers`` > 1
answers the top ``k``, best first. Since a member's score for a network
does not depend on the other members, a member going down moves only its
own networks (each to its runner-up), and coming back takes back exactly
those. The hash is the same in every process and on every nameserver
(Python's ``hash()`` is not: it is salted per process).

The answer depends on the client (``Basis.CLIENT``), never on a draw; its
ECS scope is the hashed prefix length, capped by the query's source
prefix-length (an IPv4-mapped ECS address: 96 bits more), 0 without ECS
(the answer cache then keys it by the source address). With one healthy
member every client gets it: scope 0, ``Basis.NONE``.
"""

from __future__ import annotations

import logging
import math
import random
import socket
from collections.abc import Sequence
from hashlib import blake2b
from typing import Any

from gslb.config.model import Pool
from gslb.config.validate.reader import At
from gslb.config.validate.targets import PoolKeys
from gslb.health.view import HealthView
from gslb.steering.base import (
    Basis,
    Client,
    Member,
    PolicySpec,
    Selection,
    VantageFinder,
    ramped,
)

#: Default bits of a client address hashed, per IP version.
DEFAULT_PREFIX = {4: 24, 6: 56}

_V4_MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96 (RFC 4291 section 2.5.5.2)
_SCALE = 2.0 ** -52


def member_weight(member: Member, health: HealthView, ramp: int) -> float:
    """The weight ``member`` is hashed with: ``Member.weight``, scaled by
    its ``health.weight_factor`` (a slow start or a drain's ramp) when the
    selection ramps (``ramp``: :func:`gslb.steering.base.ramped`); 0.0 for a
    member whose ramp has brought it to nothing."""
    return member.weight * health.weight_factor(member.name) if ramp else member.weight


def network_key(address: str, v4_bits: int, v6_bits: int) -> tuple[bytes, int, bool]:
    """``(key, bits, mapped)`` of text ``address``: ``key`` names the
    network of the address truncated to ``v4_bits`` (IPv4) or ``v6_bits``
    (IPv6) bits, its IP version first (so an IPv4 /24 never equals an IPv6
    prefix); ``bits`` is the prefix length used; ``mapped`` is True for an
    IPv4-mapped IPv6 address (hashed as its IPv4 address). Text that is no
    address is its own key (the whole text, ``bits`` 0)."""
    mapped = False
    try:
        if ":" in address:
            packed = socket.inet_pton(socket.AF_INET6, address)
            if packed[:12] == _V4_MAPPED:
                packed, bits, version, mapped = packed[12:], v4_bits, b"4", True
            else:
                bits, version = v6_bits, b"6"
        else:
            packed, bits, version = socket.inet_pton(socket.AF_INET, address), v4_bits, b"4"
    except OSError:
        return b"?" + address.encode(errors="replace"), 0, False
    whole, rest = divmod(bits, 8)
    key = version + packed[:whole]
    if rest:
        key += bytes((packed[whole] & (0xFF00 >> rest) & 0xFF,))
    return key, bits, mapped


class HashPolicy:
    """Weighted rendezvous hashing of the client's network over the healthy
    candidates (see the module doc). ``reason`` says what was hashed, e.g.
    ``"hash of ECS /24 among 5 healthy"`` or ``"hash of resolver /24 among 5
    healthy"``.

    ``candidates`` are the pool's members of one family, as ``Steering``
    passes them to :meth:`select` (the keyed hash of each member's name is
    prepared once); the healthy ones are remembered per ``(health view,
    generation)``, so a query costs one BLAKE2b per healthy member, and no
    health lookups while health holds: give each pool and family its own
    instance (``Steering`` does).
    """

    __slots__ = ("_bits", "_hashers", "_memo")

    reads_rtt = False

    def __init__(self, pool: Pool, candidates: Sequence[Member]) -> None:
        seed = (pool.hash_seed or pool.name).encode()
        key = blake2b(seed, digest_size=32).digest()  # any seed length: BLAKE2b keys take 64
        self._hashers = {}
        for m in candidates:
            h = blake2b(key=key, digest_size=8)
            h.update(m.name.encode() + b"\0")
            self._hashers[m.name] = h
        self._bits = (pool.hash_prefix_v4, pool.hash_prefix_v6)
        self._memo: tuple[object, object, int, tuple[tuple[Member, Any], ...]] | None = None

    def select(
        self,
        pool: Pool,
        candidates: Sequence[Member],
        client: Client,
        health: HealthView,
        rng: random.Random,
    ) -> Selection:
        """See :class:`gslb.steering.base.Policy`; empty when none is
        healthy. ``rng`` is not used: the same client network always gets
        the same answer under the same health."""
        generation = health.generation
        memo = self._memo
        if memo is None or memo[0] is not candidates or memo[1] is not health or (
                memo[2] != generation):
            hashers = self._hashers
            up = tuple((m, hashers.get(m.name) or self._hasher(pool, m)) for m in candidates
                       if health.is_up(m.name))
            memo = self._memo = (candidates, health, generation, up)
        up = memo[3]
        if not up:
            return Selection((), 0, "no healthy origin")
        if len(up) == 1:
            return Selection((up[0][0],), 0, "hash: one healthy")
        ecs = client.ecs_source
        v4_bits, v6_bits = self._bits
        network, bits, mapped = network_key(client.bestwho, v4_bits, v6_bits)
        log = math.log
        # a weight ramping moves networks only to or from its member
        ramp = ramped([m for m, _h in up], health) if health.ramping else Basis.NONE
        scored = []
        for i, (m, hasher) in enumerate(up):
            h = hasher.copy()
            h.update(network)
            u = ((int.from_bytes(h.digest()) >> 12) + 0.5) * _SCALE  # in (0, 1), exact
            weight = member_weight(m, health, ramp)
            scored.append((log(u) / weight if weight > 0.0 else -math.inf, -i, m))
        k = pool.max_answers
        if k == 1:
            chosen: tuple[Member, ...] = (max(scored)[2],)
        else:
            scored.sort(reverse=True)
            chosen = tuple(s[2] for s in scored[:k])
        # best first: a pool's order must not rotate the sticky one away
        basis = (Basis.CLIENT | Basis.RANKED if len(chosen) > 1 else Basis.CLIENT) | ramp
        if ecs is None:
            return Selection(chosen, 0, f"hash of resolver /{bits} among {len(up)} healthy",
                             basis)
        scope = min(ecs, bits + 96 if mapped else bits)
        return Selection(chosen, scope, f"hash of ECS /{bits} among {len(up)} healthy", basis)

    def _hasher(self, pool: Pool, member: Member) -> Any:
        """The keyed hash of a member not among those given at construction
        (a caller passing other candidates): made and remembered."""
        other = HashPolicy(pool, (member,))._hashers[member.name]
        self._hashers[member.name] = other
        return other


# -- configuration: the keys only hash pools accept -----------------------------------

HASH_KEYS = ("hash_prefix", "hash_seed")


def read_hash(keys: PoolKeys) -> dict[str, Any]:
    """``hash_prefix`` (a mapping ``{ipv4: 0..32, ipv6: 0..128}``, either
    key optional) and ``hash_seed`` (a non-empty string) of a hash pool, as
    ``Pool`` keyword arguments; problems are reported on ``keys.r``."""
    r, m, at = keys.r, keys.m, keys.at
    opt: dict[str, Any] = {}
    if "hash_prefix" in m and (table := r.mapping(m["hash_prefix"],
                                                  at.key(m, "hash_prefix"))) is not None:
        where = at.key(m, "hash_prefix")
        r.fields(table, where, ("ipv4", "ipv6"))
        for family, field, most in (("ipv4", "hash_prefix_v4", 32),
                                    ("ipv6", "hash_prefix_v6", 128)):
            if family in table:
                bits = r.integer(table[family], At(where.path, table.loc).key(table, family),
                                 0, most)
                if bits is not None:
                    opt[field] = bits
    if "hash_seed" in m:
        seed = m["hash_seed"]
        if isinstance(seed, int | float) and not isinstance(seed, bool):
            seed = str(seed)  # hash_seed: 2024 reads as the text "2024"
        text = r.text(seed, at.key(m, "hash_seed"))
        if text is not None:
            opt["hash_seed"] = text
    return opt


def hash_status(pool: Pool) -> dict[str, Any]:
    """The hashed prefix lengths and the seed of ``pool`` for the status
    document (the seed is no secret: it only decorrelates pools)."""
    return {"hash_prefix": {"ipv4": pool.hash_prefix_v4, "ipv6": pool.hash_prefix_v6},
            "hash_seed": pool.hash_seed or pool.name}


def _build(pool: Pool, candidates: Sequence[Member], finder: VantageFinder,
           logger: logging.Logger | None) -> HashPolicy:
    return HashPolicy(pool, candidates)  # its keyed hashes and healthy memo are per pool


SPEC = PolicySpec("hash", _build, HASH_KEYS, read_hash, status=hash_status)
