"""Load YAML files into the validated, frozen model: ``load(paths)``, the one
entry point (the format: ``docs/config.md``).

Above steering in the layers (docs/architecture.md): validating a pool asks
its policy (``gslb.steering.registry``) for the keys it owns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import yaml

from gslb.config.loader import Loc, gc_paused, read_yaml
from gslb.config.model import Config
from gslb.config.validate.validator import Validator


def load(paths: Sequence[str | os.PathLike[str]]) -> Config:
    """Load one or more YAML config files and merge them into one ``Config``.

    Each file holds any of the top-level sections ``origins``, ``pools``,
    ``zones``, ``vantages`` and ``health``; a name defined in two files (or
    twice in one) is an error, as is ``health`` given in two files. Without
    ``vantages`` the result has none; without ``health``, ``Config.health`` is
    ``HealthSettings()`` (its defaults).
    Raises ``gslb.errors.ConfigError`` whose ``reasons`` list every problem
    found, each ``FILE:LINE: KEY.PATH: message``; an unreadable file, a YAML
    syntax error or a top level that is not a mapping is a reason too.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    with gc_paused():
        return _load(paths)


def _load(paths: Sequence[str | os.PathLike[str]]) -> Config:
    validator = Validator()
    documents: list[tuple[str, Any]] = []
    for path in paths:
        name = os.fspath(path)
        try:
            documents.append((name, read_yaml(name)))
        except OSError as exc:
            validator.error(Loc(name, 1, 1), "(file)", f"cannot read: {exc.strerror or exc}")
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            loc = Loc(name, mark.line + 1, mark.column + 1) if mark else Loc(name, 1, 1)
            problem = ": ".join(str(p) for p in (getattr(exc, "context", None),
                                                getattr(exc, "problem", None)) if p)
            validator.error(loc, "(yaml)", problem or str(exc))
    return validator.build(documents)


__all__ = ["load"]
