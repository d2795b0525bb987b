"""The libyaml paths of the loader build exactly what the pure-Python one does.

``read_yaml`` builds a document from libyaml's events when it can, composes
it with libyaml otherwise, and falls back to PyYAML's own ``Loader`` for a
document libyaml refuses; every path must give equal values, the same
locations and the same errors as ``Loader`` alone.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import yaml

from gslb.config import loader
from gslb.config.load import load
from gslb.config.loader import Loader, MarkedDict, MarkedList, read_yaml
from gslb.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(loader.CParser is None, reason="PyYAML without libyaml")

SNIPPETS = [
    "a:\n  b: [x, y]\n  c:\n    - 1\n    - {d: 2}\n",
    "a: 1\nb: 2\na: 3\na: 4\nb: 5\n",
    "".join(f"k{i}: {i}\n" for i in range(12)) + "k3: x\nk20: y\nk3: z\nk21: w\nk0: 0\n",
    "seq:\n" + "".join(f"- {{k{i}: {i}}}\n" for i in range(20)),
    "NO: a\n1: b\nyes: c\n'q': d\n\"<<\": e\n=: f\n",
    "a: 1\nb: 0.5\nc: true\nd: null\ne: '1'\nf: ~\ng:\nh: 0x1F\ni: 0o17\nj: 1_000\n"
    "k: 1:30\nl: .inf\nm: -.NaN\nn: 1e3\no: on\np: No\nq: 2001-12-14\n"
    "r: 2001-12-14t21:59:43.10-05:00\ns: \"x\\ty\"\nt: 'it''s'\n",
    "list:\n- a\n- b:\n    c: 1\n- - x\n  - y\n-\n- {}\n- []\n",
    "text: |\n  one\n  two\nfolded: >-\n  one\n  two\nplain: one\n  two\n",
    "base: &b {x: 1, y: 2}\nsame: *b\nlist: &l [1, 2]\nagain: [*l, *b]\n"
    "s: &s hello\nt: *s\n",
    "flow: {a: [1, {b: c}], 'd e': \"f\"}\nnested: [[1, 2], [3, [4]]]\n",
    "# comment\n---\na: 1  # trailing\n...\n",
    "---\n", "# nothing\n", "",
    "just text\n", "- a\n- b\n", "42\n",
    "ünï: cödé\nkey with spaces: v\n\"k: colon\": v\nurl: http://x/y?z=1\n",
    "? a\n: 1\n? b\n",
    # composed by libyaml: merge keys, tags, anchored keys
    "base: &b {x: 1, y: 2}\nmore:\n  <<: *b\n  y: 3\n  y: 4\n",
    "base: &b {" + ", ".join(f"k{i}: {i}" for i in range(12)) + "}\nmore:\n  <<: *b\n"
    "  k3: x\n  new: 1\n  k5: y\n  k3: z\n",
    "a: &a {x: 1}\nb: &b {x: 2, z: 0}\nc:\n  <<: [*a, *b]\n  w: 1\nd:\n  <<: {q: 1}\n",
    "a: !!str 1\nb: !!int '2'\nc: !!float 3\n",
    "&k key: v\nother: *k\n",
    "zones:\n  gslb.example.com:\n    records:\n      www: {gslb: web}\n",
]

BAD = [
    "a: [\n", "a: 1\n---\nb: 2\n", "a: *nope\n", "? [a]\n: 1\n", "a: [1, }\n",
    "a:\n\tb: 1\n", "a: 'x\n", "a: &x 1\nb: &x 2\n", "a: !!binary 'zz'\n",
    "a: b: c\n", "- a\nb: 1\n", "a: {b: 1\n", "x: \x07\n", "a: &r [*r]\n",
    "a: <<\n", "a: =\n", "a:\n  <<: 1\n", ": g\na: 1\n",
]


def _shape(value: Any, seen: dict[int, int]) -> Any:
    """``value`` with every location spelled out and aliasing made visible."""
    if isinstance(value, dict | list):
        if id(value) in seen:
            return ("alias", seen[id(value)])
        seen[id(value)] = len(seen)
    if isinstance(value, MarkedDict):
        return ("map", type(value).__name__, value.loc, value.duplicates,
                [(k, value.key_loc(k), value.value_loc(k), _shape(v, seen))
                 for k, v in value.items()])
    if isinstance(value, MarkedList):
        return ("seq", value.loc, value.item_locs,
                [(value.item_loc(i), _shape(v, seen)) for i, v in enumerate(value)])
    assert not isinstance(value, dict | list), f"plain {type(value).__name__} in the result"
    return (type(value).__name__, value)


def _pure(path: str) -> Any:
    with open(path, encoding="utf-8") as stream:
        pure = Loader(stream, path)
        try:
            return pure.get_single_data()
        finally:
            pure.dispose()


def _error(func: Any, *args: Any) -> str:
    with pytest.raises(yaml.YAMLError) as info:
        func(*args)
    exc = info.value
    mark = getattr(exc, "problem_mark", None)
    return f"{type(exc).__name__}: {exc} @ {mark.line if mark else None}"


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("text", SNIPPETS)
def test_same_document_as_the_pure_loader(tmp_path: Path, text: str) -> None:
    name = _write(tmp_path, text)
    assert _shape(read_yaml(name), {}) == _shape(_pure(name), {})


def test_whole_configs_are_the_same(tmp_path: Path) -> None:
    files = [*sorted((ROOT / "zones").glob("*.yaml")),
             *sorted((ROOT / "tests" / "data" / "zones").glob("*.yaml"))]
    assert files
    for path in files:
        assert _shape(read_yaml(path), {}) == _shape(_pure(str(path)), {}), path


@pytest.mark.parametrize("text", BAD)
def test_same_error_as_the_pure_loader(tmp_path: Path, text: str) -> None:
    name = _write(tmp_path, text)
    assert _error(read_yaml, name) == _error(_pure, name)


def test_common_documents_never_build_a_node_tree(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("composed")

    monkeypatch.setattr(loader, "CLoader", refuse)
    monkeypatch.setattr(loader, "Loader", refuse)
    doc = read_yaml(_write(tmp_path, "a: &x {b: [1, 2]}\nc: *x\nd: e\n"))
    assert doc["c"] is doc["a"] and doc["a"]["b"] == [1, 2]


def test_equal_scalars_share_one_object(tmp_path: Path) -> None:
    doc = read_yaml(_write(tmp_path, "a: {pool: api, ttl: 30}\nb: {pool: api, ttl: 30}\n"))
    assert doc["a"]["pool"] is doc["b"]["pool"]
    assert next(iter(doc["a"])) is next(iter(doc["b"]))  # the key "pool"


def test_errors_keep_file_and_line_through_load(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("origins:\n  a: {ipv4: [192.0.2.1}\n")
    with pytest.raises(ConfigError) as info:
        load([bad])
    (reason,) = info.value.reasons
    assert reason == (f"{bad}:2: (yaml): while parsing a flow sequence: "
                      "expected ',' or ']', but got '}'")


def test_load_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("origins: {a: {ipv4: 192.0.2.1}}\n")
    assert gc.isenabled()
    load([good])
    assert gc.isenabled()
    gc.disable()
    try:
        load([good])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_without_libyaml_the_pure_loader_reads(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    name = _write(tmp_path, SNIPPETS[0])
    fast = _shape(read_yaml(name), {})
    monkeypatch.setattr(loader, "CParser", None)
    monkeypatch.setattr(loader, "_EventBuilder", None)  # would fail if still used
    assert _shape(read_yaml(name), {}) == fast
