"""Command line: ``gslb serve | probe | check | status | explain | drill |
geoip build | dnssec keygen | dnssec ds``.

The only module that prints or exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gslb.config.model import Config
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.errors import ConfigError, GslbError
from gslb.probe.service import ProbeService
from gslb.serve.service import Service

DEFAULT_LISTEN = "127.0.0.1:5353"
DEFAULT_GEOIP = Path("geoip/country.mmdb")
DEFAULT_ADMIN = "127.0.0.1:8053"
TOKEN_ENV = "GSLB_ADMIN_TOKEN"


def _print_config_error(exc: ConfigError) -> None:
    for reason in exc.reasons:
        print(reason, file=sys.stderr)
    print(f"{len(exc.reasons)} error(s)", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    from gslb.config.load import load

    try:
        config = load(args.config)
    except ConfigError as exc:
        _print_config_error(exc)
        return 1
    print(f"ok: {len(config.zones)} zone(s), {len(config.pools)} pool(s), "
          f"{len(config.origins)} origin(s)")
    return 0


def _load(paths: list[str]) -> Config | None:
    """The config, or None after printing every error."""
    from gslb.config.load import load

    try:
        return load(paths)
    except ConfigError as exc:
        _print_config_error(exc)
        print("not starting: fix the configuration first", file=sys.stderr)
        return None


async def _run_until_signal(part: Service | ProbeService) -> int:
    """Start ``part``, run until SIGINT/SIGTERM (SIGHUP reloads its
    config: a ``Service``'s or a ``ProbeService``'s), stop it; exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[Any]] = set()

    def on_hup() -> None:
        task = loop.create_task(part.reloader.reload() if isinstance(part, Service)
                                else part.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await part.start()
    except OSError as exc:
        print(f"gslb: cannot start: {exc}", file=sys.stderr)
        return 1
    if isinstance(part, Service):
        for host, port in part.addresses:
            print(f"gslb: serving DNS on {host} port {port} (UDP, TCP)", flush=True)
        for host, port in part.admin_addresses:
            shown = f"[{host}]" if ":" in host else host
            print(f"gslb: admin on http://{shown}:{port}/", flush=True)
    else:
        print(f"gslb: probing from vantage {part.vantage}", flush=True)
    await stop.wait()
    for task in list(reloads):
        task.cancel()
    await part.stop()
    return 0


def _admin_token(path: Path | None) -> str | None:
    """The admin token from ``path`` (first line) or ``GSLB_ADMIN_TOKEN``.
    Raises OSError for an unreadable file, ValueError for an empty one."""
    if path is not None:
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"admin token file {path} is empty")
        return token
    return os.environ.get(TOKEN_ENV) or None


async def _serve(args: argparse.Namespace) -> int:
    from gslb.dns.server import TcpLimits, parse_listen

    config = _load(args.config)
    if config is None:
        return 1
    try:
        listen = [parse_listen(text) for text in args.listen or [DEFAULT_LISTEN]]
    except ValueError as exc:
        print(f"gslb serve: {exc}", file=sys.stderr)
        return 2
    geoip: Path | None = args.geoip
    if geoip is None and DEFAULT_GEOIP.exists():
        geoip = DEFAULT_GEOIP
    elif geoip is None:
        logging.getLogger("gslb").warning(
            "no GeoIP database (%s missing; build it with `gslb geoip build`): "
            "geo pools answer from their default", DEFAULT_GEOIP)
    admin = None
    try:
        if not args.no_admin:
            admin = parse_listen(args.admin or DEFAULT_ADMIN)
        token = _admin_token(args.admin_token_file)
        service = Service(config, listen, geoip, redis_url=args.redis, admin=admin,
                          admin_optional=args.admin is None, admin_token=token,
                          overrides_path=args.overrides_file,
                          query_log_sample=args.query_log_sample, config_paths=args.config,
                          answer_cache=args.answer_cache, workers=args.workers,
                          server_id=args.server_id, asn_db=args.asn_db,
                          tcp=TcpLimits(args.tcp_clients, args.tcp_per_source, args.tcp_idle,
                                        args.tcp_write_timeout))
    except (GslbError, OSError, ValueError) as exc:
        print(f"gslb serve: {exc}", file=sys.stderr)
        return 1
    return await _run_until_signal(service)


def usable_cpus() -> int:
    """How many CPUs this process may run on: its affinity mask
    (``os.sched_getaffinity``, Linux), else ``os.cpu_count()``, else 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers_count(text: str) -> int:
    """``--workers``: a positive integer, or ``auto`` for :func:`usable_cpus`.
    Raises ``argparse.ArgumentTypeError`` (argparse's usage error) otherwise."""
    if text.strip().lower() == "auto":
        return usable_cpus()
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a positive number of worker processes nor 'auto' "
            "(one per CPU this process may run on)")
    return n


def _tcp_arguments(serve: argparse.ArgumentParser) -> None:
    """``gslb serve``'s TCP limits (:class:`gslb.dns.server.TcpLimits`)."""
    from gslb.dns import server as dns

    tcp = serve.add_argument_group(
        "TCP connections", "limits of each answering process (each worker with --workers)")
    tcp.add_argument("--tcp-clients", type=int, default=dns.MAX_TCP_CLIENTS, metavar="N",
                     help=f"concurrent TCP connections (default {dns.MAX_TCP_CLIENTS}); when "
                     "full, the one idle longest is closed to admit a new one")
    tcp.add_argument("--tcp-per-source", type=int, default=dns.TCP_PER_SOURCE, metavar="N",
                     help="concurrent TCP connections from one client address (IPv6: one "
                     f"/64); a further one is closed at once (default {dns.TCP_PER_SOURCE})")
    tcp.add_argument("--tcp-idle", type=float, default=dns.TCP_IDLE_TIMEOUT_S, metavar="S",
                     help="seconds a TCP connection may wait for its next query before it is "
                     f"closed (default {dns.TCP_IDLE_TIMEOUT_S:g})")
    tcp.add_argument("--tcp-write-timeout", type=float, default=dns.TCP_WRITE_TIMEOUT_S,
                     metavar="S", help="seconds from when answers first wait for a client that "
                     "does not read them until the connection is reset, unless it drained "
                     f"meanwhile (default {dns.TCP_WRITE_TIMEOUT_S:g})")


def _cmd_serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


async def _probe(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    try:
        worker = ProbeService(config, args.vantage, args.redis, config_paths=args.config)
    except (GslbError, ValueError) as exc:
        print(f"gslb probe: {exc}", file=sys.stderr)
        return 1
    return await _run_until_signal(worker)


def _cmd_probe(args: argparse.Namespace) -> int:
    return asyncio.run(_probe(args))


async def _fetch_status(url: str) -> dict[str, Any]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            url.rstrip("/") + "/api/v1/status") as response:
        response.raise_for_status()
        data: dict[str, Any] = await response.json()
        return data


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def _ago(now: float, at: float | None) -> str:
    return "-" if at is None else f"{max(0.0, now - at):.0f}s ago"


def render_status(st: dict[str, Any]) -> str:
    """The ``/api/v1/status`` JSON as terminal tables."""
    now = st["now"]
    name = f" ({st['server_id']})" if st.get("server_id") else ""
    lines = [f"gslb {st['version']}{name}: generation {st['generation']} "
             f"({', '.join(st['files'])}), "
             f"{'ready' if st['ready'] else 'NOT READY: ' + '; '.join(st['not_ready'])}"]
    if st["redis"]["configured"]:
        lines.append("redis: " + ", ".join(f"{k} {'connected' if v else 'DISCONNECTED'}"
                                           for k, v in st["redis"]["connected"].items()))
    if st.get("workers"):
        lines.append("workers: " + ", ".join(
            f"{w['index']} (pid {w['pid']}) {'answering' if w['answering'] else 'NOT ANSWERING'}"
            for w in st["workers"]))
    vantages = st["vantages"]
    rows = [["ORIGIN", "STATE", *(v.upper() if v in st["fresh_vantages"] else f"{v} (stale)"
                                  for v in vantages)]]
    for o in st["origins"]:
        cells = []
        for v in vantages:
            r = o["vantages"].get(v)
            if r is None:
                cells.append("-")
                continue
            rtt = f" {r['srtt_ms']:.1f}ms" if r["srtt_ms"] is not None else ""
            state = r.get("state") or ("up" if r["up"] else "down")
            cells.append((state if state == "up" else state.upper()) + rtt)
        held = {"fresh": " (held: too few fresh)", "split": " (held: split)"}.get(
            o.get("hold") or "", "")
        rows.append([o["name"], o["state"].upper() + held, *cells])
    lines += ["", _table(rows), ""]
    rows = [["POOL", "POLICY", "A", "AAAA", "FALLBACK"]]
    for p in st["pools"]:
        shown = []
        for family in ("A", "AAAA"):
            a = p["answers"][family]
            shown.append(",".join(a["origins"]) + (" (fallback)" if a["fallback"] else "")
                         if a["kind"] == "answer" else a["kind"])
        rows.append([p["name"], p["policy"], *shown,
                     "IN FALLBACK" if p["in_fallback"] else p["fallback"]])
    lines += [_table(rows), ""]
    trees = _trees(st["pools"])
    if trees:
        lines += ["TREES (→ the branch answering A now)", *trees, ""]
    if st["overrides"]:
        rows = [["DRAINED", "WHO", "SINCE", "EXPIRES", "REASON"]]
        rows += [[d["origin"], d["who"], _ago(now, d["at"]),
                  "-" if d["expires_at"] is None else f"in {d['expires_at'] - now:.0f}s",
                  d["reason"]] for d in st["overrides"]]
        lines += [_table(rows), ""]
    else:
        lines += ["no drains", ""]
    if st["transitions"]:
        rows = [["WHEN", "ORIGIN", "STATE", "CAUSE"]]
        rows += [[_ago(now, t["at"]), t["origin"], t["state"], t["cause"]]
                 for t in st["transitions"][:10]]
        lines.append(_table(rows))
    return "\n".join(lines).rstrip()


def _trees(pools: list[dict[str, Any]]) -> list[str]:
    """Each tree of pools (a root: a pool with member pools that is no
    member itself) drawn with indentation, the members answering A now
    marked ``→``."""
    by_name = {p["name"]: p for p in pools}
    inner = {m["name"] for p in pools for m in p["members"] if m["kind"] == "pool"}
    lines: list[str] = []

    def draw(name: str, depth: int, answering: bool, a: dict[str, Any]) -> None:
        pool = by_name[name]
        used = set(a.get("leaves", []))
        origins = {o for o, leaf in zip(a.get("origins", []), a.get("leaves", []), strict=False)
                   if leaf == name}
        healthy = f", min_healthy {pool['min_healthy']}" if pool["min_healthy"] != 1 else ""
        lines.append(f"{'  ' * depth}{'→ ' if answering else '  '}{name} ({pool['policy']}"
                     f"{healthy})")
        for m in pool["members"]:
            if m["kind"] == "pool":
                draw(m["name"], depth + 1,
                     answering and _answers_through(by_name, m["name"], used), a)
            else:
                mark = "→ " if answering and m["name"] in origins else "  "
                lines.append(f"{'  ' * (depth + 1)}{mark}{m['name']}")

    for pool in pools:
        if pool["name"] not in inner and any(m["kind"] == "pool" for m in pool["members"]):
            draw(pool["name"], 0, True, pool["answers"]["A"])
    return lines


def _answers_through(pools: dict[str, dict[str, Any]], name: str, used: set[str]) -> bool:
    """Whether an answer from leaf pools and origins ``used`` came through
    member pool ``name`` (it, or a pool below it, is among the leaves)."""
    if name in used:
        return True
    return any(m["kind"] == "pool" and _answers_through(pools, m["name"], used)
               for m in pools[name]["members"])


def _cmd_status(args: argparse.Namespace) -> int:
    try:
        st = asyncio.run(_fetch_status(args.admin))
    except Exception as exc:
        print(f"gslb status: cannot read {args.admin}/api/v1/status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(st, indent=1) if args.json else render_status(st))
    return 0 if st.get("ready") else 3


async def _fetch_explain(url: str, params: dict[str, str]) -> dict[str, Any]:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            url.rstrip("/") + "/api/v1/explain", params=params) as response:
        data: dict[str, Any] = await response.json()
        if response.status == 400:
            raise ValueError(data.get("error", "bad request"))
        response.raise_for_status()
        return data


async def _explain_offline(args: argparse.Namespace) -> dict[str, Any]:
    from gslb import explain as ex
    from gslb.config.load import load

    config = load(args.config)  # ConfigError: every reason, file:line: key
    view = await ex.redis_view(config, args.redis) if args.redis else ex.assumed_up()
    geoip: Path | None = args.geoip
    if geoip is None and DEFAULT_GEOIP.exists():
        geoip = DEFAULT_GEOIP
    authority = ex.offline_authority(config, view, str(geoip) if geoip else None,
                                     str(args.asn_db) if args.asn_db else None)
    return ex.explain(authority, args.name, args.type, args.client, args.ecs,
                      cache_note=("offline (--config): no running server's cache to look at"))


def _cmd_explain(args: argparse.Namespace) -> int:
    from gslb.explain import render

    params = {"name": args.name, "type": args.type, "client": args.client}
    if args.ecs:
        params["ecs"] = args.ecs
    try:
        doc = asyncio.run(_explain_offline(args) if args.config
                          else _fetch_explain(args.admin, params))
    except ConfigError as exc:
        _print_config_error(exc)
        return 1
    except ValueError as exc:  # a bad parameter (the server's 400 too)
        print(f"gslb explain: {exc}", file=sys.stderr)
        return 2
    except (GslbError, OSError) as exc:
        print(f"gslb explain: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # the admin server's answer unreadable
        print(f"gslb explain: cannot ask {args.admin}/api/v1/explain: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=1) if args.json else render(doc), end="" if not args.json
          else "\n")
    return 0


def _explain_parser(sub: Any) -> None:
    """``gslb explain NAME``: why a client gets the answer it gets."""
    explain = sub.add_parser("explain", help="why a client gets this answer: the chain of "
                             "reasons of a running nameserver (or of --config)")
    explain.add_argument("name", help="the name asked, e.g. www.gslb.example.com")
    explain.add_argument("--type", default="A", choices=("A", "AAAA"), type=str.upper,
                         help="query type (default A)")
    explain.add_argument("--client", default="127.0.0.1", metavar="IP",
                         help="the packet's source address (default 127.0.0.1)")
    explain.add_argument("--ecs", metavar="SUBNET",
                         help="an EDNS Client Subnet the query carries, e.g. 192.0.2.0/24")
    explain.add_argument("--admin", default=f"http://{DEFAULT_ADMIN}", metavar="URL",
                         help=f"the running nameserver's admin server (default "
                         f"http://{DEFAULT_ADMIN})")
    explain.add_argument("--config", nargs="+", metavar="FILE",
                         help="explain from these config files instead of asking a server")
    explain.add_argument("--redis", metavar="URL", help="with --config: the live health "
                         "in this Redis (loaded once); without it every origin is up")
    explain.add_argument("--geoip", type=Path, metavar="PATH", help="with --config: the "
                         f"GeoIP country database (default {DEFAULT_GEOIP} when present)")
    explain.add_argument("--asn-db", type=Path, metavar="PATH",
                         help="with --config: the ASN database (asns maps)")
    explain.add_argument("--json", action="store_true", help="print the document as JSON")
    explain.set_defaults(func=_cmd_explain)


def _cmd_geoip_build(args: argparse.Namespace) -> int:
    from gslb.geoip_build import DEFAULT_OUT, DEFAULT_V4, DEFAULT_V6, build

    out: Path = args.out or DEFAULT_OUT
    v4: Path = args.v4 or DEFAULT_V4
    v6_given: Path = args.v6 or DEFAULT_V6
    if args.if_missing and out.exists():
        print(f"{out} exists; not rebuilding (drop --if-missing to rebuild)")
        return 0
    v6 = v6_given if v6_given.exists() else None
    if not v4.exists():
        print(f"gslb geoip build: {v4} not found: install Debian's tor-geoipdb "
              "(apt-get install -y tor-geoipdb) or pass --v4 PATH", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = build(v4, v6, out)
    print(f"wrote {out}: {stats.networks} networks in {stats.seconds:.1f} s")
    return 0


def _cmd_dnssec_keygen(args: argparse.Namespace) -> int:
    from gslb.dns.dnssec import SigningKey, write_key

    zone = args.zone.lower().rstrip(".") + "."
    key = SigningKey.generate(zone, args.algorithm)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        base = write_key(key, args.out)
    except OSError as exc:
        print(f"gslb dnssec keygen: cannot write the key into {args.out}: {exc}",
              file=sys.stderr)
        return 1
    print(base)
    return 0


def _cmd_dnssec_ds(args: argparse.Namespace) -> int:
    from gslb.dns.dnssec import FLAG_SEP, KeyFileError, ds_text, read_public

    zone = args.zone.lower().rstrip(".") + "."
    dnskeys: list[bytes] = []
    if args.key:  # the public half is all a DS needs
        try:
            dnskeys = [read_public(path, zone)[1] for path in args.key]
        except KeyFileError as exc:
            print(f"gslb dnssec ds: {exc}", file=sys.stderr)
            return 1
    else:
        config = _load(args.config)
        if config is None:
            return 1
        found = config.zones.get(zone)
        if found is None or found.dnssec is None:
            print(f"gslb dnssec ds: zone {zone} has no dnssec section in "
                  f"{', '.join(args.config)}", file=sys.stderr)
            return 1
        dnskeys = [k.key.dnskey for k in found.dnssec.keys]
    sep = [dnskey for dnskey in dnskeys if dnskey[1] & FLAG_SEP]
    if not sep:
        print(f"gslb dnssec ds: no key of {zone} has the SEP flag (257): the parent's DS "
              "points at one", file=sys.stderr)
        return 1
    for dnskey in sep:
        print(f"{zone} {args.ttl} IN DS {ds_text(zone, dnskey)}")
    return 0


def _dnssec_parser(sub: Any) -> None:
    """``gslb dnssec keygen`` and ``gslb dnssec ds``."""
    dnssec = sub.add_parser("dnssec", help="DNSSEC keys: make one, print the DS for the parent")
    dsub = dnssec.add_subparsers(dest="dnssec_command", required=True)
    keygen = dsub.add_parser("keygen", help="write a new key pair (BIND's file format)")
    keygen.add_argument("--zone", required=True, help="the zone the key signs")
    keygen.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="folder for K<zone>.+<alg>+<tag>.key and .private (mode 600)")
    keygen.add_argument("--algorithm", type=int, choices=[13, 15], default=13,
                        help="13 ECDSAP256SHA256 (default) or 15 ED25519")
    keygen.set_defaults(func=_cmd_dnssec_keygen)
    ds = dsub.add_parser("ds", help="print the DS records (SHA-256) to put in the parent zone")
    ds.add_argument("--zone", required=True, help="the signed zone")
    where = ds.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", action="append", metavar="FILE",
                       help="the configuration naming the zone's keys (repeatable)")
    where.add_argument("--key", action="append", metavar="BASENAME",
                       help="a key's K<zone>.+<alg>+<tag> basename or file (repeatable)")
    ds.add_argument("--ttl", type=int, default=3600, help="TTL written (default 3600 s)")
    ds.set_defaults(func=_cmd_dnssec_ds)


def _cmd_drill(args: argparse.Namespace) -> int:
    from gslb import drill

    config = _load(args.config)
    if config is None:
        return 1

    async def run() -> drill.Report:
        drill.check_names(config, args.down.split(","), ())  # before any wait for Redis
        health = overrides = None
        if args.redis is not None:
            health, overrides = await drill.read_health(config, args.redis)
        down, silent = drill.check_names(config, args.down.split(","), args.vantage_down or (),
                                         health.known_vantages() if health else ())
        return drill.drill(config, down, silent=silent, health=health, overrides=overrides)

    try:
        report = asyncio.run(run())
    except drill.DrillError as exc:
        print(f"gslb drill: {exc}", file=sys.stderr)
        return 2
    except GslbError as exc:
        print(f"gslb drill: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(report.text(changed_only=args.changed))
    return 0


def _drill_parser(sub: Any) -> None:
    drill = sub.add_parser("drill", help="what if these origins go down: every place's answers "
                           "now and then (changes nothing)")
    drill.add_argument("--down", required=True, metavar="ORIGIN[,ORIGIN...]",
                       help="the origins to take down in the what-if view")
    drill.add_argument("--vantage-down", action="append", metavar="NAME",
                       help="treat this vantage's reports as stale in the what-if view "
                       "(the quorum decides; repeatable)")
    drill.add_argument("--config", action="append", required=True, metavar="FILE",
                       help="YAML configuration file (repeatable)")
    drill.add_argument("--redis", metavar="URL",
                       help="now is the live health and drains, read once from Redis "
                       "(default: every origin up)")
    drill.add_argument("--json", action="store_true", help="print the rows as JSON")
    drill.add_argument("--changed", action="store_true",
                       help="print only the rows that change (text)")
    drill.set_defaults(func=_cmd_drill)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gslb", description="DNS-based global server "
                                     "load balancer: an authoritative GSLB nameserver.")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"],
                        help="text lines, or one JSON object per line (ts, level, logger, "
                        "msg and structured fields)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer DNS queries (embedded prober, in-memory state)")
    serve.add_argument("--config", action="append", required=True, metavar="FILE",
                       help="YAML configuration file (repeatable)")
    serve.add_argument("--listen", action="append", metavar="ADDR:PORT",
                       help=f"UDP+TCP address to listen on, repeatable; IPv6 as [::1]:5353 "
                       f"(default {DEFAULT_LISTEN})")
    serve.add_argument("--geoip", type=Path, metavar="PATH",
                       help=f"GeoIP2/GeoLite2/DB-IP mmdb (default {DEFAULT_GEOIP} if present)")
    serve.add_argument("--asn-db", type=Path, metavar="PATH",
                       help="ASN mmdb (GeoLite2-ASN or DB-IP ASN Lite) giving each client's "
                       "AS number, for pools with an `asns` map; default: none")
    serve.add_argument("--redis", metavar="URL",
                       help="read shared health state from Redis (redis://, rediss://, unix://, "
                       "redis+sentinel://; see docs/redis.md) instead of probing in-process")
    serve.add_argument("--admin", metavar="ADDR:PORT",
                       help=f"admin HTTP server: status page, /metrics, /api/v1 "
                       f"(default {DEFAULT_ADMIN}; loopback unless you ask otherwise)")
    serve.add_argument("--no-admin", action="store_true", help="run no admin server")
    serve.add_argument("--admin-token-file", type=Path, metavar="PATH",
                       help=f"bearer token for the admin POST endpoints (default: "
                       f"${TOKEN_ENV}; with neither, they are disabled)")
    serve.add_argument("--overrides-file", type=Path, metavar="PATH",
                       help="without --redis: keep drains in this JSON file across restarts")
    serve.add_argument("--query-log-sample", type=float, default=0.0, metavar="FRACTION",
                       help="log this fraction (0 to 1) of queries on gslb.query (default 0)")
    serve.add_argument("--answer-cache", type=int, default=DEFAULT_ENTRIES, metavar="N",
                       help=f"reuse up to N encoded responses while health holds still "
                       f"(default {DEFAULT_ENTRIES}; 0 disables)")
    serve.add_argument("--workers", type=workers_count, default=1, metavar="N|auto",
                       help="answer from N processes sharing the listen ports (SO_REUSEPORT) "
                       "and one health view; `auto`: one per CPU this process may run on "
                       "(its affinity, e.g. under taskset); default 1 (this process answers)")
    serve.add_argument("--server-id", metavar="TEXT",
                       help="identify this instance to `dig +nsid` (EDNS NSID, RFC 5001) and "
                       "`dig CH TXT id.server` (RFC 4892), e.g. its hostname; default: "
                       "neither is answered")
    _tcp_arguments(serve)
    serve.set_defaults(func=_cmd_serve)

    probe = sub.add_parser("probe", help="probe every origin from one vantage, writing to Redis")
    probe.add_argument("--config", action="append", required=True, metavar="FILE",
                       help="YAML configuration file (repeatable)")
    probe.add_argument("--vantage", required=True, metavar="NAME",
                       help="this worker's vantage point, as declared under `vantages:`")
    probe.add_argument("--redis", required=True, metavar="URL",
                       help="where to write reports (see docs/redis.md)")
    probe.set_defaults(func=_cmd_probe)

    check = sub.add_parser("check", help="validate configuration files without serving")
    check.add_argument("config", nargs="+", help="YAML configuration file(s)")
    check.set_defaults(func=_cmd_check)

    status = sub.add_parser("status", help="show a running nameserver's status as tables")
    status.add_argument("--admin", default=f"http://{DEFAULT_ADMIN}", metavar="URL",
                        help=f"the admin server (default http://{DEFAULT_ADMIN})")
    status.add_argument("--json", action="store_true", help="print the status JSON as is")
    status.set_defaults(func=_cmd_status)

    geoip = sub.add_parser("geoip", help="GeoIP data")
    geoip_sub = geoip.add_subparsers(dest="geoip_command", required=True)
    gbuild = geoip_sub.add_parser("build", help="build the country mmdb from tor-geoipdb data")
    gbuild.add_argument("--v4", type=Path, help="IPv4 ranges file, tor-geoipdb format "
                        "(default /usr/share/tor/geoip)")
    gbuild.add_argument("--v6", type=Path, help="IPv6 ranges file, tor-geoipdb format "
                        "(default /usr/share/tor/geoip6; skipped when absent)")
    gbuild.add_argument("--out", type=Path, help=f"output mmdb (default {DEFAULT_GEOIP})")
    gbuild.add_argument("--if-missing", action="store_true",
                        help="do nothing when the output file exists")
    gbuild.set_defaults(func=_cmd_geoip_build)
    _dnssec_parser(sub)
    _drill_parser(sub)
    _explain_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from gslb.logs import setup

    args = build_parser().parse_args(argv)
    setup(args.log_level, args.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.func(args))
    return 130
