"""``ttl_when_degraded`` through a caching resolver: how soon users get
the primary back after it heals (docs/ttl-caching.md, "TTL that follows
health").

``heal`` and ``heal-full`` both answer from the ``fo`` pool (checked
primary, unchecked backup) with TTL ``lab.HEAL_TTL`` (8 s); ``heal`` has
``ttl_when_degraded: 2``. The primary dies; once both our servers answer the
backup, the resolver caches each name's backup answer (``heal`` with TTL 2,
``heal-full`` with 8); then the primary comes back. Through the resolver,
``heal`` returns to the primary within about the degraded TTL, ``heal-full``
only when its full TTL runs out. Timing notes as in ``test_expiry.py``:
unbound's whole-second clock (an entry with TTL t lives t - 1 to t + 1 s),
polling every 50 ms, ``lab.RECOVERY_S`` (interval × rise + timeout = 0.4 s)
for our servers to answer the primary again."""

from __future__ import annotations

import asyncio
import logging

import dns.asyncquery
import dns.message
import pytest

from tests.conftest import FakeOrigin
from tests.ttl import lab
from tests.ttl.conftest import Authoritatives, StartResolver, addresses, answer_ttl, poll

pytestmark = pytest.mark.ttl
log = logging.getLogger("tests.ttl")

HEAL = "heal.gslb.example.test."
FULL = "heal-full.gslb.example.test."
SLACK_S = 1.0
"""Scheduling slack (s) on top of the clock granularity in upper bounds."""


async def _direct(address: str, qname: str) -> dns.message.Message:
    query = dns.message.make_query(qname, "A")
    return await dns.asyncquery.udp(query, address, port=53, timeout=1.0)


async def _both_answer(qname: str, to: str, timeout_s: float) -> float:
    """Event-loop time when both our nameservers answer ``to`` for ``qname``."""
    times = [(await poll(lambda a=a: _direct(a, qname),
                         lambda r: addresses(r) == [to], timeout_s))[0] for a in lab.GSLB_NS]
    return max(times)


async def test_degraded_ttl_brings_users_back_sooner(
        origin: FakeOrigin, authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """After the primary heals, the resolver returns ``heal`` to it at most
    recovery + degraded TTL + 1 s granularity + slack after it came back
    (and no sooner than our servers do), while ``heal-full`` keeps the backup
    at least full TTL − 1 s after it was cached: the degraded TTL saves
    at least HEAL_TTL − DEGRADED_TTL − 2 s (4 s) of the way back."""
    loop = asyncio.get_running_loop()
    unbound = await resolver()
    await origin.stop()
    await _both_answer(HEAL, lab.BACKUP, 10.0)
    await _both_answer(FULL, lab.BACKUP, 10.0)
    degraded, full = await asyncio.gather(unbound.ask(HEAL), unbound.ask(FULL))
    assert addresses(degraded) == addresses(full) == [lab.BACKUP]
    assert answer_ttl(degraded) == lab.DEGRADED_TTL
    assert answer_ttl(full) == lab.HEAL_TTL
    cached_heal = (await authoritatives.wait_for(HEAL, "A", 1, 1.0)).at
    cached_full = (await authoritatives.wait_for(FULL, "A", 1, 1.0)).at
    healed = loop.time()
    await origin.start()
    servers, (heal_back, heal_reply, _), (full_back, full_reply, _) = await asyncio.gather(
        _both_answer(HEAL, lab.PRIMARY, 10.0),
        poll(lambda: unbound.ask(HEAL), lambda r: addresses(r) == [lab.PRIMARY], 15.0),
        poll(lambda: unbound.ask(FULL), lambda r: addresses(r) == [lab.PRIMARY], 15.0))
    log.info("primary back: our servers %.2f s, through the resolver: with "
             "ttl_when_degraded %d %.2f s (%.2f s after caching), without (TTL %d) %.2f s "
             "(%.2f s after caching)", servers - healed, lab.DEGRADED_TTL, heal_back - healed,
             heal_back - cached_heal, lab.HEAL_TTL, full_back - healed, full_back - cached_full)
    assert servers - healed <= lab.RECOVERY_S + SLACK_S
    # healed: full TTL again
    assert answer_ttl(heal_reply) == answer_ttl(full_reply) == lab.HEAL_TTL
    assert heal_back - healed <= lab.RECOVERY_S + lab.DEGRADED_TTL + 1 + SLACK_S
    assert heal_back - cached_heal <= lab.DEGRADED_TTL + 1 + SLACK_S
    assert full_back - cached_full >= lab.HEAL_TTL - 1
    assert full_back - heal_back >= lab.HEAL_TTL - lab.DEGRADED_TTL - 2
