"""`gslb serve` as a user runs it: a real process, asked by `dig`."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
FAKE_MMDB = ROOT / "tests" / "data" / "geoip" / "fake-country.mmdb"
FAKE_ASN = ROOT / "tests" / "data" / "geoip" / "fake-asn.mmdb"
BAD = ROOT / "tests" / "data" / "zones" / "bad-several.yaml"

pytestmark = pytest.mark.skipif(shutil.which("dig") is None,
                                reason="dig missing: apt-get install -y dnsutils")


async def dig(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "dig", "+time=2", "+tries=1", *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 10)
    return out.decode()


def children(pid: int) -> set[int]:
    """PIDs of the processes whose parent is ``pid`` (from /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


@pytest.mark.parametrize("workers", [1, 2])
async def test_serve_answers_dig_on_ipv4_and_ipv6_and_stops_on_sigterm(workers: int, fake_origin,
                                                                       tmp_path: Path):
    # zones/example.yaml, its origins' checks pointed at a live origin (a dead
    # one leaves answers at its first failed check, docs/checks.md)
    live = await fake_origin()
    text = (ROOT / "zones" / "example.yaml").read_text()
    assert text.count("      port: 8080\n") == 2
    config = tmp_path / "example.yaml"
    config.write_text(text.replace("      port: 8080\n",
                                   f"      port: {live.port}\n      target: 127.0.0.1\n"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(config),
        "--listen", "127.0.0.1:0", "--listen", "[::1]:0", "--geoip", str(FAKE_MMDB),
        "--asn-db", str(FAKE_ASN),
        "--no-admin", "--workers", str(workers), "--server-id", "ns1.gslb-test",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    spawned: set[int] = set()
    try:
        ports = []
        while len(ports) < 2:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line, "gslb serve exited early"
            match = re.search(r"serving DNS on (\S+) port (\d+)", line)
            if match:
                ports.append((match[1], match[2]))
        (v4, p4), (v6, p6) = ports
        assert (v4, v6) == ("127.0.0.1", "::1")
        out = await dig(f"@{v4}", "-p", p4, "www.gslb.example.com", "+subnet=81.2.69.0/24")
        assert "CLIENT-SUBNET: 81.2.69.0/24/24" in out
        assert re.search(r"^www\.gslb\.example\.com\.\s+30\s+IN\s+A\s+127\.0\.0\.11$", out, re.M)
        out = await dig(f"@{v6}", "-p", p6, "static.gslb.example.com", "MX", "+tcp", "+short")
        assert out.strip() == "10 mail.example.com."
        out = await dig(f"@{v4}", "-p", p4, "nope.gslb.example.com")
        assert "status: NXDOMAIN" in out and "flags: qr aa" in out
        # which instance answered: NSID (RFC 5001) and CHAOS id.server (RFC 4892)
        out = await dig(f"@{v4}", "-p", p4, "www.gslb.example.com", "+nsid")
        assert re.search(r'^; NSID: .*\("ns1\.gslb-test"\)$', out, re.M), out
        out = await dig(f"@{v6}", "-p", p6, "id.server", "CH", "TXT", "+short")
        assert out.strip() == '"ns1.gslb-test"'
        spawned = children(proc.pid)
        # workers answer; the supervisor (and the multiprocessing resource
        # tracker) besides them
        assert len(spawned) >= (workers if workers > 1 else 0)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 10)
    assert rc == 0
    # the ASN database is opened by the process that answers: each worker, and the
    # supervisor (which builds every config's authority too)
    log = (await proc.stderr.read()).decode()
    opened = [line for line in log.splitlines() if "opened ASN database" in line]
    assert len(opened) == (1 + workers if workers > 1 else 1), log
    assert all(str(FAKE_ASN) in line and "GSLB-ASN" in line for line in opened)
    for _ in range(100):  # orphans exit with their parent, and are reaped
        left = {pid for pid in spawned if Path(f"/proc/{pid}").exists()}
        if not left:
            break
        await asyncio.sleep(0.05)
    assert not left, [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in left]


async def test_serve_refuses_an_invalid_config_with_file_and_line():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(BAD), "--listen", "127.0.0.1:0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    lines = [line for line in err.decode().splitlines() if line.startswith(str(BAD))]
    assert len(lines) >= 2
    assert all(re.match(rf"{re.escape(str(BAD))}:\d+: \S+: .+", line) for line in lines)


async def test_serve_reports_a_missing_geoip_file():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(ROOT / "zones" / "example.yaml"),
        "--listen", "127.0.0.1:0", "--geoip", "/nonexistent.mmdb",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert "/nonexistent.mmdb" in err.decode()


@pytest.mark.parametrize(("path", "message"), [
    ("/nonexistent-asn.mmdb", "/nonexistent-asn.mmdb: cannot open ASN database: No such file"),
    (str(FAKE_MMDB), f"{FAKE_MMDB}: not a GeoLite2-ASN (or DB-IP ASN Lite, GeoIP2-ISP) "
                     "database (database_type 'GSLB-Country')"),
])
async def test_serve_reports_a_bad_asn_database(path: str, message: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(ROOT / "zones" / "example.yaml"),
        "--listen", "127.0.0.1:0", "--no-admin", "--geoip", str(FAKE_MMDB), "--asn-db", path,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert f"gslb serve: {message}" in err.decode()


async def test_serve_refuses_a_server_id_that_is_not_one_txt_string():
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(ROOT / "zones" / "example.yaml"),
        "--listen", "127.0.0.1:0", "--no-admin", "--server-id", "x" * 256,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert "server id" in err.decode() and "1 to 255 printable ASCII" in err.decode()


async def test_serve_workers_auto_starts_one_worker_per_cpu_of_its_affinity():
    # the child may run on at most two of this process's CPUs: `auto` must count
    # exactly those (the affinity mask), not every CPU of the machine
    cpus = set(sorted(os.sched_getaffinity(0))[:2])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(ROOT / "zones" / "example.yaml"),
        "--listen", "127.0.0.1:0", "--no-admin", "--geoip", str(FAKE_MMDB), "--workers", "auto",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus))
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"serving DNS on (\S+) port (\d+)", line)
        assert match, line
        out = await dig(f"@{match[1]}", "-p", match[2], "static.gslb.example.com", "+short")
        assert sorted(out.split()) == ["192.0.2.10", "192.0.2.11"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 10)
    assert rc == 0
    log = (await proc.stderr.read()).decode()
    pools = re.findall(r"(\d+) workers listening on 127\.0\.0\.1", log)
    # one CPU: this process answers (no pool), as with --workers 1
    assert pools == ([str(len(cpus))] if len(cpus) > 1 else []), log


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5", ""])
async def test_serve_refuses_a_workers_value_that_is_not_a_positive_number_or_auto(value: str):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "serve", "--config", str(ROOT / "zones" / "example.yaml"),
        "--listen", "127.0.0.1:0", "--no-admin", f"--workers={value}",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 2  # argparse's usage error, before anything starts
    assert (f"argument --workers: {value!r} is neither a positive number of worker "
            "processes nor 'auto'") in err.decode()
