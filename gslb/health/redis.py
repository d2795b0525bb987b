"""Shared health state in Redis: probe workers write, nameservers watch.

* ``RedisSink`` (a ``ReportSink``, used by ``gslb probe``) records the latest
  report per (vantage, origin) and ships everything pending in one
  MULTI/EXEC pipeline: the report hash, its TTL, and a pub/sub message when
  the prober says others should hear at once.
* ``RedisWatcher`` (used by ``gslb serve``) keeps a ``QuorumView`` in step:
  SUBSCRIBE first, then a full load (SCAN + HGETALL), then every message as
  it arrives, and a full load again every ``resync_interval_s`` seconds.

Both ride out Redis outages: they log one warning when an outage starts and
one info line (with its duration) when it ends, retry with capped
exponential backoff and jitter, and catch up afterwards. The URL forms, the
key schema and the message formats are documented in ``docs/redis.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import (
    URL_QUERY_ARGUMENT_PARSERS,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError

from gslb import __version__
from gslb.errors import GslbError, cancel_and_wait, raise_if_cancelling
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView

log = logging.getLogger("gslb.health.redis")

NAMESPACE = "gslb:v1:"
"""Prefix of every key and channel (versioned: see docs/redis.md)."""
PASSWORD_ENV = "GSLB_REDIS_PASSWORD"
"""Environment variable giving the Redis password when the URL has none."""
SENTINEL_PASSWORD_ENV = "GSLB_REDIS_SENTINEL_PASSWORD"
"""Environment variable giving the Sentinel password when the URL has none."""
DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
CONNECT_TIMEOUT_S = 2.0
"""Default socket connect timeout, seconds (``?socket_connect_timeout=``)."""
SOCKET_TIMEOUT_S = 5.0
"""Default command timeout, seconds (``?socket_timeout=``)."""

_SCHEMES: dict[str, tuple[Literal["tcp", "unix", "sentinel"], bool]] = {
    "redis": ("tcp", False), "rediss": ("tcp", True), "unix": ("unix", False),
    "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
}
_OPTIONS = frozenset({
    "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_read_size",
    "health_check_interval", "client_name", "max_connections", "protocol"})
_TLS_OPTIONS = frozenset({
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data",
    "ssl_ca_path", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers", "ssl_password",
    "ssl_include_verify_flags", "ssl_exclude_verify_flags"})
_SECRET_QUERY = re.compile(r"((?:^|[?&;])(?:sentinel_)?password=)[^&;#]*")


class RedisConfigError(GslbError):
    """A Redis URL that cannot be used; the message quotes the URL with every
    password masked."""


def mask_url(url: str) -> str:
    """``url`` with the password of its user info and any ``password=`` /
    ``sentinel_password=`` query value replaced by ``***`` (safe to log)."""
    scheme, sep, rest = url.partition("://")
    if sep:
        at = rest.rfind("@")
        colon = rest.find(":", 0, at)
        if at >= 0 and colon >= 0:
            rest = f"{rest[:colon]}:***{rest[at:]}"
    return _SECRET_QUERY.sub(r"\1***", f"{scheme}{sep}{rest}")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Redis is, as parsed from a URL by ``parse_url``.

    * ``kind``: ``"tcp"`` (``hosts`` holds the one server), ``"unix"``
      (``path``) or ``"sentinel"`` (``hosts`` holds the sentinels,
      ``service`` the monitored master's name).
    * ``tls``: connect with TLS (``rediss://``, ``rediss+sentinel://``; to
      the sentinels too).
    * ``db``: the database number; ``username``/``password``: the master's
      ACL user and password (from the URL, else ``GSLB_REDIS_PASSWORD``);
      ``sentinel_username``/``sentinel_password``: for the sentinels.
    * ``options``: further connection keywords from the query string,
      converted as redis-py does (``socket_timeout``, ``ssl_ca_certs``...).
    * ``masked``: the URL with passwords masked; also ``str(target)``.
    """

    kind: Literal["tcp", "unix", "sentinel"]
    tls: bool
    masked: str
    hosts: tuple[tuple[str, int], ...] = ()
    path: str | None = None
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __str__(self) -> str:
        return self.masked


def parse_url(url: str, env: Mapping[str, str] | None = None) -> RedisTarget:
    """Parse a Redis URL (forms in docs/redis.md):

    * ``redis://[[user]:password@]host[:port][/db][?option=value...]``
    * ``rediss://...`` (TLS; ``?ssl_ca_certs=/path&ssl_cert_reqs=required``...)
    * ``unix:///path/to.sock[?db=N&password=...]``
    * ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/SERVICE[/db]``
      (``rediss+sentinel://`` for TLS; sentinel port 26379 by default;
      ``?sentinel_password=`` / ``?sentinel_username=`` for the sentinels).

    ``env`` (default ``os.environ``) supplies ``GSLB_REDIS_PASSWORD`` and
    ``GSLB_REDIS_SENTINEL_PASSWORD`` when the URL has no such password.
    Raises ``RedisConfigError`` (URL masked in the message) for an unknown
    scheme, a bad host, port, database or option, or a missing service name
    or socket path.
    """
    env = os.environ if env is None else env
    masked = mask_url(url)

    def fail(why: str) -> RedisConfigError:
        return RedisConfigError(f"bad Redis URL {masked!r}: {why}")

    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise fail(f"the scheme must be one of {', '.join(s + '://' for s in _SCHEMES)}")
    kind, tls = _SCHEMES[scheme.lower()]
    try:
        parts = urlsplit(f"x://{rest}")
    except ValueError as exc:
        raise fail(str(exc)) from None
    if parts.fragment:
        raise fail("a URL fragment ('#...') is not allowed")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, _, pw = userinfo.partition(":")
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = value
    username = unquote(user) or query.pop("username", None) or None
    password = unquote(pw) or query.pop("password", None) or None
    query.pop("username", None)
    query.pop("password", None)
    sentinel_username = query.pop("sentinel_username", None) or None
    sentinel_password = query.pop("sentinel_password", None) or None
    db_text = query.pop("db", None)
    path = unquote(parts.path)
    hosts: tuple[tuple[str, int], ...] = ()
    service = unix_path = None
    if kind == "unix":
        if hostlist:
            raise fail("write unix:///path/to.sock (three slashes: no host)")
        if not path or path == "/":
            raise fail("the socket path is missing")
        unix_path = path
    else:
        default = DEFAULT_SENTINEL_PORT if kind == "sentinel" else DEFAULT_PORT
        items = hostlist.split(",") if hostlist else ([] if kind == "sentinel" else [""])
        hosts = tuple(_host_port(item, default, fail) for item in items)
        if kind == "tcp" and len(hosts) != 1:
            raise fail("exactly one host is allowed (a Sentinel URL lists several)")
        if not hosts:
            raise fail("no sentinel host is given")
        segments = [s for s in path.split("/") if s]
        if kind == "sentinel":
            if not segments:
                raise fail("the Sentinel service (master) name is missing: "
                           "redis+sentinel://host:26379/SERVICE[/db]")
            service = segments.pop(0)
        if len(segments) > 1:
            raise fail(f"unexpected path {path!r}")
        if segments and db_text is None:
            db_text = segments[0]
    try:
        db = int(db_text) if db_text is not None else 0
        if db < 0:
            raise ValueError
    except ValueError:
        raise fail(f"the database must be a number from 0, not {db_text!r}") from None
    allowed = _OPTIONS | (_TLS_OPTIONS if tls else frozenset())
    options: dict[str, Any] = {}
    for key, value in query.items():
        if key not in allowed:
            hint = " (TLS options need rediss://)" if key in _TLS_OPTIONS else ""
            raise fail(f"unknown option {key!r}{hint}; known: {', '.join(sorted(allowed))}")
        parser = URL_QUERY_ARGUMENT_PARSERS.get(key)
        try:
            options[key] = parser(value) if parser else value
        except (TypeError, ValueError):
            raise fail(f"bad value {value!r} for option {key!r}") from None
    return RedisTarget(
        kind=kind, tls=tls, masked=masked, hosts=hosts, path=unix_path, service=service,
        db=db, username=username, password=password or env.get(PASSWORD_ENV) or None,
        sentinel_username=sentinel_username,
        sentinel_password=sentinel_password or env.get(SENTINEL_PASSWORD_ENV) or None,
        options=MappingProxyType(options))


def _host_port(text: str, default: int, fail: Any) -> tuple[str, int]:
    host, port_text = text, ""
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise fail(f"bad host {text!r}")
        port_text = after[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
    host = unquote(host) or "localhost"
    if any(c in host for c in " /?#@[]"):
        raise fail(f"bad host {host!r}")
    if not port_text:
        return host, default
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise fail(f"bad port {port_text!r} (1 to 65535)")
    return host, int(port_text)


class _SentinelMaster(Redis):
    """The master client of a Sentinel URL; closing it closes the sentinel
    connections too."""

    sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                await client.aclose()


def make_client(target: RedisTarget) -> Redis:
    """A ``redis.asyncio.Redis`` client for ``target`` (connects lazily, on
    the first command). Responses are decoded to ``str``. Timeouts default to
    ``CONNECT_TIMEOUT_S``/``SOCKET_TIMEOUT_S`` seconds; a failed command is
    retried once at once (a pooled connection may be stale), then raises:
    the callers here own the backoff. Close it with ``await client.aclose()``.
    """
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S, "socket_timeout": SOCKET_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 1), **target.options,
        "db": target.db, "username": target.username, "password": target.password,
        "decode_responses": True,
    }
    if target.kind == "sentinel":
        sentinel_kwargs = {k: v for k, v in kwargs.items()
                           if k.startswith(("socket_", "ssl_")) or k == "retry"}
        sentinel_kwargs.update(username=target.sentinel_username,
                               password=target.sentinel_password, ssl=target.tls,
                               decode_responses=True)
        sentinel = Sentinel(list(target.hosts), sentinel_kwargs=sentinel_kwargs)
        assert target.service is not None
        client = sentinel.master_for(target.service, redis_class=_SentinelMaster,
                                     ssl=target.tls, **kwargs)
        client.sentinel = sentinel
        return client
    if target.kind == "unix":
        kwargs.update(connection_class=UnixDomainSocketConnection, path=target.path)
        kwargs.pop("socket_keepalive", None)  # TCP only
    else:
        host, port = target.hosts[0]
        kwargs.update(connection_class=SSLConnection if target.tls else Connection,
                      host=host, port=port)
    return Redis.from_pool(ConnectionPool(**kwargs))


# -- key schema and messages ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Keys:
    namespace: str

    def report(self, vantage: str, origin: str) -> str:
        return f"{self.namespace}report:{vantage}:{origin}"

    def vantage(self, vantage: str) -> str:
        return f"{self.namespace}vantage:{vantage}"

    @property
    def channel(self) -> str:
        return f"{self.namespace}events"


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


class Backoff:
    """Capped exponential backoff with jitter: ``base_s`` doubling up to
    ``cap_s`` seconds, each delay drawn from [half, all] of the step."""

    def __init__(self, base_s: float = 0.1, cap_s: float = 5.0) -> None:
        self.base_s, self.cap_s, self.attempt = base_s, cap_s, 0

    def next(self) -> float:
        step = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 30))
        self.attempt += 1
        return random.uniform(step / 2, step)


class ChannelFollower(Protocol):
    """What :func:`follow_channel` drives: a Redis ``target``; ``connected``
    (set by it); ``resync_interval_s`` (read at every resync, so a reload
    may change it); ``_outage`` to log through; ``_load(client)``, a full
    load; ``_on_message(data)``, one message of the channel."""

    target: RedisTarget
    connected: bool
    resync_interval_s: float
    _outage: Outage

    async def _load(self, client: Any) -> None: ...

    def _on_message(self, data: str) -> None: ...


async def follow_channel(follower: ChannelFollower, channel: str, backoff: Backoff) -> None:
    """Keep ``follower`` in step with Redis, until cancelled: on a fresh
    connection, subscribe to ``channel``, load in full, then hand over each
    message and load again every ``follower.resync_interval_s`` seconds. On
    any error: not connected, one log line per outage, connections closed,
    ``backoff`` before starting over (reset once connected)."""
    loop = asyncio.get_running_loop()
    while True:
        client = make_client(follower.target)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            await follower._load(client)
            follower.connected = True
            follower._outage.succeeded()
            backoff.attempt = 0
            next_load = loop.time() + follower.resync_interval_s
            while True:
                wait = next_load - loop.time()
                if wait <= 0:
                    await follower._load(client)
                    next_load = loop.time() + follower.resync_interval_s
                    continue
                message = await pubsub.get_message(timeout=wait)
                if message is not None and message.get("type") == "message":
                    follower._on_message(message["data"])
        except Exception as exc:
            raise_if_cancelling()
            follower.connected = False
            follower._outage.failed(exc)
        finally:
            for closing in (pubsub, client):
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await closing.aclose()
        await asyncio.sleep(backoff.next())


class Outage:
    """One warning when an outage starts, one info line when it ends."""

    def __init__(self, what: str, target: RedisTarget, consequence: str) -> None:
        self.what, self.target, self.consequence = what, target, consequence
        self.since: float | None = None  # monotonic seconds

    def failed(self, exc: BaseException) -> None:
        if self.since is not None:
            log.debug("%s: Redis still unreachable at %s: %s: %s", self.what, self.target,
                      type(exc).__name__, exc)
            return
        self.since = time.monotonic()
        why = ("authentication failed (check the password or GSLB_REDIS_PASSWORD)"
               if isinstance(exc, AuthenticationError) else "unreachable")
        log.warning("%s: Redis %s at %s: %s: %s; %s", self.what, why, self.target,
                    type(exc).__name__, str(exc).rstrip("."), self.consequence)

    def succeeded(self) -> None:
        if self.since is not None:
            log.info("%s: Redis at %s reachable again after %.1f s", self.what, self.target,
                     time.monotonic() - self.since)
            self.since = None


class _Skipped:
    """Rate-limited warning for malformed records and messages (one line per
    ``every_s`` seconds, counting what was skipped in between)."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s, self.count, self.last = every_s, 0, -float("inf")

    def __call__(self, what: str, exc: BaseException) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every_s:
            log.warning("skipped malformed %s (%s: %s); %d skipped since the last warning",
                        what, type(exc).__name__, exc, self.count)
            self.last, self.count = now, 0


# -- the probe side ---------------------------------------------------------------------

_Pending = tuple[VantageReport | None, bool]  # (report, notify); None: forget


class RedisSink:
    """A ``ReportSink`` writing to Redis (``gslb probe``).

    ``report``/``heartbeat``/``forget`` never block and never raise: they
    record the latest pending state per key (a newer report replaces an
    unsent one, keeping ``notify`` if either had it) and wake the writer
    task, which ships everything pending in one MULTI/EXEC: ``HSET`` +
    ``EXPIRE`` per report, ``PUBLISH`` when notified; ``DEL`` + ``PUBLISH``
    per forget; the vantage hash + ``PUBLISH`` per heartbeat. Every key gets
    a TTL of ``key_ttl_s`` seconds, refreshed on each write and, for the
    report keys, every ``key_ttl_s / 3`` seconds while the vantage lives.

    When a heartbeat finds the vantage hash missing (Redis restarted empty,
    or was flushed) every latest report is written and announced again. On
    Redis errors the pending state is kept and retried with capped
    exponential backoff (``backoff_cap_s`` seconds). ``connected`` is True
    after the last write succeeded. Raises ``RedisConfigError`` for a bad
    ``url``.
    """

    def __init__(self, url: str, *, key_ttl_s: float, namespace: str = NAMESPACE,
                 backoff_cap_s: float = 5.0) -> None:
        self.target = parse_url(url)
        self.key_ttl_s = key_ttl_s
        self.keys = _Keys(namespace)
        self.connected = False
        self._backoff_cap_s = backoff_cap_s
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._beats: dict[str, float] = {}
        self._latest: dict[tuple[str, str], VantageReport] = {}
        self._registered: set[str] = set()  # vantages whose hash we know exists
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: Redis | None = None
        self._next_touch = 0.0
        self._outage = Outage("probe writer", self.target,
                               "probing goes on; the latest state is written when it returns")
        self._meta = {"version": __version__, "pid": str(os.getpid()),
                      "host": socket.gethostname()}

    # -- ReportSink ----------------------------------------------------------------

    def report(self, report: VantageReport, notify: bool) -> None:
        key = (report.vantage, report.origin)
        old = self._pending.get(key)
        self._pending[key] = (report, notify or (old is not None and old[1]))
        self._latest[key] = report
        self._wake.set()

    def heartbeat(self, vantage: str, now: float) -> None:
        self._beats[vantage] = max(now, self._beats.get(vantage, 0.0))
        self._wake.set()

    def forget(self, origin: str, vantage: str) -> None:
        self._pending[(vantage, origin)] = (None, True)
        self._latest.pop((vantage, origin), None)
        self._wake.set()

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task; returns at once (Redis may be down)."""
        if self._task is None:
            self._client = make_client(self.target)
            self._task = asyncio.create_task(self._run(), name="gslb-redis-sink")

    async def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the writer, try once more to write what is pending (bounded
        by ``timeout_s`` seconds; given up silently), close the client."""
        if self._task is None:
            return
        task, self._task = self._task, None
        await cancel_and_wait(task)
        client, self._client = self._client, None
        assert client is not None
        if self._pending or self._beats:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout_s):
                    await self._flush(client)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout_s):
                await client.aclose()

    # -- writer ---------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._client is not None
        backoff = Backoff(cap_s=self._backoff_cap_s)
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while self._pending or self._beats:
                    await self._flush(self._client)
            except Exception as exc:
                raise_if_cancelling()
                self.connected = False
                self._outage.failed(exc)
                await asyncio.sleep(backoff.next())
                self._wake.set()
                continue
            self.connected = True
            self._outage.succeeded()
            backoff.attempt = 0

    async def _flush(self, client: Redis) -> None:
        """Ship everything pending in one MULTI/EXEC; on any failure (or
        cancellation) put back what was not superseded meanwhile."""
        pending, self._pending = self._pending, {}
        beats, self._beats = self._beats, {}
        ttl = max(1, round(self.key_ttl_s))
        touch = time.monotonic() >= self._next_touch
        batch = dict(pending)
        refreshed: list[tuple[int, str]] = []  # (result index, vantage) of each refresh
        created: list[str] = []
        try:
            pipe = client.pipeline(transaction=True)
            for vantage, at in beats.items():
                key, meta = self.keys.vantage(vantage), {"at": f"{at:.6f}", **self._meta}
                if vantage in self._registered:
                    refreshed.append((len(pipe.command_stack), vantage))
                    pipe.eval(_REFRESH_IF_EXISTS, 1, key, ttl,
                              *(x for kv in meta.items() for x in kv))
                else:  # (re)create the vantage hash with all its reports, atomically
                    created.append(vantage)
                    pipe.hset(key, mapping=meta)
                    pipe.expire(key, ttl)
                    for (v, origin), report in self._latest.items():
                        if v == vantage:
                            batch[(v, origin)] = (batch.get((v, origin), (report, True))[0],
                                                  True)
                pipe.publish(self.keys.channel, _dumps({"type": "heartbeat", "vantage": vantage,
                                                        "at": at}))
            for (vantage, origin), (report, notify) in batch.items():
                key = self.keys.report(vantage, origin)
                if report is None:
                    pipe.delete(key)
                    pipe.publish(self.keys.channel, _dumps(
                        {"type": "forget", "vantage": vantage, "origin": origin}))
                    continue
                fields = report.to_fields()
                pipe.hset(key, mapping=fields)
                pipe.expire(key, ttl)
                if notify:
                    pipe.publish(self.keys.channel, _dumps(
                        {"type": "report", "vantage": vantage, "origin": origin,
                         "fields": fields}))
            if touch:
                for vantage, origin in self._latest.keys() - batch.keys():
                    pipe.expire(self.keys.report(vantage, origin), ttl)
            results = await pipe.execute()
        except BaseException:
            for key, (report, notify) in pending.items():
                newer = self._pending.get(key)
                if newer is None:
                    self._pending[key] = (report, notify)
                elif newer[0] is not None:
                    self._pending[key] = (newer[0], newer[1] or notify)
            for vantage, at in beats.items():
                self._beats[vantage] = max(at, self._beats.get(vantage, 0.0))
            raise
        if touch:
            self._next_touch = time.monotonic() + self.key_ttl_s / 3
        self._registered.update(created)
        for index, vantage in refreshed:
            if not results[index]:  # the hash was gone: Redis restarted empty or was flushed
                log.info("vantage %s missing in Redis (restarted or flushed?); writing its "
                         "%d report(s) again", vantage,
                         sum(v == vantage for v, _ in self._latest))
                self._registered.discard(vantage)
                self._beats[vantage] = max(beats[vantage], self._beats.get(vantage, 0.0))


_REFRESH_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
"""Heartbeat of a known vantage: refresh its hash only if it still exists
(returns 0 otherwise, and the sink then recreates the hash together with
every report of the vantage in one transaction, so a watcher never sees a
vantage without its reports)."""


# -- the nameserver side -------------------------------------------------------------


class RedisWatcher:
    """Keeps ``view`` in step with the reports in Redis (``gslb serve``).

    A background task connects, SUBSCRIBEs to the events channel, loads
    every report and vantage heartbeat (``view.replace``), then applies each
    message as it arrives (``view.apply``/``heartbeat``/``forget``) and loads
    everything again every ``resync_interval_s`` seconds, repairing any
    missed message. A full load keeps the reports of a vantage whose hash is
    missing but that was heard from within ``hold_s`` seconds (default
    ``max(60, 6 × view.stale_after_s)``, the probes' key TTL): Redis more
    likely lost it than the vantage went away.

    On any Redis error the view keeps the last known state; the task logs
    once per outage, retries with capped exponential backoff
    (``backoff_cap_s`` seconds), resyncs and logs the recovery. Malformed
    records and messages are skipped with a rate-limited warning.
    ``connected``: subscribed and loaded; ``last_sync``: epoch seconds of the
    last full load, None before. Raises ``RedisConfigError`` for a bad
    ``url``.
    """

    def __init__(self, url: str, view: QuorumView, *, resync_interval_s: float,
                 namespace: str = NAMESPACE, hold_s: float | None = None,
                 backoff_cap_s: float = 5.0) -> None:
        self.target = parse_url(url)
        self.view = view
        self.resync_interval_s = resync_interval_s
        self.keys = _Keys(namespace)
        self.hold_s = max(60.0, 6 * view.stale_after_s) if hold_s is None else hold_s
        self.connected = False
        self.last_sync: float | None = None
        self._backoff_cap_s = backoff_cap_s
        self._synced = asyncio.Event()
        self._seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._outage = Outage("health watcher", self.target,
                               "serving the last known health view")
        self._skipped = _Skipped()

    async def start(self) -> None:
        """Start the watcher task; returns at once (the first load happens in
        the background: see ``wait_synced``)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="gslb-redis-watcher")

    async def wait_synced(self, timeout: float) -> None:
        """Return once a full load has completed (since ``start``); raises
        ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    async def stop(self) -> None:
        """Stop the task and close its connections."""
        if self._task is not None:
            task, self._task = self._task, None
            await cancel_and_wait(task)
        self.connected = False

    async def _run(self) -> None:
        await follow_channel(self, self.keys.channel, Backoff(cap_s=self._backoff_cap_s))

    async def _load(self, client: Redis) -> None:
        ns = self.keys.namespace
        # vantages first: a sink writes a vantage hash together with its reports
        vantage_keys = [k async for k in client.scan_iter(match=f"{ns}vantage:*", count=1000)]
        report_keys = [k async for k in client.scan_iter(match=f"{ns}report:*", count=1000)]
        pipe = client.pipeline(transaction=False)
        for key in (*vantage_keys, *report_keys):
            pipe.hgetall(key)
        values = await pipe.execute(raise_on_error=False)
        seen: dict[str, float] = {}
        for key, value in zip(vantage_keys, values, strict=False):
            try:
                if isinstance(value, Exception):
                    raise value
                seen[key[len(ns) + len("vantage:"):]] = float(value["at"])
            except Exception as exc:
                self._skipped(f"vantage record {key}", exc)
        reports: list[VantageReport] = []
        for key, value in zip(report_keys, values[len(vantage_keys):], strict=False):
            vantage, _, origin = key[len(ns) + len("report:"):].partition(":")
            try:
                if isinstance(value, Exception):
                    raise value
                if value:  # expired between SCAN and HGETALL
                    reports.append(VantageReport.from_fields(origin, vantage, value))
            except Exception as exc:
                self._skipped(f"report record {key}", exc)
        now = time.time()
        for vantage, at in seen.items():
            self._seen[vantage] = max(at, self._seen.get(vantage, 0.0))
        held = {v for v, at in self._seen.items()
                if v not in seen and now - at <= self.hold_s}
        if held:
            reports.extend(r for status in self.view.snapshot().values()
                           for v, r in status.reports.items() if v in held)
            log.debug("vantage(s) %s missing in Redis: holding their reports", sorted(held))
        self._seen = {v: at for v, at in self._seen.items() if v in seen or v in held}
        changed = self.view.replace(reports, seen)
        self.last_sync = now
        self._synced.set()
        log.debug("loaded %d report(s) from %d vantage(s) in Redis; %d origin(s) changed",
                  len(reports), len(seen), changed)

    def _on_message(self, data: str) -> None:
        try:
            msg = json.loads(data)
            kind, vantage = msg["type"], msg["vantage"]
            if kind == "report":
                self.view.apply(VantageReport.from_fields(msg["origin"], vantage, msg["fields"]))
                self._saw(vantage, float(msg["fields"]["checked_at"]))
            elif kind == "heartbeat":
                at = float(msg["at"])
                self.view.heartbeat(vantage, at)
                self._saw(vantage, at)
            elif kind == "forget":
                self.view.forget(msg["origin"], vantage)
            else:
                raise ValueError(f"unknown type {kind!r}")
        except Exception as exc:
            self._skipped("message", exc)

    def _saw(self, vantage: str, at: float) -> None:
        if at > self._seen.get(vantage, 0.0):
            self._seen[vantage] = at
