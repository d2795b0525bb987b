"""Negative caching (RFC 2308): NXDOMAIN and NODATA answers carry our SOA
with TTL min(SOA TTL, SOA minimum) = min(60, 3) = 3 s, and the resolver
caches the negative answer for that long and no longer."""

from __future__ import annotations

import asyncio
import logging

import dns.rcode
import dns.rdatatype
import pytest

from tests.ttl import lab
from tests.ttl.conftest import Authoritatives, StartResolver

pytestmark = pytest.mark.ttl
log = logging.getLogger("tests.ttl")


@pytest.mark.parametrize(("qname", "qtype", "rcode"), [
    pytest.param("nx.gslb.example.test.", "A", dns.rcode.NXDOMAIN, id="nxdomain"),
    # the geo pool's origins have no IPv6: AAAA is NODATA (NOERROR, no answer)
    pytest.param("www.gslb.example.test.", "AAAA", dns.rcode.NOERROR, id="nodata-aaaa"),
])
async def test_negative_answer_cached_for_soa_minimum(
        authoritatives: Authoritatives, resolver: StartResolver, qname: str, qtype: str,
        rcode: dns.rcode.Rcode) -> None:
    """The first reply has the expected rcode, no answer and our SOA with TTL
    3. Polled every 100 ms, the resolver answers from its cache until the
    negative entry expires, then asks our servers again: the second query
    reaches them between 3 − 1 and 3 + 1 s + 0.5 s slack after the first
    (unbound's clock has whole seconds), and every reply meanwhile is the
    same negative answer (at least 10 of them from 1 upstream query)."""
    unbound = await resolver()
    first = await unbound.ask(qname, qtype)
    assert first.rcode() == rcode and first.answer == []
    soa = [rrset for rrset in first.authority if rrset.rdtype == dns.rdatatype.SOA]
    assert [rrset.ttl for rrset in soa] == [lab.NEGATIVE_TTL]
    asked = (await authoritatives.wait_for(qname, qtype, 1, 1.0)).at
    again = asyncio.create_task(authoritatives.wait_for(qname, qtype, 2, 10.0))
    cached = 0
    while not again.done():
        reply = await unbound.ask(qname, qtype)
        if not again.done():
            assert reply.rcode() == rcode and reply.answer == []
            cached += 1
        await asyncio.wait({again}, timeout=0.1)
    refetched = (await again).at - asked
    log.info("%s %s: negative answer cached %.2f s, %d replies from cache", qname, qtype,
             refetched, cached)
    assert lab.NEGATIVE_TTL - 1 <= refetched <= lab.NEGATIVE_TTL + 1 + 0.5
    assert cached >= 10
