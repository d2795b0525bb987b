"""The read side of health state, as steering sees it."""

from __future__ import annotations

from typing import Protocol


class HealthView(Protocol):
    """What steering reads: synchronous, no I/O, cheap per call.

    ``generation`` is an integer that moves whenever any origin's state
    changes, so cached answers can be dropped when it differs. ``is_up``
    returns the current state of an origin by name; an origin the view does
    not know (no check configured) is up.
    """

    @property
    def generation(self) -> int: ...

    def is_up(self, origin: str) -> bool: ...
