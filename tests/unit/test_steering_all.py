"""``all`` policy: every healthy candidate, declaration order."""

from __future__ import annotations

import random

import pytest

from gslb.config.model import Origin, Pool
from gslb.steering.all import AllPolicy
from gslb.steering.base import Client
from tests.unit.fakes import Health

CANDIDATES = tuple(Origin(n, (f"192.0.2.{i}",)) for i, n in enumerate(["a", "b", "c", "d"], 1))
POOL = Pool("everyone", "all", ("a", "b", "c", "d"), (("a", "b", "c", "d"),), max_answers=1)


@pytest.mark.parametrize(
    ("down", "expect"),
    [
        ((), ["a", "b", "c", "d"]),
        (("b",), ["a", "c", "d"]),
        (("a", "d"), ["b", "c"]),
        (("a", "b", "c", "d"), []),
    ],
)
def test_every_healthy_in_order(down: tuple[str, ...], expect: list[str]) -> None:
    client = Client("198.51.100.1", "2001:db8:1::", 64, 6)
    sel = AllPolicy().select(POOL, CANDIDATES, client, Health(**dict.fromkeys(down, False)),
                             random.Random(0))
    assert [o.name for o in sel.members] == expect  # max_answers ignored
    assert sel.scope == 0
