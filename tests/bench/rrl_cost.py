"""What response rate limiting costs per query: ``Answering.handle`` with the
limiter off and on (a limit never reached, so every response is sent and the
limiter does all its bookkeeping).

Usage (from the repository root)::

    .venv/bin/python -m tests.bench.rrl_cost [--loops 200000] [--rounds 5]
        [--clients 1] [--cache 16384] [--hits] [--callgrind] [--json PATH]

Both variants answer the same zone (``tests.bench.dns_servers.Zone``, the
six-name mix without its geo pool's mmdb: geo answers come from its
``default``) through one ``Answering``, from ``--clients`` source addresses
(each its own /24; 1: every query from 127.0.0.1, as dnsperf sends), over
UDP, with the answer cache (``--cache``; 0: every answer built afresh;
``--hits``: leave out the mix's ``weighted`` name, so every answer is a
cache hit).
``--loops`` calls of ``Answering.handle`` over the prepared queries, the
best of ``--rounds``: µs per query, off and on, and the ratio.

With ``--callgrind`` each variant also runs under ``valgrind
--tool=callgrind`` twice (``--loops`` / 20 and / 10 calls) and the
difference of the two instruction counts, divided by the difference of
calls, is the instructions per query: startup cancels out, and the figure
does not move with the machine's load (valgrind must be installed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import dns.message

from gslb.answering import Answering, AnswerSettings, build_authority
from gslb.config.load import load
from gslb.health.view import QuorumView
from gslb.stats import QueryStats
from tests.bench.callgrind import instructions_of
from tests.bench.dns_servers import MIX, ZONE, Zone

RATE_LIMIT = """
rate_limit:
  responses_per_second: 1000000   # never reached: every response is sent
  nodata_per_second: 1000000
  nxdomains_per_second: 1000000
  errors_per_second: 1000000
  referrals_per_second: 1000000
"""


def prepare(rrl: bool, cache: int, clients: int, hits: bool = False
            ) -> tuple[Answering, list[tuple[bytes, str]]]:
    """An ``Answering`` over the bench zone (with or without the limiter)
    and the queries it is asked: the mix's names (``hits``: but ``api``,
    a fresh weighted draw each time, so every answer is a cache hit) ×
    ``clients`` sources."""
    zone = Zone(names=len(MIX), pool_size=2, mmdb=Path("/nonexistent"), ns_addr="127.0.0.1",
                origin_port=9)
    text = zone.gslb_yaml()
    directory = Path(tempfile.mkdtemp(prefix="rrl_cost."))
    path = directory / "gslb.yaml"
    path.write_text(text + (RATE_LIMIT if rrl else ""))
    config = load([path])
    stats = QueryStats()
    view = QuorumView(None, 10.0)
    authority = build_authority(config, view, None, stats, AnswerSettings(answer_cache=cache))
    answering = Answering(authority, stats)
    queries = []
    for i in range(clients):
        who = "127.0.0.1" if clients == 1 else f"10.{i >> 8 & 255}.{i & 255}.1"
        for name in MIX:
            if hits and name == "api":
                continue
            query = dns.message.make_query(f"{name}.{ZONE}", "A", use_edns=0)
            queries.append((query.to_wire(), who))
    return answering, queries


def run(answering: Answering, queries: list[tuple[bytes, str]], loops: int) -> float:
    """Seconds for ``loops`` calls of ``handle``."""
    handle = answering.handle
    n = len(queries)
    start = time.perf_counter()
    for i in range(loops):
        data, who = queries[i % n]
        handle(data, who, True)
    return time.perf_counter() - start


def timed(args: argparse.Namespace) -> dict[str, float]:
    """µs per query off and on, best of ``--rounds`` (interleaved)."""
    best = {"off": float("inf"), "on": float("inf")}
    parts = {key: prepare(key == "on", args.cache, args.clients, args.hits) for key in best}
    for answering, queries in parts.values():
        run(answering, queries, 2000)  # warm the cache and the buckets
    for _ in range(args.rounds):
        for key, (answering, queries) in parts.items():
            best[key] = min(best[key], run(answering, queries, args.loops) / args.loops * 1e6)
    limiter = parts["on"][0].limiter
    assert limiter is not None and not parts["on"][0].stats.rrl, "the limit was reached"
    return best


def instructions(key: str, loops: int, args: argparse.Namespace) -> int:
    """Total instructions (callgrind Ir) of a child doing ``loops`` calls."""
    return instructions_of(
        f"from tests.bench.rrl_cost import prepare, run; a, q = prepare({key == 'on'}, "
        f"{args.cache}, {args.clients}, {args.hits}); run(a, q, {loops})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--loops", type=int, default=200_000, help="calls per round (default 200000)")
    a("--rounds", type=int, default=5, help="rounds, the best kept (default 5)")
    a("--clients", type=int, default=1, help="source addresses, each its own /24 (default 1)")
    a("--cache", type=int, default=16384, help="answer cache entries (0: off; default 16384)")
    a("--hits", action="store_true", help="leave out the weighted name (never cached): "
      "with the cache on, every answer is a hit")
    a("--callgrind", action="store_true", help="also count instructions under callgrind")
    a("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    report: dict[str, object] = {"loops": args.loops, "clients": args.clients,
                                 "cache": args.cache, "hits": args.hits}
    best = timed(args)
    report["us_per_query"] = best
    print(f"Answering.handle, {args.clients} client(s), cache {args.cache}"
          f"{', hits only' if args.hits else ''}: "
          f"off {best['off']:.3f} µs, on {best['on']:.3f} µs per query "
          f"(+{best['on'] - best['off']:.3f} µs, ×{best['on'] / best['off']:.3f})")
    if args.callgrind:
        low, high = args.loops // 20, args.loops // 10
        per = {key: (instructions(key, high, args) - instructions(key, low, args)) / (high - low)
               for key in ("off", "on")}
        report["instructions_per_query"] = per
        print(f"callgrind: off {per['off']:.0f}, on {per['on']:.0f} instructions per query "
              f"(+{per['on'] - per['off']:.0f}, ×{per['on'] / per['off']:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
