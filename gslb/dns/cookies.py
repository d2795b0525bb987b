"""DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).

A client sends a COOKIE option holding its 8-octet Client Cookie, and
later the Server Cookie it learned from us; we answer with the Client
Cookie and a Server Cookie (RFC 7873 section 5.2). Our Server Cookie is
the 16 octets of RFC 9018 section 4::

    Version (1) | Reserved (3, zero) | Timestamp (4, epoch seconds, big endian)
    | Hash (8) = SipHash-2-4(secret; Client Cookie | Version | Reserved
                             | Timestamp | Client-IP)

Client-IP is 4 octets (IPv4) or 16 (IPv6; an IPv4-mapped address counts as
its IPv4 address), the secret 128 bits. SipHash-2-4 is ``siphashc``'s (its
output as 8 octets little endian, as the reference implementation writes
it). Every nameserver and worker that shares the secret accepts the others'
cookies (RFC 9018 section 1: anycast).

A Server Cookie is valid (RFC 9018 section 4.3) when it is ours (16 octets,
Version 1), its Timestamp is at most ``LIFETIME_S`` (1 hour) in the past
and ``FUTURE_S`` (5 minutes) in the future (RFC 1982 serial arithmetic),
and its Hash matches under the current or the previous secret (rotation:
section 4.4 of RFC 9018 and docs/config.md "cookies"). A valid cookie is
sent back as it is until it is ``REFRESH_S`` (half an hour) old or was made
with the previous secret; then a fresh one is made.

Pure functions over bytes and a clock given as ``now`` (epoch seconds):
no I/O, no dnslib.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from functools import cache

from siphashc import siphash

#: EDNS option code of COOKIE (RFC 7873 section 4).
OPTION_COOKIE = 10
#: Extended RCODE BADCOOKIE (RFC 7873 section 8).
BADCOOKIE = 23
#: Octets of a Client Cookie, and the shortest and longest COOKIE option
#: data with a Server Cookie (8 + 8 to 8 + 32; RFC 7873 section 4).
CLIENT_BYTES, MIN_OPTION_BYTES, MAX_OPTION_BYTES = 8, 16, 40
#: Octets of our Server Cookie (RFC 9018 section 4) and of the option data
#: we send: Client Cookie then Server Cookie.
SERVER_BYTES = 16
REPLY_BYTES = CLIENT_BYTES + SERVER_BYTES
#: Octets of a secret (128 bits, RFC 9018 section 4.4).
SECRET_BYTES = 16
#: Seconds a Server Cookie stays valid after its Timestamp, seconds it may
#: lie ahead (clock skew between nameservers), and its age from which a
#: fresh one is sent (RFC 9018 section 4.3).
LIFETIME_S, FUTURE_S, REFRESH_S = 3600, 300, 1800

#: The SipHash-2-4 function (``siphashc``'s: ``SIPHASH(key, data)`` -> int,
#: the 8 octets little endian) cookies are signed with, for the compiled
#: packet path, which signs and checks them with this very function.
SIPHASH: Callable[[bytes, bytes], int] = siphash

_VERSION_RESERVED = b"\x01\x00\x00\x00"
_MAPPED = b"\0" * 10 + b"\xff\xff"


def valid_length(length: int) -> bool:
    """Whether ``length`` octets of COOKIE option data are well formed: a
    Client Cookie alone (8) or with a Server Cookie (16 to 40); anything
    else is FORMERR (RFC 7873 section 5.2.2)."""
    return length == CLIENT_BYTES or MIN_OPTION_BYTES <= length <= MAX_OPTION_BYTES


def client_ip(who: str) -> bytes:
    """The Client-IP octets of address text ``who``: 4 for IPv4 (and an
    IPv4-mapped IPv6 address), 16 for IPv6; empty when ``who`` is no
    address (the hash then covers the cookie alone)."""
    try:
        if ":" not in who:
            return socket.inet_pton(socket.AF_INET, who)
        packed = socket.inet_pton(socket.AF_INET6, who.split("%", 1)[0])
    except (OSError, ValueError):
        return b""
    return packed[12:] if packed[:12] == _MAPPED else packed


def server_cookie(secret: bytes, client: bytes, ip: bytes, now: int) -> bytes:
    """Our 16-octet Server Cookie for Client Cookie ``client`` (8 octets)
    from Client-IP ``ip`` (:func:`client_ip`) at ``now`` (epoch seconds),
    signed with ``secret`` (16 octets): RFC 9018 section 4.2."""
    head = _VERSION_RESERVED + (now & 0xFFFFFFFF).to_bytes(4, "big")
    return head + siphash(secret, client + head + ip).to_bytes(8, "little")


def _age(stamp: int, now: int) -> int:
    """Seconds from Timestamp ``stamp`` to ``now``, in RFC 1982 serial
    arithmetic (negative: in the future)."""
    age = (now - stamp) & 0xFFFFFFFF
    return age - 0x100000000 if age >= 0x80000000 else age


def check(secrets: Sequence[bytes], client: bytes, server: bytes, ip: bytes,
          now: int) -> int:
    """Which of ``secrets`` (current first) made Server Cookie ``server``
    for Client Cookie ``client`` from ``ip``: its index, or -1 when the
    cookie is not valid at ``now`` (epoch seconds): not 16 octets, Version
    other than 1, Timestamp more than ``LIFETIME_S`` old or ``FUTURE_S``
    ahead, or no secret gives its Hash (RFC 9018 section 4.3). Reserved
    octets are hashed as sent, not required to be zero (section 4.2)."""
    if len(server) != SERVER_BYTES or server[0] != 1:
        return -1
    age = _age(int.from_bytes(server[4:8], "big"), now)
    if not -FUTURE_S <= age <= LIFETIME_S:
        return -1
    signed, mac = client + server[:8] + ip, int.from_bytes(server[8:], "little")
    for index, secret in enumerate(secrets):
        if siphash(secret, signed) == mac:
            return index
    return -1


#: Answers :meth:`Cookies.reply` remembers for the second they were made
#: in (a resolver sends the same cookie with every query): about 0.2 MB.
RECENT_MAX = 4096


@cache
def process_secret() -> bytes:
    """A random secret made once per process: what signs cookies when the
    config names no ``cookies.secret_file`` (docs/config.md "cookies")."""
    return os.urandom(SECRET_BYTES)


class Cookies:
    """The COOKIE policy of one configuration.

    ``secrets``: the current secret first (it signs), then the previous one
    if any (it still validates), each ``SECRET_BYTES`` octets (``ValueError``
    otherwise). ``require``: a UDP query whose COOKIE option has no valid
    Server Cookie gets BADCOOKIE (RFC 7873 section 5.2.3 option 2) instead
    of an answer. ``clock``: epoch seconds (tests give their own).
    """

    __slots__ = ("_recent", "clock", "require", "secrets")

    def __init__(self, secrets: Sequence[bytes], require: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        if not 1 <= len(secrets) <= 2 or any(len(s) != SECRET_BYTES for s in secrets):
            raise ValueError(f"cookies need one or two secrets of {SECRET_BYTES} octets")
        self.secrets = tuple(secrets)
        self.require = require
        self.clock = clock
        #: (option, who) → (second, reply, valid): what ``reply`` said within
        #: that second, so a resolver repeating its cookie is not hashed
        #: again; emptied when ``RECENT_MAX`` entries are held
        self._recent: dict[tuple[bytes, str], tuple[int, bytes, bool]] = {}

    def reply(self, option: bytes, who: str, now: int | None = None) -> tuple[bytes, bool]:
        """The COOKIE option data to send (``REPLY_BYTES``: the Client
        Cookie, then a Server Cookie) to a query whose COOKIE option data is
        ``option`` (well formed: :func:`valid_length`) from address text
        ``who``, at ``now`` (epoch seconds; default: the clock), and whether
        ``option`` carried a valid Server Cookie. A valid one younger than
        ``REFRESH_S`` made with the current secret is sent back as it came;
        otherwise a fresh one is made (RFC 9018 section 4.3; an invalid one
        counts as absent, RFC 7873 section 5.2.4)."""
        at = int(self.clock()) if now is None else now
        key = (option, who)
        seen = self._recent.get(key)
        if seen is not None and seen[0] == at:
            return seen[1], seen[2]
        reply, valid = self._reply(option, who, at)
        if len(self._recent) >= RECENT_MAX:
            self._recent.clear()  # a flood of new cookies: start over
        self._recent[key] = (at, reply, valid)
        return reply, valid

    def _reply(self, option: bytes, who: str, at: int) -> tuple[bytes, bool]:
        """:meth:`reply` worked out, at ``at`` (epoch seconds)."""
        client, ip = option[:CLIENT_BYTES], client_ip(who)
        if len(option) == REPLY_BYTES:
            server = option[CLIENT_BYTES:]
            made = check(self.secrets, client, server, ip, at)
            if made >= 0:
                if made == 0 and _age(int.from_bytes(server[4:8], "big"), at) < REFRESH_S:
                    return option, True
                return client + server_cookie(self.secrets[0], client, ip, at), True
        return client + server_cookie(self.secrets[0], client, ip, at), False


__all__ = [
    "BADCOOKIE", "CLIENT_BYTES", "FUTURE_S", "LIFETIME_S", "MAX_OPTION_BYTES", "MIN_OPTION_BYTES",
    "OPTION_COOKIE", "RECENT_MAX", "REFRESH_S", "REPLY_BYTES", "SECRET_BYTES", "SERVER_BYTES",
    "SIPHASH",
    "Cookies", "check", "client_ip", "process_secret", "server_cookie", "valid_length",
]
