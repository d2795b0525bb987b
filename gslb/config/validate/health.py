"""The ``health`` section: how nameservers combine the vantages' reports
(quorum) and when a vantage's reports go stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gslb.config.model import MIN_REPORT_KEY_BYTES, HealthSettings
from gslb.config.validate.reader import At, Reader

HEALTH_KEYS = ("quorum", "stale_after", "heartbeat_interval", "resync_interval", "unknown",
               "report_key_file")


def read_health(r: Reader, value: object, at: At, vantages: int) -> HealthSettings | None:
    """The ``health`` section; ``vantages`` is how many are declared (0: none)."""
    m = r.mapping(value, at)
    if m is None:
        return None
    before = r.count
    r.fields(m, at, HEALTH_KEYS)
    opt: dict[str, Any] = {}
    if "quorum" in m and (quorum := m["quorum"]) != "majority":
        qat = at.key(m, "quorum")
        if isinstance(quorum, str):
            r.report(qat, f"expected 'majority' or an integer, got {quorum!r}")
        else:
            opt["quorum"] = r.integer(quorum, qat, 1)
            if opt["quorum"] and vantages and quorum > vantages:
                r.report(qat, f"quorum {quorum} is more than the {vantages} "
                              "declared vantages")
    if "unknown" in m:
        if m["unknown"] in ("up", "down"):
            opt["unknown_up"] = m["unknown"] == "up"
        else:
            r.report(at.key(m, "unknown"), f"expected up or down, got {m['unknown']!r}")
    if (found := r.file_of(m, at, "report_key_file", _read_key)) is not None:
        opt.update(report_key_file=found[0], report_key=found[1])
    for key in ("stale_after", "heartbeat_interval", "resync_interval"):
        if key in m:
            opt[f"{key}_s"] = r.seconds(m[key], at.key(m, key))
    defaults = HealthSettings()
    stale = opt.get("stale_after_s", defaults.stale_after_s)
    beat = opt.get("heartbeat_interval_s", defaults.heartbeat_interval_s)
    if stale is not None and beat is not None and stale < 2 * beat:
        r.report(at.key(m, "stale_after") if "stale_after" in m else at,
                 f"stale_after {stale:g} s is below 2 × heartbeat_interval ({beat:g} s): "
                 "a live vantage would look stale")
    if r.count > before:
        return None
    return HealthSettings(**opt)


def _read_key(r: Reader, path: str, at: At) -> bytes | None:
    """The secret in ``path``: its first line, white space stripped; None
    after reporting an unreadable file or a secret too short."""
    try:
        lines = Path(path).read_text(encoding="utf-8").strip().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        r.report(at, f"cannot read the report key: {exc}")
        return None
    key = lines[0].strip().encode() if lines else b""
    if len(key) < MIN_REPORT_KEY_BYTES:
        r.report(at, f"{path} holds {len(key)} byte(s) of key, fewer than "
                     f"{MIN_REPORT_KEY_BYTES}: make one with `openssl rand -hex 32 > {path}`")
        return None
    return key
