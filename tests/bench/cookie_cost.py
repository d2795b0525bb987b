"""What DNS Cookies cost an answer-cache hit: ``respond`` for the same
cached A query sent without a COOKIE option, with a client cookie only, and
with the full cookie the server gave back (what a resolver using cookies
sends every time).

Usage (from the repository root)::

    .venv/bin/python -m tests.bench.cookie_cost [--loops 100000] [--rounds 3]

Each variant: ``--loops`` calls of ``respond`` from one client address, the
best of ``--rounds``, µs per query (a timing: run it on a quiet machine and
compare the variants of one run, not runs on different machines).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import timeit
from pathlib import Path

import dns.edns
import dns.message

from gslb.authority import Authority, respond
from gslb.config.load import load
from gslb.dns.cookies import OPTION_COOKIE
from tests.unit.fakes import Health

ZONE = """
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 127.0.0.1}
      www: {A: 192.0.2.1}
"""
WHO = "192.0.2.1"


def query(option: bytes | None) -> bytes:
    """``www.example.test A`` with EDNS and, if given, that COOKIE option data."""
    options = [] if option is None else [dns.edns.GenericOption(OPTION_COOKIE, option)]
    return dns.message.make_query("www.example.test", "A", use_edns=0,
                                  options=options).to_wire()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "zone.yaml")
        path.write_text(ZONE)
        authority = Authority(load([path]), Health(), rng=random.Random(1))
    client = os.urandom(8)
    first = respond(authority, query(client), WHO, True)
    assert first is not None
    full = next(o for o in dns.message.from_wire(first).options
                if o.otype == OPTION_COOKIE).to_wire()
    for name, data in (("no cookie", query(None)), ("client cookie only", query(client)),
                       ("full cookie", query(full))):
        respond(authority, data, WHO, True)  # stored, or looked up once
        best = min(timeit.repeat(lambda data=data: respond(authority, data, WHO, True),
                                 number=args.loops, repeat=args.rounds))
        print(f"{name:20} {best / args.loops * 1e6:6.2f} µs per cache hit")


if __name__ == "__main__":
    main()
