"""Rise/fall hysteresis for one (origin, vantage): pure, no I/O.

The definition (HAProxy's ``rise``/``fall``, gdnsd's up/down thresholds):

* an **up** origin goes **down** after ``fall`` consecutive failed checks;
* a **down** origin comes back **up** after ``rise`` consecutive successful
  checks;
* a result opposite to the one before it restarts the count, so any
  success between failures keeps an up origin up, and any failure between
  successes keeps a down origin down.

Worst-case detection time is therefore ``interval × fall + timeout``
seconds, and recovery ``interval × rise + timeout``.

Initial state: **up**. An origin answers from startup, before its first
check completes, so a restart of the nameserver never empties answers.
(A later "unknown" state, with a declared policy for answering from
unchecked origins, fits here as a third value of ``up``.)
"""

from __future__ import annotations

from dataclasses import dataclass


class Hysteresis:
    """The state machine above.

    * ``rise``, ``fall``: thresholds, each at least 1 (``ValueError``
      otherwise). They may be changed between feeds (a config reload); the
      new values apply from the next ``feed``.
    * ``up``: the current state.
    * ``consecutive``: how many results in a row, up to and including the
      last one, were the same as the last one (0 before the first feed).
    * ``last_ok``: the last result fed, None before the first feed.
    """

    __slots__ = ("consecutive", "fall", "last_ok", "rise", "up")

    def __init__(self, rise: int, fall: int, up: bool = True) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise {rise} and fall {fall} must both be at least 1")
        self.rise = rise
        self.fall = fall
        self.up = up
        self.consecutive = 0
        self.last_ok: bool | None = None

    def feed(self, ok: bool) -> bool:
        """Count one check result; returns True when ``up`` changed."""
        self.consecutive = self.consecutive + 1 if ok == self.last_ok else 1
        self.last_ok = ok
        if ok != self.up and self.consecutive >= (self.rise if ok else self.fall):
            self.up = ok
            return True
        return False

    def __repr__(self) -> str:
        return (f"Hysteresis(rise={self.rise}, fall={self.fall}, up={self.up}, "
                f"consecutive={self.consecutive}, last_ok={self.last_ok})")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check.

    * ``ok``: the origin passed.
    * ``rtt_ms``: milliseconds: TCP connect time (``tcp``) or time to the
      response headers (``http``/``https``, including connect and TLS);
      None when no connection or response was made.
    * ``detail``: why it failed (``"connection refused"``, ``"timeout after
      0.5 s"``, ``"status 503 not in [200]"``), or a short note when ok.
    """

    ok: bool
    rtt_ms: float | None
    detail: str
