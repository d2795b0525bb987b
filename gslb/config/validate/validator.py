"""``Validator``: the validator's one entry point (see the package's
docstring), reading each section in turn and raising one ``ConfigError``."""


from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any, cast

from gslb.config.loader import Loc
from gslb.config.model import Config, CookieSettings, HealthSettings, Origin, Pool, Vantage
from gslb.config.validate.alerts import read_alerts
from gslb.config.validate.cookies import read_cookies
from gslb.config.validate.documents import read_sections
from gslb.config.validate.health import read_health
from gslb.config.validate.origins import read_origins
from gslb.config.validate.pools import read_pools
from gslb.config.validate.rate_limit import read_rate_limit
from gslb.config.validate.reader import Reader
from gslb.config.validate.vantages import read_vantages
from gslb.config.validate.zones import read_zones
from gslb.errors import ConfigError

__all__ = ["Validator"]


class Validator:
    """Collects reasons while building a ``Config`` from loaded documents.

    Use ``error()`` to add a problem found elsewhere (unreadable file, YAML
    syntax error), then ``build(documents)``.
    """

    def __init__(self) -> None:
        self._r = Reader()

    def error(self, loc: Loc, path: str, message: str) -> None:
        """Record one problem at ``loc`` for breadcrumb ``path``."""
        self._r.error(loc, path, message)

    def reasons(self) -> list[str]:
        """Every reason so far as ``FILE:LINE: KEY.PATH: message``, by file then line."""
        return self._r.reasons()

    def build(self, documents: Iterable[tuple[str, Any]]) -> Config:
        """Validate ``(file name, document)`` pairs as one merged config.

        Raises ``ConfigError`` listing every reason (including any added with
        ``error()`` before) when anything is wrong.
        """
        r = self._r
        sections = read_sections(r, documents)
        named = sections.named
        origins = read_origins(r, named["origins"])
        pools = read_pools(r, named["pools"], origins, named["vantages"])
        zones = read_zones(r, named["zones"], named["pools"])
        vantages = read_vantages(r, named["vantages"])
        health = (read_health(r, *sections.health, len(vantages)) if sections.health
                  else HealthSettings())
        rate_limit = read_rate_limit(r, *sections.rate_limit) if sections.rate_limit else None
        cookies = read_cookies(r, *sections.cookies) if sections.cookies else CookieSettings()
        alerts = read_alerts(r, sections.alerts)
        if r.count:
            raise ConfigError(r.reasons())
        # no reason: every entry read is valid (an invalid one is None)
        return Config(
            zones=MappingProxyType(zones),
            origins=MappingProxyType(cast(dict[str, Origin], origins)),
            pools=MappingProxyType(cast(dict[str, Pool], pools)),
            files=tuple(r.files),
            vantages=MappingProxyType(cast(dict[str, Vantage], vantages)),
            health=cast(HealthSettings, health),
            rate_limit=rate_limit,
            cookies=cast(CookieSettings, cookies),
            alerts=alerts,
        )
