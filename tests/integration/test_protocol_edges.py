"""Protocol edges on real sockets, asked by dnspython, dig and raw packets:
zone transfers REFUSED, Meta-TYPE and QTYPE questions, the flags of
non-QUERY responses, and FORMERR with OPT (docs/operations.md, "Protocol
edges")."""

from __future__ import annotations

import asyncio
import logging
import shutil
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest

from gslb.answering import AnswerSettings, build_authority
from tests.integration.dnsutil import BASE_ZONE, TIMEOUT_S

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
pools:
  p: {policy: weighted, origins: [a]}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: p}
"""

ZONE_NAME = "gslb.example.test."


@pytest.fixture(params=["cache", "no-cache"])
async def server(dns_server, request):
    """A nameserver for ZONE, with the answer cache or without it."""
    running = await dns_server(ZONE)
    if request.param == "no-cache":
        service = running.service
        service.answering.install(build_authority(
            service.config, service.view, None, service.stats, AnswerSettings(answer_cache=0)))
        assert service.answering.authority.cache is None
    return running


async def ask_tcp_many(server, wires: list[bytes]) -> list[bytes]:
    """Send every message of ``wires`` on one TCP connection, one after the
    other; their responses."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    out = []
    try:
        for data in wires:
            writer.write(struct.pack("!H", len(data)) + data)
            await writer.drain()
            (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2),
                                                                    TIMEOUT_S))
            out.append(await asyncio.wait_for(reader.readexactly(length), TIMEOUT_S))
    finally:
        writer.close()
    return out


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
async def test_zone_transfers_are_refused_and_logged_once_per_client(server, rdtype, caplog):
    caplog.set_level(logging.INFO, "gslb.dns")
    q = dns.message.make_query(ZONE_NAME, rdtype)
    replies = await ask_tcp_many(server, [q.to_wire()] * 20)
    replies.append(await server.raw_udp(q.to_wire()))
    for reply in replies:
        msg = dns.message.from_wire(reply)
        assert msg.rcode() == dns.rcode.REFUSED and msg.id == q.id
        assert not msg.flags & dns.flags.AA and not msg.answer
    lines = [r for r in caplog.records if "zone transfers are not served" in r.getMessage()]
    assert len(lines) == 1
    assert (lines[0].client, lines[0].zone, lines[0].qtype) == ("127.0.0.1", ZONE_NAME, rdtype)


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig not installed")
async def test_dig_axfr_is_refused(server):
    proc = await asyncio.create_subprocess_exec(
        "dig", f"@{server.host}", "-p", str(server.port), ZONE_NAME, "AXFR", "+time=2",
        "+tries=1", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert b"Transfer failed" in out


@pytest.mark.parametrize(("rdtype", "rcode"), [
    ("MAILA", dns.rcode.NOTIMP), ("MAILB", dns.rcode.NOTIMP), ("TKEY", dns.rcode.NOTIMP),
    ("OPT", dns.rcode.FORMERR), ("TSIG", dns.rcode.FORMERR), (0, dns.rcode.FORMERR),
    (128, dns.rcode.FORMERR),
])
async def test_meta_types_over_udp_and_tcp(server, rdtype, rcode):
    for qname in (ZONE_NAME, "www." + ZONE_NAME, "elsewhere.example."):
        for tcp in (False, True, False):
            msg = await server.query(qname, rdtype, tcp=tcp)
            assert msg.rcode() == rcode, (qname, tcp)
            assert not msg.flags & dns.flags.AA and msg.edns == 0
            assert msg.question[0].name.to_text() == qname


async def test_any_is_still_answered(server):
    msg = await server.query(ZONE_NAME, "ANY")
    assert msg.rcode() == dns.rcode.NOERROR and msg.answer


ALL_FLAGS = 0x0400 | 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010  # AA TC RD RA Z AD CD


async def test_opcodeflg_as_genreport_asks(server):
    """genreport's opcodeflg: opcode 15, no question, every flag set; the
    answer is NOTIMP with QR and the opcode alone (RFC 1035 section 4.1.1)."""
    for qid in range(1, 40):
        data = struct.pack("!6H", qid, (15 << 11) | ALL_FLAGS, 0, 0, 0, 0)
        for reply in (await server.raw_udp(data), *(await ask_tcp_many(server, [data]))):
            assert reply == struct.pack("!6H", qid, 0x8000 | (15 << 11) | dns.rcode.NOTIMP,
                                        0, 0, 0, 0)


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY,
                                    dns.opcode.UPDATE, 6, 15])
async def test_other_opcodes_keep_opt_and_set_no_query_flags(server, opcode):
    q = dns.message.make_query("www." + ZONE_NAME, "SOA", use_edns=0)
    q.set_opcode(opcode)
    q.flags |= dns.flags.RD | dns.flags.CD | dns.flags.AD
    data = q.to_wire()
    for reply in (await server.raw_udp(data), *(await ask_tcp_many(server, [data, data]))):
        rid, flags, qd, an, ns, ar = struct.unpack_from("!6H", reply)
        assert rid == q.id and flags == 0x8000 | (opcode << 11) | dns.rcode.NOTIMP
        assert (qd, an, ns, ar) == (1 if opcode in (4, 5) else 0, 0, 0, 1)  # the OPT


async def test_formerr_keeps_opt_over_udp_and_tcp(server):
    """A malformed ECS option (RFC 7871 section 6) gets FORMERR with OPT
    (RFC 6891 section 7), the question, and RD copied."""
    q = dns.message.make_query("www." + ZONE_NAME, "A", use_edns=0, want_dnssec=True,
                               options=[dns.edns.GenericOption(dns.edns.ECS, b"\x00\x01\x18")])
    data = q.to_wire()
    for reply in (await server.raw_udp(data), *(await ask_tcp_many(server, [data, data]))):
        msg = dns.message.from_wire(reply)
        assert msg.rcode() == dns.rcode.FORMERR and msg.id == q.id
        assert msg.edns == 0 and msg.payload == 1232 and msg.ednsflags & dns.flags.DO
        assert msg.flags & dns.flags.RD and msg.question == q.question


async def test_formerr_for_no_question_keeps_opt(server):
    q = dns.message.make_query("www." + ZONE_NAME, "A", use_edns=0)
    wire = q.to_wire()
    data = wire[:4] + struct.pack("!H", 0) + wire[6:12] + wire[12 + len(
        b"\x03www\x04gslb\x07example\x04test\x00") + 4:]
    reply = await server.raw_udp(data)
    rid, flags, qd, an, ns, ar = struct.unpack_from("!6H", reply)
    assert rid == q.id and flags & 0xF == dns.rcode.FORMERR and (qd, an, ns, ar) == (0, 0, 0, 1)
    assert dns.message.from_wire(reply).edns == 0
