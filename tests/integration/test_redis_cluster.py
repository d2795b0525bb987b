"""Many nameservers, one view (issue 3): real `gslb serve --redis` and
`gslb probe` processes, a real redis-server, real HTTP origins, and dnspython
asking both nameservers."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from pathlib import Path

import dns.asyncquery
import dns.message
import pytest

from gslb.config.load import load
from gslb.probe.service import ProbeService
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, addresses, write_config

ROOT = Path(__file__).resolve().parent.parent.parent
INTERVAL_S, TIMEOUT_S, FALL, RISE = 0.2, 0.2, 2, 2
#: Beyond detection at a vantage: first-check jitter is below one interval,
#: Redis propagation is about a millisecond (docs/performance.md), plus
#: process scheduling and our 20 ms polling.
SLACK_S = 0.6
STALE_S, HEARTBEAT_S = 1.0, 0.2
VANTAGES = ("v1", "v2", "v3")


def config_text(port_a: int, port_b: int) -> str:
    check = (f"{{type: http, target: 127.0.0.1, port: %d, interval: {INTERVAL_S}, "
             f"timeout: {TIMEOUT_S}, fall: {FALL}, rise: {RISE}}}")
    return f"""
vantages:
  v1: {{location: {{country: GB}}}}
  v2: {{location: {{country: US}}}}
  v3: {{location: {{country: SG}}}}
health: {{stale_after: {STALE_S}, heartbeat_interval: {HEARTBEAT_S}, resync_interval: 5}}
origins:
  a: {{ipv4: [192.0.2.1], check: {check % port_a}}}
  b: {{ipv4: [192.0.2.2], check: {check % port_b}}}
pools:
  both: {{policy: all, origins: [a, b]}}
  fo: {{policy: failover, tiers: [[a], [b]], fallback: none}}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: both}
      db: {gslb: fo}
"""


async def ask(port: int, qname: str = "www.gslb.example.test.") -> list[str]:
    q = dns.message.make_query(qname, "A")
    return sorted(addresses(await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)))


class Proc:
    """A `python -m gslb ...` child process; ``ready`` waits for its line."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, pattern: str) -> re.Match[str]:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gslb", *self.args, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        assert self.proc.stdout is not None
        while True:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 10)).decode()
            assert line, f"gslb {self.args[0]} exited early"
            match = re.search(pattern, line)
            if match:
                return match

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 10)


async def test_two_servers_three_probes_one_view(redis_server, fake_origin, tmp_path):
    a, b = await fake_origin(), await fake_origin()
    path = write_config(tmp_path, config_text(a.port, b.port))
    procs: list[Proc] = []
    try:
        for vantage in VANTAGES:
            probe = Proc("probe", "--config", str(path), "--vantage", vantage,
                         "--redis", redis_server.url)
            procs.append(probe)
            await probe.start(r"probing from vantage")
        ports = []
        for _ in range(2):
            server = Proc("serve", "--config", str(path), "--listen", "127.0.0.1:0",
                          "--redis", redis_server.url)
            procs.append(server)
            ports.append(int((await server.start(r"serving DNS on \S+ port (\d+)"))[1]))

        both = ["192.0.2.1", "192.0.2.2"]
        async def answers() -> list[list[str]]:
            return list(await asyncio.gather(*(ask(p) for p in ports)))

        assert await answers() == [both, both]
        await a.stop()
        killed = time.monotonic()
        bound = INTERVAL_S * FALL + TIMEOUT_S + SLACK_S
        disagreements = 0
        while True:  # both servers drop a; they agree throughout but for one poll at most
            now = await answers()
            if now[0] != now[1]:
                disagreements += 1
            if now == [["192.0.2.2"], ["192.0.2.2"]]:
                break
            assert time.monotonic() - killed < bound + 2, f"still {now}"
            await asyncio.sleep(0.02)
        took = time.monotonic() - killed
        assert took <= bound, f"{took:.2f} s > bound {bound:.2f} s"
        assert disagreements <= 1
        for _ in range(10):  # and stay in step afterwards
            assert await answers() == [["192.0.2.2"], ["192.0.2.2"]]
        await a.start()
        while await answers() != [both, both]:
            assert time.monotonic() - killed < 10
            await asyncio.sleep(0.02)
    finally:
        for proc in procs:
            await proc.stop()


async def probes_and_server(tmp_path, redis_url, ports_by_vantage: dict[str, int], port_b: int):
    """In-process probe workers whose configs differ only in where origin
    a's check goes (a network partition seen from some vantages), and one
    nameserver reading Redis."""
    workers = []
    for vantage, port_a in ports_by_vantage.items():
        cfg = load([write_config(tmp_path, config_text(port_a, port_b), f"{vantage}.yaml")])
        worker = ProbeService(cfg, vantage, redis_url)
        await worker.start()
        workers.append(worker)
    cfg = load([write_config(tmp_path, config_text(port_b, port_b), "server.yaml")])
    service = Service(cfg, [("127.0.0.1", 0)], redis_url=redis_url)
    await service.start()
    return workers, service


@pytest.mark.parametrize(("down_at", "up"), [(("v1",), True), (("v1", "v2"), False)])
async def test_quorum_of_vantages(redis_server, fake_origin, refused_port, tmp_path,
                                  down_at, up):
    """Majority of 3: origin a unreachable from 1 vantage stays up; from 2 it
    goes down."""
    origin = await fake_origin()
    ports = {v: (refused_port if v in down_at else origin.port) for v in VANTAGES}
    workers, service = await probes_and_server(tmp_path, redis_server.url, ports, origin.port)
    view = service.quorum
    try:
        # every vantage has reported a's state after fall checks
        def settled() -> bool:
            status = view.status("a")
            return (len(status.fresh) == 3 and all(
                status.reports[v].up is (v not in down_at) for v in VANTAGES))
        await view.wait_for(settled, 5)
        assert view.is_up("a") is up
        port = service.addresses[0][1]
        assert ("192.0.2.1" in await ask(port)) is up
    finally:
        await service.stop()
        for worker in workers:
            await worker.stop()


async def test_a_silenced_vantage_stops_counting_after_stale_after(
        redis_server, fake_origin, refused_port, tmp_path):
    """v1 sees a down, v2 and v3 see it up: up (2 of 3). Silence v2 and v3:
    after stale_after only v1 is fresh, fewer than the majority (2): a's
    state holds (up), and the view says it is degraded (issue 14: one
    vantage never decides alone)."""
    origin = await fake_origin()
    ports = {"v1": refused_port, "v2": origin.port, "v3": origin.port}
    workers, service = await probes_and_server(tmp_path, redis_server.url, ports, origin.port)
    view = service.quorum
    try:
        await view.wait_for(lambda: len(view.status("a").fresh) == 3
                            and not view.status("a").reports["v1"].up, 5)
        assert view.is_up("a")
        for worker in workers[1:]:
            await worker.stop()
        silenced = time.monotonic()
        await view.wait_for(lambda: view.status("a").held == "fresh", STALE_S + 3)
        took = time.monotonic() - silenced
        # stale once the last heartbeat is STALE_S old: between
        # STALE_S - HEARTBEAT_S and STALE_S + the ticker period (STALE_S / 4) + slack
        assert STALE_S - HEARTBEAT_S - 0.05 <= took <= STALE_S + STALE_S / 4 + 0.3
        assert view.status("a").fresh == ("v1",)
        assert view.is_up("a") and view.degraded
        port = service.addresses[0][1]
        assert "192.0.2.1" in await ask(port)
    finally:
        await service.stop()
        for worker in workers[:1]:
            await worker.stop()


@pytest.mark.parametrize("command", ["serve", "probe"])
async def test_a_bad_redis_url_is_a_clear_startup_error(tmp_path, command):
    path = write_config(tmp_path, config_text(9, 9))
    extra = ["--vantage", "v1"] if command == "probe" else ["--listen", "127.0.0.1:0"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", command, "--config", str(path), *extra,
        "--redis", "redis://:hunter2@127.0.0.1:notaport/0", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    text = err.decode()
    assert proc.returncode == 1
    assert "bad Redis URL" in text and "notaport" in text
    assert "hunter2" not in text  # never print a password


async def test_probe_refuses_an_undeclared_vantage(tmp_path):
    path = write_config(tmp_path, config_text(9, 9))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "probe", "--config", str(path), "--vantage", "mars",
        "--redis", "redis://127.0.0.1:1/0", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert "vantage 'mars' is not in the config's vantages (v1, v2, v3)" in err.decode()
