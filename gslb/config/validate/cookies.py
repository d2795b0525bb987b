"""The ``cookies`` section: DNS Cookies (RFC 7873, server cookies of RFC
9018), the shared secret file and whether BADCOOKIE is sent
(docs/config.md "cookies")."""

from __future__ import annotations

from typing import Any

from gslb.config.model import CookieSettings
from gslb.config.secretfile import SecretFileError, read_secret_lines
from gslb.config.validate.reader import At, Reader

COOKIES_KEYS = ("enabled", "secret_file", "require")
#: Hex digits of one secret (128 bits, RFC 9018 section 4.4).
SECRET_HEX = 32
_HEX = frozenset("0123456789abcdefABCDEF")


def read_cookies(r: Reader, value: object, at: At) -> CookieSettings | None:
    """The ``cookies`` section; None after reporting a problem. ``require``
    needs ``secret_file`` (a per-process secret differs between workers and
    nameservers: a client would get BADCOOKIE again and again)."""
    m = r.mapping(value, at)
    if m is None:
        return None
    before = r.count
    r.fields(m, at, COOKIES_KEYS)
    opt: dict[str, Any] = {}
    for key in ("enabled", "require"):
        if key in m:
            opt[key] = r.boolean(m[key], at.key(m, key))
    if (found := r.file_of(m, at, "secret_file", read_secrets)) is not None:
        opt.update(secret_file=found[0], secrets=found[1])
    if opt.get("require") and r.count == before:
        rat = at.key(m, "require")
        if "secret_file" not in m:
            r.report(rat, "require: true needs secret_file: with a secret made per process, "
                          "a client moving between workers or nameservers would get "
                          "BADCOOKIE again and again")
        elif opt.get("enabled") is False:
            r.report(rat, "require: true with enabled: false: no cookie could ever be valid")
    if r.count > before:
        return None
    return CookieSettings(**opt)


def read_secrets(r: Reader, path: str, at: At) -> tuple[bytes, ...] | None:
    """The secrets in ``path``: one or two lines of ``SECRET_HEX`` hex
    digits, the current secret then the previous one (empty lines and ``#``
    comments skipped); None after reporting why not (unreadable, readable
    by others, a bad line, none or more than two)."""
    try:
        lines = read_secret_lines(path)
    except SecretFileError as exc:
        r.report(at, str(exc))
        return None
    if not 1 <= len(lines) <= 2:
        r.report(at, f"{path} holds {len(lines)} secret(s): expected the current secret on "
                     "one line, then maybe the previous one; make one with "
                     f"`openssl rand -hex 16 > {path}`")
        return None
    secrets = []
    for number, text in lines:
        if len(text) != SECRET_HEX or not set(text) <= _HEX:
            r.report(at, f"{path} line {number}: expected {SECRET_HEX} hex digits "
                         f"(a 128-bit secret), got {len(text)} character(s)"
                         + ("" if set(text) <= _HEX else " that are not all hex digits"))
            return None
        secrets.append(bytes.fromhex(text))
    return tuple(secrets)
