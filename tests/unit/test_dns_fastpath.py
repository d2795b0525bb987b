"""The hand-written fast path against dnslib, over thousands of randomized
queries: the same decoded query, and answers that read the same to an
independent client (dnspython)."""

from __future__ import annotations

import random

import dns.edns
import dns.flags
import dns.message
import pytest

from gslb.authority import Authority
from gslb.config.load import load
from gslb.dns import wire
from gslb.health.view import QuorumView
from tests.unit.dnslib_encoder import encode_dnslib
from tests.unit.test_dns_wire import ZONE

NAMES = ["www", "txt", "ns1", "@", "nope", "a.b.c", "WwW", "TXT"]
TYPES = ["A", "AAAA", "TXT", "NS", "SOA", "MX", "ANY", "CNAME", "SRV", "CAA"]


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    path = tmp_path_factory.mktemp("z") / "zone.yaml"
    path.write_text(ZONE.replace('txt: {TXT: \'"hello"\'}',
                                 'txt: {TXT: [' + ", ".join(f'"{"x" * 90} {i}"' for i in range(8))
                                 + "]}"))
    return Authority(load([path]), QuorumView(), rng=random.Random(1), server_id="ns1.test")


def random_query(rng: random.Random) -> bytes:
    name = rng.choice(NAMES)
    qname = "example.test." if name == "@" else f"{name}.example.test."
    rdclass = "IN"
    if rng.random() < 0.1:  # server identification (RFC 4892)
        qname, rdclass = rng.choice(["id.server.", "hostname.bind.", "version.bind."]), "CH"
    qname = "".join(c.upper() if rng.random() < 0.3 else c for c in qname)
    edns = rng.random() < 0.8
    options = []
    if edns and rng.random() < 0.6:
        if rng.random() < 0.7:
            subnet = f"81.2.{rng.randrange(256)}.0"
            options.append(dns.edns.ECSOption(subnet, rng.choice([0, 8, 24])))
        else:
            options.append(dns.edns.ECSOption("2001:db8::", rng.choice([32, 48, 56])))
    if edns and rng.random() < 0.3:  # NSID (RFC 5001), before or after ECS
        options.insert(rng.randrange(len(options) + 1), dns.edns.GenericOption(3, b""))
    q = dns.message.make_query(qname, rng.choice(TYPES), rdclass, use_edns=0 if edns else False,
                               payload=rng.choice([512, 1232, 4096, 600]), options=options,
                               want_dnssec=edns and rng.random() < 0.3)
    q.id = rng.randrange(65536)
    if rng.random() < 0.3:
        q.flags &= ~dns.flags.RD
    return q.to_wire()


def test_fast_decode_matches_dnslib_and_answers_read_the_same(authority):
    rng = random.Random(2026)
    for _ in range(3000):
        data = random_query(rng)
        fast = wire._decode_fast(data)
        slow = wire.decode_dnslib(data)
        assert fast is not None
        for field in ("id", "opcode", "rd", "qname", "qname_lower", "qtype", "qclass", "edns",
                      "edns_version", "dnssec_ok", "udp_limit", "ecs", "nsid"):
            assert getattr(fast, field) == getattr(slow, field), (field, data.hex())
        answer = authority.lookup(fast, "127.0.0.1").answer
        answer.nsid = authority.server_id if fast.nsid else None
        for limit in (None, fast.udp_limit):
            mine = dns.message.from_wire(wire.encode(fast, answer, limit))
            ref = dns.message.from_wire(encode_dnslib(slow, answer, limit))
            assert mine.to_text() == ref.to_text(), data.hex()
            assert mine.question[0].name.to_text() == ref.question[0].name.to_text()


@pytest.mark.parametrize(
    "data",
    [
        # compression pointer in the question, two questions, an answer RR
        bytes.fromhex("12340100000100000000000003777777076578616d706c6504746573740000010001")[:-6]
        + bytes.fromhex("c00c00010001"),
        bytes.fromhex("123401000002000000000000") + b"\x00\x00\x01\x00\x01" * 2,
        bytes.fromhex("123401000001000100000000") + b"\x00\x00\x01\x00\x01"
        + b"\x00\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x01\x02\x03\x04",
        # an escaped octet in a label: dnslib's presentation form
        bytes.fromhex("123401000001000000000000") + b"\x03a.b\x00\x00\x01\x00\x01",
        # trailing octets after the question
        bytes.fromhex("123401000001000000000000") + b"\x00\x00\x01\x00\x01junk",
    ],
)
def test_unusual_shapes_take_the_dnslib_path(data):
    assert wire._decode_fast(data) is None
