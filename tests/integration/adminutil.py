"""Helpers for the admin tests: a config with an up, a down and an
unchecked origin, a started Service with its admin server on port 0, and
an HTTP client for it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.message
from prometheus_client.parser import text_string_to_metric_families

from gslb.config.load import load
from gslb.serve.service import Service
from tests.integration.dnsutil import BASE_ZONE, addresses, write_config

TOKEN = "s3cret-token"


def config_text(up_port: int, down_port: int, www: str = "both") -> str:
    """Origins ``a`` (checked, on ``up_port``), ``b`` (checked, on
    ``down_port``: refused, so down after one failure) and ``c`` (no
    check); ``www`` answers from pool ``www`` (``all`` of a, b, c); pool
    ``tree`` is a tree of pools (failover between pools ``fo`` and
    ``only-c``)."""
    check = ("{type: http, target: 127.0.0.1, port: %d, interval: 0.2, timeout: 0.2, "
             "fall: 1, rise: 1}")
    return f"""
origins:
  a: {{ipv4: [192.0.2.1], check: {check % up_port}}}
  b: {{ipv4: [192.0.2.2], check: {check % down_port}}}
  c: {{ipv4: [192.0.2.3]}}
pools:
  both: {{policy: all, origins: [a, b, c]}}
  only-c: {{policy: all, origins: [c]}}
  fo: {{policy: failover, tiers: [[a], [c]], fallback: none}}
  tree: {{policy: failover, tiers: [fo, only-c]}}
""" + BASE_ZONE.format(minimum=30) + f"""
      www: {{gslb: {www}}}
      db: {{gslb: fo}}
      tree: {{gslb: tree}}
"""


async def start_service(tmp_path: Path, text: str, *, token: str | None = TOKEN,
                        redis_url: str | None = None, name: str = "zone.yaml",
                        **kw: Any) -> Service:
    """A started Service (DNS and admin on 127.0.0.1 port 0); stop it."""
    path = write_config(tmp_path, text, name)
    service = Service(load([path]), [("127.0.0.1", 0)], rng=random.Random(1),
                      redis_url=redis_url, admin=("127.0.0.1", 0), admin_token=token, **kw)
    await service.start()
    return service


def admin_url(service: Service) -> str:
    host, port = service.admin_addresses[0]
    return f"http://{host}:{port}"


async def ask(service: Service, qname: str = "www.gslb.example.test.",
              rdtype: str = "A") -> list[str]:
    """The sorted addresses ``service`` answers for ``qname``."""
    host, port = service.addresses[0]
    msg = await dns.asyncquery.udp(dns.message.make_query(qname, rdtype), host, port=port,
                                   timeout=2)
    return sorted(addresses(msg))


async def call(service: Service, method: str, path: str, *, token: str | None = None,
               json: Any = None) -> tuple[int, Any]:
    """``(status, decoded JSON body or text)`` of one admin request."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
            session.request(method, admin_url(service) + path, headers=headers,
                            json=json) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def cache_lookups(service: Service) -> tuple[float, float]:
    """``gslb_dns_answer_cache_lookups_total`` from ``/metrics``: ``(hits, misses)``."""
    status, text = await call(service, "GET", "/metrics")
    assert status == 200
    got = samples(text)
    name = "gslb_dns_answer_cache_lookups_total"
    return got[(name, (("result", "hit"),))], got[(name, (("result", "miss"),))]
