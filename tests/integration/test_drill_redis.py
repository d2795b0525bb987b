"""``gslb drill --redis`` against a real ``redis-server``: now is the health
and the drains that probe workers and operators left in Redis, read the way
``gslb serve --redis`` reads them, and the drill leaves every key
byte-identical (it only reads)."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from gslb.health.overrides import Override, Overrides, RedisOverrides
from gslb.health.redis.sink import RedisSink
from gslb.health.state import VantageReport
from tests.conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """
vantages: {v1: , v2: , v3: }
health: {quorum: 2}
origins:
  lon: {ipv4: [192.0.2.11], location: {country: GB}, check: {type: tcp, port: 9}}
  sto: {ipv4: [192.0.2.12], location: {country: SE}, check: {type: tcp, port: 9}}
  iad: {ipv4: [192.0.2.13], location: {country: US}, check: {type: tcp, port: 9}}
pools:
  web:
    policy: geo
    origins: [lon, sto, iad]
    countries: {GB: lon, SE: sto, US: iad}
    default: lon
  everyone: {policy: all, origins: [lon, sto, iad]}
zones:
  gslb.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}
      ns1: {A: 192.0.2.53}
      www: {gslb: web}
      all: {gslb: everyone}
"""

VOTES = {"lon": {"v1": False, "v2": True, "v3": True},   # only v1 saw it down: up
         "sto": {"v1": False, "v2": False, "v3": True},  # down, 2 of 3
         "iad": {"v1": True, "v2": True, "v3": True}}


async def snapshot(url: str) -> dict[bytes, tuple[bytes, bytes | None]]:
    """Every key of the database: its type and its DUMP (the value's bytes)."""
    client = Redis.from_url(url)
    try:
        keys = sorted([k async for k in client.scan_iter(match="*", count=1000)])
        return {k: (await client.type(k), await client.dump(k)) for k in keys}
    finally:
        await client.aclose()


async def run_drill(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "drill", *argv, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def answer(data: dict[str, Any], code: str, name: str, when: str) -> list[str]:
    (row,) = [r for r in data["rows"] if r["place"]["code"] == code
              and r["place"]["kind"] == "country" and r["name"] == name and r["type"] == "A"]
    addresses: list[str] = row[when]["addresses"]
    return addresses


async def test_drill_reads_redis_and_changes_nothing(redis_server: RedisServer,
                                                     tmp_path: Path) -> None:
    url = redis_server.url
    sink = RedisSink(url, key_ttl_s=600)
    await sink.start()
    now = time.time()
    for origin, votes in VOTES.items():
        for vantage, up in votes.items():
            sink.heartbeat(vantage, now)
            sink.report(VantageReport(origin, vantage, up, 3, up, 1.0, 1.0, "", now), True)
    await sink.stop()  # writes what is pending
    drains = RedisOverrides(url, Overrides(), resync_interval_s=30)
    await drains.start()
    await drains.drain(Override("iad", "maintenance", "test", now))
    await drains.stop()
    before = await snapshot(url)
    assert len(before) == 3 + 9 + 1  # vantages, reports, the drain

    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    code, out, err = await run_drill("--config", str(path), "--redis", url, "--down", "lon",
                                     "--vantage-down", "v2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == "redis" and data["vantage_down"] == ["v2"]
    # now: sto down by the quorum, iad drained; lon up (one vantage alone saw it down)
    assert answer(data, "DE", "all.gslb.test.", "now") == ["192.0.2.11"]
    # lon down: everyone is down or drained, fallback all answers all but the drained one
    assert answer(data, "DE", "all.gslb.test.", "then") == ["192.0.2.11", "192.0.2.12"]
    # v2 silent: sto stays down (v1 and v3 split, the state holds)
    assert answer(data, "SE", "www.gslb.test.", "now") != ["192.0.2.12"]

    code, out, err = await run_drill("--config", str(path), "--redis", url, "--down", "sto",
                                     "--vantage-down", "v1")
    assert code == 0, err
    assert out.startswith("gslb drill: down sto; vantage v1 silent (now: redis); ")
    # lon stays up with the one vantage that saw it down silent
    (gb,) = [line for line in out.splitlines() if line[3:].startswith("GB ")
             and "www." in line]
    assert gb.split()[-2:] == ["192.0.2.11", "192.0.2.11"] and not gb.startswith("*")

    code, _out, err = await run_drill("--config", str(path), "--redis", url, "--down", "lon",
                                      "--vantage-down", "v9")
    assert code == 2 and "unknown vantage(s): v9; known: v1, v2, v3" in err

    assert await snapshot(url) == before
