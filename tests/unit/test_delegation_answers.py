"""Answers at and around zone cuts: DS at a delegation from the parent side
(RFC 4035 section 3.1.4.1), the addresses of an NS RRset answered (apex NS)
in the additional section, and referral glue against the UDP limit: in-domain
glue that does not fit sets TC, sibling glue is dropped without it
(RFC 9471 sections 3.1 and 3.2). Asked by dnspython over real UDP and TCP
sockets, and through both encoders."""

from __future__ import annotations

import asyncio
import random
import textwrap
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from gslb.authority import Authority, Kind, respond
from gslb.config.load import load
from gslb.dns import wire
from gslb.errors import ConfigError
from gslb.health.view import QuorumView
from tests.integration.dnsutil import start
from tests.unit.dnslib_encoder import encode_dnslib

DS_TEXT = "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118"


def _addresses(i: int, count: int) -> str:
    return ", ".join(f"192.0.2.{i * 10 + k}" for k in range(count))


def _glue(names: list[str], per_name: int) -> str:
    """Records for ``names``: ``per_name`` A and one AAAA each."""
    return "".join(f'      {n}: {{A: [{_addresses(i, per_name)}], AAAA: "2001:db8::{i}"}}\n'
                   for i, n in enumerate(names, start=1))


IN_DOMAIN = [f"ns{i}.big" for i in range(1, 6)]
SIBLING = [f"ns{i}.sib" for i in range(1, 6)]

CONFIG = f"""
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: [ns1, ns2, ns.elsewhere.org.]
      ns1: {{A: 127.0.0.1, AAAA: "::1"}}
      ns2: {{A: [127.0.0.2, 127.0.0.3]}}
      signed: {{NS: [ns.signed], DS: "{DS_TEXT}"}}
      ns.signed: {{A: 192.0.2.53}}
      unsigned: {{NS: [ns.unsigned]}}
      ns.unsigned: {{A: 192.0.2.54}}
      big: {{NS: [{", ".join(IN_DOMAIN)}]}}
      sibling: {{NS: [{", ".join(SIBLING)}]}}
      mixed: {{NS: [ns.mixed, {", ".join(SIBLING)}]}}
      ns.mixed: {{A: 192.0.2.55}}
      away: {{NS: [{", ".join(f"ns{i}.away.example.org." for i in range(1, 6))}]}}
{_glue(IN_DOMAIN, 3)}{_glue(SIBLING, 4)}"""


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("cuts") / "zone.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module", params=[0, 1024], ids=["no-cache", "cache"])
def authority(request: pytest.FixtureRequest, config_path: Path) -> Authority:
    return Authority(load([config_path]), QuorumView(), rng=random.Random(1),
                     cache_entries=request.param)


def ask(authority: Authority, qname: str, qtype: str, payload: int = 1232,
        udp: bool = True) -> dns.message.Message:
    data = dns.message.make_query(qname, qtype, use_edns=0, payload=payload).to_wire()
    first = respond(authority, data, "192.0.2.99", udp)
    assert first is not None and first == respond(authority, data, "192.0.2.99", udp)
    return dns.message.from_wire(first)


def names(section: list[dns.rrset.RRset]) -> list[tuple[str, str]]:
    return [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype)) for r in section]


def test_ds_at_a_cut_is_the_parents_answer(authority: Authority) -> None:
    msg = ask(authority, "signed.example.test.", "DS")
    assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
    assert [(n, t, {rr.to_text() for rr in r}) for (n, t), r in
            zip(names(msg.answer), msg.answer, strict=True)] == [
        ("signed.example.test.", "DS", {DS_TEXT.lower()})]
    assert not msg.authority


def test_ds_at_a_cut_without_one_is_nodata(authority: Authority) -> None:
    msg = ask(authority, "unsigned.example.test.", "DS")
    assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
    assert not msg.answer
    assert names(msg.authority) == [("example.test.", "SOA")]
    assert msg.authority[0].ttl == 60


def test_below_a_cut_and_other_types_at_it_are_referred(authority: Authority) -> None:
    for qname, qtype in [("x.signed.example.test.", "DS"), ("signed.example.test.", "NS"),
                         ("signed.example.test.", "A"), ("a.b.unsigned.example.test.", "DS")]:
        msg = ask(authority, qname, qtype)
        assert not msg.flags & dns.flags.AA and not msg.answer, (qname, qtype)
        assert [t for _n, t in names(msg.authority)] == ["NS"], (qname, qtype)


def test_ds_at_the_apex_is_nodata(authority: Authority) -> None:
    msg = ask(authority, "example.test.", "DS")
    assert msg.rcode() == dns.rcode.NOERROR and not msg.answer
    assert msg.flags & dns.flags.AA


def test_apex_ns_answer_carries_the_zones_addresses(authority: Authority) -> None:
    for qtype in ("NS", "ANY"):
        msg = ask(authority, "example.test.", qtype)
        assert msg.flags & dns.flags.AA
        assert names(msg.answer) == [("example.test.", "NS")]
        glue = {(n, t): {rr.to_text() for rr in r}
                for (n, t), r in zip(names(msg.additional), msg.additional, strict=True)}
        assert glue == {("ns1.example.test.", "A"): {"127.0.0.1"},
                        ("ns1.example.test.", "AAAA"): {"::1"},
                        ("ns2.example.test.", "A"): {"127.0.0.2", "127.0.0.3"}}


def test_apex_ns_addresses_that_do_not_fit_are_dropped_without_tc(tmp_path: Path) -> None:
    path = tmp_path / "z.yaml"
    many = [f"ns{i}" for i in range(1, 9)]
    path.write_text(textwrap.dedent(f"""\
        zones:
          example.test:
            records:
              "@": {{SOA: ns1 hostmaster 1 3600 600 86400 60, NS: [{", ".join(many)}]}}
        """) + "".join(f"      {n}: {{A: [{_addresses(i, 6)}]}}\n" for i, n in enumerate(many)))
    authority = Authority(load([path]), QuorumView(), cache_entries=0)
    msg = ask(authority, "example.test.", "NS", payload=512)
    assert not msg.flags & dns.flags.TC
    assert len(msg.answer[0]) == 8 and not msg.additional


def _sizes(authority: Authority, qname: str) -> tuple[int, int, int]:
    """Bytes of the referral for ``qname``: whole, with the required glue
    only, and with no additional records."""
    query = wire.decode(dns.message.make_query(qname, "A", use_edns=0).to_wire())
    answer = authority.lookup(query, "192.0.2.99").answer
    whole = len(wire.encode(query, answer))
    need = answer.required_additional
    answer.additional = answer.additional[:need]
    required = len(wire.encode(query, answer))
    answer.additional, answer.required_additional = [], 0
    return whole, required, len(wire.encode(query, answer))


def test_the_sizes_the_socket_tests_rely_on(authority: Authority) -> None:
    whole, required, bare = _sizes(authority, "www.big.example.test.")
    assert whole == required > 512 > bare  # in-domain glue alone does not fit in 512
    whole, required, bare = _sizes(authority, "www.sibling.example.test.")
    assert whole > 1232 and required == bare < 512  # no in-domain glue, sibling past 1232
    whole, required, bare = _sizes(authority, "www.mixed.example.test.")
    assert whole > 1232 and bare < required < 512  # in-domain glue fits, sibling does not


def test_referral_glue_order_and_encoders_agree(authority: Authority) -> None:
    for qname in ("www.big.example.test.", "www.sibling.example.test.",
                  "www.mixed.example.test.", "www.away.example.test."):
        query = wire.decode(dns.message.make_query(qname, "A", use_edns=0).to_wire())
        look = authority.lookup(query, "192.0.2.99")
        assert look.kind is Kind.DELEGATION
        answer = look.answer
        cut = qname.split(".", 1)[1]
        required = answer.additional[:answer.required_additional]
        assert all(o.endswith("." + cut) for o, *_ in required)
        assert not any(o.endswith("." + cut) for o, *_ in
                       answer.additional[answer.required_additional:])
        for limit in (None, 65535):
            mine = wire.encode(query, answer, limit)
            ref = encode_dnslib(query, answer, limit)
            assert dns.message.from_wire(mine).to_text() == dns.message.from_wire(ref).to_text()
        # (dnslib compresses names and wire.encode does not, so below the
        # whole size the two cut at different limits)
        for limit in range(300, 1500, 7):
            msg = dns.message.from_wire(wire.encode(query, answer, limit))
            assert len(wire.encode(query, answer, limit)) <= limit
            if msg.flags & dns.flags.TC:
                assert not msg.authority and not msg.additional
            else:
                assert len(msg.authority[0]) == len(answer.authority)
                glue = sum(len(r) for r in msg.additional)
                assert glue in (answer.required_additional, len(answer.additional))


async def _udp(running: object, qname: str, payload: int, tcp: bool = False
               ) -> dns.message.Message:
    host, port = running.host, running.port  # type: ignore[attr-defined]
    q = dns.message.make_query(qname, "A", use_edns=0, payload=payload)
    if tcp:
        return await asyncio.wait_for(dns.asyncquery.tcp(q, host, port=port, timeout=2.0), 5.0)
    return await asyncio.wait_for(dns.asyncquery.udp(q, host, port=port, timeout=2.0), 5.0)


async def test_referral_truncation_over_sockets(config_path: Path) -> None:
    running = await start(config_path)
    try:
        for round_ in range(3):  # the first from a fresh answer, the rest from the cache
            # in-domain glue past 512 octets: TC, the resolver asks again over TCP
            msg = await _udp(running, f"host{round_}.big.example.test.", 512)
            assert msg.flags & dns.flags.TC and not msg.flags & dns.flags.AA
            full = await _udp(running, f"host{round_}.big.example.test.", 512, tcp=True)
            assert not full.flags & dns.flags.TC
            assert len(full.additional) == 10  # A and AAAA of each of five targets
            assert sum(len(r) for r in full.additional) == 20
            msg = await _udp(running, f"host{round_}.big.example.test.", 1232)
            assert not msg.flags & dns.flags.TC and len(msg.additional) == 10
            # sibling glue only: dropped, no TC, the NS RRset is all there
            msg = await _udp(running, f"host{round_}.sibling.example.test.", 512)
            assert not msg.flags & dns.flags.TC
            assert len(msg.authority[0]) == 5 and not msg.additional
            # in-domain glue kept, sibling glue dropped, no TC
            msg = await _udp(running, f"host{round_}.mixed.example.test.", 512)
            assert not msg.flags & dns.flags.TC
            assert names(msg.additional) == [("ns.mixed.example.test.", "A")]
            # out of zone targets: no glue to give, no TC
            msg = await _udp(running, f"host{round_}.away.example.test.", 512)
            assert not msg.flags & dns.flags.TC and not msg.additional
            assert len(msg.authority[0]) == 5
    finally:
        await running.service.stop()


APEX = '"@": {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1'


@pytest.mark.parametrize(("records", "line", "key", "message"), [
    (f'{APEX}, DS: "{DS_TEXT}"}}', 4, "@", "DS is only allowed at a delegation"),
    (f'ok: {{A: 192.0.2.1, DS: "{DS_TEXT}"}}', 5, "ok", "DS is only allowed at a delegation"),
    ('sub: {NS: ns1, DS: "60485 5 2 2BB183AF5F22588179A53B0A98631FAD1A292118"}', 5,
     "sub.DS", "a type 2 digest is 32 octets, not 20"),
    ('sub: {NS: ns1, DS: "60485 5 1 not-hex"}', 5, "sub.DS", "bad DS data"),
])
def test_check_refuses_misplaced_or_bad_ds(tmp_path: Path, records: str, line: int, key: str,
                                            message: str) -> None:
    path = tmp_path / "bad.yaml"
    lines = [records] if records.startswith('"@"') else [APEX + "}", records]
    lines.append("ns1: {A: 127.0.0.1}")
    path.write_text("zones:\n  example.test:\n    records:\n"
                    + "".join(f"      {text}\n" for text in lines))
    with pytest.raises(ConfigError) as err:
        load([path])
    found = [r for r in str(err.value).splitlines() if message in r]
    assert found and found[0].startswith(f"{path}:{line}: zones.example.test.records.{key}: ")
