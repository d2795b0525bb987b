"""DNS wire format: queries decoded, answers encoded, RDATA compiled.

``decode`` turns a query message into a ``Query`` (the common shape by hand,
anything else through dnslib); ``encode`` writes an ``Answer`` to it by hand.
``compile_rdata`` and ``address_rdata`` turn canonical presentation RDATA
(made so at config load time by ``gslb.dns.zonetext``) into the ``Rdata``
objects ``encode`` writes. With ``gslb.dns.zonetext``, the only module that
imports dnslib.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field, replace
from functools import lru_cache

from dnslib import (
    AAAA,
    QTYPE,
    A,
    DNSBuffer,
    DNSError,
    DNSLabel,
    DNSRecord,
)

from gslb.dns.cookies import OPTION_COOKIE, valid_length
from gslb.dns.edns import Ecs, EcsError, parse_ecs
from gslb.dns.zonetext import from_zone

__all__ = [
    "BADVERS", "CLASS_CH", "CLASS_IN", "FORMERR", "NOERROR", "NOTIMP", "NXDOMAIN",
    "OPCODE_NOTIFY", "OPCODE_QUERY", "OPCODE_UPDATE",
    "OPTION_ECS", "OPTION_NSID", "OUR_UDP_SIZE", "PLAIN_UDP_SIZE", "QTYPE", "QTYPE_A",
    "QTYPE_AAAA", "QTYPE_ANY", "QTYPE_AXFR", "QTYPE_CNAME", "QTYPE_IXFR", "QTYPE_MAILA",
    "QTYPE_MAILB", "QTYPE_NS", "QTYPE_OPT", "QTYPE_SOA", "QTYPE_TKEY", "QTYPE_TSIG", "QTYPE_TXT",
    "REFUSED", "SERVFAIL", "Answer", "Drop", "FormErr", "Query", "Rdata", "address_rdata",
    "compile_rdata", "decode", "decode_dnslib", "encode", "header_reply", "qtype_code",
    "response_options",
]
"""The codec's names; ``QTYPE`` is dnslib's RR type table (mnemonic ⇄ code)."""


def qtype_code(rtype: str) -> int:
    """The numeric RR type of a mnemonic (``"AAAA"`` → 28)."""
    return int(getattr(QTYPE, rtype.upper()))


#: RCODE values (RFC 1035 section 4.1.1, RFC 6891 section 9 for BADVERS).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
BADVERS = 16
#: The UDP payload size we advertise and the most we send over UDP
#: (DNS Flag Day 2020 value; RFC 6891 section 6.2.5).
OUR_UDP_SIZE = 1232
#: Largest response without EDNS (RFC 1035 section 4.2.1).
PLAIN_UDP_SIZE = 512
QTYPE_A, QTYPE_NS, QTYPE_CNAME, QTYPE_SOA, QTYPE_TXT, QTYPE_AAAA, QTYPE_OPT, QTYPE_ANY = (
    1, 2, 5, 6, 16, 28, 41, 255)
#: Meta-TYPEs and QTYPEs (RFC 6895 section 3.1): TKEY (RFC 2930), TSIG
#: (RFC 8945), IXFR (RFC 1995), AXFR (RFC 5936), MAILB and MAILA (RFC 1035
#: section 3.2.3, obsolete).
QTYPE_TKEY, QTYPE_TSIG, QTYPE_IXFR, QTYPE_AXFR, QTYPE_MAILB, QTYPE_MAILA = (
    249, 250, 251, 252, 253, 254)
#: OPCODE values (RFC 1035 section 4.1.1; NOTIFY RFC 1996, UPDATE RFC 2136).
OPCODE_QUERY, OPCODE_NOTIFY, OPCODE_UPDATE = 0, 4, 5
CLASS_IN = 1
#: CHAOS class: server identification queries (RFC 4892 section 2.2).
CLASS_CH = 3
#: EDNS option codes: NSID (RFC 5001 section 2.3), Client Subnet (RFC 7871).
OPTION_NSID, OPTION_ECS = 3, 8


class Drop(Exception):
    """The packet gets no answer at all (too short to hold a header, or a
    response rather than a query: answering it could start a loop)."""


@dataclass(slots=True)
class Query:
    """A decoded query.

    ``qname`` is the name as asked (case kept, for 0x20 echo; absolute, with
    trailing dot), ``qname_lower`` its lower-case form used for lookups.
    ``udp_limit`` is the largest UDP response the client accepts in bytes:
    512 without EDNS (RFC 1035 section 4.2.1), else the advertised payload size
    (at least 512) capped at ``OUR_UDP_SIZE``. ``nsid``: the OPT record
    carried an NSID option, asking which server answered (RFC 5001 section
    2.3). ``cookie``: the COOKIE option's data as sent (RFC 7873 section
    4: a Client Cookie of 8 octets, maybe a Server Cookie after it; 8 or 16
    to 40 octets), else None; ``cookie_valid``: it carried a Server Cookie
    of ours that is valid (set by ``gslb.authority.respond``, RFC 9018
    section 4.3; a client that proved it receives our answers, RFC 7873
    section 5.2.5). ``compact_ok``: the EDNS CO flag (Compact Answers OK,
    RFC 9824 section 4): the client takes NXDOMAIN with a Compact Denial
    NSEC, and is told so by the CO flag in the response's OPT record.
    ``cd``: the header's CD bit, copied into the response (RFC 4035
    section 3.1.6).
    """

    id: int
    opcode: int
    rd: bool
    qname: str
    qname_lower: str
    qtype: int
    qclass: int
    edns: bool = False
    edns_version: int = 0
    dnssec_ok: bool = False
    udp_limit: int = PLAIN_UDP_SIZE
    ecs: Ecs | None = None
    nsid: bool = False
    cookie: bytes | None = None
    cookie_valid: bool = False
    compact_ok: bool = False
    cd: bool = False
    label: DNSLabel | None = None
    question_wire: bytes | None = None


@dataclass(slots=True)
class Answer:
    """What to send back, before encoding.

    Each section holds ``(owner, rtype, ttl, rdata)`` tuples: ``owner`` a
    name text, ``rtype`` numeric, ``ttl`` seconds, ``rdata`` an object from
    ``compile_rdata``/``address_rdata``. ``ecs_scope`` is the scope
    prefix-length to echo when the query had an ECS option (RFC 7871 section
    7.2.1). ``nsid``: the NSID option's payload (the server's identity) to
    send when the query asked for it (RFC 5001 section 2.3), else None.
    ``required_additional``: how many of the leading ``additional`` records
    must be sent (a referral's in-domain glue, RFC 9471 section 3.1): when
    they do not fit, the response is truncated (TC) instead of sent without
    them; the others are dropped silently when over the limit.
    ``cookie``: the COOKIE option data to send (Client Cookie and our Server
    Cookie, ``gslb.dns.cookies.REPLY_BYTES``), else None.

    For the answer cache (:mod:`gslb.dns.cache`): ``reusable`` is True when
    the same query gets the same answer while the health generation holds;
    ``per_client`` when it may depend on where the client is; ``rotate``
    (0: none) how many leading ``answer`` records form an A or AAAA RRset
    whose order moves from answer to answer, randomly when ``shuffle``
    (the cache rotates or shuffles them on hits); ``drawn`` when a
    steering choice drew between two or more origins: reusable only as
    one outcome of that draw, stored beside every other outcome when the
    lookup drew exactly once (:mod:`gslb.steering.draws`).
    """

    rcode: int = NOERROR
    aa: bool = True
    answer: list[tuple[str, int, int, Rdata]] = field(default_factory=list)
    authority: list[tuple[str, int, int, Rdata]] = field(default_factory=list)
    additional: list[tuple[str, int, int, Rdata]] = field(default_factory=list)
    ecs_scope: int = 0
    nsid: bytes | None = None
    cookie: bytes | None = None
    reusable: bool = True
    per_client: bool = False
    required_additional: int = 0
    rotate: int = 0
    shuffle: bool = False
    drawn: bool = False


class _Uncompressed(DNSBuffer):  # type: ignore[misc]  # dnslib has no types: DNSBuffer is Any
    """A dnslib buffer that never compresses names, so packed RDATA stands
    alone and can be copied into any message."""

    def encode_name(self, name: object) -> None:
        self.encode_name_nocompress(name)


class Rdata:
    """Compiled RDATA: ``rtype`` (numeric), ``wire`` (the RDATA octets, names
    uncompressed) for ``encode``, and the presentation text as ``text`` and
    ``str()``. No dnslib object is kept, so a compiled zone holds two small
    objects per RDATA."""

    __slots__ = ("rtype", "text", "wire")

    def __init__(self, rd: object, rtype: int | None = None, text: str | None = None) -> None:
        """From dnslib RDATA ``rd`` of numeric type ``rtype`` (default: from
        ``rd``'s class); ``text``, when equal to ``str(rd)``, is kept instead
        (so the config's string is shared)."""
        buf = _Uncompressed()
        rd.pack(buf)  # type: ignore[attr-defined]
        shown = str(rd)
        self.rtype = rtype if rtype is not None else qtype_code(type(rd).__name__)
        self.wire = bytes(buf.data)
        self.text = text if text == shown else shown

    @classmethod
    def from_wire(cls, rtype: int, wire: bytes, text: str) -> Rdata:
        """RDATA of numeric type ``rtype`` from its octets and presentation
        ``text`` (which must be what dnslib would print)."""
        self = cls.__new__(cls)
        self.rtype, self.wire, self.text = rtype, wire, text
        return self

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Rdata({self.text!r})"


def compile_rdata(rtype: str, text: str,
                  shared: dict[tuple[str, str], Rdata] | None = None) -> Rdata:
    """Turn normalized presentation RDATA (absolute names) into the object
    ``encode`` writes. Raises ``ValueError`` on bad data.

    ``shared``: RDATA compiled so far, by ``(rtype, text)``; the same RDATA
    is then compiled once and one object serves every RRset holding it.
    Rdata objects are never modified, so sharing them is safe.
    """
    key = (rtype, text)
    if shared is not None and (found := shared.get(key)) is not None:
        return found
    if rtype == "A":
        rdata = _ipv4_rdata(text)
        if rdata is not None:
            if shared is not None:
                shared[key] = rdata
            return rdata
    try:
        if rtype == "A" or rtype == "AAAA":  # what RR.fromZone does, without its lexer
            rd: object = A(text) if rtype == "A" else AAAA(text)
        else:
            rd = from_zone(f"@ 0 IN {rtype} {text}")[0].rdata
        rdata = Rdata(rd, qtype_code(rtype), text)
    except (DNSError, ValueError, IndexError, TypeError, OSError) as exc:
        raise ValueError(f"bad {rtype} data {text!r}: {exc}") from None
    if shared is not None:
        shared[key] = rdata
    return rdata


def _ipv4_rdata(text: str) -> Rdata | None:
    """A RDATA for ``text`` when it is an IPv4 address in dotted-decimal
    form as dnslib prints it (no leading zeros), else None."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, TypeError):
        return None
    if socket.inet_ntop(socket.AF_INET, packed) != text:
        return None
    return Rdata.from_wire(QTYPE_A, packed, text)


@lru_cache(maxsize=65536)
def address_rdata(address: str) -> Rdata:
    """A or AAAA RDATA for an IPv4 or IPv6 address text (cached)."""
    if ":" in address:
        return Rdata(AAAA(address), QTYPE_AAAA, address)
    return _ipv4_rdata(address) or Rdata(A(address), QTYPE_A, address)


def _header_only(data: bytes, rcode: int) -> bytes:
    """A response carrying only the header of ``data`` with QR set, counts
    zero and ``rcode``: for packets we cannot parse (RFC 1035 section 4.1.1).
    RD is copied for a QUERY only: outside QUERY the flag bits are not
    defined (RFC 2136 section 2.2 makes them Z for UPDATE), so the response
    has QR, the OPCODE and the RCODE alone, as BIND sends."""
    (qid, flags) = struct.unpack_from("!HH", data)
    kept = flags & (0x7900 if flags & 0x7800 == 0 else 0x7800)  # opcode, and RD for QUERY
    return struct.pack("!HHHHHH", qid, 0x8000 | kept | (rcode & 0xF), 0, 0, 0, 0)


def header_reply(data: bytes, rcode: int) -> bytes | None:
    """The header-only response with ``rcode`` to the message ``data`` (as
    :func:`_header_only`), or None when ``data`` is no query: shorter than
    a header, or QR set (answering a response could start a loop). For a
    message that could not be answered otherwise (SERVFAIL)."""
    if len(data) < 12 or data[2] & 0x80:
        return None
    return _header_only(data, rcode)


def _bare(query: Query, rcode: int, cookie: bytes | None = None) -> bytes:
    """A response without records to ``query``: for another OPCODE than
    QUERY, and for errors found while decoding.

    Outside QUERY only QR, the OPCODE and the RCODE are set (RFC 1035
    section 4.1.1 defines AA, TC, RD, RA for QUERY; RFC 2136 section 2.2
    makes them zero for UPDATE; genreport's ``opcodeflg`` test), and the
    question is echoed for NOTIFY (RFC 1996 section 3.7) and UPDATE (its
    zone section, RFC 2136 section 3.8) only, as BIND does. For a QUERY,
    RD is copied. ``query.question_wire == b""`` means the query had no
    question that could be read: none is sent (QDCOUNT 0). An OPT record
    is sent when the query had one, for FORMERR too (RFC 6891 section 7),
    with ``cookie`` (COOKIE option data) when given.
    """
    opcode = query.opcode
    echo = query.question_wire != b"" and opcode in (OPCODE_QUERY, OPCODE_NOTIFY, OPCODE_UPDATE)
    plain = replace(query, opcode=OPCODE_QUERY, rd=False,
                    question_wire=query.question_wire if echo else _NO_QUESTION)
    wire = encode(plain, Answer(rcode=rcode, aa=False, cookie=cookie))
    flags = 0x8000 | (opcode << 11) | (0x0100 if query.rd and not opcode else 0) | (rcode & 0xF)
    if echo:
        return wire[:2] + _QFIXED.pack(flags, 1) + wire[6:]
    return wire[:2] + _QFIXED.pack(flags, 0) + wire[6:12] + wire[12 + len(_NO_QUESTION):]


#: The stand-in question ``_bare`` encodes, then cuts out (root, type 0,
#: class 0: 5 octets).
_NO_QUESTION = b"\0\0\0\0\0"


class FormErr(Exception):
    """The query is malformed; ``response`` is the FORMERR to send back."""

    def __init__(self, response: bytes) -> None:
        super().__init__("FORMERR")
        self.response = response


def _formerr(query: Query, rcode: int = FORMERR) -> FormErr:
    """The ``FormErr`` for ``query`` as read so far: its question when it
    had one that could be read, an OPT record when it had one (RFC 6891
    section 7: a FORMERR to an EDNS query carries OPT)."""
    return FormErr(_bare(query, rcode))


def decode(data: bytes) -> Query:
    """Decode one DNS query message: the common shape (one question of
    plain labels, at most an OPT record) by hand, anything else with dnslib.

    Raises ``Drop`` when no answer must be sent, ``FormErr`` (carrying the
    encoded FORMERR response) for a malformed message: not parseable, QDCOUNT
    other than 1 (RFC 1035 section 4.1.2 in practice), several OPT records
    (RFC 6891 section 6.1.1) or a malformed ECS option (RFC 7871 section 6).
    """
    if len(data) < 12:
        raise Drop("shorter than a DNS header")
    if data[2] & 0x80:
        raise Drop("QR set: a response, not a query")
    query = _decode_fast(data)
    if query is not None:
        return query
    return decode_dnslib(data)


def decode_dnslib(data: bytes) -> Query:
    """``decode`` through dnslib (any well-formed message); same errors.
    Another OPCODE than QUERY gets NOTIMP where QUERY gets FORMERR (a
    message of a kind we do not implement, RFC 1035 section 4.1.1), but
    NOTIFY and UPDATE without exactly one question (zone) get FORMERR, as
    Knot sends. A QUERY with no question whose OPT record carries a COOKIE
    option asks for a server cookie only (RFC 7873 section 5.4): it is
    returned with ``question_wire`` ``b""``."""
    try:
        rec = DNSRecord.parse(data)
    except Exception:  # dnslib raises several types on junk
        raise FormErr(_header_only(data, FORMERR if data[2] & 0x78 == 0 else NOTIMP)) from None
    h = rec.header
    # no question yet (b""): the errors below answer without one
    query = Query(id=h.id, opcode=h.opcode, rd=bool(h.rd), cd=bool(h.cd), qname=".",
                  qname_lower=".",
                  qtype=0, qclass=0, question_wire=b"")
    if len(rec.questions) == 1:
        q = rec.questions[0]
        label = q.qname
        qname = str(label)
        query.qname, query.qname_lower, query.label = qname, qname.lower(), label
        query.qtype, query.qclass, query.question_wire = q.qtype, q.qclass, None
    opts = [rr for rr in rec.ar if rr.rtype == QTYPE_OPT]
    if opts:
        opt = opts[0]
        query.edns = True
        query.edns_version = (opt.ttl >> 16) & 0xFF
        query.dnssec_ok = bool(opt.ttl & 0x8000)
        query.compact_ok = bool(opt.ttl & _FLAG_CO)
        query.udp_limit = min(max(opt.rclass, PLAIN_UDP_SIZE), OUR_UDP_SIZE)
        if len(opts) > 1:
            raise _formerr(query)  # RFC 6891 section 6.1.1
        # the options from the octets: dnslib 0.9.26 drops an empty option
        # at the end of the OPT RDATA (an NSID request, RFC 5001)
        start, end = _opt_rdata(data, rec)
        _read_options(query, data, start, end)
    if not rec.questions and h.opcode == OPCODE_QUERY and query.cookie is not None:
        return query  # asking for a server cookie only (RFC 7873 section 5.4)
    if len(rec.questions) != 1:
        known = h.opcode in (OPCODE_QUERY, OPCODE_NOTIFY, OPCODE_UPDATE)
        raise _formerr(query, FORMERR if known else NOTIMP)
    return query


def _opt_rdata(data: bytes, rec: DNSRecord) -> tuple[int, int]:
    """Where the RDATA of the OPT record of ``data`` (parsed by dnslib into
    ``rec``) starts and ends: the records are walked again, their names
    skipped with dnslib's decoder."""
    buf = DNSBuffer(data)
    buf.offset = 12
    for _ in rec.questions:
        buf.decode_name()
        buf.offset += 4
    for _ in range(len(rec.rr) + len(rec.auth) + len(rec.ar)):
        buf.decode_name()
        rtype, _rclass, _ttl, rdlength = buf.unpack("!HHIH")
        if rtype == QTYPE_OPT:
            return buf.offset, buf.offset + rdlength
        buf.offset += rdlength
    raise FormErr(_header_only(data, FORMERR))  # not reached: dnslib found one


def _read_options(query: Query, data: bytes, pos: int, end: int) -> None:
    """Read the EDNS options in ``data[pos:end]`` (an OPT record's RDATA,
    RFC 6891 section 6.1.2) into ``query``: the first ECS option, whether
    an NSID option was sent, the first COOKIE option. Raises ``FormErr``
    when an option runs past the RDATA, the ECS option is malformed (RFC
    7871 section 6) or a COOKIE option is neither 8 nor 16 to 40 octets
    (RFC 7873 section 5.2.2; the FORMERR keeps the OPT record)."""
    while pos < end:
        if pos + 4 > end:
            raise _formerr(query)
        code, length = _QFIXED.unpack_from(data, pos)
        if pos + 4 + length > end:
            raise _formerr(query)
        if code == OPTION_ECS and query.ecs is None:
            try:
                query.ecs = parse_ecs(data[pos + 4:pos + 4 + length])
            except EcsError:
                raise _formerr(query) from None
        elif code == OPTION_NSID:
            query.nsid = True
        elif code == OPTION_COOKIE and query.cookie is None:
            if not valid_length(length):
                raise _formerr(query)
            query.cookie = data[pos + 4:pos + 4 + length]
        pos += 4 + length


def response_options(query: Query, answer: Answer) -> list[tuple[int, bytes]]:
    """The EDNS options of the response's OPT record, ``(code, data)``: the
    ECS echo with ``answer.ecs_scope`` (RFC 7871 section 7.2.1), then the
    NSID when asked for and configured (RFC 5001 section 2.3), then the
    COOKIE (RFC 7873 section 5.2), always last: the answer cache patches it
    as the response's last octets (:mod:`gslb.dns.cache`)."""
    options = []
    if query.ecs is not None:
        options.append((OPTION_ECS, query.ecs.echo(answer.ecs_scope)))
    if query.nsid and answer.nsid is not None:
        options.append((OPTION_NSID, answer.nsid))
    if answer.cookie is not None:
        options.append((OPTION_COOKIE, answer.cookie))
    return options


# --------------------------------------------------------------------------
# The fast path: the common query shape decoded and every answer encoded by
# hand, with no per-query dnslib objects.
# --------------------------------------------------------------------------

_HEADER = struct.Struct("!HHHHHH")
#: The EDNS CO flag (Compact Answers OK, RFC 9824 section 4), beside DO
#: (0x8000) in the OPT record's TTL field.
_FLAG_CO = 0x4000
_RR_FIXED = struct.Struct("!HHIH")
_QFIXED = struct.Struct("!HH")
#: Label octets the fast path takes; a label with any other octet goes to
#: dnslib, which escapes it in presentation form.
_PLAIN = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*"


def _decode_fast(data: bytes) -> Query | None:
    """The common query: QUERY opcode, one question of plain labels (no
    compression), no answer/authority records, at most one additional record
    that is an OPT, and nothing after it. None: take the dnslib path."""
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & 0x7800 or qd != 1 or an or ns or ar > 1:
        return None
    pos, end = 12, len(data)
    labels = []
    while True:
        if pos >= end:
            return None
        length = data[pos]
        if length == 0:
            break
        if length > 63 or pos + 1 + length > end:
            return None
        label = data[pos + 1:pos + 1 + length]
        if label.translate(None, _PLAIN):  # octets left over: not plain
            return None
        labels.append(label)
        pos += 1 + length
    if pos - 12 > 254 or pos + 5 > end:
        return None
    qtype, qclass = _QFIXED.unpack_from(data, pos + 1)
    qend = pos + 5
    qname = (b".".join(labels) + b".").decode("ascii") if labels else "."
    query = Query(id=qid, opcode=0, rd=bool(flags & 0x0100), cd=bool(flags & 0x0010),
                  qname=qname, qname_lower=qname.lower(), qtype=qtype, qclass=qclass,
                  question_wire=data[12:qend])
    if ar == 0:
        return query if qend == end else None
    # one additional record: an OPT (RFC 6891 section 6.1.2) or dnslib's job
    if qend + 11 > end or data[qend] != 0:
        return None
    rtype, udp, ttl, rdlen = _RR_FIXED.unpack_from(data, qend + 1)
    if rtype != QTYPE_OPT or qend + 11 + rdlen != end:
        return None
    query.edns = True
    query.edns_version = (ttl >> 16) & 0xFF
    query.dnssec_ok = bool(ttl & 0x8000)
    query.compact_ok = bool(ttl & _FLAG_CO)
    query.udp_limit = min(max(udp, PLAIN_UDP_SIZE), OUR_UDP_SIZE)
    _read_options(query, data, qend + 11, end)
    return query


@lru_cache(maxsize=4096)
def _name_wire(name: str) -> bytes:
    """An absolute name in wire form, uncompressed (RFC 1035 section 3.1)."""
    if name == ".":
        return b"\0"
    return b"".join(bytes((len(label),)) + label
                    for label in name.rstrip(".").encode("ascii").split(b".")) + b"\0"


def _question_wire(query: Query) -> bytes:
    """The question section of ``query`` as asked (case kept)."""
    if query.question_wire is not None:
        return query.question_wire
    if query.label is not None:
        name = b"".join(bytes((len(label),)) + label for label in query.label.label) + b"\0"
    else:
        name = _name_wire(query.qname)
    return name + _QFIXED.pack(query.qtype, query.qclass)


def _section(records: list[tuple[str, int, int, Rdata]], qname_lower: str,
             rclass: int) -> bytes:
    parts = []
    for owner, rtype, ttl, rdata in records:
        # the owner is the question's name: point at it (offset 12), so the
        # answer carries the case as asked
        name = b"\xc0\x0c" if owner == qname_lower else _name_wire(owner)
        parts.append(name + _RR_FIXED.pack(rtype, rclass, ttl, len(rdata.wire)) + rdata.wire)
    return b"".join(parts)


def encode(query: Query, answer: Answer, limit: int | None = None) -> bytes:
    """Encode ``answer`` to ``query``, by hand (``tests/unit/dnslib_encoder.py``
    is the reference it is tested against).

    The question is echoed as asked (case kept: 0x20). With EDNS in the
    query an OPT record with our payload size is added (RFC 6891 section
    6.1.1), the DO bit copied (RFC 3225 section 3), and the options of
    :func:`response_options`; the OPT record is the message's last record
    (so a COOKIE option's data is its last octets). Records carry the
    query's class. The CD bit is copied (RFC 4035 section 3.1.6); the CO
    flag is echoed to a query with DO and CO (RFC 9824 section 4). Extended
    RCODEs (BADVERS) go in the OPT record. Another OPCODE than QUERY gets
    the header :func:`_bare` writes (no records).
    When the message exceeds ``limit`` bytes (UDP), the additional section
    is dropped first (but for its ``answer.required_additional`` leading
    records), then every section with TC set (RFC 2181 section 9, RFC 9471
    section 3.1).
    """
    asked = query.question_wire  # b"": the query had no question to echo
    if query.opcode or (not asked and asked is not None):
        return _bare(query, answer.rcode, answer.cookie)
    flags = (0x8000 | (0x0400 if answer.aa else 0)
             | (0x0100 if query.rd else 0) | (0x0010 if query.cd else 0) | (answer.rcode & 0xF))
    question = _question_wire(query)
    opt = b""
    if query.edns:
        options = b""
        for code, data in response_options(query, answer):
            options += _QFIXED.pack(code, len(data)) + data
        ttl = ((answer.rcode >> 4) << 24) | (0x8000 if query.dnssec_ok else 0) | (
            _FLAG_CO if query.compact_ok and query.dnssec_ok else 0)
        opt = b"\0" + _RR_FIXED.pack(QTYPE_OPT, OUR_UDP_SIZE, ttl, len(options)) + options
    nopt = 1 if opt else 0
    rclass = query.qclass
    an = _section(answer.answer, query.qname_lower, rclass)
    ns = _section(answer.authority, query.qname_lower, rclass)
    ad = _section(answer.additional, query.qname_lower, rclass)
    counts = (len(answer.answer), len(answer.authority), len(answer.additional) + nopt)
    wire = _HEADER.pack(query.id, flags, 1, *counts) + question + an + ns + ad + opt
    if limit is None or len(wire) <= limit:
        return wire
    need = answer.required_additional
    if need:
        ad = _section(answer.additional[:need], query.qname_lower, rclass)
    wire = (_HEADER.pack(query.id, flags, 1, counts[0], counts[1], need + nopt)
            + question + an + ns + (ad if need else b"") + opt)
    if len(wire) <= limit:
        return wire
    return _HEADER.pack(query.id, flags | 0x0200, 1, 0, 0, nopt) + question + opt
