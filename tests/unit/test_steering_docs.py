"""Every ```yaml gslb example in docs/steering.md loads, and answers as the
text says."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import dns.message
import pytest

from gslb.authority import Authority, respond
from gslb.config.load import load
from gslb.config.model import Config
from gslb.geo import GeoLocation
from gslb.steering import Client, Steering
from tests.unit.fakes import Health

DOC = Path(__file__).resolve().parents[2] / "docs" / "steering.md"
BLOCKS = re.findall(r"^```yaml gslb\n(.*?)^```$", DOC.read_text(), re.M | re.S)


def load_block(i: int, tmp_path: Path) -> Config:
    path = tmp_path / f"block{i}.yaml"
    path.write_text(BLOCKS[i])
    return load([path])


def test_there_are_examples() -> None:
    assert len(BLOCKS) == 9


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_example_loads(i: int, tmp_path: Path) -> None:
    cfg = load_block(i, tmp_path)
    Steering(cfg.pools, cfg.origins, vantages=cfg.vantages)


@pytest.mark.parametrize(
    ("block", "pool", "loc", "down", "expect"),
    [
        (0, "db", None, (), ("127.0.0.21",)),
        (0, "db", None, ("primary", "replica-a", "replica-b"), ()),
        (2, "web", GeoLocation("SE", "EU", 58.4, 15.6), (), ("127.0.0.12",)),
        (2, "web", GeoLocation("US", "NA", 47.3, -122.3), (), ("127.0.0.13",)),
        (2, "web", GeoLocation("BR", "SA", -15.8, -47.9), (), ("127.0.0.13",)),
        (4, "everyone", None, (), ("127.0.0.11", "127.0.0.12", "127.0.0.13")),
        # hash: the ECS /24 81.2.69.0 gets cart-1 (the dig lines); cart-1 alone up: cart-1
        (5, "carts", None, (), ("127.0.0.31",)),
        (5, "carts", None, ("cart-2", "cart-3"), ("127.0.0.31",)),
        (6, "app", GeoLocation("US", "NA", 47.3, -122.3), (), ("127.0.0.13",)),
        # the tree: stockholm down, europe below min_healthy, europe-first's
        # second tier answers Europe's clients
        (6, "app", GeoLocation("GB", "EU", 51.5, -0.1), ("stockholm",), ("127.0.0.13",)),
        (7, "web", None, ("london", "stockholm"), ("192.0.2.80",)),
    ],
)
def test_example_answers(block: int, pool: str, loc: GeoLocation | None,
                         down: tuple[str, ...], expect: tuple[str, ...],
                         tmp_path: Path) -> None:
    cfg = load_block(block, tmp_path)
    c = Client("198.51.100.1", "81.2.69.0", 24, 4, locator=lambda _ip: loc)
    got = Steering(cfg.pools, cfg.origins, vantages=cfg.vantages).choose(
        pool, 4, c, Health(**dict.fromkeys(down, False)), random.Random(0))
    assert got.addresses == expect


def test_the_tree_example_keeps_its_weights(tmp_path: Path) -> None:
    cfg = load_block(6, tmp_path)
    gb = Client("198.51.100.1", "81.2.69.0", 24, 4,
                locator=lambda _ip: GeoLocation("GB", "EU", 51.5, -0.1))
    steering, rng = Steering(cfg.pools, cfg.origins), random.Random(0)
    got = [steering.choose("app", 4, gb, Health(), rng).addresses[0] for _ in range(800)]
    assert 540 <= got.count("127.0.0.11") <= 660 and got.count("127.0.0.12") == 800 - got.count(
        "127.0.0.11")


def test_the_hash_example_answers_as_its_dig_lines(tmp_path: Path) -> None:
    cfg = load_block(5, tmp_path)
    steering, health = Steering(cfg.pools, cfg.origins), Health()
    for subnet, source, address, scope in (("81.2.69.0", 24, "127.0.0.31", 24),
                                           ("81.2.69.142", 32, "127.0.0.31", 24),
                                           ("89.160.20.0", 24, "127.0.0.32", 24),
                                           ("81.2.64.0", 20, "127.0.0.31", 20)):
        got = steering.choose("carts", 4, Client("198.51.100.1", subnet, source, 4), health)
        assert (got.addresses, got.scope) == ((address,), scope)
    counts = Counter(steering.choose("carts", 4, Client("198.51.100.1", f"10.1.{i}.0", 24, 4),
                                     health).addresses[0] for i in range(256))
    assert counts == {"127.0.0.31": 77, "127.0.0.32": 59, "127.0.0.33": 120}


@pytest.mark.parametrize(("down", "www", "api"), [((), 60, 30), (("london",), 10, 5),
                                                  (("stockholm",), 10, 5)])
def test_the_degraded_ttl_example_answers_as_its_text(tmp_path: Path, down: tuple[str, ...],
                                                      www: int, api: int) -> None:
    auth = Authority(load_block(8, tmp_path), Health(**dict.fromkeys(down, False)))
    for name, ttl in (("www", www), ("api", api)):
        q = dns.message.make_query(f"{name}.gslb.example.com.", "A")
        wire = respond(auth, q.to_wire(), "198.51.100.1", True)
        assert wire is not None
        assert dns.message.from_wire(wire).answer[0].ttl == ttl, (name, down)
