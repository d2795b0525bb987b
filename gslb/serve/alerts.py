"""Alerts: webhooks on state changes of ``gslb serve`` (docs/operations.md
"Alerts").

``Alerts`` watches five conditions, each with a bad and a good state:

* origin ``down`` / ``up``: ``origin_down``, ``origin_up`` (the quorum's
  state, drains aside);
* origin ``degraded`` / ``quorum``: ``origin_degraded`` (fewer than quorum
  fresh vantages: its state holds), ``origin_quorum``;
* pool (per family) ``fallback`` / ``healthy``: ``pool_fallback`` (fewer
  than ``min_healthy`` members up, drains applied: its answers come from
  its fallback), ``pool_healthy``;
* vantage ``stale`` / ``fresh``: ``vantage_stale``, ``vantage_fresh``;
* Redis ``lost`` / ``connected`` (``--redis`` only): ``redis_lost``,
  ``redis_back``.

It reads them from the health view on every change of its generation and
at least every ``tick_s`` seconds (staleness moves with time), in its own
task: nothing on the answer path or the health path waits for it. A change
seen is first **claimed** in Redis (with ``--redis``): a script compares
the state stored for the subject (``gslb:v1:alert:<condition>:<subject>``)
with the new one and, when they differ, stores it and moves the subject's
sequence number; only the nameserver whose claim moved it sends, so every
change is sent once however many nameservers see it, and the event id
(a hash of condition, subject, new state and that sequence number) is the
same whoever computes it. Without Redis the change is sent from here;
when Redis cannot be reached it is sent from here too, and the body says
so (``coordination: "redis_unreachable"``): a duplicate beats a missed
alert. ``redis_lost``/``redis_back`` are each nameserver's own (the
subject is the nameserver), never claimed.

Each webhook has a bounded queue (``max_queue``: the oldest event is
dropped, counted) and one sender task: a POST bounded by ``timeout_s``,
retried ``retries`` times after ``backoff_s`` seconds doubling (capped at
``BACKOFF_CAP_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

import aiohttp
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from gslb.config.model import AlertSettings, Webhook
from gslb.errors import raise_if_cancelling
from gslb.health.redis.schema import NAMESPACE
from gslb.health.view import HealthView, QuorumView, generation_moved
from gslb.steering import Steering

log = logging.getLogger("gslb.alerts")

#: Longest wait between two POSTs of one event, seconds.
BACKOFF_CAP_S = 60.0
#: Seconds a subject's alert state is kept in Redis after its last change.
CLAIM_TTL_S = 7 * 86400
#: Seconds a claim may take before the event is sent uncoordinated.
CLAIM_TIMEOUT_S = 1.0


class Condition(NamedTuple):
    """One watched condition: its subject kind, bad and good states, the
    event sent on entering each, and its Alertmanager ``alertname``."""

    subject: str
    bad: str
    good: str
    fires: str
    resolves: str
    alertname: str


CONDITIONS: Mapping[str, Condition] = {
    "origin": Condition("origin", "down", "up", "origin_down", "origin_up", "GslbOriginDown"),
    "quorum": Condition("origin", "degraded", "quorum", "origin_degraded", "origin_quorum",
                        "GslbOriginDegraded"),
    "pool": Condition("pool", "fallback", "healthy", "pool_fallback", "pool_healthy",
                      "GslbPoolFallback"),
    "vantage": Condition("vantage", "stale", "fresh", "vantage_stale", "vantage_fresh",
                         "GslbVantageStale"),
    "redis": Condition("nameserver", "lost", "connected", "redis_lost", "redis_back",
                       "GslbRedisLost"),
}

Key = tuple[str, str]
"""A watched (condition, subject): ``("pool", "web/ipv4")``, ``("origin", "eu1")``."""


@dataclass(frozen=True, slots=True)
class Event:
    """One state change as sent: ``id`` (stable, see the module doc),
    ``condition`` (a ``CONDITIONS`` key), ``subject``, ``old`` and ``new``
    states, ``at`` (epoch seconds, when this nameserver saw it), ``since``
    (epoch seconds the bad state began, for a resolving event; None when
    unknown), ``nameserver`` (who sent it), ``coordination`` (``redis``,
    ``none`` without Redis, ``redis_unreachable``)."""

    id: str
    condition: str
    subject: str
    old: str
    new: str
    at: float
    nameserver: str
    coordination: str
    since: float | None = None

    @property
    def event(self) -> str:
        """The event's name (``origin_down``...)."""
        cond = CONDITIONS[self.condition]
        return cond.fires if self.new == cond.bad else cond.resolves

    @property
    def firing(self) -> bool:
        return self.new == CONDITIONS[self.condition].bad

    def subject_fields(self) -> dict[str, str]:
        """``kind``, ``name`` (and ``family``, ``ipv4``/``ipv6``, for a pool)."""
        kind = CONDITIONS[self.condition].subject
        if kind == "pool":
            name, _, family = self.subject.rpartition("/")
            return {"kind": kind, "name": name, "family": family}
        return {"kind": kind, "name": self.subject}

    def gslb_body(self) -> dict[str, Any]:
        """The ``gslb`` format body (docs/operations.md "Alerts")."""
        return {"version": 1, "id": self.id, "event": self.event,
                "subject": self.subject_fields(), "old": self.old, "new": self.new,
                "at": round(self.at, 3), "time": _iso(self.at), "nameserver": self.nameserver,
                "coordination": self.coordination}

    def alertmanager_alert(self, generator: str = "") -> dict[str, Any]:
        """One Alertmanager ``postableAlert``: ``labels`` (``alertname``,
        ``severity``, the subject's), ``annotations``, ``startsAt`` and, when
        resolved, ``endsAt`` (RFC 3339)."""
        cond = CONDITIONS[self.condition]
        subject = self.subject_fields()
        labels = {"alertname": cond.alertname, "severity": "critical"
                  if self.condition in ("origin", "pool") else "warning",
                  "service": "gslb", subject["kind"]: subject["name"]}
        if "family" in subject:
            labels["family"] = subject["family"]
        alert: dict[str, Any] = {
            "labels": labels,
            "annotations": {"summary": f"{subject['kind']} {self.subject} {self.new}",
                            "description": f"{subject['kind']} {self.subject}: {self.old} → "
                                           f"{self.new}, seen by {self.nameserver}",
                            "event_id": self.id, "nameserver": self.nameserver},
            "startsAt": _iso(self.at if self.firing or self.since is None else self.since),
        }
        if not self.firing:
            alert["endsAt"] = _iso(self.at)
        if generator:
            alert["generatorURL"] = generator
        return alert


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def event_id(condition: str, subject: str, new: str, seq: int | str) -> str:
    """The event id: 32 hex digits of SHA-256 over condition, subject, new
    state and ``seq`` (the subject's sequence number in Redis, or a local
    one with its process's start)."""
    text = "\0".join((condition, subject, new, str(seq)))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Watched(Protocol):
    """What alerts read of a serving nameserver (``Service`` is one):
    ``quorum`` (health before drains), ``view`` (after), the origins with a
    check, the pools of the config in force and its quiet Steering, and
    whether Redis is connected (None: no Redis)."""

    @property
    def quorum(self) -> QuorumView: ...

    @property
    def view(self) -> HealthView: ...

    def alert_inputs(self) -> tuple[Iterable[str], Iterable[str], Steering]: ...

    def redis_connected(self) -> bool | None: ...


def observe(watched: Watched, nameserver: str, heard: set[str]) -> dict[Key, str]:
    """Every condition's state now. ``heard``: vantages seen fresh so far
    (updated; a vantage never heard from is not called stale)."""
    quorum = watched.quorum
    checked, pools, steering = watched.alert_inputs()
    states: dict[Key, str] = {}
    for origin in checked:
        states[("origin", origin)] = "up" if quorum.is_up(origin) else "down"
        held = quorum.status(origin).held
        states[("quorum", origin)] = "degraded" if held == "fresh" else "quorum"
    view = watched.view
    for pool in pools:
        for family in (4, 6):
            up = steering.pool_up(pool, family, view)
            if up is not None:
                states[("pool", f"{pool}/ipv{family}")] = "healthy" if up else "fallback"
    fresh = quorum.fresh_vantages()
    heard |= fresh
    for vantage in heard & quorum.known_vantages():
        states[("vantage", vantage)] = "fresh" if vantage in fresh else "stale"
    connected = watched.redis_connected()
    if connected is not None:
        states[("redis", nameserver)] = "connected" if connected else "lost"
    return states


@dataclass(slots=True)
class _Hook:
    """One webhook at run time: its queue and counters."""

    spec: Webhook
    queue: deque[Event] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent: dict[str, int] = field(default_factory=dict)  # result: count
    dropped: int = 0
    busy: bool = False  # an event being delivered (POSTs and waits between)

    def put(self, event: Event) -> None:
        if len(self.queue) >= self.spec.max_queue:
            self.queue.popleft()
            self.dropped += 1
            log.warning("alerts: webhook %s: queue full (%d), oldest event dropped",
                        self.spec.name, self.spec.max_queue)
        self.queue.append(event)
        self.wake.set()

    def count(self, result: str) -> None:
        self.sent[result] = self.sent.get(result, 0) + 1


_CLAIM = """
local cur = redis.call('HGET', KEYS[1], 'state')
local since = redis.call('HGET', KEYS[1], 'since')
if cur == ARGV[1] then
  return {0, redis.call('HGET', KEYS[1], 'seq') or '0', cur, since or ''}
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'by', ARGV[3], 'at', ARGV[4])
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'since', ARGV[4]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, tostring(seq), cur or '', since or ''}
"""
"""KEYS[1]: the subject's hash; ARGV: new state, TTL (s), nameserver, now
(epoch s), whether the new state is the bad one. Returns ``{claimed, seq,
the state it held, since when the bad state held}``."""


class Alerts:
    """The alerts of one ``gslb serve`` (see the module doc).

    ``settings``: the config's ``alerts``; ``watched``: the service;
    ``nameserver``: the name each event carries; ``redis_url``: the Redis
    to claim events in (None: send directly); ``tick_s``: seconds between
    two looks when nothing changes. ``start()`` and ``stop()`` run and end
    its tasks; ``update(settings)`` takes a reloaded config's webhooks.
    """

    def __init__(self, settings: AlertSettings, watched: Watched, nameserver: str,
                 redis_url: str | None = None, *, namespace: str = NAMESPACE,
                 tick_s: float = 1.0) -> None:
        self.watched = watched
        self.nameserver = nameserver
        self.tick_s = tick_s
        self._prefix = f"{namespace}alert:"
        self._redis_url = redis_url
        self._redis: Any = None  # redis.asyncio.Redis, made on start (redis-py loaded then)
        self._script: Any = None
        self._hooks: dict[str, _Hook] = {}
        self._last: dict[Key, str] = {}
        self._since: dict[Key, float] = {}  # bad since (local: no Redis)
        self._firing: dict[Key, Event] = {}
        self._heard: set[str] = set()
        self._unsynced: set[Key] = set()  # changed while Redis was out of reach
        self._seq = 0
        self._started = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.update(settings)

    def update(self, settings: AlertSettings) -> None:
        """Use ``settings``' webhooks: a webhook kept by name keeps its
        queue and counters (its new spec applies from the next event)."""
        old = self._hooks
        self._hooks = {}
        for spec in settings.webhooks:
            hook = old.pop(spec.name, None) or _Hook(spec)
            hook.spec = spec
            self._hooks[spec.name] = hook
        for name in old:
            task = self._senders.pop(name, None)
            if task is not None:
                task.cancel()
        if self._session is not None:
            self._start_senders()

    @property
    def webhooks(self) -> Mapping[str, _Hook]:
        return self._hooks

    async def start(self) -> None:
        """Start watching (a first look is taken at once: conditions bad
        now are sent, good ones only noted) and the senders."""
        self._session = aiohttp.ClientSession()
        if self._redis_url is not None:
            from gslb.health.redis.client import make_client, parse_url

            self._redis = make_client(parse_url(self._redis_url))
            self._script = self._redis.register_script(_CLAIM)
        self._start_senders()
        self._tasks = [asyncio.create_task(self._watch(), name="gslb-alerts")]

    def _start_senders(self) -> None:
        for name, hook in self._hooks.items():
            if name not in self._senders or self._senders[name].done():
                self._senders[name] = asyncio.create_task(self._send_loop(hook),
                                                          name=f"gslb-alerts-{name}")

    async def stop(self) -> None:
        """Cancel the tasks (queued events are dropped) and close the clients."""
        tasks = [*self._tasks, *self._senders.values()]
        self._tasks, self._senders = [], {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None

    # -- watching -----------------------------------------------------------------

    async def _watch(self) -> None:
        quorum, view = self.watched.quorum, self.watched.view
        loop = asyncio.get_running_loop()
        next_repeat = loop.time() + self._repeat_s()
        while True:
            seen = view.generation
            try:
                if self._hooks:
                    await self.evaluate()
            except Exception:
                raise_if_cancelling()
                log.exception("alerts: evaluating the conditions failed")
            if loop.time() >= next_repeat:
                self.repeat_firing()
                next_repeat = loop.time() + self._repeat_s()
            with contextlib.suppress(TimeoutError):
                await quorum.wait_for(generation_moved(view, seen), self.tick_s)
            raise_if_cancelling()

    def _repeat_s(self) -> float:
        return min((h.spec.repeat_s for h in self._hooks.values()
                    if h.spec.format == "alertmanager"), default=60.0)

    async def evaluate(self) -> list[Event]:
        """Look at every condition now; claim and queue each change. Returns
        the events queued (for tests and logs)."""
        states = observe(self.watched, self.nameserver, self._heard)
        if self._unsynced and self.watched.redis_connected():
            await self._resync()
        queued = []
        for key in [k for k in self._last if k not in states]:
            del self._last[key]  # gone with a reload: nothing to say
            self._firing.pop(key, None)
        for key, state in states.items():
            old = self._last.get(key)
            if old == state:
                continue
            self._last[key] = state
            cond = CONDITIONS[key[0]]
            if old is None and state == cond.good:
                continue  # first look, all well: nothing happened
            event = await self._claim(key, old if old is not None else cond.good, state)
            if event is None:
                continue
            log.log(logging.WARNING if event.firing else logging.INFO,
                    "alert %s %s: %s -> %s (%s, id %s)", event.event, event.subject,
                    event.old, event.new, event.coordination, event.id)
            for hook in self._hooks.values():
                if not hook.spec.events or event.event in hook.spec.events:
                    hook.put(event)
            queued.append(event)
        return queued

    async def _claim(self, key: Key, old: str, new: str) -> Event | None:
        """The event for ``key`` going from ``old`` to ``new``, or None when
        another nameserver claimed it (then it is kept for repeats only)."""
        condition, subject = key
        now = time.time()
        coordination = "none"
        if self._script is not None and condition != "redis":
            if self.watched.redis_connected() is False:  # not worth a timeout per event
                coordination = "redis_unreachable"
            else:
                try:
                    return await self._claim_in_redis(key, old, new, now)
                except Exception as exc:
                    raise_if_cancelling()
                    log.warning("alerts: cannot claim %s %s in Redis (%s: %s); sending from "
                                "here", condition, subject, type(exc).__name__, exc)
                    coordination = "redis_unreachable"
        if coordination == "redis_unreachable":
            self._unsynced.add(key)
        firing = new == CONDITIONS[condition].bad
        self._seq += 1
        since = self._since.pop(key, None)
        if firing:
            self._since[key] = now
        event = Event(event_id(condition, subject, new,
                               f"{self.nameserver}:{self._started:.6f}:{self._seq}"),
                      condition, subject, old, new, now, self.nameserver, coordination,
                      None if firing else since)
        self._track(key, event)
        return event

    async def _claim_in_redis(self, key: Key, old: str, new: str, now: float) -> Event | None:
        """``_claim`` through Redis (``_CLAIM``); raises what redis-py raises,
        ``TimeoutError`` after ``CLAIM_TIMEOUT_S``."""
        condition, subject = key
        firing = new == CONDITIONS[condition].bad
        async with asyncio.timeout(CLAIM_TIMEOUT_S):
            claimed, seq, held, since = await self._script(
                keys=[f"{self._prefix}{condition}:{subject}"],
                args=[new, CLAIM_TTL_S, self.nameserver, f"{now:.6f}", "1" if firing else "0"])
        held, since = _text(held), _text(since)
        event = Event(event_id(condition, subject, new, _text(seq)), condition, subject,
                      held or old, new, now, self.nameserver, "redis",
                      float(since) if since and not firing else None)
        self._track(key, event)
        if not int(claimed):
            return None  # another nameserver's
        if not held and not firing:
            return None  # nothing was known before: no news
        return event

    async def _resync(self) -> None:
        """Store in Redis the last state sent from here of each subject that
        changed while Redis was out of reach, so a change seen now is claimed
        against it, not against what held before the outage (an
        ``origin_up`` would otherwise be taken as known)."""
        for key in sorted(self._unsynced):
            state = self._last.get(key)
            try:
                if state is not None:
                    await self._claim_in_redis(key, state, state, time.time())
            except Exception as exc:
                raise_if_cancelling()
                log.debug("alerts: cannot store %s in Redis yet: %s", key, exc)
                return
            self._unsynced.discard(key)

    def _track(self, key: Key, event: Event) -> None:
        if event.firing:
            self._firing[key] = event
        else:
            self._firing.pop(key, None)

    def repeat_firing(self) -> None:
        """Send every alert still firing to the ``alertmanager`` webhooks
        again (Alertmanager resolves an alert not sent again within its
        ``resolve_timeout``; every nameserver sends them: it deduplicates
        by labels)."""
        for hook in self._hooks.values():
            if hook.spec.format == "alertmanager":
                for event in self._firing.values():
                    if not hook.spec.events or event.event in hook.spec.events:
                        hook.put(event)

    # -- sending -------------------------------------------------------------------

    async def _send_loop(self, hook: _Hook) -> None:
        while True:
            while not hook.queue:
                hook.wake.clear()
                await hook.wake.wait()
            event = hook.queue.popleft()
            hook.busy = True
            try:
                await self._deliver(hook, event)
            except Exception:
                raise_if_cancelling()
                log.exception("alerts: webhook %s: sending failed", hook.spec.name)
            finally:
                hook.busy = False

    async def _deliver(self, hook: _Hook, event: Event) -> bool:
        """POST ``event`` to ``hook``, retrying with backoff; True once a 2xx
        status came back."""
        spec = hook.spec
        body: Any = ([event.alertmanager_alert()] if spec.format == "alertmanager"
                     else event.gslb_body())
        headers = {"User-Agent": "gslb-alerts"}
        if spec.token:
            headers["Authorization"] = f"Bearer {spec.token}"
        assert self._session is not None
        for attempt in range(spec.retries + 1):
            why = await self._post(spec, body, headers)
            if why is None:
                hook.count("ok")
                return True
            if attempt == spec.retries:
                break
            hook.count("retry")
            delay = min(BACKOFF_CAP_S, spec.backoff_s * 2 ** attempt)
            log.info("alerts: webhook %s: %s; retrying in %.1f s", spec.name, why, delay)
            await asyncio.sleep(delay)
        hook.count("failed")
        log.warning("alerts: webhook %s: %s; giving up on %s %s after %d attempt(s)",
                    spec.name, why, event.event, event.subject, spec.retries + 1)
        return False

    async def _post(self, spec: Webhook, body: Any, headers: dict[str, str]) -> str | None:
        """One POST; None when it got a 2xx status, else why not."""
        assert self._session is not None
        try:
            async with self._session.post(
                    spec.url, json=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=spec.timeout_s)) as response:
                await response.read()
                if 200 <= response.status < 300:
                    return None
                return f"status {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    def collector(self) -> Collector:
        """The metrics: ``gslb_alerts_sent_total{webhook,result}`` (``ok``,
        ``retry``: a failed attempt retried, ``failed``: given up) and
        ``gslb_alerts_dropped_total{webhook}`` (queue full)."""
        return _AlertsCollector(self)


class _AlertsCollector(Collector):
    def __init__(self, alerts: Alerts) -> None:
        self.alerts = alerts

    def collect(self) -> Iterator[Metric]:
        sent = CounterMetricFamily("gslb_alerts_sent", "Alert webhook POSTs by result "
                                   "(ok, retry, failed)", labels=["webhook", "result"])
        dropped = CounterMetricFamily("gslb_alerts_dropped", "Alert events dropped from a "
                                      "full webhook queue", labels=["webhook"])
        for name, hook in sorted(self.alerts.webhooks.items()):
            for result in ("ok", "retry", "failed"):
                sent.add_metric([name, result], hook.sent.get(result, 0))
            dropped.add_metric([name], hook.dropped)
        yield sent
        yield dropped


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["CONDITIONS", "Alerts", "Condition", "Event", "Watched", "event_id", "observe"]
