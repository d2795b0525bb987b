"""Shares over many queries through a real ``gslb serve`` (issue 13 item 1).

Whatever the answer cache keeps, each origin of a tier that is drawn from
(and of a tree of pools: geo, then failover, then weighted) gets its
weight's share of the answers: for 2,000 identical queries (the
case the answer cache sees most) and for 2,000 queries from as many source
addresses in 127.0.0.0/8 (the case per-resolver keys see), with one
answering process and with ``--workers 2``. Before answers reported what
they depended on, the cache froze a failover tier's draw: 2,000 of 2,000
identical queries went to one origin of a 1:1 tier.
"""

from __future__ import annotations

import collections
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rdatatype
import pytest

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

ROOT = Path(__file__).resolve().parent.parent.parent
FAKE_MMDB = ROOT / "tests" / "data" / "geoip" / "fake-country.mmdb"
QUERIES = 2000
TOLERANCE = 0.05  # ± 5 percentage points

CONFIG = """
origins:
  fo-a: {ipv4: [192.0.2.1]}
  fo-b: {ipv4: [192.0.2.2]}
  fo-c: {ipv4: [192.0.2.3]}
  w3: {ipv4: [192.0.2.31], weight: 3}
  w1: {ipv4: [192.0.2.32], weight: 1}
  g1: {ipv4: [192.0.2.41]}
  g2: {ipv4: [192.0.2.42]}
  g3: {ipv4: [192.0.2.43]}
  eu1: {ipv4: [192.0.2.51]}
  eu2: {ipv4: [192.0.2.52]}
  eu3: {ipv4: [192.0.2.53], weight: 2}
  us1: {ipv4: [192.0.2.61]}
pools:
  fo: {policy: failover, tiers: [[fo-a, fo-b], [fo-c]]}
  wt: {policy: weighted, origins: [w3, w1]}
  geo3:
    policy: geo
    origins: [g1, g2, g3]
    countries: {GB: [g1]}
    default: [[g1, g2, g3]]
  # a tree: geo -> failover -> weighted (clients on loopback are not located:
  # the default, the failover pool, whose first tier is a 1:1:2 weighted pool)
  eu-web: {policy: weighted, origins: [eu1, eu2, eu3]}
  eu: {policy: failover, tiers: [eu-web, us1]}
  tree:
    policy: geo
    origins: [eu, us1]
    countries: {GB: us1}
    default: eu
zones:
  shares.test:
    records:
      "@":
        SOA: "ns1.shares.test. hostmaster.shares.test. 1 3600 600 86400 30"
        NS: [ns1.shares.test.]
      ns1: {A: 192.0.2.53}
      fo: {gslb: fo}
      wt: {gslb: wt}
      geo3: {gslb: geo3}
      tree: {gslb: tree}
"""

#: name → {address: expected share}
EXPECTED = {
    "fo": {"192.0.2.1": 0.5, "192.0.2.2": 0.5},
    "wt": {"192.0.2.31": 0.75, "192.0.2.32": 0.25},
    "geo3": {"192.0.2.41": 1 / 3, "192.0.2.42": 1 / 3, "192.0.2.43": 1 / 3},
    "tree": {"192.0.2.51": 0.25, "192.0.2.52": 0.25, "192.0.2.53": 0.5},
}


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "workers-2"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, int]]:
    """A ``gslb serve`` process (default answer cache) on 127.0.0.1."""
    path = tmp_path_factory.mktemp("shares") / "shares.yaml"
    path.write_text(CONFIG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gslb", "serve", "--config", str(path), "--listen",
         "127.0.0.1:0", "--geoip", str(FAKE_MMDB), "--no-admin", "--workers",
         str(request.param)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # bounded by the test timeout
            match = re.search(r"serving DNS on (\S+) port (\d+)", line)
            if match:
                yield match[1], int(match[2])
                break
        else:
            pytest.fail("gslb serve exited before serving")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def ask(server: tuple[str, int], qname: str, source: str = "127.0.0.1") -> str:
    """The one A address answered for ``qname``, asked from ``source``."""
    query = dns.message.make_query(qname, "A", use_edns=0)
    query.id = 4242  # identical queries: the very same bytes each time
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind((source, 0))
        sock.sendto(query.to_wire(), server)
        response = dns.message.from_wire(sock.recv(4096))
    addresses = [rr.address for rrset in response.answer
                 if rrset.rdtype == dns.rdatatype.A for rr in rrset]
    assert len(addresses) == 1, response
    return addresses[0]


def sources(n: int) -> Iterator[str]:
    """``n`` distinct addresses in 127.0.0.0/8 (all of it is loopback on Linux)."""
    for i in range(n):
        yield f"127.{10 + i // 65536}.{(i // 256) % 256}.{i % 256 or 1}"


def assert_shares(counts: collections.Counter[str], expected: dict[str, float]) -> None:
    total = sum(counts.values())
    assert set(counts) <= set(expected), counts
    for address, share in expected.items():
        got = counts[address] / total
        assert abs(got - share) <= TOLERANCE, (address, got, share, counts)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_identical_queries_get_each_origin_its_share(server: tuple[str, int],
                                                     name: str) -> None:
    qname = f"{name}.shares.test."
    counts = collections.Counter(ask(server, qname) for _ in range(QUERIES))
    assert_shares(counts, EXPECTED[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_queries_from_many_resolvers_get_each_origin_its_share(server: tuple[str, int],
                                                               name: str) -> None:
    qname = f"{name}.shares.test."
    counts = collections.Counter(ask(server, qname, source) for source in sources(QUERIES))
    assert_shares(counts, EXPECTED[name])
