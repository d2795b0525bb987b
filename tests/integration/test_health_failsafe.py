"""Health state that never puts a dead origin back into answers (issue 14):
real `gslb probe` and `gslb serve --redis` processes, a real redis-server,
real HTTP origins, dnspython asking over the whole window."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from pathlib import Path

from redis.asyncio import Redis

from tests.integration.dnsutil import BASE_ZONE, write_config
from tests.integration.test_redis_cluster import Proc, ask

INTERVAL_S, TIMEOUT_S, FALL, RISE = 0.2, 0.2, 2, 2
DEAD, ALIVE = "192.0.2.1", "192.0.2.2"


def config_text(dead_port: int, alive_port: int, path: str = "/") -> str:
    check = (f"{{type: http, target: 127.0.0.1, port: %d, path: {path}, interval: {INTERVAL_S}, "
             f"timeout: {TIMEOUT_S}, fall: {FALL}, rise: {RISE}}}")
    return f"""
vantages:
  v1: {{location: {{country: GB}}}}
health: {{stale_after: 1, heartbeat_interval: 0.2, resync_interval: 1}}
origins:
  a: {{ipv4: [{DEAD}], check: {check % dead_port}}}
  b: {{ipv4: [{ALIVE}], check: {check % alive_port}}}
pools:
  both: {{policy: all, origins: [a, b]}}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: both}
"""


class Watch:
    """Asks the nameserver every 20 ms until stopped; keeps every answer in
    which the dead origin appeared."""

    def __init__(self, port: int) -> None:
        self.port, self.asked, self.bad = port, 0, []
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            answer = await ask(self.port)
            self.asked += 1
            if DEAD in answer:
                self.bad.append((time.monotonic(), answer))
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def checked_since(redis: Redis, since: float, checks: int = 3) -> None:
    """Wait until vantage v1 has reported on origin a ``checks`` times
    (roughly: its checked_at moved past ``since`` + checks - 1 intervals)."""
    async with asyncio.timeout(10):
        while True:
            fields = await redis.hgetall("gslb:v1:report:v1:a")
            if fields and float(fields["checked_at"]) >= since + (checks - 1) * INTERVAL_S:
                return
            await asyncio.sleep(0.05)  # Redis gives no event for a hash write


async def test_a_dead_origin_stays_out_across_probe_restarts_and_a_reload(
        redis_server, fake_origin, refused_port, tmp_path: Path):
    alive = await fake_origin()
    path = write_config(tmp_path, config_text(refused_port, alive.port))
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    probe_args = ("probe", "--config", str(path), "--vantage", "v1", "--redis", redis_server.url)
    probe = Proc(*probe_args)
    server = Proc("serve", "--config", str(path), "--listen", "127.0.0.1:0", "--no-admin",
                  "--redis", redis_server.url)
    watch: Watch | None = None
    try:
        await probe.start(r"probing from vantage")
        port = int((await server.start(r"serving DNS on \S+ port (\d+)"))[1])
        async with asyncio.timeout(10):
            while await ask(port) != [ALIVE]:
                await asyncio.sleep(0.02)
        watch = Watch(port)
        for how in (signal.SIGTERM, signal.SIGKILL):
            assert probe.proc is not None
            probe.proc.send_signal(how)
            await asyncio.wait_for(probe.proc.wait(), 10)
            probe = Proc(*probe_args)
            restarted = time.time()
            await probe.start(r"probing from vantage")
            await checked_since(redis, restarted)
            assert watch.bad == [], f"dead origin answered after a {how.name} restart"
        # a reload that changes a's check, in the probe and in the nameserver
        path.write_text(config_text(refused_port, alive.port, path="/changed").lstrip())
        for proc in (probe, server):
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGHUP)
        reloaded = time.time()
        await checked_since(redis, reloaded)
        assert (await redis.hgetall("gslb:v1:report:v1:a"))["up"] == "0"
        await watch.stop()
        assert watch.asked > 50
        assert watch.bad == [], f"dead origin answered {len(watch.bad)} time(s) of {watch.asked}"
        assert await ask(port) == [ALIVE]
    finally:
        if watch is not None:
            await watch.stop()
        await probe.stop()
        await server.stop()
        await redis.aclose()


async def test_every_probe_stopped_past_the_key_ttl_holds_and_says_degraded(
        redis_server, fake_origin, refused_port, tmp_path: Path):
    """Item 2: the only probe stops; its keys expire (TTL made 1 s here) and
    full loads find Redis empty of it: the dead origin stays out of every
    answer, and /readyz, /metrics and the status say degraded throughout."""
    from gslb.config.load import load
    from gslb.health.redis.sink import RedisSink
    from gslb.probe.worker import Prober
    from tests.integration.adminutil import call, samples, start_service

    alive = await fake_origin()
    text = config_text(refused_port, alive.port).replace("resync_interval: 1",
                                                          "resync_interval: 0.3")
    cfg = load([write_config(tmp_path, text, "probe.yaml")])
    sink = RedisSink(redis_server.url, key_ttl_s=1.0)
    prober = Prober(cfg.origins, sink, "v1", heartbeat_interval_s=0.2)
    await sink.start()
    await prober.start()
    service = await start_service(tmp_path, text, redis_url=redis_server.url)
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    port = service.addresses[0][1]
    try:
        await service.quorum.wait_for(lambda: not service.quorum.is_up("a")
                                      and service.quorum.is_up("b"), 5)
        assert await ask(port) == [ALIVE]
        await prober.stop()
        await sink.stop()
        stopped = time.monotonic()
        await service.quorum.wait_for(lambda: service.quorum.degraded, 3)
        expired_at = None
        polls = 0
        while True:
            assert await ask(port) == [ALIVE]
            status, body = await call(service, "GET", "/readyz")
            assert status == 503 and any("degraded" in r for r in body["reasons"]), body
            _, metrics = await call(service, "GET", "/metrics")
            got = samples(metrics)
            assert got[("gslb_health_degraded", ())] == 1
            assert got[("gslb_vantage_fresh", (("vantage", "v1"),))] == 0
            _, st = await call(service, "GET", "/api/v1/status")
            assert st["degraded"] is True
            origin_a = next(o for o in st["origins"] if o["name"] == "a")
            assert origin_a["state"] == "down" and origin_a["held"] is True
            polls += 1
            if expired_at is None and not await redis.exists("gslb:v1:report:v1:a",
                                                             "gslb:v1:vantage:v1"):
                expired_at = time.monotonic()
            # keys gone, then at least two full loads that found Redis without them
            if expired_at is not None and time.monotonic() - expired_at > 0.8:
                break
            assert time.monotonic() - stopped < 10, "keys never expired"
            await asyncio.sleep(0.05)
        assert polls > 5
        assert not service.quorum.is_up("a") and service.quorum.is_up("b")
    finally:
        await service.stop()
        await prober.stop()
        await sink.stop()
        await redis.aclose()


async def redis_cli(redis_server, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "redis-cli", "-p", str(redis_server.port), *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 5)
    assert proc.returncode == 0
    return out.decode().strip()


async def test_a_forged_heartbeat_cannot_freeze_a_vantage(
        redis_server, fake_origin, refused_port, tmp_path: Path, caplog):
    """Item 3: heartbeats published with `at: 1e300` (and a vantage hash
    whose redis_at is in Redis's future) keep nothing fresh past
    stale_after, and hide no later report."""
    from tests.integration.adminutil import start_service

    alive = await fake_origin()
    service = await start_service(tmp_path, config_text(refused_port, alive.port),
                                  redis_url=redis_server.url)
    view = service.quorum
    try:
        forged = '{"type":"heartbeat","vantage":"v1","at":1e300}'
        assert await redis_cli(redis_server, "PUBLISH", "gslb:v1:events", forged) == "1"
        await view.wait_for(lambda: "v1" in view.fresh_vantages(), 3)
        heard = time.monotonic()
        assert any("in the future" in r.getMessage() for r in caplog.records)
        await redis_cli(redis_server, "HSET", "gslb:v1:vantage:v1", "at", "1e300",
                        "redis_at", "1e300")
        await view.wait_for(lambda: "v1" not in view.fresh_vantages(), 4)
        # stale_after (1 s) after it was heard, by our clock, plus the ticker and load
        assert 0.5 < time.monotonic() - heard < 3.0
        # a report published later, honestly dated, is applied
        fields = ["up", "0", "consecutive", "2", "last_ok", "0", "rtt_ms", "", "srtt_ms", "",
                  "detail", "connection refused", "checked_at", f"{time.time():.6f}"]
        message = ('{"type":"report","vantage":"v1","origin":"a","fields":{'
                   + ",".join(f'"{k}":"{v}"' for k, v in zip(fields[::2], fields[1::2],
                                                              strict=True)) + "}}")
        await redis_cli(redis_server, "PUBLISH", "gslb:v1:events", message)
        await view.wait_for(lambda: not view.is_up("a"), 3)
        # stale again after it; then a full load (resync 1 s) reads the forged
        # vantage hash and does not revive v1
        await view.wait_for(lambda: "v1" not in view.fresh_vantages(), 3)
        watcher = service.redis.watcher
        loaded_before = time.time()
        async with asyncio.timeout(3):
            while (watcher.last_sync or 0) <= loaded_before:
                await asyncio.sleep(0.05)  # a full load gives no event
        assert "v1" not in view.fresh_vantages() and not view.is_up("a")
    finally:
        await service.stop()


async def test_degraded_is_shown_while_checks_fail_fewer_than_fall_times(
        fake_origin, tmp_path: Path):
    """Item 7: an origin whose last check failed, fewer than fall times, is
    answered and shown DEGRADED: status JSON, `gslb status`, gslb_origin_state."""
    from gslb.cli import render_status
    from tests.integration.adminutil import call, samples, start_service

    web, other = await fake_origin(), await fake_origin()
    text = config_text(web.port, other.port).replace("fall: 2", "fall: 50")
    service = await start_service(tmp_path, text)
    view = service.quorum
    try:
        await view.wait_for(lambda: view.state("a") == "up", 5)
        web.status = 503
        await view.wait_for(lambda: view.state("a") == "degraded", 3)
        assert view.is_up("a")
        _, st = await call(service, "GET", "/api/v1/status")
        origin_a = next(o for o in st["origins"] if o["name"] == "a")
        assert origin_a["state"] == "degraded"
        assert origin_a["vantages"]["local"]["state"] == "degraded"
        row = next(line for line in render_status(st).splitlines() if line.startswith("a "))
        assert row.split()[1:3] == ["DEGRADED", "DEGRADED"]
        _, metrics = await call(service, "GET", "/metrics")
        got = samples(metrics)
        assert got[("gslb_origin_state", (("origin", "a"), ("state", "degraded")))] == 1
        assert got[("gslb_origin_state", (("origin", "a"), ("state", "up")))] == 0
        assert DEAD in await ask(service.addresses[0][1])  # still answered
        web.status = 200
        await view.wait_for(lambda: view.state("a") == "up", 3)
    finally:
        await service.stop()


async def test_probe_reloads_on_sighup_and_probes_changed_origins_at_once(
        redis_server, fake_origin, tmp_path: Path):
    """Item 7: SIGHUP to `gslb probe` re-reads the config: an added origin
    is probed at once, a removed one forgotten at once, the process lives
    on; a bad file is refused and the old config keeps probing."""
    web = await fake_origin()
    path = write_config(tmp_path, config_text(web.port, web.port))
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    probe = Proc("probe", "--config", str(path), "--vantage", "v1", "--redis", redis_server.url)
    try:
        await probe.start(r"probing from vantage")
        async with asyncio.timeout(5):  # both: each origin's first check has its own jitter
            while await redis.exists("gslb:v1:report:v1:a", "gslb:v1:report:v1:b") < 2:
                await asyncio.sleep(0.05)  # Redis gives no event for a hash write
        check = (f"{{type: tcp, target: 127.0.0.1, port: {web.port}, interval: 5, "
                 "timeout: 1}")
        path.write_text(config_text(web.port, web.port).replace(
            "  b: {ipv4: [192.0.2.2]", f"  c: {{ipv4: [192.0.2.3], check: {check}}}\n"
            "  x: {ipv4: [192.0.2.4]").replace("origins: [a, b]", "origins: [a, c]").lstrip())
        assert probe.proc is not None
        probe.proc.send_signal(signal.SIGHUP)
        hup = time.monotonic()
        async with asyncio.timeout(5):  # c: first check within min(interval, 1) s + connect
            while not await redis.exists("gslb:v1:report:v1:c"):
                await asyncio.sleep(0.05)
        assert time.monotonic() - hup < 2.0
        assert not await redis.exists("gslb:v1:report:v1:b")
        path.write_text("origins: [\n")  # a bad file: refused, probing goes on
        probe.proc.send_signal(signal.SIGHUP)
        before = float((await redis.hgetall("gslb:v1:report:v1:a"))["checked_at"])
        async with asyncio.timeout(5):
            while float((await redis.hgetall("gslb:v1:report:v1:a"))["checked_at"]) <= before:
                await asyncio.sleep(0.05)
        assert probe.proc.returncode is None
    finally:
        await probe.stop()
        await redis.aclose()


async def test_redis_killed_and_restarted_empty_views_whole_within_1s(
        redis_server, fake_origin, refused_port, tmp_path: Path):
    """Item 6: two nameservers, three probe workers; Redis SIGKILLed for
    longer than stale_after, then started empty. Throughout, neither
    nameserver answers the dead origin nor drops the live one; once Redis
    answers again, both are connected with every vantage fresh and every
    report in place within 1 s."""
    from gslb.config.load import load
    from gslb.probe.service import ProbeService
    from gslb.serve.service import Service
    from tests.integration.test_redis_cluster import VANTAGES
    from tests.integration.test_redis_cluster import config_text as cluster_config

    alive = await fake_origin()
    cfg = load([write_config(tmp_path, cluster_config(alive.port, refused_port))])
    probes = [ProbeService(cfg, v, redis_server.url) for v in VANTAGES]
    services = [Service(cfg, [("127.0.0.1", 0)], redis_url=redis_server.url) for _ in range(2)]
    for part in (*probes, *services):
        await part.start()

    def whole(service: Service) -> bool:
        view = service.quorum
        return (service.redis is not None and service.redis.watcher.connected
                and view.fresh_vantages() == set(VANTAGES) and not view.degraded
                and view.is_up("a") and not view.is_up("b")
                and all(set(view.status(o).reports) == set(VANTAGES) for o in "ab"))

    async def answers() -> list[list[str]]:
        return list(await asyncio.gather(*(ask(s.addresses[0][1]) for s in services)))

    async def until_all(predicate, timeout: float, check: bool = True) -> float:
        start = time.monotonic()
        async with asyncio.timeout(timeout):
            while not all(predicate(s) for s in services):
                if check:
                    assert await answers() == [["192.0.2.1"]] * 2
                await asyncio.sleep(0.01)  # flags without an event: poll them
        return time.monotonic() - start

    try:
        await until_all(whole, 8, check=False)  # b is unknown, answered, until checked
        await redis_server.stop()  # SIGKILL: a crash; it comes back empty
        await until_all(lambda s: s.quorum.degraded and not s.redis.watcher.connected, 5)
        await redis_server.start()
        took = await until_all(whole, 5)
        assert took <= 1.0, f"views whole {took:.2f} s after Redis returned"
        assert await answers() == [["192.0.2.1"]] * 2
    finally:
        for part in (*services, *probes):
            await part.stop()


async def test_with_a_report_key_forged_hset_and_publish_move_no_answer(
        redis_server, fake_origin, refused_port, tmp_path: Path):
    """Item 5: probes and nameservers share health.report_key_file; a Redis
    client without the key writes reports (HSET), publishes reports and
    heartbeats (PUBLISH): every one is rejected and counted, no answer moves,
    and a stopped vantage goes stale whatever is forged for it."""
    from gslb.config.load import load
    from gslb.probe.service import ProbeService
    from tests.integration.adminutil import call, samples, start_service

    alive = await fake_origin()
    key = tmp_path / "report.key"
    key.write_text("8f1d0c5e9a7b3c2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5\n")
    text = config_text(refused_port, alive.port).replace(
        "resync_interval: 1}", f"resync_interval: 0.3, report_key_file: {key}}}")
    cfg = load([write_config(tmp_path, text, "probe.yaml")])
    probe = ProbeService(cfg, "v1", redis_server.url)
    await probe.start()
    service = await start_service(tmp_path, text, redis_url=redis_server.url)
    view, watcher = service.quorum, service.redis.watcher
    port = service.addresses[0][1]
    try:
        await view.wait_for(lambda: view.state("a") == "down" and view.state("b") == "up", 5)
        assert await ask(port) == [ALIVE]
        now = f"{time.time() + 5:.6f}"
        up = ["up", "1", "consecutive", "9", "last_ok", "1", "rtt_ms", "1.0", "srtt_ms", "1.0",
              "detail", "forged", "checked_at", now]
        await redis_cli(redis_server, "HSET", "gslb:v1:report:v1:a", *up)
        fields = dict(zip(up[::2], up[1::2], strict=True))
        forged = [
            {"type": "report", "vantage": "v1", "origin": "a", "fields": fields},
            {"type": "report", "vantage": "v1", "origin": "a",
             "fields": {**fields, "sig": "0" * 64}},
            {"type": "report", "vantage": "v1", "origin": "b",
             "fields": {**fields, "up": "0", "last_ok": "0"}},
            {"type": "forget", "vantage": "v1", "origin": "a", "at": time.time()},
        ]
        for message in forged:
            await redis_cli(redis_server, "PUBLISH", "gslb:v1:events", json.dumps(message))
        loaded_before = time.time()
        async with asyncio.timeout(5):  # two full loads read the forged hash
            while (watcher.last_sync or 0) <= loaded_before + 0.3:
                assert await ask(port) == [ALIVE]
                await asyncio.sleep(0.05)  # a full load gives no event
        assert watcher.rejected["unsigned"] >= 3 and watcher.rejected["bad_signature"] >= 1
        # forged drains of the live origin: a hash and a message; neither is applied
        drain = ["reason", "forged", "who", "mallory", "at", f"{time.time():.6f}",
                 "expires_at", ""]
        await redis_cli(redis_server, "HSET", "gslb:v1:override:b", *drain)
        await redis_cli(redis_server, "PUBLISH", "gslb:v1:overrides", json.dumps(
            {"type": "drain", "origin": "b", "fields": dict(zip(drain[::2], drain[1::2],
                                                                strict=True))}))
        shared = service.redis.overrides
        async with asyncio.timeout(5):  # the message, then a full load (resync 0.3 s)
            while shared.rejected.get("unsigned", 0) < 2:
                assert await ask(port) == [ALIVE]
                await asyncio.sleep(0.05)  # a full load gives no event
        assert not service.overrides.is_drained("b")
        # the probe's own next check rewrites a's hash; then stop it and forge its heartbeats
        await probe.stop()
        stopped = time.monotonic()
        while time.monotonic() - stopped < 2.0:
            beat = {"type": "heartbeat", "vantage": "v1", "at": time.time()}
            await redis_cli(redis_server, "PUBLISH", "gslb:v1:events", json.dumps(beat))
            assert await ask(port) == [ALIVE]
            if view.degraded:
                break
            await asyncio.sleep(0.1)
        assert view.degraded and "v1" not in view.fresh_vantages()
        # the probe is gone: a forged hash now stays in Redis for the full loads
        rejected = sum(watcher.rejected.values())
        await redis_cli(redis_server, "HSET", "gslb:v1:report:v1:a", *up)
        loaded_before = time.time()
        async with asyncio.timeout(5):
            while (watcher.last_sync or 0) <= loaded_before + 0.3:
                assert await ask(port) == [ALIVE]
                await asyncio.sleep(0.05)  # a full load gives no event
        # read twice, rejected twice (bad_signature: the probe's sig field is still there)
        assert sum(watcher.rejected.values()) >= rejected + 2
        assert view.state("a") == "down" and await ask(port) == [ALIVE]
        _, metrics = await call(service, "GET", "/metrics")
        got = samples(metrics)
        assert got[("gslb_health_reports_rejected_total", (("reason", "unsigned"),))] >= 5
    finally:
        await service.stop()
        await probe.stop()
