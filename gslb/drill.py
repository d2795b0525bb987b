"""What if these origins go down: every place's answers now and then (``gslb drill``).

For every place a client can be (each country and continent of
:mod:`gslb.countries`, and each network and AS number some pool maps), and
every GSLB name of every zone (A and AAAA, as its pool's tree has addresses
of the family), :func:`drill` asks the real steering
(:meth:`gslb.steering.Steering.choose`) twice: under the health view of now
and under a what-if view in which the origins named are down too
(:class:`Down`, a wrapper as :class:`gslb.health.overrides.DrainedView` is).
A vantage named silent makes its reports stale in the what-if view, and the
quorum rules of :class:`gslb.health.view.QuorumView` itself decide what
follows (:func:`silence`): a vantage gone silent holds the states it voted
for, it never flips an origin on its own.

Nothing is written anywhere: without Redis, now is every origin up; with
Redis (:func:`read_health`), now is the health and the drains read once,
the way ``gslb serve --redis`` reads them (SUBSCRIBE and a full load; no
key is written).

A choice that a random draw decided (``Basis.DRAW`` in its basis, whatever
the policy is called) is not shown as one draw: :func:`outcomes` runs the
steering again with scripted draws until every answer the draw can give is
found (each ``randrange`` of the weighted sampling walks its candidates in
order, so bisecting its range finds them all), and the answer is "one of"
those.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import random
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from gslb import countries
from gslb.config.model import Config
from gslb.errors import GslbError
from gslb.geo import Asn, GeoLocation
from gslb.health.overrides import DrainedView, Overrides
from gslb.health.redis.once import load_once, quorum_view
from gslb.health.view import AllUpExcept, HealthView, QuorumView
from gslb.steering import Choice, Steering
from gslb.steering.base import Basis, Client
from gslb.steering.fallback import everyone_up

T = TypeVar("T")

PlaceKind = Literal["country", "continent", "network", "asn"]

#: Addresses a place's client asks from (documentation ranges: RFC 5737,
#: RFC 3849), the first that no pool's ``networks`` map holds, so that a
#: country's client is placed by its country and not by a network entry.
CLIENT_ADDRESSES = ("192.0.2.1", "198.51.100.1", "203.0.113.1", "2001:db8::1")

#: Most steering runs spent finding the answers one draw can give; past it
#: the answers found so far are shown and the answer is marked ``partial``.
MAX_RUNS = 4096

#: ``random()`` of a scripted draw is ``randrange(RANDOM_STEPS) / RANDOM_STEPS``.
RANDOM_STEPS = 1 << 20

#: Seconds :func:`read_health` waits for each full load from Redis.
REDIS_TIMEOUT_S = 10.0


class DrillError(GslbError):
    """A drill that cannot run: an unknown origin or vantage name (the
    message names it and the known ones), or Redis not read in time."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a drill's client is: ``kind``, ``code`` (``SE``, ``EU``,
    ``10.0.0.0/8``, ``AS64496``) and a ``name`` for people (the country's
    or continent's English name; for a network or an AS, the pools that
    map it)."""

    kind: PlaceKind
    code: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "code": self.code, "name": self.name}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Place:
        return cls(data["kind"], data["code"], data["name"])


@dataclass(frozen=True, slots=True)
class Answer:
    """What one name answers for one place under one health view.

    * ``kind``: ``answer``, ``nodata`` or ``servfail`` (``Choice.kind``);
    * ``options``: every answer it can be, each its addresses; one option
      unless a draw decided (``drawn``), then each answer the draw can
      give, sorted. An answer whose order rotates (``order: cyclic`` or
      ``random``) is given sorted: the set is what it is;
    * ``fallback``: the pool's fallback produced it (``Choice.fallback``),
      ``pool`` the pool that answered after any fallback;
    * ``reason``: the steering's reason (of the first run, for a draw);
    * ``partial``: ``MAX_RUNS`` runs did not find every option of a draw.
    """

    kind: str
    options: tuple[tuple[str, ...], ...]
    drawn: bool = False
    fallback: bool = False
    pool: str = ""
    reason: str = ""
    partial: bool = False

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address some option holds, sorted (IPv4 and IPv6 by value)."""
        return tuple(sorted({a for o in self.options for a in o}, key=_address_key))

    def same(self, other: Answer) -> bool:
        """Whether a client gets the same from ``other``: kind and options."""
        return self.kind == other.kind and self.options == other.options

    def text(self, record_pool: str = "") -> str:
        """For people: the addresses (``one of ...`` for a draw), NODATA or
        SERVFAIL, and ``(fallback)`` (naming the pool when another one
        answered than ``record_pool``)."""
        if self.kind == "answer":
            if not self.drawn:
                shown = ", ".join(self.options[0])
            elif all(len(o) == 1 for o in self.options):
                shown = "one of " + ", ".join(self.addresses)
            else:
                shown = "one of " + " | ".join(" ".join(o) for o in self.options)
            if self.partial:
                shown += " (and more)"
        else:
            shown = self.kind.upper()
        if self.fallback:
            shown += (f" (fallback, pool {self.pool})" if record_pool and self.pool != record_pool
                      else " (fallback)")
        return shown

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "options": [list(o) for o in self.options],
                "addresses": list(self.addresses), "drawn": self.drawn,
                "fallback": self.fallback, "pool": self.pool, "reason": self.reason,
                "partial": self.partial}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Answer:
        return cls(data["kind"], tuple(tuple(o) for o in data["options"]), data["drawn"],
                   data["fallback"], data["pool"], data["reason"], data["partial"])


@dataclass(frozen=True, slots=True)
class Row:
    """One place, one name, one type (``A`` or ``AAAA``): its answer ``now``
    and ``then`` (with the drill's origins down); ``pool``: the record's."""

    place: Place
    name: str
    rtype: str
    pool: str
    now: Answer
    then: Answer

    @property
    def changed(self) -> bool:
        """Whether a client there gets another answer then than now."""
        return not self.now.same(self.then)

    def to_json(self) -> dict[str, Any]:
        return {"place": self.place.to_json(), "name": self.name, "type": self.rtype,
                "pool": self.pool, "now": self.now.to_json(), "then": self.then.to_json(),
                "changed": self.changed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        return cls(Place.from_json(data["place"]), data["name"], data["type"], data["pool"],
                   Answer.from_json(data["now"]), Answer.from_json(data["then"]))


@dataclass(frozen=True, slots=True)
class Report:
    """A drill's outcome: the origins ``down``, the vantages ``silent``,
    where now's health came from (``source``: ``all up`` or ``redis``), the
    origins whose state the what-if view holds for want of fresh vantages
    (``held``: degraded, ``QuorumView.status(...).held == "fresh"``) and the
    ``rows``, by place, then name, then type."""

    down: tuple[str, ...]
    silent: tuple[str, ...]
    source: str
    held: tuple[str, ...]
    rows: tuple[Row, ...] = field(repr=False)

    @property
    def changed(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.changed)

    def to_json(self) -> dict[str, Any]:
        return {"down": list(self.down), "vantage_down": list(self.silent),
                "source": self.source, "held": list(self.held),
                "rows": [r.to_json() for r in self.rows],
                "changed": sum(r.changed for r in self.rows)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        return cls(tuple(data["down"]), tuple(data["vantage_down"]), data["source"],
                   tuple(data["held"]), tuple(Row.from_json(r) for r in data["rows"]))

    def text(self, *, changed_only: bool = False) -> str:
        """A table for people: PLACE, NAME, TYPE, NOW, THEN, and ``*`` on
        each changed row; a summary line first."""
        what = "down " + ", ".join(self.down)
        if self.silent:
            what += "; vantage " + ", ".join(self.silent) + " silent"
        lines = [f"gslb drill: {what} (now: {self.source}); "
                 f"{len(self.changed)} of {len(self.rows)} answers change"]
        if self.held:
            lines.append("held at their last state (fewer than quorum fresh vantages): "
                         + ", ".join(self.held))
        table = [[" ", "PLACE", "NAME", "TYPE", "NOW", "WITH " + ", ".join(self.down) + " DOWN"]]
        for r in self.rows:
            if changed_only and not r.changed:
                continue
            place = r.place.code if r.place.kind in ("country", "continent") else (
                f"{r.place.code} ({r.place.name})")
            table.append(["*" if r.changed else " ", place, r.name, r.rtype,
                          r.now.text(r.pool), r.then.text(r.pool)])
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in table]
        return "\n".join(lines)


# -- health views ---------------------------------------------------------------------


class Down:
    """A ``HealthView``: ``base`` with the origins of ``down`` down too.

    ``is_up`` is ``base.is_up(origin) and origin not in down``; a downed
    origin reports no RTT and no load. ``everyone_up()`` (``fallback:
    all``) is the base view's: an origin down by health is answered again
    then, drained ones are not (:func:`gslb.steering.fallback.everyone_up`)."""

    __slots__ = ("base", "down")

    def __init__(self, base: HealthView, down: Collection[str]) -> None:
        self.base = base
        self.down = frozenset(down)

    @property
    def generation(self) -> int:
        return self.base.generation

    @property
    def ramping(self) -> bool:
        return self.base.ramping

    def is_up(self, origin: str) -> bool:
        return origin not in self.down and self.base.is_up(origin)

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return None if origin in self.down else self.base.srtt_ms(origin, vantage)

    def load(self, origin: str) -> float | None:
        return None if origin in self.down else self.base.load(origin)

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        return self.base.weight_factor(origin, now)

    def everyone_up(self) -> HealthView:
        return everyone_up(self.base)


class _Clock:
    """A clock that reads ``now`` (epoch seconds) until moved."""

    __slots__ = ("now",)

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def silence(config: Config, view: QuorumView, silent: Collection[str]) -> QuorumView:
    """A copy of ``view`` in which the vantages of ``silent`` have gone
    stale, the rest as they are, decided by ``QuorumView`` itself: the copy
    takes every report and the same fresh vantages at ``view``'s now (so it
    decides as ``view`` does), then its clock moves on by ``stale_after_s
    * 0.75``, where only the silent vantages, last heard half a
    ``stale_after_s`` before, have aged past it. The copy's clock then
    stays put. What the copy would log (``gslb.health``) is not logged: its
    transitions are not events."""
    now = view.clock()
    s = view.stale_after_s
    clock = _Clock(now)
    reports = [r for status in view.snapshot().values() for r in status.reports.values()]
    fresh = view.fresh_vantages(now)
    seen = {v: (now - s / 2 if v in silent else now) for v in fresh}
    seen |= {v: now - 2 * s for v in view.known_vantages() - fresh}
    health_log = logging.getLogger("gslb.health")
    mute = logging.Filter("nothing: the copy's transitions are not events")
    health_log.addFilter(mute)  # the copy logs as a live view would: states, stale vantages
    try:
        copy = quorum_view(config, clock)
        copy.replace(reports, seen)
        clock.now = now + s * 0.75
        copy.refresh()
    finally:
        health_log.removeFilter(mute)
    return copy


async def read_health(config: Config, url: str,
                      timeout_s: float = REDIS_TIMEOUT_S) -> tuple[QuorumView, Overrides]:
    """The health view and the drains in Redis at ``url``, read once as
    ``gslb serve --redis`` reads them (``gslb.health.redis.once``; nothing
    is written). Raises ``DrillError`` when a load does not finish within
    ``timeout_s`` seconds, ``RedisConfigError`` for a bad URL."""
    view = quorum_view(config)
    try:
        overrides = await load_once(config, url, view, timeout_s)
    except TimeoutError as exc:
        raise DrillError(str(exc)) from None
    return view, overrides


# -- places ---------------------------------------------------------------------------


def places(config: Config) -> list[tuple[Place, Client]]:
    """Every place of a drill with the client asking from there: each
    country (at its representative point), each continent (at its point,
    no country), then each network (a client at its first host, located
    nowhere) and each AS number (a client of that AS, located nowhere)
    some pool maps, in order."""
    nets: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, list[str]] = {}
    asns: dict[int, list[str]] = {}
    for name, pool in config.pools.items():
        for network, _tiers in pool.networks.entries:
            nets.setdefault(network, []).append(name)
        for number in pool.asns:
            asns.setdefault(number, []).append(name)
    who = next((a for a in CLIENT_ADDRESSES
                if not any(p.networks.lookup(a) for p in config.pools.values())),
               CLIENT_ADDRESSES[0])
    found: list[tuple[Place, Client]] = []
    for c in sorted(countries.COUNTRIES.values(), key=lambda c: c.code):
        found.append((Place("country", c.code, c.name),
                      Client(who, locator=_at(GeoLocation(c.code, c.continent, c.lat, c.lon)))))
    for k in sorted(countries.CONTINENTS.values(), key=lambda k: k.code):
        found.append((Place("continent", k.code, k.name),
                      Client(who, locator=_at(GeoLocation(None, k.code, k.lat, k.lon)))))
    for network in sorted(nets, key=lambda n: (n.version, n.network_address, n.prefixlen)):
        found.append((Place("network", str(network), "pool " + ", ".join(nets[network])),
                      Client(_inside(network, nets))))
    for number in sorted(asns):
        found.append((Place("asn", f"AS{number}", "pool " + ", ".join(asns[number])),
                      Client(who, asn_lookup=_at(Asn(number, 24)))))
    return found


def _inside(network: ipaddress.IPv4Network | ipaddress.IPv6Network,
            mapped: Collection[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """An address of ``network`` that no longer mapped network holds (its
    first host, last host or middle; the first host when all three are)."""
    narrower = [n for n in mapped if n.version == network.version
                and n.prefixlen > network.prefixlen and n.subnet_of(network)]  # type: ignore[arg-type]
    first = network.network_address + (1 if network.num_addresses > 1 else 0)
    last = network.broadcast_address - (1 if network.num_addresses > 2 else 0)
    middle = network.network_address + network.num_addresses // 2
    for address in (first, last, middle):
        if not any(address in n for n in narrower):
            return str(address)
    return str(first)


def _at(fact: T) -> Callable[[str], T]:
    """A locator (or AS lookup) that says ``fact`` of every address."""
    return lambda _address: fact


# -- draws ----------------------------------------------------------------------------


class _Scripted(random.Random):
    """A generator whose draws follow a script (``follow``): the i-th ``randrange(n)``
    returns ``script[i]`` (at most n - 1), 0 past the script; ``calls``
    records each draw's n. ``random()`` is a ``randrange(RANDOM_STEPS)``."""

    def __init__(self) -> None:
        super().__init__(0)
        self.script: Sequence[int] = ()
        self.calls: list[int] = []

    def follow(self, script: Sequence[int]) -> _Scripted:
        """Start over with ``script`` (seeding a new generator costs more
        than a steering call)."""
        self.script = script
        self.calls = []
        return self

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        low, high = (0, start) if stop is None else (start, stop)
        n = max(1, -(-(high - low) // step))
        i = len(self.calls)
        self.calls.append(n)
        value = self.script[i] if i < len(self.script) else 0
        return low + min(value, n - 1) * step

    def random(self) -> float:
        return self.randrange(RANDOM_STEPS) / RANDOM_STEPS


_Run = tuple[Choice, tuple[int, ...]]


def outcomes(choose: Callable[[random.Random], Choice],
             rng: _Scripted | None = None) -> tuple[list[Choice], int, bool]:
    """Every outcome ``choose`` (one steering call, given its generator)
    can give, found by running it with scripted draws: ``(choices, basis
    of them all, complete)``; one run when the first says no draw decided
    (``Basis.DRAW``). The runs walk the tree of draws depth first; at each
    draw its range is bisected, as a weighted draw picks its candidates in
    order (``pick_weighted``): where both ends of a range give the same
    outcome, and draw the same way after, the whole range does.
    ``complete`` is False when ``MAX_RUNS`` runs did not finish the walk.
    ``rng``: the scripted generator to reuse (default: a new one)."""
    runs = 0
    scripted = rng if rng is not None else _Scripted()

    def run(script: Sequence[int]) -> _Run:
        nonlocal runs
        runs += 1
        choice = choose(scripted.follow(script))
        return choice, tuple(scripted.calls)

    first = run(())
    if not first[0].basis & Basis.DRAW:
        return [first[0]], first[0].basis, True
    found: dict[tuple[Any, ...], Choice] = {}
    basis = 0

    def signature(r: _Run) -> tuple[Any, ...]:
        c = r[0]
        return (c.kind, c.addresses, c.pool, c.fallback, c.leaves, c.reason, r[1])

    def split(prefix: list[int], lo: int, at_lo: _Run, hi: int,
              at_hi: _Run) -> Iterator[tuple[int, _Run]]:
        """The draws of ``lo..hi`` that differ, each with a run."""
        if signature(at_lo) == signature(at_hi) or runs >= MAX_RUNS:
            yield lo, at_lo
            return
        if hi == lo + 1:
            yield lo, at_lo
            yield hi, at_hi
            return
        mid = (lo + hi) // 2
        at_mid = run([*prefix, mid])
        left = list(split(prefix, lo, at_lo, mid, at_mid))
        yield from left
        for value, r in split(prefix, mid, at_mid, hi, at_hi):
            if value != left[-1][0]:
                yield value, r

    def walk(prefix: list[int], here: _Run) -> None:
        nonlocal basis
        choice, calls = here
        depth = len(prefix)
        if depth >= len(calls) or runs >= MAX_RUNS:
            basis |= choice.basis
            found.setdefault((choice.kind, _answer_key(choice)), choice)
            return
        n = calls[depth]
        ends = [(0, here)] if n <= 1 else list(
            split(prefix, 0, here, n - 1, run([*prefix, n - 1])))
        for value, r in ends:
            walk([*prefix, value], r)

    walk([], first)
    return list(found.values()), basis, runs < MAX_RUNS


@functools.lru_cache(maxsize=4096)
def _address_key(address: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def _answer_key(choice: Choice) -> tuple[str, ...]:
    """A choice's addresses as a client's RRset: sorted when its order means
    nothing (it rotates, or a draw made it), else in answer order."""
    if choice.rotate or choice.basis & Basis.DRAW:
        return tuple(sorted(choice.addresses, key=_address_key))
    return choice.addresses


def answer_of(choose: Callable[[random.Random], Choice],
              rng: _Scripted | None = None) -> tuple[Answer, bool]:
    """The :class:`Answer` of one steering call (see :func:`outcomes`), and
    whether it depended on the client (``Basis.CLIENT`` in some outcome)."""
    choices, basis, complete = outcomes(choose, rng)
    first = choices[0]
    options = sorted({_answer_key(c) for c in choices if c.kind == "answer"}) or [()]
    drawn = bool(basis & Basis.DRAW) and len(options) > 1
    return (Answer(first.kind, tuple(options), drawn, any(c.fallback for c in choices),
                   first.pool, first.reason, not complete),
            bool(basis & Basis.CLIENT))


# -- the drill ------------------------------------------------------------------------


def _choose(steering: Steering, pool: str, family: int, client: Client, view: HealthView,
            rng: random.Random) -> Choice:
    return steering.choose(pool, family, client, view, rng)


def check_names(config: Config, down: Iterable[str], silent: Iterable[str],
                heard: Collection[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``down`` and ``silent`` checked against the config's origins and the
    vantages known (declared, or ``heard`` from in Redis), duplicates
    dropped. Raises ``DrillError`` naming each unknown name and the known
    ones, or when no origin is named."""
    origins = tuple(dict.fromkeys(n for n in down if n))
    vantages = tuple(dict.fromkeys(n for n in silent if n))
    if not origins:
        raise DrillError("name at least one origin to take down: --down ORIGIN[,ORIGIN...]")
    bad = [n for n in origins if n not in config.origins]
    if bad:
        raise DrillError(f"unknown origin(s): {', '.join(bad)}; known: "
                         f"{', '.join(sorted(config.origins)) or 'none'}")
    known = set(config.vantages) | set(heard)
    bad = [n for n in vantages if n not in known]
    if bad:
        shown = ", ".join(sorted(known)) or "none (the config declares none, Redis named none)"
        raise DrillError(f"unknown vantage(s): {', '.join(bad)}; known: {shown}")
    return origins, vantages


def drill(config: Config, down: Collection[str], *, silent: Collection[str] = (),
          health: QuorumView | None = None, overrides: Overrides | None = None) -> Report:
    """Every place's answers now and with ``down`` down (``silent``
    vantages stale), by place, name and type.

    ``health``: now's view (from :func:`read_health`); None: every origin
    up (``silent`` then changes nothing: there are no reports).
    ``overrides``: the drains in force, applied to both views. Names are
    not checked here (:func:`check_names`): an unknown origin is just
    never down. Steers with two silent ``Steering`` objects of its own, so
    no serving state moves."""
    now_base: HealthView = AllUpExcept() if health is None else health
    then_base: HealthView = now_base
    held: tuple[str, ...] = ()
    if health is not None and silent:
        quiet = silence(config, health, silent)
        then_base = quiet
        held = tuple(sorted(o for o, st in quiet.snapshot().items() if st.held == "fresh"))
    if overrides is not None:
        now_base = DrainedView(now_base, overrides)
        then_base = DrainedView(then_base, overrides)
    views: tuple[HealthView, HealthView] = (now_base, Down(then_base, down))
    steerings = tuple(Steering(config.pools, config.origins, vantages=config.vantages,
                               quiet=True) for _ in views)
    records = sorted({(r.name, r.pool) for z in config.zones.values() for r in z.gslb.values()})
    types = {pool: [(f, "A" if f == 4 else "AAAA") for f in sorted(steerings[0].families(pool))]
             for _name, pool in records}
    anywhere: dict[tuple[int, str, int], Answer] = {}
    scripted = _Scripted()
    rows: list[Row] = []
    for place, client in places(config):
        for name, pool in records:
            for family, rtype in types[pool]:
                pair = []
                for i, (view, steering) in enumerate(zip(views, steerings, strict=True)):
                    key = (i, pool, family)
                    answer = anywhere.get(key)
                    if answer is None:
                        answer, by_client = answer_of(
                            functools.partial(_choose, steering, pool, family, client, view),
                            scripted)
                        if not by_client:
                            anywhere[key] = answer
                    pair.append(answer)
                rows.append(Row(place, name, rtype, pool, pair[0], pair[1]))
    return Report(tuple(down), tuple(silent), "all up" if health is None else "redis", held,
                  tuple(rows))
