"""Drain overrides: an operator takes an origin out of every answer.

* ``Override``: one drain (origin, reason, who, when, optional expiry,
  optional ramp: the origin's weight falls to zero over that many seconds
  before it is out).
* ``Overrides``: the drains in force on this nameserver, read on the query
  path (``is_drained``: one dict lookup). Expired drains lift themselves
  (a timer per drain; logged). Optionally persisted to a JSON file (no
  Redis: the drains survive a restart).
* ``DrainedView``: a ``HealthView`` wrapper: ``is_up`` is the health view's
  state and not drained; ``generation`` moves when either moves.
* ``RedisOverrides``: with Redis, drains are shared by every nameserver:
  each is a hash ``gslb:v1:override:{origin}`` (fields ``reason``, ``who``,
  ``at``, ``expires_at``, ``ramp_s``; Redis-side expiry at ``expires_at`` when given),
  announced on the channel ``gslb:v1:overrides``, loaded at start and at
  each resync (docs/redis.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gslb.errors import cancel_and_wait
from gslb.health.changes import Changes
from gslb.health.redis.schema import NAMESPACE, dumps, hash_items
from gslb.health.signing import SIG, Signer
from gslb.health.view import AllUpExcept, HealthView, ramp_down

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

log = logging.getLogger("gslb.overrides")


@dataclass(frozen=True, slots=True)
class Override:
    """One drain: ``origin`` is out of every answer since ``at`` (epoch
    seconds) until ``expires_at`` (epoch seconds; None: until undrained),
    because ``reason``, asked by ``who``. With ``ramp_s`` (seconds; None:
    none) its weight first falls from full to zero over ``ramp_s`` seconds
    from ``at`` (``ramp_down``), and it is out from ``at + ramp_s``."""

    origin: str
    reason: str
    who: str
    at: float
    expires_at: float | None = None
    ramp_s: float | None = None

    def to_fields(self) -> dict[str, str]:
        """Flat text fields (a Redis hash), without ``origin``; ``ramp_s``
        only when there is one (so a drain without stays signed as before)."""
        fields = {"reason": self.reason, "who": self.who, "at": f"{self.at:.6f}",
                  "expires_at": "" if self.expires_at is None else f"{self.expires_at:.6f}"}
        if self.ramp_s is not None:
            fields["ramp_s"] = f"{self.ramp_s:.6f}"
        return fields

    @classmethod
    def from_fields(cls, origin: str, fields: dict[str, str]) -> Override:
        """The inverse of ``to_fields``; raises KeyError/ValueError on junk."""
        expires = fields.get("expires_at") or None
        ramp = fields.get("ramp_s") or None
        return cls(origin, fields["reason"], fields["who"], float(fields["at"]),
                   float(expires) if expires is not None else None,
                   float(ramp) if ramp is not None else None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (status API, the overrides file)."""
        return asdict(self)


class Overrides:
    """The drains in force here. Use from one event loop.

    A drain with a ramp (``Override.ramp_s``) is in force (``get``,
    ``all``) at once, but the origin stays answered, with a falling
    ``weight_factor``, until the ramp ends; then ``generation`` moves (a
    timer) and ``is_drained`` says True.

    ``path``: a JSON file to persist the drains to (rewritten atomically on
    every change, read by ``load_file``); None keeps them in memory only.
    ``clock``: epoch seconds. ``generation`` moves (by one) on every change.
    ``on_change(override, drained)`` is called after each change (metrics,
    recent transitions).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path) if path is not None else None
        self.clock = clock
        self.generation = 0
        self.on_change: Callable[[Override, bool], None] | None = None
        self._drains: dict[str, Override] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._changes = Changes()
        self._ramps: dict[str, Override] = {}  # drains whose ramp may not be over
        self._ramp_timers: dict[str, asyncio.TimerHandle] = {}

    # -- reading (query path) ----------------------------------------------------

    def is_drained(self, origin: str) -> bool:
        """True while ``origin`` is out of answers: drained, its ramp (if
        any) over (an expired drain not yet lifted by its timer counts as
        lifted)."""
        drain = self._drains.get(origin)
        if drain is None:
            return False
        if drain.expires_at is None and drain.ramp_s is None:
            return True
        now = self.clock()
        if drain.ramp_s is not None and now < drain.at + drain.ramp_s:
            return False
        return drain.expires_at is None or drain.expires_at > now

    @property
    def ramping(self) -> bool:
        """True while some drain's ramp is not over (ended ones are dropped
        here, moving ``generation``: the origin is out now)."""
        return bool(self._ramps) and self._still_ramping()

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        """The share of its weight a drained origin still gets at ``now``
        (this object's clock when None): ``ramp_down`` of its drain's ramp;
        1.0 without one."""
        drain = self._ramps.get(origin)
        if drain is None or drain.ramp_s is None:
            return 1.0
        return ramp_down(drain.at, drain.ramp_s, self.clock() if now is None else now)

    def ramps(self) -> dict[str, tuple[float, float]]:
        """The drain ramps not over: origin → ``(at, ramp_s)`` (what a
        worker's mirror needs)."""
        self._still_ramping()
        return {o: (d.at, d.ramp_s) for o, d in self._ramps.items() if d.ramp_s is not None}

    def in_force(self, origin: str) -> bool:
        """True while a drain of ``origin`` is in force: drained, or ramping
        down to it."""
        drain = self._drains.get(origin)
        return drain is not None and (drain.expires_at is None
                                      or drain.expires_at > self.clock())

    def get(self, origin: str) -> Override | None:
        """The drain of ``origin`` in force (ramping included), or None."""
        return self._drains.get(origin) if self.in_force(origin) else None

    def all(self) -> list[Override]:
        """Every drain in force (ramping included), by origin name."""
        return [d for _, d in sorted(self._drains.items()) if self.in_force(d.origin)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` is true, re-testing it after every
        change (``Changes.wait_for``). ``timeout`` in seconds; raises
        ``TimeoutError`` when it passes first."""
        await self._changes.wait_for(predicate, timeout)

    # -- changes ---------------------------------------------------------------------

    def apply(self, drain: Override, *, announce: bool = True) -> bool:
        """Put ``drain`` in force (replacing any drain of the origin). An
        already expired one is ignored. Returns True when something changed;
        logs one line when ``announce``."""
        if drain.expires_at is not None and drain.expires_at <= self.clock():
            return False
        if self._drains.get(drain.origin) == drain:
            return False
        self._drains[drain.origin] = drain
        self._arm(drain)
        self._arm_ramp(drain)
        if announce:
            until = ("" if drain.expires_at is None else
                     f" until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(drain.expires_at))}")
            if drain.ramp_s is not None:
                until += f" after a {drain.ramp_s:g} s ramp"
            log.warning("origin %s DRAINED by %s%s: %s", drain.origin, drain.who, until,
                        drain.reason, extra={"origin": drain.origin, "who": drain.who,
                                             "reason": drain.reason, "event": "drain",
                                             "expires_at": drain.expires_at})
        self._changed_now(drain, True)
        return True

    def lift(self, origin: str, who: str, reason: str = "", *, announce: bool = True) -> bool:
        """Lift the drain of ``origin``; returns False when there was none."""
        drain = self._drains.pop(origin, None)
        for timers in (self._timers, self._ramp_timers):
            timer = timers.pop(origin, None)
            if timer is not None:
                timer.cancel()
        self._ramps.pop(origin, None)
        if drain is None:
            return False
        if announce:
            log.warning("origin %s UNDRAINED by %s%s", origin, who,
                        f": {reason}" if reason else "",
                        extra={"origin": origin, "who": who, "reason": reason,
                               "event": "undrain"})
        self._changed_now(drain, False)
        return True

    def replace(self, drains: Iterable[Override]) -> int:
        """Make the drains exactly ``drains`` (a resync from Redis); logs
        each difference. Returns how many origins changed."""
        new = {d.origin: d for d in drains}
        changed = 0
        for origin in [o for o in self._drains if o not in new]:
            changed += self.lift(origin, "resync", "no longer in Redis")
        for drain in new.values():
            changed += self.apply(drain)
        return changed

    def load_file(self) -> int:
        """Read the drains from ``path`` (missing file: none); expired ones
        are dropped. Returns how many were loaded. Raises ``OSError`` or
        ``ValueError`` for an unreadable or malformed file."""
        if self.path is None or not self.path.exists():
            return 0
        data = json.loads(self.path.read_text())
        loaded = sum(self.apply(Override(**item), announce=False) for item in data["drains"])
        if loaded:
            log.info("loaded %d drain(s) from %s: %s", loaded, self.path,
                     ", ".join(d.origin for d in self.all()))
        return loaded

    # -- internals ----------------------------------------------------------------------

    def _expired(self, origin: str) -> None:
        drain = self._drains.get(origin)
        if drain is not None:
            log.warning("origin %s UNDRAINED: drain by %s expired (%s)", origin, drain.who,
                        drain.reason, extra={"origin": origin, "who": drain.who,
                                             "reason": drain.reason, "event": "expire"})
            self.lift(origin, drain.who, announce=False)

    def _arm(self, drain: Override) -> None:
        old = self._timers.pop(drain.origin, None)
        if old is not None:
            old.cancel()
        if drain.expires_at is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: is_drained still honours the expiry
        delay = max(0.0, drain.expires_at - self.clock())
        self._timers[drain.origin] = loop.call_later(delay, self._expired, drain.origin)

    def _arm_ramp(self, drain: Override) -> None:
        """Track ``drain``'s ramp; at its end (a timer, or the first
        ``ramping`` check after) ``generation`` moves."""
        old = self._ramp_timers.pop(drain.origin, None)
        if old is not None:
            old.cancel()
        self._ramps.pop(drain.origin, None)
        if drain.ramp_s is None or drain.at + drain.ramp_s <= self.clock():
            return
        self._ramps[drain.origin] = drain
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: ``ramping`` ends it
        delay = max(0.0, drain.at + drain.ramp_s - self.clock())
        self._ramp_timers[drain.origin] = loop.call_later(delay, self._still_ramping)

    def _still_ramping(self) -> bool:
        now = self.clock()
        over = [o for o, d in self._ramps.items() if d.ramp_s is None or now >= d.at + d.ramp_s]
        for origin in over:
            del self._ramps[origin]
            self._ramp_timers.pop(origin, None)
            log.warning("origin %s: drain ramp over, out of every answer", origin,
                        extra={"origin": origin, "event": "drain_ramp_over"})
        if over:
            self.generation += 1
            self._changes.wake()
        return bool(self._ramps)

    def _changed_now(self, drain: Override, drained: bool) -> None:
        self.generation += 1
        self._save()
        if self.on_change is not None:
            self.on_change(drain, drained)
        self._changes.wake()

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"drains": [d.to_json() for d in self._drains.values()]},
                                  indent=1))
        os.replace(tmp, self.path)


class DrainedView:
    """A ``HealthView``: ``base`` with the drains of ``overrides`` applied.

    ``is_up(origin)`` is ``base.is_up(origin) and not drained``;
    ``generation`` is the sum of both generations (each only grows, so it
    moves whenever either moves); ``srtt_ms`` is the base view's (a drained
    origin is not chosen, so its RTT does not matter to steering)."""

    __slots__ = ("base", "overrides")

    def __init__(self, base: HealthView, overrides: Overrides) -> None:
        self.base = base
        self.overrides = overrides

    @property
    def generation(self) -> int:
        return self.base.generation + self.overrides.generation

    @property
    def ramping(self) -> bool:
        overrides = self.overrides  # its ``ramping``, inlined (once per query)
        return self.base.ramping or (bool(overrides._ramps) and overrides._still_ramping())

    def is_up(self, origin: str) -> bool:
        return self.base.is_up(origin) and not self.overrides.is_drained(origin)

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return self.base.srtt_ms(origin, vantage)

    def load(self, origin: str) -> float | None:
        return self.base.load(origin)

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        """The base view's factor times the drain ramp's."""
        return self.base.weight_factor(origin, now) * self.overrides.weight_factor(origin, now)

    def everyone_up(self) -> HealthView:
        """The view for ``fallback: all``: every origin up but the drained
        ones, no RTT known (see :func:`gslb.steering.fallback.everyone_up`)."""
        return AllUpExcept(frozenset(d.origin for d in self.overrides.all()
                                     if self.overrides.is_drained(d.origin)),
                           self.overrides.generation)


class OverrideError(Exception):
    """A drain could not be shared (Redis unreachable); nothing changed."""


class RedisOverrides:
    """Shares ``overrides`` through Redis (``gslb serve --redis``).

    ``drain``/``undrain`` write to Redis (one MULTI/EXEC: the hash, its
    expiry, the announcement) and then apply locally; they raise
    ``OverrideError`` when Redis cannot be reached (nothing changes then).
    A background task, on its own connection, subscribes to the channel,
    loads every drain (``Overrides.replace``), applies each announcement,
    and loads again every ``resync_interval_s`` seconds; on errors it keeps
    the drains it has, retries with capped backoff and logs one line per
    outage. ``connected``: subscribed and loaded. With a ``signer``
    (``health.report_key_file``) drains and undrains are signed, and those
    read without a valid signature are dropped, logged and counted in
    ``rejected`` (by reason: ``unsigned``, ``bad_signature``). Raises
    ``RedisConfigError`` for a bad ``url``.
    """

    def __init__(self, url: str, overrides: Overrides, *, resync_interval_s: float,
                 namespace: str | None = None, signer: Signer | None = None) -> None:
        from gslb.health.redis.client import make_client, parse_url
        from gslb.health.redis.outage import Outage

        self.target = parse_url(url)
        self.overrides = overrides
        self.resync_interval_s = resync_interval_s
        self.namespace = NAMESPACE if namespace is None else namespace
        self.channel = f"{self.namespace}overrides"
        self.connected = False
        self.signer = signer
        self.rejected: dict[str, int] = {}
        self._make_client = make_client
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()
        self._outage = Outage("override watcher", self.target, "keeping the drains known")

    def key(self, origin: str) -> str:
        """The Redis key of ``origin``'s drain."""
        return f"{self.namespace}override:{origin}"

    async def start(self) -> None:
        """Start the watcher task; returns at once (see ``wait_synced``)."""
        if self._task is None:
            self._client = self._make_client(self.target)
            self._task = asyncio.create_task(self._run(), name="gslb-override-watcher")

    async def wait_synced(self, timeout: float) -> None:
        """Return once the first full load is done; ``TimeoutError`` after
        ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    async def stop(self) -> None:
        """Stop the watcher and close the connections."""
        if self._task is not None:
            task, self._task = self._task, None
            await cancel_and_wait(task)
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()
        self.connected = False

    async def drain(self, drain: Override) -> None:
        """Store and announce ``drain``, then apply it here."""
        key = self.key(drain.origin)
        fields = drain.to_fields()
        if self.signer is not None:
            fields[SIG] = self.signer.drain(drain.origin, fields)
        message = {"type": "drain", "origin": drain.origin, "fields": fields}
        try:
            pipe = self._transaction()
            pipe.delete(key)
            pipe.hset(key, items=hash_items(fields))
            if drain.expires_at is not None:
                pipe.pexpireat(key, int(drain.expires_at * 1000))
            pipe.publish(self.channel, dumps(message))
            await pipe.execute()
        except Exception as exc:
            raise OverrideError(f"Redis at {self.target} unreachable: {exc}") from exc
        self.overrides.apply(drain)

    async def undrain(self, origin: str, who: str, reason: str = "") -> bool:
        """Delete and announce the drain of ``origin``, then lift it here;
        returns whether it was drained (here)."""
        message: dict[str, object] = {"type": "undrain", "origin": origin, "who": who,
                                      "reason": reason}
        if self.signer is not None:
            at = time.time()
            message.update(at=at, sig=self.signer.undrain(origin, who, reason, at))
        was = self.overrides.in_force(origin)  # our own watcher may hear it first
        try:
            pipe = self._transaction()
            pipe.delete(self.key(origin))
            pipe.publish(self.channel, dumps(message))
            await pipe.execute()
        except Exception as exc:
            raise OverrideError(f"Redis at {self.target} unreachable: {exc}") from exc
        self.overrides.lift(origin, who, reason)
        return was

    def _transaction(self) -> Pipeline:
        """A MULTI/EXEC pipeline on the client; ``RuntimeError`` before
        ``start`` (the callers turn it into ``OverrideError``)."""
        if self._client is None:
            raise RuntimeError("the override watcher is not started")
        return self._client.pipeline(transaction=True)

    async def _run(self) -> None:
        from gslb.health.redis.follow import follow_channel
        from gslb.health.redis.outage import Backoff

        await follow_channel(self, self.channel, Backoff())

    async def _load(self, client: Redis) -> None:
        prefix = self.key("")
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        drains = []
        for key, fields in zip(keys, await pipe.execute(), strict=True):
            origin = key[len(prefix):]
            try:
                if fields and self._signed(f"drain record {key}", fields, self.signer is None
                                           or self.signer.verify_drain(origin, fields)):
                    drains.append(Override.from_fields(origin, fields))  # (empty: expired)
            except (KeyError, ValueError) as exc:
                log.warning("skipped malformed drain record %s: %s", key, exc)
        self.overrides.replace(drains)
        self._synced.set()

    def _on_message(self, data: str) -> None:
        try:
            msg = json.loads(data)
            origin = msg["origin"]
            if msg["type"] == "drain":
                if self._signed("drain message", msg["fields"], self.signer is None
                                or self.signer.verify_drain(origin, msg["fields"])):
                    self.overrides.apply(Override.from_fields(origin, msg["fields"]))
            elif msg["type"] == "undrain":
                who, reason = msg.get("who", "?"), msg.get("reason", "")
                if self._signed("undrain message", msg, self.signer is None
                                or self.signer.verify_undrain(origin, who, reason,
                                                              float(msg["at"]), msg.get(SIG))):
                    self.overrides.lift(origin, who, reason)
            else:
                raise ValueError(f"unknown type {msg['type']!r}")
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("skipped malformed override message %r: %s", data[:200], exc)

    def _signed(self, what: str, record: dict[str, Any], ok: bool) -> bool:
        """``ok``, after counting and logging a rejection when not."""
        if not ok:
            reason = "unsigned" if SIG not in record else "bad_signature"
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            log.warning("rejected %s: %s (health.report_key_file)", what,
                        reason.replace("_", " "))
        return ok
