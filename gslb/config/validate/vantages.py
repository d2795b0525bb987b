"""The ``vantages`` section: the places probes measure from (name, location,
continent), for ``latency`` pools and the health quorum."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gslb import countries
from gslb.config.model import LOCAL_VANTAGE, Vantage
from gslb.config.validate.places import location, region
from gslb.config.validate.reader import At, Reader

VANTAGE_KEYS = ("location", "continent")
RESERVED_VANTAGE = LOCAL_VANTAGE
"""The vantage name of the prober embedded in ``gslb serve`` (no Redis)."""
_VANTAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


def read_vantages(r: Reader, defs: Mapping[str, tuple[Any, At]]) -> dict[str, Vantage | None]:
    """Each vantage of the section, by name (None: it has problems, reported)."""
    return {name: vantage(r, name, v, at) for name, (v, at) in defs.items()}


def vantage(r: Reader, name: str, value: object, at: At) -> Vantage | None:
    """A probe vantage; a null value is a vantage with no location."""
    before = r.count
    if not _VANTAGE_NAME.fullmatch(name):
        r.report(at, f"bad vantage name {name!r}: 1-63 characters of lower-case "
                     "letters, digits, '-', '_' or '.', starting with a letter or digit")
    elif name == RESERVED_VANTAGE:
        r.report(at, f"vantage name {name!r} is reserved for the prober embedded "
                     "in 'gslb serve'")
    if value is None:
        return None if r.count > before else Vantage(name=name)
    m = r.mapping(value, at)
    if m is None:
        return None
    r.fields(m, at, VANTAGE_KEYS)
    place, country = None, None
    if "location" in m:
        place, country = location(r, m["location"], at.key(m, "location"))
    found = countries.lookup(country) if country else None
    continent = found.continent if found else None
    if "continent" in m:
        cat = at.key(m, "continent")
        code = r.text(m["continent"], cat)
        given = region(r, "continents", code, cat) if code else None
        if given and continent and given != continent:
            r.report(cat, f"continent {given} does not match country {country}, "
                          f"which is in {continent}")
        continent = given or continent
    if r.count > before:
        return None
    return Vantage(name=name, location=place, country=country, continent=continent)
