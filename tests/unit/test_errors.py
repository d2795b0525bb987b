"""``raise_if_cancelling``: a cancellation a library turned into another
exception still stops a long-running loop."""

from __future__ import annotations

import asyncio

import pytest

from gslb.errors import raise_if_cancelling


async def test_a_swallowed_cancellation_still_stops_the_loop() -> None:
    rounds = 0
    started = asyncio.Event()

    async def loop_swallowing_cancels() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            try:
                started.set()
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:  # as a buggy library would
                pass
            raise_if_cancelling()

    task = asyncio.create_task(loop_swallowing_cancels())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert task.cancelled()


async def test_no_cancellation_pending_is_a_no_op() -> None:
    raise_if_cancelling()  # no error
    try:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)
    except TimeoutError:
        raise_if_cancelling()  # the timeout's own cancel was taken back
