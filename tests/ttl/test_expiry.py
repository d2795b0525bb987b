"""How long a dead origin stays in users' answers behind a caching resolver:
our TTL, a resolver's TTL floor, and serve-stale.

Timing notes for every bound below: unbound keeps time in whole seconds, so
an entry with TTL t lives between t - 1 and t + 1 s of wall time after it was
stored; the tests poll every 50 ms; ``lab.DETECTION_S`` (check interval ×
fall + timeout = 0.6 s) bounds how long our servers take to stop answering
a dead origin (propagation is 0: each server runs its own prober)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from tests.conftest import FakeOrigin
from tests.ttl import lab
from tests.ttl.conftest import Authoritatives, StartResolver, addresses, answer_ttl, poll

pytestmark = pytest.mark.ttl
log = logging.getLogger("tests.ttl")

FO = "fo.gslb.example.test."
SLACK_S = 1.0
"""Scheduling slack (s) on top of the clock granularity in upper bounds."""


async def _direct(address: str, qname: str) -> dns.message.Message:
    query = dns.message.make_query(qname, "A")
    return await dns.asyncquery.udp(query, address, port=53, timeout=1.0)


async def _both_switched(qname: str, to: str, timeout_s: float) -> float:
    """Event-loop time when both our nameservers answer ``to`` for ``qname``."""
    times = [(await poll(lambda a=a: _direct(a, qname),
                         lambda r: addresses(r) == [to], timeout_s))[0] for a in lab.GSLB_NS]
    return max(times)


async def _kill_and_measure(origin: FakeOrigin,
                            unbound_ask: Callable[[], Awaitable[dns.message.Message]],
                            timeout_s: float) -> tuple[float, float, float]:
    """Stop the origin; return (death time, time both our servers answer the
    backup, time the resolver first answers the backup), event-loop clock."""
    loop = asyncio.get_running_loop()
    died = loop.time()
    await origin.stop()
    servers, (through_resolver, _, _) = await asyncio.gather(
        _both_switched(FO, lab.BACKUP, timeout_s),
        poll(unbound_ask, lambda r: addresses(r) == [lab.BACKUP], timeout_s))
    return died, servers, through_resolver


async def test_resolver_serves_dead_origin_until_our_ttl_runs_out(
        origin: FakeOrigin, authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """The resolver caches the primary's address with TTL 3 s; then the
    primary dies. Our servers switch to the backup within detection
    (≤ 0.6 s + slack), but users of the resolver keep getting the dead
    primary until the cached answer expires: the switch seen through the
    resolver comes at least (TTL remaining at the death − 1 s) after the
    death, at most detection + TTL + 1 s granularity + slack after it, and
    later than our servers' own switch; measured from when the answer was
    cached it lies in [TTL − 1, TTL + 1 + slack]."""
    unbound = await resolver()
    cached = await unbound.ask(FO)
    assert addresses(cached) == [lab.PRIMARY]
    stored = (await authoritatives.wait_for(FO, "A", 1, 1.0)).at
    remaining = answer_ttl(cached)
    assert remaining == lab.FAILOVER_TTL
    died, servers, seen = await _kill_and_measure(origin, lambda: unbound.ask(FO), 10.0)
    log.info("TTL %d s: servers switched %.2f s after the death, the resolver %.2f s "
             "(%.2f s after caching)", remaining, servers - died, seen - died, seen - stored)
    assert servers - died <= lab.DETECTION_S + SLACK_S
    assert remaining - 1 <= seen - died <= lab.DETECTION_S + lab.FAILOVER_TTL + 1 + SLACK_S
    assert seen > servers
    assert lab.FAILOVER_TTL - 1 <= seen - stored <= lab.FAILOVER_TTL + 1 + SLACK_S


async def test_cache_min_ttl_floor_outlives_our_ttl(
        origin: FakeOrigin, authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """With ``cache-min-ttl: 7`` the resolver raises our 3 s TTL to 7 s (and
    says so to clients: the answer shows TTL 7). After the primary dies, its
    address stays in the resolver's answers for the floor, not our TTL: the
    switch comes at least 7 − 1 s after the answer was cached (so at least
    2 s longer than our TTL allows) and at most detection + 7 + 1 + slack
    after the death."""
    floor = 7
    unbound = await resolver(cache_min_ttl=floor)
    cached = await unbound.ask(FO)
    assert addresses(cached) == [lab.PRIMARY]
    assert answer_ttl(cached) == floor
    stored = (await authoritatives.wait_for(FO, "A", 1, 1.0)).at
    died, servers, seen = await _kill_and_measure(origin, lambda: unbound.ask(FO), 15.0)
    log.info("floor %d s: servers switched %.2f s after the death, the resolver %.2f s "
             "(%.2f s after caching)", floor, servers - died, seen - died, seen - stored)
    assert servers - died <= lab.DETECTION_S + SLACK_S
    assert seen - stored >= floor - 1 >= lab.FAILOVER_TTL + 2
    assert seen - died <= lab.DETECTION_S + floor + 1 + SLACK_S


STALE = "brief.gslb.example.test."
REPLY_TTL = 7
"""``serve-expired-reply-ttl`` (s): the TTL unbound puts on stale answers."""
# Without these two, unbound retries unreachable servers with exponential
# back-off and answers SERVFAIL only after a minute or more (measured: no
# reply within 60 s); capped, it gives up in about 1.5 s.
QUICK_GIVE_UP = {"infra_cache_max_rtt": 400, "max_sent_count": 6}


async def test_serve_expired_answers_from_stale_cache_when_we_are_down(
        authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """RFC 8767 serve-stale (``serve-expired: yes``, resolver without ECS):
    the answer is cached with our TTL of 2 s, then both our servers stop.
    Once the entry expires the resolver still answers, from the expired
    entry: the same address, with TTL ``serve-expired-reply-ttl`` (7 s),
    starting between TTL − 1 and TTL + 1 + slack seconds after it was cached;
    every reply meanwhile is NOERROR with that address (0 failures)."""
    unbound = await resolver(ecs=False, serve_expired="yes",
                             serve_expired_reply_ttl=REPLY_TTL, **QUICK_GIVE_UP)
    fresh = await unbound.ask(STALE)
    assert addresses(fresh) == [lab.VIRGINIA]
    stored = (await authoritatives.wait_for(STALE, "A", 1, 1.0)).at
    await authoritatives.stop()
    replies: list[dns.message.Message] = []

    async def ask() -> dns.message.Message:
        replies.append(await unbound.ask(STALE, timeout_s=3.0))
        return replies[-1]

    when, stale, _ = await poll(ask, lambda r: answer_ttl(r) == REPLY_TTL, 10.0)
    log.info("stale answer %.2f s after caching", when - stored)
    assert addresses(stale) == [lab.VIRGINIA]
    assert lab.STALE_TTL - 1 <= when - stored <= lab.STALE_TTL + 1 + SLACK_S
    assert sum(r.rcode() != dns.rcode.NOERROR or addresses(r) != [lab.VIRGINIA]
               for r in replies) == 0


@pytest.mark.parametrize(("ecs", "serve_expired"), [
    pytest.param(False, "no", id="serve-expired-off"),
    pytest.param(True, "yes", id="subnetcache-ignores-serve-expired"),
])
async def test_resolver_fails_when_we_are_down_without_stale_serving(
        authoritatives: Authoritatives, resolver: StartResolver, ecs: bool,
        serve_expired: str) -> None:
    """The same outage where nothing stale is served: ``serve-expired: no``
    (unbound's default), or ``serve-expired: yes`` with the ECS module
    (unbound 1.17's subnetcache does not serve expired data: it logs
    "serve-expired is set but not working for data originating from the
    subnet module cache"). Once our 2 s TTL runs out the resolver answers
    SERVFAIL, between TTL − 1 and TTL + 1 s + the 1.5 s it spends trying our
    stopped servers + slack after the answer was cached."""
    unbound = await resolver(ecs=ecs, serve_expired=serve_expired, **QUICK_GIVE_UP)
    assert addresses(await unbound.ask(STALE)) == [lab.VIRGINIA]
    stored = (await authoritatives.wait_for(STALE, "A", 1, 1.0)).at
    await authoritatives.stop()
    when, _, _ = await poll(lambda: unbound.ask(STALE, timeout_s=3.0),
                            lambda r: r.rcode() == dns.rcode.SERVFAIL, 10.0)
    log.info("SERVFAIL %.2f s after caching", when - stored)
    assert lab.STALE_TTL - 1 <= when - stored <= lab.STALE_TTL + 1 + 1.5 + SLACK_S
