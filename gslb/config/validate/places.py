"""Where things are: a ``location`` (lat/lon or a country) of an origin or a
vantage, and the country and continent codes pools and vantages map."""

from __future__ import annotations

from gslb import countries
from gslb.config.model import CONTINENTS, Location
from gslb.config.validate.reader import At, Reader


def location(r: Reader, value: object, at: At) -> tuple[Location | None, str | None]:
    """A ``location`` mapping: ``(Location, None)`` from ``lat``/``lon`` or
    ``(Location, ISO 3166-1 alpha-2 code)`` from ``country`` (the country's
    centre); ``(None, None)`` after reporting a problem."""
    m = r.mapping(value, at)
    if m is None:
        return None, None
    r.fields(m, at, ("lat", "lon", "country"))
    if "country" in m:
        if "lat" in m or "lon" in m:
            r.report(at, "give either country or lat/lon, not both")
        code = r.text(m["country"], at.key(m, "country"))
        found = countries.lookup(code) if code else None
        if code and found is None:
            r.report(at.key(m, "country"), f"unknown country code {code!r}")
        return ((Location(found.lat, found.lon), found.code) if found else (None, None))
    if "lat" not in m or "lon" not in m:
        r.report(at, "a location needs lat and lon, or country")
        return None, None
    lat = r.degrees(m["lat"], at.key(m, "lat"), 90)
    lon = r.degrees(m["lon"], at.key(m, "lon"), 180)
    return (Location(lat, lon) if lat is not None and lon is not None else None), None


def region(r: Reader, table: str, code: str, at: At) -> str | None:
    """``code`` as the canonical continent code (``table`` ``"continents"``)
    or ISO 3166-1 alpha-2 country code (``table`` ``"countries"``)."""
    if table == "continents":
        if code.upper() not in CONTINENTS:
            r.report(at, f"unknown continent code {code!r} "
                         f"(allowed: {', '.join(sorted(CONTINENTS))})")
            return None
        return code.upper()
    found = countries.lookup(code)
    if found is None:
        r.report(at, f"unknown country code {code!r} (ISO 3166-1 alpha-2 expected)")
        return None
    return found.code
