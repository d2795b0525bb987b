"""Waiting for a condition on state that changes in place.

``Changes`` is what ``QuorumView.wait_for`` and ``Overrides.wait_for`` are
built on: the owner of some state calls ``wake()`` after every change, and
any number of coroutines wait until a predicate over that state holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Changes:
    """A change signal: ``wake()`` after each change, ``wait_for`` to wait
    for a condition. Use from one event loop (not thread-safe).

    Each ``wake()`` sets the current ``asyncio.Event`` and puts a fresh one
    in its place, so every waiter re-tests its predicate once per change
    and a change made before a waiter started waiting is never missed (the
    predicate is tested first).
    """

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        """Wake every ``wait_for`` caller to re-test its predicate."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` is true, testing it now and again
        after every ``wake()``. ``timeout`` in seconds; raises
        ``TimeoutError`` when it passes first."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._event.wait()
