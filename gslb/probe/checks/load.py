"""The load figure an http(s) check reads from its response (``load:``,
docs/checks.md "Reported load"): a number in a response header, or one an
RFC 6901 JSON pointer finds in the body. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import math


def resolve_pointer(document: object, pointer: str) -> object:
    """The value ``pointer`` (RFC 6901) refers to in ``document`` (parsed
    JSON). ``""`` is the whole document; each ``/``-separated token has
    ``~1`` decoded to ``/`` then ``~0`` to ``~`` (section 4, in that order)
    and names an object member, or an array index (section 4: ``0`` or
    digits without a leading zero; ``-`` refers to no element). Raises
    ``LookupError`` when it refers to nothing, ``ValueError`` when the
    pointer is not ``""`` and does not start with ``/``."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    value = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            if token not in value:
                raise LookupError(f"no member {token!r}")
            value = value[token]
        elif isinstance(value, list):
            if not token.isdigit() or (len(token) > 1 and token[0] == "0") or (
                    int(token) >= len(value)):
                raise LookupError(f"no array element {token!r}")
            value = value[int(token)]
        else:
            raise LookupError(f"{token!r} under a {type(value).__name__}")
    return value


def as_load(value: object) -> float | None:
    """``value`` (a JSON number, or text such as a header's) as a load: a
    finite number ≥ 0; None for anything else (booleans, NaN, negative,
    junk text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def load_from_json(body: bytes, pointer: str) -> float | None:
    """The load at ``pointer`` in the JSON ``body`` (UTF-8); None when the
    body is not JSON, the pointer finds nothing, or it finds no number."""
    try:
        return as_load(resolve_pointer(json.loads(body), pointer))
    except (ValueError, LookupError, RecursionError):
        return None
