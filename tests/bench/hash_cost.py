"""What a ``hash`` selection costs beside a ``weighted`` one: the policy's
``select`` for one ECS client, all members healthy, for pools of 2 to 50
origins and ``max_answers`` 1 and 3 (an uncached answer pays this once; a
cache hit does not select at all).

Usage (from the repository root)::

    .venv/bin/python -m tests.bench.hash_cost [--loops 20000] [--rounds 5]

Each line: ``--loops`` calls, the best of ``--rounds``, µs per call (a
timing: compare the lines of one run, not runs on different machines).
"""

from __future__ import annotations

import argparse
import random
import timeit

from gslb.config.model import Origin, Pool
from gslb.health.view import AllUpExcept
from gslb.steering.base import Client, Policy
from gslb.steering.hash import HashPolicy
from gslb.steering.weighted import WeightedPolicy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    health, rng = AllUpExcept(), random.Random(1)
    client = Client("198.51.100.1", "81.2.69.0", 24, 4)
    for n in (2, 5, 20, 50):
        origins = tuple(Origin(f"o{i}", (f"192.0.2.{i}",), weight=1 + i % 4) for i in range(n))
        names = tuple(o.name for o in origins)
        for k in (1, 3):
            for name in ("weighted", "hash"):
                pool = Pool("p", name, names, (names,), max_answers=k)
                policy: Policy = HashPolicy(pool, origins) if name == "hash" else WeightedPolicy()
                best = min(timeit.repeat(
                    lambda p=policy, pl=pool, o=origins: p.select(pl, o, client, health, rng),
                    number=args.loops, repeat=args.rounds))
                print(f"n={n:2d} max_answers={k} {name:8s} {best / args.loops * 1e6:6.2f} us")


if __name__ == "__main__":
    main()
