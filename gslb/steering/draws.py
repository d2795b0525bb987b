"""Weighted draws an answer cache can replay.

An answer decided by one weighted draw between n members, and by nothing
else that moves, is one of n answers, each with its own probability: the
answer cache can store all n and draw again on every hit
(:class:`gslb.dns.cache.Draw`) instead of answering each such query afresh.
What it may store follows from what the lookup did, not from which
policies its pools have: the authority answers through a :class:`Draws`,
which records every use of randomness in one lookup. Only a lookup that
drew exactly once, through :func:`draw_index` (a weighted draw of one
member: ``weighted`` with ``max_answers: 1``, or one member drawn in a
failover tier), yields the partition of that draw; any other use (a second
draw, a shuffle, a sample of several members) spoils it, and the answer is
not stored, as before. The answer for each other outcome is then made by
the same lookup with that outcome forced (:meth:`Draws.start`).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import MutableSequence, Sequence
from typing import Any


class Draws(random.Random):
    """A ``random.Random`` that draws from ``source`` (every number it gives
    is ``source``'s, in the same order, so a seeded source answers the same
    with or without it) and records what one lookup drew.

    Call :meth:`start` before each lookup; afterwards ``partition`` is the
    cumulative weights of its one :func:`draw_index` draw and ``outcome``
    the index drawn, or ``partition`` is None when the lookup drew in any
    other way, or more than once, or not at all. Not thread-safe: one
    event loop.
    """

    def __init__(self, source: random.Random) -> None:
        super().__init__(0)  # its own state is never used
        self.source = source
        self._partition: tuple[int, ...] | None = None
        self._other = False
        self._forced: int | None = None
        self.outcome = -1

    def start(self, forced: int | None = None) -> None:
        """Forget what was drawn; with ``forced``, the next
        :func:`draw_index` draw gives that index without drawing (the
        answer for that outcome; the caller checks the partition is the
        same)."""
        self._partition, self._other, self._forced, self.outcome = None, False, forced, -1

    @property
    def partition(self) -> tuple[int, ...] | None:
        """The cumulative weights of the one draw since :meth:`start`
        (positive integers, increasing), or None (see the class doc)."""
        return None if self._other else self._partition

    def index(self, cumulative: Sequence[int]) -> int:
        """:func:`draw_index` through this recorder."""
        if self._partition is None and not self._other:
            self._partition = tuple(cumulative)
        else:
            self._other = True
        forced, self._forced = self._forced, None
        if forced is not None and 0 <= forced < len(cumulative):
            self.outcome = forced
        else:
            self.outcome = bisect_right(cumulative, self.source.randrange(cumulative[-1]))
        return self.outcome

    # every other way of drawing: from the source, and the lookup is no single draw
    def random(self) -> float:
        self._other = True
        return self.source.random()

    def getrandbits(self, k: int) -> int:
        self._other = True
        return self.source.getrandbits(k)

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        self._other = True
        return self.source.randrange(start, stop, step)

    def shuffle(self, x: MutableSequence[Any]) -> None:
        self._other = True
        self.source.shuffle(x)


def draw_index(rng: random.Random, cumulative: Sequence[int]) -> int:
    """The index ``i`` drawn with probability ``(cumulative[i] -
    cumulative[i - 1]) / cumulative[-1]`` (``cumulative``: increasing
    positive integers, the running sums of the weights), with one
    ``rng.randrange(cumulative[-1])``; through a :class:`Draws`, recorded
    so the answer can be stored once per outcome."""
    if type(rng) is Draws:
        return rng.index(cumulative)
    return bisect_right(cumulative, rng.randrange(cumulative[-1]))


__all__ = ["Draws", "draw_index"]
