"""Does a reload of a big zone stop ``gslb serve`` (one process) answering?

Usage (from the repository root; needs ``geoip/country.mmdb``, made by
``.venv/bin/gslb geoip build --if-missing``)::

    .venv/bin/python -m tests.bench.reload_stall [--names 100000] [--rate 500]
        [--reloads 3] [--mmdb geoip/country.mmdb] [--json PATH]

It writes the zone of ``tests.bench.dns_compare --names N`` (as
``tests.bench.load_cost`` does), starts ``python -m gslb serve --workers 1``
on it (UDP on a free 127.0.0.1 port, the admin server on another), then
sends A queries at a steady ``--rate`` per second (a static filler name, a
weighted filler name and a missing name in turn, from one socket) and, after
2 s of quiet, asks ``POST /api/v1/reload`` ``--reloads`` times, 2 s apart.
Per query it records the time from send to answer (a query unanswered after
2 s counts as lost). It prints, for the queries sent while a reload ran
(from the request to its response) and for those sent in the quiet second
before the first reload: how many, p50, p99 and max latency in
milliseconds, and how many were lost; and how long each reload took.

No CPU is pinned; the client shares the machine with the server (rerun and
compare within one sitting).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import dns.message

from tests.bench.dns_servers import ZONE, Zone

ROOT = Path(__file__).resolve().parents[2]
LOST_AFTER_S = 2.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Client(asyncio.DatagramProtocol):
    """Sends queries at a steady rate; ``sent[i]`` and ``answered[i]`` are
    the monotonic send and answer times of query ``i``."""

    def __init__(self, names: list[str]) -> None:
        self.wires = [dns.message.make_query(f"{n}.{ZONE}.", "A").to_wire() for n in names]
        self.sent: list[float] = []
        self.answered: dict[int, float] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.monotonic()
        qid = int.from_bytes(data[:2], "big")
        # the ID is the query's index mod 65536: the newest query with it
        i = len(self.sent) - 1 - ((len(self.sent) - 1 - qid) % 65536)
        if i >= 0 and i not in self.answered:
            self.answered[i] = now

    async def run(self, rate: float, stop: asyncio.Event) -> None:
        start = time.monotonic()
        while not stop.is_set():
            i = len(self.sent)
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            wire = self.wires[i % len(self.wires)]
            self.sent.append(time.monotonic())
            assert self.transport is not None
            self.transport.sendto((i % 65536).to_bytes(2, "big") + wire[2:])

    def window(self, t0: float, t1: float) -> dict[str, float]:
        """Latency figures (ms) of the queries sent in ``[t0, t1]``."""
        ms, lost = [], 0
        for i, t in enumerate(self.sent):
            if t0 <= t <= t1:
                if i in self.answered and self.answered[i] - t < LOST_AFTER_S:
                    ms.append(1000 * (self.answered[i] - t))
                else:
                    lost += 1
        ms.sort()
        if not ms:
            return {"queries": lost, "lost": lost}
        return {"queries": len(ms) + lost, "p50_ms": statistics.median(ms),
                "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))], "max_ms": ms[-1],
                "lost": lost}


def _reload(url: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(url + "/api/v1/reload", method="POST", data=b"{}",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


async def measure(names: int, rate: float, reloads: int, mmdb: Path) -> dict[str, Any]:
    zone = Zone(names=names, pool_size=2, origin_port=8080, mmdb=mmdb)
    fillers = zone.fillers()
    static = next(o for o, dynamic in fillers if not dynamic)
    weighted = next(o for o, dynamic in fillers if dynamic)
    with tempfile.TemporaryDirectory(prefix="gslb-reload-stall-") as tmp:
        path, token_path = Path(tmp) / "gslb.yaml", Path(tmp) / "token"
        path.write_text(zone.gslb_yaml())
        token_path.write_text("bench")
        port, admin = _free_port(), _free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gslb", "serve", "--config", str(path), "--geoip", str(mmdb),
            "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
            "--admin-token-file", str(token_path), "--workers", "1", cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            loop = asyncio.get_running_loop()
            client = _Client([static, weighted, "missing-name"])
            transport, _p = await loop.create_datagram_endpoint(
                lambda: client, remote_addr=("127.0.0.1", port))
            client.transport = transport
            while not client.answered:  # started: the first answer
                client.sent.append(time.monotonic())
                transport.sendto(((len(client.sent) - 1) % 65536).to_bytes(2, "big")
                                 + client.wires[0][2:])
                await asyncio.sleep(0.1)
                assert proc.returncode is None, "gslb serve exited"
            client.sent, client.answered = [], {}
            stop = asyncio.Event()
            sender = asyncio.create_task(client.run(rate, stop))
            await asyncio.sleep(2.0)
            quiet = (time.monotonic() - 1.0, time.monotonic())
            windows = []
            url = f"http://127.0.0.1:{admin}"
            for _ in range(reloads):
                t0 = time.monotonic()
                body = await asyncio.to_thread(_reload, url, "bench")
                t1 = time.monotonic()
                assert body.get("ok"), body
                windows.append((t0, t1))
                await asyncio.sleep(2.0)
            stop.set()
            await sender
            await asyncio.sleep(LOST_AFTER_S)
            transport.close()
        finally:
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGTERM)
                await proc.wait()
    during = [client.window(t0, t1) for t0, t1 in windows]
    return {"names": names, "rate": rate, "quiet": client.window(*quiet),
            "reload_s": [round(t1 - t0, 3) for t0, t1 in windows], "during": during}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--names", type=int, default=100_000, help="owner names (default 100000)")
    p.add_argument("--rate", type=float, default=500.0, help="queries per second (default 500)")
    p.add_argument("--reloads", type=int, default=3, help="reloads (default 3)")
    p.add_argument("--mmdb", type=Path, default=ROOT / "geoip" / "country.mmdb")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    if not args.mmdb.exists():
        raise SystemExit(f"{args.mmdb} is missing: .venv/bin/gslb geoip build --if-missing")
    result = asyncio.run(measure(args.names, args.rate, args.reloads, args.mmdb))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"{args.names} names, {args.rate:.0f} queries/s")
    rows = [("quiet second before", result["quiet"], None)]
    rows += [(f"during reload {i + 1}", w, s)
             for i, (w, s) in enumerate(zip(result["during"], result["reload_s"], strict=True))]
    print(f"  {'':22} {'reload s':>8} {'queries':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'lost':>6}")
    for label, w, s in rows:
        print(f"  {label:22} {'' if s is None else f'{s:.2f}':>8} {w['queries']:8d} "
              f"{w.get('p50_ms', float('nan')):8.2f} {w.get('p99_ms', float('nan')):8.2f} "
              f"{w.get('max_ms', float('nan')):8.2f} {w['lost']:6d}")


if __name__ == "__main__":
    main()
