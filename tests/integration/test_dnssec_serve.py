"""A signed zone served over real sockets: UDP and TCP answers to DO=1
queries validate (dnspython's validator) through a health change; with
``--workers 2`` every worker signs with the same key, and ``/metrics``
counts the RRSIGs of every worker and shows when they expire; a reload
with a private key made readable by others keeps the old config."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import dns.asyncquery
import dns.dnssec
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import pytest

from gslb.dns.dnssec import SigningKey, write_key
from gslb.serve.service import Service
from tests.integration.adminutil import call, config_text, samples, start_service

ZONE = "gslb.example.test."
QUERIES = 40


def signed_config(tmp_path: Path, up_port: int, down_port: int) -> tuple[str, SigningKey]:
    """``config_text`` with the zone signed by a new key in ``tmp_path``."""
    key = SigningKey.generate(ZONE)
    base = write_key(key, tmp_path)
    text = config_text(up_port, down_port).replace(
        "    ttl: 300\n", f"    ttl: 300\n    dnssec: {{keys: [{base.name}]}}\n", 1)
    assert "dnssec" in text
    return text, key


async def query(service: Service, qname: str, rdtype: str = "A",
                tcp: bool = False) -> dns.message.Message:
    host, port = service.addresses[0]
    q = dns.message.make_query(qname, rdtype, want_dnssec=True)
    if tcp:
        return await dns.asyncquery.tcp(q, host, port=port, timeout=2)
    return await dns.asyncquery.udp(q, host, port=port, timeout=2)


def check_signed(m: dns.message.Message, key: SigningKey) -> None:
    """Every RRset of the answer and authority sections validates."""
    keyset = dns.rrset.from_rdata(ZONE, 3600, dns.rdata.from_wire(
        dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey, 0, len(key.dnskey)))
    keys = {dns.name.from_text(ZONE): keyset}
    assert m.answer or m.authority, m
    for section in (m.answer, m.authority):
        for rrset in [r for r in section if r.rdtype != dns.rdatatype.RRSIG]:
            sig = [s for s in section if s.rdtype == dns.rdatatype.RRSIG
                   and s.name == rrset.name and s.covers == rrset.rdtype]
            assert sig, f"no RRSIG over {rrset}"
            dns.dnssec.validate(rrset, sig[0], keys)


@pytest.fixture
async def signed(tmp_path, fake_origin, refused_port, request):
    origin = await fake_origin()
    text, key = signed_config(tmp_path, origin.port, refused_port)
    service = await start_service(tmp_path, text, workers=request.param)
    try:
        yield service, origin, key
    finally:
        await service.stop()


@pytest.mark.parametrize("signed", [1, 2], indirect=True, ids=["one-process", "workers"])
async def test_signed_answers_validate_from_every_worker(signed, tmp_path):
    service, origin, key = signed

    async def www() -> set[tuple[str, ...]]:
        got = await asyncio.gather(*(query(service, "www." + ZONE) for _ in range(QUERIES)))
        for m in got:
            check_signed(m, key)
        return {tuple(sorted(rd.to_text() for rd in m.answer[0])) for m in got}

    async def settled(expected: set[tuple[str, ...]]) -> None:
        while await www() != expected:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(settled({("192.0.2.1", "192.0.2.3")}), 5)  # b refused: down
    for qname, rdtype in [("nope." + ZONE, "A"), ("www." + ZONE, "TXT"), (ZONE, "DNSKEY")]:
        for tcp in (False, True):
            m = await query(service, qname, rdtype, tcp)
            check_signed(m, key)
    origin.status = 500  # a goes down: the new answer is signed too
    await asyncio.wait_for(settled({("192.0.2.3",)}), 5)

    async def metrics() -> dict:
        while True:
            status, text = await call(service, "GET", "/metrics")
            assert status == 200
            got = samples(text)
            if got.get(("gslb_dnssec_signatures_total", (("zone", ZONE),)), 0) >= 2:
                return got
            await asyncio.sleep(0.1)

    got = await asyncio.wait_for(metrics(), 5)
    expiry = got[("gslb_dnssec_signature_expiration_timestamp_seconds", (("zone", ZONE),))]
    assert time.time() + 13 * 86400 < expiry <= time.time() + 14 * 86400 + 1
    info = ("gslb_dnssec_key_info", (("algorithm", "13"), ("key_tag", str(key.tag)),
                                     ("state", "active"), ("zone", ZONE)))
    assert got[info] == 1


@pytest.mark.parametrize("signed", [1], indirect=True)
async def test_reload_with_an_open_private_key_keeps_the_old_config(signed, tmp_path):
    service, _origin, key = signed
    private = tmp_path / f"{key.basename}.private"
    os.chmod(private, 0o644)
    result = await service.reloader.reload()
    assert not result.ok and "chmod 600" in " ".join(result.messages)
    check_signed(await query(service, "www." + ZONE), key)
