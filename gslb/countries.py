"""Country facts: continent and representative coordinates (stub)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Country:
    """ISO 3166-1 alpha-2 ``code``, English ``name``, ``continent`` code and a
    representative point (``lat``, ``lon`` in decimal degrees)."""

    code: str
    name: str
    continent: str
    lat: float
    lon: float


_COUNTRIES = {
    c.code: c
    for c in (
        Country("GB", "United Kingdom", "EU", 54.0, -2.0),
        Country("SE", "Sweden", "EU", 62.0, 15.0),
        Country("US", "United States", "NA", 39.76, -98.5),
        Country("SG", "Singapore", "AS", 1.37, 103.8),
    )
}


def lookup(code: str) -> Country | None:
    """The country with ISO 3166-1 alpha-2 ``code`` (any case), or None."""
    return _COUNTRIES.get(code.upper())
