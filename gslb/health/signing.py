"""Signed health state: HMAC-SHA256 (RFC 2104, the standard library's
``hmac``) over what a probe writes to Redis, with a secret shared by every
probe and nameserver (``health.report_key_file``, docs/redis.md "Signed
reports"). With it, Redis is a transport, not a trust boundary: a client
without the key can delete state, but cannot write a report, heartbeat,
forget, drain or undrain that a nameserver accepts.

What is signed, as compact JSON of a list (so no two inputs encode alike):

* a report: ``["report", vantage, origin, [[field, value], ...]]``, every
  field of ``VantageReport.to_fields()`` sorted by name;
* a heartbeat: ``["heartbeat", vantage, at]`` (``at`` as the text
  ``"%.6f"`` of the probe's epoch seconds);
* a vantage hash: ``["vantage", vantage, [[field, value], ...]]`` (``at``,
  ``version``, ``pid``, ``host``; not ``redis_at``, which Redis writes);
* a forget: ``["forget", vantage, origin, at]``;
* a drain (hash and message): ``["drain", origin, [[field, value], ...]]``;
  an undrain message: ``["undrain", origin, who, reason, at]``.

The signature travels as the field or message key ``sig`` (64 hex digits).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping

from gslb.config.model import MIN_REPORT_KEY_BYTES, HealthSettings

SIG = "sig"
"""The field (hash) or key (message) holding a signature."""


def _encode(parts: list[object]) -> bytes:
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=True).encode()


def _items(fields: Mapping[str, str]) -> list[list[str]]:
    return [[k, fields[k]] for k in sorted(fields) if k != SIG]


class Signer:
    """Signs and verifies with one shared ``key`` (bytes, at least
    ``MIN_REPORT_KEY_BYTES``; ``ValueError`` otherwise). Signatures are
    lower-case hex; ``verify_*`` compare in constant time and return False
    for a missing or wrong signature."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_REPORT_KEY_BYTES:
            raise ValueError(f"a report key needs at least {MIN_REPORT_KEY_BYTES} bytes")
        self._key = key

    def _sign(self, parts: list[object]) -> str:
        return hmac.new(self._key, _encode(parts), hashlib.sha256).hexdigest()

    def _check(self, parts: list[object], sig: object) -> bool:
        return isinstance(sig, str) and hmac.compare_digest(self._sign(parts), sig)

    def report(self, vantage: str, origin: str, fields: Mapping[str, str]) -> str:
        """The signature of a report's ``fields`` (any ``sig`` among them is
        left out)."""
        return self._sign(["report", vantage, origin, _items(fields)])

    def verify_report(self, vantage: str, origin: str, fields: Mapping[str, str]) -> bool:
        """Whether ``fields[SIG]`` signs the rest of ``fields``."""
        return self._check(["report", vantage, origin, _items(fields)], fields.get(SIG))

    def heartbeat(self, vantage: str, at: float) -> str:
        """The signature of a heartbeat at ``at`` (epoch seconds)."""
        return self._sign(["heartbeat", vantage, f"{at:.6f}"])

    def verify_heartbeat(self, vantage: str, at: float, sig: object) -> bool:
        return self._check(["heartbeat", vantage, f"{at:.6f}"], sig)

    def vantage(self, vantage: str, fields: Mapping[str, str]) -> str:
        """The signature of a vantage hash's probe-written ``fields``."""
        return self._sign(["vantage", vantage, _items(fields)])

    def verify_vantage(self, vantage: str, fields: Mapping[str, str]) -> bool:
        """Whether ``fields[SIG]`` signs the probe-written fields (every
        field but ``sig`` and ``redis_at``)."""
        own = {k: v for k, v in fields.items() if k != "redis_at"}
        return self._check(["vantage", vantage, _items(own)], fields.get(SIG))

    def drain(self, origin: str, fields: Mapping[str, str]) -> str:
        """The signature of a drain's ``fields`` (hash and message)."""
        return self._sign(["drain", origin, _items(fields)])

    def verify_drain(self, origin: str, fields: Mapping[str, str]) -> bool:
        return self._check(["drain", origin, _items(fields)], fields.get(SIG))

    def undrain(self, origin: str, who: str, reason: str, at: float) -> str:
        return self._sign(["undrain", origin, who, reason, f"{at:.6f}"])

    def verify_undrain(self, origin: str, who: str, reason: str, at: float,
                       sig: object) -> bool:
        return self._check(["undrain", origin, who, reason, f"{at:.6f}"], sig)

    def forget(self, vantage: str, origin: str, at: float) -> str:
        return self._sign(["forget", vantage, origin, f"{at:.6f}"])

    def verify_forget(self, vantage: str, origin: str, at: float, sig: object) -> bool:
        return self._check(["forget", vantage, origin, f"{at:.6f}"], sig)


def signer_of(health: HealthSettings) -> Signer | None:
    """The ``Signer`` of ``health.report_key`` (``health.report_key_file``),
    or None when reports are unsigned."""
    return Signer(health.report_key) if health.report_key is not None else None


__all__ = ["SIG", "Signer", "signer_of"]
