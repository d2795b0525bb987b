"""Build a country-level MaxMind DB (mmdb) from "start,end,CC" range files.

The input is the format of Debian's ``tor-geoipdb`` package (the IPFire
Location data, CC BY-SA 4.0): ``/usr/share/tor/geoip`` holds IPv4 ranges as
integers (``16777216,16777471,AU``), ``/usr/share/tor/geoip6`` IPv6 ranges
as addresses (``2001:2::,2001:2:0:ffff:ffff:ffff:ffff:ffff,JP``); lines
starting with ``#`` are comments. See ``geoip/README.md`` for the licence and
for what each non-ISO code becomes (``CODE_MAP``).

The output is an IPv6 mmdb (IPv4 at ``::/96``, as MaxMind's own files) of
type ``GSLB-Country`` that ``geoip2.database.Reader(path).country(ip)``
reads: each record has ``continent`` {code, names.en}, ``country``
{iso_code, names.en} when a country is known, and ``location`` {latitude,
longitude}: the country's (else the continent's) representative point from
``gslb.countries``.

Speed: adjacent ranges with the same code are merged, each range is split
into CIDR blocks with integer arithmetic, and every block of one code shares
one leaf, so the tree is built without ``netaddr.IPSet`` and each record is
encoded once. The full Debian data (~660,000 ranges) builds in about 8 s on
a 2-core machine.

``build_asn`` writes an ASN mmdb in the GeoLite2-ASN layout from a list of
networks with the same tree code (the test ASN database is built with it).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import os
import re
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdb_writer import SearchTreeLeaf, SearchTreeNode, TreeWriter

from gslb import countries

log = logging.getLogger("gslb.geoip")

DATABASE_TYPE = "GSLB-Country"

DESCRIPTION = ("Country by IP address: IPFire Location data (CC BY-SA 4.0, "
               "https://location.ipfire.org/) via Debian tor-geoipdb; country and "
               "continent points from GeoNames (CC BY 4.0)")

ASN_DATABASE_TYPE = "GSLB-ASN (compat=GeoLite2-ASN)"
"""The type ``build_asn`` writes: ``geoip2`` reads a file as an ASN database
when its type names ``GeoLite2-ASN``, as DB-IP's
``DBIP-ASN-Lite (compat=GeoLite2-ASN)`` does."""

ASN_DESCRIPTION = "AS number by IP address (GeoLite2-ASN layout)"

DEFAULT_V4 = Path("/usr/share/tor/geoip")
DEFAULT_V6 = Path("/usr/share/tor/geoip6")
DEFAULT_OUT = Path("geoip/country.mmdb")

CODE_MAP: dict[str, tuple[str | None, str]] = {
    "UK": ("GB", "EU"),  # exceptionally reserved for the United Kingdom
    "CS": ("RS", "EU"),  # Serbia and Montenegro (withdrawn 2006); Serbia is its successor
    "AN": (None, "NA"),  # Netherlands Antilles (withdrawn 2010): no single successor
    "EU": (None, "EU"),  # Europe, no country
    "AP": (None, "AS"),  # Asia/Pacific region, no country
}
"""Non-ISO 3166-1 codes of the source → (country code or None, continent
code). ``??`` and empty codes (unknown) give no record; so does any other
code that is neither here nor in ``gslb.countries`` (e.g. ZZ, SU, UN)."""

_UNKNOWN = frozenset({"??", ""})
_GENERATED = re.compile(r"^#\s*Generated:\s*(.+?)\s*$")

Range = tuple[int, int, str]  # first address, last address (integers), source code


@dataclass(slots=True)
class BuildStats:
    """What ``build`` did.

    ``read``: data lines read (both files); ``written``: ranges written after
    merging adjacent ranges that give the same record; ``networks``: CIDR blocks in
    the search tree; ``skipped``: ranges left out, by reason (``unknown``
    for ``??``/empty, ``unmapped XX`` per other unusable code, ``malformed``,
    ``overlap``, ``ipv4 space`` for IPv6 ranges inside ``::/96``);
    ``seconds``: wall-clock time taken (seconds).
    """

    read: int = 0
    written: int = 0
    networks: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def build(v4: Path, v6: Path | None, out: Path) -> BuildStats:
    """Build the mmdb at ``out`` from the IPv4 range file ``v4`` and the
    optional IPv6 range file ``v6``.

    ``out`` is written atomically (a temporary file in the same directory,
    then renamed), creating its directory if needed.

    Raises ``OSError`` when an input cannot be read or ``out`` written.
    """
    started = time.perf_counter()
    stats = BuildStats()
    skipped: Counter[str] = Counter()
    generated: list[str] = []
    tree, v4_parent = _ipv6_tree()
    leaves: dict[tuple[str | None, str], SearchTreeLeaf] = {}
    sources: list[tuple[Path, int]] = [(v4, 4)] + ([(v6, 6)] if v6 is not None else [])
    for path, version in sources:
        ranges = _read(path, version, stats, skipped, generated)
        bits = 32 if version == 4 else 128
        blocks: list[tuple[int, int, SearchTreeLeaf]] = []
        for first, last, key in _merge(ranges, skipped):
            leaf = leaves.get(key)
            if leaf is None:
                leaf = leaves[key] = SearchTreeLeaf(_record(*key))
            stats.written += 1
            blocks.extend((value, plen, leaf) for value, plen in _cidrs(first, last, bits))
        _insert_family(tree, v4_parent, version, blocks)
        stats.networks += len(blocks)
    _write(tree, DATABASE_TYPE, DESCRIPTION + (f"; source generated {generated[0]}"
                                               if generated else ""), out)
    stats.skipped = dict(sorted(skipped.items()))
    stats.seconds = time.perf_counter() - started
    log.info("built %s: %d ranges read, %d written as %d networks, skipped %s, %.1f s",
             out, stats.read, stats.written, stats.networks, stats.skipped, stats.seconds)
    return stats


def build_asn(entries: Iterable[tuple[str, int, str | None]], out: Path,
              description: str = ASN_DESCRIPTION) -> int:
    """Build an ASN mmdb at ``out`` in the GeoLite2-ASN layout (type
    ``ASN_DATABASE_TYPE``: records ``autonomous_system_number`` and, when
    given, ``autonomous_system_organization``) that
    ``geoip2.database.Reader(path).asn(ip)`` and ``gslb.geo.AsnDB`` read.

    ``entries``: (network as CIDR text, IPv4 or IPv6; AS number;
    organisation or None), in any order. An IPv6 tree as ``build`` writes,
    IPv4 under ``::/96``; written atomically in the same way. Returns the
    number of networks written.

    Raises ``ValueError`` for a malformed network (host bits set included),
    an IPv6 network inside ``::/96``, or networks that overlap; ``OSError``
    when ``out`` cannot be written.
    """
    tree, v4_parent = _ipv6_tree()
    blocks: dict[int, list[tuple[int, int, SearchTreeLeaf]]] = {4: [], 6: []}
    for cidr, number, organization in entries:
        net = ipaddress.ip_network(cidr)
        if net.version == 6 and int(net.network_address) <= 0xFFFFFFFF:
            raise ValueError(f"{cidr}: IPv6 network inside ::/96, where IPv4 lives")
        record: dict[str, Any] = {"autonomous_system_number": number}
        if organization is not None:
            record["autonomous_system_organization"] = organization
        blocks[net.version].append((int(net.network_address), net.prefixlen,
                                    SearchTreeLeaf(record)))
    for version, family in blocks.items():
        family.sort(key=lambda block: block[:2])
        for (value, plen, _), (after, _p, _l) in itertools.pairwise(family):
            if after < value + (1 << ((32 if version == 4 else 128) - plen)):
                raise ValueError(f"{ipaddress.ip_address(after)}: overlaps the network "
                                 f"{ipaddress.ip_address(value)}/{plen}")
        _insert_family(tree, v4_parent, version, family)
    _write(tree, ASN_DATABASE_TYPE, description, out)
    written = len(blocks[4]) + len(blocks[6])
    log.info("built %s: %d ASN networks", out, written)
    return written


def _ipv6_tree() -> tuple[SearchTreeNode, SearchTreeNode]:
    """An empty IPv6 search tree and the node where IPv4 hangs: ``::/96``,
    reached by 95 zero bits, below which IPv4 is a 33-bit value whose top
    bit is 0."""
    tree = SearchTreeNode()
    v4_parent = tree
    for _ in range(95):
        v4_parent.left = SearchTreeNode()
        v4_parent = v4_parent.left
    return tree, v4_parent


def _insert_family(tree: SearchTreeNode, v4_parent: SearchTreeNode, version: int,
                   blocks: list[tuple[int, int, SearchTreeLeaf]]) -> None:
    """Hang sorted, disjoint ``blocks`` of one IP ``version`` in ``tree``."""
    if version == 4:  # a 33-bit value below the depth-95 node: one more (zero) bit
        _insert_sorted(v4_parent, ((v, p + 1, leaf) for v, p, leaf in blocks), 33)
    else:
        _insert_sorted(tree, blocks, 128)


def _write(tree: SearchTreeNode, database_type: str, description: str, out: Path) -> None:
    """Write ``tree`` as an IPv6 mmdb at ``out``: a temporary file in the
    same directory (created if needed), then renamed."""
    meta = {
        "ip_version": 6, "database_type": database_type, "languages": ["en"],
        "binary_format_major_version": 2, "binary_format_minor_version": 0,
        "description": {"en": description}, "build_epoch": int(time.time()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        TreeWriter(tree, meta).write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_code(code: str) -> tuple[str | None, str] | None:
    """What source ``code`` becomes: (country code or None, continent code),
    or None when the range gets no record. See ``CODE_MAP``."""
    code = code.strip().upper()
    if code in CODE_MAP:
        return CODE_MAP[code]
    country = countries.lookup(code) if code not in _UNKNOWN else None
    return (country.code, country.continent) if country else None


def _read(path: Path, version: int, stats: BuildStats, skipped: Counter[str],
          generated: list[str]) -> list[Range]:
    ranges: list[Range] = []
    parse = int if version == 4 else _v6_int
    top = (1 << (32 if version == 4 else 128)) - 1
    with open(path, encoding="ascii", errors="replace") as f:
        for line in f:
            if line.startswith("#"):
                if m := _GENERATED.match(line):
                    generated.append(m.group(1))
                continue
            if not line.strip():
                continue
            stats.read += 1
            parts = line.rstrip("\r\n").split(",")
            try:
                first, last = parse(parts[0]), parse(parts[1])
                code = parts[2].strip().upper()
                if len(parts) != 3 or not 0 <= first <= last <= top:
                    raise ValueError(line)
            except (ValueError, IndexError):
                skipped["malformed"] += 1
                continue
            if version == 6 and first <= 0xFFFFFFFF:
                skipped["ipv4 space"] += 1
            else:
                ranges.append((first, last, code))
    return ranges


def _v6_int(text: str) -> int:
    """An IPv6 address as an integer (inet_pton: ~10x faster than ipaddress);
    raises ValueError on junk."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError as exc:
        raise ValueError(text) from exc


def _merge(ranges: list[Range], skipped: Counter[str]) -> Iterator[tuple[int, int, Any]]:
    """Sorted, disjoint ranges with their record key, adjacent ones of the
    same key merged; unusable and overlapping ranges counted in ``skipped``."""
    ranges.sort()
    cur: list[Any] | None = None
    end = -1
    for first, last, code in ranges:
        if first <= end:
            skipped["overlap"] += 1
            continue
        end = last
        key = resolve_code(code)
        if key is None:
            skipped["unknown" if code in _UNKNOWN else f"unmapped {code}"] += 1
            continue
        if cur is not None and cur[2] == key and cur[1] + 1 == first:
            cur[1] = last
            continue
        if cur is not None:
            yield cur[0], cur[1], cur[2]
        cur = [first, last, key]
    if cur is not None:
        yield cur[0], cur[1], cur[2]


def _cidrs(first: int, last: int, bits: int) -> Iterator[tuple[int, int]]:
    """The CIDR blocks (network as integer, prefix length) covering
    ``first``..``last`` exactly, in order."""
    while first <= last:
        align = (first & -first).bit_length() - 1 if first else bits
        size = min(align, (last - first + 1).bit_length() - 1)
        yield first, bits - size
        first += 1 << size


def _insert_sorted(root: SearchTreeNode, blocks: Iterable[tuple[int, int, SearchTreeLeaf]],
                   width: int) -> None:
    """Hang each leaf at its prefix (``width``-bit network value, prefix
    length) below ``root``. ``blocks`` must be sorted and disjoint
    (``_merge`` sees to it): each walk then starts from the deepest node it
    shares with the previous one instead of from the root."""
    path = [root]  # path[d]: the node at depth d on the previous walk
    prev = 0
    for value, plen, leaf in blocks:
        depth = min(width - (prev ^ value).bit_length(), len(path) - 1, plen - 1)
        del path[depth + 1:]
        node = path[depth]
        for shift in range(width - 1 - depth, width - plen, -1):
            if (value >> shift) & 1:
                child = node.right
                if child is None:
                    child = node.right = SearchTreeNode()
            else:
                child = node.left
                if child is None:
                    child = node.left = SearchTreeNode()
            if type(child) is not SearchTreeNode:
                raise ValueError(f"prefix {value:#x}/{plen} overlaps another")
            path.append(child)
            node = child
        if (value >> (width - plen)) & 1:
            node.right = leaf
        else:
            node.left = leaf
        prev = value


def _record(country_code: str | None, continent_code: str) -> dict[str, Any]:
    """The mmdb record (GeoIP2 Country layout plus ``location``)."""
    cont = countries.continent(continent_code)
    assert cont is not None, continent_code
    record: dict[str, Any] = {"continent": {"code": cont.code, "names": {"en": cont.name}}}
    point: countries.Country | countries.Continent = cont
    if country_code is not None:
        country = countries.lookup(country_code)
        assert country is not None, country_code
        record["country"] = {"iso_code": country.code, "names": {"en": country.name}}
        point = country
    record["location"] = {"latitude": point.lat, "longitude": point.lon}
    return record
