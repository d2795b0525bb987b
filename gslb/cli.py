"""Command line: ``gslb serve | probe | check | geoip build``.

The only module that prints or exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gslb.config.model import Config
from gslb.errors import ConfigError, GslbError
from gslb.service import ProbeService, Service

DEFAULT_LISTEN = "127.0.0.1:5353"
DEFAULT_GEOIP = Path("geoip/country.mmdb")


def _print_config_error(exc: ConfigError) -> None:
    for reason in exc.reasons:
        print(reason, file=sys.stderr)
    print(f"{len(exc.reasons)} error(s)", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    from gslb.config import load

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
    from gslb.config import load

    try:
        return load(paths)
    except ConfigError as exc:
        _print_config_error(exc)
        print("not starting: fix the configuration first", file=sys.stderr)
        return None


async def _run_until_signal(part: Service | ProbeService) -> int:
    """Start ``part``, run until SIGINT/SIGTERM, stop it; exit status."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await part.start()
    except OSError as exc:
        print(f"gslb: cannot start: {exc}", file=sys.stderr)
        return 1
    if isinstance(part, Service):
        for host, port in part.addresses:
            print(f"gslb: serving DNS on {host} port {port} (UDP, TCP)", flush=True)
    else:
        print(f"gslb: probing from vantage {part.vantage}", flush=True)
    await stop.wait()
    await part.stop()
    return 0


async def _serve(args: argparse.Namespace) -> int:
    from gslb.dns.server import parse_listen

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
    try:
        service = Service(config, listen, geoip, redis_url=args.redis)
    except (GslbError, OSError, ValueError) as exc:
        print(f"gslb serve: {exc}", file=sys.stderr)
        return 1
    return await _run_until_signal(service)


def _cmd_serve(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))


async def _probe(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    try:
        worker = ProbeService(config, args.vantage, args.redis)
    except (GslbError, ValueError) as exc:
        print(f"gslb probe: {exc}", file=sys.stderr)
        return 1
    return await _run_until_signal(worker)


def _cmd_probe(args: argparse.Namespace) -> int:
    return asyncio.run(_probe(args))


def _cmd_geoip_build(args: argparse.Namespace) -> int:
    from gslb.geoip_build import DEFAULT_OUT, DEFAULT_V4, DEFAULT_V6, build

    out: Path = args.out or DEFAULT_OUT
    v4: Path = args.v4 or DEFAULT_V4
    v6: Path | None = args.v6 or DEFAULT_V6
    if args.if_missing and out.exists():
        print(f"{out} exists; not rebuilding (drop --if-missing to rebuild)")
        return 0
    if not v6.exists():
        v6 = None
    if not v4.exists():
        print(f"gslb geoip build: {v4} not found: install Debian's tor-geoipdb "
              "(apt-get install -y tor-geoipdb) or pass --v4 PATH", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = build(v4, v6, out)
    print(f"wrote {out}: {stats.networks} networks in {stats.seconds:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gslb", description="DNS-based global server "
                                     "load balancer: an authoritative GSLB nameserver.")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="answer DNS queries (embedded prober, in-memory state)")
    serve.add_argument("--config", action="append", required=True, metavar="FILE",
                       help="YAML configuration file (repeatable)")
    serve.add_argument("--listen", action="append", metavar="ADDR:PORT",
                       help=f"UDP+TCP address to listen on, repeatable; IPv6 as [::1]:5353 "
                       f"(default {DEFAULT_LISTEN})")
    serve.add_argument("--geoip", type=Path, metavar="PATH",
                       help=f"GeoIP2/GeoLite2/DB-IP mmdb (default {DEFAULT_GEOIP} if present)")
    serve.add_argument("--redis", metavar="URL",
                       help="read shared health state from Redis (redis://, rediss://, unix://, "
                       "redis+sentinel://; see docs/redis.md) instead of probing in-process")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        return int(args.func(args))
    return 130
