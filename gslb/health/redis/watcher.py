"""The nameserver side: ``RedisWatcher`` keeps a ``QuorumView`` in step
with the reports in Redis (``gslb serve --redis``)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

from redis.asyncio import Redis

from gslb.errors import cancel_and_wait
from gslb.health.redis.client import parse_url
from gslb.health.redis.follow import follow_channel
from gslb.health.redis.outage import BACKOFF_CAP_S, Backoff, Outage
from gslb.health.redis.schema import NAMESPACE, Keys
from gslb.health.signing import SIG, Signer
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView

log = logging.getLogger("gslb.health.redis")  # one logger for every module of the package


class RedisWatcher:
    """Keeps ``view`` in step with the reports in Redis (``gslb serve``).

    A background task connects, SUBSCRIBEs to the events channel, loads
    every report and vantage heartbeat (``view.replace``), then applies each
    message as it arrives (``view.apply``/``heartbeat``/``forget``) and loads
    everything again every ``resync_interval_s`` seconds, repairing any
    missed message. A full load dates each vantage by Redis ``TIME`` (the
    heartbeat's ``redis_at``, written by Redis), never by the probe's clock;
    reports missing from it are kept by the view (an expired key or an
    emptied Redis changes no state).

    On any Redis error the view keeps the last known state; the task logs
    once per outage, retries with capped exponential backoff
    (``backoff_cap_s`` seconds), resyncs and logs the recovery. Malformed
    records and messages are skipped with a rate-limited warning. With a
    ``signer`` (``health.report_key_file``) every report, heartbeat, vantage
    hash and forget must carry a valid HMAC, and a signed heartbeat must be
    newer than the last one accepted from its vantage (a replay keeps no
    vantage fresh); anything else is dropped, counted in ``rejected`` and
    warned about (rate-limited). ``connected``: subscribed and loaded;
    ``last_sync``: epoch seconds of the last full load, None before.
    Raises ``RedisConfigError`` for a bad ``url``.
    """

    def __init__(self, url: str, view: QuorumView, *, resync_interval_s: float,
                 namespace: str = NAMESPACE, backoff_cap_s: float = BACKOFF_CAP_S,
                 signer: Signer | None = None) -> None:
        self.target = parse_url(url)
        self.signer = signer
        self.rejected: dict[str, int] = {}
        """Records and messages dropped for their signature, by reason:
        ``unsigned``, ``bad_signature``, ``replayed``."""
        self._beat_at: dict[str, float] = {}  # vantage: last accepted signed heartbeat at
        self.view = view
        self.resync_interval_s = resync_interval_s
        self.keys = Keys(namespace)
        self.connected = False
        self.last_sync: float | None = None
        self._backoff_cap_s = backoff_cap_s
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outage = Outage("health watcher", self.target,
                               "serving the last known health view")
        self._skipped = _Skipped()
        self._rejections = _Skipped(what="rejected", counted="rejected")

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
        pipe.time()
        for key in (*vantage_keys, *report_keys):
            pipe.hgetall(key)
        redis_time, *values = await pipe.execute(raise_on_error=False)
        if isinstance(redis_time, Exception):
            raise redis_time
        now = time.time()
        redis_now = redis_time[0] + redis_time[1] / 1e6
        seen: dict[str, float] = {}
        for key, value in zip(vantage_keys, values, strict=False):
            vantage = key[len(ns) + len("vantage:"):]
            try:
                if isinstance(value, Exception):
                    raise value
                if value and self._vantage_ok(vantage, value):
                    age = redis_now - float(value["redis_at"])
                    if age < -1.0:
                        raise ValueError(f"redis_at {value['redis_at']} is in Redis's future")
                    seen[vantage] = now - max(0.0, age)
            except Exception as exc:
                self._skipped(f"vantage record {key}", exc)
        reports: list[VantageReport] = []
        for key, value in zip(report_keys, values[len(vantage_keys):], strict=False):
            vantage, _, origin = key[len(ns) + len("report:"):].partition(":")
            try:
                if isinstance(value, Exception):
                    raise value
                if value and self._signed(f"report record {key}", self.signer is None or
                                          self.signer.verify_report(vantage, origin, value),
                                          value):  # (empty: expired between SCAN and HGETALL)
                    reports.append(VantageReport.from_fields(origin, vantage, value))
            except Exception as exc:
                self._skipped(f"report record {key}", exc)
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
                self._on_report(vantage, msg["origin"], msg["fields"])
            elif kind == "heartbeat":
                at = float(msg["at"])
                if self._beat_ok(vantage, at, msg):
                    self.view.heartbeat(vantage, at)
            elif kind == "forget":
                if self.signer is None or self._signed("forget message", self.signer.verify_forget(
                        vantage, msg["origin"], float(msg["at"]), msg.get(SIG)), msg):
                    self.view.forget(msg["origin"], vantage)
            else:
                raise ValueError(f"unknown type {kind!r}")
        except Exception as exc:
            self._skipped("message", exc)


    def _on_report(self, vantage: str, origin: str, fields: dict[str, str]) -> None:
        if self.signer is not None:
            if not self._signed("report message", self.signer.verify_report(
                    vantage, origin, fields), fields):
                return
            held = self.view.report_of(origin, vantage)
            if held is not None and float(fields["checked_at"]) <= held.checked_at:
                self._reject("replayed", "report message", "not newer than the one held")
                return
        self.view.apply(VantageReport.from_fields(origin, vantage, fields))

    def _beat_ok(self, vantage: str, at: float, msg: dict[str, object]) -> bool:
        """Whether a heartbeat message counts (always, unsigned)."""
        if self.signer is None:
            return True
        if not self._signed("heartbeat message", self.signer.verify_heartbeat(
                vantage, at, msg.get(SIG)), msg):
            return False
        if at <= self._beat_at.get(vantage, -float("inf")):
            self._reject("replayed", "heartbeat message", "not newer than the last one")
            return False
        self._beat_at[vantage] = at
        return True

    def _vantage_ok(self, vantage: str, fields: dict[str, str]) -> bool:
        """Whether a vantage hash of a full load is a sign of life: always
        unsigned; signed, when its signature holds and its ``at`` is newer
        than the last heartbeat accepted from the vantage."""
        if self.signer is None:
            return True
        if not self._signed(f"vantage record of {vantage}",
                            self.signer.verify_vantage(vantage, fields), fields):
            return False
        at = float(fields["at"])
        if at <= self._beat_at.get(vantage, -float("inf")):
            return False  # the heartbeat already counted (or a replay): nothing new
        self._beat_at[vantage] = at
        return True

    def _signed(self, what: str, ok: bool, record: Mapping[str, object]) -> bool:
        """``ok``, after counting and warning about a rejection when not."""
        if not ok:
            unsigned = SIG not in record
            self._reject("unsigned" if unsigned else "bad_signature", what,
                         "unsigned" if unsigned else "bad signature")
        return ok

    def _reject(self, reason: str, what: str, why: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._rejections(what, ValueError(why))


class _Skipped:
    """Rate-limited warning for malformed (or rejected) records and messages
    (one line per ``every_s`` seconds, counting what was dropped between)."""

    def __init__(self, every_s: float = 60.0, what: str = "skipped malformed",
                 counted: str = "skipped") -> None:
        self.every_s, self.count, self.last = every_s, 0, -float("inf")
        self.what, self.counted = what, counted

    def __call__(self, what: str, exc: BaseException) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every_s:
            log.warning("%s %s (%s: %s); %d %s since the last warning", self.what, what,
                        type(exc).__name__, exc, self.count, self.counted)
            self.last, self.count = now, 0
