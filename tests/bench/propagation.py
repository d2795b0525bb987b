"""Benchmark: health propagation from a probe's state change to every
nameserver's view (issue 3). Not part of the test run.

    .venv/bin/python -m tests.bench.propagation [--flips 500] [--servers 2]

Starts a real redis-server on a free loopback port, N nameserver-side
processes (each a ``RedisWatcher`` feeding a ``QuorumView``, as in ``gslb
serve --redis``), and plays the probe side in this process with a
``RedisSink`` (as in ``gslb probe``). Each flip of origin ``a``'s state is
stamped (wall clock) when the prober hands the report to the sink; each
server process stamps the moment its view's state of ``a`` changes. The
propagation time of a flip is the latest of the servers' stamps minus the
probe's stamp (same host, same clock). Every run is bounded: at most
``--flips`` flips, each waiting at most 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gslb.health.redis.sink import RedisSink
from gslb.health.redis.watcher import RedisWatcher
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView


async def server(url: str) -> None:
    """Server side: print ``<up> <epoch seconds>`` whenever ``a`` flips."""
    logging.basicConfig(level=logging.ERROR)  # a flip a millisecond: no per-flip log
    view = QuorumView(stale_after_s=60)
    watcher = RedisWatcher(url, view, resync_interval_s=60)
    await watcher.start()
    await watcher.wait_synced(5)
    print("ready", flush=True)
    generation = view.generation
    while True:
        await view.wait_for(lambda g=generation: view.generation != g, 3600)
        generation = view.generation
        print(f"{int(view.is_up('a'))} {time.time():.6f}", flush=True)


async def bench(flips: int, servers: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.conftest import RedisServer

    redis = RedisServer(Path(tempfile.mkdtemp(prefix="gslb-bench-")))
    await redis.start()
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bench.propagation", "--server", redis.url,
        stdout=asyncio.subprocess.PIPE) for _ in range(servers)]
    sink = RedisSink(redis.url, key_ttl_s=60)
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line.strip() == b"ready", line
        await sink.start()
        sink.heartbeat("eu", time.time())
        per_server: list[list[float]] = [[] for _ in procs]
        every: list[float] = []
        up = True
        for _ in range(flips):
            up = not up
            stamp = time.time()
            sink.report(VantageReport("a", "eu", up, 1, up, 1.0, 1.0, "", stamp), True)
            seen = []
            for i, proc in enumerate(procs):
                assert proc.stdout is not None
                state, at = (await asyncio.wait_for(proc.stdout.readline(), 2)).split()
                assert int(state) == up
                per_server[i].append((float(at) - stamp) * 1000)
                seen.append(float(at))
            every.append((max(seen) - stamp) * 1000)
    finally:
        await sink.stop()
        for proc in procs:
            proc.kill()
            await proc.wait()
        await redis.stop()

    def row(name: str, ms: list[float]) -> str:
        q = statistics.quantiles(ms, n=100)
        return f"| {name} | {len(ms)} | {q[49]:.2f} | {q[98]:.2f} | {max(ms):.2f} |"

    print("| propagation, probe → view | flips | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    for i, ms in enumerate(per_server):
        print(row(f"server {i + 1}", ms))
    print(row(f"every server ({servers})", every))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flips", type=int, default=500)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--server", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server:
        asyncio.run(server(args.server))
    else:
        asyncio.run(bench(min(args.flips, 100_000), args.servers))


if __name__ == "__main__":
    main()
