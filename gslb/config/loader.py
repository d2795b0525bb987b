"""YAML loading that remembers where every mapping, sequence and value came from.

``read_yaml(path)`` returns plain ``dict``/``list`` subclasses (``MarkedDict``,
``MarkedList``) that carry a ``Loc`` (file, 1-based line, 1-based column) for
themselves, for each key and for each value or item, so that the validator
can point an error at the exact node at fault (octoDNS ``construct_mapping``
style). Mapping keys are always the key's text (``NO`` stays the string
``"NO"``, not YAML 1.1's ``False``). Duplicate keys in one mapping are kept
aside in ``MarkedDict.duplicates`` (PyYAML would silently keep the last one),
for the validator to report with its breadcrumb. Anchors, aliases and merge
keys (``<<``) work as in ``yaml.SafeLoader``.

Three ways to read, one result. With libyaml (PyYAML's C extension), the
common document (no explicit tags, no merge keys, no aliased or non-text
keys) is built straight from libyaml's parse events: no node tree, scalars
resolved and constructed once per distinct text (so equal values share one
object), locations packed into ints. Anything else is composed by libyaml
and constructed by PyYAML (``CLoader``). A document libyaml rejects, and
every document when libyaml is missing, goes through the pure-Python
``Loader``, so an error reads exactly as PyYAML words it, at the same place.
"""

from __future__ import annotations

import contextlib
import gc
import os
from array import array
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode

try:
    from yaml._yaml import CParser as _LibyamlParser
    from yaml.cyaml import CSafeLoader
except ImportError:  # PyYAML built without libyaml: the pure-Python loader only
    _LIBYAML = False
else:
    _LIBYAML = True
CParser: type[_LibyamlParser] | None = _LibyamlParser if _LIBYAML else None
"""libyaml's parser, or None without libyaml (then only the pure-Python loader reads)."""


class Loc(NamedTuple):
    """A place in a config file: ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# A place is kept as one int, ``line << 32 | col`` (both 1-based), and a
# mapping's places in one array of 64-bit ints, key then value for each key
# in the mapping's order: no Loc (and no line int) per node.
_BITS = 32
_LOW = (1 << _BITS) - 1
_SMALL = 8
"""Mappings up to this many keys find a key's places by a scan, not an index."""


def _place(mark: Any) -> int:
    """The packed place (see above) of a YAML mark (0-based ``line`` and
    ``column``; a ``yaml.error.Mark`` or libyaml's own)."""
    place: int = (mark.line + 1) << _BITS | (mark.column + 1)
    return place


def _unpack(file: str, place: int) -> Loc:
    return Loc(file, place >> _BITS, place & _LOW)


class MarkedDict(dict[str, Any]):
    """A mapping that knows where it, each key and each value came from.

    ``file`` is the file name; the places are kept packed (see ``loc``,
    ``key_loc``, ``value_loc``), in the order of the keys: the loader fills
    a MarkedDict, nothing may change it afterwards.
    """

    __slots__ = ("_at", "_dups", "_index", "_pos", "file")

    def __init__(self, file: str = "", at: int = 0) -> None:
        super().__init__()
        self.file = file
        self._at = at
        self._pos = array("Q")
        self._dups: list[tuple[str, Loc, Loc]] | None = None
        self._index: dict[str, int] | None = None

    @property
    def loc(self) -> Loc:
        """Where the mapping starts."""
        return _unpack(self.file, self._at)

    @property
    def duplicates(self) -> list[tuple[str, Loc, Loc]]:
        """(key, location of the repeat, location of the first occurrence)
        for each key written again in this mapping."""
        return self._dups if self._dups is not None else []

    @property
    def key_locs(self) -> dict[str, Loc]:
        """Where each key is written."""
        return {key: self.key_loc(key) for key in self}

    @property
    def value_locs(self) -> dict[str, Loc]:
        """Where each value starts."""
        return {key: self.value_loc(key) for key in self}

    def _slot(self, key: str) -> int | None:
        """Where the places of ``key`` are in ``_pos`` (None: not a key)."""
        if len(self) <= _SMALL:
            for i, k in enumerate(self):
                if k == key:
                    return 2 * i
            return None
        index = self._index
        if index is None:
            index = self._index = {k: 2 * i for i, k in enumerate(self)}
        return index.get(key)

    def key_loc(self, key: str) -> Loc:
        """Where ``key`` is written (the mapping's own place if unknown)."""
        i = self._slot(key)
        return self.loc if i is None else _unpack(self.file, self._pos[i])

    def value_loc(self, key: str) -> Loc:
        """Where the value of ``key`` starts (the mapping's own place if unknown)."""
        i = self._slot(key)
        return self.loc if i is None else _unpack(self.file, self._pos[i + 1])

    def _set(self, key: str, value: Any, key_at: int, value_at: int) -> None:
        """Add ``key`` (or give it a new value and places)."""
        if key in self:
            i = 2 * list(self).index(key)
            self._pos[i], self._pos[i + 1] = key_at, value_at
        else:
            self._pos.append(key_at)
            self._pos.append(value_at)
        self[key] = value
        self._index = None


class MarkedList(list[Any]):
    """A sequence that knows where it and each item came from."""

    __slots__ = ("_at", "_items", "file")

    def __init__(self, file: str = "", at: int = 0) -> None:
        super().__init__()
        self.file = file
        self._at = at
        self._items = array("Q")

    @property
    def loc(self) -> Loc:
        """Where the sequence starts."""
        return _unpack(self.file, self._at)

    @property
    def item_locs(self) -> list[Loc]:
        """Where each item starts."""
        return [_unpack(self.file, at) for at in self._items]

    def item_loc(self, index: int) -> Loc:
        """Where item ``index`` starts."""
        items = self._items
        return _unpack(self.file, items[index]) if index < len(items) else self.loc


# -- node trees: the pure-Python Loader and libyaml's CLoader ----------------

def _construct_marked_map(self: Any, node: yaml.MappingNode) -> Iterator[MarkedDict]:
    data = MarkedDict(self.file, _place(node.start_mark))
    yield data
    # Duplicates among the keys written here; keys merged in with "<<" may
    # be overridden, as YAML's merge-key spec allows.
    own: dict[str, Loc] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            here = _unpack(self.file, _place(key_node.start_mark))
            if key_node.value in own:
                if data._dups is None:
                    data._dups = []
                data._dups.append((key_node.value, here, own[key_node.value]))
            else:
                own[key_node.value] = here
    self.flatten_mapping(node)
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found a non-scalar key", key_node.start_mark)
        data._set(str(key_node.value), self.construct_object(value_node, deep=True),
                  _place(key_node.start_mark), _place(value_node.start_mark))


def _construct_marked_seq(self: Any, node: yaml.SequenceNode) -> Iterator[MarkedList]:
    data = MarkedList(self.file, _place(node.start_mark))
    data._items = array("Q", [_place(item.start_mark) for item in node.value])
    yield data
    data.extend(self.construct_object(item, deep=True) for item in node.value)


class _Marking:
    """What ``Loader`` and ``CLoader`` share: the file name put in every
    ``Loc``, and the constructors of ``MarkedDict``/``MarkedList``."""

    def __init__(self, stream: Any, name: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]
        self.file = name

    construct_marked_map = _construct_marked_map
    construct_marked_seq = _construct_marked_seq

    @classmethod
    def register(cls) -> None:
        """Construct YAML mappings and sequences with the marked types."""
        cls.add_constructor("tag:yaml.org,2002:map",  # type: ignore[attr-defined]
                            cls.construct_marked_map)
        cls.add_constructor("tag:yaml.org,2002:seq",  # type: ignore[attr-defined]
                            cls.construct_marked_seq)


class Loader(_Marking, yaml.SafeLoader):
    """``yaml.SafeLoader`` that builds ``MarkedDict``/``MarkedList`` objects.

    ``stream`` is a text stream; ``name`` is the file name put in every ``Loc``.
    Raises ``yaml.YAMLError`` (with ``problem_mark``) on malformed YAML.
    """


Loader.register()

if _LIBYAML:
    class CLoader(_Marking, CSafeLoader):
        """``Loader`` with libyaml's scanner, parser and composer (same
        constructors); ``stream`` may be the text itself."""

    CLoader.register()


# -- straight from libyaml's events ------------------------------------------

class _Unsupported(Exception):
    """The document needs more than ``_EventBuilder`` does: compose it."""


_STR = "tag:yaml.org,2002:str"
#: Tags a plain scalar may resolve to here (the others need the node path).
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}"
                         for t in ("str", "int", "float", "bool", "null", "timestamp"))


class _EventBuilder:
    """``MarkedDict``/``MarkedList`` objects from libyaml's parse events, equal
    to what ``Loader`` builds from the same text, for documents without
    explicit tags, merge keys, anchored or aliased keys, non-scalar keys,
    duplicate anchors or recursive aliases (``_Unsupported`` on those).
    Scalars are resolved and constructed as ``SafeLoader`` does, once per
    distinct text; equal texts share one object."""

    def __init__(self, parser: _LibyamlParser, file: str) -> None:
        """Build from the events of ``parser`` (a libyaml parser of the text)."""
        self._parser = parser
        # events read as libyaml makes them: always with their marks (the
        # stubs type every mark as optional)
        self._get: Callable[[], Any] = parser.get_event
        self.file = file
        self._anchors: dict[str, tuple[Any, int] | None] = {}  # None: still open
        self._plain: dict[str, Any] = {}
        self._text: dict[str, str] = {}
        self._resolver = yaml.resolver.Resolver()
        self._constructor = yaml.constructor.SafeConstructor()

    def document(self) -> Any:
        """The one document of the text (None when empty)."""
        try:
            get = self._get
            if get().__class__ is not StreamStartEvent:  # pragma: no cover - libyaml
                raise _Unsupported
            event = get()
            if event.__class__ is StreamEndEvent:
                return None
            if event.__class__ is not DocumentStartEvent:  # pragma: no cover
                raise _Unsupported
            value, _ = self._node(get())
            if get().__class__ is not DocumentEndEvent or get().__class__ is not StreamEndEvent:
                raise _Unsupported  # several documents: the error comes from Loader
            return value
        finally:
            self._parser.dispose()

    def _scalar(self, event: Any) -> Any:
        if event.tag is not None:
            raise _Unsupported
        text = event.value
        if not event.implicit[0]:  # quoted, or a block scalar: a string
            return self._text.setdefault(text, text)
        try:
            return self._plain[text]
        except KeyError:
            pass
        # types-PyYAML leaves BaseResolver.resolve unannotated
        tag = self._resolver.resolve(ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag not in _SCALAR_TAGS:
            raise _Unsupported
        if tag == _STR:
            value = self._text.setdefault(text, text)
        else:
            construct = self._constructor.yaml_constructors[tag]
            value = construct(self._constructor, ScalarNode(tag, text))
        self._plain[text] = value
        return value

    def _node(self, event: Any) -> tuple[Any, int]:
        """The value starting with ``event`` and its packed place."""
        cls = event.__class__
        if cls is AliasEvent:
            found = self._anchors.get(event.anchor)
            if found is None:  # undefined, or recursive: Loader's business
                raise _Unsupported
            return found
        anchor = event.anchor
        if anchor is not None:
            if anchor in self._anchors:
                raise _Unsupported
            self._anchors[anchor] = None
        at = _place(event.start_mark)
        if cls is ScalarEvent:
            value: Any = self._scalar(event)
        elif event.tag is not None:
            raise _Unsupported
        elif cls is MappingStartEvent:
            value = self._mapping(at)
        elif cls is SequenceStartEvent:
            value = self._sequence(at)
        else:  # pragma: no cover - libyaml sends nothing else here
            raise _Unsupported
        if anchor is not None:
            self._anchors[anchor] = (value, at)
        return value, at

    def _mapping(self, at: int) -> MarkedDict:
        get, file, text = self._get, self.file, self._text
        data = MarkedDict(file, at)
        add = data._pos.append
        while True:
            event = get()
            if event.__class__ is MappingEndEvent:
                return data
            if event.__class__ is not ScalarEvent or event.tag is not None or (
                    event.anchor is not None):
                raise _Unsupported
            key = event.value
            if key == "<<" and event.implicit[0]:
                raise _Unsupported  # a merge key
            key = text.setdefault(key, key)
            key_at = _place(event.start_mark)
            if key in data:
                if data._dups is None:
                    data._dups = []
                first = next((d[2] for d in data._dups if d[0] == key), None) or (
                    data.key_loc(key))
                data._dups.append((key, _unpack(file, key_at), first))
                value, value_at = self._node(get())
                data._set(key, value, key_at, value_at)
                continue
            value, value_at = self._node(get())
            data[key] = value
            add(key_at)
            add(value_at)

    def _sequence(self, at: int) -> MarkedList:
        get = self._get
        data = MarkedList(self.file, at)
        add = data._items.append
        while True:
            event = get()
            if event.__class__ is SequenceEndEvent:
                return data
            value, value_at = self._node(event)
            data.append(value)
            add(value_at)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (then as before).

    Loading builds millions of small objects that all survive the block;
    each automatic collection would walk all of them again for nothing
    (about half the load time of a 100,000-name zone)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse one YAML document from ``path``.

    Returns the document (``MarkedDict`` for a mapping; None for an empty
    file). Raises ``OSError`` when the file cannot be read and
    ``yaml.YAMLError`` when it is not a single well-formed YAML document
    (always as the pure-Python ``Loader`` words it).
    """
    name = os.fspath(path)
    libyaml = CParser
    if libyaml is not None:
        with open(name, encoding="utf-8") as stream:
            text = stream.read()
        with contextlib.suppress(yaml.YAMLError):
            try:
                return _EventBuilder(libyaml(text), name).document()
            except _Unsupported:
                loader = CLoader(text, name)
                try:
                    return loader.get_single_data()
                finally:
                    loader.dispose()
    # no libyaml, or libyaml refused the text: PyYAML's own words and marks
    with open(name, encoding="utf-8") as stream:
        pure = Loader(stream, name)
        try:
            return pure.get_single_data()
        finally:
            pure.dispose()
