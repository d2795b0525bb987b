"""What a client's databases say: the GeoIP network's prefix length bounding
``Client.geo_scope`` (RFC 7871 section 7.2.1), and ``AsnDB`` / ``Client.asn``
on the committed fake ASN mmdb (tests/data/geoip/fixture-asn)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from gslb.geo import Asn, AsnDB, GeoDB, GeoDBError, GeoLocation
from gslb.steering.base import Client

DATA = Path(__file__).resolve().parent.parent / "data" / "geoip"
FAKE, FAKE_ASN = DATA / "fake-country.mmdb", DATA / "fake-asn.mmdb"


@pytest.fixture(scope="module")
def geodb() -> Iterator[GeoDB]:
    with GeoDB(FAKE) as db:
        yield db


@pytest.fixture(scope="module")
def asndb() -> Iterator[AsnDB]:
    with AsnDB(FAKE_ASN) as db:
        yield db


def ecs_client(address: str, source: int, db: GeoDB | None = None,
               asn: AsnDB | None = None) -> Client:
    return Client("192.0.2.53", address, source, 6 if ":" in address else 4,
                  locator=db.locate if db else None, asn_lookup=asn.lookup if asn else None)


# -- geo scope from the database -----------------------------------------------------

@pytest.mark.parametrize(("address", "source", "scope"), [
    ("51.0.7.0", 24, 16),  # a /16 block answered to a /24 source: the whole /16
    ("51.0.7.77", 32, 16),
    ("51.0.0.0", 8, 8),  # the source is less specific still
    ("89.160.20.0", 24, 19),  # the merged SE /19
    ("81.2.69.0", 24, 24),  # a /24 block
    ("81.2.69.142", 32, 24),  # capped at /24
    ("81.2.70.128", 25, 24),  # a /25 block: still capped at /24
    ("2001:4860:4860::", 64, 32),  # an IPv6 /32
    ("2001:db8:2::", 64, 56),  # an IPv6 /64: capped at /56
    ("::ffff:81.2.69.0", 120, 56),  # IPv4-mapped: 96 + 24 bits, capped at /56
    # unlocatable: bounded by the empty network, where every client is unlocatable
    ("10.1.2.0", 24, 7),
    ("5.5.6.0", 24, 24),  # an empty /24 between two records
    ("5.5.5.0", 24, 23),  # an empty /23
    ("2001:db8::", 56, 47),
])
def test_geo_scope_is_bounded_by_the_database_network(
        geodb: GeoDB, address: str, source: int, scope: int) -> None:
    assert ecs_client(address, source, geodb).geo_scope == scope


def test_unlocatable_client_has_no_location_but_a_scope(geodb: GeoDB) -> None:
    client = ecs_client("10.1.2.0", 24, geodb)
    assert client.location is None
    assert client.geo_scope == 7
    located = ecs_client("51.0.7.0", 24, geodb)
    assert located.location is not None and located.location.country == "GB"
    assert located.location.prefix_len == 16


def test_geo_scope_without_ecs_or_database(geodb: GeoDB) -> None:
    assert Client("51.0.7.1", locator=geodb.locate).geo_scope == 0  # no ECS: nothing to scope
    assert ecs_client("51.0.7.0", 24).geo_scope == 24  # no database: the source, capped
    assert ecs_client("51.0.7.0", 32).geo_scope == 24
    # a locator that does not know the network's prefix length: the cap alone
    c = Client("192.0.2.53", "51.0.7.0", 24, 4, locator=lambda _ip: GeoLocation("GB", "EU"))
    assert c.geo_scope == 24 and c.location == GeoLocation("GB", "EU")


def test_client_is_located_once_for_location_and_scope(geodb: GeoDB) -> None:
    calls: list[str] = []

    def locator(ip: str) -> GeoLocation | None:
        calls.append(ip)
        return geodb.locate(ip)

    c = Client("192.0.2.53", "10.1.2.0", 24, 4, locator=locator)
    assert (c.geo_scope, c.location, c.geo_scope, c.location) == (7, None, 7, None)
    assert calls == ["10.1.2.0"]


# -- the ASN database ------------------------------------------------------------------

@pytest.mark.parametrize(("address", "expected"), [
    ("81.2.69.142", Asn(64496, 24)),
    ("51.0.200.1", Asn(64497, 16)),
    ("81.2.70.1", Asn(64498, 25)),  # two /25s in one cache block
    ("81.2.70.200", Asn(64499, 25)),
    ("198.51.100.9", Asn(64500, 24)),  # no organisation in the record
    ("2001:4860:4860::8888", Asn(64501, 32)),
    ("2a02:c7f::1", Asn(65536, 48)),  # a 32-bit AS number
    ("2001:db8:2::1", Asn(64502, 64)),  # two /64s in one /56 cache block
    ("2001:db8:2:1::1", Asn(64503, 64)),
    ("::ffff:81.2.69.142", Asn(64496, 120)),  # IPv4-mapped: 96 + 24 bits
    ("81.2.69.0/24", Asn(64496, 24)),  # a subnet: its first address
    # outside every network: no number, the empty network's prefix length
    ("8.8.8.8", Asn(None, 3)),
    ("64.0.0.1", Asn(None, 4)),  # 64.0.0.0/4: beside 81.0.0.0/4
    ("2001:db8:3::1", Asn(None, 48)),  # beside 2001:db8:2::/48
    ("fd00::1", Asn(None, 1)),
    ("junk", None), ("", None),
])
def test_asn_lookup(asndb: AsnDB, address: str, expected: Asn | None) -> None:
    assert asndb.lookup(address) == expected
    assert asndb.lookup(address) == expected  # and again, from the cache


def test_asn_cache_hits_within_a_block(tmp_path: Path) -> None:
    with AsnDB(FAKE_ASN) as db:
        assert db.lookup("51.0.9.1") == Asn(64497, 16)
        for last in range(2, 50):
            assert db.lookup(f"51.0.9.{last}") == Asn(64497, 16)
        info = db.cache_info()
        assert info["misses"] == 1 and info["hits"] == 48
        for _ in range(2):  # finer than the block: address by address, still exact
            assert db.lookup("81.2.70.1") == Asn(64498, 25)
            assert db.lookup("81.2.70.129") == Asn(64499, 25)


@pytest.mark.parametrize(("address", "number", "prefix_len"), [
    ("81.2.69.0", 64496, 24), ("2001:4860::", 64501, 32), ("2a02:c7f::", 65536, 48),
    ("8.8.8.0", None, 3), ("2001:db8:3::", None, 48),
])
def test_client_asn(asndb: AsnDB, address: str, number: int | None, prefix_len: int) -> None:
    with_ecs = ecs_client(address, 24 if "." in address else 48, asn=asndb)
    assert with_ecs.asn == Asn(number, prefix_len)
    assert with_ecs.asn_scope == min(24 if "." in address else 48, prefix_len)
    # without ECS the packet's source address is the client
    plain = Client(address, asn_lookup=asndb.lookup)
    assert plain.asn == Asn(number, prefix_len)
    assert plain.asn_scope == 0


def test_client_asn_scope_is_capped() -> None:
    with AsnDB(FAKE_ASN) as db:
        assert ecs_client("2001:db8:2::", 64, asn=db).asn_scope == 56  # /64 network, /56 cap
        assert ecs_client("81.2.70.1", 32, asn=db).asn_scope == 24  # /25 network, /24 cap
        assert ecs_client("51.0.0.0", 24, asn=db).asn_scope == 16


def test_client_asn_is_looked_up_lazily_and_once(asndb: AsnDB) -> None:
    calls: list[str] = []

    def lookup(ip: str) -> Asn | None:
        calls.append(ip)
        return asndb.lookup(ip)

    c = Client("192.0.2.53", "81.2.69.0", 24, 4, asn_lookup=lookup)
    assert calls == [] and c.location is None and c.geo_scope == 24  # geo asks no AS
    assert (c.asn, c.asn) == (Asn(64496, 24), Asn(64496, 24))
    assert calls == ["81.2.69.0"]


def test_no_asn_database() -> None:
    c = ecs_client("81.2.69.0", 24)
    assert c.asn is None
    assert c.asn_scope == 24  # the source, capped: nothing narrower is known


@pytest.mark.parametrize("database_type", [
    "GeoLite2-ASN", "DBIP-ASN-Lite (compat=GeoLite2-ASN)", "GeoIP2-ISP"])
def test_each_asn_database_type(tmp_path: Path, database_type: str) -> None:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    writer.insert_network(IPSet(["198.51.100.0/24"]), {
        "autonomous_system_number": 64510, "autonomous_system_organization": "Example"})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"autonomous_system_number": 4200000000})
    path = tmp_path / "asn.mmdb"
    writer.to_db_file(str(path))
    with AsnDB(path) as db:
        assert db.database_type == database_type
        assert db.lookup("198.51.100.1") == Asn(64510, 24)
        assert db.lookup("2001:db8:ffff::1") == Asn(4200000000, 32)
        assert db.lookup("198.51.101.1") == Asn(None, 24)


def test_ipv4_only_asn_database(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"autonomous_system_number": 64510})
    path = tmp_path / "v4.mmdb"
    writer.to_db_file(str(path))
    with AsnDB(path) as db:
        assert db.lookup("198.51.100.1") == Asn(64510, 24)
        assert db.lookup("2001:db8::1") == Asn(None, 0)  # no IPv6 at all: one empty network


# -- opening the databases -----------------------------------------------------------

def test_missing_asn_file(tmp_path: Path) -> None:
    with pytest.raises(GeoDBError, match=r"missing\.mmdb: cannot open ASN database: No such"):
        AsnDB(tmp_path / "missing.mmdb")


def test_asn_file_not_an_mmdb(tmp_path: Path) -> None:
    path = tmp_path / "bad.mmdb"
    path.write_bytes(b"not an mmdb file\n" * 100)
    with pytest.raises(GeoDBError, match=rf"^{path}: not a MaxMind DB \(mmdb\) file"):
        AsnDB(path)


def test_a_country_database_is_not_an_asn_database() -> None:
    with pytest.raises(GeoDBError, match=rf"^{FAKE}: not a GeoLite2-ASN .*database "
                                         r"\(database_type 'GSLB-Country'\)"):
        AsnDB(FAKE)


def test_an_asn_database_is_not_a_geoip_database() -> None:
    with pytest.raises(GeoDBError, match=rf"^{FAKE_ASN}: not a GeoIP2 Country, City or "
                                         r"Enterprise database \(database_type 'GSLB-ASN"):
        GeoDB(FAKE_ASN)
