"""GeoIP lookups: where is an address? (stub; replaced by the geo work)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GeoLocation:
    """Where an address is: ISO 3166-1 alpha-2 country (or None), continent
    code (AF AN AS EU NA OC SA, or None), and coordinates in decimal degrees
    (None when unknown)."""

    country: str | None
    continent: str | None
    lat: float | None = None
    lon: float | None = None
