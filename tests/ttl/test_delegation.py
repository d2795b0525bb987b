"""The delegation works end to end: the parent refers to our two nameservers
by NS + glue, and a user's resolver follows the referral to a GSLB answer."""

from __future__ import annotations

import asyncio
import shutil

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.ttl import lab
from tests.ttl.conftest import Authoritatives, StartResolver, addresses, answer_ttl, ecs_scope

pytestmark = pytest.mark.ttl


async def test_parent_refers_to_both_nameservers_with_glue(parent: str) -> None:
    """Asked directly (no recursion), the parent is not authoritative for
    ``www.gslb.example.test``: a referral (RFC 1034 section 4.3.2, step 3b),
    NOERROR without AA and with an empty answer, 2 NS records naming our
    nameservers and 2 glue A records with their loopback addresses."""
    query = dns.message.make_query("www.gslb.example.test", "A", use_edns=0)
    query.flags &= ~dns.flags.RD
    reply = await dns.asyncquery.udp(query, parent, timeout=2.0)
    assert reply.rcode() == dns.rcode.NOERROR
    assert not reply.flags & dns.flags.AA
    assert reply.answer == []
    ns = sorted(rr.target.to_text() for rrset in reply.authority for rr in rrset
                if rrset.rdtype == dns.rdatatype.NS)
    assert ns == ["ns1.gslb.example.test.", "ns2.gslb.example.test."]
    glue = sorted(rr.address for rrset in reply.additional for rr in rrset
                  if rrset.rdtype == dns.rdatatype.A)
    assert glue == sorted(lab.GSLB_NS)


async def test_user_dig_through_resolver_gets_geo_answer(
        authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """What a user runs: ``dig @127.0.53.53 www.gslb.example.test
    +subnet=81.2.69.0/24``. The resolver walks root → example.test. → our
    servers and returns exactly 1 address, london's (GB in the fake mmdb),
    with a TTL of at most our 30 s; our servers saw 1 query from the resolver,
    carrying the client's subnet 81.2.69.0/24 (RFC 7871 section 7.1.2)."""
    dig = shutil.which("dig")
    if dig is None:
        pytest.skip("dig not installed (apt-get install -y dnsutils; tests/run.sh does)")
    await resolver()
    proc = await asyncio.create_subprocess_exec(
        dig, f"@{lab.RESOLVER}", "www.gslb.example.test", "A", "+subnet=81.2.69.0/24",
        "+short", "+tries=1", "+time=3", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert out.decode().split() == [lab.LONDON]
    seen = authoritatives.from_resolver("www.gslb.example.test.")
    assert [s.ecs for s in seen] == ["81.2.69.0/24"]


async def test_resolver_answer_is_recursive_with_our_ttl_and_scope(
        authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """Through the resolver the answer is recursive (RA set, AA clear), holds
    stockholm for a Swedish subnet, carries TTL 30 (ours, fresh from our
    servers) and echoes ECS scope /19 (the geo answer's deciding prefix: the
    fake database's SE network, 89.160.0.0/19)."""
    unbound = await resolver()
    reply = await unbound.ask("www.gslb.example.test", ecs="89.160.20.0/24")
    assert reply.flags & dns.flags.RA and not reply.flags & dns.flags.AA
    assert addresses(reply) == [lab.STOCKHOLM]
    assert answer_ttl(reply) == 30
    assert ecs_scope(reply) == 19
