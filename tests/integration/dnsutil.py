"""Helpers for tests that run a real gslb nameserver and query it with
dnspython over real sockets."""

from __future__ import annotations

import asyncio
import random
import textwrap
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rdatatype

from gslb.config.load import load
from gslb.serve.service import Service

TIMEOUT_S = 2.0

BASE_ZONE = """
zones:
  gslb.example.test:
    ttl: 300
    records:
      "@":
        SOA: ns1 hostmaster.example.test. 1 3600 600 86400 {minimum}
        NS: [ns1, ns2]
      ns1: {{A: 127.0.0.1}}
      ns2: {{A: 127.0.0.2}}
"""


def write_config(tmp_path: Path, text: str, name: str = "zone.yaml") -> Path:
    """Write a YAML config (dedented) into ``tmp_path`` and return its path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


class Running:
    """A started ``Service`` on 127.0.0.1 (port picked by the OS)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.host, self.port = service.addresses[0]

    async def query(
        self,
        qname: str,
        rdtype: str | int = "A",
        *,
        tcp: bool = False,
        ecs: tuple[str, int] | None = None,
        edns: int | bool = 0,
        payload: int = 1232,
        source: str | None = None,
    ) -> dns.message.Message:
        """Ask ``qname``/``rdtype`` over UDP (default) or TCP; ``ecs`` is
        ``(address, source prefix-length)``; ``edns=False`` sends no OPT."""
        options = [dns.edns.ECSOption(ecs[0], ecs[1])] if ecs else []
        q = dns.message.make_query(
            qname, rdtype, use_edns=edns if edns is not False else False, payload=payload,
            options=options)
        if tcp:
            return await dns.asyncquery.tcp(q, self.host, port=self.port, timeout=TIMEOUT_S,
                                            source=source)
        return await dns.asyncquery.udp(q, self.host, port=self.port, timeout=TIMEOUT_S,
                                        source=source, ignore_trailing=False)

    async def raw_udp(self, data: bytes, timeout_s: float = 0.5) -> bytes | None:
        """Send ``data`` as one datagram; the reply's bytes, or None if no
        reply came within ``timeout_s`` seconds."""
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class P(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, addr: object) -> None:
                if not got.done():
                    got.set_result(reply)

        transport, _ = await loop.create_datagram_endpoint(
            P, remote_addr=(self.host, self.port))
        try:
            transport.sendto(data)
            return await asyncio.wait_for(got, timeout_s)
        except TimeoutError:
            return None
        finally:
            transport.close()


async def start(config_path: Path, geoip: Path | None = None, listen=None,
                seed: int = 1, server_id: str | None = None,
                asn_db: Path | None = None) -> Running:
    """Load ``config_path`` and start a Service on 127.0.0.1 port 0."""
    service = Service(load([config_path]), listen or [("127.0.0.1", 0)], geoip,
                      rng=random.Random(seed), server_id=server_id, asn_db=asn_db)
    await service.start()
    return Running(service)


def addresses(msg: dns.message.Message) -> list[str]:
    """Every A/AAAA address in the answer section, in order."""
    return [rr.address for rrset in msg.answer for rr in rrset
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)]
