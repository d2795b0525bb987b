"""The nameservers of ``tests.bench.dns_compare`` (and ``dnssec_compare``) and their
equivalent zone.

One ``Zone`` (a pure description: names, pools, addresses) is written out as a
gslb YAML config, a PowerDNS bind-backend zone with LUA records, a gdnsd
config + zone file, and a Knot DNS config with ``mod-geoip`` (:func:`write_knot`;
Knot has no health checks, so it serves only :data:`KNOT_MIX`). ``Server``
runs one daemon in the foreground on its own loopback address, pinned to one
CPU, with its config in a temp dir, and stops it by PID. ``Origins`` are the
live HTTP origins the failover and ``all`` names are health-checked against
(aiohttp, in the benchmark's process).

The zone ``bench.test.`` (TTLs: 30 s dynamic, 300 s static):

* ``www``: geo by client country/continent (ECS): GB→london, SE→stockholm,
  rest of EU and AF→london, NA/SA/AN→virginia, AS/OC→singapore, unknown→virginia;
  no health check.
* ``api``: weighted, one answer, ``pool_size`` origins (the first of weight 3,
  the others 1; gdnsd: the first 64 only, its limit); no health check.
* ``db``: failover over ``pool_size`` tiers of one origin each, every origin
  health-checked over HTTP (GET /, 200 is up; 2 s interval (gdnsd's minimum), 1 s timeout,
  fall 2 / rise 2 where the server has hysteresis).
* ``all``: every healthy origin of the first two checked origins.
* ``static``, ``ns1``: static A records.
* ``n0`` … : filler names up to ``names`` owner names in all, alternately a
  static A and a weighted name (like ``api``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import web

from gslb import countries

log = logging.getLogger("gslb.bench")

ZONE = "bench.test"
MIX = ("www", "api", "db", "all", "static", "ns1")
"""The query mix: four dynamic names, then two static ones (type A each)."""
KNOT_MIX = ("www", "api", "static", "ns1")
"""The names Knot serves: geo (``mod-geoip`` geodb), weighted (its weighted
mode) and static. ``db`` and ``all`` need health checks, which Knot lacks."""
NOT_SERVED = {"db": "n/a: no health-checked failover in Knot",
              "all": "n/a: no health-checked 'all healthy' in Knot"}


def mix_of(kind: str) -> tuple[str, ...]:
    """The names a server ``kind`` is queried on: :data:`KNOT_MIX` for Knot and
    for the gslb rows set beside it (``*knot*``), else :data:`MIX`."""
    return KNOT_MIX if "knot" in kind else MIX
GEO_ADDR = {"london": "192.0.2.11", "stockholm": "192.0.2.12",
            "virginia": "192.0.2.13", "singapore": "192.0.2.14"}
GEO_COUNTRIES = {"GB": "london", "SE": "stockholm"}
GEO_CONTINENTS = {"EU": "london", "AF": "london", "NA": "virginia", "SA": "virginia",
                  "AN": "virginia", "AS": "singapore", "OC": "singapore"}
GEO_DEFAULT = "virginia"
DYN_TTL, STATIC_TTL = 30, 300
GDNSD_MAX_WEIGHTED = 64
"""gdnsd's weighted plugin refuses more addresses than this in one resource."""
CHECK_INTERVAL_S, CHECK_TIMEOUT_S, CHECK_RISE, CHECK_FALL = 2, 1, 2, 2  # gdnsd: interval ≥ 2 s


class BenchError(RuntimeError):
    """A daemon is missing, failed to start, or misbehaved."""


def free_port(host: str) -> int:
    """A port (int) free for both UDP and TCP on ``host`` right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((host, 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind((host, port))
                except OSError:
                    continue
                return port
    raise BenchError(f"no free port on {host}")


@dataclass(frozen=True)
class Zone:
    """The benchmark zone: ``names`` owner names (≥ 6, the mix included),
    ``pool_size`` origins (2…254) in the weighted and failover pools, checked
    origins at ``127.0.11.1…`` on HTTP port ``origin_port``, GeoIP from ``mmdb``."""

    names: int
    pool_size: int
    origin_port: int
    mmdb: Path
    ns_addr: str = "127.0.10.1"

    @property
    def checked(self) -> list[str]:
        """Addresses of the health-checked origins (failover tiers, in order)."""
        return [f"127.0.11.{i + 1}" for i in range(self.pool_size)]

    @property
    def weighted(self) -> list[tuple[str, int]]:
        """(address, weight) of the weighted pool's origins."""
        return [(f"198.51.100.{i + 1}", 3 if i == 0 else 1) for i in range(self.pool_size)]

    def fillers(self) -> list[tuple[str, bool]]:
        """(owner, is_dynamic) of the filler names."""
        return [(f"n{i}", i % 2 == 1) for i in range(max(0, self.names - len(MIX)))]

    # --- gslb -------------------------------------------------------------
    def gslb_yaml(self) -> str:
        """The zone as a gslb config (YAML text)."""
        check = {"type": "http", "port": self.origin_port, "path": "/", "expect": [200],
                 "interval": CHECK_INTERVAL_S, "timeout": CHECK_TIMEOUT_S,
                 "fall": CHECK_FALL, "rise": CHECK_RISE}
        origins: dict[str, dict] = {name: {"ipv4": [addr]} for name, addr in GEO_ADDR.items()}
        origins.update({f"w{i}": {"ipv4": [a], "weight": w}
                        for i, (a, w) in enumerate(self.weighted)})
        origins.update({f"c{i}": {"ipv4": [a], "check": check}
                        for i, a in enumerate(self.checked)})
        pools = {
            "geo": {"policy": "geo", "origins": list(GEO_ADDR),
                    "countries": dict(GEO_COUNTRIES), "continents": dict(GEO_CONTINENTS),
                    "default": GEO_DEFAULT},
            "api": {"policy": "weighted", "origins": [f"w{i}" for i in range(self.pool_size)],
                    "max_answers": 1},
            "db": {"policy": "failover", "tiers": [[f"c{i}"] for i in range(self.pool_size)]},
            "all": {"policy": "all", "origins": ["c0", "c1"]},
        }
        records: dict[str, dict] = {
            "@": {"SOA": "ns1 hostmaster 1 3600 600 86400 30", "NS": ["ns1"]},
            "ns1": {"A": self.ns_addr},
            "static": {"A": "192.0.2.10"},
            **{name: {"gslb": {"pool": name if name != "www" else "geo", "ttl": DYN_TTL}}
               for name in ("www", "api", "db", "all")},
        }
        for owner, dynamic in self.fillers():
            records[owner] = ({"gslb": {"pool": "api", "ttl": DYN_TTL}} if dynamic
                              else {"A": _filler_addr(owner)})
        return yaml.safe_dump({"origins": origins, "pools": pools,
                               "zones": {ZONE: {"ttl": STATIC_TTL, "records": records}}},
                              sort_keys=False)

    # --- PowerDNS ---------------------------------------------------------
    def pdns_zone(self) -> str:
        """The zone as a BIND zone file with PowerDNS LUA records."""
        url = f"http://127.0.11.1:{self.origin_port}/"
        opts = f"timeout={CHECK_TIMEOUT_S}"
        geo = ";" + " ".join(
            [f"if country('{cc}') then return '{GEO_ADDR[o]}' else"
             for cc, o in GEO_COUNTRIES.items()]
            + [f"if continent('{c}') then return '{GEO_ADDR[o]}' else"
               for c, o in GEO_CONTINENTS.items()]
            + [f"return '{GEO_ADDR[GEO_DEFAULT]}'"]
            + ["end"] * (len(GEO_COUNTRIES) + len(GEO_CONTINENTS)))
        wrand = "pickwrandom({" + ",".join(f"{{{w},'{a}'}}" for a, w in self.weighted) + "})"
        tiers = "{" + ",".join(f"{{'{a}'}}" for a in self.checked) + "}"
        both = "{{" + ",".join(f"'{a}'" for a in self.checked[:2]) + "}}"
        lines = [
            f"$ORIGIN {ZONE}.", f"$TTL {STATIC_TTL}",
            "@ IN SOA ns1 hostmaster 1 3600 600 86400 30", "@ IN NS ns1",
            f"ns1 IN A {self.ns_addr}", "static IN A 192.0.2.10",
            f'www {DYN_TTL} IN LUA A "{geo}"',
            f'api {DYN_TTL} IN LUA A "{wrand}"',
            # ifurlup checks the URL on every address; the first set with one up answers
            f"db {DYN_TTL} IN LUA A \"ifurlup('{url}', {tiers}, {{{opts}}})\"",
            f"all {DYN_TTL} IN LUA A \"ifurlup('{url}', {both}, {{selector='all', {opts}}})\"",
        ]
        for owner, dynamic in self.fillers():
            lines.append(f'{owner} {DYN_TTL} IN LUA A "{wrand}"' if dynamic
                         else f"{owner} IN A {_filler_addr(owner)}")
        return "\n".join(lines) + "\n"

    # --- gdnsd ------------------------------------------------------------
    def gdnsd_plugins(self) -> str:
        """The ``service_types`` and ``plugins`` stanzas of gdnsd's config."""
        cont = "\n".join(f"        {c} => [{o}]" for c, o in GEO_CONTINENTS.items() if c != "EU")
        eu = " ".join(f"{cc} => [{o}]" for cc, o in GEO_COUNTRIES.items())
        dcmap = " ".join(f"{o} => {a}" for o, a in GEO_ADDR.items())
        # gdnsd's weighted plugin takes at most 64 addresses per family
        weighted = " ".join(f"w{i} => [{a}, {w}]"
                            for i, (a, w) in enumerate(self.weighted[:GDNSD_MAX_WEIGHTED]))
        tiers = " ".join(f"c{i}" for i in range(self.pool_size))
        tiermap = " ".join(f"c{i} => {a}" for i, a in enumerate(self.checked))
        c0, c1 = self.checked[:2]
        return f"""service_types => {{
  bench_http => {{
    plugin => http_status, port => {self.origin_port}, url_path => /, ok_codes => [200]
    interval => {CHECK_INTERVAL_S}, timeout => {CHECK_TIMEOUT_S}
    up_thresh => {CHECK_RISE}, ok_thresh => {CHECK_RISE}, down_thresh => {CHECK_FALL}
  }}
}}
plugins => {{
  geoip => {{
    maps => {{
      bench => {{
        geoip2_db => {self.mmdb}
        datacenters => [{" ".join(GEO_ADDR)}]
        map => {{
        EU => {{ {eu} default => [{GEO_CONTINENTS["EU"]}] }}
{cont}
        default => [{GEO_DEFAULT}]
        }}
      }}
    }}
    resources => {{ www => {{ map => bench, service_types => up, dcmap => {{ {dcmap} }} }} }}
  }}
  weighted => {{ service_types => up, multi => false, api => {{ {weighted} }} }}
  metafo => {{ resources => {{ db => {{
    service_types => bench_http, datacenters => [{tiers}], dcmap => {{ {tiermap} }}
  }} }} }}
  multifo => {{ all => {{ service_types => bench_http, c0 => {c0}, c1 => {c1} }} }}
}}
"""

    def gdnsd_zone(self) -> str:
        """The zone as a gdnsd zone file (DYNA records point at the plugins)."""
        lines = [
            f"$TTL {STATIC_TTL}",
            "@ SOA ns1 hostmaster 1 3600 600 86400 30", "@ NS ns1",
            f"ns1 A {self.ns_addr}", "static A 192.0.2.10",
            f"www {DYN_TTL} DYNA geoip!www", f"api {DYN_TTL} DYNA weighted!api",
            f"db {DYN_TTL} DYNA metafo!db", f"all {DYN_TTL} DYNA multifo!all",
        ]
        for owner, dynamic in self.fillers():
            lines.append(f"{owner} {DYN_TTL} DYNA weighted!api" if dynamic
                         else f"{owner} A {_filler_addr(owner)}")
        return "\n".join(lines) + "\n"


def _filler_addr(owner: str) -> str:
    i = int(owner[1:])
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


RRL_UNREACHED = """
rate_limit:   # every response is sent: the limiter only keeps its books
  responses_per_second: 1000000
"""
"""The ``rate_limit`` section of the ``gslb-rrl`` server (every kind's rate
follows ``responses_per_second``)."""


GSLB_KINDS = ("gslb", "gslb-nocache", "gslb-noext", "gslb-rrl", "gslb-knotmix")
"""The kinds that run ``gslb serve``."""


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (``/proc/PID/task/TID/children``)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
    return found


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """One nameserver under test, listening on ``addr:port`` (UDP), pinned to
    ``cpu`` (a CPU number or a ``taskset -c`` list such as ``"0,1"``; None: not
    pinned); a gslb kind with ``workers`` above 1 runs ``gslb serve --workers
    N``. ``kind`` is ``gslb``, ``gslb-nocache``
    (``--answer-cache 0``), ``gslb-noext`` (``GSLB_NO_EXT=1``: the pure-Python
    packet path), ``gslb-rrl`` (a ``rate_limit`` section no query reaches:
    :data:`RRL_UNREACHED`), ``gslb-knotmix`` (gslb, queried on :data:`KNOT_MIX`),
    ``pdns``, ``pdns-shared`` (``enable-lua-records=shared``), ``gdnsd`` or
    ``knot`` (Knot DNS, :func:`write_knot`, unsigned)."""

    kind: str
    addr: str
    port: int
    workdir: Path
    cpu: int | str | None
    proc: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    argv: list[str] = field(default_factory=list)
    workers: int = 1

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def write_config(self, zone: Zone) -> None:
        """Write this server's config into ``workdir`` and set ``argv``.

        Raises ``BenchError`` when the daemon's binary is not installed."""
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        if self.kind in GSLB_KINDS:
            exe = Path(sys.executable).with_name("gslb")
            (d / "gslb.yaml").write_text(zone.gslb_yaml()
                                         + (RRL_UNREACHED if self.kind == "gslb-rrl" else ""))
            self.argv = [str(exe) if exe.exists() else _need("gslb"), "serve",
                         "--config", str(d / "gslb.yaml"), "--no-admin",
                         "--listen", f"{self.addr}:{self.port}", "--geoip", str(zone.mmdb)]
            if self.kind == "gslb-nocache":
                self.argv += ["--answer-cache", "0"]
            if self.workers > 1:
                self.argv += ["--workers", str(self.workers)]
        elif self.kind in ("pdns", "pdns-shared"):
            hint = "apt-get install -y pdns-server pdns-backend-bind pdns-backend-geoip"
            exe = _need("pdns_server", hint)
            for backend in ("bind", "geoip"):
                if not list(Path("/usr/lib").glob(f"*/pdns/lib{backend}backend.so")):
                    raise BenchError(f"PowerDNS {backend} backend not found: {hint}")
            (d / "bench.zone").write_text(zone.pdns_zone())
            (d / "named.conf").write_text(
                f'zone "{ZONE}" {{ type master; file "{d / "bench.zone"}"; }};\n')
            (d / "geo-zones.yaml").write_text("domains: []\n")
            lua = "shared" if self.kind == "pdns-shared" else "yes"
            # the geoip backend serves no zone here: it only gives LUA country()
            (d / "pdns.conf").write_text(f"""launch=bind,geoip
bind-config={d / "named.conf"}
geoip-database-files=mmdb:{zone.mmdb}
geoip-zones-file={d / "geo-zones.yaml"}
local-address={self.addr}
local-port={self.port}
socket-dir={d}
guardian=no
daemon=no
disable-syslog=yes
loglevel=3
write-pid=no
webserver=no
api=no
enable-lua-records={lua}
edns-subnet-processing=yes
lua-health-checks-interval={CHECK_INTERVAL_S}
""")
            self.argv = [exe, f"--config-dir={d}"]
        elif self.kind == "knot":
            self.argv = write_knot(d, zone, self.addr, self.port)
        elif self.kind == "gdnsd":
            exe = _need("gdnsd", "apt-get install -y gdnsd")
            (d / "zones").mkdir(exist_ok=True)
            (d / "zones" / ZONE).write_text(zone.gdnsd_zone())
            (d / "config").write_text(f"""options => {{
  listen => [ {self.addr} ]
  dns_port => {self.port}
  udp_threads => 1
  tcp_threads => 1
  run_dir => {d / "run"}
  state_dir => {d / "state"}
}}
{zone.gdnsd_plugins()}""")
            self.argv = [exe, "-c", str(d), "start"]
        else:
            raise BenchError(f"unknown server kind {self.kind!r}")

    async def start(self) -> None:
        """Start the daemon (stderr to ``workdir/log``); ``wait_ready`` follows."""
        pin = ["taskset", "-c", str(self.cpu)] if self.cpu is not None else []
        log.info("starting %s: %s", self.kind, " ".join(self.argv))
        self.started_at = time.monotonic()
        with open(self.workdir / "log", "wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *pin, *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True, env=self._env())

    def _env(self) -> dict[str, str]:
        """The daemon's environment: this process's, with ``GSLB_NO_EXT``
        set for ``gslb-noext`` and removed for every other kind."""
        from gslb.dns.server import NO_EXT_ENV

        env = dict(os.environ)
        env.pop(NO_EXT_ENV, None)
        if self.kind == "gslb-noext":
            env[NO_EXT_ENV] = "1"
        return env

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines of the daemon's output (text)."""
        with contextlib.suppress(OSError):
            text = (self.workdir / "log").read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return ""

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; never raises."""
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    def cpu_s(self) -> float:
        """User + system CPU time (seconds) of the process and its live
        descendants (``gslb serve --workers``' workers), all threads
        (``/proc/PID/stat`` utime + stime)."""
        return sum(_cpu_s(pid) for pid in _tree(self.pid))

    def rss_mb(self) -> float:
        """Resident set size of the process (MiB, ``VmRSS``)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def write_knot(d: Path, zone: Zone, addr: str, port: int, signed: bool = False) -> list[str]:
    """Write Knot DNS's config for ``zone`` into the directory ``d`` (knotd
    listening on ``addr:port``, UDP and TCP) and return its argv: the static
    names in the zone file, ``www`` by ``mod-geoip`` in ``geodb`` mode (country
    and continent of the ECS address, RFC 7871, else of the source, from
    ``zone.mmdb``), ``api`` by ``mod-geoip`` in ``weighted`` mode; with
    ``signed``, ``mod-onlinesign`` (ECDSAP256SHA256) signs every answer.
    ``db`` and ``all`` are absent (:data:`NOT_SERVED`). Raises ``BenchError``
    when knotd or its geoip module is not installed."""
    exe = _need("knotd", "apt-get install -y knot knot-module-geoip")
    if not list(Path("/usr/lib").glob("*/knot/modules-*/geoip.so")):
        raise BenchError("Knot's geoip module not found: apt-get install -y knot-module-geoip")
    (d / "db").mkdir(exist_ok=True)
    w0 = zone.weighted[0][0]
    # the zone holds the default answers: www's for an unplaced client
    (d / "bench.zone").write_text("\n".join([
        f"$ORIGIN {ZONE}.", "$TTL 300",
        "@ IN SOA ns1 hostmaster 1 3600 600 86400 30", "@ IN NS ns1",
        f"ns1 IN A {zone.ns_addr}", "static IN A 192.0.2.10",
        f"www {DYN_TTL} IN A {GEO_ADDR[GEO_DEFAULT]}", f"api {DYN_TTL} IN A {w0}"]) + "\n")
    geo = [f"www.{ZONE}:"]
    for cc, origin in GEO_COUNTRIES.items():
        country = countries.lookup(cc)
        assert country is not None, cc
        geo += [f'  - geo: "{country.continent};{cc}"', f"    A: {GEO_ADDR[origin]}"]
    for cont, origin in GEO_CONTINENTS.items():
        geo += [f'  - geo: "{cont};*"', f"    A: {GEO_ADDR[origin]}"]
    (d / "geo.conf").write_text("\n".join(geo) + "\n")
    (d / "weighted.conf").write_text("\n".join(
        [f"api.{ZONE}:"] + [f"  - weight: {w}\n    A: {a}" for a, w in zone.weighted]) + "\n")
    (d / "knot.conf").write_text(f"""server:
    rundir: {d}
    listen: {addr}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
    edns-client-subnet: on
log:
  - target: stderr
    any: warning
database:
    storage: {d / "db"}
template:
  - id: default
    storage: {d}
    journal-content: none
    zonefile-sync: -1
policy:
  - id: online
    algorithm: ecdsap256sha256
    single-type-signing: on
    rrsig-lifetime: 14d
    rrsig-refresh: 7d
mod-geoip:
  - id: geo
    config-file: {d / "geo.conf"}
    ttl: {DYN_TTL}
    mode: geodb
    geodb-file: {zone.mmdb}
    geodb-key: [continent/code, country/iso_code]
  - id: weighted
    config-file: {d / "weighted.conf"}
    ttl: {DYN_TTL}
    mode: weighted
mod-onlinesign:
  - id: sign
    policy: online
    nsec-bitmap: [A]
zone:
  - domain: {ZONE}
    file: bench.zone
    module: [mod-geoip/geo, mod-geoip/weighted{", mod-onlinesign/sign" if signed else ""}]
""")
    return [exe, "-c", str(d / "knot.conf")]


def _need(binary: str, hint: str = "") -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(
        f"/usr/sbin/{binary}") else None)
    if path is None:
        raise BenchError(f"{binary} not found" + (f": {hint}" if hint else ""))
    return path


class Origins:
    """HTTP origins for the health checks: one aiohttp server on each address,
    all on one port. ``up[addr]`` (bool) decides 200 or 503 per request."""

    def __init__(self, addrs: list[str], port: int) -> None:
        self.addrs, self.port = addrs, port
        self.up = dict.fromkeys(addrs, True)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen on every address (raises ``OSError`` if a port is taken)."""
        app = web.Application()

        async def handle(request: web.Request) -> web.Response:
            up = self.up.get(request.transport.get_extra_info("sockname")[0], False)
            return web.Response(status=200 if up else 503, text="ok" if up else "down")

        app.router.add_get("/", handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        for addr in self.addrs:
            await web.TCPSite(self._runner, addr, self.port).start()

    async def stop(self) -> None:
        """Close every listener."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
