"""``gslb serve --workers``: several processes on one port (SO_REUSEPORT)
answering from one health view. Queries come from many source ports, so
the kernel spreads them over the workers; every answer must agree with the
supervisor's view, through a health change, a drain, a reload and the loss
of a worker; the metrics count every worker's queries."""

from __future__ import annotations

import asyncio
import os
import signal
import textwrap
import time

import dns.asyncquery
import dns.message
import pytest

from gslb.serve.service import Service
from gslb.workers.supervisor import WorkerPool
from tests.integration.adminutil import cache_lookups, call, config_text, start_service
from tests.integration.dnsutil import addresses

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

N_WORKERS = 2
QUERIES = 40  # per round: from as many source ports, so every worker gets some


async def answers(service: Service, qname: str = "www.gslb.example.test.") -> set[tuple]:
    """The distinct answers of one round of ``QUERIES`` queries, each from a
    new socket (a new source port: the kernel's REUSEPORT hash picks the
    worker); a timeout retries once (a worker may just have died)."""
    host, port = service.addresses[0]

    async def one(i: int) -> tuple:
        for attempt in range(3):
            try:
                msg = await dns.asyncquery.udp(dns.message.make_query(qname, "A"), host,
                                               port=port, timeout=1)
                return tuple(sorted(addresses(msg)))
            except dns.exception.Timeout:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    return set(await asyncio.gather(*(one(i) for i in range(QUERIES))))


async def until(service: Service, expected: set[tuple], timeout_s: float,
                qname: str = "www.gslb.example.test.") -> float:
    """Seconds until a whole round answers ``expected``; fails after
    ``timeout_s``."""
    start = time.monotonic()
    while True:
        got = await answers(service, qname)
        if got == expected:
            return time.monotonic() - start
        assert time.monotonic() - start < timeout_s, got
        await asyncio.sleep(0.05)


@pytest.fixture
async def pooled(tmp_path, fake_origin, refused_port):
    origin = await fake_origin()
    service = await start_service(tmp_path, config_text(origin.port, refused_port),
                                  workers=N_WORKERS)
    assert isinstance(service.server, WorkerPool)
    try:
        yield service, origin
    finally:
        await service.stop()
    assert not any(w.process.is_alive() for w in service.server.workers.values())


async def test_workers_answer_alike_through_health_drain_and_reload(pooled, tmp_path):
    service, origin = pooled
    pool = service.server
    assert len(pool.workers) == N_WORKERS
    both = {("192.0.2.1", "192.0.2.3")}  # b is refused: down
    await until(service, both, 5)

    # every worker has answered (and shipped its counters to the supervisor)
    async def every_worker_counted() -> None:
        while len(pool.cache_stats) < N_WORKERS or not all(
                hits + misses for hits, misses, _n in pool.cache_stats.values()):
            await answers(service)
            await asyncio.sleep(0.2)
    await asyncio.wait_for(every_worker_counted(), 10)

    await origin.stop()  # a goes down: every worker stops answering it
    took = await until(service, {("192.0.2.3",)}, 5)
    assert took < 2
    await origin.start()
    await until(service, both, 5)

    drained = await service.drains.drain("a", "maintenance", "test")
    assert drained.origin == "a"
    assert await until(service, {("192.0.2.3",)}, 1) < 1  # drains ship within 100 ms
    await service.drains.undrain("a", "test")
    await until(service, both, 2)

    path = tmp_path / "zone.yaml"
    path.write_text(textwrap.dedent(config_text(origin.port, origin.port, www="only-c")))
    result = await service.reloader.reload()
    assert result.ok, result.messages
    assert await answers(service) == {("192.0.2.3",)}  # at once, on every worker
    path.write_text("origins: {a: {ipv4: [nope]}}\n")
    assert not (await service.reloader.reload()).ok
    assert await answers(service) == {("192.0.2.3",)}


async def test_metrics_count_the_queries_of_every_worker(pooled):
    service, _origin = pooled
    assert sum(service.stats.queries.values()) == 0
    for _ in range(5):
        await answers(service)
    expected = 5 * QUERIES

    async def counted() -> None:
        while sum(service.stats.queries.values()) < expected:
            await asyncio.sleep(0.1)
    await asyncio.wait_for(counted(), 5)
    assert sum(service.stats.queries.values()) == expected
    status, text = await call(service, "GET", "/metrics")
    assert status == 200 and 'gslb_dns_answer_cache_lookups_total{result="hit"}' in text


async def test_a_dead_worker_is_started_again_and_others_answer_meanwhile(pooled):
    service, _origin = pooled
    pool = service.server
    both = {("192.0.2.1", "192.0.2.3")}
    await until(service, both, 5)

    async def shipped(index: int) -> None:  # stats reach the supervisor each second
        while sum(pool.cache_stats.get(index, (0, 0, 0))[:2]) == 0:
            await answers(service)
            await asyncio.sleep(0.1)
    await asyncio.wait_for(asyncio.gather(shipped(0), shipped(1)), 10)
    before = await cache_lookups(service)
    victim = pool.workers[0]
    os.kill(victim.process.pid, signal.SIGKILL)

    async def noticed() -> None:
        while not any("worker(s) not answering" in r for r in service.not_ready()):
            await asyncio.sleep(0.02)
    await asyncio.wait_for(noticed(), 5)  # /readyz says so while it restarts
    status, body = await call(service, "GET", "/readyz")
    assert status == 503 and any("worker" in r for r in body["reasons"])

    async def replaced() -> None:
        while pool.workers.get(0) in (None, victim) or not pool.workers[0].ready.done():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(replaced(), 20)
    assert pool.workers[0].process.pid != victim.process.pid
    assert await answers(service) == both
    _, st = await call(service, "GET", "/api/v1/status")
    assert [w["answering"] for w in st["workers"]] == [True] * N_WORKERS
    assert service.not_ready() == []
    # the new worker's counts add to what the dead one had sent: a counter
    # never goes down
    await asyncio.wait_for(shipped(0), 10)
    after = await cache_lookups(service)
    assert after[0] >= before[0] and after[1] >= before[1] and after != before


async def test_workers_follow_a_drain_made_on_another_nameserver_through_redis(
        tmp_path, redis_server, refused_port):
    text = config_text(refused_port, refused_port)  # no probe worker: every origin is up
    single = await start_service(tmp_path, text, redis_url=redis_server.url, name="one.yaml")
    pooled = await start_service(tmp_path, text, redis_url=redis_server.url, name="two.yaml",
                                 workers=N_WORKERS)
    try:
        every = {("192.0.2.1", "192.0.2.2", "192.0.2.3")}
        await until(pooled, every, 5)
        await single.drains.drain("b", "kernel upgrade", "test")
        took = await until(pooled, {("192.0.2.1", "192.0.2.3")}, 2)
        assert took < 1
        await single.drains.undrain("b", "test")
        await until(pooled, every, 2)
    finally:
        await pooled.stop()
        await single.stop()


async def test_gslb_status_lists_the_workers(pooled):
    import sys

    from tests.integration.adminutil import admin_url

    service, _origin = pooled
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "status", "--admin", admin_url(service),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    pids = [w.process.pid for w in service.server.workers.values()]
    line = next(s for s in out.decode().splitlines() if s.startswith("workers: "))
    assert all(f"(pid {pid}) answering" in line for pid in pids), line


async def test_in_fallback_reads_the_workers_queries(tmp_path, fake_origin, refused_port):
    """``gslb_steering_pool_in_fallback`` and the status page's
    ``in_fallback`` come from the queries the workers answered (the
    supervisor answers none)."""
    from tests.integration.adminutil import samples

    origin = await fake_origin()
    text = config_text(origin.port, refused_port).replace(
        "pools:\n", "pools:\n  b-only: {policy: all, origins: [b]}\n").rstrip("\n") + (
        "\n      bo: {gslb: b-only}\n")
    service = await start_service(tmp_path, text, workers=N_WORKERS)
    try:
        await until(service, {("192.0.2.1", "192.0.2.3")}, 5)  # b's check has failed
        key = ("gslb_steering_pool_in_fallback", (("family", "ipv4"), ("pool", "b-only")))

        async def reported() -> dict:
            while True:
                await answers(service, "bo.gslb.example.test.")  # b-only: all down
                status, text = await call(service, "GET", "/metrics")
                assert status == 200
                if samples(text).get(key) == 1:
                    return samples(text)
                await asyncio.sleep(0.2)
        got = await asyncio.wait_for(reported(), 10)
        assert not any(name == "gslb_steering_pool_in_fallback" and ("pool", "www") in labels
                       for name, labels in got)
        _, st = await call(service, "GET", "/api/v1/status")
        pools = {p["name"]: p for p in st["pools"]}
        assert pools["b-only"]["in_fallback"] == ["IPv4"]
        assert pools["both"]["in_fallback"] == []
    finally:
        await service.stop()
