"""``Changes``: the one wait-until-predicate helper behind
``QuorumView.wait_for`` and ``Overrides.wait_for``."""

from __future__ import annotations

import asyncio

import pytest

from gslb.health.changes import Changes


async def test_a_true_predicate_returns_at_once():
    changes = Changes()
    await changes.wait_for(lambda: True, 0)  # tested before waiting: no wake needed


async def test_every_waiter_re_tests_after_each_wake():
    changes = Changes()
    state = {"n": 0}
    tested = []

    def at_least(n: int):
        def predicate() -> bool:
            tested.append(n)
            return state["n"] >= n
        return predicate

    one = asyncio.create_task(changes.wait_for(at_least(1), 2))
    two = asyncio.create_task(changes.wait_for(at_least(2), 2))
    await asyncio.sleep(0)
    assert tested == [1, 2]
    state["n"] = 1
    changes.wake()
    await one
    assert not two.done()
    state["n"] = 2
    changes.wake()
    await two
    assert tested.count(2) == 3  # once at the start, once per wake


async def test_the_timeout_raises_timeout_error():
    changes = Changes()
    with pytest.raises(TimeoutError):
        await changes.wait_for(lambda: False, 0.05)
