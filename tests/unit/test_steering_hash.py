"""``hash`` policy: shares follow weights over 10,000 client networks, an
origin going down moves only its own clients and coming back takes exactly
them back, the same answer from every Steering (and every process), the
seed decides the assignment, ECS scope is the hashed prefix, a client
without ECS is hashed by its source address."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import Origin, Pool
from gslb.errors import ConfigError
from gslb.health.view import AllUpExcept
from gslb.steering import Client, Steering
from gslb.steering.base import Basis
from gslb.steering.hash import network_key

WEIGHTS = {"a": 1, "b": 1, "c": 2, "d": 2, "e": 4}
ORIGINS = {n: Origin(n, (f"192.0.2.{i}",), (f"2001:db8::{i}",), weight=w)
           for i, (n, w) in enumerate(WEIGHTS.items(), 1)}
ADDRESS = {o.ipv4[0]: n for n, o in ORIGINS.items()}
SUBNETS = 10_000


def pool(seed: str = "", **kw: int) -> Pool:
    names = tuple(ORIGINS)
    return Pool("sticky", "hash", names, (names,), hash_seed=seed, **kw)


def steering(seed: str = "", **kw: int) -> Steering:
    return Steering({"sticky": pool(seed, **kw)}, ORIGINS, rng=random.Random(0))


def subnets(n: int = SUBNETS, seed: int = 16) -> list[str]:
    """``n`` distinct random IPv4 /24 network addresses."""
    rng = random.Random(seed)
    found = {f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.0"
             for _ in range(n * 2)}
    return sorted(found)[:n]


NETS = subnets()


def assign(s: Steering, down: frozenset[str] = frozenset(),
           nets: list[str] = NETS) -> dict[str, str]:
    """Network → the origin answered to an ECS /24 client of it."""
    health = AllUpExcept(down)
    got = {}
    for net in nets:
        choice = s.choose("sticky", 4, Client("198.51.100.1", net, 24, 4), health)
        (address,) = choice.addresses
        got[net] = ADDRESS[address]
    return got


@pytest.fixture(scope="module")
def base() -> dict[str, str]:
    assert len(NETS) == SUBNETS
    return assign(steering())


def test_shares_follow_weights(base: dict[str, str]) -> None:
    shares = Counter(base.values())
    total = sum(WEIGHTS.values())
    for name, weight in WEIGHTS.items():
        assert abs(shares[name] / SUBNETS - weight / total) <= 0.03, (name, shares)


@pytest.mark.parametrize("gone", list(WEIGHTS))
def test_down_moves_only_its_clients_and_back_returns_them(base: dict[str, str],
                                                           gone: str) -> None:
    s = steering()
    without = assign(s, frozenset({gone}))
    moved = {net for net in NETS if without[net] != base[net]}
    assert moved == {net for net in NETS if base[net] == gone}  # only its own, all of them
    share = WEIGHTS[gone] / sum(WEIGHTS.values())
    assert len(moved) / SUBNETS <= share + 0.02
    # its clients spread over the others by weight, as the others' own shares
    spread = Counter(without[net] for net in moved)
    rest = sum(w for n, w in WEIGHTS.items() if n != gone)
    for name, weight in WEIGHTS.items():
        if name != gone:
            assert abs(spread[name] / len(moved) - weight / rest) <= 0.06, (name, spread)
    assert assign(s) == base  # back: exactly the same clients return to it


def test_two_nameservers_give_the_same_answers(base: dict[str, str]) -> None:
    assert assign(steering()) == base
    assert assign(steering(), frozenset({"c"})) == assign(steering(), frozenset({"c"}))


def test_another_process_gives_the_same_answers(base: dict[str, str]) -> None:
    """A worker or another nameserver is another interpreter, with another
    ``hash()`` salt (PYTHONHASHSEED): the assignment must not move."""
    code = ("import json, sys; from tests.unit.test_steering_hash import assign, steering, NETS;"
            " json.dump(assign(steering(), nets=NETS[:500]), sys.stdout)")
    root = Path(__file__).resolve().parents[2]
    for salt in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=root, timeout=60,
                             env={**os.environ, "PYTHONHASHSEED": salt})
        assert json.loads(out.stdout) == {net: base[net] for net in NETS[:500]}


def test_the_seed_decides_the_assignment(base: dict[str, str]) -> None:
    other = assign(steering("another seed"), nets=NETS[:2000])
    differ = sum(other[net] != base[net] for net in NETS[:2000])
    # independent assignments agree for sum(p^2) = 26 % of the networks
    assert 0.65 <= differ / 2000 <= 0.83
    again = assign(steering("another seed"), nets=NETS[:2000])
    assert again == other
    shares = Counter(other.values())
    assert abs(shares["e"] / 2000 - 0.4) <= 0.04


def test_the_pool_name_is_the_default_seed(base: dict[str, str]) -> None:
    assert assign(steering("sticky")) == base


@pytest.mark.parametrize(
    ("ecs", "source", "version", "kw", "scope"),
    [
        ("81.2.69.0", 24, 4, {}, 24),
        ("81.2.69.142", 32, 4, {}, 24),  # the hashed /24, not the /32 asked
        ("81.2.64.0", 20, 4, {}, 20),  # capped by the source prefix-length
        ("81.2.0.0", 24, 4, {"hash_prefix_v4": 16}, 16),
        ("81.2.69.7", 32, 4, {"hash_prefix_v4": 32}, 32),
        ("2001:db8:1:2::", 64, 6, {}, 56),
        ("2001:db8:1:2::", 48, 6, {}, 48),
        ("2001:db8:1::", 64, 6, {"hash_prefix_v6": 48}, 48),
        ("::ffff:81.2.69.0", 120, 6, {}, 120),  # IPv4-mapped: its /24, 96 bits on
    ],
)
def test_ecs_scope_is_the_hashed_prefix(ecs: str, source: int, version: int,
                                        kw: dict[str, int], scope: int) -> None:
    for family in (4, 6):
        got = steering(**kw).choose("sticky", family, Client("198.51.100.1", ecs, source,
                                                             version), AllUpExcept())
        assert got.kind == "answer" and got.scope == scope and got.basis == Basis.CLIENT


def test_every_address_of_the_hashed_network_gets_the_same_answer() -> None:
    s, health = steering(), AllUpExcept()
    for net in NETS[:200]:
        prefix = net.rsplit(".", 1)[0]
        got = {s.choose("sticky", 4, Client("198.51.100.1", f"{prefix}.{host}", 32, 4),
                        health).addresses for host in (0, 1, 77, 255)}
        assert len(got) == 1
    # with /16 hashed, the /24s of one /16 share an answer; different /16s do not all
    s16 = steering(hash_prefix_v4=16)
    same = {s16.choose("sticky", 4, Client("198.51.100.1", f"81.2.{i}.0", 24, 4),
                       health).addresses for i in range(256)}
    assert len(same) == 1
    assert len({s16.choose("sticky", 4, Client("198.51.100.1", f"81.{i}.0.0", 24, 4),
                           health).addresses for i in range(50)}) > 1


def test_a_client_without_ecs_is_hashed_by_its_source_address(base: dict[str, str]) -> None:
    s, health = steering(), AllUpExcept()
    for net in NETS[:500]:
        resolver = net.rsplit(".", 1)[0] + ".53"
        got = s.choose("sticky", 4, Client(resolver), health)
        assert ADDRESS[got.addresses[0]] == base[net]
        assert got.scope == 0 and got.basis == Basis.CLIENT
    # IPv6 resolvers: the /56 decides; an IPv4-mapped source is its IPv4 address
    a = s.choose("sticky", 6, Client("2001:db8:1:200::1"), health).addresses
    assert all(s.choose("sticky", 6, Client(f"2001:db8:1:2{i:02x}::9"), health).addresses == a
               for i in range(256))
    mapped = s.choose("sticky", 4, Client("::ffff:" + NETS[0][:-1] + "9"), health)
    assert ADDRESS[mapped.addresses[0]] == base[NETS[0]]


def test_ecs_decides_over_the_source_address(base: dict[str, str]) -> None:
    s, health = steering(), AllUpExcept()
    for i, net in enumerate(NETS[:300]):
        resolver = NETS[-1 - i].rsplit(".", 1)[0] + ".53"
        got = s.choose("sticky", 4, Client(resolver, net, 24, 4), health)
        assert ADDRESS[got.addresses[0]] == base[net]


def test_max_answers_takes_the_top_k_and_is_stable(base: dict[str, str]) -> None:
    names = tuple(ORIGINS)
    wide = Pool("sticky", "hash", names, (names,), max_answers=3)
    s = Steering({"sticky": wide}, ORIGINS)
    health = AllUpExcept()
    firsts = Counter()
    for net in NETS[:2000]:
        c = Client("198.51.100.1", net, 24, 4)
        got = [ADDRESS[a] for a in s.choose("sticky", 4, c, health).addresses]
        assert len(got) == len(set(got)) == 3
        assert got[0] == base[net]  # the best is the one answer of max_answers 1
        assert [ADDRESS[a] for a in s.choose("sticky", 4, c, health).addresses] == got
        # with the best down, the rest move up in order
        down = [ADDRESS[a] for a in s.choose("sticky", 4, c,
                                              AllUpExcept(frozenset({got[0]}))).addresses]
        assert down[:2] == got[1:]
        firsts[got[0]] += 1
    assert abs(firsts["e"] / 2000 - 0.4) <= 0.04


def test_one_healthy_is_everyone_s_answer_and_none_falls_back() -> None:
    s = steering()
    one = s.choose("sticky", 4, Client("198.51.100.1", "81.2.69.0", 24, 4),
                   AllUpExcept(frozenset("abcd")))
    assert one.addresses == ("192.0.2.5",) and one.scope == 0 and one.basis == Basis.NONE
    none = s.choose("sticky", 4, Client("198.51.100.1", "81.2.69.0", 24, 4),
                    AllUpExcept(frozenset("abcde")))
    assert none.kind == "answer" and none.fallback  # fallback all: as if all were up
    assert none.basis & Basis.CLIENT and none.scope == 24


def test_members_may_be_pools() -> None:
    europe = Pool("europe", "weighted", ("a", "b"), (("a", "b"),), weight=1)
    america = Pool("america", "failover", ("c", "d"), (("c",), ("d",)), weight=3)
    top = Pool("top", "hash", ("europe", "america"), (("europe", "america"),))
    s = Steering({"europe": europe, "america": america, "top": top}, ORIGINS)
    health = AllUpExcept()
    got = Counter()
    for net in NETS[:4000]:
        c = Client("198.51.100.1", net, 24, 4)
        first = s.choose("top", 4, c, health)
        assert first.basis & Basis.CLIENT and first.scope == 24
        got["america" if first.addresses == ("192.0.2.3",) else "europe"] += 1
    assert abs(got["america"] / 4000 - 0.75) <= 0.03


def test_network_key_truncates() -> None:
    assert network_key("81.2.69.142", 24, 56) == (b"4" + bytes((81, 2, 69)), 24, False)
    assert network_key("81.2.69.142", 20, 56) == (b"4" + bytes((81, 2, 64)), 20, False)
    assert network_key("81.2.69.142", 0, 56) == (b"4", 0, False)
    assert network_key("::ffff:81.2.69.142", 24, 56) == (b"4" + bytes((81, 2, 69)), 24, True)
    key, bits, _ = network_key("2001:db8:1:2ff::1", 24, 56)
    assert bits == 56 and key == b"6" + bytes.fromhex("20010db80001") + b"\x02"
    assert network_key("not an address", 24, 56)[1] == 0


# -- config --------------------------------------------------------------------------

CONFIG = """
origins:
  a: {ipv4: [192.0.2.1], weight: 2}
  b: {ipv4: [192.0.2.2]}
pools:
  sticky:
    policy: hash
    origins: [a, b]
    %s
zones:
  gslb.example.com:
    records:
      "@":
        SOA: ns1 hostmaster.example.com. 1 3600 600 86400 30
        NS: [ns1]
      ns1: {A: 127.0.0.1}
      www: {gslb: sticky}
"""


def test_config_reads_the_hash_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG % "hash_prefix: {ipv4: 20, ipv6: 48}\n    hash_seed: 2024")
    p = load([path]).pools["sticky"]
    assert (p.policy, p.hash_prefix_v4, p.hash_prefix_v6, p.hash_seed) == ("hash", 20, 48,
                                                                            "2024")
    path.write_text(CONFIG % "max_answers: 1")
    p = load([path]).pools["sticky"]
    assert (p.hash_prefix_v4, p.hash_prefix_v6, p.hash_seed) == (24, 56, "")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("hash_prefix: {ipv4: 33}", "c.yaml:9: pools.sticky.hash_prefix.ipv4: 33 is above 32"),
        ("hash_prefix: {ipv6: -1}", "c.yaml:9: pools.sticky.hash_prefix.ipv6: -1 is below 0"),
        ("hash_prefix: {ipv5: 8}", "c.yaml:9: pools.sticky.hash_prefix.ipv5: unknown key"),
        ("hash_prefix: 24", "c.yaml:9: pools.sticky.hash_prefix: expected a mapping"),
        ("hash_seed: ''", "c.yaml:9: pools.sticky.hash_seed: expected a non-empty string"),
    ],
)
def test_config_reports_bad_hash_keys(tmp_path: Path, keys: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG % keys)
    with pytest.raises(ConfigError) as err:
        load([path])
    assert any(message in r for r in err.value.reasons), err.value.reasons


def test_hash_keys_belong_to_hash_pools(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("policy: hash", "policy: weighted") % "hash_seed: x")
    with pytest.raises(ConfigError) as err:
        load([path])
    assert any("key 'hash_seed' is only valid for policy hash" in r
               for r in err.value.reasons), err.value.reasons

