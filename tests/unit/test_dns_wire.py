"""Wire decoding/encoding and the bytes-in, bytes-out answer path, fuzzed."""

from __future__ import annotations

import random
import struct

import dns.edns
import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.authority import Authority, respond
from gslb.config.load import load
from gslb.dns import wire
from gslb.dns.edns import EcsError, parse_ecs
from gslb.health.view import QuorumView

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
pools:
  p: {policy: weighted, origins: [a]}
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 127.0.0.1}
      www: {gslb: p}
      txt: {TXT: '"hello"'}
"""


@pytest.fixture(scope="module")
def authority(tmp_path_factory) -> Authority:
    path = tmp_path_factory.mktemp("z") / "zone.yaml"
    path.write_text(ZONE)
    return Authority(load([path]), QuorumView(), rng=random.Random(1))


GOOD = dns.message.make_query("www.example.test.", "A", use_edns=0,
                              options=[dns.edns.ECSOption("81.2.69.0", 24)]).to_wire()


@settings(max_examples=3000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_junk_never_raises(authority, data):
    reply = respond(authority, data, "127.0.0.1", True)
    if reply is not None:
        assert len(reply) >= 12 and reply[:2] == data[:2] and reply[2] & 0x80


@settings(max_examples=3000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(GOOD)))
def test_mutated_queries_never_raise(authority, flips, cut):
    data = bytearray(GOOD)
    for pos, value in flips:
        data[pos] = value
    data = bytes(data[:cut]) if cut >= 12 else bytes(data)
    reply = respond(authority, data, "127.0.0.1", True)
    if reply is not None:
        assert reply[:2] == data[:2] and reply[2] & 0x80
        opcode = (reply[2] >> 3) & 0xF
        if opcode == 0:
            dns.message.from_wire(reply)  # well-formed
        else:  # other opcodes get NOTIMP (dnspython reads UPDATE sections differently),
            # unless the EDNS version is unknown: BADVERS (16) has 0 in the header
            assert reply[3] & 0xF in (dns.rcode.NOTIMP, dns.rcode.FORMERR, 0)


def test_responses_are_dropped(authority):
    reply = respond(authority, GOOD, "127.0.0.1", True)
    assert reply is not None
    assert respond(authority, reply, "127.0.0.1", True) is None  # QR set: no answer
    assert respond(authority, GOOD[:11], "127.0.0.1", True) is None  # no header


def test_unparseable_query_gets_formerr_with_its_id(authority):
    data = GOOD[:12] + b"\x3fjunk"
    reply = respond(authority, data, "127.0.0.1", True)
    (rid, flags, qd, an, ns, ar) = struct.unpack("!6H", reply)
    assert rid == struct.unpack("!H", GOOD[:2])[0]
    assert flags & 0xF == dns.rcode.FORMERR and (qd, an, ns, ar) == (0, 0, 0, 0)


def test_udp_limit_from_edns_payload():
    for payload, limit in ((0, 512), (512, 512), (1000, 1000), (4096, 1232), (65535, 1232)):
        q = dns.message.make_query("x.example.test.", "A", use_edns=0, payload=payload)
        assert wire.decode(q.to_wire()).udp_limit == limit
    q = dns.message.make_query("x.example.test.", "A", use_edns=False)
    assert wire.decode(q.to_wire()).udp_limit == 512


@pytest.mark.parametrize(
    ("hexdata", "family", "source", "address"),
    [
        ("00011800510245", 1, 24, "81.2.69.0"),
        ("0001200051024501", 1, 32, "81.2.69.1"),
        ("00010000", 1, 0, "0.0.0.0"),
        ("0002380020010db8000000", 2, 56, "2001:db8::"),
    ],
)
def test_parse_ecs(hexdata, family, source, address):
    ecs = parse_ecs(bytes.fromhex(hexdata))
    assert (ecs.family, ecs.source, ecs.address) == (family, source, address)
    echo = ecs.echo(24)
    assert echo[:3] == bytes.fromhex(hexdata)[:3] and echo[4:] == bytes.fromhex(hexdata)[4:]
    assert echo[3] == min(24, 32 if family == 1 else 128)


@pytest.mark.parametrize("hexdata", ["000118005102", "00011700510245", "00012100510245",
                                     "00030800", "00011810510245", "0001", "000281"])
def test_parse_ecs_rejects_malformed(hexdata):
    with pytest.raises(EcsError):
        parse_ecs(bytes.fromhex(hexdata))
