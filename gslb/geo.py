"""GeoIP lookups: where is an address, and how far apart are two points?

``GeoDB`` reads any MaxMind DB (mmdb) with the GeoIP2 record layout: ours
(``gslb geoip build``, type ``GSLB-Country``), MaxMind GeoLite2/GeoIP2
Country or City, DB-IP Lite. It uses ``maxminddb`` directly (the library
under ``geoip2``): one code path for every database type (``geoip2``'s
``Reader.country()`` refuses a City file), the record's prefix length for an
exact cache, and no model objects on the query path.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import os
import socket
from dataclasses import dataclass
from typing import Any, cast

import maxminddb

from gslb import countries
from gslb.errors import GslbError

log = logging.getLogger("gslb.geo")

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), kilometres."""

CACHE_PREFIX = {4: 24, 6: 56}
"""Cache block per address family: the prefix length an address is cached
by (the widest ECS scope geo answers return, RFC 7871 section 11.1)."""

_BLOCK_BYTES = {4: CACHE_PREFIX[4] // 8, 16: CACHE_PREFIX[6] // 8}  # by address length
_V4_MAPPED = bytes(10) + b"\xff\xff"  # ::ffff:0:0/96 (RFC 4291 section 2.5.5.2)

_FINER = object()  # marks a cache block that holds networks finer than the block


@dataclass(frozen=True, slots=True)
class GeoLocation:
    """Where an address is: ISO 3166-1 alpha-2 country (or None), continent
    code (AF AN AS EU NA OC SA, or None), and coordinates in decimal degrees
    (None when unknown)."""

    country: str | None
    continent: str | None
    lat: float | None = None
    lon: float | None = None


class GeoDBError(GslbError):
    """A GeoIP database that is missing, unreadable or not an mmdb file."""


class GeoDB:
    """A GeoIP database opened on an mmdb file, with a bounded lookup cache.

    ``path``: the mmdb file. ``cache_size``: the most entries each of the
    two LRU caches keeps (default 65,536). Raises ``GeoDBError`` when the file
    is missing, unreadable or not an mmdb.

    The cache is keyed by the address's /24 (IPv4) or /56 (IPv6) block, and
    stays exact for any database: a block is cached as one entry only when the
    database's network holding the block's first address is at least that
    wide (so it holds the whole block); a block with finer networks is marked
    so, and its addresses are cached one by one.
    """

    def __init__(self, path: str | os.PathLike[str], cache_size: int = 65536) -> None:
        self.path = os.fspath(path)
        try:
            self._reader = maxminddb.open_database(self.path)
        except OSError as exc:
            raise GeoDBError(f"{self.path}: cannot open GeoIP database: "
                             f"{exc.strerror or exc}") from exc
        except (maxminddb.InvalidDatabaseError, ValueError) as exc:
            raise GeoDBError(f"{self.path}: not a MaxMind DB (mmdb) file: {exc}") from exc
        meta = self._reader.metadata()
        self.database_type: str = meta.database_type
        """The file's ``database_type``, e.g. ``GSLB-Country``, ``GeoLite2-City``."""
        self.build_epoch: int = meta.build_epoch
        """When the file was built (seconds since the Unix epoch)."""
        self._block = functools.lru_cache(maxsize=cache_size)(self._lookup_block)
        self._exact = functools.lru_cache(maxsize=cache_size)(self._lookup_exact)
        log.info("opened GeoIP database %s (%s, %d IPv%d nodes)", self.path,
                 self.database_type, meta.node_count, meta.ip_version)

    def locate(self, address: str) -> GeoLocation | None:
        """Where ``address`` is (IPv4 or IPv6 text; a ``net/len`` subnet is
        located by its first address; IPv4-mapped IPv6 as its IPv4 address).

        Country from the record's ``country`` (else ``registered_country``);
        continent from the record, else the country's; coordinates from the
        record's ``location``, else the country's, else the continent's
        representative point (``gslb.countries``). Returns None for an address
        the database does not hold (private, loopback, unknown) and for junk
        input; never raises on a bad address.
        """
        packed = _packed(address)
        if packed is None:
            return None
        found = self._block(packed[: _BLOCK_BYTES[len(packed)]])
        if found is _FINER:
            return self._exact(packed)
        return cast("GeoLocation | None", found)

    def cache_info(self) -> dict[str, int]:
        """Lookup-cache counters (both caches summed): ``hits``, ``misses``
        (database lookups) and ``size`` (entries held)."""
        block, exact = self._block.cache_info(), self._exact.cache_info()
        return {"hits": block.hits + exact.hits, "misses": block.misses + exact.misses,
                "size": block.currsize + exact.currsize}

    def close(self) -> None:
        """Close the file and drop the cache."""
        self._block.cache_clear()
        self._exact.cache_clear()
        self._reader.close()

    def __enter__(self) -> GeoDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _lookup_block(self, prefix: bytes) -> GeoLocation | object | None:
        size = 4 if len(prefix) == _BLOCK_BYTES[4] else 16
        first = ipaddress.ip_address(prefix.ljust(size, b"\0"))
        try:
            record, prefix_len = self._reader.get_with_prefix_len(first)
        except ValueError:  # an IPv6 address in an IPv4-only database
            return None
        if prefix_len > len(prefix) * 8:
            return _FINER
        return _location(record)

    def _lookup_exact(self, packed: bytes) -> GeoLocation | None:
        return _location(self._reader.get(ipaddress.ip_address(packed)))


def _packed(address: str) -> bytes | None:
    """``address`` (or a ``net/len`` subnet's first address) as 4 or 16
    bytes, IPv4-mapped IPv6 as IPv4; None for junk. ``inet_pton`` is several
    times faster than ``ipaddress`` and this runs once per query."""
    try:
        if "/" in address:
            packed = ipaddress.ip_network(address, strict=False).network_address.packed
        else:
            try:
                packed = socket.inet_pton(socket.AF_INET, address)
            except OSError:
                packed = socket.inet_pton(socket.AF_INET6, address)
    except (OSError, ValueError, TypeError):
        return None
    return packed[12:] if packed.startswith(_V4_MAPPED) else packed


def _location(record: Any) -> GeoLocation | None:
    """A GeoIP2-layout record (or None) → GeoLocation, filling what the
    record lacks from the country and continent tables."""
    if not isinstance(record, dict):
        return None
    country = (_sub(record, "country").get("iso_code")
               or _sub(record, "registered_country").get("iso_code"))
    continent = _sub(record, "continent").get("code")
    known = countries.lookup(country) if isinstance(country, str) else None
    if continent is None and known is not None:
        continent = known.continent
    if country is None and continent is None:
        return None
    where = _sub(record, "location")
    lat, lon = where.get("latitude"), where.get("longitude")
    if lat is None or lon is None:
        point = known or (countries.continent(continent) if continent else None)
        lat, lon = (point.lat, point.lon) if point else (None, None)
    return GeoLocation(country, continent, lat, lon)


def _sub(record: dict[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in
    decimal degrees (haversine formula on a sphere of ``EARTH_RADIUS_KM``;
    within 0.5 % of the WGS 84 ellipsoid)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
