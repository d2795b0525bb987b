"""The ``origins`` section: servers that can appear in answers (addresses,
weight, location and the health check, read by ``checks``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from gslb.config.loader import MarkedDict
from gslb.config.model import Origin
from gslb.config.validate.checks import check
from gslb.config.validate.places import location
from gslb.config.validate.reader import At, Reader

ORIGIN_KEYS = ("ipv4", "ipv6", "weight", "location", "check", "slow_start",
               "capacity")


def read_origins(r: Reader, defs: Mapping[str, tuple[Any, At]]) -> dict[str, Origin | None]:
    """Each origin of the section, by name (None: it has problems, reported)."""
    return {name: origin(r, name, v, at) for name, (v, at) in defs.items()}


def origin(r: Reader, name: str, value: object, at: At) -> Origin | None:
    """One origin mapping."""
    m = r.mapping(value, at)
    if m is None:
        return None
    before = r.count
    r.fields(m, at, ORIGIN_KEYS)
    addrs: dict[int, tuple[str, ...]] = {4: (), 6: ()}
    for version in (4, 6):
        key = f"ipv{version}"
        if key in m:
            addrs[version] = _addresses(r, m[key], at.key(m, key), version)
    if not addrs[4] and not addrs[6] and "ipv4" not in m and "ipv6" not in m:
        r.report(at, "an origin needs at least one address (ipv4 or ipv6)")
    weight = r.integer(m["weight"], at.key(m, "weight"), 1) if "weight" in m else 1
    place, country = None, None
    if "location" in m:
        place, country = location(r, m["location"], at.key(m, "location"))
    target = (addrs[4] or addrs[6] or ("",))[0]
    health = check(r, m["check"], at.key(m, "check"), target) if "check" in m else None
    slow_start = (r.seconds(m["slow_start"], at.key(m, "slow_start"))
                  if "slow_start" in m else None)
    capacity = _capacity(r, m, at)
    if r.count > before:
        return None
    return Origin(name=name, ipv4=addrs[4], ipv6=addrs[6], weight=weight or 1,
                  location=place, country=country, check=health, slow_start_s=slow_start,
                  capacity=capacity)


def _capacity(r: Reader, m: MarkedDict, at: At) -> float:
    """The origin's ``capacity`` (``least_loaded``): a number above 0,
    default 1."""
    if "capacity" not in m:
        return 1.0
    where = at.key(m, "capacity")
    value = r.number(m["capacity"], where, "capacity")
    if value is not None and value <= 0:
        r.report(where, f"capacity must be above 0, not {value:g}")
    return float(value or 1.0)


def _addresses(r: Reader, value: object, at: At, version: int) -> tuple[str, ...]:
    """``ipv4``/``ipv6``: one address or a list, canonical text, repeats reported."""
    def one(text: object, a: At) -> str | None:
        if (text := r.text(text, a)) is None:
            return None
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            r.report(a, f"bad IPv{version} address {text!r}")
            return None
        if addr.version != version:
            r.report(a, f"{text!r} is an IPv{addr.version} address, not IPv{version}")
            return None
        return str(addr)

    items = r.items(value, at, one, f"IPv{version} address", partial=True) or []
    seen: dict[str, At] = {}
    for addr, a in items:
        if addr in seen:
            r.report(a, f"duplicate address {addr}")
        seen.setdefault(addr, a)
    return tuple(seen)
