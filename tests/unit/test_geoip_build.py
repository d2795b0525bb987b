"""The mmdb builder, on the small "start,end,CC" fixtures in tests/data/geoip."""

from __future__ import annotations

from pathlib import Path

import geoip2.database
import geoip2.errors
import maxminddb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gslb import countries
from gslb.geoip_build import (
    ASN_DATABASE_TYPE,
    DATABASE_TYPE,
    _cidrs,
    build,
    build_asn,
    resolve_code,
)
from tests.data.geoip.make_fake_mmdb import asn_entries

DATA = Path(__file__).resolve().parent.parent / "data" / "geoip"
V4, V6, COMMITTED = DATA / "fixture-geoip", DATA / "fixture-geoip6", DATA / "fake-country.mmdb"
COMMITTED_ASN = DATA / "fake-asn.mmdb"

# address → (country iso_code, continent code), None when the range has no record
CASES: dict[str, tuple[str | None, str] | None] = {
    "81.2.69.142": ("GB", "EU"),
    "81.2.70.1": ("GB", "EU"),  # UK → GB, a /25
    "81.2.70.200": ("SE", "EU"),  # the other /25
    "89.160.20.112": ("SE", "EU"),
    "2.16.0.1": (None, "EU"),  # EU: continent only
    "1.0.0.1": (None, "AS"),  # AP: Asia, no country
    "8.8.8.8": ("US", "NA"),
    "8.8.8.150": ("US", "NA"),  # the overlapping JP range was skipped
    "51.0.7.1": ("GB", "EU"),  # a /16
    "5.5.5.5": None,  # ??
    "5.5.6.6": None,  # empty code
    "5.5.7.7": ("RS", "EU"),  # CS → RS
    "5.5.8.8": (None, "NA"),  # AN → continent NA
    "5.5.9.9": None,  # ZZ
    "5.5.10.10": ("SG", "AS"),  # lower-case code
    "10.0.0.1": None,
    "2001:4860:4860::8888": ("US", "NA"),
    "2001:67c:2e8::1": (None, "EU"),
    "2400:cb00::1": (None, "AS"),
    "2a02:c7f::1": ("GB", "EU"),
    "2001:db8::1": None,
    "2001:db8:1::1": None,
    "2001:db8:2::1": ("SE", "EU"),
    "2001:db8:2:1::1": ("GB", "EU"),
    "fd00::1": None,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("geoip") / "sub" / "country.mmdb"
    return out, build(V4, V6, out)


def test_stats(built: tuple[Path, object]) -> None:
    _, stats = built
    assert stats.read == 26
    assert stats.skipped == {"malformed": 1, "overlap": 1, "unknown": 5, "unmapped ZZ": 1}
    # 18 usable ranges; merged: the two adjacent SE ones, and 81.2.70.0/25 (UK → GB)
    # with the GB /24 before it
    assert stats.written == 16
    assert stats.networks >= stats.written
    assert 0 <= stats.seconds < 5


@pytest.mark.parametrize(("address", "expected"), CASES.items())
def test_geoip2_reader_country(built: tuple[Path, object], address: str,
                               expected: tuple[str | None, str] | None) -> None:
    with geoip2.database.Reader(str(built[0])) as reader:
        if expected is None:
            with pytest.raises(geoip2.errors.AddressNotFoundError):
                reader.country(address)
            return
        answer = reader.country(address)
    country, continent = expected
    assert answer.country.iso_code == country
    assert answer.continent.code == continent
    assert answer.continent.name == countries.CONTINENTS[continent].name
    if country is not None:
        assert answer.country.name == countries.COUNTRIES[country].name


def test_metadata_and_location(built: tuple[Path, object]) -> None:
    with maxminddb.open_database(str(built[0])) as reader:
        meta = reader.metadata()
        assert meta.database_type == DATABASE_TYPE and "Country" in meta.database_type
        assert meta.languages == ["en"] and meta.ip_version == 6
        assert "CC BY-SA 4.0" in meta.description["en"]
        assert "source generated fixture" in meta.description["en"]
        gb = countries.COUNTRIES["GB"]
        record, prefix_len = reader.get_with_prefix_len("81.2.69.142")
        assert record["location"] == {"latitude": gb.lat, "longitude": gb.lon}
        assert prefix_len == 24
        europe = countries.CONTINENTS["EU"]
        assert reader.get("2.16.0.1")["location"] == {"latitude": europe.lat,
                                                      "longitude": europe.lon}
        # the two adjacent SE ranges became one /19
        assert reader.get_with_prefix_len("89.160.20.112")[1] == 19
        assert reader.get_with_prefix_len("51.0.7.1")[1] == 16


def test_committed_fixture_matches_a_fresh_build(built: tuple[Path, object]) -> None:
    """tests/data/geoip/fake-country.mmdb is what make_fake_mmdb.py builds."""
    with maxminddb.open_database(str(COMMITTED)) as old, \
            maxminddb.open_database(str(built[0])) as new:
        for address in CASES:
            assert old.get_with_prefix_len(address) == new.get_with_prefix_len(address)


@pytest.mark.parametrize(("code", "expected"), [
    ("GB", ("GB", "EU")), ("se", ("SE", "EU")), (" US ", ("US", "NA")),
    ("UK", ("GB", "EU")), ("CS", ("RS", "EU")), ("AN", (None, "NA")),
    ("EU", (None, "EU")), ("AP", (None, "AS")),
    ("??", None), ("", None), ("ZZ", None), ("SU", None), ("UN", None), ("A1", None),
])
def test_resolve_code(code: str, expected: tuple[str | None, str] | None) -> None:
    assert resolve_code(code) == expected


def test_ipv4_only(tmp_path: Path) -> None:
    out = tmp_path / "v4.mmdb"
    stats = build(V4, None, out)
    assert stats.read == 17
    with geoip2.database.Reader(str(out)) as reader:
        assert reader.country("81.2.69.142").country.iso_code == "GB"
        with pytest.raises(geoip2.errors.AddressNotFoundError):
            reader.country("2001:4860:4860::8888")


def test_output_replaced_atomically(tmp_path: Path) -> None:
    out = tmp_path / "country.mmdb"
    out.write_bytes(b"old")
    build(V4, V6, out)
    assert out.read_bytes() != b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["country.mmdb"]  # no temp file left


def test_failed_build_keeps_old_file(tmp_path: Path) -> None:
    out = tmp_path / "country.mmdb"
    out.write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        build(tmp_path / "missing", None, out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["country.mmdb"]


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_cidrs_cover_the_range_exactly(a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    expect = first
    for value, plen in _cidrs(first, last, 32):
        size = 1 << (32 - plen)
        assert value == expect and value % size == 0
        expect += size
    assert expect == last + 1


# -- the ASN builder ----------------------------------------------------------------

ASN_CASES: dict[str, tuple[int, str | None, str] | None] = {  # number, organisation, network
    "81.2.69.142": (64496, "Example GB Networks", "81.2.69.0/24"),
    "51.0.200.1": (64497, "Example Wide Networks", "51.0.0.0/16"),
    "81.2.70.1": (64498, "Example Low Half", "81.2.70.0/25"),
    "81.2.70.200": (64499, "Example High Half", "81.2.70.128/25"),
    "198.51.100.9": (64500, None, "198.51.100.0/24"),
    "2001:4860:4860::8888": (64501, "Example IPv6 Networks", "2001:4860::/32"),
    "2a02:c7f::1": (65536, "Example 32-bit AS", "2a02:c7f::/48"),
    "2001:db8:2::1": (64502, "Example Low /64", "2001:db8:2::/64"),
    "2001:db8:2:1::1": (64503, "Example High /64", "2001:db8:2:1::/64"),
    "8.8.8.8": None,
    "2001:db8:3::1": None,
}


@pytest.fixture(scope="module")
def asn_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("asn") / "asn.mmdb"
    assert build_asn(asn_entries(), out) == len(asn_entries())
    return out


@pytest.mark.parametrize(("address", "expected"), ASN_CASES.items())
def test_geoip2_reader_asn(asn_built: Path, address: str,
                           expected: tuple[int, str | None, str] | None) -> None:
    with geoip2.database.Reader(str(asn_built)) as reader:
        assert reader.metadata().database_type == ASN_DATABASE_TYPE
        if expected is None:
            with pytest.raises(geoip2.errors.AddressNotFoundError):
                reader.asn(address)
            return
        answer = reader.asn(address)
    assert (answer.autonomous_system_number, answer.autonomous_system_organization,
            str(answer.network)) == expected


def test_committed_asn_fixture_matches_a_fresh_build(asn_built: Path) -> None:
    """tests/data/geoip/fake-asn.mmdb is what make_fake_mmdb.py builds."""
    with maxminddb.open_database(str(COMMITTED_ASN)) as old, \
            maxminddb.open_database(str(asn_built)) as new:
        assert old.metadata().database_type == new.metadata().database_type
        for address in ASN_CASES:
            assert old.get_with_prefix_len(address) == new.get_with_prefix_len(address)


@pytest.mark.parametrize(("entries", "message"), [
    ([("10.0.0.1/8", 64496, None)], "has host bits set"),
    ([("junk", 64496, None)], "does not appear to be an IPv4 or IPv6 network"),
    ([("::/120", 64496, None)], "inside ::/96"),
    ([("10.0.0.0/8", 64496, None), ("10.1.0.0/16", 64497, None)], "10.1.0.0: overlaps"),
    ([("10.0.0.0/16", 64496, None), ("10.0.0.0/16", 64497, None)], "10.0.0.0: overlaps"),
    ([("2001:db8::/32", 64496, None), ("2001:db8:1::/48", 64497, None)], "overlaps"),
])
def test_build_asn_refuses_bad_networks(tmp_path: Path, entries: list[tuple[str, int, None]],
                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_asn(entries, tmp_path / "asn.mmdb")
    assert not list(tmp_path.iterdir())
