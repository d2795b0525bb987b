"""Failover seen through DNS: real HTTP origins, the embedded prober, and
dnspython asking the real server. An origin whose check fails leaves the
answers within interval × fall + timeout (+ slack) and returns after rise."""

from __future__ import annotations

import asyncio
import logging
import time

import dns.rcode
import pytest

from tests.integration.dnsutil import BASE_ZONE, addresses

#: every test here on both UDP packet paths (compiled and pure Python)
pytestmark = pytest.mark.usefixtures("packet_path")

INTERVAL_S, TIMEOUT_S, FALL, RISE = 0.2, 0.2, 2, 2
#: Allowance on top of the detection bound: jitter of the first check is
#: below one interval, plus scheduling and our 20 ms DNS polling.
SLACK_S = 0.4


def config(port_a: int, port_b: int, fallback: str = "all") -> str:
    check = (f"{{type: http, target: 127.0.0.1, port: %d, interval: {INTERVAL_S}, "
             f"timeout: {TIMEOUT_S}, fall: {FALL}, rise: {RISE}}}")
    return f"""
origins:
  a: {{ipv4: [192.0.2.1], check: {check % port_a}}}
  b: {{ipv4: [192.0.2.2], check: {check % port_b}}}
pools:
  fo: {{policy: failover, tiers: [[a], [b]], fallback: {fallback}}}
""" + BASE_ZONE.format(minimum=30) + """
      db: {gslb: fo}
"""


async def wait_for_answer(server, qname: str, predicate, deadline_s: float) -> float:
    """Ask every 20 ms until ``predicate(message)`` holds; return the seconds
    it took. Fails the test after ``deadline_s``."""
    start = time.monotonic()
    while True:
        msg = await server.query(qname, "A")
        if predicate(msg):
            return time.monotonic() - start
        if time.monotonic() - start > deadline_s:
            pytest.fail(f"{qname}: condition not met within {deadline_s} s; last: {msg}")
        await asyncio.sleep(0.02)


async def test_dead_origin_leaves_answers_within_bound_and_returns_after_rise(
        dns_server, fake_origin, caplog):
    caplog.set_level(logging.INFO, logger="gslb")
    a, b = await fake_origin(), await fake_origin()
    server = await dns_server(config(a.port, b.port))
    assert addresses(await server.query("db.gslb.example.test.", "A")) == ["192.0.2.1"]

    bound = INTERVAL_S * FALL + TIMEOUT_S
    await a.stop()
    took = await wait_for_answer(server, "db.gslb.example.test.",
                                 lambda m: addresses(m) == ["192.0.2.2"], bound + SLACK_S + 2)
    assert took <= bound + SLACK_S, f"failover took {took:.2f} s, bound {bound} s"
    assert any("DOWN" in r.getMessage() and " a " in f" {r.getMessage()} " for r in caplog.records)

    await a.start()
    took = await wait_for_answer(server, "db.gslb.example.test.",
                                 lambda m: addresses(m) == ["192.0.2.1"], 5)
    # back only after `rise` good checks, so not before (rise - 1) intervals
    assert (RISE - 1) * INTERVAL_S - 0.05 <= took <= RISE * INTERVAL_S + TIMEOUT_S + SLACK_S


async def test_all_down_with_fallback_none_is_servfail(dns_server, fake_origin, caplog):
    a, b = await fake_origin(), await fake_origin()
    server = await dns_server(config(a.port, b.port, fallback="none"))
    await a.stop()
    await b.stop()
    await wait_for_answer(server, "db.gslb.example.test.",
                          lambda m: m.rcode() == dns.rcode.SERVFAIL, 5)
    assert any("fo" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records if r.name.startswith("gslb.steering"))


async def test_all_down_with_fallback_all_answers_as_if_all_were_up(dns_server, fake_origin,
                                                                    caplog):
    a, b = await fake_origin(), await fake_origin()
    a.status = b.status = 503  # up at the TCP level, failing the HTTP check
    server = await dns_server(config(a.port, b.port, fallback="all"))
    prober_health = server.service.quorum
    await wait_for_answer(
        server, "db.gslb.example.test.",
        lambda m: not prober_health.is_up("a") and not prober_health.is_up("b"), 5)
    # as if all were up: the failover policy picks its first tier
    assert addresses(await server.query("db.gslb.example.test.", "A")) == ["192.0.2.1"]
    assert any("fall" in r.getMessage().lower() and r.levelno == logging.WARNING
               for r in caplog.records if r.name.startswith("gslb.steering"))
