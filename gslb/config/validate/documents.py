"""The top level: each file's sections gathered into one config, every name
defined once across the files, ``health``, ``rate_limit`` and ``cookies`` each given in one
file at most."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from gslb.config.loader import Loc, MarkedDict
from gslb.config.validate.reader import At, Reader, absolute, kind

TOP_KEYS = ("origins", "pools", "zones", "vantages", "health", "rate_limit", "cookies",
            "alerts")
NAMED_SECTIONS = ("origins", "pools", "zones", "vantages")
"""Top-level sections mapping names to entries; a name may be defined once."""

Defs = dict[str, tuple[Any, At]]
"""The entries of one named section: name as written → (value, where)."""


class Sections(NamedTuple):
    """What the files define: ``named`` (section → ``Defs``; every section of
    ``NAMED_SECTIONS`` is there, maybe empty) and ``health`` (its value and
    where, or None when no file gives it), ``cookies`` likewise."""

    named: dict[str, Defs]
    health: tuple[Any, At] | None
    #: the ``rate_limit`` section's value and where, or None
    rate_limit: tuple[Any, At] | None = None
    #: the ``cookies`` section's value and where, or None
    cookies: tuple[Any, At] | None = None
    #: the ``alerts`` section's value and where, or None
    alerts: tuple[Any, At] | None = None


def read_sections(r: Reader, documents: Iterable[tuple[str, Any]]) -> Sections:
    """Gather ``(file name, document)`` pairs; each file name is added to
    ``r.files``. A document that is not a mapping, an unknown top-level key, a
    name defined again (zone names compared absolute) and a second ``health``
    or ``cookies`` are reported and left out."""
    named: dict[str, Defs] = {k: {} for k in NAMED_SECTIONS}
    first: dict[str, dict[str, At]] = {k: {} for k in NAMED_SECTIONS}
    health: tuple[Any, At] | None = None
    rate_limit: tuple[Any, At] | None = None
    cookies: tuple[Any, At] | None = None
    alerts: tuple[Any, At] | None = None
    for name, doc in documents:
        r.files.append(name)
        if not isinstance(doc, MarkedDict):
            r.report(At("(top)", getattr(doc, "loc", Loc(name, 1, 1))),
                     f"the file must be a mapping with keys {', '.join(TOP_KEYS)}, "
                     f"got {kind(doc) if doc is not None else 'an empty document'}")
            continue
        top = At("", doc.loc)
        r.mapping(doc, top)
        r.fields(doc, top, TOP_KEYS)
        if "health" in doc:
            hat = top.key(doc, "health")
            if health is not None:
                r.report(hat, f"health is given twice (first at {health[1].loc})")
            else:
                health = (doc["health"], hat)
        if "rate_limit" in doc:
            rate_limit = _once(r, doc, top, "rate_limit", rate_limit)
        if "cookies" in doc:
            cookies = _once(r, doc, top, "cookies", cookies)
        if "alerts" in doc:
            alerts = _once(r, doc, top, "alerts", alerts)
        for section in (k for k in NAMED_SECTIONS if k in doc):
            _named(r, section, doc[section], top.key(doc, section), named[section],
                   first[section])
    return Sections(named, health, rate_limit, cookies, alerts)


def _once(r: Reader, doc: MarkedDict, top: At, key: str,
          first: tuple[Any, At] | None) -> tuple[Any, At] | None:
    """A section given in one file at most: ``doc[key]`` and where, or
    ``first`` (reported) when an earlier file gave it."""
    at = top.key(doc, key)
    if first is not None:
        r.report(at, f"{key} is given twice (first at {first[1].loc})")
        return first
    return (doc[key], at)


def _named(r: Reader, section: str, value: object, at: At, defs: Defs,
           first: dict[str, At]) -> None:
    """One file's ``section`` mapping into ``defs``; ``first`` is where each
    name (absolute for zones) was defined first."""
    body = r.mapping(value, at)
    if body is None:
        return
    for key, entry in body.items():
        ident = absolute(key) if section == "zones" else key
        kat = at.key(body, key)
        if ident in first:
            r.report(kat, f"{section[:-1]} {key!r} is defined twice "
                          f"(first at {first[ident].loc})")
            continue
        first[ident] = kat
        defs[key] = (entry, at.key(body, key))
