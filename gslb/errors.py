"""Exceptions shared by every part of gslb."""

from __future__ import annotations

from collections.abc import Iterable


class GslbError(Exception):
    """Base class of every error gslb raises on purpose."""


class ConfigError(GslbError):
    """A configuration that cannot be served.

    ``reasons`` holds every problem found, each already formatted as
    ``file:line: key.path: message`` so a user can fix them all in one pass.
    """

    def __init__(self, reasons: Iterable[str]) -> None:
        self.reasons: tuple[str, ...] = tuple(reasons)
        super().__init__("\n".join(self.reasons) or "invalid configuration")
