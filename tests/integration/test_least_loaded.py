"""``least_loaded`` end to end: real HTTP origins report their load in a
response header (or a JSON body), the embedded prober (or probes through a
real Redis) reads it, and the nameserver answers the origin with the lowest
load ÷ capacity, moving within a few check intervals when the loads change,
never before the switch margin is passed; with the answer cache on and off."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from gslb.config.load import load
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.probe.service import ProbeService
from gslb.serve.metrics import make_registry
from gslb.serve.service import Service
from gslb.serve.status import status_of
from tests.conftest import FakeOrigin
from tests.integration.dnsutil import BASE_ZONE, Running, addresses, write_config

INTERVAL_S = 0.1
ORIGINS = {"a": "192.0.2.1", "b": "192.0.2.2", "c": "192.0.2.3"}
CAPACITY = {"a": 1, "b": 2, "c": 1}
MARGIN_PCT = 20
WWW = "www.gslb.example.test."
#: Seconds within which a changed load must show in the answers: a check
#: interval, the check itself and the view's hand-over, with room for a
#: loaded machine.
MOVE_S = 2.0

MakeOrigin = Callable[..., Awaitable[FakeOrigin]]


def config_text(ports: dict[str, int], extra: str = "") -> str:
    origins = "".join(
        f"  {o}: {{ipv4: [{ip}], capacity: {CAPACITY[o]}, check: {{type: http, "
        f"target: 127.0.0.1, port: {ports[o]}, interval: {INTERVAL_S}, timeout: {INTERVAL_S}, "
        f"rise: 1, fall: 2, load: {{header: X-Load}}}}}}\n"
        for o, ip in ORIGINS.items())
    return (f"{extra}origins:\n{origins}pools:\n"
            f"  web: {{policy: least_loaded, origins: [a, b, c], switch_margin: {MARGIN_PCT}}}\n"
            + BASE_ZONE.format(minimum=30) + "      www: {gslb: web}\n")


def set_loads(origins: dict[str, FakeOrigin], **loads: float | None) -> None:
    for name, figure in loads.items():
        origins[name].headers = {} if figure is None else {"X-Load": f"{figure:g}"}


async def answers(running: Running, n: int = 50) -> Counter[str]:
    got: Counter[str] = Counter()
    for _ in range(n):
        got.update(addresses(await running.query(WWW)))
    return got


async def moves_to(running: Running, want: str, timeout_s: float = MOVE_S) -> float:
    """Ask until the answer is ``want`` alone; the seconds it took."""
    start = time.monotonic()
    while (got := addresses(await running.query(WWW))) != [ORIGINS[want]]:
        assert time.monotonic() - start < timeout_s, f"still {got}, want {want}"
    return time.monotonic() - start


@pytest_asyncio.fixture(params=[DEFAULT_ENTRIES, 0], ids=["cache", "no-cache"])
async def lab(request: pytest.FixtureRequest, fake_origin: MakeOrigin,
              tmp_path: Path) -> AsyncIterator[tuple[Running, dict[str, FakeOrigin]]]:
    origins = {o: await fake_origin() for o in ORIGINS}
    set_loads(origins, a=50, b=200, c=80)  # per capacity: a 50, b 100, c 80
    path = write_config(tmp_path, config_text({o: x.port for o, x in origins.items()}))
    service = Service(load([path]), [("127.0.0.1", 0)], answer_cache=request.param)
    await service.start()
    try:
        yield Running(service), origins
    finally:
        await service.stop()


async def test_the_answer_follows_the_least_loaded_past_the_margin(lab) -> None:
    running, origins = lab
    view = running.service.quorum
    await view.wait_for(lambda: all(view.load(o) is not None for o in ORIGINS), 5)
    assert {o: view.load(o) for o in ORIGINS} == {"a": 50, "b": 200, "c": 80}
    await moves_to(running, "a")
    assert await answers(running) == Counter({ORIGINS["a"]: 50})
    # c comes below a, but by 10 %, within the 20 % margin: a stays
    set_loads(origins, c=45)
    await view.wait_for(lambda: view.load("c") == 45, 5)
    assert await answers(running) == Counter({ORIGINS["a"]: 50})
    # past the margin (30 against 50): the answer moves to c within the interval
    set_loads(origins, c=30)
    took = await moves_to(running, "c")
    assert await answers(running) == Counter({ORIGINS["c"]: 50})
    # capacity counts: b at 50 over capacity 2 is 25, under c's 30 but within
    # the margin; at 20 (10 per unit) it takes over
    set_loads(origins, b=50)
    await view.wait_for(lambda: view.load("b") == 50, 5)
    assert await answers(running) == Counter({ORIGINS["c"]: 50})
    set_loads(origins, b=20)
    took = max(took, await moves_to(running, "b"))
    # b stops reporting: its load is unknown, so it ranks after every known one
    set_loads(origins, b=None)
    took = max(took, await moves_to(running, "c"))
    # and back to a when c's load climbs
    set_loads(origins, c=90)
    took = max(took, await moves_to(running, "a"))
    assert took < MOVE_S


async def test_two_answers_lowest_load_first(fake_origin: MakeOrigin, tmp_path: Path) -> None:
    origins = {o: await fake_origin() for o in ORIGINS}
    set_loads(origins, a=50, b=60, c=10)  # per capacity: a 50, b 30, c 10
    text = config_text({o: x.port for o, x in origins.items()}).replace(
        "switch_margin: 20}", "switch_margin: 20, max_answers: 2, order: cyclic}")
    service = Service(load([write_config(tmp_path, text)]), [("127.0.0.1", 0)])
    await service.start()
    try:
        running = Running(service)
        view = service.quorum
        await view.wait_for(lambda: all(view.load(o) is not None for o in ORIGINS), 5)
        for _ in range(20):  # ranked: never rotated by the pool's order
            assert addresses(await running.query(WWW)) == [ORIGINS["c"], ORIGINS["b"]]
    finally:
        await service.stop()


async def test_with_workers_every_worker_follows_the_loads(fake_origin: MakeOrigin,
                                                           tmp_path: Path) -> None:
    """``--workers 2``: the loads reach the workers in the view snapshot, so
    queries from many source ports (both workers) all get the least loaded,
    and all move when the loads change."""
    origins = {o: await fake_origin() for o in ORIGINS}
    set_loads(origins, a=50, b=200, c=80)
    path = write_config(tmp_path, config_text({o: x.port for o, x in origins.items()}))
    service = Service(load([path]), [("127.0.0.1", 0)], workers=2)
    await service.start()
    try:
        running = Running(service)
        view = service.quorum
        await view.wait_for(lambda: all(view.load(o) is not None for o in ORIGINS), 5)

        async def all_answer(want: str) -> None:
            start = time.monotonic()
            while True:  # dnspython: a new socket (source port) per query
                got: Counter[str] = Counter()
                for _ in range(40):
                    got.update(addresses(await running.query(WWW)))
                if got == Counter({ORIGINS[want]: 40}):
                    return
                assert time.monotonic() - start < 2 * MOVE_S, f"{got}, want {want}"

        await all_answer("a")
        set_loads(origins, c=10)  # past the margin: every worker moves to c
        await all_answer("c")
        deadline = time.monotonic() + 5.0  # workers ship their counters every second
        while len(service.server.cache_stats) < 2:  # both workers answered
            assert time.monotonic() < deadline, service.server.cache_stats
            await asyncio.sleep(0.1)
        assert all(hits + misses > 0 for hits, misses, _n in service.server.cache_stats.values())
    finally:
        await service.stop()


async def test_loads_travel_through_redis(redis_server, fake_origin: MakeOrigin,
                                          tmp_path: Path) -> None:
    """Two vantages probe the origins and write to a real Redis; the
    nameserver reads the loads from there (the highest of the fresh ones)."""
    origins = {o: await fake_origin() for o in ORIGINS}
    set_loads(origins, a=50, b=200, c=80)
    vantages = "vantages: {eu: {}, us: {}}\n" + (
        "health: {stale_after: 1.0, heartbeat_interval: 0.2, resync_interval: 5}\n")
    ports = {o: x.port for o, x in origins.items()}
    path = write_config(tmp_path, config_text(ports, vantages))
    probes = []
    service = None
    try:
        for v in ("eu", "us"):
            probes.append(probe := ProbeService(load([path]), v, redis_server.url))
            await probe.start()
        service = Service(load([path]), [("127.0.0.1", 0)], redis_url=redis_server.url)
        await service.start()
        running, view = Running(service), service.quorum
        await view.wait_for(lambda: all(view.load(o) is not None for o in ORIGINS), 5)
        await moves_to(running, "a", 5)
        set_loads(origins, c=30)
        await moves_to(running, "c", 5)
        report = view.snapshot()["c"].reports["eu"]
        assert report.load == 30
        # shown on the status document and in /metrics, per vantage
        status = {o["name"]: o for o in status_of(service)["origins"]}
        assert {v: r["load"] for v, r in status["c"]["vantages"].items()} == {
            "eu": 30, "us": 30}
        registry = make_registry(service)
        assert registry.get_sample_value("gslb_health_load",
                                         {"origin": "b", "vantage": "us"}) == 200
    finally:
        if service is not None:
            await service.stop()
        for probe in probes:
            await probe.stop()
