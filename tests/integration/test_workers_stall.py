"""A worker that stops reading cannot stall ``gslb serve --workers``: with
one worker stopped by SIGSTOP, the supervisor ships view after view (each
some 90 KB: 2,000 origins down) far past what the pipe to the stopped worker
holds, and still answers the admin API at once, the other worker follows
every drain, and after SIGCONT the stopped worker answers from the latest
view (docs/operations.md "Several cores")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import dns.message
import dns.rcode
import pytest

from tests.integration.dnsutil import BASE_ZONE, addresses

ROOT = Path(__file__).resolve().parent.parent.parent
TOKEN = "stall-token"
FILLERS = 2000  # checked origins that are down: each snapshot carries their names
CHANGES = 40  # drains and undrains: 40 x ~90 KB, many times what a socket buffer holds
DEADLINE_S = 3.0  # for each admin request and for the live worker to follow a change
BOTH, ONLY_C = ("192.0.2.1", "192.0.2.3"), ("192.0.2.3",)  # www: a undrained, a drained


def config(refused_port: int) -> str:
    check = (f"{{type: tcp, target: 127.0.0.1, port: {refused_port}, interval: 600, "
             "timeout: 1, fall: 1}")
    fillers = "\n".join(f"  filler-origin-with-a-rather-long-name-{i:05d}: "
                        f"{{ipv4: [198.51.100.1], check: {check}}}" for i in range(FILLERS))
    return (f"origins:\n  a: {{ipv4: [192.0.2.1]}}\n  c: {{ipv4: [192.0.2.3]}}\n{fillers}\n"
            "pools:\n  www: {policy: all, origins: [a, c]}\n"
            "  filler: {policy: all, origins: [%s]}\n"
            % ", ".join(f"filler-origin-with-a-rather-long-name-{i:05d}" for i in range(FILLERS))
            + BASE_ZONE.format(minimum=30) + "      www: {gslb: www}\n"
            "      filler: {gslb: filler}\n")


class Client(asyncio.DatagramProtocol):
    """A UDP client on one source port (so always hashed to the same worker)
    that matches answers to queries by ID and ignores stale ones."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Future[dns.message.Message]] = {}
        self.next_id = 1

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = dns.message.from_wire(data)
        future = self.waiting.pop(msg.id, None)
        if future is not None and not future.done():
            future.set_result(msg)

    async def ask(self, timeout: float) -> tuple[str, ...] | None:
        """The sorted A addresses for www, or None after ``timeout`` seconds."""
        query = dns.message.make_query("www.gslb.example.test.", "A")
        query.id, self.next_id = self.next_id, self.next_id % 65535 + 1
        future = asyncio.get_running_loop().create_future()
        self.waiting[query.id] = future
        assert self.transport is not None
        self.transport.sendto(query.to_wire())
        try:
            msg = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self.waiting.pop(query.id, None)
            return None
        assert msg.rcode() == dns.rcode.NOERROR
        return tuple(sorted(addresses(msg)))


    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def client(port: int, made: list[Client]) -> Client:
    """A new :class:`Client` of ``port``, added to ``made`` (to close)."""
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        Client, local_addr=("127.0.0.1", 0), remote_addr=("127.0.0.1", port))
    proto.transport = transport
    made.append(proto)
    return proto


async def wait_lines(path: Path, proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """The DNS port and the admin URL ``gslb serve`` printed."""
    while True:
        text = path.read_text()
        dns_port = re.search(r"serving DNS on 127\.0\.0\.1 port (\d+)", text)
        admin = re.search(r"admin on (http://\S+)/", text)
        if dns_port and admin:
            return int(dns_port[1]), admin[1]
        assert proc.returncode is None, "gslb serve exited early"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, refused_port: int) -> AsyncIterator[tuple[int, str]]:
    """``gslb serve --workers 2`` (a real process) with the filler config:
    its DNS port and admin URL. Its output goes to files (a full pipe would
    stall it too)."""
    (tmp_path / "zone.yaml").write_text(config(refused_port))
    (tmp_path / "token").write_text(TOKEN)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gslb", "serve", "--config", str(tmp_path / "zone.yaml"),
            "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--workers", "2",
            "--admin-token-file", str(tmp_path / "token"), cwd=ROOT, stdout=stdout,
            stderr=stderr)
    try:
        yield await asyncio.wait_for(wait_lines(out, proc), 60)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def live_and_stuck(port: int, made: list[Client]) -> tuple[Client, Client]:
    """With one worker stopped: a client hashed to the live worker (it is
    answered within 0.5 s) and one hashed to the stopped one."""
    live = stuck = None
    for _ in range(64):
        c = await client(port, made)
        got = await c.ask(0.5)
        if got is not None:
            assert got == BOTH
            live = live or c
        else:
            stuck = stuck or c
        if live and stuck:
            return live, stuck
    raise AssertionError("64 source ports all hashed to one worker")


async def test_a_stopped_worker_does_not_stall_the_supervisor(tmp_path: Path, refused_port):
    timeout = aiohttp.ClientTimeout(total=DEADLINE_S)
    made: list[Client] = []
    async with serving(tmp_path, refused_port) as (port, url), \
            aiohttp.ClientSession(timeout=timeout) as http, contextlib.AsyncExitStack() as stack:
        stack.callback(lambda: [c.close() for c in made])
        async def get(path: str) -> Any:
            async with http.get(url + path) as response:
                assert response.status == 200, path
                return await response.json() if path.startswith("/api") else None

        async def post(path: str) -> None:
            async with http.post(url + path, json={"reason": "stall test"},
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 200, (path, await response.text())

        # the fillers' first checks fail: every snapshot names 2,000 origins down
        async def fillers_down() -> list[int]:
            while True:
                status = await get("/api/v1/status")
                down = [o for o in status["origins"]
                        if o["name"].startswith("filler") and not o["health_up"]]
                if len(down) == FILLERS and all(w["answering"] for w in status["workers"]):
                    return [w["pid"] for w in status["workers"]]
                await asyncio.sleep(0.2)
        pids = await asyncio.wait_for(fillers_down(), 60)

        stopped_pid = pids[0]
        os.kill(stopped_pid, signal.SIGSTOP)
        try:
            live, stuck = await live_and_stuck(port, made)
            for i in range(CHANGES + 1):  # ends drained: something to catch up to
                drain = i % 2 == 0
                await post(f"/api/v1/origins/a/{'drain' if drain else 'undrain'}")
                expected = ONLY_C if drain else BOTH
                start = time.monotonic()
                while (got := await live.ask(DEADLINE_S)) != expected:
                    assert time.monotonic() - start < DEADLINE_S, (i, got)
                    await asyncio.sleep(0.02)
                await get("/api/v1/status")
                await get("/metrics")
        finally:
            os.kill(stopped_pid, signal.SIGCONT)
        start = time.monotonic()
        while (got := await stuck.ask(1.0)) != ONLY_C:
            assert time.monotonic() - start < 10, got
            await asyncio.sleep(0.05)
        status = await get("/api/v1/status")
        assert [w["pid"] for w in status["workers"]] == pids  # nobody was restarted
        assert all(w["answering"] for w in status["workers"])


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT hashing: Linux")
