"""Command line: ``gslb serve | check | geoip build``.

The only module that prints or exits.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gslb.errors import ConfigError


def _cmd_check(args: argparse.Namespace) -> int:
    from gslb.config import load

    try:
        config = load(args.config)
    except ConfigError as exc:
        for reason in exc.reasons:
            print(reason, file=sys.stderr)
        print(f"{len(exc.reasons)} error(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(config.zones)} zone(s), {len(config.pools)} pool(s), "
          f"{len(config.origins)} origin(s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gslb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate configuration files without serving")
    check.add_argument("config", nargs="+", help="YAML configuration file(s)")
    check.set_defaults(func=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
