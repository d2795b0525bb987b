"""GeoDB lookups on the committed fixture mmdb, its cache, and distance_km."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from gslb import countries
from gslb.errors import GslbError
from gslb.geo import GeoDB, GeoDBError, GeoLocation, distance_km

FAKE = Path(__file__).resolve().parent.parent / "data" / "geoip" / "fake-country.mmdb"


def at(country: str | None, continent: str, prefix_len: int | None = None) -> GeoLocation:
    """The location our database gives for ``country`` (else ``continent``),
    in a database network of ``prefix_len``."""
    point = countries.COUNTRIES[country] if country else countries.CONTINENTS[continent]
    return GeoLocation(country, continent, point.lat, point.lon, prefix_len)


def nowhere(prefix_len: int) -> GeoLocation:
    """What our database gives for an address in an empty network of ``prefix_len``."""
    return GeoLocation(None, None, prefix_len=prefix_len)


@pytest.fixture
def db() -> Iterator[GeoDB]:
    with GeoDB(FAKE) as geodb:
        yield geodb


@pytest.mark.parametrize(("address", "expected"), [
    ("81.2.69.142", at("GB", "EU", 24)),
    ("81.2.70.1", at("GB", "EU", 25)),  # UK → GB
    ("81.2.70.200", at("SE", "EU", 25)),
    ("89.160.20.112", at("SE", "EU", 19)),  # two adjacent SE ranges merged into a /19
    ("51.0.7.1", at("GB", "EU", 16)),  # a /16: wider than the cache block
    ("2.16.0.1", at(None, "EU", 23)),  # EU: continent and its point, no country
    ("1.0.0.1", at(None, "AS", 24)),  # AP
    ("5.5.7.7", at("RS", "EU", 24)),  # CS
    ("5.5.8.8", at(None, "NA", 24)),  # AN
    ("5.5.10.10", at("SG", "AS", 24)),
    ("2001:4860:4860::8888", at("US", "NA", 32)),
    ("2a02:c7f::1", at("GB", "EU", 32)),
    ("2400:cb00::1", at(None, "AS", 32)),
    # IPv4-mapped IPv6: looked up as IPv4, its prefix length in IPv6 bits (96 + 24)
    ("::ffff:81.2.69.142", at("GB", "EU", 120)),
    ("81.2.69.0/24", at("GB", "EU", 24)),  # a subnet: its first address
    ("2001:db8:2::/56", at("SE", "EU", 64)),
    # not in the database: unknown, empty, unmapped codes, private, loopback; each
    # with the prefix length of the widest empty network around it
    ("5.5.5.5", nowhere(23)), ("5.5.6.6", nowhere(24)), ("5.5.9.9", nowhere(24)),
    ("2001:db8::1", nowhere(47)), ("10.0.0.1", nowhere(7)), ("127.0.0.1", nowhere(3)),
    ("::1", nowhere(104)), ("fd00::1", nowhere(1)), ("192.0.2.1", nowhere(1)),
    ("::ffff:10.0.0.1", nowhere(103)),  # 96 + 7, as 10.0.0.1
])
def test_locate(db: GeoDB, address: str, expected: GeoLocation) -> None:
    assert db.locate(address) == expected
    assert db.locate(address) == expected  # and again, from the cache
    assert expected.located == (expected.country is not None or expected.continent is not None)


def test_the_prefix_length_is_the_database_networks_for_every_address_of_a_block(
        db: GeoDB) -> None:
    """A block is cached once only when the database network holds it whole,
    so every address of it gets that network's prefix length: the /16 in
    each of its /24s, the /19 in each of its, the /25s address by address."""
    for third in (0, 7, 255):
        for last in (0, 1, 255):
            assert db.locate(f"51.0.{third}.{last}") == at("GB", "EU", 16)
    assert db.locate("89.160.31.255") == at("SE", "EU", 19)
    assert db.locate("89.160.32.0") == nowhere(19)  # the empty /19 beside it
    for last in (0, 127):
        assert db.locate(f"81.2.70.{last}") == at("GB", "EU", 25)
        assert db.locate(f"81.2.70.{last + 128}") == at("SE", "EU", 25)


@pytest.mark.parametrize("junk", [
    "", "junk", "1.2.3", "1.2.3.4.5", "256.1.1.1", "::g", "fe80::1%eth0", "1.2.3.4/33",
    "1.2.3.4\x00", " 1.2.3.4", None, 16909060, b"\x01\x02\x03\x04",
])
def test_locate_never_raises_on_junk(db: GeoDB, junk: object) -> None:
    assert db.locate(junk) is None  # type: ignore[arg-type]


def test_cache_hits_within_a_block(db: GeoDB) -> None:
    assert db.locate("89.160.20.1") == at("SE", "EU", 19)
    misses = db.cache_info()["misses"]
    for last in range(2, 50):
        assert db.locate(f"89.160.20.{last}") == at("SE", "EU", 19)
    assert db.locate("2001:4860:4860:ff::1") == at("US", "NA", 32)
    assert db.locate("2001:4860:4860:ff::2") == at("US", "NA", 32)
    info = db.cache_info()
    assert info["misses"] == misses + 1 and info["hits"] >= 49


def test_cache_exact_when_networks_are_finer_than_the_block(db: GeoDB) -> None:
    """81.2.70.0/24 holds a GB /25 and an SE /25; 2001:db8:2::/56 holds an SE
    /64 and a GB /64: each address still gets its own network's answer."""
    for _ in range(2):
        assert db.locate("81.2.70.200") == at("SE", "EU", 25)
        assert db.locate("81.2.70.1") == at("GB", "EU", 25)
        assert db.locate("2001:db8:2:1::1") == at("GB", "EU", 64)
        assert db.locate("2001:db8:2::1") == at("SE", "EU", 64)


def test_cache_is_bounded() -> None:
    with GeoDB(FAKE, cache_size=4) as geodb:
        for third in range(256):
            geodb.locate(f"8.8.{third}.8")
            geodb.locate(f"81.2.70.{third}")
        assert geodb.cache_info()["size"] <= 8


def test_database_facts(db: GeoDB) -> None:
    assert db.database_type == "GSLB-Country"
    assert db.build_epoch > 1_600_000_000
    assert db.path == str(FAKE)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GeoDBError, match=r"missing\.mmdb: cannot open GeoIP database: No such"):
        GeoDB(tmp_path / "missing.mmdb")


@pytest.mark.parametrize("content", [b"", b"not an mmdb file\n" * 100])
def test_not_an_mmdb(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.mmdb"
    path.write_bytes(content)
    with pytest.raises(GeoDBError, match=r"bad\.mmdb: "):
        GeoDB(path)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(GslbError, match=f"^{tmp_path}: "):
        GeoDB(tmp_path)


def test_city_layout_and_fallbacks(tmp_path: Path) -> None:
    """A GeoLite2-City-like file: the record's own coordinates win; a record
    with only ``registered_country`` or only a country gets the continent and
    point from the country table; continent-only gets the continent's point;
    an empty record is unknown."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City",
                        languages=["en"], description="test")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {
        "continent": {"code": "NA"}, "country": {"iso_code": "US"},
        "location": {"latitude": 38.95, "longitude": -77.45}})
    writer.insert_network(IPSet(["203.0.113.0/25"]), {"registered_country": {"iso_code": "SE"}})
    writer.insert_network(IPSet(["203.0.113.128/25"]), {"country": {"iso_code": "SG"}})
    writer.insert_network(IPSet(["192.0.2.0/25"]), {"continent": {"code": "OC"}})
    writer.insert_network(IPSet(["192.0.2.128/25"]), {"city": {"names": {"en": "Nowhere"}}})
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    with GeoDB(path) as geodb:
        assert geodb.locate("198.51.100.7") == GeoLocation("US", "NA", 38.95, -77.45, 24)
        assert geodb.locate("203.0.113.7") == at("SE", "EU", 25)
        assert geodb.locate("203.0.113.200") == at("SG", "AS", 25)
        assert geodb.locate("192.0.2.7") == at(None, "OC", 25)
        assert geodb.locate("192.0.2.200") == nowhere(25)
        assert geodb.locate("198.51.101.1") == nowhere(24)


@pytest.mark.parametrize(("database_type", "coordinates"), [
    ("GeoLite2-City", True), ("GeoIP2-City", True), ("DBIP-City-Lite", True),
    ("GeoIP2-Enterprise", True),  # read with Reader.enterprise(), a City model
    ("GeoLite2-Country", False), ("GeoIP2-Country", False), ("DBIP-Country-Lite", False),
])
def test_each_database_type_is_read_by_its_geoip2_method(
        tmp_path: Path, database_type: str, coordinates: bool) -> None:
    """geoip2 reads a file only through the method its type names: City
    (and Enterprise) records give their own coordinates, Country records the
    country's point."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    writer.insert_network(IPSet(["198.51.100.0/24"]), {
        "continent": {"code": "NA"}, "country": {"iso_code": "US"},
        "location": {"latitude": 38.95, "longitude": -77.45}})
    path = tmp_path / "db.mmdb"
    writer.to_db_file(str(path))
    with GeoDB(path) as geodb:
        assert geodb.database_type == database_type
        expected = (GeoLocation("US", "NA", 38.95, -77.45, 24) if coordinates
                    else at("US", "NA", 24))
        assert geodb.locate("198.51.100.7") == expected
        assert geodb.locate("198.51.101.7") == nowhere(24)


@pytest.mark.parametrize("database_type", ["GeoLite2-ASN", "GeoIP2-ISP", "Test-Other"])
def test_a_database_of_another_type_is_refused(tmp_path: Path, database_type: str) -> None:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type)
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "US"}})
    path = tmp_path / "other.mmdb"
    writer.to_db_file(str(path))
    with pytest.raises(GeoDBError, match=rf"^{path}: not a GeoIP2 Country, City or Enterprise "
                                         rf"database \(database_type '{database_type}'\)$"):
        GeoDB(path)


def test_ipv4_only_database(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=4, database_type="Test-Country")
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "GB"}})
    path = tmp_path / "v4.mmdb"
    writer.to_db_file(str(path))
    with GeoDB(path) as geodb:
        assert geodb.locate("198.51.100.1") == at("GB", "EU", 24)
        # no IPv6 at all: the whole IPv6 space is one empty network
        assert geodb.locate("2001:4860:4860::8888") == nowhere(0)


LONDON, PARIS, NEW_YORK = (51.5074, -0.1278), (48.8566, 2.3522), (40.7128, -74.0060)


@pytest.mark.parametrize(("a", "b", "km"), [
    (LONDON, PARIS, 343.6),
    (LONDON, NEW_YORK, 5570.2),
    ((0.0, 0.0), (0.0, 180.0), math.pi * 6371.0088),  # half way round the equator
    ((90.0, 0.0), (-90.0, 0.0), math.pi * 6371.0088),  # pole to pole
    ((10.0, 179.5), (10.0, -179.5), 109.5),  # across the antimeridian
])
def test_distance_km(a: tuple[float, float], b: tuple[float, float], km: float) -> None:
    assert distance_km(*a, *b) == pytest.approx(km, rel=2e-3)
    assert distance_km(*b, *a) == pytest.approx(km, rel=2e-3)


def test_distance_to_itself_is_zero() -> None:
    assert distance_km(*LONDON, *LONDON) == 0.0
