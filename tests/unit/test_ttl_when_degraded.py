"""``ttl_when_degraded``: the config keys (a record's and a pool's, errors
with file, line and key), the pool default resolved per record
(``degraded_ttl``), and a degraded answer of a signed zone that validates
(its RRSIG's TTL and original TTL follow the shortened RRset TTL, RFC 4034
section 3). The answers over real sockets, cache on and off, are
``tests/integration/test_ttl_when_degraded.py``; through a caching resolver,
``tests/ttl/test_degraded_ttl.py``."""

from __future__ import annotations

from pathlib import Path

import dns.rcode
import pytest

from gslb.config.load import load
from gslb.config.model import GslbRecord, Pool, degraded_ttl
from tests.unit.fakes import Health
from tests.unit.test_config_validate import assert_reason, errors_of
from tests.unit.test_dnssec import ZONE, ask, authority, make_key, validated, write

POOLS = """\
origins:
  a: {ipv4: 192.0.2.1}
  b: {ipv4: 192.0.2.2}
pools:
  web: {policy: failover, tiers: [[a], [b]]%s}
zones:
  example.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 30, NS: ns1}
      ns1: {A: 127.0.0.1}
      www: {gslb: %s}
"""


def config(tmp_path: Path, pool: str = "", record: str = "{pool: web, ttl: 30}") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(POOLS % (pool, record))
    return path


def test_keys_load(tmp_path: Path) -> None:
    cfg = load([config(tmp_path, ", ttl_when_degraded: 5",
                       "{pool: web, ttl: 30, ttl_when_degraded: 3}")])
    assert cfg.pools["web"].ttl_when_degraded == 5
    assert cfg.zones["example.test."].gslb["www.example.test."].ttl_when_degraded == 3
    cfg = load([config(tmp_path)])
    assert cfg.pools["web"].ttl_when_degraded is None
    assert cfg.zones["example.test."].gslb["www.example.test."].ttl_when_degraded is None


@pytest.mark.parametrize(("pool", "record", "line", "key", "message"), [
    ("", "{pool: web, ttl: 30, ttl_when_degraded: 31}", 11,
     "zones.example.test.records.www.gslb.ttl_when_degraded",
     "31 is above the record's ttl (30)"),
    ("", "{pool: web, ttl_when_degraded: 31}", 11,
     "zones.example.test.records.www.gslb.ttl_when_degraded",
     "31 is above the record's ttl (30)"),  # the default ttl, 30 s
    ("", "{pool: web, ttl: 30, ttl_when_degraded: -1}", 11,
     "zones.example.test.records.www.gslb.ttl_when_degraded", "-1 is below 0"),
    ("", "{pool: web, ttl_when_degraded: 2.5}", 11,
     "zones.example.test.records.www.gslb.ttl_when_degraded",
     "expected an integer, got a number"),
    (", ttl_when_degraded: -1", "web", 5, "pools.web.ttl_when_degraded", "-1 is below 0"),
    (", ttl_when_degraded: '5s'", "web", 5, "pools.web.ttl_when_degraded",
     "expected an integer, got a string"),
])
def test_bad_values_are_reported(tmp_path: Path, pool: str, record: str, line: int, key: str,
                                 message: str) -> None:
    path, reasons = errors_of(tmp_path, POOLS % (pool, record))
    assert_reason(reasons, f"{path}:{line}: {key}", message)


def test_unknown_key_lists_it(tmp_path: Path) -> None:
    path, reasons = errors_of(tmp_path, POOLS % ("", "{pool: web, ttl_degraded: 5}"))
    assert_reason(reasons, f"{path}:11: zones.example.test.records.www.gslb.ttl_degraded",
                  "(allowed: pool, ttl, ttl_when_degraded)")


def test_pool_default_resolved_per_record() -> None:
    pools = {"web": Pool("web", "failover", ("a",), (("a",),), ttl_when_degraded=10),
             "plain": Pool("plain", "failover", ("a",), (("a",),))}
    assert degraded_ttl(GslbRecord("w.", "web", 30), pools) == 10
    assert degraded_ttl(GslbRecord("w.", "web", 30, ttl_when_degraded=2), pools) == 2
    assert degraded_ttl(GslbRecord("w.", "web", 30, ttl_when_degraded=0), pools) == 0
    # the pool's value is capped at a shorter record's ttl: nothing to shorten
    assert degraded_ttl(GslbRecord("w.", "web", 8), pools) is None
    assert degraded_ttl(GslbRecord("w.", "web", 30, ttl_when_degraded=30), pools) is None
    assert degraded_ttl(GslbRecord("w.", "plain", 30), pools) is None


@pytest.mark.parametrize("cache_entries", [1024, 0], ids=["cache", "no-cache"])
def test_degraded_signed_answer_validates(tmp_path: Path, cache_entries: int) -> None:
    """stockholm down: v4 (failover stockholm → virginia, ttl 20) answers
    virginia with TTL 4; its RRSIG's TTL and original TTL are 4 and it
    validates; every origin up, 20 and valid too."""
    path = write(tmp_path, f"{{file: {make_key(tmp_path)}}}")
    path.write_text(path.read_text().replace("{pool: v4only, ttl: 20}",
                                             "{pool: v4only, ttl: 20, ttl_when_degraded: 4}"))
    for health, address, ttl in ((Health(stockholm=False), "192.0.2.13", 4),
                                 (Health(), "192.0.2.12", 20)):
        auth = authority(path, health, cache_entries=cache_entries)
        for _ in range(3):  # the second and third from the answer cache, when on
            m = ask(auth, "v4." + ZONE)
            assert m.rcode() == dns.rcode.NOERROR
            assert [rd.to_text() for rd in m.answer[0]] == [address]
            assert m.answer[0].ttl == ttl
            assert ("v4." + ZONE, "A") in validated(auth, m)  # original TTL == TTL
