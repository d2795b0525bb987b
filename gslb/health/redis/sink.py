"""The probe side: ``RedisSink`` writes each vantage's reports and
heartbeats to Redis (``gslb probe``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from gslb import __version__
from gslb.errors import cancel_and_wait, raise_if_cancelling
from gslb.health.redis.client import make_client, parse_url
from gslb.health.redis.outage import BACKOFF_CAP_S, Backoff, Outage
from gslb.health.redis.schema import NAMESPACE, Keys, dumps, hash_items
from gslb.health.signing import SIG, Signer
from gslb.health.state import VantageReport

log = logging.getLogger("gslb.health.redis")  # one logger for every module of the package

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
    after the last write succeeded. With a ``signer`` (``health.report_key_file``)
    every report hash and message, heartbeat, vantage hash and forget carries
    its HMAC (``gslb.health.signing``); it may be replaced between writes.
    Raises ``RedisConfigError`` for a bad ``url``.
    """

    def __init__(self, url: str, *, key_ttl_s: float, namespace: str = NAMESPACE,
                 backoff_cap_s: float = BACKOFF_CAP_S, signer: Signer | None = None) -> None:
        self.target = parse_url(url)
        self.signer = signer
        self.key_ttl_s = key_ttl_s
        self.keys = Keys(namespace)
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

    async def last_reports(self, vantage: str, timeout_s: float = 2.0) -> list[VantageReport]:
        """``vantage``'s last reports as Redis holds them (what a probe that
        starts or reloads seeds its state from). Bounded by ``timeout_s``
        seconds; raises ``TimeoutError`` or a Redis error when Redis cannot
        be read (the caller then starts without seeds). Malformed records,
        and with a ``signer`` those not signed with its key, are skipped
        (logged): a forged hash cannot seed a state."""
        client = make_client(self.target)
        prefix = self.keys.report(vantage, "")
        try:
            async with asyncio.timeout(timeout_s):
                keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.hgetall(key)
                values = await pipe.execute()
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await client.aclose()
        reports = []
        for key, value in zip(keys, values, strict=True):
            origin = key[len(prefix):]
            try:
                if not value:  # expired between SCAN and HGETALL: nothing to seed
                    continue
                if self.signer is not None and not self.signer.verify_report(vantage, origin,
                                                                             value):
                    raise ValueError("not signed with this probe's report key")
                reports.append(VantageReport.from_fields(origin, vantage, value))
            except (KeyError, ValueError) as exc:
                log.warning("skipped malformed report record %s: %s", key, exc)
        return reports

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
        try:
            pipe = client.pipeline(transaction=True)
            refreshed, created = self._queue_heartbeats(pipe, beats, batch, ttl)
            self._queue_reports(pipe, batch, ttl)
            if touch:
                for vantage, origin in self._latest.keys() - batch.keys():
                    pipe.expire(self.keys.report(vantage, origin), ttl)
            results = await pipe.execute()
        except BaseException:
            self._put_back(pending, beats)
            raise
        if touch:
            self._next_touch = time.monotonic() + self.key_ttl_s / 3
        self._registered.update(created)
        self._rewrite_missing(refreshed, results, beats)

    def _queue_heartbeats(self, pipe: Pipeline, beats: Mapping[str, float],
                          batch: dict[tuple[str, str], _Pending],
                          ttl: int) -> tuple[list[tuple[int, str]], list[str]]:
        """Queue each heartbeat in ``beats`` (vantage: epoch seconds) and its
        message. A known vantage's hash is refreshed only if it still exists;
        any other is (re)created, and every latest report of the vantage
        joins ``batch``, announced, so both land in one transaction. Returns
        ``(refreshed, created)``: the (result index, vantage) of each
        refresh, and the vantages created."""
        refreshed: list[tuple[int, str]] = []
        created: list[str] = []
        for vantage, at in beats.items():
            key, meta = self.keys.vantage(vantage), {"at": f"{at:.6f}", **self._meta}
            beat: dict[str, object] = {"type": "heartbeat", "vantage": vantage, "at": at}
            if self.signer is not None:
                meta[SIG] = self.signer.vantage(vantage, meta)
                beat[SIG] = self.signer.heartbeat(vantage, at)
            if vantage in self._registered:
                refreshed.append((len(pipe.command_stack), vantage))
                pipe.eval(_HEARTBEAT, 1, key, ttl, "1", *hash_items(meta))
            else:  # (re)create the vantage hash with all its reports, atomically
                created.append(vantage)
                pipe.eval(_HEARTBEAT, 1, key, ttl, "0", *hash_items(meta))
                for (v, origin), report in self._latest.items():
                    if v == vantage:
                        batch[(v, origin)] = (batch.get((v, origin), (report, True))[0],
                                              True)
            pipe.publish(self.keys.channel, dumps(beat))
        return refreshed, created

    def _queue_reports(self, pipe: Pipeline, batch: Mapping[tuple[str, str], _Pending],
                       ttl: int) -> None:
        """Queue each report of ``batch`` (hash, TTL, message when notified)
        and each forget (delete, message)."""
        for (vantage, origin), (report, notify) in batch.items():
            key = self.keys.report(vantage, origin)
            if report is None:
                pipe.delete(key)
                forget: dict[str, object] = {"type": "forget", "vantage": vantage,
                                             "origin": origin}
                if self.signer is not None:
                    at = time.time()
                    forget.update(at=at, sig=self.signer.forget(vantage, origin, at))
                pipe.publish(self.keys.channel, dumps(forget))
                continue
            fields = report.to_fields()
            if self.signer is not None:
                fields[SIG] = self.signer.report(vantage, origin, fields)
            pipe.hset(key, items=hash_items(fields))
            pipe.expire(key, ttl)
            if notify:
                pipe.publish(self.keys.channel, dumps(
                    {"type": "report", "vantage": vantage, "origin": origin,
                     "fields": fields}))

    def _put_back(self, pending: Mapping[tuple[str, str], _Pending],
                  beats: Mapping[str, float]) -> None:
        """After a failed flush: pending again what was not superseded
        meanwhile (a newer report keeps ``notify`` if either had it; a
        forget since wins), and the latest heartbeat of each vantage."""
        for key, (report, notify) in pending.items():
            newer = self._pending.get(key)
            if newer is None:
                self._pending[key] = (report, notify)
            elif newer[0] is not None:
                self._pending[key] = (newer[0], newer[1] or notify)
        for vantage, at in beats.items():
            self._beats[vantage] = max(at, self._beats.get(vantage, 0.0))

    def _rewrite_missing(self, refreshed: list[tuple[int, str]], results: list[Any],
                         beats: Mapping[str, float]) -> None:
        """For each refreshed vantage whose hash was gone: forget it was
        registered and beat again, so the next flush recreates its hash and
        writes all its reports again."""
        for index, vantage in refreshed:
            if not results[index]:  # the hash was gone: Redis restarted empty or was flushed
                log.info("vantage %s missing in Redis (restarted or flushed?); writing its "
                         "%d report(s) again", vantage,
                         sum(v == vantage for v, _ in self._latest))
                self._registered.discard(vantage)
                self._beats[vantage] = max(beats[vantage], self._beats.get(vantage, 0.0))


_HEARTBEAT = """
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'redis_at', t[1] .. '.' .. string.format('%06d', tonumber(t[2])),
           unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
"""A heartbeat: the vantage hash's fields (ARGV[3]...), ``redis_at`` (when
Redis wrote it, by Redis ``TIME``: what a nameserver's full load dates the
vantage by, whatever the probe's clock says) and its TTL (ARGV[1]). With
ARGV[2] "1" (a known vantage) the hash is refreshed only if it still exists
(returns 0 otherwise, and the sink then recreates the hash together with
every report of the vantage in one transaction, so a watcher never sees a
vantage without its reports)."""
