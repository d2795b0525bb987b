"""The admin HTTP server of a real Service: every endpoint, auth, drains,
metrics counting real DNS queries, readiness, and `gslb status`."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from gslb.health.state import VantageReport
from gslb.serve.service import Service
from tests.integration.adminutil import (
    TOKEN,
    admin_url,
    ask,
    call,
    config_text,
    samples,
    start_service,
)

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest_asyncio.fixture
async def running(tmp_path: Path, fake_origin: Callable[..., Awaitable[object]],
                  refused_port: int) -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """Factory: a started Service from ``config_text`` with origin ``b``
    down and ``a`` checked (awaited); stopped after the test."""
    made: list[Service] = []

    async def factory(**kw: object) -> Service:
        origin = await fake_origin()
        service = await start_service(tmp_path, config_text(origin.port, refused_port),
                                      name=f"zone{len(made)}.yaml", **kw)
        made.append(service)
        await service.quorum.wait_for(lambda: not service.quorum.is_up("b") and (
            "a" in service.quorum.snapshot()), 5)
        return service

    yield factory
    for service in made:
        await service.stop()


async def test_healthz_readyz_and_status(running):
    service = await running()
    assert await call(service, "GET", "/healthz") == (200, "ok\n")
    assert await call(service, "GET", "/readyz") == (200, {"ready": True, "reasons": []})
    status, st = await call(service, "GET", "/api/v1/status")
    assert status == 200
    origins = {o["name"]: o for o in st["origins"]}
    assert {n: o["state"] for n, o in origins.items()} == {"a": "up", "b": "down", "c": "up"}
    assert origins["b"]["vantages"]["local"]["up"] is False
    assert "refused" in origins["b"]["vantages"]["local"]["detail"]
    pools = {p["name"]: p for p in st["pools"]}
    assert pools["tree"]["members"] == [{"name": "fo", "kind": "pool"},
                                        {"name": "only-c", "kind": "pool"}]
    assert pools["fo"]["members"] == [{"name": "a", "kind": "origin"},
                                      {"name": "c", "kind": "origin"}]
    answer = pools["tree"]["answers"]["A"]
    assert (answer["origins"], answer["leaves"]) == (["a"], ["fo"])
    assert answer["reason"] == "tier 1 → pool fo: tier 1"
    assert origins["a"]["vantages"]["local"]["srtt_ms"] > 0
    assert origins["c"]["vantages"] == {}
    pools = {p["name"]: p for p in st["pools"]}
    assert pools["both"]["answers"]["A"]["origins"] == ["a", "c"]
    assert pools["fo"]["answers"]["A"]["origins"] == ["a"]
    assert pools["fo"]["answers"]["AAAA"]["kind"] == "nodata"
    assert st["generation"] == 1 and st["ready"] is True and st["vantages"] == ["local"]
    assert [t["origin"] for t in st["transitions"]] == ["b"]
    assert st["transitions"][0]["state"] == "down"
    assert st["zones"][0]["name"] == "gslb.example.test."


async def test_mutating_endpoints_are_disabled_without_a_token(running):
    service = await running(token=None)
    for path in ("/api/v1/origins/a/drain", "/api/v1/origins/a/undrain", "/api/v1/reload"):
        status, body = await call(service, "POST", path, token="anything",
                                  json={"reason": "x"})
        assert status == 403, path
        assert "no admin token is configured" in body["error"]
    assert await ask(service) == ["192.0.2.1", "192.0.2.3"]


async def test_drain_needs_the_token_and_takes_the_origin_out(running):
    service = await running()
    path = "/api/v1/origins/a/drain"
    assert (await call(service, "POST", path, json={"reason": "x"}))[0] == 401
    assert (await call(service, "POST", path, token="wrong", json={"reason": "x"}))[0] == 401
    assert (await call(service, "POST", "/api/v1/origins/a/undrain", token="wrong"))[0] == 401
    assert (await call(service, "POST", "/api/v1/reload"))[0] == 401
    assert await ask(service) == ["192.0.2.1", "192.0.2.3"]

    assert (await call(service, "POST", path, token=TOKEN, json={}))[0] == 400
    assert (await call(service, "POST", path, token=TOKEN,
                       json={"reason": "x", "expires_in": -1}))[0] == 400
    status, body = await call(service, "POST", "/api/v1/origins/nope/drain", token=TOKEN,
                              json={"reason": "x"})
    assert status == 404 and "nope" in body["error"]

    status, body = await call(service, "POST", path, token=TOKEN,
                              json={"reason": "kernel upgrade", "who": "alice"})
    assert status == 200
    assert body["drain"]["who"] == "alice" and body["drain"]["expires_at"] is None
    assert await ask(service) == ["192.0.2.3"]
    assert await ask(service, "db.gslb.example.test.") == ["192.0.2.3"]  # failover to c
    _, st = await call(service, "GET", "/api/v1/status")
    assert [o["state"] for o in st["origins"]] == ["drained", "down", "up"]
    assert st["overrides"][0]["reason"] == "kernel upgrade"
    assert st["transitions"][0]["state"] == "drained"
    assert "alice" in st["transitions"][0]["cause"]

    status, body = await call(service, "POST", "/api/v1/origins/a/undrain", token=TOKEN,
                              json={"who": "alice", "reason": "done"})
    assert (status, body) == (200, {"undrained": True})
    assert await ask(service) == ["192.0.2.1", "192.0.2.3"]
    status, body = await call(service, "POST", "/api/v1/origins/a/undrain", token=TOKEN)
    assert (status, body) == (200, {"undrained": False})


async def test_a_drain_with_an_expiry_lifts_itself(running, caplog):
    service = await running()
    status, _ = await call(service, "POST", "/api/v1/origins/c/drain", token=TOKEN,
                           json={"reason": "short", "expires_in": 0.3})
    assert status == 200
    assert await ask(service) == ["192.0.2.1"]
    start = time.monotonic()
    await service.overrides.wait_for(lambda: not service.overrides.is_drained("c"), 3)
    assert time.monotonic() - start < 1.0
    assert await ask(service) == ["192.0.2.1", "192.0.2.3"]
    assert [t.state for t in service.transitions.recent][-2:] == ["drained", "undrained"]
    assert any("UNDRAINED: drain by" in r.getMessage() and "expired" in r.getMessage()
               for r in caplog.records)


async def test_metrics_count_real_queries(running):
    service = await running()
    status, before = await call(service, "GET", "/metrics")
    assert status == 200
    n = 25
    for _ in range(n):
        assert await ask(service) == ["192.0.2.1", "192.0.2.3"]
    for _ in range(3):
        await ask(service, "nope.gslb.example.test.")
    for _ in range(4):  # a tree: counted at the leaf pool that holds the origin
        assert await ask(service, "tree.gslb.example.test.") == ["192.0.2.1"]
    _, text = await call(service, "GET", "/metrics")
    old, new = samples(before), samples(text)

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return new.get(key, 0.0) - old.get(key, 0.0)

    assert moved("gslb_dns_queries_total", qtype="A", rcode="NOERROR") == n + 4
    assert moved("gslb_steering_answers_total", pool="fo", policy="failover", origin="a") == 4
    assert moved("gslb_steering_answers_total", pool="tree", policy="failover",
                 origin="192.0.2.1") == 0
    assert moved("gslb_dns_queries_total", qtype="A", rcode="NXDOMAIN") == 3
    for origin in ("a", "c"):
        assert moved("gslb_steering_answers_total", pool="both", policy="all",
                     origin=origin) == n
    assert moved("gslb_steering_answers_total", pool="both", policy="all", origin="b") == 0
    assert moved("gslb_dns_answer_duration_seconds_count") == n + 3 + 4
    assert moved("gslb_dns_answer_duration_seconds_bucket", le="+Inf") == n + 3 + 4
    assert 0 < moved("gslb_dns_answer_duration_seconds_sum") < 1
    assert new[("gslb_health_origin_up", (("origin", "b"),))] == 0
    assert new[("gslb_health_vantage_up", (("origin", "a"), ("vantage", "local")))] == 1
    assert new[("gslb_health_srtt_seconds", (("origin", "a"), ("vantage", "local")))] > 0
    assert new[("gslb_health_transitions_total", (("origin", "b"), ("state", "down")))] == 1
    assert new[("gslb_config_generation", ())] == 1
    assert ("gslb_redis_connected", (("client", "health"),)) not in new


async def test_fallbacks_are_counted(tmp_path, refused_port):
    text = config_text(refused_port, refused_port, www="only-c").replace(
        "fo: {policy: failover, tiers: [[a], [c]], fallback: none}",
        "fo: {policy: failover, tiers: [[a], [b]]}")
    service = await start_service(tmp_path, text)
    try:
        await service.quorum.wait_for(
            lambda: not service.quorum.is_up("a") and not service.quorum.is_up("b"), 5)
        for _ in range(4):
            # fallback all: as if every member were up, so the first tier
            assert await ask(service, "db.gslb.example.test.") == ["192.0.2.1"]
        _, text = await call(service, "GET", "/metrics")
        got = samples(text)
        assert got[("gslb_steering_fallbacks_total", (("pool", "fo"),))] == 4
        assert got[("gslb_steering_pool_in_fallback", (("family", "ipv4"), ("pool", "fo")))] == 1
    finally:
        await service.stop()


async def test_readyz_is_503_with_reasons_when_redis_is_down_or_the_view_degraded(
        tmp_path, refused_port):
    text = config_text(refused_port, refused_port).replace("interval: 0.2", "interval: 5")
    service = await start_service(tmp_path, text, redis_url=f"redis://127.0.0.1:{refused_port}/0")
    try:
        status, body = await call(service, "GET", "/readyz")
        assert status == 503 and body["ready"] is False
        assert "Redis unreachable (health watcher)" in body["reasons"]
        assert "Redis unreachable (overrides watcher)" in body["reasons"]
        # a report whose vantage then fell silent: the view holds the last state
        service.quorum.apply(VantageReport("a", "eu", False, 3, False, None, None, "refused",
                                           time.time()))
        service.quorum.clock = lambda: time.time() + 100
        service.quorum.refresh()
        assert service.quorum.degraded
        _, body = await call(service, "GET", "/readyz")
        assert "health view degraded: fewer than quorum (1) fresh vantages for a" in body["reasons"]
        _, text = await call(service, "GET", "/metrics")
        got = samples(text)
        assert got[("gslb_redis_connected", (("client", "health"),))] == 0
        assert got[("gslb_health_degraded", ())] == 1
        status, body = await call(service, "POST", "/api/v1/origins/a/drain", token=TOKEN,
                                  json={"reason": "x"})
        assert status == 503 and "not drained" in body["error"]
        assert not service.overrides.is_drained("a")
    finally:
        await service.stop()


async def test_gslb_status_prints_tables(running):
    service = await running(server_id="ns2.example")
    await call(service, "POST", "/api/v1/origins/c/drain", token=TOKEN,
               json={"reason": "maintenance window", "who": "bob"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "status", "--admin", admin_url(service), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split())  # the first table wins
    assert rows["a"][:2] == ["a", "UP"]
    assert rows["b"][:3] == ["b", "DOWN", "DOWN"]
    assert rows["c"][:2] == ["c", "DRAINED"]
    assert rows["both"][:3] == ["both", "all", "a"]
    assert "maintenance window" in text and "bob" in text
    # the tree of pools, and the branch that answers now
    tree = text[text.index("TREES"):].splitlines()
    assert tree[1:6] == ["→ tree (failover)", "  → fo (failover)", "    → a", "      c",
                         "    only-c (all)"], tree
    assert text.startswith("gslb ") and " (ns2.example): generation 1 " in text.splitlines()[0]


async def test_gslb_status_fails_clearly_when_nothing_listens(refused_port):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gslb", "status", "--admin", f"http://127.0.0.1:{refused_port}",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert f"cannot read http://127.0.0.1:{refused_port}/api/v1/status" in err.decode()


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css"])
async def test_status_page_files_are_served(running, path):
    service = await running()
    status, text = await call(service, "GET", path)
    assert status == 200 and len(text) > 100
