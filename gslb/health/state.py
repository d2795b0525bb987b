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

Initial state: **unknown** (``up`` is None) until a result decides it:
the **first failure** takes an unknown origin down at once (fail safe: a
dead origin leaves as soon as it is seen dead), ``rise`` consecutive
successes bring it up. How an unknown origin is answered is the
nameservers' declared policy (``health.unknown``, docs/checks.md). A probe
that restarts or reloads does not start unknown when its vantage's last
report survives: it seeds the state from it (``ProbeState.seed``).
"""

from __future__ import annotations

from dataclasses import dataclass


class Hysteresis:
    """The state machine above.

    * ``rise``, ``fall``: thresholds, each at least 1 (``ValueError``
      otherwise). They may be changed between feeds (a config reload); the
      new values apply from the next ``feed``.
    * ``up``: the current state: True (up), False (down) or None
      (unknown: no result has decided it yet).
    * ``consecutive``: how many results in a row, up to and including the
      last one, were the same as the last one (0 before the first feed).
    * ``last_ok``: the last result fed, None before the first feed.
    """

    __slots__ = ("consecutive", "fall", "last_ok", "rise", "up")

    def __init__(self, rise: int, fall: int, up: bool | None = None) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise {rise} and fall {fall} must both be at least 1")
        self.rise = rise
        self.fall = fall
        self.up: bool | None = up
        self.consecutive = 0
        self.last_ok: bool | None = None

    def feed(self, ok: bool) -> bool:
        """Count one check result; returns True when ``up`` changed (from
        unknown too: a first failure, or the ``rise``-th success)."""
        self.consecutive = self.consecutive + 1 if ok == self.last_ok else 1
        self.last_ok = ok
        if self.up is None and not ok:
            self.up = False
            return True
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
    * ``load``: the load figure the origin reported (an http(s) check's
      ``load``: a number ≥ 0, no unit of ours), None when none was read.
    """

    ok: bool
    rtt_ms: float | None
    detail: str
    load: float | None = None


#: Weight of the newest RTT sample in the smoothed RTT (an exponentially
#: weighted moving average: ``srtt = alpha × rtt + (1 - alpha) × srtt``).
#: 0.3 follows a step change within about 7 checks (to 90 %) while one
#: outlier moves it by under a third. TCP's SRTT uses 1/8 (RFC 6298 2.3)
#: for per-packet samples; checks are far sparser, so we weigh each more.
EWMA_ALPHA = 0.3
#: A smoothed RTT change is announced (pub/sub) whenever its stored text
#: (milliseconds, 3 decimals) changes: a publishing threshold would add to
#: the steering's switch margin (``switch_margin``), so that a nameserver
#: could steer by a value that lags the probe's by up to the threshold for
#: as long as the resync interval (issue 14: 85.3 ms held against a true 80
#: ms for 27 s). Announcing every move keeps what a nameserver steers by at
#: most one check interval behind.
SRTT_NOTIFY_DECIMALS = 3


@dataclass(frozen=True, slots=True)
class VantageReport:
    """One vantage's view of one origin after a check: the unit of shared
    health state (a Redis hash, a pub/sub message, a view entry).

    * ``up``: state after rise/fall hysteresis: True, False, or None
      (unknown: not decided yet, see ``Hysteresis``).
    * ``consecutive``: results in a row equal to the last (``last_ok``).
    * ``rtt_ms``: the last check's round trip, milliseconds (None if it
      made no connection); ``srtt_ms``: smoothed RTT (``EWMA_ALPHA``) over
      successful checks, milliseconds, None before the first.
    * ``detail``: the last check's detail (the error when it failed).
    * ``checked_at``: when the check finished, epoch seconds (the probe's
      clock: keep probes and servers NTP-synchronised).
    * ``load``: the load the origin reported at that check (``CheckResult.load``),
      None when it reported none (or a record written before loads existed).
    """

    origin: str
    vantage: str
    up: bool | None
    consecutive: int
    last_ok: bool | None
    rtt_ms: float | None
    srtt_ms: float | None
    detail: str
    checked_at: float
    load: float | None = None

    @property
    def state(self) -> str:
        """``up``, ``down``, ``unknown`` or ``degraded`` (up, but the last
        check failed: fewer than ``fall`` times so far)."""
        if self.up is None:
            return "unknown"
        if not self.up:
            return "down"
        return "degraded" if self.last_ok is False else "up"

    def to_fields(self) -> dict[str, str]:
        """Flat text fields (a Redis hash, JSON), without origin/vantage."""
        return {
            "up": "" if self.up is None else ("1" if self.up else "0"),
            "consecutive": str(self.consecutive),
            "last_ok": "" if self.last_ok is None else ("1" if self.last_ok else "0"),
            "rtt_ms": "" if self.rtt_ms is None else f"{self.rtt_ms:.3f}",
            "srtt_ms": "" if self.srtt_ms is None else f"{self.srtt_ms:.3f}",
            "detail": self.detail,
            "checked_at": f"{self.checked_at:.6f}",
            # always written ("" for none), so a hash (HSET keeps old fields)
            # never holds a stale figure outside the signature
            "load": "" if self.load is None else repr(self.load),
        }

    @classmethod
    def from_fields(cls, origin: str, vantage: str, fields: dict[str, str]) -> VantageReport:
        """Inverse of ``to_fields``. Raises ``ValueError`` (or ``KeyError``)
        on a malformed record."""
        def opt_float(key: str) -> float | None:
            return float(fields[key]) if fields.get(key) else None

        last_ok, up = fields.get("last_ok", ""), fields["up"]
        if up not in ("", "0", "1"):
            raise ValueError(f"up must be 1, 0 or empty, not {up!r}")
        return cls(
            origin=origin, vantage=vantage, up=None if up == "" else up == "1",
            consecutive=int(fields["consecutive"]),
            last_ok=None if last_ok == "" else last_ok == "1",
            rtt_ms=opt_float("rtt_ms"), srtt_ms=opt_float("srtt_ms"),
            detail=fields.get("detail", ""), checked_at=float(fields["checked_at"]),
            load=opt_float("load"),
        )


class _OriginProbe:
    __slots__ = ("announced", "announced_load", "announced_srtt", "announced_up",
                 "hysteresis", "srtt_ms")

    def __init__(self, rise: int, fall: int) -> None:
        self.hysteresis = Hysteresis(rise, fall)
        self.srtt_ms: float | None = None
        self.announced = False
        self.announced_up: bool | None = None
        self.announced_srtt: float | None = None
        self.announced_load: float | None = None


class ProbeState:
    """Everything one vantage knows of its origins: rise/fall hysteresis and
    smoothed RTT per origin. Pure, no I/O; the prober feeds it and ships the
    reports it returns."""

    def __init__(self, vantage: str, alpha: float = EWMA_ALPHA) -> None:
        self.vantage = vantage
        self.alpha = alpha
        self._origins: dict[str, _OriginProbe] = {}

    def observe(self, origin: str, result: CheckResult, rise: int, fall: int,
                now: float) -> tuple[VantageReport, bool, bool]:
        """Count one check ``result`` of ``origin`` finished at ``now`` (epoch
        seconds). Returns ``(report, state_changed, notify)``: ``notify`` is
        True when the state changed, the smoothed RTT moved at all (to
        ``SRTT_NOTIFY_DECIMALS`` places) or the reported load changed since
        last announced: the caller
        then announces the report.
        """
        slot = self._origins.get(origin)
        if slot is None:
            slot = self._origins[origin] = _OriginProbe(rise, fall)
        h = slot.hysteresis
        h.rise, h.fall = rise, fall
        changed = h.feed(result.ok)
        if result.ok and result.rtt_ms is not None:
            slot.srtt_ms = (result.rtt_ms if slot.srtt_ms is None
                            else self.alpha * result.rtt_ms + (1 - self.alpha) * slot.srtt_ms)
        report = VantageReport(origin, self.vantage, h.up, h.consecutive, h.last_ok,
                               result.rtt_ms, slot.srtt_ms, result.detail, now, result.load)
        notify = changed or not slot.announced or slot.announced_up != h.up or _srtt_moved(
            slot.announced_srtt, slot.srtt_ms) or slot.announced_load != result.load
        if notify:
            slot.announced = True
            slot.announced_up, slot.announced_srtt = h.up, slot.srtt_ms
            slot.announced_load = result.load
        return report, changed, notify

    def seed(self, report: VantageReport, rise: int, fall: int) -> None:
        """Start ``report.origin`` from ``report`` (its vantage's last report,
        read back from Redis by a probe that starts or reloads): state,
        consecutive count, last result and smoothed RTT carry on, and the
        report counts as announced (the nameservers hold it already)."""
        slot = self._origins[report.origin] = _OriginProbe(rise, fall)
        h = slot.hysteresis
        h.up, h.consecutive, h.last_ok = report.up, report.consecutive, report.last_ok
        slot.srtt_ms = report.srtt_ms
        slot.announced = True
        slot.announced_up, slot.announced_srtt = report.up, report.srtt_ms
        slot.announced_load = report.load

    def check_changed(self, origin: str) -> None:
        """``origin``'s check changed (a reload): its state carries on (a down
        origin stays down until ``rise`` successes of the new check), but the
        smoothed RTT, a measurement of the old check, starts afresh."""
        slot = self._origins.get(origin)
        if slot is not None:
            slot.srtt_ms = None

    def forget(self, origin: str) -> None:
        """Drop ``origin``'s state (its check was removed, or the origin): a
        check added again later starts unknown."""
        self._origins.pop(origin, None)

    def srtt_ms(self, origin: str) -> float | None:
        """``origin``'s smoothed RTT here, milliseconds (None: none yet)."""
        slot = self._origins.get(origin)
        return None if slot is None else slot.srtt_ms

    def origins(self) -> frozenset[str]:
        """Names of the origins with state."""
        return frozenset(self._origins)


def _srtt_moved(old: float | None, new: float | None) -> bool:
    if new is None:
        return False
    return old is None or round(new, SRTT_NOTIFY_DECIMALS) != round(old, SRTT_NOTIFY_DECIMALS)
