"""The ``alerts`` section: webhooks sent on state changes of ``gslb serve``
(docs/operations.md "Alerts"). Absent: no alerts."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gslb.config.model import ALERT_EVENTS, AlertSettings, Webhook
from gslb.config.secretfile import SecretFileError, read_secret_lines
from gslb.config.validate.reader import At, Reader, kind

ALERTS_KEYS = ("webhooks", "nameserver")
WEBHOOK_KEYS = ("url", "name", "format", "events", "timeout", "retries", "backoff",
                "max_queue", "token_file", "repeat")
FORMATS = ("gslb", "alertmanager")
#: Bounds (inclusive) of the integer keys.
MAX_RETRIES = 20
MIN_QUEUE, MAX_QUEUE = 1, 1_000_000


def read_alerts(r: Reader, section: tuple[object, At] | None) -> AlertSettings:
    """The ``alerts`` section and where (None when no file gives it, or
    ``alerts:`` with nothing under it: no alerts); after reporting a
    problem, no alerts either (the caller raises). Webhook names must
    differ (they label the metrics)."""
    if section is None or section[0] is None:
        return AlertSettings()
    value, at = section
    m = r.mapping(value, at)
    if m is None:
        return AlertSettings()
    before = r.count
    r.fields(m, at, ALERTS_KEYS)
    nameserver = r.text(m["nameserver"], at.key(m, "nameserver")) if "nameserver" in m else None
    hooks: list[Webhook] = []
    if "webhooks" in m:
        found = r.items(m["webhooks"], at.key(m, "webhooks"),
                        lambda v, a: _webhook(r, v, a), "webhook")
        names: dict[str, At] = {}
        for hook, hat in found or ():
            if hook.name in names:
                r.report(hat, f"webhook name {hook.name!r} is used twice (first at "
                              f"{names[hook.name].loc}): give each a name:")
            names.setdefault(hook.name, hat)
            hooks.append(hook)
    if r.count > before:
        return AlertSettings()
    return AlertSettings(tuple(hooks), nameserver)


def _webhook(r: Reader, value: object, at: At) -> Webhook | None:
    m = r.mapping(value, at)
    if m is None:
        return None
    before = r.count
    r.fields(m, at, WEBHOOK_KEYS, required=("url",))
    opt: dict[str, Any] = {}
    url = _url(r, m["url"], at.key(m, "url")) if "url" in m else None
    if "name" in m:
        opt["name"] = r.text(m["name"], at.key(m, "name"))
    if "format" in m:
        fat = at.key(m, "format")
        if m["format"] not in FORMATS:
            r.report(fat, f"expected one of {', '.join(FORMATS)}, got {m['format']!r}")
        opt["format"] = m["format"]
    if "events" in m:
        found = r.items(m["events"], at.key(m, "events"), lambda v, a: _event(r, v, a), "event")
        opt["events"] = frozenset(e for e, _ in found or ())
    for key, field in (("timeout", "timeout_s"), ("backoff", "backoff_s"),
                       ("repeat", "repeat_s")):
        if key in m:
            opt[field] = r.seconds(m[key], at.key(m, key))
    if "retries" in m:
        opt["retries"] = r.integer(m["retries"], at.key(m, "retries"), 0, MAX_RETRIES)
    if "max_queue" in m:
        opt["max_queue"] = r.integer(m["max_queue"], at.key(m, "max_queue"), MIN_QUEUE,
                                     MAX_QUEUE)
    if (token := r.file_of(m, at, "token_file", _token)) is not None:
        opt.update(token_file=token[0], token=token[1])
    if r.count > before or url is None:
        return None
    parts = urlsplit(url)
    opt.setdefault("name", parts.netloc.rpartition("@")[2])
    return Webhook(url=url, **opt)


def _url(r: Reader, value: object, at: At) -> str | None:
    """An ``http://`` or ``https://`` URL with a host."""
    text = r.text(value, at)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        r.report(at, f"not a URL: {exc}")
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        r.report(at, f"expected an http:// or https:// URL with a host, got {text!r}")
        return None
    if parts.username or parts.password:
        r.report(at, "put no credentials in the URL (they would show in logs): use token_file")
        return None
    return text


def _event(r: Reader, value: object, at: At) -> str | None:
    if value not in ALERT_EVENTS:
        got = repr(value) if isinstance(value, str) else kind(value)
        r.report(at, f"expected one of {', '.join(ALERT_EVENTS)}, got {got}")
        return None
    return str(value)


def _token(r: Reader, path: str, at: At) -> str | None:
    """The bearer token in ``path``: one line (``#`` comments and empty
    lines skipped), the file readable by its owner only."""
    try:
        lines = read_secret_lines(path)
    except SecretFileError as exc:
        r.report(at, str(exc))
        return None
    if len(lines) != 1:
        r.report(at, f"{path} holds {len(lines)} line(s): expected the token on one line")
        return None
    return lines[0][1]
