"""Country and continent facts: English name, continent, representative point.

Loaded once from the committed tables ``gslb/data/countries.csv`` and
``continents.csv`` (generated from GeoNames, CC BY 4.0, by
``geoip/make_countries.py``; see ``geoip/README.md``). No network, no extra
package at run time.

A country's representative point is its most populous place, so that
nearest-by-distance steering measures from where most of its clients are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Country:
    """ISO 3166-1 alpha-2 ``code``, English ``name``, ``continent`` code and a
    representative point (``lat``, ``lon`` in decimal degrees)."""

    code: str
    name: str
    continent: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Continent:
    """Continent ``code`` (AF AN AS EU NA OC SA), English ``name`` and a
    representative point (``lat``, ``lon`` in decimal degrees)."""

    code: str
    name: str
    lat: float
    lon: float


def _rows(name: str) -> Iterator[dict[str, str]]:
    text = files("gslb").joinpath("data", name).read_text(encoding="utf-8")
    yield from csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))


COUNTRIES: Mapping[str, Country] = MappingProxyType({
    r["code"]: Country(r["code"], r["name"], r["continent"], float(r["lat"]), float(r["lon"]))
    for r in _rows("countries.csv")
})
"""Every ISO 3166-1 alpha-2 code (plus XK, Kosovo) → its ``Country``."""

CONTINENTS: Mapping[str, Continent] = MappingProxyType({
    r["code"]: Continent(r["code"], r["name"], float(r["lat"]), float(r["lon"]))
    for r in _rows("continents.csv")
})
"""The seven continent codes → their ``Continent``."""


def lookup(code: str) -> Country | None:
    """The country with ISO 3166-1 alpha-2 ``code`` (any case), or None."""
    return COUNTRIES.get(code.upper())


def continent(code: str) -> Continent | None:
    """The continent with ``code`` (AF AN AS EU NA OC SA, any case), or None."""
    return CONTINENTS.get(code.upper())
