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
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import yaml


class Loc(NamedTuple):
    """A place in a config file: ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class MarkedDict(dict[str, Any]):
    """A mapping that knows where it, each key and each value came from."""

    loc: Loc
    key_locs: dict[str, Loc]
    value_locs: dict[str, Loc]
    #: (key, location of the repeat, location of the first occurrence)
    duplicates: list[tuple[str, Loc, Loc]]

    def key_loc(self, key: str) -> Loc:
        """Where ``key`` is written (the mapping's own place if unknown)."""
        return self.key_locs.get(key, self.loc)

    def value_loc(self, key: str) -> Loc:
        """Where the value of ``key`` starts (the mapping's own place if unknown)."""
        return self.value_locs.get(key, self.loc)


class MarkedList(list[Any]):
    """A sequence that knows where it and each item came from."""

    loc: Loc
    item_locs: list[Loc]

    def item_loc(self, index: int) -> Loc:
        """Where item ``index`` starts."""
        return self.item_locs[index] if index < len(self.item_locs) else self.loc


def _loc(file: str, node: yaml.Node) -> Loc:
    return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that builds ``MarkedDict``/``MarkedList`` objects.

    ``stream`` is a text stream; ``name`` is the file name put in every ``Loc``.
    Raises ``yaml.YAMLError`` (with ``problem_mark``) on malformed YAML.
    """

    def __init__(self, stream: Any, name: str) -> None:
        super().__init__(stream)
        self.file = name

    def construct_marked_map(self, node: yaml.MappingNode) -> Iterator[MarkedDict]:
        data = MarkedDict()
        data.loc = _loc(self.file, node)
        data.key_locs, data.value_locs, data.duplicates = {}, {}, []
        yield data
        # Duplicates among the keys written here; keys merged in with "<<" may
        # be overridden, as YAML's merge-key spec allows.
        own: dict[str, Loc] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                here = _loc(self.file, key_node)
                if key_node.value in own:
                    data.duplicates.append((key_node.value, here, own[key_node.value]))
                else:
                    own[key_node.value] = here
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found a non-scalar key", key_node.start_mark)
            key = str(key_node.value)
            data[key] = self.construct_object(value_node, deep=True)
            data.key_locs[key] = _loc(self.file, key_node)
            data.value_locs[key] = _loc(self.file, value_node)

    def construct_marked_seq(self, node: yaml.SequenceNode) -> Iterator[MarkedList]:
        data = MarkedList()
        data.loc = _loc(self.file, node)
        data.item_locs = [_loc(self.file, item) for item in node.value]
        yield data
        data.extend(self.construct_object(item, deep=True) for item in node.value)


Loader.add_constructor("tag:yaml.org,2002:map", Loader.construct_marked_map)
Loader.add_constructor("tag:yaml.org,2002:seq", Loader.construct_marked_seq)


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse one YAML document from ``path`` with ``Loader``.

    Returns the document (``MarkedDict`` for a mapping; None for an empty
    file). Raises ``OSError`` when the file cannot be read and
    ``yaml.YAMLError`` when it is not a single well-formed YAML document.
    """
    name = os.fspath(path)
    with open(name, encoding="utf-8") as stream:
        loader = Loader(stream, name)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
