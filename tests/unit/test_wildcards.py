"""Wildcard owners (RFC 4592): the example zone of section 2.2.1 answered
query by query, the rules of section 3.3.1 (closest encloser, no match at or
below an existing name, none across a cut), CNAME and GSLB records at a
wildcard, the owner as asked on cache hits, and ``gslb check`` refusing a
``*`` that is not a whole label or an NS RRset at a wildcard."""

from __future__ import annotations

import asyncio
import random
import textwrap
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from gslb.authority import Authority, Kind, respond
from gslb.config.load import load
from gslb.dns import wire
from gslb.errors import ConfigError
from gslb.health.view import QuorumView
from tests.integration.dnsutil import start

#: RFC 4592 section 2.2.1, the example zone, as a gslb config; with a CNAME
#: and GSLB records at wildcards in a second zone.
CONFIG = """
origins:
  a: {ipv4: [192.0.2.101], ipv6: ["2001:db8::101"]}
  b: {ipv4: [192.0.2.102]}
pools:
  web: {policy: all, origins: [a, b]}
  v4: {policy: weighted, origins: [b]}
zones:
  example:
    ttl: 3600
    records:
      "@":
        SOA: ns.example.com. hostmaster.example. 1 3600 600 86400 60
        NS: [ns.example.com., ns.example.net.]
      "*": {TXT: '"this is a wildcard"', MX: 10 host1.example.}
      "sub.*": {TXT: '"this is not a wildcard"'}
      host1: {A: 192.0.2.1}
      _ssh._tcp.host1: {SRV: 0 0 22 host1.example.}
      _ssh._tcp.host2: {SRV: 0 0 22 host2.example.}
      subdel: {NS: [ns.example.com., ns.example.net.]}
  gslb.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 30, NS: ns1}
      ns1: {A: 127.0.0.1}
      "*": {gslb: {pool: web, ttl: 20}, TXT: '"any name"'}
      "*.v4": {gslb: v4}
      "*.cn": {CNAME: www}
      "*.out": {CNAME: elsewhere.example.org.}
      www: {A: 192.0.2.80}
      exact: {A: 192.0.2.81}
"""


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("wild") / "zone.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module", params=[0, 1024], ids=["no-cache", "cache"])
def authority(request: pytest.FixtureRequest, config_path: Path) -> Authority:
    return Authority(load([config_path]), QuorumView(), rng=random.Random(1),
                     cache_entries=request.param)


def ask(authority: Authority, qname: str, qtype: str) -> dns.message.Message:
    """Ask through ``respond`` twice (the second one a cache hit when the
    cache is on); both responses must read the same (an RRset's order
    aside: an ``all`` pool rotates it, RFC 2181 section 5)."""
    data = dns.message.make_query(qname, qtype).to_wire()
    first = respond(authority, data, "192.0.2.99", True)
    again = respond(authority, data, "192.0.2.99", True)
    assert first is not None and again is not None
    assert dns.message.from_wire(first) == dns.message.from_wire(again)
    return dns.message.from_wire(first)


def answers(msg: dns.message.Message) -> list[tuple[str, str, set[str]]]:
    return [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype),
             {rr.to_text() for rr in rrset}) for rrset in msg.answer]


# RFC 4592 section 2.2.1: "The following responses would be synthesized
# from one of the wildcards in the zone"
@pytest.mark.parametrize(("qname", "qtype", "expected"), [
    ("host3.example.", "MX", [("host3.example.", "MX", {"10 host1.example."})]),
    ("foo.bar.example.", "TXT", [("foo.bar.example.", "TXT", {'"this is a wildcard"'})]),
])
def test_rfc4592_synthesised(authority: Authority, qname: str, qtype: str,
                             expected: list[tuple[str, str, set[str]]]) -> None:
    msg = ask(authority, qname, qtype)
    assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
    assert answers(msg) == expected
    assert msg.answer[0].ttl == 3600 and not msg.authority


def test_rfc4592_host3_a_is_nodata(authority: Authority) -> None:
    # "the answer will reflect 'no error, but no data' because there is no
    # A RR set at '*.example.'"
    msg = ask(authority, "host3.example.", "A")
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    assert [(r.name.to_text(), r.rdtype) for r in msg.authority] == [
        ("example.", dns.rdatatype.SOA)]


# RFC 4592 section 2.2.1: "The following responses would not be
# synthesized from any of the wildcards in the zone"
@pytest.mark.parametrize(("qname", "qtype", "rcode", "why"), [
    ("host1.example.", "MX", dns.rcode.NOERROR, "host1.example. exists"),
    ("sub.*.example.", "MX", dns.rcode.NOERROR, "sub.*.example. exists"),
    ("_telnet._tcp.host1.example.", "SRV", dns.rcode.NXDOMAIN,
     "_tcp.host1.example. exists (without data)"),
    ("ghost.*.example.", "MX", dns.rcode.NXDOMAIN, "*.example. exists"),
])
def test_rfc4592_not_synthesised(authority: Authority, qname: str, qtype: str, rcode: int,
                                 why: str) -> None:
    msg = ask(authority, qname, qtype)
    assert msg.rcode() == rcode, why
    assert not msg.answer, why
    assert msg.flags & dns.flags.AA
    assert [r.rdtype for r in msg.authority] == [dns.rdatatype.SOA], why


def test_rfc4592_no_match_across_a_cut(authority: Authority) -> None:
    # "host.subdel.example. ... because subdel.example. exists (and is a zone cut)"
    msg = ask(authority, "host.subdel.example.", "A")
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    assert not msg.flags & dns.flags.AA
    assert [(r.name.to_text(), r.rdtype) for r in msg.authority] == [
        ("subdel.example.", dns.rdatatype.NS)]


def test_literal_star_name_gets_the_wildcards_data(authority: Authority) -> None:
    msg = ask(authority, "*.example.", "TXT")
    assert answers(msg) == [("*.example.", "TXT", {'"this is a wildcard"'})]


def test_empty_non_terminal_is_not_covered(authority: Authority) -> None:
    # host2.example. exists as an empty non-terminal (_ssh._tcp.host2 below it)
    for name in ("host2.example.", "_tcp.host2.example."):
        msg = ask(authority, name, "MX")
        assert msg.rcode() == dns.rcode.NOERROR and not msg.answer, name


def test_owner_is_the_name_as_asked_on_hits(authority: Authority) -> None:
    for qname in ("HoSt9.eXample.", "host9.example.", "HOST9.EXAMPLE."):
        data = dns.message.make_query(qname, "MX").to_wire()
        for _ in range(2):  # a miss, then a hit when the cache is on
            raw = respond(authority, data, "192.0.2.99", True)
            assert raw is not None
            msg = dns.message.from_wire(raw)
            assert msg.answer[0].name.to_text() == qname  # compressed to the question
            assert raw.count(b"host9") + raw.count(b"HOST9") + raw.count(b"HoSt9") == 1


def test_any_gets_one_rrset_at_the_name(authority: Authority) -> None:
    msg = ask(authority, "x.example.", "ANY")  # RFC 8482 section 4.1: one RRset
    assert answers(msg) == [("x.example.", "MX", {"10 host1.example."})]


def test_cname_at_a_wildcard_is_followed(authority: Authority) -> None:
    msg = ask(authority, "a.b.cn.gslb.test.", "A")
    assert answers(msg) == [("a.b.cn.gslb.test.", "CNAME", {"www.gslb.test."}),
                            ("www.gslb.test.", "A", {"192.0.2.80"})]
    msg = ask(authority, "x.out.gslb.test.", "A")  # out of our zones: the resolver goes on
    assert answers(msg) == [("x.out.gslb.test.", "CNAME", {"elsewhere.example.org."})]


def test_gslb_wildcard_steers_for_the_name(authority: Authority) -> None:
    msg = ask(authority, "shop.gslb.test.", "A")
    assert answers(msg) == [("shop.gslb.test.", "A", {"192.0.2.101", "192.0.2.102"})]
    assert msg.answer[0].ttl == 20
    msg = ask(authority, "deep.er.gslb.test.", "AAAA")
    assert answers(msg) == [("deep.er.gslb.test.", "AAAA", {"2001:db8::101"})]
    msg = ask(authority, "shop.gslb.test.", "TXT")  # the wildcard's other data
    assert answers(msg) == [("shop.gslb.test.", "TXT", {'"any name"'})]
    msg = ask(authority, "shop.gslb.test.", "MX")  # covered: NODATA, not NXDOMAIN
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    msg = ask(authority, "x.v4.gslb.test.", "AAAA")  # the pool has no IPv6
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    msg = ask(authority, "exact.gslb.test.", "A")  # an existing name is never covered
    assert answers(msg) == [("exact.gslb.test.", "A", {"192.0.2.81"})]
    msg = ask(authority, "exact.gslb.test.", "TXT")
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer


def test_chosen_owner_is_the_name(authority: Authority) -> None:
    query = wire.decode(dns.message.make_query("Shop.gslb.test.", "A").to_wire())
    look = authority.lookup(query, "192.0.2.99")
    assert look.kind is Kind.ANSWER
    assert [(owner, pool) for owner, pool, _choice in look.choices] == [("shop.gslb.test.", "web")]


def test_zone_without_wildcard_skips_the_search(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    path.write_text(CONFIG.replace('"*": {TXT', '"star": {TXT'))
    authority = Authority(load([path]), QuorumView(), cache_entries=0)
    assert not authority.zones["example."].wildcards
    assert authority.zones["gslb.test."].wildcards
    msg = ask(authority, "host3.example.", "MX")
    assert msg.rcode() == dns.rcode.NXDOMAIN


async def test_gslb_wildcard_over_udp(config_path: Path) -> None:
    """A real nameserver, dnspython over UDP: many names under the GSLB
    wildcard, in mixed case, each asked twice (the second time from the
    answer cache)."""
    running = await start(config_path)
    try:
        rng = random.Random(15)
        for i in range(200):
            name = f"host-{i}.{rng.choice(['', 'a.', 'b.c.'])}gslb.test."
            asked = "".join(c.upper() if rng.random() < 0.4 else c for c in name)
            for _ in range(2):
                q = dns.message.make_query(asked, "A", use_edns=0)
                msg = await asyncio.wait_for(
                    dns.asyncquery.udp(q, running.host, port=running.port, timeout=2.0), 5.0)
                assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
                assert len(msg.answer) == 1
                rrset = msg.answer[0]
                assert rrset.name.to_text() == asked  # the case as asked (0x20)
                assert {rr.address for rr in rrset} == {"192.0.2.101", "192.0.2.102"}
        q = dns.message.make_query("nope.sub.example.", "A", use_edns=0)
        msg = await asyncio.wait_for(
            dns.asyncquery.udp(q, running.host, port=running.port, timeout=2.0), 5.0)
        assert msg.rcode() == dns.rcode.NOERROR and not msg.answer  # *.example. has no A
    finally:
        await running.service.stop()


@pytest.mark.parametrize(("owner", "types", "message"), [
    ('"a*"', "{A: 192.0.2.1}", "'*' must be a whole label"),
    ('"*x"', "{A: 192.0.2.1}", "'*' must be a whole label"),
    ('"www.*x"', "{A: 192.0.2.1}", "'*' must be a whole label"),
    ('"b*.example.test."', "{A: 192.0.2.1}", "'*' must be a whole label"),
    ('"*.sub"', "{NS: ns1}", "NS is not allowed at a wildcard owner (RFC 4592 §4.2)"),
])
def test_check_refuses(tmp_path: Path, owner: str, types: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(f"""\
        zones:
          example.test:
            records:
              "@": {{SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}}
              ns1: {{A: 127.0.0.1}}
              {owner}: {types}
        """))
    with pytest.raises(ConfigError) as err:
        load([path])
    key = owner.strip('"')
    reasons = [r for r in str(err.value).splitlines() if message in r]
    assert reasons and reasons[0].startswith(f"{path}:6: zones.example.test.records.{key}: ")


def test_star_labels_elsewhere_are_plain(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(textwrap.dedent("""\
        zones:
          example.test:
            records:
              "@": {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}
              ns1: {A: 127.0.0.1}
              "a.*.b": {A: 192.0.2.1}
        """))
    authority = Authority(load([path]), QuorumView(), cache_entries=0)
    assert not authority.zones["example.test."].wildcards
    assert answers(ask(authority, "a.*.b.example.test.", "A")) == [
        ("a.*.b.example.test.", "A", {"192.0.2.1"})]
    assert ask(authority, "x.*.b.example.test.", "A").rcode() == dns.rcode.NXDOMAIN
    assert dns.name.from_text("a.*.b.example.test.").is_wild() is False


def test_the_docs_example_answers_as_its_comments_say(tmp_path: Path) -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "config.md"
    section = docs.read_text().split("### Wildcards", 1)[1]
    block = section.split("```yaml gslb\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "doc.yaml"
    path.write_text(block)
    authority = Authority(load([path]), QuorumView(), cache_entries=0)
    assert answers(ask(authority, "shop.example.net.", "A")) == [
        ("shop.example.net.", "A", {"192.0.2.10"})]
    nodata = ask(authority, "shop.example.net.", "MX")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert answers(ask(authority, "a.b.static.example.net.", "A")) == [
        ("a.b.static.example.net.", "A", {"192.0.2.20"})]
    assert answers(ask(authority, "www.example.net.", "A")) == [
        ("www.example.net.", "CNAME", {"shop.example.net."}),
        ("shop.example.net.", "A", {"192.0.2.10"})]
