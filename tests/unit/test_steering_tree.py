"""Trees of pools (issue 13 item 2): members that are pools, ``min_healthy``,
the ECS scope and the reasons along the path, and what ``gslb check`` says
of cycles and depth."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import MAX_TREE_DEPTH, Config
from gslb.errors import ConfigError
from gslb.geo import GeoLocation
from gslb.steering import Client, Steering
from gslb.steering.base import Basis
from tests.unit.fakes import Health

TREE = """
origins:
  lon1: {ipv4: [192.0.2.1], location: {country: GB}}
  lon2: {ipv4: [192.0.2.2], location: {country: GB}}
  fra1: {ipv4: [192.0.2.3], ipv6: ["2001:db8::3"], location: {country: DE}}
  fra2: {ipv4: [192.0.2.4], location: {country: DE}}
  iad1: {ipv4: [192.0.2.5], location: {country: US}}
  iad2: {ipv4: [192.0.2.6], location: {country: US}}
pools:
  london: {policy: weighted, origins: [lon1, lon2], min_healthy: 2}
  frankfurt: {policy: weighted, origins: [fra1, fra2], min_healthy: "50%"}
  virginia: {policy: weighted, origins: [iad1, iad2]}
  europe: {policy: failover, tiers: [london, frankfurt]}
  world:
    policy: geo
    origins: [europe, virginia]
    continents: {EU: [[europe], [virginia]]}
    default: virginia
zones:
  tree.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 192.0.2.53}
      www: {gslb: world}
"""

GB = GeoLocation("GB", "EU", 51.5, -0.1)
US = GeoLocation("US", "NA", 38.9, -77.4)


def config(tmp_path: Path, text: str = TREE) -> Config:
    path = tmp_path / "tree.yaml"
    path.write_text(text)
    return load([path])


def client(loc: GeoLocation | None, source: int = 24) -> Client:
    return Client("198.51.100.1", "81.2.69.0", source, 4, locator=lambda _ip: loc)


def answers(steering: Steering, health: Health, loc: GeoLocation | None, n: int = 400,
            family: int = 4) -> collections.Counter[str]:
    rng = random.Random(3)
    return collections.Counter(a for _ in range(n) for a in steering.choose(
        "world", family, client(loc), health, rng).addresses)


def test_geo_then_failover_then_weighted(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    steering = Steering(cfg.pools, cfg.origins)
    got = steering.choose("world", 4, client(GB), Health(), random.Random(1))
    assert got.kind == "answer" and got.pool == "world" and not got.fallback
    assert got.addresses[0] in ("192.0.2.1", "192.0.2.2") and len(got.addresses) == 1
    assert got.leaves == ("london",)
    assert got.scope == 24  # the most specific scope along the path: geo's
    assert got.basis == Basis.CLIENT | Basis.DRAW
    assert got.reason.startswith("continent EU tier 1 → pool europe: tier 1 → pool london: ")
    counts = answers(steering, Health(), GB)
    assert set(counts) == {"192.0.2.1", "192.0.2.2"}
    assert all(120 <= n <= 280 for n in counts.values())  # 1:1 within the leaf pool
    assert set(answers(steering, Health(), US)) == {"192.0.2.5", "192.0.2.6"}


def test_min_healthy_moves_traffic_before_a_pool_is_empty(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    steering = Steering(cfg.pools, cfg.origins)
    # london needs both: one down, europe goes to its second tier
    assert set(answers(steering, Health(lon1=False), GB)) == {"192.0.2.3", "192.0.2.4"}
    # frankfurt needs half of two: one is enough
    only = answers(steering, Health(lon1=False, fra1=False), GB)
    assert set(only) == {"192.0.2.4"}
    # europe down as a whole (both of its tiers below their thresholds): geo's
    # EU tier moves on to virginia
    assert set(answers(steering, Health(lon1=False, fra1=False, fra2=False), GB)) == {
        "192.0.2.5", "192.0.2.6"}


def test_every_member_down_falls_back_as_a_flat_pool_does(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    steering = Steering(cfg.pools, cfg.origins)
    down = Health(**dict.fromkeys(cfg.origins, False))
    got = steering.choose("world", 4, client(GB), down, random.Random(1))
    assert got.fallback and got.kind == "answer"  # fallback: all, through the tree
    assert got.addresses[0] in ("192.0.2.1", "192.0.2.2")
    assert ("world", 4) in steering.in_fallback


def test_a_member_pool_without_the_family_is_no_candidate(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    steering = Steering(cfg.pools, cfg.origins)
    got = steering.choose("world", 6, client(GB), Health(), random.Random(1))
    assert got.addresses == ("2001:db8::3",) and got.leaves == ("frankfurt",)
    got = steering.choose("world", 6, client(US), Health(), random.Random(1))
    assert got.kind == "answer" and got.addresses == ("2001:db8::3",)  # geo's "any healthy"


def test_a_name_is_an_origin_before_a_pool(tmp_path: Path) -> None:
    text = TREE.replace("  virginia: {policy: weighted, origins: [iad1, iad2]}",
                        "  virginia: {policy: weighted, origins: [iad1, iad2]}\n"
                        "  iad1: {policy: all, origins: [lon1]}")
    cfg = config(tmp_path, text)
    steering = Steering(cfg.pools, cfg.origins)
    assert set(answers(steering, Health(), US)) == {"192.0.2.5", "192.0.2.6"}


@pytest.mark.parametrize(("edit", "where", "message"), [
    ("  london: {policy: weighted, origins: [lon1, europe]}",
     "pools.london.origins", "pool cycle: london -> europe -> london"),
    ("  london: {policy: weighted, origins: [lon1, london]}",
     "pools.london.origins[1]", "a pool cannot be a member of itself"),
    ("  london: {policy: weighted, origins: [lon1, paris]}",
     "pools.london.origins[1]", "unknown origin or pool 'paris'"),
    ("  london: {policy: weighted, origins: [lon1, lon2], min_healthy: 0}",
     "pools.london.min_healthy", "below 1"),
    ("  london: {policy: weighted, origins: [lon1, lon2], min_healthy: 150%}",
     "pools.london.min_healthy", "expected a percentage above 0 and at most 100%"),
    ("  london: {policy: weighted, origins: [lon1, lon2], weight: 0}",
     "pools.london.weight", "below 1"),
])
def test_check_refuses_bad_trees(tmp_path: Path, edit: str, where: str, message: str) -> None:
    line = next(x for x in TREE.splitlines() if x.startswith("  london:"))
    with pytest.raises(ConfigError) as info:
        config(tmp_path, TREE.replace(line, edit))
    reasons = info.value.reasons
    assert any(f": {where}: " in r and message in r for r in reasons), reasons
    assert all(r.startswith(str(tmp_path / "tree.yaml") + ":") for r in reasons)


def test_check_refuses_a_tree_deeper_than_the_bound(tmp_path: Path) -> None:
    chain = [f"  p{i}: {{policy: all, origins: [p{i + 1}]}}" for i in range(MAX_TREE_DEPTH)]
    chain.append(f"  p{MAX_TREE_DEPTH}: {{policy: all, origins: [lon1]}}")
    text = TREE.replace("pools:\n", "pools:\n" + "\n".join(chain) + "\n")
    with pytest.raises(ConfigError) as info:
        config(tmp_path, text)
    assert any(": pools.p0.origins: tree of pools 9 deep (at most 8)" in r
               for r in info.value.reasons), info.value.reasons
    # one level less is fine
    del chain[0]
    cfg = config(tmp_path, TREE.replace("pools:\n", "pools:\n" + "\n".join(chain) + "\n"))
    assert Steering(cfg.pools, cfg.origins).choose(
        "p1", 4, client(GB), Health(), random.Random(1)).addresses == ("192.0.2.1",)


def test_a_pool_below_its_min_healthy_says_so_and_falls_back(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    got = Steering(cfg.pools, cfg.origins).choose("london", 4, client(GB), Health(lon1=False),
                                                  random.Random(1))
    assert got.fallback and got.reason.startswith(
        "1 of 2 healthy in pool london, below min_healthy 2; fallback to all: ")


def test_a_failover_tier_below_its_min_healthy_is_skipped(tmp_path: Path) -> None:
    text = TREE.replace("  europe: {policy: failover, tiers: [london, frankfurt]}", """  europe:
    policy: failover
    tiers:
      - {origins: [lon1, lon2, fra1], min_healthy: 2}
      - {origins: fra2, min_healthy: "100%"}
      - iad1""")
    cfg = config(tmp_path, text)
    assert cfg.pools["europe"].tiers == (("lon1", "lon2", "fra1"), ("fra2",), ("iad1",))
    assert cfg.pools["europe"].tier_min_healthy == ((2, None), (1, 100.0), (1, None))
    steering = Steering(cfg.pools, cfg.origins)

    def europe(health: Health) -> set[str]:
        rng = random.Random(2)
        return {a for _ in range(60)
                for a in steering.choose("europe", 4, client(GB), health, rng).addresses}

    assert europe(Health()) == {"192.0.2.1", "192.0.2.2", "192.0.2.3"}
    assert europe(Health(lon1=False)) == {"192.0.2.2", "192.0.2.3"}  # 2 of 3: enough
    assert europe(Health(lon1=False, lon2=False)) == {"192.0.2.4"}  # 1 of 3: next tier
    assert europe(Health(lon1=False, lon2=False, fra2=False)) == {"192.0.2.5"}


def test_a_tier_mapping_is_checked(tmp_path: Path) -> None:
    text = TREE.replace("  europe: {policy: failover, tiers: [london, frankfurt]}",
                        "  europe: {policy: failover, tiers: [{min_healthy: 2}, {origins: lon1, "
                        "min_healthy: 0%}, {origins: fra1, extra: 1}]}")
    with pytest.raises(ConfigError) as info:
        config(tmp_path, text)
    reasons = "\n".join(info.value.reasons)
    assert "pools.europe.tiers[0]: missing required key 'origins'" in reasons
    assert "pools.europe.tiers[1].min_healthy: expected a percentage above 0" in reasons
    assert "pools.europe.tiers[2].extra: unknown key 'extra'" in reasons
