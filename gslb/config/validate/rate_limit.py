"""The ``rate_limit`` section: response rate limiting (``gslb.dns.rrl``,
docs/config.md "rate_limit"). Absent: no limiting."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from gslb.config.model import RateLimit
from gslb.config.validate.reader import At, Reader

RATES = ("responses_per_second", "nodata_per_second", "nxdomains_per_second",
         "referrals_per_second", "errors_per_second")
"""The per-kind rates; each but the first defaults to ``responses_per_second``."""
RATE_LIMIT_KEYS = (*RATES, "all_per_second", "window", "slip", "ipv4_prefix_length",
                   "ipv6_prefix_length", "max_table_size", "exempt", "log_only")

#: Bounds of the integer keys (inclusive).
MAX_RATE = 1_000_000
MAX_SLIP = 10
MIN_TABLE, MAX_TABLE = 100, 10_000_000


def read_rate_limit(r: Reader, value: object, at: At) -> RateLimit | None:
    """The ``rate_limit`` section (an empty mapping: every default);
    None after reporting a problem."""
    if value is None:  # `rate_limit:` with nothing under it: the defaults
        return RateLimit()
    m = r.mapping(value, at)
    if m is None:
        return None
    before = r.count
    r.fields(m, at, RATE_LIMIT_KEYS)
    opt: dict[str, Any] = {}
    for key in (*RATES, "all_per_second"):
        if key in m:
            opt[key] = r.integer(m[key], at.key(m, key), 0, MAX_RATE)
    base = opt.get("responses_per_second", RateLimit().responses_per_second)
    for key in RATES[1:]:
        opt.setdefault(key, base)
    ints = {"slip": (0, MAX_SLIP), "ipv4_prefix_length": (8, 32),
            "ipv6_prefix_length": (16, 128), "max_table_size": (MIN_TABLE, MAX_TABLE)}
    for key, (lo, hi) in ints.items():
        if key in m:
            opt[key] = r.integer(m[key], at.key(m, key), lo, hi)
    if "window" in m:
        opt["window_s"] = r.seconds(m["window"], at.key(m, "window"))
    if "log_only" in m:
        opt["log_only"] = r.boolean(m["log_only"], at.key(m, "log_only"))
    if "exempt" in m:
        found = r.items(m["exempt"], at.key(m, "exempt"), lambda v, a: _network(r, v, a),
                        "network")
        if found is not None:
            opt["exempt"] = tuple(net for net, _ in found)
    if r.count > before:
        return None
    return RateLimit(**opt)


def _network(r: Reader, value: object, at: At) -> IPv4Network | IPv6Network | None:
    """A network in CIDR form (host bits zero) or one address, IPv4 or IPv6."""
    if not isinstance(value, str):
        r.report(at, f"expected a network such as 192.0.2.0/24, got {value!r}")
        return None
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as exc:
        r.report(at, f"not a CIDR network: {exc}")
        return None
