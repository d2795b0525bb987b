"""DNS wire format: the only module that imports dnslib.

This part holds the RDATA helpers used at config load time; the query
decoding and answer encoding live below them.
"""

from __future__ import annotations

import ipaddress
import shlex

from dnslib import QTYPE, RR, DNSError

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
}


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
    try:
        fields = shlex.split(text, posix=False)
    except ValueError as exc:
        raise ValueError(f"bad {rtype} data {text!r}: {exc}") from None
    want = STATIC_TYPES[rtype]
    if not fields or (want is not None and len(fields) != want):
        raise ValueError(f"bad {rtype} data {text!r}: expected "
                         f"{want if want is not None else 'at least 1'} field(s), got {len(fields)}")
    if rtype in ("A", "AAAA"):
        try:
            addr = ipaddress.ip_address(fields[0])
        except ValueError:
            raise ValueError(f"bad {rtype} address {text!r}") from None
        if addr.version != (4 if rtype == "A" else 6):
            raise ValueError(f"bad {rtype} address {text!r}: IPv{addr.version}")
        return str(addr)
    numeric = {"MX": (0,), "SRV": (0, 1, 2), "CAA": (0,), "SOA": (2, 3, 4, 5, 6)}.get(rtype, ())
    for i in numeric:
        if not fields[i].isdigit():
            raise ValueError(f"bad {rtype} data {text!r}: field {i + 1} must be a number")
    try:
        rr = RR.fromZone(f"$ORIGIN {origin}\n@ 0 IN {rtype} {text}")[0]
        return str(rr.rdata.toZone())
    except (DNSError, ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"bad {rtype} data {text!r}: {exc}") from None


def qtype_code(rtype: str) -> int:
    """The numeric RR type of a mnemonic (``"AAAA"`` → 28)."""
    return int(getattr(QTYPE, rtype.upper()))
