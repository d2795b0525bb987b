"""Zone text: static RDATA in presentation format, checked and made canonical.

Config load time only. ``normalize_rdata`` checks one RDATA as a zone file
writes it (RFC 1035 section 5.1) and returns the canonical text the
validator keeps in the model (names absolute); ``gslb.dns.wire.compile_rdata``
later turns that text into wire octets. ``STATIC_TYPES`` are the record
types a zone may hold. ``from_zone`` is dnslib's zone-text parser without
the reference cycle it leaves, for both. With ``gslb.dns.wire``, the only
module that imports dnslib.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import socket

from dnslib import RR, DNSError
from dnslib.dns import ZoneParser

__all__ = ["STATIC_TYPES", "from_zone", "normalize_rdata"]

#: Static record types a zone may hold, with the number of RDATA fields each
#: takes in presentation format (None: one or more, as for TXT).
STATIC_TYPES: dict[str, int | None] = {
    "SOA": 7,
    "NS": 1,
    "A": 1,
    "AAAA": 1,
    "CNAME": 1,
    "MX": 2,
    "TXT": None,
    "SRV": 4,
    "CAA": 3,
    "DS": 4,
}

#: Digest length in octets of each DS digest type we can check (RFC 4034
#: section 5.1.4: SHA-1; RFC 4509: SHA-256; RFC 6605: SHA-384).
DS_DIGEST_OCTETS = {1: 20, 2: 32, 4: 48}


def normalize_rdata(rtype: str, text: str, origin: str) -> str:
    """Check one RDATA in presentation format (RFC 1035 section 5.1) and
    return it with every name made absolute against ``origin``.

    ``rtype`` is a mnemonic from ``STATIC_TYPES``; ``origin`` is the zone
    name (absolute, ends with a dot). Raises ``ValueError`` with a message
    fit for a config error when the text is not valid RDATA of that type.
    """
    rtype = rtype.upper()
    if rtype not in STATIC_TYPES:
        raise ValueError(f"unsupported record type {rtype!r} (supported: "
                         f"{', '.join(STATIC_TYPES)})")
    text = str(text).strip()
    if rtype == "A" and (address := _ipv4_text(text)) is not None:
        return address
    if _UNQUOTED.fullmatch(text):  # what shlex.split gives for such text
        fields = text.split()
    else:
        try:
            fields = shlex.split(text, posix=False)
        except ValueError as exc:
            raise ValueError(f"bad {rtype} data {text!r}: {exc}") from None
    want = STATIC_TYPES[rtype]
    if not fields or (want is not None and len(fields) != want):
        raise ValueError(f"bad {rtype} data {text!r}: expected "
                         f"{want or 'at least 1'} field(s), got {len(fields)}")
    if rtype in ("A", "AAAA"):
        try:
            addr = ipaddress.ip_address(fields[0])
        except ValueError:
            raise ValueError(f"bad {rtype} address {text!r}") from None
        if addr.version != (4 if rtype == "A" else 6):
            raise ValueError(f"bad {rtype} address {text!r}: IPv{addr.version}")
        return str(addr)
    numeric = {"MX": (0,), "SRV": (0, 1, 2), "CAA": (0,), "SOA": (2, 3, 4, 5, 6),
               "DS": (0, 1, 2)}.get(rtype, ())
    for i in numeric:
        if not fields[i].isdigit():
            raise ValueError(f"bad {rtype} data {text!r}: field {i + 1} must be a number")
    if rtype == "DS":
        _check_ds(text, fields)
    names = {"NS": (0,), "CNAME": (0,), "MX": (1,), "SRV": (3,), "SOA": (0, 1)}.get(rtype, ())
    for i in names:
        fields[i] = _absolute(fields[i], origin)
    if names:
        text = " ".join(fields)
    try:
        rr = from_zone(f"$ORIGIN {origin}\n@ 0 IN {rtype} {text}")[0]
        return str(rr.rdata.toZone())
    except (DNSError, ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"bad {rtype} data {text!r}: {exc}") from None


_UNQUOTED = re.compile(r"[\t\n\r !#-&(-~]*")
"""Printable ASCII without quotes: text ``shlex.split(text, posix=False)``
splits at whitespace only, as ``str.split()`` does."""


def _ipv4_text(text: str) -> str | None:
    """``text`` when it is an IPv4 address written as ``ipaddress`` prints
    it (dotted decimal, no leading zeros), else None. The result is a new
    string, not ``text``: the config keeps it, and the YAML document
    ``text`` came from is about to be freed (one string kept from it would
    keep the memory around it from being reused)."""
    try:
        address = socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):
        return None
    return address if address == text else None


def _check_ds(text: str, fields: list[str]) -> None:
    """DS fields (RFC 4034 section 5.3: key tag, algorithm, digest type,
    digest in hex, here in one piece): in range, and the digest as long as
    its type says when we know the type. Raises ``ValueError``."""
    tag, algorithm, digest_type = (int(f) for f in fields[:3])
    if tag > 65535 or algorithm > 255 or digest_type > 255:
        raise ValueError(f"bad DS data {text!r}: key tag is 0-65535, algorithm and "
                         "digest type 0-255")
    try:
        digest = bytes.fromhex(fields[3])
    except ValueError:
        raise ValueError(f"bad DS data {text!r}: the digest must be hexadecimal") from None
    want = DS_DIGEST_OCTETS.get(digest_type)
    if want is not None and len(digest) != want:
        raise ValueError(f"bad DS data {text!r}: a type {digest_type} digest is {want} "
                         f"octets, not {len(digest)}")


def from_zone(text: str) -> list[RR]:
    """The resource records (dnslib ``RR`` objects) of zone-file ``text``:
    ``RR.fromZone(text)`` without the garbage it leaves. dnslib's lexer
    holds its state as a bound method of itself, a reference cycle only the
    cyclic collector frees (and config loading pauses that collector).
    Raises what dnslib's parser raises on bad text (``DNSError``,
    ``ValueError``, ``IndexError``, ``TypeError``)."""
    parser = ZoneParser(text)
    try:
        return list(parser)
    finally:
        parser.l.state = None


def _absolute(name: str, origin: str) -> str:
    """``name`` made absolute against ``origin`` (``@`` is the origin)."""
    if name == "@":
        return origin
    return name if name.endswith(".") else f"{name}.{origin}"
