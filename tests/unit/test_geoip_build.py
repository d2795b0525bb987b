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
from gslb.geoip_build import DATABASE_TYPE, _cidrs, build, resolve_code

DATA = Path(__file__).resolve().parent.parent / "data" / "geoip"
V4, V6, COMMITTED = DATA / "fixture-geoip", DATA / "fixture-geoip6", DATA / "fake-country.mmdb"

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
    assert stats.read == 25
    assert stats.skipped == {"malformed": 1, "overlap": 1, "unknown": 5, "unmapped ZZ": 1}
    # 17 usable ranges; merged: the two adjacent SE ones, and 81.2.70.0/25 (UK → GB)
    # with the GB /24 before it
    assert stats.written == 15
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
    assert stats.read == 16
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
