"""Resolver prefetch, and what short TTLs cost in queries (docs/ttl-caching.md,
sections 6 and 7), measured by counting the queries our servers receive
from the resolver while a client keeps asking it.

unbound keeps time in whole seconds: an entry stored at second S with TTL t
expires at S + t, and with ``prefetch: yes`` a query at or after second
S + t - t/10 is answered from the cache and also refreshes the entry
upstream (unbound's ``PREFETCH_TTL_CALC``)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from tests.ttl import lab
from tests.ttl.conftest import Authoritatives, StartResolver, addresses, answer_ttl

pytestmark = pytest.mark.ttl

PRE, BRIEF, FO = "pre.gslb.example.test.", "brief.gslb.example.test.", "fo.gslb.example.test."


async def _at_second_start() -> float:
    """Sleep to just after the next whole wall-clock second; return it."""
    now = time.time()
    target = math.floor(now) + 1 + 0.05
    await asyncio.sleep(target - now)
    return math.floor(target)


async def _until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


async def test_prefetch_refreshes_an_entry_asked_in_its_last_tenth(
        authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """With ``prefetch: yes`` a client asking in the last tenth of the TTL
    gets the cached answer and the resolver asks us again *before* the entry
    expires; a client just after the old expiry is served the refreshed
    entry from the cache. Without prefetch there would be no query to us
    before the expiry, and the later client would cause one."""
    unbound = await resolver(ecs=False, prefetch="yes")
    second = await _at_second_start()
    first = await unbound.ask(PRE)
    assert addresses(first) == [lab.VIRGINIA] and answer_ttl(first) == lab.PREFETCH_TTL
    await authoritatives.wait_for(PRE, "A", 1, 1.0)
    expires = second + lab.PREFETCH_TTL

    await _until(expires - 0.5)  # in the last tenth: second S + 9
    late = await unbound.ask(PRE)
    assert answer_ttl(late) <= 1  # from the cache, about to expire
    refresh = await authoritatives.wait_for(PRE, "A", 2, 1.0)
    loop_to_wall = time.time() - asyncio.get_running_loop().time()
    assert refresh.at + loop_to_wall < expires  # asked before the old entry expired

    await _until(expires + 0.5)
    after = await unbound.ask(PRE)
    assert answer_ttl(after) >= lab.PREFETCH_TTL - 2  # the refreshed entry
    assert len(authoritatives.from_resolver(PRE)) == 2  # no query for this client


@pytest.mark.parametrize(("qname", "ttl"), [(BRIEF, lab.STALE_TTL), (FO, lab.FAILOVER_TTL)])
async def test_steady_demand_costs_one_query_per_ttl(
        authoritatives: Authoritatives, resolver: StartResolver, qname: str, ttl: int) -> None:
    """A client asking 20 times a second for 6.5 s makes the resolver ask us
    about once per TTL: the ``3600 / TTL`` queries per hour of section 7.
    Each entry lives between TTL - 1 and TTL + 1 s (whole-second clock) and
    the next query after its expiry (within 50 ms) asks us again, so the
    count lies in [ceil(D / (TTL + 1.05)), floor(D / (TTL - 1)) + 1]."""
    unbound = await resolver(ecs=False)
    duration_s, asked = 6.5, 0
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    while loop.time() < end:
        assert addresses(await unbound.ask(qname))
        asked += 1
        await asyncio.sleep(0.05)
    upstream = len(authoritatives.from_resolver(qname))
    low, high = math.ceil(duration_s / (ttl + 1.05)), math.floor(duration_s / (ttl - 1)) + 1
    assert low <= upstream <= high, (upstream, low, high)
    assert asked >= 100 and upstream <= asked / 20
