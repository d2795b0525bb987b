"""Network maps (issue 13 item 3): ``networks`` and ``networks_file`` in geo
pools, longest prefix first, before the countries, with the matched
network's prefix-length as ECS scope."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import Config
from gslb.errors import ConfigError
from gslb.geo import GeoLocation
from gslb.steering import Client, Steering
from gslb.steering.base import Basis
from tests.unit.fakes import Health

ZONE = """
origins:
  office: {ipv4: [192.0.2.1]}
  lab: {ipv4: [192.0.2.2]}
  v6: {ipv4: [192.0.2.3]}
  world: {ipv4: [192.0.2.9]}
pools:
  web:
    policy: geo
    origins: [office, lab, v6, world]
    networks:
      10.0.0.0/8: office
      10.1.0.0/16: [[lab], [office]]
      2001:db8::/32: v6
    NETWORKS_FILE
    countries: {GB: world}
    default: world
zones:
  nets.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 192.0.2.53}
      www: {gslb: web}
"""

GB = GeoLocation("GB", "EU", 51.5, -0.1)


def config(tmp_path: Path, file_lines: str | None = None, text: str = ZONE) -> Config:
    if file_lines is not None:
        (tmp_path / "nets.txt").write_text(file_lines)
        text = text.replace("NETWORKS_FILE", "networks_file: nets.txt")
    else:
        text = text.replace("    NETWORKS_FILE\n", "")
    path = tmp_path / "nets.yaml"
    path.write_text(text)
    return load([path])


def choose(cfg: Config, who: str, ecs: str | None = None, source: int = 24,
           health: Health | None = None) -> tuple[tuple[str, ...], int, Basis, str]:
    client = (Client(who, ecs, source, 6 if ecs and ":" in ecs else 4, locator=lambda _: GB)
              if ecs else Client(who, locator=lambda _: GB))
    got = Steering(cfg.pools, cfg.origins).choose("web", 4, client, health or Health(),
                                                  random.Random(0))
    return got.addresses, got.scope, got.basis, got.reason


def test_longest_prefix_wins_and_its_length_is_the_scope(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert choose(cfg, "198.51.100.1", "10.2.3.0") == (
        ("192.0.2.1",), 8, Basis.CLIENT, "network 10.0.0.0/8 tier 1")
    assert choose(cfg, "198.51.100.1", "10.1.3.0") == (
        ("192.0.2.2",), 16, Basis.CLIENT, "network 10.1.0.0/16 tier 1")
    # never more specific than the query's source prefix-length
    assert choose(cfg, "198.51.100.1", "10.0.0.0", source=7)[1] == 7
    # IPv6 networks match IPv6 clients
    assert choose(cfg, "198.51.100.1", "2001:db8:1::", source=56)[:2] == (("192.0.2.3",), 32)
    # no network: the countries decide, with the geo scope
    assert choose(cfg, "198.51.100.1", "81.2.69.0")[:2] == (("192.0.2.9",), 24)


def test_without_ecs_the_source_address_is_matched_and_no_scope_is_sent(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert choose(cfg, "10.1.2.3") == (("192.0.2.2",), 0, Basis.CLIENT,
                                       "network 10.1.0.0/16 tier 1")


def test_a_network_whose_tiers_are_down_falls_through(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert choose(cfg, "10.1.2.3", health=Health(lab=False))[0] == ("192.0.2.1",)  # its tier 2
    addresses, _scope, _basis, reason = choose(cfg, "10.1.2.3",
                                               health=Health(lab=False, office=False))
    assert addresses == ("192.0.2.9",) and reason.startswith("network 10.1.0.0/16 down; ")


def test_a_networks_file_adds_entries_relative_to_the_config(tmp_path: Path) -> None:
    cfg = config(tmp_path, "# office VPN\n172.16.0.0/12 lab   # the lab\n\n10.1.2.0/24 world\n")
    assert choose(cfg, "172.20.0.1")[0] == ("192.0.2.2",)
    assert choose(cfg, "10.1.2.9")[0] == ("192.0.2.9",)  # /24 from the file beats /16


@pytest.mark.parametrize(("lines", "line", "message"), [
    ("10.0.0.1/8 lab\n", 1, "not a CIDR network: 10.0.0.1/8 has host bits set"),
    ("\n172.16.0.0/12\n", 2, "expected 'CIDR target', got '172.16.0.0/12'"),
    ("172.16.0.0/12 paris\n", 1, "unknown origin or pool 'paris'"),
    ("10.0.0.0/8 lab\n", 1, "network 10.0.0.0/8 is mapped twice"),
])
def test_networks_file_errors_name_the_file_and_line(tmp_path: Path, lines: str, line: int,
                                                    message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(tmp_path, lines)
    want = f"{tmp_path / 'nets.txt'}:{line}: pools.web.networks_file[{line}]: {message}"
    assert want in info.value.reasons, info.value.reasons


def test_inline_errors_and_a_missing_file(tmp_path: Path) -> None:
    bad = ZONE.replace("      10.0.0.0/8: office\n", "      10.0.0.0/33: office\n")
    with pytest.raises(ConfigError) as info:
        config(tmp_path, text=bad)
    assert any(": pools.web.networks.10.0.0.0/33: not a CIDR network" in r
               for r in info.value.reasons), info.value.reasons
    path = tmp_path / "nets.yaml"
    path.write_text(ZONE.replace("NETWORKS_FILE", "networks_file: missing.txt"))
    with pytest.raises(ConfigError) as info:
        load([path])
    assert any(": pools.web.networks_file: cannot read networks file " in r
               for r in info.value.reasons), info.value.reasons


def test_networks_are_for_geo_and_latency_pools(tmp_path: Path) -> None:
    bad = ZONE.replace("    policy: geo\n", "    policy: weighted\n").replace(
        "    countries: {GB: world}\n    default: world\n", "")
    with pytest.raises(ConfigError) as info:
        config(tmp_path, text=bad)
    assert any("key 'networks' is only valid for policy" in r for r in info.value.reasons)
