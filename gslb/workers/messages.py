"""What the supervisor and a worker say to each other over their pipe.

Each message is a small frozen dataclass, pickled by
``multiprocessing.connection``. To a worker: :class:`View` (the health view
to answer from), :class:`Reload` (load these files), :class:`Stop`. To the
supervisor: :class:`Ready` (listening), :class:`Failed` (could not start),
:class:`Stats` (query counters since the last one), :class:`Reloaded`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gslb.answering import AnswerSettings
from gslb.dns.server import TcpLimits
from gslb.health.view import HealthView
from gslb.stats import Taken


@dataclass(frozen=True, slots=True)
class ViewSnapshot:
    """What a worker needs of the supervisor's health view: its
    ``generation``; the origins ``down`` (health or drain) and ``drained``
    (by an operator); ``srtt_ms[(origin, vantage)]`` in milliseconds, only
    where the view gives one (fresh vantage that says up); the weight ramps
    in progress (docs/steering.md "Slow start and timed drains"): ``rising``
    (slow start) and ``falling`` (a drain's ramp), each origin →
    ``(since, seconds)`` with ``since`` in epoch seconds, and ``ramp_until``
    (epoch seconds) when the last of them ends (0.0: none); ``load[origin]``
    the reported load (``HealthView.load``), only where the view gives one."""

    generation: int
    down: frozenset[str] = frozenset()
    drained: frozenset[str] = frozenset()
    srtt_ms: dict[tuple[str, str], float] = field(default_factory=dict)
    rising: dict[str, tuple[float, float]] = field(default_factory=dict)
    falling: dict[str, tuple[float, float]] = field(default_factory=dict)
    ramp_until: float = 0.0
    load: dict[str, float] = field(default_factory=dict)


def snapshot_of(view: HealthView, is_drained: Callable[[str], bool], origins: Iterable[str],
                rtt_vantages: Sequence[str],
                rising: Mapping[str, tuple[float, float]] | None = None,
                falling: Mapping[str, tuple[float, float]] | None = None) -> ViewSnapshot:
    """``view`` now (health with drains applied) over ``origins``, with
    the smoothed RTTs of ``rtt_vantages`` (none when no pool steers by
    RTT); ``is_drained(origin)`` tells the operator's drains apart;
    ``rising`` and ``falling`` the weight ramps (see :class:`ViewSnapshot`);
    every origin's reported load."""
    names = tuple(origins)
    srtt: dict[tuple[str, str], float] = {}
    for origin in names if rtt_vantages else ():
        for vantage in rtt_vantages:
            ms = view.srtt_ms(origin, vantage)
            if ms is not None:
                srtt[(origin, vantage)] = ms
    loads = {o: x for o in names if (x := view.load(o)) is not None}
    up, down = dict(rising or {}), dict(falling or {})
    until = max((t + s for t, s in (*up.values(), *down.values())), default=0.0)
    return ViewSnapshot(view.generation,
                        frozenset(o for o in names if not view.is_up(o)),
                        frozenset(o for o in names if is_drained(o)),
                        srtt, up, down, until, loads)


@dataclass(frozen=True, slots=True)
class WorkerArgs:
    """What a worker is started with (pickled to the child): its
    ``index``, the config files, the ``listen`` addresses (ports already
    chosen), the GeoIP and ASN database paths (None: none), how to answer,
    the logging set-up (``log_level`` as a ``logging`` number), and how
    its TCP connections are shared (``tcp``)."""

    index: int
    config_paths: tuple[str, ...]
    listen: tuple[tuple[str, int], ...]
    geoip: str | None
    asn_db: str | None
    settings: AnswerSettings
    log_level: int
    log_json: bool
    tcp: TcpLimits = field(default_factory=TcpLimits)


# -- to a worker --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class View:
    """Answer from ``snapshot`` from now on."""

    snapshot: ViewSnapshot


@dataclass(frozen=True, slots=True)
class Reload:
    """Load the config from ``paths`` (the supervisor validated it)."""

    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop answering and exit."""


ToWorker = View | Reload | Stop


# -- to the supervisor --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """Listening on ``addresses`` (``(address, port)`` pairs)."""

    addresses: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Failed:
    """Could not start: ``why``."""

    why: str


@dataclass(frozen=True, slots=True)
class Stats:
    """Query counters since the last :class:`Stats` (``QueryStats.take``)
    and the answer cache's ``(hits, misses, entries)`` (hits and misses
    counted since the worker started); ``in_fallback``: the ``(pool,
    family)`` pairs whose last query in this worker found no healthy origin
    (``Steering.in_fallback``)."""

    taken: Taken
    cache: tuple[int, int, int]
    in_fallback: frozenset[tuple[str, int]] = frozenset()


@dataclass(frozen=True, slots=True)
class Reloaded:
    """The outcome of a :class:`Reload`: ``ok``, and ``message`` when not."""

    ok: bool
    message: str = ""


ToSupervisor = Ready | Failed | Stats | Reloaded


__all__ = ["Failed", "Ready", "Reload", "Reloaded", "Stats", "Stop",
           "ToSupervisor", "ToWorker", "View", "ViewSnapshot", "WorkerArgs", "snapshot_of"]
