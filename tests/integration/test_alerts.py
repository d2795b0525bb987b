"""Alerts (docs/operations.md "Alerts") against a real aiohttp receiver on
127.0.0.1: one webhook per change, once however many nameservers share a
Redis, retried with backoff, never in the way of answers. Every wait is
bounded (``until``, ``Receiver.wait``, ``wait_for``: seconds each)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import pytest
import pytest_asyncio
from aiohttp import web
from prometheus_client import generate_latest

from gslb.config.load import load
from gslb.health.redis.sink import RedisSink
from gslb.health.state import VantageReport
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, addresses, write_config


class Receiver:
    """A webhook receiver: records each POST (``bodies``, ``times``,
    ``headers``); answers the statuses in ``fail`` first (one each), then
    200; while ``hang`` is set, holds each request until released."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.times: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.fail: list[int] = []
        self.hang = False
        self.release = asyncio.Event()
        self.arrived = asyncio.Condition()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self.arrived:
            self.bodies.append(body)
            self.times.append(time.monotonic())
            self.headers.append(dict(request.headers))
            self.paths.append(request.path)
            self.arrived.notify_all()
        if self.hang:
            await self.release.wait()
        status = self.fail.pop(0) if self.fail else 200
        return web.Response(status=status, text="no" if status >= 300 else "ok")

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._post)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Return once ``count`` POSTs arrived (``TimeoutError`` after ``timeout`` s)."""
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.bodies) >= count)
        return self.bodies

    def events(self) -> list[tuple[str, str]]:
        return [(b["event"], b["subject"]["name"]) for b in self.bodies]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


def config_text(hook: str, origin_port: int, *, health: str = "",
                nameserver: str = "  nameserver: ns-test", solo: bool = False) -> str:
    """Origin ``a`` checked on ``origin_port`` (every 0.1 s, fall 2, rise
    2), ``b`` unchecked; pool ``fo`` fails over from a to b (never in
    fallback); with ``solo``, pool ``only`` holds ``a`` alone."""
    only = "  only: {policy: failover, tiers: [[a]]}" if solo else ""
    check = (f"{{type: http, target: 127.0.0.1, port: {origin_port}, interval: 0.1, "
             "timeout: 0.1, fall: 2, rise: 2}")
    return f"""
{health}
alerts:
{nameserver}
  webhooks:
{hook}
origins:
  a: {{ipv4: [192.0.2.1], check: {check}}}
  b: {{ipv4: [192.0.2.2]}}
pools:
  fo: {{policy: failover, tiers: [[a], [b]]}}
{only}
""" + BASE_ZONE.format(minimum=30) + """
      db: {gslb: fo}
""" + ("      solo: {gslb: only}\n" if solo else "")


async def serve(tmp_path: Path, text: str, name: str = "zone.yaml", **kw: Any) -> Service:
    service = Service(load([write_config(tmp_path, text, name)]), [("127.0.0.1", 0)], **kw)
    await service.start()
    return service


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms (for state with no event to await)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def settled(*services: Service) -> None:
    """Every alert each service has seen is looked at and sent: one more
    evaluation finds nothing new and every queue is empty."""
    for service in services:
        assert await service.alerts.evaluate() == []
        for hook in service.alerts.webhooks.values():
            await until(lambda h=hook: not h.queue and not h.busy)


def metric(service: Service, name: str, **labels: str) -> float:
    text = generate_latest(service.registry).decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{{{want}}} not in /metrics")


GSLB_KEYS = {"version", "id", "event", "subject", "old", "new", "at", "time", "nameserver",
             "coordination"}


async def test_an_origin_down_and_up_gives_one_webhook_each_with_the_documented_body(
        tmp_path, fake_origin, receiver) -> None:
    origin = await fake_origin()
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    os.chmod(token, 0o600)
    hook = f"    - {{url: '{receiver.url}/hook', token_file: {token}}}"
    service = await serve(tmp_path, config_text(hook, origin.port))
    try:
        await until(lambda: service.quorum.state("a") == "up")
        await origin.stop()
        (down,) = await receiver.wait(1)
        await origin.start()
        await receiver.wait(2)
        await settled(service)
        assert receiver.events() == [("origin_down", "a"), ("origin_up", "a")]
        down, up = receiver.bodies
        for body in (down, up):
            assert set(body) == GSLB_KEYS
            assert body["version"] == 1 and re.fullmatch(r"[0-9a-f]{32}", body["id"])
            assert body["subject"] == {"kind": "origin", "name": "a"}
            assert body["nameserver"] == "ns-test" and body["coordination"] == "none"
            assert abs(body["at"] - time.time()) < 10
            assert datetime.fromisoformat(body["time"]).timestamp() == pytest.approx(
                body["at"], abs=0.002)
        assert (down["old"], down["new"], up["old"], up["new"]) == ("up", "down", "down", "up")
        assert down["id"] != up["id"]
        assert {h["Authorization"] for h in receiver.headers} == {"Bearer t0ken"}
        assert {h["Content-Type"] for h in receiver.headers} == {"application/json"}
        assert metric(service, "gslb_alerts_sent_total",
                      webhook=receiver.url.removeprefix("http://"), result="ok") == 2
    finally:
        await service.stop()


def report(up: bool) -> VantageReport:
    return VantageReport("a", "eu", up, 3, up, 1.5 if up else None, 1.5 if up else None,
                         "ok" if up else "connection refused", time.time())


async def test_two_nameservers_sharing_redis_send_each_event_exactly_once(
        tmp_path, redis_server, receiver, refused_port) -> None:
    hook = f"    - {{url: '{receiver.url}/hook'}}"
    health = "health: {stale_after: 0.6, heartbeat_interval: 0.2}"
    text = config_text(hook, refused_port, health=health, nameserver="")
    sink = RedisSink(redis_server.url, key_ttl_s=60, backoff_cap_s=0.2)
    await sink.start()
    services: list[Service] = []
    beating = True

    async def beat() -> None:
        while True:
            if beating:
                sink.heartbeat("eu", time.time())
            await asyncio.sleep(0.1)

    beater = asyncio.create_task(beat())
    try:
        for i in range(2):
            services.append(await serve(tmp_path, text, f"zone{i}.yaml",
                                        redis_url=redis_server.url, server_id=f"ns{i}"))
        for service in services:
            await until(lambda s=service: "eu" in s.quorum.fresh_vantages())
        cycles = 3
        for n in range(cycles):
            for up in (False, True):
                sink.report(report(up), notify=True)
                for service in services:
                    await service.quorum.wait_for(lambda s=service, u=up: s.quorum.is_up("a")
                                                  == u, 3)
                await receiver.wait(2 * n + (2 if up else 1))
        await settled(*services)
        assert receiver.events() == [("origin_down", "a"), ("origin_up", "a")] * cycles
        assert {b["coordination"] for b in receiver.bodies} == {"redis"}
        assert len({b["id"] for b in receiver.bodies}) == 2 * cycles
        # the vantage goes silent: stale, and the origin degraded, once each
        beating = False
        await receiver.wait(2 * cycles + 2)
        await settled(*services)
        assert sorted(receiver.events()[2 * cycles:]) == [("origin_degraded", "a"),
                                                          ("vantage_stale", "eu")]
        beating = True
        await receiver.wait(2 * cycles + 4)
        await settled(*services)
        assert sorted(receiver.events()[2 * cycles + 2:]) == [("origin_quorum", "a"),
                                                              ("vantage_fresh", "eu")]
        assert len(receiver.bodies) == 2 * cycles + 4
        senders = {b["nameserver"] for b in receiver.bodies}
        assert senders <= {"ns0", "ns1"}
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater
        for service in services:
            await service.stop()
        await sink.stop()


async def test_a_failing_receiver_gets_the_event_after_retries_with_backoff(
        tmp_path, fake_origin, receiver) -> None:
    origin = await fake_origin()
    receiver.fail = [500, 500]
    hook = (f"    - {{url: '{receiver.url}/hook', retries: 3, backoff: 0.1, "
            "events: [origin_down]}")
    service = await serve(tmp_path, config_text(hook, origin.port))
    try:
        await until(lambda: service.quorum.state("a") == "up")
        await origin.stop()
        first, second, third = await receiver.wait(3)
        await settled(service)
        assert first == second == third and first["event"] == "origin_down"
        gaps = [b - a for a, b in zip(receiver.times, receiver.times[1:], strict=False)]
        assert gaps[0] >= 0.1 - 0.01 and gaps[1] >= 0.2 - 0.01, gaps  # doubling
        assert gaps[1] > gaps[0]
        name = receiver.url.removeprefix("http://")
        assert metric(service, "gslb_alerts_sent_total", webhook=name, result="retry") == 2
        assert metric(service, "gslb_alerts_sent_total", webhook=name, result="ok") == 1
        assert metric(service, "gslb_alerts_sent_total", webhook=name, result="failed") == 0
    finally:
        await service.stop()


async def test_a_hanging_receiver_neither_slows_answers_nor_grows_its_queue(
        tmp_path, fake_origin, receiver) -> None:
    origin = await fake_origin()
    receiver.hang = True
    hook = f"    - {{url: '{receiver.url}/hook', timeout: 30, max_queue: 1}}"
    service = await serve(tmp_path, config_text(hook, origin.port))
    host, port = service.addresses[0]
    try:
        await until(lambda: service.quorum.state("a") == "up")
        await origin.stop()
        await receiver.wait(1)  # now held by the receiver
        await origin.start()
        await until(lambda: service.quorum.is_up("a"))
        await origin.stop()
        await until(lambda: not service.quorum.is_up("a"))
        await until(lambda: metric(service, "gslb_alerts_dropped_total",
                                   webhook=receiver.url.removeprefix("http://")) == 1)
        slowest = 0.0
        for _ in range(200):
            q = dns.message.make_query("db.gslb.example.test.", "A")
            start = time.monotonic()
            answer = await dns.asyncquery.udp(q, host, port=port, timeout=2)
            slowest = max(slowest, time.monotonic() - start)
            assert addresses(answer) == ["192.0.2.2"]
        assert slowest < 0.1, f"slowest answer {slowest * 1000:.1f} ms while the hook hangs"
        assert len(receiver.bodies) == 1  # the rest waits (one queued, the oldest dropped)
        hook_state = service.alerts.webhooks[receiver.url.removeprefix("http://")]
        assert [e.event for e in hook_state.queue] == ["origin_down"]
    finally:
        receiver.release.set()
        await service.stop()


LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def assert_postable_alerts(body: Any) -> None:
    """The shape of Alertmanager's ``postableAlerts`` (api/v2/openapi.yaml):
    a list of objects with ``labels`` (a non-empty string map with
    ``alertname``), optional ``annotations`` (a string map), optional RFC
    3339 ``startsAt``/``endsAt`` and ``generatorURL``; nothing else."""
    assert isinstance(body, list) and body
    for alert in body:
        assert set(alert) <= {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
        labels = alert["labels"]
        assert isinstance(labels, dict) and labels.get("alertname")
        for mapping in (labels, alert.get("annotations", {})):
            assert all(isinstance(k, str) and LABEL_NAME.fullmatch(k) and isinstance(v, str)
                       for k, v in mapping.items()), mapping
        for key in ("startsAt", "endsAt"):
            if key in alert:
                assert datetime.fromisoformat(alert[key]).tzinfo is not None


async def test_alertmanager_format_posts_firing_then_resolved_alerts(
        tmp_path, fake_origin, receiver) -> None:
    origin = await fake_origin()
    hook = f"    - {{url: '{receiver.url}/api/v2/alerts', format: alertmanager}}"
    service = await serve(tmp_path, config_text(hook, origin.port))
    try:
        await until(lambda: service.quorum.state("a") == "up")
        await origin.stop()
        await receiver.wait(1)
        await origin.start()
        firing, resolved = await receiver.wait(2)
        await settled(service)
        assert receiver.paths == ["/api/v2/alerts"] * 2
        for body in (firing, resolved):
            assert_postable_alerts(body)
        (fire,), (done,) = firing, resolved
        assert fire["labels"] == done["labels"] == {
            "alertname": "GslbOriginDown", "severity": "critical", "service": "gslb",
            "origin": "a"}
        assert "endsAt" not in fire
        assert done["startsAt"] == fire["startsAt"]
        assert datetime.fromisoformat(done["endsAt"]) > datetime.fromisoformat(
            done["startsAt"])
        assert fire["annotations"]["event_id"] != done["annotations"]["event_id"]
    finally:
        await service.stop()


async def test_redis_lost_sends_from_here_and_nothing_is_missed_once_it_is_back(
        tmp_path, redis_server, receiver, refused_port) -> None:
    hook = f"    - {{url: '{receiver.url}/hook'}}"
    health = "health: {stale_after: 0.6, heartbeat_interval: 0.2}"
    text = config_text(hook, refused_port, health=health, nameserver="")
    sink = RedisSink(redis_server.url, key_ttl_s=60, backoff_cap_s=0.2)
    await sink.start()

    async def beat() -> None:
        while True:
            sink.heartbeat("eu", time.time())
            await asyncio.sleep(0.1)

    beater = asyncio.create_task(beat())
    service = await serve(tmp_path, text, redis_url=redis_server.url, server_id="ns0")
    try:
        await until(lambda: "eu" in service.quorum.fresh_vantages())
        sink.report(report(True), notify=True)
        await until(lambda: service.quorum.report_of("a", "eu") is not None)
        await redis_server.stop()
        lost = await receiver.wait(3)
        await settled(service)
        assert sorted((b["event"], b["coordination"]) for b in lost) == [
            ("origin_degraded", "redis_unreachable"), ("redis_lost", "none"),
            ("vantage_stale", "redis_unreachable")]
        assert {b["subject"]["name"] for b in lost if b["event"] == "redis_lost"} == {"ns0"}
        await redis_server.start()  # empty: what was sent meanwhile is stored again
        back = (await receiver.wait(6, timeout=10))[3:]
        await settled(service)
        assert sorted((b["event"], b["coordination"]) for b in back) == [
            ("origin_quorum", "redis"), ("redis_back", "none"), ("vantage_fresh", "redis")]
        assert len(receiver.bodies) == 6
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater
        await service.stop()
        await sink.stop()


async def test_a_pool_into_and_out_of_fallback_is_sent_once_each(
        tmp_path, fake_origin, receiver) -> None:
    origin = await fake_origin()
    hook = f"    - {{url: '{receiver.url}/hook'}}"
    service = await serve(tmp_path, config_text(hook, origin.port, solo=True))
    try:
        await until(lambda: service.quorum.state("a") == "up")
        for n in range(2):
            await origin.stop()
            await receiver.wait(4 * n + 2)  # origin_down, pool_fallback
            await origin.start()
            await receiver.wait(4 * n + 4)
        await settled(service)
        pools = [b for b in receiver.bodies if b["subject"]["kind"] == "pool"]
        assert [(b["event"], b["subject"]["name"]) for b in pools] == [
            ("pool_fallback", "only"), ("pool_healthy", "only")] * 2
        assert all(b["subject"] == {"kind": "pool", "name": "only", "family": "ipv4"}
                   for b in pools)
        assert [(b["old"], b["new"]) for b in pools[:2]] == [
            ("healthy", "fallback"), ("fallback", "healthy")]
        assert len(receiver.bodies) == 8  # and origin_down, origin_up twice
    finally:
        await service.stop()


async def test_alertmanager_alerts_still_firing_are_sent_again_every_repeat(
        tmp_path, fake_origin, receiver) -> None:
    origin = await fake_origin()
    hook = (f"    - {{url: '{receiver.url}/api/v2/alerts', format: alertmanager, "
            "repeat: 0.2}")
    service = await serve(tmp_path, config_text(hook, origin.port))
    try:
        await until(lambda: service.quorum.state("a") == "up")
        await origin.stop()
        first, again = await receiver.wait(2)
        assert first == again and "endsAt" not in first[0]  # the same alert, still firing
        await origin.start()
        await until(lambda: any("endsAt" in b[0] for b in receiver.bodies))
        await settled(service)
        count = len(receiver.bodies)
        await service.alerts.evaluate()
        service.alerts.repeat_firing()  # nothing fires any more: nothing to repeat
        await settled(service)
        assert len(receiver.bodies) == count
    finally:
        await service.stop()
