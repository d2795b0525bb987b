"""EDNS Client Subnet (RFC 7871): parse the option of a query, write the
echo of a response. Pure functions over bytes, no dnslib."""

from __future__ import annotations

import socket
from dataclasses import dataclass

FAMILY_BITS = {1: 32, 2: 128}
"""Address bits per ECS FAMILY (IANA Address Family Numbers: 1 IPv4, 2 IPv6)."""


class EcsError(ValueError):
    """The ECS option is malformed: the query gets FORMERR (RFC 7871 section 6
    and 7.2.1)."""


@dataclass(frozen=True, slots=True)
class Ecs:
    """A query's ECS option: ``family`` (1 IPv4, 2 IPv6), ``source``
    prefix-length in bits, ``address`` text (the subnet's network address)
    and ``raw`` address octets as sent (echoed back unchanged)."""

    family: int
    source: int
    address: str
    raw: bytes

    @property
    def version(self) -> int:
        """IP version of the address: 4 or 6."""
        return 4 if self.family == 1 else 6

    def echo(self, scope: int) -> bytes:
        """The option data of the response: FAMILY, SOURCE PREFIX-LENGTH and
        ADDRESS as in the query, SCOPE PREFIX-LENGTH ``scope`` (RFC 7871
        section 7.2.1), capped at the address length."""
        scope = max(0, min(scope, FAMILY_BITS[self.family]))
        return self.family.to_bytes(2, "big") + bytes((self.source, scope)) + self.raw


def parse_ecs(data: bytes) -> Ecs:
    """Parse ECS option data (after OPTION-CODE and OPTION-LENGTH).

    Raises ``EcsError`` when: shorter than 4 octets; FAMILY is not 1 or 2;
    SOURCE PREFIX-LENGTH exceeds the address length; SCOPE PREFIX-LENGTH is
    not 0 (it MUST be 0 in queries); ADDRESS has too few or too many octets
    for the source prefix-length, or non-zero bits beyond it (RFC 7871
    section 6: "SHOULD return FORMERR").
    """
    if len(data) < 4:
        raise EcsError("ECS option shorter than 4 octets")
    family = int.from_bytes(data[:2], "big")
    source, scope = data[2], data[3]
    bits = FAMILY_BITS.get(family)
    if bits is None:
        raise EcsError(f"ECS family {family} is not IPv4 (1) or IPv6 (2)")
    if source > bits:
        raise EcsError(f"ECS source prefix-length {source} exceeds {bits}")
    if scope != 0:
        raise EcsError(f"ECS scope prefix-length {scope} in a query (must be 0)")
    raw = bytes(data[4:])
    if len(raw) != (source + 7) // 8:
        raise EcsError(f"ECS address has {len(raw)} octets for /{source}")
    full = raw.ljust(bits // 8, b"\0")
    if source % 8 and raw[-1] & (0xFF >> (source % 8)):
        raise EcsError(f"ECS address has bits set beyond /{source}")
    address = socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, full)
    return Ecs(family=family, source=source, address=address, raw=raw)
