"""``order`` of a multi-address answer: config errors with file, line and
key; the answer cache rotating a stored answer in place, and never storing
one it could not rotate (an RRset after a CNAME); through ``respond``, with
the cache on and off."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

from gslb.authority import Authority, respond
from gslb.config.load import load
from gslb.dns.cache import Rotation
from gslb.steering import Client, Steering
from tests.unit.fakes import Health
from tests.unit.test_config_validate import WEB, assert_reason, errors_of

ADDRS = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]
CONFIG = """
origins:
  a: {ipv4: 192.0.2.1, ipv6: "2001:db8::1"}
  b: {ipv4: 192.0.2.2, ipv6: "2001:db8::2"}
  c: {ipv4: 192.0.2.3}
  d: {ipv4: 192.0.2.4}
pools:
  cyc: {policy: all, origins: [a, b, c, d], order: cyclic}
  fix: {policy: all, origins: [a, b, c, d], order: fixed}
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 127.0.0.1}
      www: {gslb: cyc}
      fixed: {gslb: fix}
      alias: {CNAME: www}
"""


@pytest.mark.parametrize(("text", "message"), [
    ("order: sideways", "unknown order 'sideways' (allowed: fixed, cyclic, random)"),
    ("order: [cyclic]", "expected a non-empty string, got a list"),
])
def test_bad_order_is_reported_with_file_line_and_key(tmp_path: Path, text: str,
                                                      message: str) -> None:
    path, reasons = errors_of(tmp_path, WEB + f"pools:\n  p:\n    policy: all\n"
                              f"    origins: [web1, web2]\n    {text}\n")
    assert_reason(reasons, f"{path}:8: pools.p.order: ", message)


def test_order_defaults_to_cyclic(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace(", order: cyclic", ""))
    assert load([path]).pools["cyc"].order == "cyclic"
    assert load([path]).pools["fix"].order == "fixed"


@pytest.fixture(params=[0, 64], ids=["no-cache", "cache"])
def authority(request: pytest.FixtureRequest, tmp_path: Path) -> Authority:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return Authority(load([path]), Health(), rng=random.Random(1),
                     cache_entries=request.param)


def ask(authority: Authority, qname: str, qtype: str = "A", **kw: object) -> list[str]:
    response = respond(authority, dns.message.make_query(qname, qtype, **kw).to_wire(),  # type: ignore[arg-type]
                       "192.0.2.99", True)
    assert response is not None
    return [rr.to_text() for rrset in dns.message.from_wire(response).answer
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) for rr in rrset]


@pytest.mark.parametrize("qname", ["www.example.test", "WwW.Example.TEST", "alias.example.test"])
def test_cyclic_over_respond(authority: Authority, qname: str) -> None:
    """Every answer starts one address further; mixed case (0x20) and an
    RRset after a CNAME too (that one never stored: its records do not
    lead the answer section)."""
    firsts = [ask(authority, qname)[0] for _ in range(40)]
    assert firsts == ADDRS * 10
    assert ask(authority, qname, "AAAA") == ["2001:db8::1", "2001:db8::2"]
    assert ask(authority, qname, "AAAA") == ["2001:db8::2", "2001:db8::1"]
    assert ask(authority, qname, use_edns=0)[0] in ADDRS  # another shape: its own entry
    if authority.cache is not None and qname.startswith("alias"):
        assert authority.cache.hits == 0


def test_fixed_hits_are_stored_without_a_rotation(authority: Authority) -> None:
    assert all(ask(authority, "fixed.example.test") == ADDRS for _ in range(10))
    if authority.cache is not None:
        assert authority.cache.hits == 9
        assert all(entry[2] is None for entry in authority.cache._entries.values()
                   if isinstance(entry, tuple))


def test_rotation_refuses_records_it_cannot_move() -> None:
    """Only records laid out as one A/AAAA RRset of the qname rotate."""
    query = dns.message.make_query("www.example.test", "A")
    response = dns.message.make_response(query)
    rrset = response.find_rrset(response.answer, query.question[0].name, 1, 1, create=True)
    for address in ADDRS:
        rrset.add(dns.rdata.from_text(1, 1, address), 60)  # type: ignore[attr-defined]
    wire = response.to_wire()
    end = wire.index(0, 12)
    rotation = Rotation.of(wire, end, 4, False, random.Random(1))
    assert rotation is not None and rotation.size == 16
    turned = rotation.apply(wire)
    assert len(turned) == len(wire)
    start, stop = end + 5, end + 5 + 4 * 16
    assert turned == wire[:start] + wire[start + 16:stop] + wire[start:start + 16] + wire[stop:]
    # the next hit: two records on from the stored answer
    assert rotation.apply(wire) == wire[:start] + wire[start + 32:stop] + wire[start:start + 32] \
        + wire[stop:]
    assert Rotation.of(wire, end, 5, False, random.Random(1)) is None  # ANCOUNT 4
    broken = wire[:end + 5] + b"\x00" + wire[end + 6:]  # not a pointer to the qname
    assert Rotation.of(broken, end, 4, False, random.Random(1)) is None
    shuffled = Rotation.of(wire, end, 4, True, random.Random(1))
    assert shuffled is not None
    seen = Counter(dns.message.from_wire(shuffled.apply(wire)).answer[0][0].to_text()
                   for _ in range(400))
    assert set(seen) == set(ADDRS)


TREE = """
origins:
  a: {ipv4: 192.0.2.1}
  b: {ipv4: 192.0.2.2}
  c: {ipv4: 192.0.2.3}
pools:
  inner: {policy: all, origins: [a, b], order: fixed}
  top: {policy: all, origins: [inner, c]}
  drawn: {policy: weighted, origins: [a, b, c], max_answers: 3, order: cyclic}
  shuffled: {policy: all, origins: [a, b, c], order: random}
"""


def test_steering_rotates_a_tree_with_its_leaves_and_leaves_a_draw_alone(
        tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(TREE)
    cfg = load([path])
    steering = Steering(cfg.pools, cfg.origins)
    got = [steering.choose("top", 4, Client("192.0.2.99"), Health(), random.Random(1))
           for _ in range(6)]
    assert [c.addresses[0] for c in got] == ADDRS[:3] * 2
    assert all(c.rotate == 3 and not c.shuffle for c in got)
    leaf = {"192.0.2.1": "inner", "192.0.2.2": "inner", "192.0.2.3": "top"}
    assert all(list(c.leaves) == [leaf[a] for a in c.addresses] for c in got)
    rng = random.Random(1)
    drawn = [steering.choose("drawn", 4, Client("192.0.2.99"), Health(), rng)
             for _ in range(50)]
    assert all(c.rotate == 0 for c in drawn)  # a draw ordered it: left alone
    shuffled = [steering.choose("shuffled", 4, Client("192.0.2.99"), Health(), rng)
                for _ in range(200)]
    assert all(c.rotate == 3 and c.shuffle for c in shuffled)
    assert len({c.addresses for c in shuffled}) == 6
