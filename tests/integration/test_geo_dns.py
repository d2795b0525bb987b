"""Geo steering seen through DNS: the client located by its ECS subnet (else
by the packet's source address) in the committed fake country mmdb, and the
ECS scope the answer carries (RFC 7871 section 7.2.1): the source
prefix-length, capped at /24 (/56), and bounded by the database network
that located the client (or the empty network it is in)."""

from __future__ import annotations

from pathlib import Path

import dns.edns
import dns.message
import pytest

from gslb.dns import wire
from gslb.geo import Asn
from tests.integration.dnsutil import BASE_ZONE, addresses

FAKE_MMDB = Path(__file__).parent.parent / "data" / "geoip" / "fake-country.mmdb"
FAKE_ASN = Path(__file__).parent.parent / "data" / "geoip" / "fake-asn.mmdb"

ZONE = """
origins:
  london: {ipv4: [192.0.2.11], ipv6: ["2001:db8:a::11"], location: {country: GB}}
  stockholm: {ipv4: [192.0.2.12], location: {country: SE}}
  virginia: {ipv4: [192.0.2.13], ipv6: ["2001:db8:a::13"], location: {lat: 38.95, lon: -77.45}}
  tokyo: {ipv4: [192.0.2.14], location: {country: JP}}
pools:
  web:
    policy: geo
    origins: [london, stockholm, virginia, tokyo]
    countries: {GB: london}
    continents: {NA: virginia}
    default: virginia
  spread: {policy: weighted, origins: [london, virginia]}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: web}
      spread: {gslb: spread}
"""


@pytest.fixture
async def server(dns_server):
    return await dns_server(ZONE, geoip=FAKE_MMDB)


def ecs_of(msg):
    (opt,) = [o for o in msg.options if o.otype == dns.edns.ECS]
    return opt.address, opt.srclen, opt.scopelen


@pytest.mark.parametrize(
    ("subnet", "prefix", "expected", "scope"),
    [
        ("81.2.69.0", 24, "192.0.2.11", 24),  # GB: country map, a /24 network
        ("51.0.7.0", 24, "192.0.2.11", 16),  # GB, a /16 network: one answer for the /16
        ("8.8.8.0", 24, "192.0.2.13", 24),  # US: continent NA
        ("89.160.16.0", 20, "192.0.2.12", 19),  # SE (a /19), unmapped: nearest is stockholm
        ("5.5.10.0", 24, "192.0.2.14", 24),  # SG, unmapped: nearest is tokyo
        ("81.2.69.142", 32, "192.0.2.11", 24),  # /32 source: scope capped at /24
        ("81.2.70.0", 25, "192.0.2.11", 24),  # GB, a /25 network: capped at /24
        # not in the database: default, for the whole empty network (5.5.6.0/24;
        # 128.0.0.0/1, nothing above 89.160.31.255 in the fake database)
        ("5.5.6.0", 24, "192.0.2.13", 24),
        ("203.0.113.0", 24, "192.0.2.13", 1),
    ],
)
async def test_geo_answer_follows_the_ecs_subnet(server, subnet, prefix, expected, scope):
    msg = await server.query("www.gslb.example.test.", "A", ecs=(subnet, prefix))
    assert addresses(msg) == [expected]
    assert ecs_of(msg) == (subnet, prefix, scope)


async def test_ipv6_ecs_scope_is_capped_at_56(server):
    msg = await server.query("www.gslb.example.test.", "AAAA", ecs=("2001:db8:2:1::", 64))
    assert addresses(msg) == ["2001:db8:a::11"]  # GB, a /64 network → london
    assert ecs_of(msg) == ("2001:db8:2:1::", 64, 56)


async def test_ipv6_ecs_scope_is_the_database_network(server):
    msg = await server.query("www.gslb.example.test.", "AAAA", ecs=("2a02:c7f::", 64))
    assert addresses(msg) == ["2001:db8:a::11"]  # UK → GB → london
    assert ecs_of(msg) == ("2a02:c7f::", 64, 32)  # 2a02:c7f::/32 in the database


async def test_without_ecs_the_source_address_locates_the_client(server):
    # 127.0.0.1 is in no database: the pool's default answers
    msg = await server.query("www.gslb.example.test.", "A")
    assert addresses(msg) == ["192.0.2.13"]
    # an ECS option with source prefix-length 0 asks us not to use it (RFC 7871 7.1.2)
    msg = await server.query("www.gslb.example.test.", "A", ecs=("0.0.0.0", 0))
    assert addresses(msg) == ["192.0.2.13"]


async def test_client_independent_answer_has_scope_zero(server):
    msg = await server.query("spread.gslb.example.test.", "A", ecs=("81.2.69.0", 24))
    assert ecs_of(msg) == ("81.2.69.0", 24, 0)


@pytest.mark.parametrize(("ecs", "who", "asn", "scope"), [
    (("81.2.69.0", 24), "127.0.0.1", Asn(64496, 24), 24),
    (("51.0.7.0", 24), "127.0.0.1", Asn(64497, 16), 16),
    (("2001:4860::", 48), "127.0.0.1", Asn(64501, 32), 32),
    (("8.8.8.0", 24), "127.0.0.1", Asn(None, 3), 3),  # outside every ASN network
    (None, "81.2.70.200", Asn(64499, 25), 0),  # no ECS: the source address, no scope
    (None, "2001:db8:3::1", Asn(None, 48), 0),
])
async def test_a_server_with_an_asn_database_gives_clients_their_as(
        dns_server, ecs, who, asn, scope):
    """``gslb serve --asn-db``: the Authority in force finds each client's AS
    (``Client.asn``) by its ECS address, else the packet's source address."""
    running = await dns_server(ZONE, geoip=FAKE_MMDB, asn_db=FAKE_ASN)
    options = [dns.edns.ECSOption(*ecs)] if ecs else []
    query = wire.decode(dns.message.make_query("www.gslb.example.test.", "A", use_edns=0,
                                               options=options).to_wire())
    client = running.service.answering.authority.client_for(query, who)
    assert (client.asn, client.asn_scope) == (asn, scope)


async def test_without_an_asn_database_clients_have_no_as(server):
    query = wire.decode(dns.message.make_query("www.gslb.example.test.", "A").to_wire())
    assert server.service.answering.authority.client_for(query, "81.2.69.1").asn is None
