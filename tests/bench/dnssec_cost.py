"""What signing costs per query, without the sockets: ``Answering.handle``
for DO=1 queries on the zone without ``dnssec:`` and with it.

Usage (from the repository root)::

    .venv/bin/python -m tests.bench.dnssec_cost [--loops 200000] [--rounds 5]
        [--cache 16384] [--hits] [--ecs 81.2.69.0/24] [--callgrind] [--json PATH]

Both variants answer the zone of ``tests.bench.dns_servers.Zone`` (the
six-name mix; no mmdb, so ``www`` answers its geo pool's ``default``) through
one ``Answering`` each, from 127.0.0.1 over UDP, every query DO=1 with ECS
``--ecs``, with the answer cache (``--cache``; 0: every answer built and
signed-or-not afresh, signatures still cached per RRset and period;
``--hits``: leave out ``api``, a fresh weighted draw each time, so every
answer is an answer-cache hit). The signed zone has one ECDSAP256SHA256 key
from ``gslb dnssec keygen``. ``--loops`` calls of ``handle``, the best of
``--rounds`` (interleaved): µs per query, unsigned and signed, and the ratio.
With ``--callgrind``, as ``rrl_cost``: instructions per query from the
difference of two runs under ``valgrind --tool=callgrind``, a figure that does
not move with the machine's load. The socket work (about 10 µs a query on this
machine kind, ``docs/performance.md``) comes on top of both.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import tempfile
import time
from pathlib import Path

import dns.edns
import dns.message
import dns.rdatatype
import yaml

from gslb.answering import Answering, AnswerSettings, build_authority
from gslb.config.load import load
from gslb.health.view import QuorumView
from gslb.stats import QueryStats
from tests.bench.callgrind import instructions_of
from tests.bench.dns_servers import MIX, ZONE, Zone
from tests.bench.dnssec_compare import gslb_keygen


def prepare(signed: bool, cache: int, ecs: str, hits: bool = False,
            keydir: str | None = None) -> tuple[Answering, list[bytes]]:
    """An ``Answering`` over the bench zone (``signed``: with a ``dnssec:``
    section, its key made in ``keydir`` or a temp dir) and the DO=1 queries
    it is asked (the mix; ``hits``: without ``api``)."""
    zone = Zone(names=len(MIX), pool_size=2, mmdb=Path("/nonexistent"), ns_addr="127.0.0.1",
                origin_port=9)
    cfg = yaml.safe_load(zone.gslb_yaml())
    directory = Path(keydir or tempfile.mkdtemp(prefix="dnssec_cost."))
    if signed:
        keys = directory / "keys"
        keys.mkdir(exist_ok=True)
        found = sorted(keys.glob("K*.private"))
        base = found[0].with_suffix("") if found else gslb_keygen(keys)
        cfg["zones"][ZONE]["dnssec"] = {"keys": [{"file": str(base), "state": "active"}]}
    path = directory / ("signed.yaml" if signed else "unsigned.yaml")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    config = load([path])
    stats = QueryStats()
    view = QuorumView(None, 10.0)
    authority = build_authority(config, view, None, stats, AnswerSettings(answer_cache=cache))
    net = ipaddress.ip_network(ecs, strict=False)
    option = dns.edns.ECSOption(str(net.network_address), net.prefixlen)
    queries = [dns.message.make_query(f"{name}.{ZONE}", "A", use_edns=0, want_dnssec=True,
                                      payload=4096, options=[option]).to_wire()
               for name in MIX if not (hits and name == "api")]
    return Answering(authority, stats), queries


def run(answering: Answering, queries: list[bytes], loops: int) -> float:
    """Seconds for ``loops`` calls of ``handle`` (from 127.0.0.1, UDP)."""
    handle = answering.handle
    n = len(queries)
    start = time.perf_counter()
    for i in range(loops):
        handle(queries[i % n], "127.0.0.1", True)
    return time.perf_counter() - start


def check(parts: dict[str, tuple[Answering, list[bytes]]]) -> None:
    """Every signed answer carries an RRSIG and no unsigned one does
    (raises ``SystemExit`` naming the query otherwise)."""
    for key, (answering, queries) in parts.items():
        for data in queries:
            reply = answering.handle(data, "127.0.0.1", True)
            assert reply is not None
            msg = dns.message.from_wire(reply)
            has_sig = any(r.rdtype == dns.rdatatype.RRSIG for r in msg.answer)
            if has_sig != (key == "signed"):
                sys.exit(f"dnssec_cost: {key} answer to {msg.question[0]} "
                         f"{'has' if has_sig else 'lacks'} an RRSIG:\n{msg}")


def timed(args: argparse.Namespace, keydir: str) -> dict[str, float]:
    """µs per query, unsigned and signed, best of ``--rounds`` (interleaved)."""
    best = {"unsigned": float("inf"), "signed": float("inf")}
    parts = {key: prepare(key == "signed", args.cache, args.ecs, args.hits, keydir)
             for key in best}
    check(parts)
    for answering, queries in parts.values():
        run(answering, queries, 2000)  # warm the caches
    for _ in range(args.rounds):
        for key, (answering, queries) in parts.items():
            best[key] = min(best[key], run(answering, queries, args.loops) / args.loops * 1e6)
    return best


def instructions(key: str, loops: int, args: argparse.Namespace, keydir: str) -> int:
    """Total instructions (callgrind Ir) of a child doing ``loops`` calls."""
    return instructions_of(
        f"from tests.bench.dnssec_cost import prepare, run; a, q = prepare("
        f"{key == 'signed'}, {args.cache}, {args.ecs!r}, {args.hits}, {keydir!r}); "
        f"run(a, q, {loops})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--loops", type=int, default=200_000, help="calls per round (default 200000)")
    a("--rounds", type=int, default=5, help="rounds, the best kept (default 5)")
    a("--cache", type=int, default=16384, help="answer cache entries (0: off; default 16384)")
    a("--hits", action="store_true", help="leave out the weighted name (never cached): "
      "with the cache on, every answer is a hit")
    a("--ecs", default="81.2.69.0/24", help="client subnet sent as ECS (default: a GB /24)")
    a("--callgrind", action="store_true", help="also count instructions under callgrind")
    a("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    report: dict[str, object] = {"loops": args.loops, "cache": args.cache, "hits": args.hits,
                                 "ecs": args.ecs}
    with tempfile.TemporaryDirectory(prefix="dnssec_cost.") as keydir:
        best = timed(args, keydir)
        report["us_per_query"] = best
        print(f"Answering.handle, DO=1, ECS {args.ecs}, cache {args.cache}"
              f"{', hits only' if args.hits else ''}: unsigned {best['unsigned']:.3f} µs, "
              f"signed {best['signed']:.3f} µs per query "
              f"(+{best['signed'] - best['unsigned']:.3f} µs, "
              f"×{best['signed'] / best['unsigned']:.3f})")
        if args.callgrind:
            low, high = args.loops // 20, args.loops // 10
            per = {key: (instructions(key, high, args, keydir)
                         - instructions(key, low, args, keydir)) / (high - low)
                   for key in ("unsigned", "signed")}
            report["instructions_per_query"] = per
            print(f"callgrind: unsigned {per['unsigned']:.0f}, signed {per['signed']:.0f} "
                  f"instructions per query (+{per['signed'] - per['unsigned']:.0f}, "
                  f"×{per['signed'] / per['unsigned']:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
