"""The committed country and continent tables (gslb/data/*.csv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gslb import countries
from gslb.config.model import CONTINENTS
from gslb.countries import Continent, Country

ISO_CODES_JSON = Path("/usr/share/iso-codes/json/iso_3166-1.json")


def test_lookup_gb_any_case() -> None:
    gb = countries.lookup("gb")
    assert gb == countries.lookup("GB")
    assert isinstance(gb, Country)
    assert (gb.code, gb.name, gb.continent) == ("GB", "United Kingdom", "EU")
    assert 49.9 < gb.lat < 60.9 and -8.7 < gb.lon < 1.8  # inside Great Britain


@pytest.mark.parametrize(("code", "name", "continent"), [
    ("SE", "Sweden", "EU"), ("US", "United States", "NA"), ("SG", "Singapore", "AS"),
    ("BR", "Brazil", "SA"), ("AU", "Australia", "OC"), ("ZA", "South Africa", "AF"),
    ("AQ", "Antarctica", "AN"), ("XK", "Kosovo", "EU"), ("RS", "Serbia", "EU"),
])
def test_known_countries(code: str, name: str, continent: str) -> None:
    country = countries.lookup(code)
    assert country is not None
    assert (country.name, country.continent) == (name, continent)


@pytest.mark.parametrize("code", ["ZZ", "UK", "EU", "AP", "CS", "AN", "??", "", "GBR"])
def test_unknown_codes_give_none(code: str) -> None:
    assert countries.lookup(code) is None


def test_every_row_is_well_formed() -> None:
    assert len(countries.COUNTRIES) >= 249
    for code, country in countries.COUNTRIES.items():
        assert code == country.code and len(code) == 2 and code.isupper()
        assert country.name and country.continent in CONTINENTS
        assert -90 <= country.lat <= 90 and -180 <= country.lon <= 180


def test_continents() -> None:
    assert set(countries.CONTINENTS) == CONTINENTS
    europe = countries.continent("eu")
    assert isinstance(europe, Continent)
    assert europe.name == "Europe" and 35 < europe.lat < 70 and -10 < europe.lon < 40
    assert countries.continent("XX") is None


@pytest.mark.skipif(not ISO_CODES_JSON.exists(), reason="Debian iso-codes is not installed")
def test_table_matches_debian_iso_codes() -> None:
    """Every ISO 3166-1 alpha-2 code is in the table; XK (Kosovo, user-assigned
    but used by GeoNames and MaxMind) is the one extra."""
    iso = {c["alpha_2"] for c in json.loads(ISO_CODES_JSON.read_text())["3166-1"]}
    assert set(countries.COUNTRIES) - iso == {"XK"}
    assert iso <= set(countries.COUNTRIES)
