"""What the explain hooks cost a query that is not explained: ``respond``
(answer cache off, so every query runs ``Authority.lookup`` and
``Steering.choose``) for a geo name (ECS client placed by country), a
failover name whose first tier is down, a tree of pools and a ``fallback``
pool, counted under callgrind.

Usage (from the repository root; run it on two checkouts to compare)::

    .venv/bin/python -m tests.bench.explain_cost [--loops 20000]

Each variant runs under ``valgrind --tool=callgrind`` twice (``--loops``
and twice that many calls): the difference of the instruction counts over
the difference of calls is the instructions per query (start-up cancels
out; the figure does not move with the machine's load).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import dns.edns
import dns.message

from gslb.answering import AnswerSettings, build_authority
from gslb.authority import respond
from gslb.config.load import load
from gslb.geo import GeoLocation
from gslb.health.view import AllUpExcept
from gslb.stats import QueryStats
from tests.bench.callgrind import instructions_of

CONFIG = """
origins:
  london: {ipv4: [192.0.2.11], location: {country: GB}}
  virginia: {ipv4: [192.0.2.13], location: {lat: 38.95, lon: -77.45}}
  d: {ipv4: [192.0.2.21]}
  e: {ipv4: [192.0.2.22]}
pools:
  web: {policy: geo, origins: [london, virginia], countries: {GB: london}, default: virginia}
  fo: {policy: failover, tiers: [[d], [e]]}
  only-d: {policy: all, origins: [d], fallback: web}
  tree: {policy: failover, tiers: [fo, web]}
zones:
  bench.test:
    records:
      "@":
        SOA: ns1 hostmaster.bench.test. 1 3600 600 86400 30
        NS: ns1
      ns1: {A: 127.0.0.1}
      www: {gslb: web}
      db: {gslb: fo}
      tree: {gslb: tree}
      dead: {gslb: only-d}
"""

NAMES = ("www", "db", "tree", "dead")


def prepare(name: str) -> tuple[object, bytes]:
    """An authority (d down, a GB locator, no cache) and the query for ``name``."""
    directory = Path(tempfile.mkdtemp(prefix="explain_cost."))
    (directory / "gslb.yaml").write_text(CONFIG)
    config = load([directory / "gslb.yaml"])
    gb = GeoLocation("GB", "EU", 51.5, -0.1, 24)
    authority = build_authority(config, AllUpExcept(frozenset({"d"})), None, QueryStats(),
                                AnswerSettings(answer_cache=0))
    authority.locator = lambda address: gb
    query = dns.message.make_query(f"{name}.bench.test.", "A", use_edns=0,
                                   options=[dns.edns.ECSOption("81.2.69.0", 24)])
    return authority, query.to_wire()


def run(name: str, loops: int) -> float:
    """Seconds for ``loops`` answers to the query for ``name``."""
    authority, data = prepare(name)
    start = time.perf_counter()
    for _ in range(loops):
        respond(authority, data, "198.51.100.1", True)  # type: ignore[arg-type]
    return time.perf_counter() - start


def instructions(name: str, loops: int) -> int:
    """Total instructions (callgrind Ir) of a child doing ``loops`` answers."""
    return instructions_of(f"from tests.bench.explain_cost import run; run({name!r}, {loops})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=20_000)
    args = parser.parse_args()
    for name in NAMES:
        low, high = instructions(name, args.loops), instructions(name, 2 * args.loops)
        print(f"{name:5s} {(high - low) / args.loops:8.0f} instructions per query")


if __name__ == "__main__":
    main()
