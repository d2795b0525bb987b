"""Benchmark: the cost of DNSSEC online signing, gslb beside PowerDNS and Knot DNS
(issue 17). Not part of the test run.

    .venv/bin/python -m tests.bench.dnssec_compare [--only KIND,...]
        [--rounds 2] [--duration 2] [--steps 7] [--ecs 81.2.69.0/24] [--json PATH]

Every query carries DO=1 (``dnsperf -D``) and ECS (``-E``), on the zone of
``tests/bench/dns_servers.py`` (``bench.test``). The servers (``--only``, in order):

* ``gslb``: the zone without ``dnssec:`` (the baseline: DO=1, unsigned answers);
* ``gslb-signed``: the same zone with a ``dnssec:`` section, its key made by
  ``gslb dnssec keygen`` (ECDSAP256SHA256); both with the answer cache on;
* ``pdns-signed`` / ``pdns-shared-signed``: PowerDNS 4.7, bind backend, the
  same LUA records (``enable-lua-records=yes`` / ``=shared``), the zone
  secured with ``pdnsutil secure-zone`` in a ``bind-dnssec-db`` (gsqlite3),
  so every answer, LUA ones included, is signed live;
* ``knot-signed``: Knot DNS 3.2 with ``mod-geoip`` (``www`` by country and
  continent from the same mmdb, by ECS; ``api`` in its ``weighted`` mode) and
  ``mod-onlinesign`` (ECDSAP256SHA256). Knot has no health checks, so ``db``
  (failover) and ``all`` (every healthy origin) are not served: Knot is
  queried on its own mix ``www api static ns1`` and the other names are n/a;
* ``gslb-signed-knotmix``: gslb signed queried on Knot's mix, the figure to
  set beside Knot's.

Also, when named in ``--only``: ``pdns-shared`` and ``knot``, the same
daemons with unsigned zones (DO=1 queries still), for their own cost of signing.

Before measuring, every server must give the expected answers (as
``dns_compare``) and, for every name of its mix, a DO=1 answer whose A RRset
has an RRSIG that validates (dnspython ``dns.dnssec``) with the zone's DNSKEY
as the server itself serves it (the signed servers; the unsigned baseline
must carry none); else the run stops with the failing server and name.
The measurement is ``dns_compare``'s (``Bench``): per server a lossless peak
(an unthrottled dnsperf run, then a bisection of ``-Q``), then ``--rounds``
interleaved rounds of a run at the peak (QPS per server CPU-second), one at
80 % of it and one at ``--latency-rate`` (1,000 QPS, p50/p99). Prints the
answers checked and one markdown table; ``--json`` also writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import platform
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
import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import yaml

from tests.bench.dns_compare import (
    Bench,
    Result,
    Run,
    _cpu_model,
    expected_geo,
    preflight,
    versions,
    wait_ready,
)
from tests.bench.dns_servers import (
    MIX,
    NOT_SERVED,
    ZONE,
    BenchError,
    Origins,
    Server,
    Zone,
    _need,
    free_port,
    mix_of,
    write_knot,
)

log = logging.getLogger("gslb.bench")

KINDS = ("gslb", "gslb-signed", "pdns-signed", "pdns-shared-signed", "knot-signed",
         "gslb-signed-knotmix")
EXTRA_KINDS = ("pdns-shared", "knot")
"""Run only when named in ``--only``: PowerDNS (shared Lua state) and Knot
unsigned, each one's own cost of signing (DO=1 queries, unsigned zones)."""
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SignedServer(Server):
    """A ``Server`` of this benchmark: ``kind`` is one of :data:`KINDS` (the
    row's label); ``names`` the mix it is queried on; ``signed`` whether its
    DO=1 answers must carry RRSIGs; ``keybase`` the gslb key pair's basename
    (shared by every signed gslb)."""

    names: tuple[str, ...] = MIX
    signed: bool = True
    keybase: Path | None = None
    queries: Path | None = None

    def write_config(self, zone: Zone) -> None:
        """Write the config (and keys) into ``workdir``; set ``argv``.
        Raises ``BenchError`` when a binary is missing or a setup step fails."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.kind.startswith("gslb"):
            self._gslb(zone)
        elif self.kind.startswith("pdns"):
            self._pdns(zone)
        elif self.kind.startswith("knot"):
            self._knot(zone)
        else:
            raise BenchError(f"unknown server kind {self.kind!r}")
        self.queries = self.workdir / "queries.txt"
        self.queries.write_text("".join(f"{n}.{ZONE} A\n" for n in self.names))

    def _gslb(self, zone: Zone) -> None:
        base = Server("gslb", self.addr, self.port, self.workdir, self.cpu)
        base.write_config(zone)
        self.argv = base.argv
        if self.signed:
            assert self.keybase is not None
            cfg = yaml.safe_load((self.workdir / "gslb.yaml").read_text())
            cfg["zones"][ZONE]["dnssec"] = {"keys": [{"file": str(self.keybase),
                                                      "state": "active"}]}
            (self.workdir / "gslb.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    def _pdns(self, zone: Zone) -> None:
        base = Server("pdns-shared" if "shared" in self.kind else "pdns", self.addr, self.port,
                      self.workdir, self.cpu)
        base.write_config(zone)
        self.argv = base.argv
        if not self.signed:
            return
        db = self.workdir / "dnssec.db"
        with open(self.workdir / "pdns.conf", "a") as f:
            f.write(f"bind-dnssec-db={db}\n")
        hint = "apt-get install -y pdns-server pdns-backend-bind"
        pdnsutil = _need("pdnsutil", hint)  # its bind-dnssec-db is SQLite, built in
        conf = f"--config-dir={self.workdir}"
        for argv in ([pdnsutil, conf, "create-bind-db", str(db)],
                     [pdnsutil, conf, "secure-zone", ZONE]):
            _run(argv, hint)

    def _knot(self, zone: Zone) -> None:
        self.argv = write_knot(self.workdir, zone, self.addr, self.port, signed=self.signed)


def _run(argv: list[str], hint: str = "") -> str:
    """Run a set-up command (bounded: 60 s); its stdout, or ``BenchError``."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{' '.join(argv)}: {e}" + (f" ({hint})" if hint else "")) from e
    if out.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({out.returncode}):\n"
                         f"{(out.stdout + out.stderr)[-800:]}")
    return out.stdout


def gslb_keygen(out: Path) -> Path:
    """``gslb dnssec keygen --zone bench.test --out OUT``: the key pair's
    basename (Path). Raises ``BenchError`` when the command fails."""
    exe = Path(sys.executable).with_name("gslb")
    argv = [str(exe) if exe.exists() else _need("gslb"), "dnssec", "keygen", "--zone", ZONE,
            "--out", str(out)]
    text = _run(argv, "gslb without the DNSSEC signer?").strip().splitlines()
    if not text:
        raise BenchError(f"{' '.join(argv)} printed no key basename")
    return Path(text[-1].strip())


def _query(name: str, rdtype: dns.rdatatype.RdataType, ecs: str | None) -> dns.message.Message:
    options = []
    if ecs:
        net = ipaddress.ip_network(ecs, strict=False)
        options.append(dns.edns.ECSOption(str(net.network_address), net.prefixlen))
    return dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=True, payload=4096,
                                  options=options)


@dataclass
class Answer:
    """What one server gave for one name with DO=1: ``state`` (``signed``,
    ``unsigned`` or an n/a reason), the A addresses, response bytes."""

    state: str
    addrs: list[str] = field(default_factory=list)
    size: int = 0


async def check_answers(server: SignedServer, zone: Zone, ecs: str,
                        deadline_s: float) -> dict[str, Answer]:
    """Wait until ``server`` gives the expected answers (DO=1, ECS ``ecs``)
    for every name of its mix (``www`` the located origin, ``api`` a weighted
    origin, ``db`` the first checked origin, ``all`` the first two, the static
    names their addresses) and check them signed: an RRSIG over the A RRset
    that validates with the DNSKEY RRset the server serves at the apex (itself
    self-signed), RFC 4035 §5.3; an unsigned server's answers must carry no
    RRSIG. Returns name → ``Answer`` (n/a names included); raises
    ``BenchError`` naming the server and name after ``deadline_s`` seconds."""
    want = {"www": {expected_geo(zone.mmdb, ecs)}, "api": {a for a, _ in zone.weighted},
            "db": {zone.checked[0]}, "all": set(zone.checked[:2]),
            "static": {"192.0.2.10"}, "ns1": {zone.ns_addr}}
    origin = dns.name.from_text(ZONE)
    t0 = time.monotonic()
    problem = "no answer"
    while True:
        try:
            return await _check_once(server, want, origin, ecs)
        except BenchError as e:
            problem = str(e)
        if time.monotonic() - t0 > deadline_s:
            raise BenchError(f"{server.kind}: {problem} (after {deadline_s:.0f} s)")
        await asyncio.sleep(0.2)


async def _check_once(server: SignedServer, want: dict[str, set[str]], origin: dns.name.Name,
                      ecs: str) -> dict[str, Answer]:
    async def ask(q: dns.message.Message) -> dns.message.Message:
        try:
            return await dns.asyncquery.udp(q, server.addr, port=server.port, timeout=0.5)
        except Exception as e:  # timeouts, bad replies: say which query
            raise BenchError(f"{q.question[0]}: {type(e).__name__} {e}") from e

    keys = None
    if server.signed:
        reply = await ask(_query(ZONE + ".", dns.rdatatype.DNSKEY, None))
        dnskey = reply.get_rrset(reply.answer, origin, dns.rdataclass.IN, dns.rdatatype.DNSKEY)
        sig = reply.get_rrset(reply.answer, origin, dns.rdataclass.IN, dns.rdatatype.RRSIG,
                              dns.rdatatype.DNSKEY)
        if dnskey is None or sig is None:
            raise BenchError(f"no signed DNSKEY RRset at the apex: {reply.answer}")
        keys = {origin: dnskey}
        try:
            dns.dnssec.validate(dnskey, sig, keys)
        except dns.dnssec.ValidationFailure as e:
            raise BenchError(f"DNSKEY RRset does not validate: {e}") from e
    skipped = (lambda n: NOT_SERVED.get(n, "n/a")) if server.kind.startswith("knot") else (
        lambda n: "not queried (Knot's names)")
    out = {n: Answer(skipped(n)) for n in MIX if n not in server.names}
    for name in server.names:
        qname = dns.name.from_text(f"{name}.{ZONE}.")
        reply = await ask(_query(qname.to_text(), dns.rdatatype.A, ecs))
        rrset = reply.get_rrset(reply.answer, qname, dns.rdataclass.IN, dns.rdatatype.A)
        sig = reply.get_rrset(reply.answer, qname, dns.rdataclass.IN, dns.rdatatype.RRSIG,
                              dns.rdatatype.A)
        addrs = sorted(r.address for r in rrset) if rrset else []
        if not set(addrs) or not set(addrs) <= want[name] or (
                name != "api" and set(addrs) != want[name]):
            raise BenchError(f"{name}: answer {addrs}, want {sorted(want[name])}")
        if keys is None:
            if sig is not None:
                raise BenchError(f"{name}: RRSIG in the unsigned baseline's answer")
        elif sig is None:
            raise BenchError(f"{name}: DO=1 answer without an RRSIG over A: {reply.answer}")
        else:
            try:
                dns.dnssec.validate(rrset, sig, keys)
            except dns.dnssec.ValidationFailure as e:
                raise BenchError(f"{name}: RRSIG does not validate: {e}") from e
        out[name] = Answer("signed" if keys else "unsigned", addrs, len(reply.to_wire()))
    return out


class DnssecBench(Bench):
    """``dns_compare.Bench`` with DO=1 queries and each server's own query file."""

    def __init__(self, args: argparse.Namespace, servers: list[SignedServer],
                 origins: Origins) -> None:
        first = servers[0].queries
        assert first is not None
        super().__init__(args, list(servers), origins, first)
        self.extra_args = ["-D"]

    async def dnsperf(self, server: Server, rate: int | None, verbose: bool = False) -> Run:
        assert isinstance(server, SignedServer) and server.queries is not None
        self.queries = server.queries
        return await super().dnsperf(server, rate, verbose)


def table(results: list[Result], servers: list[SignedServer]) -> str:
    """The markdown table: each figure with its ratio to unsigned gslb's in
    brackets (to gslb-signed-knotmix's for Knot, the same mix)."""
    by = {r.kind: r for r in results}
    mix = {s.kind: s.names for s in servers}

    def cell(r: Result, attr: str, fmt: str) -> str:
        base = by.get("gslb-signed-knotmix" if r.kind.startswith("knot") else "gslb")
        v = getattr(r, attr)
        b = getattr(base, attr) if base else None
        ratio = f" (×{v / b:.2f})" if b and r is not base and v == v and b == b else ""
        return format(v, fmt) + ratio

    head = ["server", "names queried", "lossless peak QPS", "QPS per CPU-s",
            "p50 ms @ rate", "p99 ms @ rate", "lost @ peak / 80 %", "CPU % server / client",
            "response bytes", "RSS MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        sizes = [run["response_bytes"] for run in r.runs if run["response_bytes"]]
        row = [r.kind, " ".join(mix[r.kind]), cell(r, "peak_qps", ",.0f"),
               cell(r, "qps_per_cpu_s", ",.0f"), cell(r, "p50_ms", ".3f"),
               cell(r, "p99_ms", ".3f"), f"{r.peak_lost_max} / {r.loss80_max}",
               f"{r.server_cpu_pct:.0f} / {r.client_cpu_pct:.0f}",
               f"{statistics.median(sizes):.0f}" if sizes else "?", f"{r.rss_mib:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def answers_table(answers: dict[str, dict[str, Answer]]) -> str:
    """Per name and server: signed/unsigned and the response size, or n/a."""
    kinds = list(answers)
    lines = ["| name | " + " | ".join(kinds) + " |", "|" + "---|" * (len(kinds) + 1)]
    for name in MIX:
        cells = []
        for k in kinds:
            a = answers[k][name]
            cells.append(f"{a.state}, {a.size} B" if a.size else a.state)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> dict:
    """Set up, check, run and tear down; returns the JSON-able report."""
    mmdb, kinds, load1 = preflight(args, KINDS, EXTRA_KINDS)
    workdir = Path(tempfile.mkdtemp(prefix="gslb-dnssec-compare-"))
    zone = Zone(names=len(MIX), pool_size=args.pool_size,
                origin_port=free_port("127.0.11.1"), mmdb=mmdb)
    servers: list[SignedServer] = []
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "options": vars(args),
                    "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                                "cpu": _cpu_model(), "load1": load1},
                    "versions": versions(),
                    "not_served": {"knot": NOT_SERVED}}
    origins = Origins(zone.checked, zone.origin_port)
    bench_ = None
    try:
        keybase = None
        if any(k.startswith("gslb-signed") for k in kinds):
            (workdir / "keys").mkdir()
            keybase = gslb_keygen(workdir / "keys")
        for i, kind in enumerate(kinds):
            addr = f"127.0.10.{i + 1}"
            s = SignedServer(kind, addr, free_port(addr), workdir / kind, args.server_cpu,
                             names=mix_of(kind),
                             signed="signed" in kind, keybase=keybase)
            s.write_config(zone)  # raises BenchError when a binary is missing
            servers.append(s)
        await origins.start()
        for s in servers:
            await s.start()
        starts = await asyncio.gather(*(wait_ready(s, args.start_timeout) for s in servers))
        report["start_s"] = {s.kind: t for s, t in zip(servers, starts, strict=True)}
        answers = dict(zip(kinds, await asyncio.gather(
            *(check_answers(s, zone, args.ecs, 20) for s in servers)), strict=True))
        report["answers"] = {k: {n: asdict(a) for n, a in v.items()} for k, v in answers.items()}
        report["answers_table"] = answers_table(answers)
        log.info("answers checked:\n%s", report["answers_table"])
        bench_ = DnssecBench(args, servers, origins)
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
    report["results"] = [asdict(r) for r in results]
    by = {r.kind: r for r in results}
    ratios = {}
    for signed, base in (("gslb-signed", "gslb"), ("knot-signed", "gslb-signed-knotmix"),
                         ("pdns-shared-signed", "pdns-shared"), ("knot-signed", "knot")):
        if signed in by and base in by and by[base].qps_per_cpu_s:
            ratios[f"{signed}/{base}"] = by[signed].qps_per_cpu_s / by[base].qps_per_cpu_s
    report["qps_per_cpu_s_ratios"] = ratios
    report["table"] = table(results, servers)
    return report


async def _main(args: argparse.Namespace) -> dict:
    """``bench`` bounded by ``--max-time``; SIGTERM cancels it (cleanup runs)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await asyncio.wait_for(bench(args), args.max_time)


def main() -> None:
    """Command line: parse options, run, print the tables (exit 1 with a message on failure)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = parser.add_argument
    a("--only", default=",".join(KINDS), metavar="KIND,...",
      help=f"servers to run, in this order (default {','.join(KINDS)}; also "
           f"{','.join(EXTRA_KINDS)})")
    a("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    a("--duration", type=float, default=2.0, help="seconds per dnsperf run (default 2)")
    a("--steps", type=int, default=7, help="bisection runs per server (default 7)")
    a("--outstanding", type=int, default=100, help="dnsperf -q: queries in flight (100)")
    a("--latency-rate", type=int, default=1000, help="QPS of the latency runs (default 1000)")
    a("--pool-size", type=int, default=2, help="origins in the weighted and failover pools "
      "(2..254, default 2)")
    a("--ecs", default="81.2.69.0/24", help="client subnet sent as ECS (default: a GB /24)")
    a("--geoip", default=str(ROOT / "geoip" / "country.mmdb"), help="country mmdb")
    a("--server-cpu", type=int, default=0, help="CPU the servers are pinned to (default 0)")
    a("--client-cpu", type=int, default=1, help="CPU of dnsperf and this process (default 1)")
    a("--no-pin", action="store_true", help="pin nothing")
    a("--start-timeout", type=float, default=120, help="seconds a server may take to start")
    a("--max-time", type=float, default=900, help="bound on the whole run, seconds (900)")
    a("--json", metavar="PATH", help="also write the report as JSON")
    a("--keep", action="store_true", help="keep the temp dir of configs, keys and logs")
    a("-q", "--quiet", action="store_true", help="log only warnings (not every dnsperf run)")
    args = parser.parse_args()
    if not 2 <= args.pool_size <= 254:
        parser.error("--pool-size must be 2..254")
    if args.no_pin or (os.cpu_count() or 1) < 2:
        args.server_cpu = args.client_cpu = None
    args.flip = False  # Bench.run reads it: no health flips here
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        report = asyncio.run(_main(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("dnssec_compare: interrupted; every server stopped")
    except BenchError as e:
        sys.exit(f"dnssec_compare: {e}")
    except TimeoutError:
        sys.exit(f"dnssec_compare: not done within --max-time {args.max_time:.0f} s")
    v = report["versions"]
    print(f"{report['date']}; {report['machine']['cpus']} × {report['machine']['cpu']}, "
          f"Linux {report['machine']['kernel']}, load average {report['machine']['load1']:.2f} "
          f"before the run; dnsperf {v.get('dnsperf')}, PowerDNS {v.get('pdns')}, Knot DNS "
          f"{v.get('knot')}; DO=1, ECS {args.ecs}, pool size {args.pool_size}, "
          f"{args.rounds} rounds of {args.duration} s runs, latency at {args.latency_rate} QPS")
    print()
    print("DO=1 answers checked (RRSIG over A validated with the served DNSKEY):")
    print()
    print(report["answers_table"])
    print()
    print(report["table"])
    print()
    for pair, ratio in report["qps_per_cpu_s_ratios"].items():
        goal = " (issue 17's goal: ≥ 0.80)" if pair == "gslb-signed/gslb" else ""
        print(f"QPS per CPU-s {pair}: {ratio:.2f}{goal}")
    if any(k.startswith("knot") for k in report["answers"]):
        print("knot: " + "; ".join(f"{n} {why}" for n, why in NOT_SERVED.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
