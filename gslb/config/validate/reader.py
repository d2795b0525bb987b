"""What every section of the validator uses: where a value is (``At``), the
collected reasons with the typed readers that add to them (``Reader``), and
domain-name checks.

Each reader takes a loaded YAML value and its ``At``; it returns the value
(typed) or None after recording why not. Nothing raises: the entry point
(``gslb.config.validate.Validator``) raises one ``ConfigError`` at the end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

from gslb.config.loader import Loc, MarkedDict, MarkedList

T = TypeVar("T")

_LABEL = re.compile(r"\*|[a-z0-9_-]{1,63}")


class At:
    """Where a value is: its breadcrumb ``path`` and its ``loc`` in a file.

    A child's path and place are worked out when first read: only an error
    reads them, and a valid config makes several children per record.
    """

    __slots__ = ("_base", "_loc", "_path", "_ref", "_source")

    def __init__(self, path: str, loc: Loc) -> None:
        self._path: str | None = path
        self._loc: Loc | None = loc
        self._base: At | None = None
        self._source: MarkedDict | MarkedList | None = None
        self._ref: str | int = ""

    @classmethod
    def _below(cls, base: At, ref: str | int, loc: Loc | None,
               source: MarkedDict | MarkedList | None) -> At:
        at = cls.__new__(cls)
        at._path, at._loc, at._base, at._ref, at._source = None, loc, base, ref, source
        return at

    @property
    def path(self) -> str:
        """The breadcrumb, e.g. ``pools.web.origins[2]``."""
        if self._path is None:
            assert self._base is not None  # a child always has a base
            base, ref = self._base.path, self._ref
            if isinstance(ref, int):
                self._path = f"{base}[{ref}]"
            else:
                self._path = f"{base}.{ref}" if base else ref
        return self._path

    @property
    def loc(self) -> Loc:
        """Where the value is written."""
        if self._loc is None:
            source, ref = self._source, self._ref
            if isinstance(source, MarkedList) and isinstance(ref, int):
                self._loc = source.item_loc(ref)
            else:
                assert isinstance(source, MarkedDict) and isinstance(ref, str)
                self._loc = source.key_loc(ref)
        return self._loc

    def child(self, key: str, loc: Loc) -> At:
        """The breadcrumb one key deeper, at ``loc``."""
        return At._below(self, key, loc, None)

    def key(self, mapping: MarkedDict, key: str) -> At:
        """The value of ``key`` in ``mapping`` (which lives here), located at the
        key: the line a user reads as "where ``key`` is set"."""
        return At._below(self, key, None, mapping)

    def item(self, seq: MarkedList, index: int) -> At:
        """Item ``index`` of ``seq`` (which lives here)."""
        return At._below(self, index, None, seq)


def kind(value: object) -> str:
    """What ``value`` is, for a message: ``a string``, ``a mapping``, ``null``..."""
    for typ, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                      (str, "a string"), (dict, "a mapping"), (list, "a list")):
        if isinstance(value, typ):
            return name
    return "null" if value is None else type(value).__name__


# -- domain names ------------------------------------------------------------

def absolute(name: str) -> str:
    """``name`` lower-cased with exactly one trailing dot."""
    return name.strip().lower().rstrip(".") + "."


def bad_name(name: str) -> str | None:
    """Why ``name`` (absolute) is not a usable domain name (RFC 1035 section 2.3.4),
    or None when it is fine."""
    if len(name) > 254:
        return f"name {name!r} is longer than 253 characters"
    labels = name[:-1].split(".")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if name == "." or bad is not None:
        return (f"bad domain name {name!r}: each label must be 1-63 characters "
                "of letters, digits, '-' or '_' (or a lone '*')")
    return None


def inside(name: str, zone: str) -> bool:
    """``name`` is ``zone`` or below it (both absolute)."""
    return name == zone or name.endswith("." + zone)


# -- reasons and typed readers -------------------------------------------------

class Reader:
    """Collects reasons ``(Loc, breadcrumb, message)``; the typed readers
    each return None after recording a problem."""

    def __init__(self) -> None:
        self._reasons: list[tuple[Loc, str, str]] = []
        self.files: list[str] = []
        """The files read, in order: reasons are sorted by file in this order."""

    @property
    def count(self) -> int:
        """How many reasons so far (a section compares before and after)."""
        return len(self._reasons)

    def error(self, loc: Loc, path: str, message: str) -> None:
        """Record one problem at ``loc`` for breadcrumb ``path``."""
        self._reasons.append((loc, path, message))

    def report(self, at: At, message: str) -> None:
        """Record one problem with the value at ``at``."""
        self.error(at.loc, at.path, message)

    def reasons(self) -> list[str]:
        """Every reason so far as ``FILE:LINE: KEY.PATH: message``, by file then
        line (repeats dropped)."""
        order = {name: i for i, name in enumerate(self.files)}
        ranked = sorted(self._reasons, key=lambda r: (order.get(r[0].file, -1), r[0].line,
                                                      r[0].col))
        return list(dict.fromkeys(f"{loc}: {path}: {msg}" for loc, path, msg in ranked))

    def mapping(self, value: object, at: At) -> MarkedDict | None:
        """``value`` as a mapping; its duplicate keys are reported."""
        if not isinstance(value, MarkedDict):
            self.report(at, f"expected a mapping, got {kind(value)}")
            return None
        for key, here, first in value.duplicates:
            self.report(at.child(key, here),
                        f"duplicate key {key!r} (first at line {first.line})")
        return value

    def fields(self, m: MarkedDict, at: At, allowed: Sequence[str],
               required: Sequence[str] = ()) -> None:
        """Report keys of ``m`` not in ``allowed`` and ``required`` keys missing."""
        for key in m:
            if key not in allowed:
                self.report(at.key(m, key),
                            f"unknown key {key!r} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in m:
                self.report(at, f"missing required key {key!r}")

    def integer(self, value: object, at: At, lo: int, hi: int | None = None) -> int | None:
        """An integer from ``lo`` to ``hi`` (inclusive; no upper bound when None)."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.report(at, f"expected an integer, got {kind(value)}")
            return None
        if value < lo:
            self.report(at, f"{value} is below {lo}")
            return None
        if hi is not None and value > hi:
            self.report(at, f"{value} is above {hi}")
            return None
        return value

    def seconds(self, value: object, at: At) -> float | None:
        """A finite number of seconds above 0."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.report(at, f"expected a number of seconds, got {kind(value)}")
            return None
        if not 0 < value < float("inf"):
            self.report(at, f"{value} must be above 0 seconds")
            return None
        return float(value)

    def degrees(self, value: object, at: At, limit: int) -> float | None:
        """Decimal degrees from ``-limit`` to ``limit``."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.report(at, f"expected decimal degrees, got {kind(value)}")
            return None
        if not -limit <= value <= limit:
            self.report(at, f"{value} is outside -{limit}..{limit} degrees")
            return None
        return float(value)

    def number(self, value: object, at: At, unit: str, below: float | None = None
               ) -> float | None:
        """A number ≥ 0 (and < ``below`` when given) of ``unit``."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.report(at, f"expected a number of {unit}, got {kind(value)}")
            return None
        if not 0 <= value < (below if below is not None else float("inf")):
            bound = f"0 up to (not including) {below:g}" if below is not None else "0 or more"
            self.report(at, f"{value} {unit} is out of bounds: {bound}")
            return None
        return float(value)

    def text(self, value: object, at: At) -> str | None:
        """A non-empty string."""
        if not isinstance(value, str) or not value:
            self.report(at, f"expected a non-empty string, got {kind(value)}")
            return None
        return value

    def file_of(self, m: MarkedDict, at: At, key: str,
                read: Callable[[Reader, str, At], T | None]) -> tuple[str, T] | None:
        """``m[key]`` (``m`` at ``at``), a path, and what ``read(self,
        path, where)`` makes of that file (a secret file: it reports what
        is wrong with it); None when the key is absent or after a report."""
        if key not in m:
            return None
        where = at.key(m, key)
        path = self.text(m[key], where)
        if path is None:
            return None
        value = read(self, path, where)
        return None if value is None else (path, value)

    def boolean(self, value: object, at: At) -> bool | None:
        """``true`` or ``false``."""
        if not isinstance(value, bool):
            self.report(at, f"expected true or false, got {kind(value)}")
            return None
        return value

    def items(self, value: object, at: At, each: Callable[[object, At], T | None],
              what: str, partial: bool = False) -> list[tuple[T, At]] | None:
        """A single value or a non-empty list of them, each checked by ``each``.

        Returns None when any item is bad, unless ``partial``: then the good ones.
        """
        if isinstance(value, MarkedList):
            if not value:
                self.report(at, f"expected at least one {what}, got an empty list")
                return None
            pairs = [(item, at.item(value, i)) for i, item in enumerate(value)]
        else:
            pairs = [(value, at)]
        good = [(v, a) for v, a in ((each(item, a), a) for item, a in pairs) if v is not None]
        return good if partial or len(good) == len(pairs) else None
