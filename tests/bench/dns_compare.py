"""Benchmark: gslb answering beside PowerDNS (LUA records), gdnsd and Knot DNS
(issues 7, 19). Not part of the test run.

    .venv/bin/python -m tests.bench.dns_compare [--only gslb,pdns,pdns-shared,gdnsd,knot]
        [--rounds 2] [--duration 2] [--names 6] [--pool-size 2] [--flip]
        [--query-names mix|all] [--ecs 81.2.69.0/24] [--json PATH]

Starts the HTTP origins (aiohttp, this process), then gslb, PowerDNS 4.7
(bind backend + LUA records; ``pdns`` with ``enable-lua-records=yes``,
``pdns-shared`` with ``=shared``), gdnsd 3.8 and Knot DNS 3.2 (``knot``,
``mod-geoip``), each on its own loopback address with an equivalent zone
(``tests/bench/dns_servers.py``), every server pinned to CPU 0 and dnsperf
(and this process) to CPU 1. Knot has no health checks: it serves and is
queried on ``www api static ns1`` only (``db`` and ``all`` n/a), and
``gslb-knotmix`` is gslb queried on those same names, the row Knot's ratios
are to. It waits until every server gives the expected answers on its names
(``www`` the located origin, ``db`` the first origin, ``all`` both, the
static names), then:

1. in turn, per server: one unthrottled dnsperf run (at most
   ``--outstanding`` queries in flight, so the rate settles at what the
   server, or dnsperf, can do); if it lost any query, a bisection of
   dnsperf's ``-Q`` rate below it for the highest rate with 0 lost
   (``--steps`` runs). The peak is the QPS dnsperf achieved in that run;
2. ``--rounds`` interleaved rounds (the server order rotates each round),
   per server: a run at its lossless peak rate (answered queries and server
   CPU seconds from ``/proc/PID/stat``), a run at 80 % of it (loss), and a
   run at ``--latency-rate`` (1,000 QPS) with ``dnsperf -v`` (per-query
   latency).

Every query carries ECS (``dnsperf -E 8:<hex>``). With ``--flip`` the first
failover origin's HTTP check flips between 200 and 503 every ``--flip-every``
seconds during phases 1 and 2, and a watcher queries ``db`` on every server
10 times a second to count the answer changes each one shows. Every dnsperf
run is bounded (``-l`` seconds plus a 1 s timeout); the whole run is bounded
by ``--max-time`` seconds. Prints one markdown table; ``--json`` also writes
the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rdatatype
import maxminddb

from tests.bench.dns_servers import (
    GEO_ADDR,
    GEO_CONTINENTS,
    GEO_COUNTRIES,
    GEO_DEFAULT,
    MIX,
    NOT_SERVED,
    ZONE,
    BenchError,
    Origins,
    Server,
    Zone,
    free_port,
    mix_of,
)

log = logging.getLogger("gslb.bench")

KINDS = ("gslb", "gslb-noext", "gslb-nocache", "pdns", "pdns-shared", "gdnsd", "knot",
         "gslb-knotmix")
"""The default servers (``gslb-noext``: gslb on its pure-Python packet path,
``GSLB_NO_EXT=1``); ``knot`` and ``gslb-knotmix`` are queried on
:data:`tests.bench.dns_servers.KNOT_MIX` only (the names Knot can serve)."""
EXTRA_KINDS = ("gslb-rrl",)
"""Servers run only when named in ``--only`` (``gslb-rrl``: gslb with a
``rate_limit`` section no query reaches: the cost of the bookkeeping)."""
ROOT = Path(__file__).resolve().parents[2]


def cpu_busy(cpu: int | None) -> tuple[int, int]:
    """(busy, total) jiffies of ``cpu`` so far from ``/proc/stat`` (all CPUs
    when None); busy is everything but idle and iowait."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{'' if cpu is None else cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return sum(v) - v[3] - v[4], sum(v)
    return 0, 1


def ecs_option(subnet: str) -> str:
    """dnsperf's ``-E`` value for an ECS option (RFC 7871 §6): ``8:<hex>`` of
    family, source prefix length, scope 0 and the truncated address."""
    net = ipaddress.ip_network(subnet, strict=False)
    family = 1 if net.version == 4 else 2
    addr = net.network_address.packed[: (net.prefixlen + 7) // 8]
    return f"8:{family:04x}{net.prefixlen:02x}00{addr.hex()}"


@dataclass
class Run:
    """One dnsperf run: queries ``sent``/``completed``/``lost``, achieved
    ``qps`` (dnsperf's "Queries per second"), server CPU seconds ``cpu_s``
    over the run, ``client_busy`` (fraction of the client CPU busy),
    ``response_bytes`` (mean response size), ``rcodes`` counts, per-query
    ``latency_ms`` (``-v`` only)."""

    rate: int | None
    sent: int
    completed: int
    lost: int
    qps: float
    cpu_s: float
    client_busy: float
    response_bytes: float
    rcodes: dict[str, int] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)

    @property
    def qps_per_cpu_s(self) -> float:
        """Answered queries per server CPU-second."""
        return self.completed / self.cpu_s if self.cpu_s > 0 else float("nan")


@dataclass
class Result:
    """A server's figures (see ``docs/performance.md`` for each column)."""

    kind: str
    start_s: float = 0.0
    ceiling_qps: float = 0.0
    ceiling_lost_pct: float = 0.0
    peak_rate: int = 0
    peak_qps: float = 0.0
    qps_per_cpu_s: float = 0.0
    server_cpu_pct: float = 0.0
    client_cpu_pct: float = 0.0
    peak_lost_max: int = 0
    loss80_max: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    latency_lost: int = 0
    bad_rcodes: int = 0
    rss_mib: float = 0.0
    db_changes: int = 0
    runs: list[dict] = field(default_factory=list)


class Bench:
    """One benchmark run over ``servers`` (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, servers: list[Server], origins: Origins,
                 queries: Path) -> None:
        self.args, self.servers, self.origins, self.queries = args, servers, origins, queries
        self.results = {s.kind: Result(s.kind) for s in servers}
        self.flips = 0
        self.ecs = ecs_option(args.ecs)
        self.extra_args: list[str] = []
        """More dnsperf options for every run (``dnssec_compare``: ``-D``, DO=1)."""
        self.queries_of: dict[str, Path] = {}
        """A server kind's own query file, when not ``queries`` (Knot's names)."""

    async def dnsperf(self, server: Server, rate: int | None, verbose: bool = False) -> Run:
        """Run dnsperf once against ``server`` at ``rate`` QPS (None: as fast
        as ``-q`` outstanding queries allow); raises ``BenchError`` on failure."""
        duration = self.args.duration
        queries = self.queries_of.get(server.kind, self.queries)
        argv = ["dnsperf", "-s", server.addr, "-p", str(server.port), "-d", str(queries),
                "-l", str(duration), "-t", "1", "-c", str(self.args.clients), "-T", "1",
                "-b", "4096",
                "-q", str(self.args.outstanding),
                "-E", self.ecs, *self.extra_args]
        if rate is not None:
            argv += ["-Q", str(rate)]
        if verbose:
            argv.append("-v")
        if self.args.client_cpu is not None:
            argv = ["taskset", "-c", str(self.args.client_cpu), *argv]
        if server.proc is None or server.proc.returncode is not None:
            raise BenchError(f"{server.kind} is not running:\n{server.log_tail()}")
        cpu0, busy0 = server.cpu_s(), cpu_busy(self.args.client_cpu)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), duration + 15)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        cpu = server.cpu_s() - cpu0
        busy1 = cpu_busy(self.args.client_cpu)
        client = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
        text = out.decode(errors="replace")
        stats = dict(re.findall(r"^\s+(Queries \w+|Queries per second):\s+([\d.]+)", text, re.M))
        if proc.returncode != 0 or "Queries sent" not in stats:
            raise BenchError(f"dnsperf failed ({proc.returncode}): {' '.join(argv)}\n{text[-800:]}")
        rcodes = {code: int(n) for code, n in re.findall(r"(\w+) (\d+) \([\d.]+%\)",
                                                        text.split("Response codes:")[-1]
                                                        .split("\n")[0])}
        size = re.search(r"Average packet size:.*response (\d+)", text)
        latency = [float(m) * 1000 for m in re.findall(r"^> \w+ \S+ \S+ ([\d.]+)$", text, re.M)]
        run = Run(rate, int(stats["Queries sent"]), int(stats["Queries completed"]),
                  int(stats["Queries lost"]), float(stats["Queries per second"]), cpu, client,
                  float(size.group(1)) if size else 0.0, rcodes, latency)
        log.info("%-11s rate %-7s sent %7d lost %5d qps %9.0f server %.2f CPU-s, client "
                 "CPU %3.0f %%%s", server.kind, rate or "max", run.sent, run.lost, run.qps, cpu,
                 100 * client,
                 f" p50 {statistics.median(latency):.3f} ms" if latency else "")
        if set(rcodes) - {"NOERROR"}:
            log.warning("%s answered %s", server.kind, rcodes)
        self.results[server.kind].runs.append(
            {k: v for k, v in asdict(run).items() if k != "latency_ms"})
        return run

    async def find_peak(self, server: Server) -> None:
        """Phase 1: one unthrottled run (``--outstanding`` queries in flight);
        if it lost queries, bisect ``-Q`` below it for the highest lossless rate."""
        res = self.results[server.kind]
        top = await self.dnsperf(server, None)
        res.ceiling_qps = top.qps
        res.ceiling_lost_pct = 100 * top.lost / max(top.sent, 1)
        best, good, bad = (top, 0, 0) if top.lost == 0 else (None, 0, int(top.qps))
        for _ in range(self.args.steps if best is None else 0):
            rate = (good + bad) // 2 if good else int(bad * 0.9)
            run = await self.dnsperf(server, rate)
            if run.lost == 0:
                good, best = rate, run
            else:
                bad = rate
            if bad - good <= max(good // 50, 50):
                break
        res.peak_qps = best.qps if best else 0.0
        res.peak_rate = int(best.qps) if best else 0

    async def round(self, server: Server) -> tuple[Run | None, list[float], int]:
        """Phase 2 for one server: runs at the peak rate, at 80 % of it, and at
        the latency rate; returns (peak run, latencies in ms, latency-run loss)."""
        res = self.results[server.kind]
        peak = await self.dnsperf(server, res.peak_rate) if res.peak_rate else None
        if peak:
            res.peak_lost_max = max(res.peak_lost_max, peak.lost)
            res.bad_rcodes += sum(n for c, n in peak.rcodes.items() if c != "NOERROR")
        if res.peak_rate:
            eighty = await self.dnsperf(server, max(int(res.peak_rate * 0.8), 1))
            res.loss80_max = max(res.loss80_max, eighty.lost)
        lat = await self.dnsperf(server, self.args.latency_rate, verbose=True)
        return peak, lat.latency_ms, lat.lost

    async def flipper(self) -> None:
        """Flip the first failover origin's health every ``--flip-every`` s."""
        first = self.origins.addrs[0]
        while True:
            await asyncio.sleep(self.args.flip_every)
            self.origins.up[first] = not self.origins.up[first]
            self.flips += 1
            log.info("flip: origin %s now %s", first, "up" if self.origins.up[first] else "down")

    async def watcher(self) -> None:
        """Count each server's ``db`` answer changes (10 queries a second)."""
        last: dict[str, frozenset[str]] = {}
        query = dns.message.make_query(f"db.{ZONE}.", dns.rdatatype.A)
        while True:
            for s in self.servers:
                if "db" not in mix_of(s.kind):
                    continue
                with contextlib.suppress(Exception):
                    reply = await dns.asyncquery.udp(query, s.addr, port=s.port, timeout=0.5)
                    addrs = frozenset(r.address for rrset in reply.answer for r in rrset)
                    if s.kind in last and addrs != last[s.kind]:
                        self.results[s.kind].db_changes += 1
                    last[s.kind] = addrs
            await asyncio.sleep(0.1)

    async def run(self) -> None:
        """Phases 1 and 2; fills ``self.results``."""
        tasks = [asyncio.create_task(self.flipper()), asyncio.create_task(self.watcher())] \
            if self.args.flip else []
        try:
            for s in self.servers:
                await self.find_peak(s)
            peaks: dict[str, list[Run]] = {s.kind: [] for s in self.servers}
            lats: dict[str, list[float]] = {s.kind: [] for s in self.servers}
            for r in range(self.args.rounds):
                order = self.servers[r % len(self.servers):] + self.servers[:r % len(self.servers)]
                for s in order:
                    peak, lat, lost = await self.round(s)
                    if peak:
                        peaks[s.kind].append(peak)
                    lats[s.kind] += lat
                    self.results[s.kind].latency_lost += lost
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for s in self.servers:
            res = self.results[s.kind]
            if peaks[s.kind]:
                res.qps_per_cpu_s = statistics.median(r.qps_per_cpu_s for r in peaks[s.kind])
                res.server_cpu_pct = 100 * statistics.median(
                    r.cpu_s / self.args.duration for r in peaks[s.kind])
                res.client_cpu_pct = 100 * statistics.median(
                    r.client_busy for r in peaks[s.kind])
            if len(lats[s.kind]) >= 2:
                q = statistics.quantiles(lats[s.kind], n=100)
                res.p50_ms, res.p99_ms = q[49], q[98]
            res.rss_mib = s.rss_mb()


async def wait_ready(server: Server, deadline_s: float) -> float:
    """Wait until ``server`` answers ``static``; returns the seconds since it
    was started. Raises ``BenchError`` if the daemon exits or ``deadline_s``
    seconds pass."""
    t0 = server.started_at
    query = dns.message.make_query(f"static.{ZONE}.", dns.rdatatype.A)
    while time.monotonic() - t0 < deadline_s:
        assert server.proc is not None
        if server.proc.returncode is not None:
            raise BenchError(f"{server.kind} exited ({server.proc.returncode}):\n"
                             f"{server.log_tail()}")
        with contextlib.suppress(Exception):
            await dns.asyncquery.udp(query, server.addr, port=server.port, timeout=0.1)
            return time.monotonic() - t0
        await asyncio.sleep(0.1)
    raise BenchError(f"{server.kind} not answering after {deadline_s:.0f} s:\n{server.log_tail()}")


def expected_geo(mmdb: Path, subnet: str) -> str:
    """The ``www`` answer (address) every server should give for ``subnet``:
    its country's, else its continent's, else the default origin."""
    with maxminddb.open_database(str(mmdb)) as reader:
        rec = reader.get(str(ipaddress.ip_network(subnet, strict=False).network_address)) or {}
    cc = (rec.get("country") or {}).get("iso_code")
    cont = (rec.get("continent") or {}).get("code")
    name = GEO_COUNTRIES.get(cc) or GEO_CONTINENTS.get(cont) or GEO_DEFAULT
    return GEO_ADDR[name]


async def wait_settled(servers: list[Server], zone: Zone, ecs: str, deadline_s: float) -> None:
    """Wait until every server gives the expected answers with ECS ``ecs``:
    ``www`` the located origin, ``db`` the first checked origin, ``all`` the
    first two (PowerDNS only starts checking a name when first asked), the
    static names their addresses; each server on its own names
    (:func:`tests.bench.dns_servers.mix_of`). Raises ``BenchError`` after ``deadline_s``."""
    every = {"www": {expected_geo(zone.mmdb, ecs)}, "db": {zone.checked[0]},
            "all": set(zone.checked[:2]), "static": {"192.0.2.10"}, "ns1": {zone.ns_addr}}
    net = ipaddress.ip_network(ecs, strict=False)
    option = dns.edns.ECSOption(str(net.network_address), net.prefixlen)
    t0 = time.monotonic()
    pending = {s.kind: s for s in servers}
    got: dict[str, dict[str, set[str]]] = {}
    while pending and time.monotonic() - t0 < deadline_s:
        for s in list(pending.values()):
            got[s.kind] = {}
            for name in every:
                if name not in mix_of(s.kind):
                    continue
                q = dns.message.make_query(f"{name}.{ZONE}.", dns.rdatatype.A, use_edns=0,
                                           options=[option])
                with contextlib.suppress(Exception):
                    reply = await dns.asyncquery.udp(q, s.addr, port=s.port, timeout=0.5)
                    got[s.kind][name] = {r.address for rrset in reply.answer for r in rrset}
            if got[s.kind] == {n: a for n, a in every.items() if n in mix_of(s.kind)}:
                del pending[s.kind]
        await asyncio.sleep(0.2)
    if pending:
        bad = {k: got.get(k) for k in pending}
        raise BenchError(f"unexpected answers after {deadline_s:.0f} s (want {every}): {bad}")


def versions() -> dict[str, str]:
    """Versions of the daemons and dnsperf, as their own banners say."""
    out = {}
    for name, argv, pat in (("dnsperf", ["dnsperf", "-h"], r"Version ([\d.]+)"),
                            ("pdns", ["pdns_server", "--version"], r"Server ([\d.]+)"),
                            ("gdnsd", ["gdnsd", "-h"], r"gdnsd version ([\d.]+)"),
                            ("knot", ["knotd", "--version"], r"version ([\d.]+)")):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            text = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            m = re.search(pat, text.stdout + text.stderr)
            out[name] = m.group(1) if m else "?"
    return out


def table(results: list[Result], flip: bool, flips: int) -> str:
    """The markdown table; each figure with its ratio to gslb's in brackets
    (Knot's to ``gslb-knotmix``'s, the same names)."""
    by = {r.kind: r for r in results}

    def cell(r: Result, attr: str, fmt: str) -> str:
        base = by.get("gslb-knotmix" if r.kind == "knot" else "gslb")
        v = getattr(r, attr)
        b = getattr(base, attr) if base else None
        ratio = f" (×{v / b:.2f})" if b and r is not base and v == v and b == b else ""
        return format(v, fmt) + ratio

    head = ["server", "lossless peak QPS", "QPS per CPU-s", "p50 ms @ rate", "p99 ms @ rate",
            "lost @ peak / 80 %", "CPU % server / client", "RSS MiB", "start s"]
    if flip:
        head.append(f"db changes ({flips} flips)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        row = [r.kind, cell(r, "peak_qps", ",.0f"), cell(r, "qps_per_cpu_s", ",.0f"),
               cell(r, "p50_ms", ".3f"), cell(r, "p99_ms", ".3f"),
               f"{r.peak_lost_max} / {r.loss80_max}",
               f"{r.server_cpu_pct:.0f} / {r.client_cpu_pct:.0f}", f"{r.rss_mib:.0f}",
               f"{r.start_s:.1f}"]
        if flip:
            row.append(str(r.db_changes) if "db" in mix_of(r.kind) else "n/a")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def preflight(args: argparse.Namespace, known: tuple[str, ...],
              extra: tuple[str, ...]) -> tuple[Path, list[str], float]:
    """What every benchmark of this kind checks first: dnsperf installed,
    the client pinned (``--client-cpu``), the mmdb there (``--geoip``), a
    warning when the machine is busy; returns the mmdb, the server kinds
    of ``--only`` and the one-minute load average. Raises ``BenchError``
    naming what is missing, or a kind neither in ``known`` nor in
    ``extra``."""
    if not shutil.which("dnsperf"):
        raise BenchError("dnsperf not found: apt-get install -y dnsperf")
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    mmdb = Path(args.geoip).resolve()
    if not mmdb.exists():
        raise BenchError(f"{mmdb} missing: .venv/bin/gslb geoip build --if-missing")
    load1 = float(Path("/proc/loadavg").read_text().split()[0])
    if load1 > 0.5:
        log.warning("load average %.2f: other processes share the CPUs; figures will be noisy",
                    load1)
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    if unknown := set(kinds) - set(known) - set(extra):
        raise BenchError(f"unknown server(s) {sorted(unknown)}; choose from "
                         f"{', '.join(known + extra)}")
    return mmdb, kinds, load1


async def bench(args: argparse.Namespace) -> dict:
    """Set up, run and tear down; returns the JSON-able report."""
    mmdb, kinds, load1 = preflight(args, KINDS, EXTRA_KINDS)
    workdir = Path(tempfile.mkdtemp(prefix="gslb-dns-compare-"))
    zone = Zone(names=max(args.names, len(MIX)), pool_size=args.pool_size,
                origin_port=free_port("127.0.11.1"), mmdb=mmdb)
    names = [f"{n}.{ZONE}" for n in MIX]
    if args.query_names == "all":
        fillers = [f"{n}.{ZONE}" for n, _ in zone.fillers()]
        random.Random(7).shuffle(fillers)
        names += fillers
    queries = workdir / "queries.txt"
    queries.write_text("".join(f"{n} A\n" for n in names))
    knot_queries = workdir / "queries-knot.txt"  # Knot's names (no fillers: no such zone)
    knot_queries.write_text("".join(f"{n}.{ZONE} A\n" for n in mix_of("knot")))
    servers = []
    for i, kind in enumerate(kinds):
        addr = f"127.0.10.{i + 1}"
        s = Server(kind, addr, free_port(addr), workdir / kind, args.server_cpu,
                   workers=args.gslb_workers)
        s.write_config(zone)  # raises BenchError when a binary is missing
        servers.append(s)
    origins = Origins(zone.checked, zone.origin_port)
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "options": vars(args),
                    "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                                "cpu": _cpu_model(), "load1": load1},
                    "versions": versions()}
    bench_ = None
    try:
        await origins.start()
        for s in servers:
            await s.start()
        starts = await asyncio.gather(*(wait_ready(s, args.start_timeout) for s in servers))
        report["start_s"] = {s.kind: t for s, t in zip(servers, starts, strict=True)}
        log.info("answering after (s): %s", report["start_s"])
        await wait_settled(servers, zone, args.ecs, 20)
        bench_ = Bench(args, servers, origins, queries)
        bench_.queries_of = {s.kind: knot_queries for s in servers if mix_of(s.kind) != MIX}
        for s in servers:
            bench_.results[s.kind].start_s = report["start_s"][s.kind]
        await bench_.run()
    finally:
        for s in servers:
            await s.stop()
        await origins.stop()
        if args.keep:
            log.warning("configs and logs kept in %s", workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results = list(bench_.results.values())
    report["flips"] = bench_.flips
    report["results"] = [asdict(r) for r in results]
    report["table"] = table(results, args.flip, bench_.flips)
    return report


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


async def _main(args: argparse.Namespace) -> dict:
    """``bench`` bounded by ``--max-time``; SIGTERM cancels it (cleanup runs)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await asyncio.wait_for(bench(args), args.max_time)


def main() -> None:
    """Command line: parse options, run, print the table (exit 1 with a message on failure)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--only", default=",".join(KINDS), metavar="KIND,...",
      help=f"servers to run, in this order (default {','.join(KINDS)}; also "
           f"{','.join(EXTRA_KINDS)})")
    a("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    a("--duration", type=float, default=2.0, help="seconds per dnsperf run (default 2)")
    a("--steps", type=int, default=7, help="bisection runs per server (default 7)")
    a("--outstanding", type=int, default=100, help="dnsperf -q: queries in flight at most "
      "(default 100; more overflows the servers' socket buffers in bursts)")
    a("--latency-rate", type=int, default=1000, help="QPS of the latency runs (default 1000)")
    a("--names", type=int, default=len(MIX), help="owner names in the zone (default 6)")
    a("--pool-size", type=int, default=2, help="origins in the weighted and failover pools "
      "(2..254, default 2)")
    a("--query-names", choices=("mix", "all"), default="mix",
      help="query the 6-name mix (default) or the mix and every filler name")
    a("--flip", action="store_true", help="flip the first failover origin during the runs")
    a("--flip-every", type=float, default=6.0, help="seconds between flips (default 6)")
    a("--ecs", default="81.2.69.0/24", help="client subnet sent as ECS (default: a GB /24)")
    a("--geoip", default=str(ROOT / "geoip" / "country.mmdb"), help="country mmdb")
    a("--server-cpu", default="0", help="CPU the servers are pinned to, or a taskset list "
      "such as 0,1 (default 0)")
    a("--gslb-workers", type=int, default=1, metavar="N",
      help="gslb serve --workers N for the gslb servers (default 1: one process)")
    a("--clients", type=int, default=1, metavar="N",
      help="dnsperf -c: client sockets, each its own source port (default 1; the kernel "
           "spreads queries over --gslb-workers by source port)")
    a("--client-cpu", type=int, default=1, help="CPU of dnsperf and this process (default 1)")
    a("--no-pin", action="store_true", help="pin nothing")
    a("--start-timeout", type=float, default=120, help="seconds a server may take to start")
    a("--max-time", type=float, default=900, help="bound on the whole run, seconds (900)")
    a("--json", metavar="PATH", help="also write the report as JSON")
    a("--keep", action="store_true", help="keep the temp dir of configs and logs")
    a("-q", "--quiet", action="store_true", help="log only warnings (not every dnsperf run)")
    args = parser.parse_args()
    if not 2 <= args.pool_size <= 254:
        parser.error("--pool-size must be 2..254")
    if args.no_pin or (os.cpu_count() or 1) < 2:
        args.server_cpu = args.client_cpu = None
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        report = asyncio.run(_main(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("dns_compare: interrupted; every server stopped")
    except BenchError as e:
        sys.exit(f"dns_compare: {e}")
    except TimeoutError:
        sys.exit(f"dns_compare: not done within --max-time {args.max_time:.0f} s")
    v = report["versions"]
    print(f"{report['date']}; {report['machine']['cpus']} × {report['machine']['cpu']}, "
          f"Linux {report['machine']['kernel']}, load average {report['machine']['load1']:.2f} "
          f"before the run; dnsperf {v.get('dnsperf')}, PowerDNS {v.get('pdns')}, gdnsd "
          f"{v.get('gdnsd')}, Knot DNS {v.get('knot')}; names {args.names}, pool size "
          f"{args.pool_size}, queries {args.query_names}, ECS {args.ecs}, "
          f"{'flip every ' + str(args.flip_every) + ' s' if args.flip else 'no flip'}, "
          f"{args.rounds} rounds of {args.duration} s runs, latency at {args.latency_rate} QPS"
          + (f"; gslb --workers {args.gslb_workers}, dnsperf -c {args.clients}, servers on "
             f"CPU {args.server_cpu}, dnsperf on CPU {args.client_cpu}"
             if args.gslb_workers > 1 or args.clients > 1 else ""))
    print()
    print(report["table"])
    if few := [r["kind"] for r in report["results"] if mix_of(r["kind"]) != MIX]:
        print()
        print(f"{', '.join(few)}: queried on "
              f"{' '.join(mix_of('knot'))} only; Knot: "
              + "; ".join(f"{n} {why}" for n, why in NOT_SERVED.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
