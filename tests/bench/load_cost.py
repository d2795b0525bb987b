"""What a big zone costs to load: seconds to read and build, resident memory.

Usage (from the repository root; needs ``geoip/country.mmdb``, made by
``.venv/bin/gslb geoip build --if-missing``)::

    .venv/bin/python -m tests.bench.load_cost [--names 100000] [--runs 1]
        [--mmdb geoip/country.mmdb] [--loops 20000] [--timeout 300] [--json PATH]

It writes the zone of ``tests.bench.dns_compare --names N`` (``Zone.gslb_yaml``
of ``tests/bench/dns_servers.py``: the six-name mix, then filler names,
alternately a static A and a ``weighted`` GSLB name) to a temporary file, then,
``--runs`` times, measures in a fresh Python subprocess (nothing imported or
cached beforehand; killed after ``--timeout`` seconds):

* ``import s``: importing ``gslb.serve.service`` (and with it everything ``gslb
  serve`` loads);
* ``load s``: ``gslb.config.load.load([path])``;
* ``build s``: ``gslb.serve.service.Service(config, ...)`` with the mmdb (the
  ``Authority`` and steering built, no socket bound, nothing started);
* ``RSS MiB``: ``VmRSS`` from ``/proc/self/status`` after the load and after
  the build (``peak MiB``: ``VmHWM``, the most resident at any time);
* ``answers/s``: ``--loops`` calls of ``gslb.authority.respond`` on one
  prepared query each (a static filler name, a weighted filler name, a name
  that does not exist), through the service's authority (answer cache on, as
  served) and through one built with ``cache_entries=0`` (every call a
  lookup and an encode).

With ``--serve`` it also starts ``python -m gslb serve`` on the zone (UDP and
TCP on a free 127.0.0.1 port, ``--no-admin``; the two health-checked origins
of the zone are not running, so their checks fail, as they would): ``serve
start s`` is the time from exec to the first answer (one A query every
50 ms), ``serve RSS MiB`` its ``VmRSS`` then. The server is stopped by its PID.

No CPU is pinned and nothing but that one optional server opens a socket: it
can run beside other benchmarks, whose load it shares (rerun and compare
within one sitting).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.dns_servers import ZONE, Zone

ROOT = Path(__file__).resolve().parents[2]


def _status_mib(field: str) -> float:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _query(qname: str, qid: int = 0x1234) -> bytes:
    """A plain A query for ``qname`` (no EDNS), as a stub resolver sends it."""
    wire = b"".join(bytes((len(label),)) + label.encode()
                    for label in qname.rstrip(".").split(".")) + b"\0"
    return qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + wire + \
        b"\x00\x01\x00\x01"


def child(path: str, mmdb: str, loops: int) -> dict[str, float]:
    """Measure in this (fresh) process; returns the figures."""
    t0 = time.perf_counter()
    import gslb.serve.service
    from gslb.authority import Authority, respond
    from gslb.config.load import load
    t1 = time.perf_counter()
    config = load([path])
    t2 = time.perf_counter()
    rss_load = _status_mib("VmRSS")
    service = gslb.serve.service.Service(config, [("127.0.0.1", 0)], geoip=mmdb)
    t3 = time.perf_counter()
    out = {"import_s": t1 - t0, "load_s": t2 - t1, "build_s": t3 - t2,
           "rss_load_mib": rss_load, "rss_mib": _status_mib("VmRSS"),
           "peak_mib": _status_mib("VmHWM")}
    uncached = Authority(config, service.view, service.geo.locate if service.geo else None,
                         cache_entries=0)
    names = {"static": f"n0.{ZONE}.", "weighted": f"n1.{ZONE}.", "nxdomain": f"nope.{ZONE}."}
    for label, authority in (("cached", service.answering.authority), ("uncached", uncached)):
        for kind, qname in names.items():
            data = _query(qname)
            assert respond(authority, data, "192.0.2.1", True) is not None
            start = time.perf_counter()
            for _ in range(loops):
                respond(authority, data, "192.0.2.1", True)
            out[f"{label}_{kind}_qps"] = loops / (time.perf_counter() - start)
    return out


def serve(path: Path, mmdb: Path, timeout: float) -> dict[str, float]:
    """Start ``gslb serve`` on ``path``; seconds to the first answer, and its RSS."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "gslb", "serve", "--config", str(path), "--listen",
            f"127.0.0.1:{port}", "--geoip", str(mmdb), "--no-admin"]
    query = _query(f"static.{ZONE}.")
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(0.05)
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"gslb serve exited with status {proc.returncode}")
                if time.monotonic() - start > timeout:
                    raise SystemExit(f"gslb serve gave no answer within {timeout:g} s")
                client.sendto(query, ("127.0.0.1", port))
                try:
                    if client.recv(4096)[:2] == query[:2]:
                        break
                except (TimeoutError, ConnectionRefusedError):
                    continue
        started = time.monotonic() - start
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:")) / 1024
        return {"serve_start_s": started, "serve_rss_mib": rss}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def run(names: int, mmdb: Path, loops: int, runs: int, timeout: float,
        with_serve: bool = False) -> list[dict[str, float]]:
    """Write the zone and measure it ``runs`` times, each in a fresh subprocess
    (and, ``with_serve``, one ``gslb serve`` each)."""
    zone = Zone(names=names, pool_size=2, origin_port=8080, mmdb=mmdb)
    results = []
    with tempfile.TemporaryDirectory(prefix="gslb-load-cost-") as tmp:
        path = Path(tmp) / "gslb.yaml"
        path.write_text(zone.gslb_yaml())
        for _ in range(runs):
            proc = subprocess.run(
                [sys.executable, "-m", "tests.bench.load_cost", "--child", str(path),
                 "--mmdb", str(mmdb), "--loops", str(loops)],
                cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"measuring process failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            if with_serve:
                results[-1].update(serve(path, mmdb, timeout))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--names", type=int, default=100_000, help="owner names (default 100000)")
    p.add_argument("--mmdb", type=Path, default=ROOT / "geoip" / "country.mmdb")
    p.add_argument("--loops", type=int, default=20_000, help="respond calls per query")
    p.add_argument("--runs", type=int, default=1, help="fresh processes (median reported)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per process")
    p.add_argument("--json", type=Path, help="also write every run's figures here")
    p.add_argument("--serve", action="store_true", help="also time gslb serve to its first answer")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, str(args.mmdb), args.loops)))
        return
    if not args.mmdb.exists():
        raise SystemExit(f"{args.mmdb} is missing: .venv/bin/gslb geoip build --if-missing")
    results = run(args.names, args.mmdb, args.loops, args.runs, args.timeout, args.serve)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"{args.names} names, {args.runs} run(s), median:")
    for key in results[0]:
        print(f"  {key:26} {statistics.median(r[key] for r in results):12.3f}")


if __name__ == "__main__":
    main()
