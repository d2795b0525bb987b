"""The Redis health store against a real ``redis-server``: a ``RedisSink``
(probe side) and a ``RedisWatcher`` (nameserver side) meeting in Redis, over
TCP, a Unix socket, TLS and Sentinel, with passwords, and through a Redis
restart while a nameserver answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gslb.config.load import load
from gslb.health.redis.sink import RedisSink
from gslb.health.redis.watcher import RedisWatcher
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, addresses, write_config

NS = "gslbtest:v1:"


def report(origin: str, up: bool, vantage: str = "eu", at: float | None = None) -> VantageReport:
    return VantageReport(origin, vantage, up, 3, up, 1.5 if up else None, 1.5 if up else None,
                         "ok" if up else "connection refused", time.time() if at is None else at)


async def until(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``predicate`` every 10 ms (for flags that have no event)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class Pair:
    """A started sink and watcher on one URL, with the watcher's view."""

    def __init__(self, url: str, resync_interval_s: float = 30.0) -> None:
        self.view = QuorumView(1, stale_after_s=10.0)  # the transport, not the quorum
        self.sink = RedisSink(url, key_ttl_s=60, namespace=NS, backoff_cap_s=0.2)
        self.watcher = RedisWatcher(url, self.view, resync_interval_s=resync_interval_s,
                                    namespace=NS, backoff_cap_s=0.2)

    async def start(self, synced: bool = True) -> Pair:
        await self.watcher.start()
        await self.sink.start()
        if synced:
            await self.watcher.wait_synced(3)
        return self

    async def stop(self) -> None:
        await self.sink.stop()
        await self.watcher.stop()

    async def propagate(self, origin: str = "a") -> None:
        """A notified DOWN report of ``origin`` (with a heartbeat) reaches the view."""
        self.sink.heartbeat("eu", time.time())
        self.sink.report(report(origin, False), notify=True)
        await self.view.wait_for(lambda: not self.view.is_up(origin), 3)


@pytest_asyncio.fixture
async def pairs() -> AsyncIterator[Callable[..., Pair]]:
    made: list[Pair] = []

    def factory(url: str, **kw: float) -> Pair:
        made.append(Pair(url, **kw))
        return made[-1]

    yield factory
    for pair in made:
        await pair.stop()


async def test_notified_report_propagates_and_unnotified_waits_for_resync(redis_server, pairs):
    pair = await pairs(redis_server.url, resync_interval_s=1.0).start()
    view, sink = pair.view, pair.sink
    await pair.propagate("m")  # the vantage's first heartbeat announces all its reports
    first_sync = pair.watcher.last_sync
    sink.report(report("quiet", False), notify=False)
    sink.report(report("loud", False), notify=True)  # same pipeline, announced
    await view.wait_for(lambda: not view.is_up("loud"), 2)
    assert view.is_up("quiet") and pair.watcher.last_sync == first_sync
    await view.wait_for(lambda: not view.is_up("quiet"), 3)  # the next full load
    assert pair.watcher.last_sync > first_sync
    assert pair.sink.connected and pair.watcher.connected


async def test_newer_report_replaces_unsent_one_and_keeps_notify(redis_server, pairs):
    pair = await pairs(redis_server.url).start()
    old = report("a", True, at=time.time() - 1)
    pair.sink.report(old, notify=True)
    pair.sink.report(report("a", False), notify=False)  # before the writer ran
    await pair.view.wait_for(lambda: not pair.view.is_up("a"), 2)


async def test_heartbeat_keeps_vantage_fresh_and_is_stored_with_ttl(redis_server, pairs):
    pair = await pairs(redis_server.url).start()
    now = time.time()
    pair.sink.heartbeat("us", now)
    pair.sink.report(report("a", False), notify=True)  # marker: published after the beat
    await pair.view.wait_for(lambda: not pair.view.is_up("a"), 2)
    assert "us" in pair.view.fresh_vantages()
    client = Redis(port=redis_server.port, decode_responses=True)
    try:
        stored = await client.hgetall(f"{NS}vantage:us")
        assert float(stored["at"]) == pytest.approx(now, abs=1e-5)
        assert {"version", "pid", "host"} <= stored.keys()
        for key in (f"{NS}vantage:us", f"{NS}report:eu:a"):
            assert 55 <= await client.ttl(key) <= 60, key
        assert await client.hgetall(f"{NS}report:eu:a") == report("a", False, at=float(
            (await client.hget(f"{NS}report:eu:a", "checked_at")) or 0)).to_fields()
    finally:
        await client.aclose()


async def test_forget_removes_report_everywhere(redis_server, pairs):
    pair = await pairs(redis_server.url).start()
    await pair.propagate("a")
    pair.sink.forget("a", "eu")
    await pair.view.wait_for(lambda: pair.view.is_up("a") and not pair.view.status("a").reports,
                             2)
    client = Redis(port=redis_server.port)
    try:
        assert not await client.exists(f"{NS}report:eu:a")
    finally:
        await client.aclose()


async def test_resync_repairs_a_missed_message_and_skips_junk(redis_server, pairs, caplog):
    pair = await pairs(redis_server.url, resync_interval_s=0.3).start()
    client = Redis(port=redis_server.port, decode_responses=True)
    try:
        # written behind the watcher's back: no message at all
        seconds, micros = await client.time()
        await client.hset(f"{NS}vantage:ap", mapping={"at": str(time.time()),
                                                      "redis_at": f"{seconds}.{micros:06d}"})
        await client.hset(f"{NS}report:ap:b", mapping=report("b", False, "ap").to_fields())
        await client.hset(f"{NS}report:ap:junk", mapping={"up": "1"})  # no checked_at
        await client.set(f"{NS}report:ap:wrongtype", "x")
        await client.publish(f"{NS}events", "not json")
        await client.publish(f"{NS}events", '{"type": "report", "vantage": "ap"}')
        await pair.view.wait_for(lambda: not pair.view.is_up("b"), 3)
    finally:
        await client.aclose()
    assert pair.watcher.connected
    skipped = [r for r in caplog.records if "skipped malformed" in r.getMessage()]
    assert len(skipped) == 1  # rate-limited


async def test_password_auth(redis_servers, pairs, caplog, monkeypatch):
    server = await redis_servers(password="s3cret")
    wrong = await pairs(server.url.replace("s3cret", "wrong")).start(synced=False)
    await until(lambda: any("authentication failed" in r.getMessage()
                            for r in caplog.records if r.name == "gslb.health.redis"))
    with pytest.raises(TimeoutError):
        await wrong.watcher.wait_synced(0.2)
    await wrong.stop()
    assert all("wrong" not in r.getMessage() and "s3cret" not in r.getMessage()
               for r in caplog.records)
    await (await pairs(server.url).start()).propagate()
    monkeypatch.setenv("GSLB_REDIS_PASSWORD", "s3cret")
    await (await pairs(f"redis://127.0.0.1:{server.port}/0").start()).propagate("b")


async def test_unix_socket(redis_server, pairs):
    await (await pairs(redis_server.unix_url).start()).propagate()


async def test_sentinel(redis_servers, pairs):
    master = await redis_servers(password="m4ster")
    sentinel = await redis_servers(sentinel_of=master)
    assert sentinel.url.startswith("redis+sentinel://:m4ster@127.0.0.1:")
    await (await pairs(sentinel.url).start()).propagate()
    client = Redis(port=master.port, password="m4ster")
    try:
        assert await client.exists(f"{NS}report:eu:a")
    finally:
        await client.aclose()


async def test_sentinel_with_its_own_password(redis_servers, pairs):
    master = await redis_servers()
    sentinel = await redis_servers(sentinel_of=master, password="sentin3l")
    url = sentinel.url + "?sentinel_password=sentin3l"
    await (await pairs(url).start()).propagate()


async def test_tls(redis_servers, pairs):
    try:
        server = await redis_servers(tls=True)
    except RuntimeError as exc:
        pytest.skip(f"this redis-server has no TLS support ({exc})")
    ca = server.tls[2]
    url = f"{server.url}?ssl_ca_certs={ca}&ssl_cert_reqs=required"
    await (await pairs(url).start()).propagate()


async def test_outage_keeps_view_logs_once_and_catches_up(redis_server, pairs, caplog):
    caplog.set_level(logging.DEBUG, logger="gslb.health.redis")
    pair = await pairs(redis_server.url).start()
    view, sink = pair.view, pair.sink
    sink.report(report("b", False), notify=False)  # written once, never again
    await pair.propagate("a")
    await until(lambda: not sink._pending)

    await redis_server.stop()
    sink.heartbeat("eu", time.time())
    sink.report(report("a", True), notify=True)  # pending: cannot be written
    await until(lambda: not sink.connected and not pair.watcher.connected)
    for what in ("probe writer", "health watcher"):  # several retries...
        await until(lambda what=what: sum(
            r.getMessage().startswith(f"{what}: Redis still unreachable")
            for r in caplog.records) >= 2)
    assert not view.is_up("a") and not view.is_up("b")  # ...last known view kept
    sink.report(report("a", True), notify=False)  # newer, unnotified: still announced
    sink.heartbeat("eu", time.time())

    await redis_server.start()  # empty: no persistence
    await view.wait_for(lambda: view.is_up("a"), 5)
    await until(lambda: sink.connected and pair.watcher.connected)
    assert not view.is_up("b")
    client = Redis(port=redis_server.port)
    try:
        assert await client.exists(f"{NS}report:eu:b")  # the sink rewrote everything
    finally:
        await client.aclose()
    for what in ("probe writer", "health watcher"):
        messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith(what)]
        warnings = [m for m in messages if "unreachable at" in m and "still" not in m]
        recoveries = [m for m in messages if "reachable again after" in m]
        assert len(warnings) == 1 and len(recoveries) == 1, messages
        assert redis_server.url in warnings[0]


def dns_config(tmp_path, resync_s: float) -> Service:
    text = f"""
health: {{resync_interval: {resync_s}}}
origins:
  a: {{ipv4: [192.0.2.1], check: {{type: tcp, target: 127.0.0.1, port: 9}}}}
  b: {{ipv4: [192.0.2.2], check: {{type: tcp, target: 127.0.0.1, port: 9}}}}
pools:
  fo: {{policy: failover, tiers: [[a], [b]]}}
""" + BASE_ZONE.format(minimum=30) + """
      db: {gslb: fo}
"""
    return load([write_config(tmp_path, text)])


async def test_redis_restart_while_serving_keeps_answers_and_catches_up(
        redis_server, tmp_path, caplog):
    import dns.asyncquery
    import dns.message

    service = Service(dns_config(tmp_path, 30), [("127.0.0.1", 0)],
                      redis_url=redis_server.url)
    sink = RedisSink(redis_server.url, key_ttl_s=60, backoff_cap_s=0.2)
    await service.start()
    await sink.start()
    host, port = service.addresses[0]

    async def answer() -> list[str]:
        q = dns.message.make_query("db.gslb.example.test.", "A")
        return addresses(await dns.asyncquery.udp(q, host, port=port, timeout=2))

    try:
        await service.health_source.wait_synced(3)
        assert await answer() == ["192.0.2.1"]
        sink.heartbeat("eu", time.time())
        sink.report(report("a", False), notify=True)
        await service.quorum.wait_for(lambda: not service.quorum.is_up("a"), 3)
        assert await answer() == ["192.0.2.2"]

        await redis_server.stop()
        await until(lambda: not service.health_source.connected)
        assert await answer() == ["192.0.2.2"]  # the last known view
        await redis_server.start()
        sink.heartbeat("eu", time.time())
        await until(lambda: service.health_source.connected, 8)
        assert await answer() == ["192.0.2.2"]  # still right after the empty restart
        sink.report(report("a", True), notify=True)
        await service.quorum.wait_for(lambda: service.quorum.is_up("a"), 3)
        assert await answer() == ["192.0.2.1"]
    finally:
        await sink.stop()
        await service.stop()
