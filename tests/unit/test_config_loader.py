"""The YAML loader remembers file, line and column of every node."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gslb.config.loader import Loc, MarkedDict, MarkedList, read_yaml


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


def test_locations_of_mappings_keys_and_items(tmp_path: Path) -> None:
    name = write(tmp_path, "a:\n  b: [x, y]\n  c:\n    - 1\n    - {d: 2}\n")
    doc = read_yaml(name)
    assert isinstance(doc, MarkedDict) and isinstance(doc["a"]["b"], MarkedList)
    assert doc.loc == Loc(name, 1, 1)
    assert doc["a"].key_loc("c") == Loc(name, 3, 3)
    assert doc["a"].value_loc("b") == Loc(name, 2, 6)
    assert doc["a"]["b"].item_locs == [Loc(name, 2, 7), Loc(name, 2, 10)]
    assert doc["a"]["c"].item_loc(1) == Loc(name, 5, 7)
    assert doc["a"]["c"][1].loc == Loc(name, 5, 7)
    assert str(doc["a"]["c"][1].loc) == f"{name}:5"


def test_duplicate_keys_are_kept_aside(tmp_path: Path) -> None:
    name = write(tmp_path, "a: 1\nb: 2\na: 3\n")
    doc = read_yaml(name)
    assert doc["a"] == 3
    assert doc.duplicates == [("a", Loc(name, 3, 1), Loc(name, 1, 1))]


def test_anchors_aliases_and_merge_keys(tmp_path: Path) -> None:
    name = write(tmp_path, "base: &b {x: 1, y: 2}\nsame: *b\nmore:\n  <<: *b\n  y: 3\n")
    doc = read_yaml(name)
    assert doc["same"] is doc["base"]
    assert doc["more"] == {"x": 1, "y": 3}
    assert doc["more"].duplicates == []  # overriding a merged key is allowed
    assert doc["more"].key_loc("y") == Loc(name, 5, 3)


def test_keys_stay_text(tmp_path: Path) -> None:
    # YAML 1.1 would turn NO (Norway) into False and 1 into an int.
    doc = read_yaml(write(tmp_path, "NO: a\n1: b\nyes: c\n"))
    assert list(doc) == ["NO", "1", "yes"]


def test_values_keep_yaml_types(tmp_path: Path) -> None:
    doc = read_yaml(write(tmp_path, "a: 1\nb: 0.5\nc: true\nd: null\ne: '1'\n"))
    assert doc == {"a": 1, "b": 0.5, "c": True, "d": None, "e": "1"}


@pytest.mark.parametrize("text", ["a: [\n", "a: 1\n---\nb: 2\n", "a: *nope\n", "? [a]\n: 1\n"])
def test_malformed_yaml_raises_with_a_mark(tmp_path: Path, text: str) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as info:
        read_yaml(write(tmp_path, text))
    assert info.value.problem_mark is not None


def test_empty_file_is_none(tmp_path: Path) -> None:
    assert read_yaml(write(tmp_path, "# nothing\n")) is None
