"""``gslb.dns.wire.encode`` written again through dnslib: the reference the
hand-written encoder is tested against (``test_dns_fastpath.py``,
``test_compiled_zone.py``). Test code only; gslb never encodes through dnslib."""

from __future__ import annotations

from dnslib import (
    EDNS0,
    QTYPE,
    RD,
    RDMAP,
    RR,
    DNSBuffer,
    DNSHeader,
    DNSQuestion,
    DNSRecord,
    EDNSOption,
)

from gslb.dns.wire import OUR_UDP_SIZE, Answer, Query, Rdata, response_options


def dnslib_rdata(rdata: Rdata) -> RD:
    """The dnslib RDATA object of ``rdata``, parsed back from its octets."""
    cls = RDMAP.get(QTYPE.get(rdata.rtype), RD)
    return cls.parse(DNSBuffer(rdata.wire), len(rdata.wire))


def _rr(owner: str, rtype: int, ttl: int, rdata: Rdata, asked: Query) -> RR:
    name = asked.label or asked.qname if owner == asked.qname_lower else owner
    return RR(name, rtype, asked.qclass, ttl, dnslib_rdata(rdata))


def encode_dnslib(query: Query, answer: Answer, limit: int | None = None) -> bytes:
    """``encode`` through dnslib.

    The question is echoed as asked (case kept: 0x20). With EDNS in the
    query an OPT record with our payload size is added (RFC 6891 section
    6.1.1), with the options of ``wire.response_options``. Records carry the
    query's class (IN, or CH for RFC 4892 queries). Extended RCODEs
    (BADVERS) go in the OPT record. When the message exceeds ``limit`` bytes
    (UDP), the additional section is dropped first (but for its
    ``answer.required_additional`` leading records), then every section with
    TC set (RFC 2181 section 9, RFC 9471 section 3.1).
    """
    header = DNSHeader(id=query.id, qr=1, opcode=query.opcode, aa=int(answer.aa),
                       rd=int(query.rd), rcode=answer.rcode & 0xF)
    msg = DNSRecord(header, q=DNSQuestion(query.label or query.qname, query.qtype, query.qclass))
    opt: RR | None = None
    if query.edns:
        options = [EDNSOption(code, data) for code, data in response_options(query, answer)]
        opt = EDNS0(udp_len=OUR_UDP_SIZE, ext_rcode=answer.rcode >> 4, opts=options,
                    flags="do" if query.dnssec_ok else "")
    for section, add in ((answer.answer, msg.add_answer), (answer.authority, msg.add_auth),
                         (answer.additional, msg.add_ar)):
        for owner, rtype, ttl, rdata in section:
            add(_rr(owner, rtype, ttl, rdata, query))
    if opt is not None:
        msg.add_ar(opt)
    wire = bytes(msg.pack())
    if limit is None or len(wire) <= limit:
        return wire
    msg.ar = msg.ar[:answer.required_additional] + ([opt] if opt is not None else [])
    msg.set_header_qa()
    wire = bytes(msg.pack())
    if len(wire) <= limit:
        return wire
    msg.rr, msg.auth, msg.ar = [], [], [opt] if opt is not None else []
    msg.header.tc = 1
    msg.set_header_qa()
    return bytes(msg.pack())
