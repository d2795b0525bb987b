"""Config of ``latency`` pools: vantage maps, switch margins, geo keys, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import DEFAULT_SWITCH_MARGIN_MS, DEFAULT_SWITCH_MARGIN_PCT
from tests.unit.test_config_validate import ZONE, assert_reason, errors_of

HEAD = """\
vantages:
  eu: {location: {country: GB}}
  us: {location: {country: US}}
origins:
  a: {ipv4: 192.0.2.1, location: {country: GB}}
  b: {ipv4: 192.0.2.2}
pools:
  web:
    policy: latency
    origins: [a, b]
"""
HEAD_LINES = HEAD.count("\n")


def test_latency_pool_model(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + """\
    vantage_countries: {gb: us, SE: eu}
    vantage_continents: {na: us}
    switch_margin: 12.5
    switch_margin_ms: 0
    countries: {GB: b}
    continents: {EU: [a, b]}
    default: a
    max_answers: 2
""" + ZONE)
    pool = load([path]).pools["web"]
    assert pool.policy == "latency"
    assert dict(pool.vantage_countries) == {"GB": "us", "SE": "eu"}
    assert dict(pool.vantage_continents) == {"NA": "us"}
    assert (pool.switch_margin_pct, pool.switch_margin_ms) == (12.5, 0.0)
    assert dict(pool.countries) == {"GB": (("b",),)}
    assert dict(pool.continents) == {"EU": (("a", "b"),)}
    assert pool.default == (("a",),)
    assert pool.max_answers == 2


def test_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + ZONE)
    pool = load([path]).pools["web"]
    assert dict(pool.vantage_countries) == {} and dict(pool.vantage_continents) == {}
    assert (pool.switch_margin_pct, pool.switch_margin_ms) == (20.0, 5.0)
    assert (DEFAULT_SWITCH_MARGIN_PCT, DEFAULT_SWITCH_MARGIN_MS) == (20.0, 5.0)


CASES = [
    ("    vantage_countries: {GB: mars}\n", 1, "pools.web.vantage_countries.GB",
     "unknown vantage 'mars' (vantages: eu, us)"),
    ("    vantage_countries: {XX: eu}\n", 1, "pools.web.vantage_countries.XX",
     "unknown country code 'XX'"),
    ("    vantage_countries: {GB: eu, gb: us}\n", 1, "pools.web.vantage_countries.gb",
     "GB is mapped twice"),
    ("    vantage_continents: {EUR: eu}\n", 1, "pools.web.vantage_continents.EUR",
     "unknown continent code 'EUR'"),
    ("    vantage_continents: {EU: [eu]}\n", 1, "pools.web.vantage_continents.EU",
     "expected a non-empty string, got a list"),
    ("    vantage_continents: [eu]\n", 1, "pools.web.vantage_continents",
     "expected a mapping, got a list"),
    ("    switch_margin: 100\n", 1, "pools.web.switch_margin",
     "100 percent is out of bounds: 0 up to (not including) 100"),
    ("    switch_margin: -1\n", 1, "pools.web.switch_margin", "out of bounds"),
    ("    switch_margin: 20%\n", 1, "pools.web.switch_margin",
     "expected a number of percent, got a string"),
    ("    switch_margin_ms: -0.5\n", 1, "pools.web.switch_margin_ms",
     "-0.5 milliseconds is out of bounds: 0 or more"),
    ("    switch_margin_ms: true\n", 1, "pools.web.switch_margin_ms",
     "expected a number of milliseconds, got a boolean"),
    ("    tiers: [a]\n", 1, "pools.web.tiers",
     "key 'tiers' is only valid for policy failover (this pool's policy is latency)"),
    ("    default: c\n", 1, "pools.web.default", "unknown origin or pool 'c'"),
    ("    latency: 1\n", 1, "pools.web.latency", "unknown key 'latency' (allowed: policy, "
     "origins, max_answers, fallback, weight, min_healthy, order, slow_start, ttl_when_degraded, "
     "tiers, networks, "
     "networks_file, asns, countries, continents, default, vantage_countries, "
     "vantage_continents, switch_margin, switch_margin_ms, hash_prefix, hash_seed)"),
]


@pytest.mark.parametrize(("text", "line", "path", "message"), CASES,
                         ids=[f"{c[2][10:]}:{c[3][:25]}" for c in CASES])
def test_errors(tmp_path: Path, text: str, line: int, path: str, message: str) -> None:
    name, reasons = errors_of(tmp_path, HEAD + text)
    assert_reason(reasons, f"{name}:{HEAD_LINES + line}: {path}: ", message)


@pytest.mark.parametrize(("policy", "key", "value", "owners"), [
    ("geo", "switch_margin", "5", "latency or least_loaded"),
    ("weighted", "vantage_countries", "{GB: eu}", "latency"),
    ("all", "countries", "{GB: a}", "geo or latency"),
])
def test_latency_keys_on_other_policies(tmp_path: Path, policy: str, key: str, value: str,
                                        owners: str) -> None:
    text = HEAD.replace("policy: latency", f"policy: {policy}") + f"    {key}: {value}\n"
    name, reasons = errors_of(tmp_path, text)
    assert_reason(reasons, f"{name}:{HEAD_LINES + 1}: pools.web.{key}: ",
                  f"key {key!r} is only valid for policy {owners} (this pool's policy is "
                  f"{policy})")


def test_a_vantage_map_needs_declared_vantages(tmp_path: Path) -> None:
    text = HEAD.split("origins:", 1)[1]
    name, reasons = errors_of(tmp_path, "origins:" + text + "    vantage_countries: {GB: local}\n")
    assert_reason(reasons, f"{name}:", "unknown vantage 'local' (vantages: none declared)")
