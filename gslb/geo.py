"""GeoIP and ASN lookups: where is an address, which AS routes it, and how
far apart are two points?

Both databases are MaxMind DB (mmdb) files read through ``geoip2``'s
``geoip2.database.Reader``, the method chosen by the file's
``database_type`` as ``geoip2`` allows it (the type must name the layout):

* ``GeoDB`` (``gslb serve --geoip``): ``Reader.city()`` for a City type
  (GeoLite2/GeoIP2 City, DB-IP City Lite ``DBIP-City-Lite``),
  ``Reader.enterprise()`` for an Enterprise type, ``Reader.country()`` for a
  Country type (ours, ``GSLB-Country`` from ``gslb geoip build``;
  GeoLite2/GeoIP2 Country; DB-IP Country Lite ``DBIP-Country-Lite``).
* ``AsnDB`` (``gslb serve --asn-db``): ``Reader.asn()`` for GeoLite2-ASN and
  DB-IP ASN Lite (``DBIP-ASN-Lite (compat=GeoLite2-ASN)``),
  ``Reader.isp()`` for GeoIP2-ISP.

Each lookup also gives the prefix length of the database network that holds
the address, with a record or without one: an answer decided by the lookup
holds for that whole network, so it bounds the ECS scope (RFC 7871 section
7.2.1, ``Client.geo_scope`` in :mod:`gslb.steering.base`). Prefix lengths
count in the family of the address looked up: IPv4 bits for an IPv4 address
(IPv6-tree databases hold IPv4 under ``::/96``, MaxMind's also under
``::ffff:0:0/96``), IPv6 bits for an IPv6 one; an IPv4-mapped IPv6 address
(``::ffff:a.b.c.d``) is looked up as its IPv4 address, its prefix length
then 96 more.

The ``geoip2`` model objects are built only on a cache miss: lookups are
cached per /24 (IPv4) or /56 (IPv6) block, exactly (see ``GeoDB``).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar, Generic, TypeVar

import geoip2.database
import geoip2.errors
import geoip2.models

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
_MAPPED_BITS = 96  # what an IPv4 prefix length grows by as an IPv4-mapped IPv6 one

_FINER = object()  # marks a cache block that holds networks finer than the block


@dataclass(frozen=True, slots=True)
class GeoLocation:
    """Where an address is: ISO 3166-1 alpha-2 country (or None), continent
    code (AF AN AS EU NA OC SA, or None), coordinates in decimal degrees
    (None when unknown), and ``prefix_len``: the prefix length of the
    database network holding the address (module docstring: in the
    address's own family), None when the locator does not know it.

    ``GeoDB.locate`` also answers for an address the database holds no
    record for (or one with neither country nor continent): country and
    continent None, and the prefix length of that empty network. Such a
    location is not ``located``: the client cannot be placed, and that fact
    holds for the whole empty network."""

    country: str | None
    continent: str | None
    lat: float | None = None
    lon: float | None = None
    prefix_len: int | None = None

    @property
    def located(self) -> bool:
        """Whether the database places the address: a country or a
        continent is known."""
        return self.country is not None or self.continent is not None


@dataclass(frozen=True, slots=True)
class Asn:
    """The autonomous system an address is announced by, as an ASN database
    says: ``number`` (None when the database holds no record for the
    address) and ``prefix_len``, the prefix length of the database network
    holding the address, with the record or without one (module docstring:
    in the address's own family)."""

    number: int | None
    prefix_len: int


AsnLookup = Callable[[str], Asn | None]
"""Maps an IP address (text) to its ``Asn``, None for junk input
(``AsnDB.lookup``)."""


class GeoDBError(GslbError):
    """A GeoIP or ASN database that is missing, unreadable, not an mmdb
    file, or not of a type that database is read as."""


_T = TypeVar("_T", GeoLocation, Asn)


class _Mmdb(Generic[_T]):
    """An mmdb file opened through ``geoip2`` with the exact per-block
    lookup cache both databases share. A subclass names what it reads
    (``kind``, for messages) and how (``_finder``)."""

    kind: ClassVar[str]
    _find: Callable[[str], _T]
    _block: functools._lru_cache_wrapper[_T | None]  # by block prefix; None: finer networks
    _exact: functools._lru_cache_wrapper[_T]  # by address, in blocks of finer networks

    def __init__(self, path: str | os.PathLike[str], cache_size: int) -> None:
        self.path = os.fspath(path)
        try:
            self._reader = geoip2.database.Reader(self.path)
        except OSError as exc:
            raise GeoDBError(f"{self.path}: cannot open {self.kind} database: "
                             f"{exc.strerror or exc}") from exc
        # maxminddb's InvalidDatabaseError (a RuntimeError), imported by geoip2 only
        except (RuntimeError, ValueError) as exc:
            raise GeoDBError(f"{self.path}: not a MaxMind DB (mmdb) file: {exc}") from exc
        meta = self._reader.metadata()
        self.database_type: str = meta.database_type
        """The file's ``database_type``, e.g. ``GSLB-Country``, ``GeoLite2-City``."""
        self.build_epoch: int = meta.build_epoch
        """When the file was built (seconds since the Unix epoch)."""
        try:
            self._find = self._finder()
        except GeoDBError:
            self._reader.close()
            raise
        self._block = functools.lru_cache(maxsize=cache_size)(self._lookup_block)
        self._exact = functools.lru_cache(maxsize=cache_size)(self._lookup_exact)
        log.info("opened %s database %s (%s, %d IPv%d nodes)", self.kind, self.path,
                 self.database_type, meta.node_count, meta.ip_version)

    def _finder(self) -> Callable[[str], _T]:
        """The lookup of one address (never None: an address without a
        record gets the empty network's prefix length). Raises
        ``GeoDBError`` when ``database_type`` is not one this reads."""
        raise NotImplementedError

    def _wrong_type(self, wanted: str) -> GeoDBError:
        return GeoDBError(f"{self.path}: not a {wanted} database (database_type "
                          f"{self.database_type!r})")

    def _get(self, address: str) -> _T | None:
        packed = _packed(address)
        if packed is None:
            return None
        mapped = len(packed) == 16 and packed.startswith(_V4_MAPPED)
        if mapped:
            packed = packed[12:]
        found = self._block(packed[: _BLOCK_BYTES[len(packed)]])
        if found is None:  # the block holds finer networks
            found = self._exact(packed)
        if mapped and found.prefix_len is not None:
            return replace(found, prefix_len=found.prefix_len + _MAPPED_BITS)
        return found

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

    def _lookup_block(self, prefix: bytes) -> _T | None:
        """The lookup of a whole block, by its first address; None when the
        database's network there is finer than the block."""
        size = 4 if len(prefix) == _BLOCK_BYTES[4] else 16
        found = self._lookup_exact(prefix.ljust(size, b"\0"))
        if found.prefix_len is not None and found.prefix_len > len(prefix) * 8:
            return None
        return found

    def _lookup_exact(self, packed: bytes) -> _T:
        # as text: geoip2 formats the address into its results and errors, and
        # formatting an ipaddress object costs more than the lookup itself
        family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
        return self._find(socket.inet_ntop(family, packed))


class GeoDB(_Mmdb[GeoLocation]):
    """A GeoIP database (country or city) opened on an mmdb file, with a
    bounded lookup cache.

    ``path``: the mmdb file. ``cache_size``: the most entries each of the
    two LRU caches keeps (default 65,536). Raises ``GeoDBError`` when the file
    is missing, unreadable, not an mmdb, or of a type that is neither
    Country, City nor Enterprise (module docstring).

    The cache is keyed by the address's /24 (IPv4) or /56 (IPv6) block, and
    stays exact for any database: a block is cached as one entry only when the
    database's network holding the block's first address is at least that
    wide (so it holds the whole block, and its prefix length is right for
    every address of the block); a block with finer networks is marked so,
    and its addresses are cached one by one.
    """

    kind = "GeoIP"

    def __init__(self, path: str | os.PathLike[str], cache_size: int = 65536) -> None:
        super().__init__(path, cache_size)

    def locate(self, address: str) -> GeoLocation | None:
        """Where ``address`` is (IPv4 or IPv6 text; a ``net/len`` subnet is
        located by its first address; IPv4-mapped IPv6 as its IPv4 address),
        with the database network's ``prefix_len``.

        Country from the record's ``country`` (else ``registered_country``);
        continent from the record, else the country's; coordinates from the
        record's ``location`` (City and Enterprise types), else the
        country's, else the continent's representative point
        (``gslb.countries``). An address the database holds no record for
        (private, loopback, unknown), or whose record has neither country
        nor continent, gets a location that is not ``located`` (country and
        continent None) with the prefix length of that network: an IPv6
        address in an IPv4-only database gets prefix length 0. Returns None
        only for junk input; never raises on a bad address.
        """
        return self._get(address)

    def __enter__(self) -> GeoDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _finder(self) -> Callable[[str], GeoLocation]:
        kind = self.database_type
        read: Callable[[str], geoip2.models.Country]
        if "City" in kind:
            read = self._reader.city
        elif "Enterprise" in kind:
            read = self._reader.enterprise
        elif "Country" in kind:
            read = self._reader.country
        else:
            raise self._wrong_type("GeoIP2 Country, City or Enterprise")

        def find(ip: str) -> GeoLocation:
            try:
                model = read(ip)
            except geoip2.errors.AddressNotFoundError as exc:
                return GeoLocation(None, None, prefix_len=_prefix_len(exc.network))
            except ValueError:  # an IPv6 address in an IPv4-only database: none of it
                return GeoLocation(None, None, prefix_len=0)
            return _location(model)

        return find


class AsnDB(_Mmdb[Asn]):
    """An ASN database (GeoLite2-ASN, DB-IP ASN Lite, GeoIP2-ISP: the
    ``autonomous_system_number`` layout) opened on an mmdb file, with the
    same exact per-block cache as ``GeoDB``.

    ``path``: the mmdb file; ``cache_size`` as for ``GeoDB``. Raises
    ``GeoDBError`` when the file is missing, unreadable, not an mmdb, or of
    another type.
    """

    kind = "ASN"

    def __init__(self, path: str | os.PathLike[str], cache_size: int = 65536) -> None:
        super().__init__(path, cache_size)

    def lookup(self, address: str) -> Asn | None:
        """The AS announcing ``address`` (IPv4 or IPv6 text, a ``net/len``
        subnet by its first address, IPv4-mapped IPv6 as its IPv4 address):
        an ``Asn`` whose ``number`` is None when the database holds no
        record for it, with the prefix length of the database network
        either way (0 for an IPv6 address in an IPv4-only database). Returns
        None only for junk input; never raises on a bad address."""
        return self._get(address)

    def __enter__(self) -> AsnDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _finder(self) -> Callable[[str], Asn]:
        read: Callable[[str], geoip2.models.ASN]
        if "GeoLite2-ASN" in self.database_type:
            read = self._reader.asn
        elif "GeoIP2-ISP" in self.database_type:
            read = self._reader.isp
        else:
            raise self._wrong_type("GeoLite2-ASN (or DB-IP ASN Lite, GeoIP2-ISP)")

        def find(ip: str) -> Asn:
            try:
                model = read(ip)
            except geoip2.errors.AddressNotFoundError as exc:
                return Asn(None, _prefix_len(exc.network))
            except ValueError:  # an IPv6 address in an IPv4-only database
                return Asn(None, 0)
            return Asn(model.autonomous_system_number, _prefix_len(model.network))

        return find


def _prefix_len(network: ipaddress.IPv4Network | ipaddress.IPv6Network | None) -> int:
    """The prefix length of a network ``geoip2`` reports (it always does
    for database lookups; 0, the widest, if not)."""
    return network.prefixlen if network is not None else 0


def _packed(address: str) -> bytes | None:
    """``address`` (or a ``net/len`` subnet's first address) as 4 or 16
    bytes; None for junk. ``inet_pton`` is several times faster than
    ``ipaddress`` and this runs once per query."""
    try:
        if "/" in address:
            return ipaddress.ip_network(address, strict=False).network_address.packed
        try:
            return socket.inet_pton(socket.AF_INET, address)
        except OSError:
            return socket.inet_pton(socket.AF_INET6, address)
    except (OSError, ValueError, TypeError):
        return None


def _location(model: geoip2.models.Country) -> GeoLocation:
    """A ``geoip2`` Country (or City) model → GeoLocation, filling what the
    record lacks from the country and continent tables."""
    country = model.country.iso_code or model.registered_country.iso_code
    continent = model.continent.code
    prefix_len = _prefix_len(model.traits.network)
    known = countries.lookup(country) if country is not None else None
    if continent is None and known is not None:
        continent = known.continent
    if country is None and continent is None:
        return GeoLocation(None, None, prefix_len=prefix_len)
    lat = lon = None
    if isinstance(model, geoip2.models.City):
        lat, lon = model.location.latitude, model.location.longitude
    if lat is None or lon is None:
        point = known or (countries.continent(continent) if continent else None)
        lat, lon = (point.lat, point.lon) if point else (None, None)
    return GeoLocation(country, continent, lat, lon, prefix_len)


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres between two points given in
    decimal degrees (haversine formula on a sphere of ``EARTH_RADIUS_KM``;
    within 0.5 % of the WGS 84 ellipsoid)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
