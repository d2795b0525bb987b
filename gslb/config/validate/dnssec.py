"""A zone's ``dnssec`` key: its signing keys (BIND key files, the private
one readable by its owner only) and the RRSIG timing (docs/dnssec.md)."""

from __future__ import annotations

import os

from gslb.config.model import Dnssec, KeyState, ZoneKey
from gslb.config.secretfile import read_secret_text
from gslb.config.validate.reader import At, Reader
from gslb.dns.dnssec import KeyFileError, read_key
from gslb.dns.signer import (
    DEFAULT_REFRESH_S,
    DEFAULT_SKEW_S,
    DEFAULT_VALIDITY_S,
    SigningPolicy,
)

DNSSEC_KEYS = ("keys", "validity", "inception_skew", "refresh", "dnskey_ttl")
KEY_KEYS = ("file", "state")
KEY_STATES: tuple[KeyState, ...] = ("active", "published")
#: Shortest RRSIG validity accepted, seconds: a resolver must be able to
#: cache the longest TTL it may see within it.
MIN_VALIDITY_S = 3600
#: Longest validity accepted, seconds (RRSIG times are 32-bit serial
#: numbers, RFC 4034 section 3.1.5: up to 68 years; a year is plenty).
MAX_VALIDITY_S = 366 * 86400
DEFAULT_DNSKEY_TTL = 3600


def read_dnssec(r: Reader, zone: str, value: object, at: At) -> Dnssec | None:
    """The ``dnssec`` mapping of ``zone``; None after reporting a problem.
    Key files are read now (so a reload with a bad key keeps the old
    config); a relative ``file`` is taken from the folder of the config
    file that names it."""
    m = r.mapping(value, at)
    if m is None:
        return None
    before = r.count
    r.fields(m, at, DNSSEC_KEYS, required=("keys",))
    validity = _whole_seconds(r, m, at, "validity", DEFAULT_VALIDITY_S, MIN_VALIDITY_S,
                              MAX_VALIDITY_S)
    skew = _whole_seconds(r, m, at, "inception_skew", DEFAULT_SKEW_S, 0, 7 * 86400)
    refresh = _whole_seconds(r, m, at, "refresh", DEFAULT_REFRESH_S, 60, MAX_VALIDITY_S)
    ttl = _whole_seconds(r, m, at, "dnskey_ttl", DEFAULT_DNSKEY_TTL, 0, 2**31 - 1)
    keys = _keys(r, zone, m["keys"], at.key(m, "keys")) if "keys" in m else None
    if r.count > before or keys is None:
        return None
    assert validity is not None and skew is not None and refresh is not None and ttl is not None
    if refresh * 2 > validity:
        r.report(at.key(m, "refresh") if "refresh" in m else at,
                 f"refresh ({refresh} s) must be at most half of validity ({validity} s): "
                 "an RRSIG sent late in a period must stay valid as long as resolvers "
                 "keep it")
        return None
    return Dnssec(tuple(keys), SigningPolicy(validity, skew, refresh), ttl)


def _whole_seconds(r: Reader, m: object, at: At, key: str, default: int, lo: int,
                   hi: int) -> int | None:
    """``m[key]``, whole seconds from ``lo`` to ``hi``, or ``default``."""
    assert isinstance(m, dict)
    if key not in m:
        return default
    return r.integer(m[key], at.key(m, key), lo, hi)  # type: ignore[arg-type]


def _keys(r: Reader, zone: str, value: object, at: At) -> list[ZoneKey] | None:
    """The ``keys`` list: each key read from its files, at least one
    active, none twice, one algorithm (RFC 6840 section 5.11 lets a
    validator insist that every algorithm of the DNSKEY RRset signs
    everything: gslb keeps one at a time)."""
    items = r.items(value, at, lambda v, a: _key(r, zone, v, a), "key")
    if items is None:
        return None
    keys = [k for k, _a in items]
    seen: dict[int, At] = {}
    for k, a in items:
        if k.key.tag in seen:
            r.report(a, f"key {k.file} (tag {k.key.tag}) is listed twice "
                        f"(first at line {seen[k.key.tag].loc.line})")
            return None
        seen[k.key.tag] = a
    if not any(k.state == "active" for k in keys):
        r.report(at, "at least one key must be active (state: active): it signs the zone")
        return None
    algorithms = {k.key.algorithm for k in keys}
    if len(algorithms) > 1:
        r.report(at, f"keys of algorithms {sorted(algorithms)}: every key of a zone must "
                     "have the same algorithm (an algorithm rollover is not supported)")
        return None
    return keys


def _key(r: Reader, zone: str, value: object, at: At) -> ZoneKey | None:
    """One ``{file, state}`` entry (a bare string: the file, active)."""
    if isinstance(value, str):
        m: dict[str, object] = {"file": value}
        file_at = at
    else:
        mm = r.mapping(value, at)
        if mm is None:
            return None
        before = r.count
        r.fields(mm, at, KEY_KEYS, required=("file",))
        if r.count > before:
            return None
        m, file_at = mm, at.key(mm, "file")
    path = r.text(m["file"], file_at)
    state: object = m.get("state", "active")
    if state not in KEY_STATES:
        r.report(at.key(m, "state") if not isinstance(value, str) else at,  # type: ignore[arg-type]
                 f"state must be one of {', '.join(KEY_STATES)}, not {state!r}")
        return None
    if path is None:
        return None
    folder = os.path.dirname(file_at.loc.file)
    full = path if os.path.isabs(path) or not folder else os.path.join(folder, path)
    try:
        key = read_key(full, zone, read_secret_text)
    except (KeyFileError, ValueError) as exc:  # SecretFileError: a ValueError
        r.report(file_at, str(exc))
        return None
    return ZoneKey(path, state, key)


__all__ = ["DNSSEC_KEYS", "KEY_KEYS", "KEY_STATES", "read_dnssec"]
