"""The compiled zone stays small: RDATA shared, no dnslib objects kept,
empty non-terminals kept apart from owners; answers as before."""

from __future__ import annotations

import gc
import ipaddress
import random
import shlex
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from dnslib import RR

from gslb.authority import Authority, Kind, respond
from gslb.config.load import load
from gslb.dns import wire, zonetext
from gslb.health.view import QuorumView
from tests.unit.dnslib_encoder import dnslib_rdata, encode_dnslib

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
        NS: [ns1, ns2.other.test.]
      ns1: {A: 127.0.0.1}
      one: {A: 192.0.2.7, MX: 10 mail}
      two: {A: [192.0.2.7, 192.0.2.8], MX: 10 mail}
      six: {AAAA: "2001:db8::7"}
      deep.down.ent: {A: 192.0.2.7}
      www.www2: {gslb: p}
      alias: {CNAME: one}
      sub: {NS: ns.sub}
      ns.sub: {A: 192.0.2.53}
"""

SAMPLES = [
    ("A", "192.0.2.1"), ("A", "0.0.0.0"), ("AAAA", "2001:db8::1"), ("AAAA", "::ffff:102:304"),
    ("NS", "ns1.example.test."), ("CNAME", "Www.Example.Test."),
    ("MX", "10 mail.example.test."), ("TXT", '"hello world" "two"'),
    ("SRV", "1 2 3 sip.example.test."), ("CAA", '0 issue "letsencrypt.org"'),
    ("SOA", "ns1.example.test. hostmaster.example.test. 1 3600 600 86400 60"),
]


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    path: Path = tmp_path_factory.mktemp("z") / "zone.yaml"
    path.write_text(ZONE)
    return Authority(load([path]), QuorumView(), rng=random.Random(1), cache_entries=0)


@pytest.mark.parametrize(("rtype", "text"), SAMPLES)
def test_rdata_matches_dnslib(rtype: str, text: str) -> None:
    ref = RR.fromZone(f"@ 0 IN {rtype} {text}")[0].rdata
    buf = wire._Uncompressed()
    ref.pack(buf)
    rdata = wire.compile_rdata(rtype, text)
    assert rdata.wire == bytes(buf.data)
    assert str(rdata) == str(ref)
    assert rdata.rtype == wire.qtype_code(rtype)
    again = wire._Uncompressed()
    back = dnslib_rdata(rdata)  # the octets parse back to the same RDATA
    back.pack(again)
    assert bytes(again.data) == rdata.wire and str(back) == str(ref)


def test_address_text_is_the_configs_own_string() -> None:
    text = "".join(["192.0.2.", "9"])
    assert wire.compile_rdata("A", text).text is text
    assert wire.compile_rdata("A", "1.2.3.04").text == "1.2.3.4"  # as dnslib reads it


def test_bad_rdata_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bad MX data"):
        wire.compile_rdata("MX", "ten mail.")


def test_equal_rdata_is_compiled_once(authority: Authority) -> None:
    zone = authority.zones["example.test."]
    one, two = zone.rrsets["one.example.test."], zone.rrsets["two.example.test."]
    a, mx = dns.rdatatype.A, dns.rdatatype.MX
    assert one[a][0][3] is two[a][0][3] is zone.rrsets["deep.down.ent.example.test."][a][0][3]
    assert one[mx][0][3] is two[mx][0][3]
    assert two[a][1][3] is not two[a][0][3]
    assert isinstance(one[a], tuple)


def test_empty_non_terminals(authority: Authority) -> None:
    zone = authority.zones["example.test."]
    assert zone.ents == {"down.ent.example.test.", "ent.example.test.",
                         "www2.example.test."}
    for name, kind in [("ent.example.test.", Kind.NODATA),
                       ("down.ent.example.test.", Kind.NODATA),
                       ("www2.example.test.", Kind.NODATA),
                       ("deep.down.ent.example.test.", Kind.ANSWER),
                       ("www.www2.example.test.", Kind.ANSWER),
                       ("one.example.test.", Kind.NODATA),
                       ("other.ent.example.test.", Kind.NXDOMAIN),
                       ("nope.example.test.", Kind.NXDOMAIN)]:
        qtype = "TXT" if name == "one.example.test." else "A"
        query = wire.decode(dns.message.make_query(name, qtype).to_wire())
        assert authority.lookup(query, "192.0.2.99").kind is kind, name


@pytest.mark.parametrize(("qname", "qtype", "rcode", "count"), [
    ("one.example.test.", "A", dns.rcode.NOERROR, 1),
    ("two.example.test.", "A", dns.rcode.NOERROR, 2),
    ("six.example.test.", "AAAA", dns.rcode.NOERROR, 1),
    ("alias.example.test.", "MX", dns.rcode.NOERROR, 2),
    ("www.www2.example.test.", "A", dns.rcode.NOERROR, 1),
    ("ent.example.test.", "A", dns.rcode.NOERROR, 0),
    ("nope.example.test.", "A", dns.rcode.NXDOMAIN, 0),
])
def test_answers_through_both_encoders(authority: Authority, qname: str, qtype: str,
                                       rcode: int, count: int) -> None:
    data = dns.message.make_query(qname, qtype).to_wire()
    msg = dns.message.from_wire(respond(authority, data, "192.0.2.99", True))
    assert msg.rcode() == rcode and sum(len(r) for r in msg.answer) == count
    query = wire.decode(data)
    answer = authority.lookup(query, "192.0.2.99").answer
    fast = dns.message.from_wire(wire.encode(query, answer))
    slow = dns.message.from_wire(encode_dnslib(query, answer))
    assert fast.answer == slow.answer and fast.authority == slow.authority


def test_referral_glue(authority: Authority) -> None:
    data = dns.message.make_query("www.sub.example.test.", "A").to_wire()
    msg = dns.message.from_wire(respond(authority, data, "192.0.2.99", True))
    assert [str(r.name) for r in msg.authority] == ["sub.example.test."]
    assert [str(r.name) for r in msg.additional] == ["ns.sub.example.test."]


def test_rdata_helpers_leave_no_cyclic_garbage() -> None:
    # config loading pauses the cyclic collector: a cycle per record would
    # pile up until the load ends
    gc.collect()
    gc.disable()
    try:
        for i in range(20):
            zonetext.normalize_rdata("MX", f"10 mail{i}", "example.test.")
            wire.compile_rdata("TXT", f'"text {i}"')
        assert gc.collect() == 0
    finally:
        gc.enable()


@pytest.mark.parametrize("text", ["", "a", "10 mail", " 1  2\t3 sip ", "a\r\nb", "x#y z",
                                  "0 issue letsencrypt.org", "~!@$%^&*()-_=+[]{}|;:,.<>/?`"])
def test_unquoted_text_splits_as_shlex_does(text: str) -> None:
    assert zonetext._UNQUOTED.fullmatch(text)
    assert text.split() == shlex.split(text, posix=False)


@pytest.mark.parametrize("text", ['"a b"', "it's", "a\x0bb", "a\x1cb", "é b"])
def test_other_text_goes_through_shlex(text: str) -> None:
    assert not zonetext._UNQUOTED.fullmatch(text)


@pytest.mark.parametrize("text", ["192.0.2.1", "0.0.0.0", "255.255.255.255", "01.2.3.4",
                                  "1.2.3", "256.1.1.1", "::1", "1.2.3.4 ", "١.2.3.4"])
def test_ipv4_shortcut_agrees_with_ipaddress(text: str) -> None:
    try:
        ref = ipaddress.ip_address(text)
    except ValueError:
        ref = None
    fast = zonetext._ipv4_text(text)
    assert fast is None or (ref is not None and ref.version == 4 and str(ref) == fast)
    if ref is not None and ref.version == 4 and str(ref) == text:
        assert fast == text
        assert zonetext.normalize_rdata("A", text, "example.test.") == text
