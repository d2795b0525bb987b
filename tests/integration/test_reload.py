"""Safe reload: a bad file keeps the old config answering and says why
(file:line); a good one swaps answers at once. Through the admin API and
through SIGHUP to a real `gslb serve` process (with JSON logs)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message

from tests.integration.adminutil import (
    TOKEN,
    ask,
    cache_lookups,
    call,
    config_text,
    start_service,
)
from tests.integration.dnsutil import BASE_ZONE, addresses

ROOT = Path(__file__).resolve().parent.parent.parent
BROKEN = "origins:\n  a: {ipv4: [not-an-address]}\npools: {p: {policy: nope, origins: [a]}}\n"


async def test_reload_keeps_the_old_config_on_error_and_swaps_on_success(
        tmp_path, fake_origin, refused_port):
    origin = await fake_origin()
    service = await start_service(tmp_path, config_text(origin.port, refused_port))
    try:
        path = tmp_path / "zone.yaml"
        assert await ask(service, "db.gslb.example.test.") == ["192.0.2.1"]
        path.write_text(BROKEN)
        status, body = await call(service, "POST", "/api/v1/reload", token=TOKEN)
        assert status == 422 and body["ok"] is False and body["generation"] == 1
        assert len(body["errors"]) >= 2
        assert all(re.match(rf"{re.escape(str(path))}:\d+: \S+: .+", e) for e in body["errors"])
        assert await ask(service, "db.gslb.example.test.") == ["192.0.2.1"]  # old config

        for _ in range(3):
            await ask(service)
        hits, misses = await cache_lookups(service)
        assert hits + misses == 5 and hits >= 1
        path.write_text(textwrap.dedent(config_text(origin.port, refused_port, www="only-c")))
        status, body = await call(service, "POST", "/api/v1/reload", token=TOKEN)
        assert (status, body) == (200, {"ok": True, "generation": 2, "errors": []})
        assert await ask(service) == ["192.0.2.3"]
        # a new config, a new cache: its lookups are still counters (they count on)
        assert await cache_lookups(service) == (hits, misses + 1)
        _, st = await call(service, "GET", "/api/v1/status")
        assert st["generation"] == 2
        assert service.stats.reloads == {"ok": 1, "error": 1}

        result = await service.reloader.reload([tmp_path / "missing.yaml"])
        assert not result.ok and "missing.yaml:1: (file): cannot read" in result.messages[0]
        assert await ask(service) == ["192.0.2.3"]
    finally:
        await service.stop()


def static_config(www: str) -> str:
    return textwrap.dedent("""
        origins:
          x: {ipv4: [192.0.2.10]}
          y: {ipv4: [192.0.2.20]}
        pools:
          px: {policy: all, origins: [x]}
          py: {policy: all, origins: [y]}
        """) + textwrap.dedent(BASE_ZONE.format(minimum=30)) + f"      www: {{gslb: {www}}}\n"


async def test_sighup_reloads_a_running_gslb_serve_with_json_logs(tmp_path):
    path = tmp_path / "zone.yaml"
    path.write_text(static_config("px"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "--log-format", "json", "serve", "--config", str(path),
        "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = proc.stderr

    async def next_log(pattern: str) -> dict[str, Any]:
        while True:
            line = (await asyncio.wait_for(stderr.readline(), 10)).decode()
            assert line, "gslb serve exited early"
            record = json.loads(line)  # every line is one JSON object
            assert {"ts", "level", "logger", "msg"} <= record.keys()
            if re.search(pattern, record["msg"]):
                return record

    async def www() -> list[str]:
        q = dns.message.make_query("www.gslb.example.test.", "A")
        return addresses(await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2))

    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        port = int(re.search(r"serving DNS on 127\.0\.0\.1 port (\d+)", line)[1])
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert re.search(r"admin on http://127\.0\.0\.1:\d+/", line)
        assert await www() == ["192.0.2.10"]

        path.write_text(BROKEN)
        proc.send_signal(signal.SIGHUP)
        record = await next_log("reload rejected")
        assert record["level"] == "ERROR" and record["ok"] is False
        assert any(e.startswith(f"{path}:") for e in record["errors"])
        assert await www() == ["192.0.2.10"]

        path.write_text(static_config("py"))
        proc.send_signal(signal.SIGHUP)
        record = await next_log(r"^reloaded ")
        assert record["generation"] == 2 and record["logger"] == "gslb.service"
        assert await www() == ["192.0.2.20"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_a_reload_reads_the_networks_file_again(tmp_path):
    (tmp_path / "nets.txt").write_text("127.0.0.0/8 a\n")
    text = """
origins:
  a: {ipv4: [192.0.2.1]}
  b: {ipv4: [192.0.2.2]}
pools:
  nets: {policy: geo, origins: [a, b], networks_file: nets.txt, default: b}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: nets}
"""
    service = await start_service(tmp_path, text)
    try:
        assert await ask(service) == ["192.0.2.1"]  # asked from 127.0.0.1: in 127/8
        (tmp_path / "nets.txt").write_text("127.0.0.0/8 b\n")
        assert (await service.reloader.reload()).ok
        assert await ask(service) == ["192.0.2.2"]
        (tmp_path / "nets.txt").write_text("127.0.0.0/8 nobody\n")
        result = await service.reloader.reload()
        assert not result.ok and result.messages == (
            f"{tmp_path / 'nets.txt'}:1: pools.nets.networks_file[1]: "
            "unknown origin or pool 'nobody'",)
        assert await ask(service) == ["192.0.2.2"]  # the old config still answers
    finally:
        await service.stop()
