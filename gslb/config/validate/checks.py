"""An origin's ``check``: how the prober checks it (``http``, ``https`` or
``tcp``; port, target, HTTP request and expectations, timing)."""

from __future__ import annotations

import ipaddress
from typing import Any, cast

from gslb.config.loader import MarkedDict
from gslb.config.model import Check, CheckType
from gslb.config.validate.reader import At, Reader

CHECK_KEYS = ("type", "port", "target", "path", "expect", "body", "host", "tls_verify",
              "load", "interval", "timeout", "rise", "fall")
HTTP_ONLY = ("path", "expect", "body", "host", "load")
"""Keys a ``tcp`` check does not take."""


def check(r: Reader, value: object, at: At, default_target: str) -> Check | None:
    """One ``check`` mapping; ``default_target`` is the address it connects to
    unless it gives a ``target`` (the origin's first address)."""
    m = r.mapping(value, at)
    if m is None:
        return None
    r.fields(m, at, CHECK_KEYS, required=("type",))
    kind = _check_type(r, m, at)
    opt: dict[str, Any] = {}
    _endpoint(r, m, at, kind, default_target, opt)
    _http(r, m, at, opt)
    _timing(r, m, at, opt)
    if kind is None or None in opt.values() or not opt.get("target") or "port" not in opt:
        return None
    return Check(type=cast(CheckType, kind), **opt)


def _check_type(r: Reader, m: MarkedDict, at: At) -> str | None:
    """The check's ``type``; keys that type does not take are reported."""
    kind = r.text(m.get("type"), at.key(m, "type")) if "type" in m else None
    if kind is not None and kind not in ("http", "https", "tcp"):
        r.report(at.key(m, "type"), f"unknown check type {kind!r} (allowed: http, https, tcp)")
        kind = None
    for key in m:
        https_only = key == "tls_verify" and kind in ("http", "tcp")
        if https_only or (kind == "tcp" and key in HTTP_ONLY):
            only = "https" if https_only else "http and https"
            r.report(at.key(m, key), f"key {key!r} is only valid for {only} checks")
    return kind


def _endpoint(r: Reader, m: MarkedDict, at: At, kind: str | None, default_target: str,
              opt: dict[str, Any]) -> None:
    """``port`` (default 80, 443 for https, none for tcp) and ``target`` into ``opt``."""
    if "port" in m:
        opt["port"] = r.integer(m["port"], at.key(m, "port"), 1, 65535)
    elif kind == "tcp":
        r.report(at, "missing required key 'port' (tcp checks have no default port)")
    else:
        opt["port"] = 443 if kind == "https" else 80
    if "target" in m:
        text = r.text(m["target"], at.key(m, "target"))
        try:
            opt["target"] = str(ipaddress.ip_address(text or ""))
        except ValueError:
            if text:
                r.report(at.key(m, "target"), f"target {text!r} is not an IP address")
    else:
        opt["target"] = default_target


def _http(r: Reader, m: MarkedDict, at: At, opt: dict[str, Any]) -> None:
    """The HTTP request and what it expects (``path``, ``expect``, ``body``,
    ``host``, ``tls_verify``) into ``opt``."""
    if "path" in m and (path := r.text(m["path"], at.key(m, "path"))) is not None:
        if not path.startswith("/"):
            r.report(at.key(m, "path"), f"path {path!r} must start with '/'")
        opt["path"] = path
    if "expect" in m:
        codes = r.items(m["expect"], at.key(m, "expect"),
                        lambda v, a: r.integer(v, a, 100, 599), "HTTP status")
        opt["expect_status"] = tuple(c for c, _ in codes or ())
    for key, field in (("body", "body"), ("host", "host_header")):
        if key in m:
            opt[field] = r.text(m[key], at.key(m, key))
    if "tls_verify" in m:
        opt["tls_verify"] = r.boolean(m["tls_verify"], at.key(m, "tls_verify"))
    if "load" in m:
        _load(r, m["load"], at.key(m, "load"), opt)


def _load(r: Reader, value: object, at: At, opt: dict[str, Any]) -> None:
    """``load: {header: NAME}`` or ``load: {json: POINTER}`` (RFC 6901: ""
    or starting with "/") into ``opt``."""
    m = r.mapping(value, at)
    if m is None:
        opt["load_header"] = None
        return
    r.fields(m, at, ("header", "json"))
    if len([k for k in ("header", "json") if k in m]) != 1:
        r.report(at, "load needs exactly one of 'header' or 'json'")
        opt["load_header"] = None
        return
    if "header" in m:
        opt["load_header"] = r.text(m["header"], at.key(m, "header"))
        return
    pointer = m["json"]
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        r.report(at.key(m, "json"),
                 f"json must be an RFC 6901 pointer (\"\" or starting with \"/\"), "
                 f"not {pointer!r}")
        opt["load_json"] = None
        return
    opt["load_json"] = pointer


def _timing(r: Reader, m: MarkedDict, at: At, opt: dict[str, Any]) -> None:
    """``interval`` and ``timeout`` (seconds; the timeout no longer than the
    interval), ``rise`` and ``fall`` into ``opt``."""
    for key, field in (("interval", "interval_s"), ("timeout", "timeout_s")):
        if key in m:
            opt[field] = r.seconds(m[key], at.key(m, key))
    for key in ("rise", "fall"):
        if key in m:
            opt[key] = r.integer(m[key], at.key(m, key), 1)
    interval, timeout = opt.get("interval_s", 5.0), opt.get("timeout_s", 2.0)
    if interval is not None and timeout is not None and timeout > interval:
        r.report(at.key(m, "timeout") if "timeout" in m else at,
                 f"timeout {timeout:g} s is longer than interval {interval:g} s")
