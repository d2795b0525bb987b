"""``latency`` steering end to end (issue 5): origins whose latency really
differs per vantage (a user-space delaying TCP proxy per (vantage, origin),
see tests/delay_proxy.py), one probe worker per vantage writing to a real
Redis, a nameserver reading it, and dnspython asking with ECS subnets
located near each vantage (tests/data/geoip/fake-country.mmdb)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import pytest_asyncio

from gslb.config.load import load
from gslb.health.view import QuorumView
from gslb.probe.service import ProbeService
from gslb.serve.service import Service
from tests.conftest import FakeOrigin
from tests.delay_proxy import DelayProxy
from tests.integration.dnsutil import BASE_ZONE, addresses, write_config

FAKE_MMDB = Path(__file__).parent.parent / "data" / "geoip" / "fake-country.mmdb"
INTERVAL_S = TIMEOUT_S = 0.15
VANTAGES = {"eu": "GB", "us": "US", "ap": "SG"}
ORIGINS = {"a": "192.0.2.1", "b": "192.0.2.2", "c": "192.0.2.3"}
#: ECS subnets the fake GeoIP database places near each vantage.
NEAR = {"eu": "81.2.69.0", "us": "8.8.8.0", "ap": "5.5.10.0"}
SWEDEN = "89.160.0.0"  # no vantage there: the nearest is eu (London)
#: Added latency in ms per vantage and origin: each vantage has its own fastest.
DELAYS = {"eu": {"a": 10, "b": 45, "c": 80},
          "us": {"a": 60, "b": 10, "c": 70},
          "ap": {"a": 90, "b": 60, "c": 10}}
MARGIN_PCT, MARGIN_MS = 30, 10


def config_text(ports: dict[str, int]) -> str:
    """The config with origin checks going to ``ports`` (origin → port)."""
    vantages = "".join(f"  {v}: {{location: {{country: {cc}}}}}\n" for v, cc in VANTAGES.items())
    origins = "".join(
        f"  {o}: {{ipv4: [{ip}], check: {{type: http, target: 127.0.0.1, port: {ports[o]}, "
        f"interval: {INTERVAL_S}, timeout: {TIMEOUT_S}, fall: 2, rise: 2}}}}\n"
        for o, ip in ORIGINS.items())
    return (f"vantages:\n{vantages}"
            "health: {stale_after: 1.0, heartbeat_interval: 0.2, resync_interval: 5}\n"
            f"origins:\n{origins}"
            "pools:\n"
            f"  fast: {{policy: latency, origins: [a, b, c], switch_margin: {MARGIN_PCT}, "
            f"switch_margin_ms: {MARGIN_MS}}}\n"
            + BASE_ZONE.format(minimum=30) + "      www: {gslb: fast}\n")


@dataclass
class Lab:
    origins: dict[str, FakeOrigin]
    proxies: dict[tuple[str, str], DelayProxy]  # (vantage, origin) → its path
    service: Service

    @property
    def view(self) -> QuorumView:
        return self.service.quorum

    async def ask(self, subnet: str) -> tuple[list[str], int | None]:
        """A records for www and the ECS scope of the answer."""
        q = dns.message.make_query("www.gslb.example.test.", "A", use_edns=0,
                                   options=[dns.edns.ECSOption(subnet, 24)])
        port = self.service.addresses[0][1]
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)
        scope = next((o.scopelen for o in r.options if isinstance(o, dns.edns.ECSOption)), None)
        return addresses(r), scope

    async def until(self, subnet: str, want: str, timeout_s: float) -> float:
        """Poll DNS until ``subnet`` is answered ``want``; seconds it took."""
        start = time.monotonic()
        while (got := await self.ask(subnet))[0] != [want]:
            assert time.monotonic() - start < timeout_s, f"{subnet}: still {got}"
            await asyncio.sleep(0.02)
        return time.monotonic() - start

    async def settled(self, timeout_s: float = 5.0) -> None:
        """Wait until every vantage has measured every origin, and its
        smoothed RTTs rank the origins as the delays do."""
        def ranked() -> bool:
            for v, row in DELAYS.items():
                srtt = {o: self.view.srtt_ms(o, v) for o in row}
                if None in srtt.values():
                    return False
                if sorted(row, key=row.__getitem__) != sorted(srtt, key=srtt.__getitem__):
                    return False
            return True
        await self.view.wait_for(ranked, timeout_s)


@pytest_asyncio.fixture
async def lab(redis_server, fake_origin: Callable[..., Awaitable[FakeOrigin]],
              tmp_path: Path) -> AsyncIterator[Lab]:
    origins = {o: await fake_origin() for o in ORIGINS}
    proxies = {}
    for v, row in DELAYS.items():
        for o, ms in row.items():
            proxies[v, o] = proxy = DelayProxy("127.0.0.1", origins[o].port, ms)
            await proxy.start()
    workers = []
    service = None
    try:
        for v in VANTAGES:  # per-vantage configs differ only in where checks connect
            ports = {o: proxies[v, o].port for o in ORIGINS}
            cfg = load([write_config(tmp_path, config_text(ports), f"{v}.yaml")])
            workers.append(worker := ProbeService(cfg, v, redis_server.url))
            await worker.start()
        cfg = load([write_config(tmp_path, config_text({o: 9 for o in ORIGINS}), "ns.yaml")])
        service = Service(cfg, [("127.0.0.1", 0)], FAKE_MMDB, redis_url=redis_server.url)
        await service.start()
        yield Lab(origins, proxies, service)
    finally:
        if service is not None:
            await service.stop()
        for worker in workers:
            await worker.stop()
        for proxy in proxies.values():
            await proxy.stop()


async def test_clients_near_each_vantage_get_its_fastest_origin(lab: Lab):
    await lab.settled()
    for v, row in DELAYS.items():  # the paths really differ: each RTT is at least its delay
        for o, ms in row.items():
            srtt = lab.view.srtt_ms(o, v)
            assert srtt is not None and ms <= srtt < ms + 40, (v, o, srtt)
    for v, subnet in NEAR.items():
        fastest = min(DELAYS[v], key=DELAYS[v].__getitem__)
        assert await lab.ask(subnet) == ([ORIGINS[fastest]], 24), v
    assert await lab.ask(SWEDEN) == ([ORIGINS["a"]], 19)  # nearest vantage eu; SE is a /19


async def test_a_latency_change_moves_the_answer_only_past_both_margins(lab: Lab):
    await lab.settled()
    gb = NEAR["eu"]
    assert (await lab.ask(gb))[0] == [ORIGINS["a"]]  # a 10 ms, b 45 ms from eu
    a_ms = lab.view.srtt_ms("a", "eu")
    assert a_ms is not None
    # b comes to 5 ms behind... then ahead of a, but by less than the margins
    # (10 ms and 30 %): the answer stays a
    lab.proxies["eu", "b"].delay_ms = 4
    await lab.view.wait_for(lambda: (lab.view.srtt_ms("b", "eu") or 99) < a_ms - 2, 5)
    deadline = time.monotonic() + 6 * INTERVAL_S
    while time.monotonic() < deadline:
        assert (await lab.ask(gb))[0] == [ORIGINS["a"]]
        await asyncio.sleep(0.02)
    # a slows down to 40 ms: b is now past both margins, and the answer moves
    lab.proxies["eu", "a"].delay_ms = 40
    await lab.until(gb, ORIGINS["b"], 5)
    a_now, b_now = lab.view.srtt_ms("a", "eu"), lab.view.srtt_ms("b", "eu")
    assert a_now is not None and b_now is not None
    assert a_now - b_now > MARGIN_MS and a_now - b_now > a_now * MARGIN_PCT / 100
    # other vantages' clients were not affected
    assert (await lab.ask(NEAR["us"]))[0] == [ORIGINS["b"]]
    assert (await lab.ask(NEAR["ap"]))[0] == [ORIGINS["c"]]


async def test_a_down_origin_is_never_chosen_even_when_fastest(lab: Lab):
    await lab.settled()
    ap = NEAR["ap"]
    assert (await lab.ask(ap))[0] == [ORIGINS["c"]]
    await lab.origins["c"].stop()
    # down overall (2 of 3 vantages) and at ap itself, whose clients it served
    await lab.view.wait_for(
        lambda: not lab.view.is_up("c") and not lab.view.status("c").reports["ap"].up, 5)
    # its last smoothed RTT from ap is still the fastest on record, but it
    # is down: the view gives no RTT for it and steering passes it over
    c_ms = lab.view.status("c").reports["ap"].srtt_ms
    b_ms = lab.view.srtt_ms("b", "ap")
    assert c_ms is not None and b_ms is not None and c_ms < b_ms
    assert lab.view.srtt_ms("c", "ap") is None
    for _ in range(20):
        assert await lab.ask(ap) == ([ORIGINS["b"]], 24)
    await lab.origins["c"].start()
    await lab.view.wait_for(lambda: lab.view.is_up("c"), 5)
    await lab.until(ap, ORIGINS["c"], 2)  # back, and 50 ms faster: past both margins


async def test_what_a_nameserver_steers_by_is_never_a_check_interval_behind(
        redis_server, fake_origin: Callable[..., Awaitable[FakeOrigin]], tmp_path: Path):
    """Issue 14 item 8, with its numbers: a answered at about 105 ms; b goes
    to 80 ms, about 24 % faster than a, past the 20 % and 5 ms switch
    margins (threshold about 84 ms). The nameserver's answer moves
    within one check interval (plus slack) of the probe's smoothed RTT
    crossing the threshold, long before the 30 s resync."""
    interval = 0.2
    origins = {o: await fake_origin() for o in ("a", "b")}
    # b starts at 140 ms: past both margins behind a, so a warm-up flip to b
    # (a first RTT of a inflated by load) flips back before the change
    proxies = {"a": DelayProxy("127.0.0.1", origins["a"].port, 105),
               "b": DelayProxy("127.0.0.1", origins["b"].port, 140)}
    for proxy in proxies.values():
        await proxy.start()

    def text(ports: dict[str, int]) -> str:
        rows = "".join(
            f"  {o}: {{ipv4: [{ORIGINS[o]}], check: {{type: http, target: 127.0.0.1, "
            f"port: {ports[o]}, interval: {interval}, timeout: {interval}, fall: 2, "
            "rise: 2}}\n"
            for o in ("a", "b"))
        return ("vantages:\n  eu: {location: {country: GB}}\n"
                "health: {stale_after: 2.0, heartbeat_interval: 0.2, resync_interval: 30}\n"
                f"origins:\n{rows}pools:\n"
                "  fast: {policy: latency, origins: [a, b], switch_margin: 20, "
                "switch_margin_ms: 5}\n" + BASE_ZONE.format(minimum=30)
                + "      www: {gslb: fast}\n")

    cfg = load([write_config(tmp_path, text({o: p.port for o, p in proxies.items()}), "eu.yaml")])
    worker = ProbeService(cfg, "eu", redis_server.url)
    await worker.start()
    cfg = load([write_config(tmp_path, text({"a": 9, "b": 9}), "ns.yaml")])
    service = Service(cfg, [("127.0.0.1", 0)], FAKE_MMDB, redis_url=redis_server.url)
    await service.start()
    lab = Lab(origins, {}, service)
    state = worker.prober.state
    try:
        await lab.view.wait_for(lambda: all(
            lab.view.srtt_ms(o, "eu") is not None for o in "ab")
            and lab.view.srtt_ms("b", "eu") > 130, 10)
        await lab.until(NEAR["eu"], ORIGINS["a"], 5)
        proxies["b"].delay_ms = 80
        changed = time.monotonic()
        crossed = None
        while (await lab.ask(NEAR["eu"]))[0] != [ORIGINS["b"]]:
            a_ms, b_ms = state.srtt_ms("a"), state.srtt_ms("b")
            assert a_ms is not None and b_ms is not None
            if crossed is None and b_ms < a_ms * 0.8 and a_ms - b_ms > 5:
                crossed = time.monotonic()  # the probe's own value is past both margins
            assert time.monotonic() - changed < 20, f"still a: probe a {a_ms}, b {b_ms}"
            await asyncio.sleep(0.01)
        switched = time.monotonic()
        # crossed since the last poll (the answer followed within a poll): no lag to see
        lag = 0.0 if crossed is None else switched - crossed
        assert lag <= interval + 0.5, f"answer moved {lag:.2f} s after the probe's RTT crossed"
        assert switched - changed < 10  # the smoothing's own time, not the 30 s resync
    finally:
        await service.stop()
        await worker.stop()
        for proxy in proxies.values():
            await proxy.stop()
