"""What ``order`` (rotation of a multi-address answer) costs ``respond``:
an answer-cache hit for a static A RRset (no rotation), for an ``all`` pool
of 4 origins with each ``order``, and a miss (``cache_entries`` 0) for the
same pool, to compare shuffling a stored answer with answering afresh.

Usage (from the repository root)::

    .venv/bin/python -m tests.bench.rotation_cost [--loops 100000] [--rounds 3] [--base]

``--base``: only the variants a tree without ``order`` knows (static, and
the pool without the key). Each variant: ``--loops`` calls of ``respond``
from one client address, the best of ``--rounds``, µs per query (a timing:
compare the variants of one run, not runs on different machines).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import timeit
from pathlib import Path

import dns.message

from gslb.authority import Authority, respond
from tests.unit.fakes import Health

ZONE = """
origins:
  a: {{ipv4: [192.0.2.1]}}
  b: {{ipv4: [192.0.2.2]}}
  c: {{ipv4: [192.0.2.3]}}
  d: {{ipv4: [192.0.2.4]}}
pools:
  four: {{policy: all, origins: [a, b, c, d]{order}}}
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {{A: 127.0.0.1}}
      static: {{A: [192.0.2.10, 192.0.2.11, 192.0.2.12, 192.0.2.13]}}
      www: {{gslb: four}}
"""
WHO = "192.0.2.1"


def _authority(tmp: str, order: str | None, entries: int) -> Authority:
    from gslb.config.load import load
    path = Path(tmp, f"zone-{order}-{entries}.yaml")
    path.write_text(ZONE.format(order="" if order is None else f", order: {order}"))
    return Authority(load([path]), Health(), rng=random.Random(1), cache_entries=entries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", action="store_true")
    args = parser.parse_args()
    static = dns.message.make_query("static.example.test", "A", use_edns=0).to_wire()
    www = dns.message.make_query("www.example.test", "A", use_edns=0).to_wire()
    orders: list[str | None] = [None] if args.base else [None, "fixed", "cyclic", "random"]
    with tempfile.TemporaryDirectory() as tmp:
        variants = [("static A, hit", _authority(tmp, None, 16384), static)]
        variants += [(f"all, order {o or '(default)'}, hit", _authority(tmp, o, 16384), www)
                     for o in orders]
        variants += [(f"all, order {o or '(default)'}, miss", _authority(tmp, o, 0), www)
                     for o in orders]
        for name, authority, data in variants:
            respond(authority, data, WHO, True)  # stored, or looked up once
            best = min(timeit.repeat(
                lambda a=authority, d=data: respond(a, d, WHO, True),
                number=args.loops, repeat=args.rounds))
            print(f"{name:32} {best / args.loops * 1e6:6.2f} µs per query")


if __name__ == "__main__":
    main()
