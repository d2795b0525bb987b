"""The nameserver on real sockets, asked by dnspython: every DNS rule of the
`gslb serve` issue (authoritative answers, negative answers, EDNS, ECS,
truncation, TCP, malformed input)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from gslb.dns.server import UDP_RCVBUF, TcpLimits, enlarge_receive_buffer
from tests.integration.dnsutil import BASE_ZONE, addresses

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

ZONE = """
origins:
  a: {ipv4: [192.0.2.1], ipv6: ["2001:db8::1"]}
  b: {ipv4: [192.0.2.2]}
  c: {ipv4: [192.0.2.3], weight: 3}
pools:
  both: {policy: all, origins: [a, b]}
  v4only: {policy: weighted, origins: [b]}
  heavy: {policy: weighted, origins: [a, c]}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: {pool: both, ttl: 20}}
      v4: {gslb: v4only}
      heavy: {gslb: heavy}
      static:
        A: {ttl: 60, values: [192.0.2.10, 192.0.2.11]}
        AAAA: "2001:db8::10"
        MX: 10 mail.example.test.
        TXT: '"hello world"'
        SRV: 10 5 5060 sip.example.test.
        CAA: 0 issue "letsencrypt.org"
      deep.below.ent: {A: 192.0.2.20}
      alias: {CNAME: static}
      alias2: {CNAME: alias}
      outside: {CNAME: www.example.org.}
      toGslb: {CNAME: www}
      big:
        TXT: [{big}]
      child: {NS: [ns.child]}
      ns.child: {A: 192.0.2.53}
  other.test:
    records:
      "@":
        SOA: ns1.other.test. hostmaster.other.test. 7 3600 600 86400 5
        NS: ns1.other.test.
      ns1: {A: 127.0.0.9}
      host: {A: 198.51.100.1}
""".replace("{big}", ", ".join(f'"{"x" * 200} {i}"' for i in range(6)))


@pytest.fixture
async def server(dns_server):
    return await dns_server(ZONE)


@pytest.mark.parametrize(
    ("qname", "rdtype", "expected"),
    [
        ("static.gslb.example.test.", "A", {"192.0.2.10", "192.0.2.11"}),
        ("static.gslb.example.test.", "AAAA", {"2001:db8::10"}),
        ("static.gslb.example.test.", "MX", {"10 mail.example.test."}),
        ("static.gslb.example.test.", "TXT", {'"hello world"'}),
        ("static.gslb.example.test.", "SRV", {"10 5 5060 sip.example.test."}),
        ("static.gslb.example.test.", "CAA", {'0 issue "letsencrypt.org"'}),
        ("gslb.example.test.", "NS", {"ns1.gslb.example.test.", "ns2.gslb.example.test."}),
        ("host.other.test.", "A", {"198.51.100.1"}),
    ],
)
async def test_static_rrsets_are_answered_authoritatively(server, qname, rdtype, expected):
    msg = await server.query(qname, rdtype)
    assert msg.rcode() == dns.rcode.NOERROR
    assert msg.flags & dns.flags.AA
    assert {rr.to_text() for rrset in msg.answer for rr in rrset} == expected


async def test_soa_and_ttl(server):
    msg = await server.query("gslb.example.test.", "SOA")
    (rrset,) = msg.answer
    assert rrset.ttl == 300
    assert rrset[0].serial == 1 and rrset[0].minimum == 30
    msg = await server.query("static.gslb.example.test.", "A")
    assert msg.answer[0].ttl == 60


@pytest.mark.parametrize(
    ("qname", "rdtype", "rcode", "soa_ttl"),
    [
        ("nope.gslb.example.test.", "A", dns.rcode.NXDOMAIN, 30),  # min(300, 30)
        ("static.gslb.example.test.", "NS", dns.rcode.NOERROR, 30),  # NODATA
        ("below.ent.gslb.example.test.", "A", dns.rcode.NOERROR, 30),  # empty non-terminal
        ("v4.gslb.example.test.", "AAAA", dns.rcode.NOERROR, 30),  # pool has no IPv6
        ("nope.other.test.", "A", dns.rcode.NXDOMAIN, 5),  # min(3600, 5)
    ],
)
async def test_negative_answers_carry_soa_with_rfc2308_ttl(server, qname, rdtype, rcode, soa_ttl):
    msg = await server.query(qname, rdtype)
    assert msg.rcode() == rcode
    assert msg.flags & dns.flags.AA
    assert msg.answer == []
    (soa,) = msg.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.ttl == soa_ttl


async def test_outside_every_zone_is_refused(server):
    msg = await server.query("www.example.org.", "A")
    assert msg.rcode() == dns.rcode.REFUSED
    assert not msg.flags & dns.flags.AA


async def test_gslb_answers_by_family_with_record_ttl(server):
    msg = await server.query("www.gslb.example.test.", "A")
    assert sorted(addresses(msg)) == ["192.0.2.1", "192.0.2.2"]
    assert msg.answer[0].ttl == 20
    msg = await server.query("www.gslb.example.test.", "AAAA")
    assert addresses(msg) == ["2001:db8::1"]
    msg = await server.query("v4.gslb.example.test.", "A")
    assert addresses(msg) == ["192.0.2.2"] and msg.answer[0].ttl == 30  # default TTL


async def test_qname_case_is_echoed(server):
    msg = await server.query("StAtIc.GsLb.ExAmPlE.tEsT.", "A")
    assert msg.question[0].name.to_text() == "StAtIc.GsLb.ExAmPlE.tEsT."
    assert msg.answer[0].name.to_text() == "StAtIc.GsLb.ExAmPlE.tEsT."
    msg = await server.query("WWW.gslb.example.TEST.", "A")
    assert msg.answer[0].name.to_text() == "WWW.gslb.example.TEST."


async def test_cname_chain_is_followed_inside_the_zone(server):
    msg = await server.query("alias2.gslb.example.test.", "A")
    types = [rrset.rdtype for rrset in msg.answer]
    assert types == [dns.rdatatype.CNAME, dns.rdatatype.CNAME, dns.rdatatype.A]
    assert set(addresses(msg)) == {"192.0.2.10", "192.0.2.11"}
    msg = await server.query("toGslb.gslb.example.test.", "A")
    assert sorted(addresses(msg)) == ["192.0.2.1", "192.0.2.2"]
    msg = await server.query("outside.gslb.example.test.", "A")
    assert [r.rdtype for r in msg.answer] == [dns.rdatatype.CNAME]
    msg = await server.query("alias.gslb.example.test.", "CNAME")
    assert [r.rdtype for r in msg.answer] == [dns.rdatatype.CNAME]


async def test_delegation_gives_a_referral_with_glue(server):
    msg = await server.query("www.child.gslb.example.test.", "A")
    assert msg.rcode() == dns.rcode.NOERROR
    assert not msg.flags & dns.flags.AA
    assert msg.answer == []
    assert msg.authority[0].rdtype == dns.rdatatype.NS
    assert [rr.address for rrset in msg.additional for rr in rrset] == ["192.0.2.53"]


async def test_any_is_answered_minimally(server):
    msg = await server.query("static.gslb.example.test.", "ANY")
    assert msg.rcode() == dns.rcode.NOERROR
    assert len(msg.answer) == 1  # one RRset (RFC 8482 section 4.1)
    msg = await server.query("www.gslb.example.test.", "ANY")
    assert len(msg.answer) == 1 and msg.answer[0].rdtype == dns.rdatatype.A


async def test_edns_opt_is_echoed_with_our_payload_size(server):
    msg = await server.query("static.gslb.example.test.", "A", payload=4096)
    assert msg.edns == 0
    assert msg.payload == 1232
    msg = await server.query("static.gslb.example.test.", "A", edns=False)
    assert msg.edns == -1


async def test_edns_version_above_zero_gets_badvers(server):
    msg = await server.query("static.gslb.example.test.", "A", edns=1)
    assert msg.rcode() == dns.rcode.BADVERS
    assert msg.edns == 0


async def test_other_opcodes_get_notimp(server):
    q = dns.message.make_query("static.gslb.example.test.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    reply = await server.raw_udp(q.to_wire())
    msg = dns.message.from_wire(reply)
    assert msg.rcode() == dns.rcode.NOTIMP
    assert msg.id == q.id


@pytest.mark.parametrize("qdcount", [0, 2])
async def test_qdcount_other_than_one_gets_formerr(server, qdcount):
    q = dns.message.make_query("static.gslb.example.test.", "A", use_edns=False)
    wire = q.to_wire()
    question = wire[12:]
    data = wire[:4] + struct.pack("!HHHH", qdcount, 0, 0, 0) + question * qdcount
    reply = await server.raw_udp(data)
    assert reply is not None
    (rid, flags) = struct.unpack_from("!HH", reply)
    assert rid == q.id and flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR


async def test_garbage_never_stalls_the_server(server):
    """A burst of junk and mutated queries, then a good query on the same
    socket: every reply is a response to the packet's ID, and the good query
    is answered."""
    rng = random.Random(7)
    good = dns.message.make_query("static.gslb.example.test.", "A").to_wire()
    packets = []
    for i in range(1000):
        if i % 2:
            packets.append(bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 5, 12, 40]))))
        else:  # a real query with a few bytes flipped
            data = bytearray(good)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data[2] &= 0x7F  # keep QR clear so it is taken as a query
            packets.append(bytes(data))
    loop = asyncio.get_running_loop()
    replies: list[bytes] = []
    pings: dict[bytes, asyncio.Future[bytes]] = {}

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, reply: bytes, addr: object) -> None:
            waiter = pings.pop(reply[:2], None)
            if waiter is not None:
                waiter.set_result(reply)
            else:
                replies.append(reply)

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=(server.host, server.port))
    try:
        for batch in range(0, len(packets), 20):  # 20 packets, then a ping that must be answered
            for data in packets[batch:batch + 20]:
                transport.sendto(data)
            ping = dns.message.make_query("static.gslb.example.test.", "A")
            ping.id = 65535 - batch
            pings[ping.to_wire()[:2]] = waiter = loop.create_future()
            transport.sendto(ping.to_wire())
            reply = dns.message.from_wire(await asyncio.wait_for(waiter, 2))
    finally:
        transport.close()
    assert reply.rcode() == dns.rcode.NOERROR and addresses(reply)
    sent_ids = {p[:2] for p in packets if len(p) >= 12}
    for r in replies:
        assert len(r) >= 12 and r[2] & 0x80 and r[:2] in sent_ids
    assert len(replies) > 100  # most mutated queries get an answer or FORMERR


async def test_truncation_over_udp_and_full_answer_over_tcp(server):
    msg = await server.query("big.gslb.example.test.", "TXT", edns=False)
    assert msg.flags & dns.flags.TC
    assert msg.answer == []
    msg = await server.query("big.gslb.example.test.", "TXT", tcp=True, edns=False)
    assert not msg.flags & dns.flags.TC
    assert len(msg.answer[0]) == 6
    # with EDNS 1232 the ~1.3 kB answer still does not fit
    msg = await server.query("big.gslb.example.test.", "TXT", payload=1232)
    assert msg.flags & dns.flags.TC
    # a small answer fits in 512 without EDNS
    msg = await server.query("static.gslb.example.test.", "A", edns=False)
    assert not msg.flags & dns.flags.TC and addresses(msg)


async def test_several_queries_on_one_tcp_connection(server):
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        queries = [dns.message.make_query(f"{n}.gslb.example.test.", "A")
                   for n in ("static", "www", "nope")]
        for q in queries:  # pipelined: all sent before reading
            wire = q.to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
        await writer.drain()
        for q in queries:
            (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 2))
            reply = dns.message.from_wire(await reader.readexactly(length))
            assert reply.id == q.id
    finally:
        writer.close()


async def test_idle_tcp_connection_is_closed(dns_server):
    server = await dns_server(ZONE)
    server.service.server.tcp = TcpLimits(idle_s=0.2)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        assert await asyncio.wait_for(reader.read(), 3) == b""  # EOF: closed by server
    finally:
        writer.close()


async def test_listens_on_ipv6(dns_server):
    server = await dns_server(ZONE, listen=[("::1", 0)])
    assert server.host == "::1"
    msg = await server.query("static.gslb.example.test.", "A")
    assert set(addresses(msg)) == {"192.0.2.10", "192.0.2.11"}
    msg = await server.query("static.gslb.example.test.", "A", tcp=True)
    assert set(addresses(msg)) == {"192.0.2.10", "192.0.2.11"}


async def test_ecs_scope_is_zero_for_client_independent_answers(server):
    for qname in ("www.gslb.example.test.", "static.gslb.example.test.",
                  "nope.gslb.example.test."):
        msg = await server.query(qname, "A", ecs=("81.2.69.0", 24))
        (opt,) = [o for o in msg.options if o.otype == dns.edns.ECS]
        assert (opt.address, opt.srclen, opt.scopelen) == ("81.2.69.0", 24, 0)


@pytest.mark.parametrize(
    "option",
    [
        bytes.fromhex("0001200051024500"),  # /32 with its 4 octets
        bytes.fromhex("00011800510245"),  # valid /24 (control)
    ],
)
async def test_valid_ecs_is_accepted(server, option):
    q = dns.message.make_query("static.gslb.example.test.", "A", use_edns=0,
                               options=[dns.edns.GenericOption(8, option)])
    msg = dns.message.from_wire(await server.raw_udp(q.to_wire()))
    assert msg.rcode() == dns.rcode.NOERROR


@pytest.mark.parametrize(
    "option",
    [
        bytes.fromhex("000118005102"),  # /24 with only 2 address octets
        bytes.fromhex("0001180051024501"),  # /24 with 4 octets
        bytes.fromhex("00011700510245"),  # /23 with a bit set beyond the prefix
        bytes.fromhex("00012100510245"),  # /33 for IPv4
        bytes.fromhex("00030800"),  # unknown family
        bytes.fromhex("00011810510245"),  # scope set in a query
        bytes.fromhex("0001"),  # too short
    ],
)
async def test_malformed_ecs_gets_formerr(server, option):
    q = dns.message.make_query("static.gslb.example.test.", "A", use_edns=0,
                               options=[dns.edns.GenericOption(8, option)])
    reply = await server.raw_udp(q.to_wire())
    msg = dns.message.from_wire(reply)
    assert msg.rcode() == dns.rcode.FORMERR


async def test_weighted_answers_follow_the_weights(server):
    counts = {"192.0.2.1": 0, "192.0.2.3": 0}
    for _ in range(400):
        (address,) = addresses(await server.query("heavy.gslb.example.test.", "A"))
        counts[address] += 1
    # weight 1 : 3 → 100 : 300 expected; 4.5 standard deviations of slack
    assert 260 <= counts["192.0.2.3"] <= 340, counts


def nsid_query(qname: str, *options: dns.edns.Option) -> dns.message.Message:
    return dns.message.make_query(qname, "A", use_edns=0,
                                  options=[*options, dns.edns.GenericOption(3, b"")])


def nsid_of(msg: dns.message.Message) -> bytes | None:
    found = [o for o in msg.options if o.otype == dns.edns.NSID]
    assert len(found) <= 1
    return found[0].to_wire() if found else None


async def test_nsid_names_the_server_when_configured(dns_server):
    plain, named = await dns_server(ZONE), await dns_server(ZONE, server_id="ns1.example")
    ecs = dns.edns.ECSOption("81.2.69.0", 24)
    for qname in ("www.gslb.example.test.", "nope.gslb.example.test.", "www.elsewhere."):
        for _ in range(2):  # the second from the answer cache
            q = nsid_query(qname, ecs)
            msg = dns.message.from_wire(await named.raw_udp(q.to_wire()))
            assert nsid_of(msg) == b"ns1.example", qname  # RFC 5001 section 2.3
            (echo,) = [o for o in msg.options if o.otype == dns.edns.ECS]
            assert (echo.address, echo.srclen) == ("81.2.69.0", 24)
            msg = dns.message.from_wire(await plain.raw_udp(q.to_wire()))
            assert nsid_of(msg) is None  # no identity configured: the option is ignored
    # not asked for: not sent, even from the same cache
    msg = await named.query("www.gslb.example.test.", ecs=("81.2.69.0", 24))
    assert nsid_of(msg) is None and addresses(msg)


async def test_chaos_id_server_gives_the_identity_or_refused(dns_server):
    plain, named = await dns_server(ZONE), await dns_server(ZONE, server_id="ns1.example")

    async def ask(server, qname: str, rdtype: str = "TXT") -> dns.message.Message:
        q = dns.message.make_query(qname, rdtype, "CH")
        return dns.message.from_wire(await server.raw_udp(q.to_wire()))

    for qname in ("id.server.", "HOSTNAME.bind."):  # RFC 4892 section 2.3, BIND's name
        msg = await ask(named, qname)
        assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
        (rrset,) = msg.answer
        assert rrset.rdclass == dns.rdataclass.CH and rrset.ttl == 0
        assert [rr.strings for rr in rrset] == [(b"ns1.example",)]
        assert (await ask(plain, qname)).rcode() == dns.rcode.REFUSED
    nodata = await ask(named, "id.server.", "A")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    for qname in ("version.bind.", "www.gslb.example.test."):
        assert (await ask(named, qname)).rcode() == dns.rcode.REFUSED


async def test_a_burst_of_queries_waits_in_the_socket_buffer_instead_of_being_dropped(server):
    # 2,000 queries arrive while the event loop is busy (this test sends
    # them without yielding to it): the kernel must hold them all until the
    # server reads. Linux's default receive buffer holds a few hundred.
    n = 2000
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if enlarge_receive_buffer(client) < UDP_RCVBUF:
            pytest.skip("net.core.rmem_max too small and not root: no room for the replies")
        client.connect((server.host, server.port))
        query = dns.message.make_query("static.gslb.example.test.", "A")
        for i in range(n):
            query.id = i
            client.send(query.to_wire())
        client.setblocking(False)
        ids: set[int] = set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(ids) < n and loop.time() < deadline:
            await asyncio.sleep(0.01)  # the server reads, 64 datagrams per wake-up
            with contextlib.suppress(BlockingIOError):
                while True:
                    ids.add(dns.message.from_wire(client.recv(4096)).id)
        assert len(ids) == n
    finally:
        client.close()
