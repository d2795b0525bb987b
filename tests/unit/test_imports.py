"""The import structure docs/architecture.md states, held.

Every module imports alone in a fresh interpreter (a cycle shows up as an
ImportError there, whichever module Python happens to load first), and
every ``import`` in ``gslb/`` (under ``TYPE_CHECKING`` and inside functions
too) points to its own layer or one below it, with no cycle between
modules. The idea is aiohttp's ``tests/test_circular_imports.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gslb"

#: Bottom to top, as docs/architecture.md "Imports" lists them: a module
#: may import its own layer and the ones before it, never one after.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("gslb", "gslb.errors", "gslb.countries"),
    ("gslb.dns",),
    # the model, the YAML loader and what policies read their keys with
    ("gslb.config", "gslb.config.validate.reader", "gslb.config.validate.places",
     "gslb.config.validate.targets", "gslb.logs"),
    ("gslb.geo", "gslb.geoip_build", "gslb.health"),
    ("gslb.steering", "gslb.probe",
     "gslb.drill"),  # what-if answers: steering over views with origins down
    # the validator asks each policy (gslb.steering.registry) for its keys
    ("gslb.config.validate", "gslb.config.load"),
    ("gslb.authority",),
    ("gslb.stats", "gslb.answering", "gslb.explain"),
    ("gslb.workers",),
    ("gslb.admin",),
    ("gslb.serve", "gslb.probe.service"),  # the two processes' wiring
    ("gslb.cli", "gslb.__main__"),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> int:
    best, level = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, index
    assert level >= 0, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return level


def _owner(name: str) -> str:
    """The gslb module that ``name`` (a module or a name in one) is."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every gslb import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gslb":
                    yield node.lineno, _owner(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] != "gslb":
                continue
            for alias in node.names:
                yield node.lineno, _owner(f"{base}.{alias.name}")


GRAPH = {m: sorted({target for _line, target in _imports(m)} - {m}) for m in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_alone_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run([sys.executable, "-W", "error", "-c", f"import {module}"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_every_import_points_down_the_layers() -> None:
    wrong = [f"{MODULES[m].relative_to(ROOT)}:{line}: {m} (layer {_layer(m)}) imports "
             f"{target} (layer {_layer(target)})"
             for m in MODULES for line, target in _imports(m)
             if target != m and _layer(target) > _layer(m)]
    assert wrong == []


def test_no_module_imports_the_cli() -> None:
    importers = sorted(m for m, targets in GRAPH.items()
                       if "gslb.cli" in targets and m != "gslb.__main__")
    assert importers == []


def test_no_import_cycle_between_modules() -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in GRAPH[module]:
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in MODULES:
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_layer_check_sees_a_wrong_import() -> None:
    # the checks above must be able to fail: a made-up upward import is caught
    assert _layer("gslb.dns.wire") < _layer("gslb.serve.service")
    assert _owner("gslb.serve.service.Service") == "gslb.serve.service"
