"""EDNS Client Subnet and the resolver's cache (RFC 7871 section 7.3): an
answer is cached for the scope prefix it carries. Counting the queries our
servers receive from the resolver tells a cache hit (none) from a miss (one)."""

from __future__ import annotations

import pytest

from tests.ttl import lab
from tests.ttl.conftest import Authoritatives, StartResolver, addresses, ecs_scope

pytestmark = pytest.mark.ttl

WWW, API = "www.gslb.example.test.", "api.gslb.example.test."
GB, SE, US = "81.2.69.0/24", "89.160.20.0/24", "8.8.8.0/24"


async def test_geo_answer_is_cached_per_subnet(
        authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """A geo answer carries the scope of the database network that located
    the client (capped at /24), so the resolver keeps one entry per network:
    a GB client (a /24 in the fake database) gets london and a SE client (a
    /19) stockholm (2 queries reach our servers, each with its own subnet,
    not the other's cached answer); a second GB client in the same /24 is
    served london from the cache (still 2 queries)."""
    unbound = await resolver()
    gb = await unbound.ask(WWW, ecs=GB)
    se = await unbound.ask(WWW, ecs=SE)
    again = await unbound.ask(WWW, ecs="81.2.69.77/32")
    assert (addresses(gb), addresses(se), addresses(again)) == (
        [lab.LONDON], [lab.STOCKHOLM], [lab.LONDON])
    assert (ecs_scope(gb), ecs_scope(se)) == (24, 19)
    assert [s.ecs for s in authoritatives.from_resolver(WWW)] == [GB, SE]


async def test_scope_zero_answer_is_shared_by_all_clients(
        authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """A weighted answer does not depend on the client, so we answer with
    scope 0 and the resolver caches it for everyone: clients in GB, SE and
    the US, and one sending no ECS at all, get the same address from 1 query
    to our servers."""
    unbound = await resolver()
    replies = [await unbound.ask(API, ecs=subnet) for subnet in (GB, SE, US, None)]
    assert [addresses(r) for r in replies] == [[lab.VIRGINIA]] * 4
    assert ecs_scope(replies[0]) == 0
    assert len(authoritatives.from_resolver(API)) == 1


async def test_resolver_without_ecs_is_located_by_its_own_address(
        authoritatives: Authoritatives, resolver: StartResolver) -> None:
    """A resolver that sends no ECS (unbound without subnetcache) drops the
    client's subnet: our servers see 0 ECS options and locate the resolver's
    own address (loopback, not in the GeoIP data), so a client in GB gets the
    geo pool's default, virginia, instead of london; and that answer is then
    shared by every client of the resolver (1 query for 2 countries)."""
    unbound = await resolver(ecs=False)
    gb = await unbound.ask(WWW, ecs=GB)
    se = await unbound.ask(WWW, ecs=SE)
    assert (addresses(gb), addresses(se)) == ([lab.VIRGINIA], [lab.VIRGINIA])
    seen = authoritatives.from_resolver(WWW)
    assert [s.ecs for s in seen] == [None]
