"""``gslb check`` refuses an RRset no DNS message can carry (65,535 octets,
RFC 1035 section 4.2.2, with room kept for the OPT record and its options);
one at the bound is accepted and answered whole over TCP, with every EDNS
option we send."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from gslb.config.load import load
from gslb.config.validate.zones import MAX_MESSAGE, OPT_RESERVE
from gslb.errors import ConfigError
from tests.integration.dnsutil import start

OWNER = "big.example.test."
HEAD = """zones:
  example.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}
      ns1: {A: 127.0.0.1}
      big:
        TXT:
"""
TXT_LINE = 7  # the line of "TXT:"


def texts(extra: int) -> list[str]:
    """TXT strings whose response is ``MAX_MESSAGE + extra`` octets: header
    12, question (owner + 4), per record 2 (pointer) + 10 + RDATA (one
    string: its length + 1), and ``OPT_RESERVE``."""
    left = MAX_MESSAGE - (12 + len(OWNER) + 1 + 4) - OPT_RESERVE + extra
    full = 12 + 256  # a record of one 255-octet string
    count, rest = divmod(left, full)
    out = [f"{i:04d}" + "x" * 251 for i in range(count)]
    if rest:
        assert rest > 13
        out.append("r" * (rest - 13))
    return out


def write(tmp_path: Path, strings: list[str]) -> Path:
    path = tmp_path / "zone.yaml"
    path.write_text(HEAD + "".join(f"          - '\"{s}\"'\n" for s in strings))
    return path


def test_one_octet_over_is_refused_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, texts(1))
    with pytest.raises(ConfigError) as err:
        load([path])
    reasons = str(err.value).splitlines()
    assert len(reasons) == 1
    assert reasons[0].startswith(f"{path}:{TXT_LINE}: zones.example.test.records.big.TXT: "
                                 f"this TXT RRset ({len(texts(1))} records) makes a response "
                                 f"of {MAX_MESSAGE + 1} octets")


async def test_at_the_bound_is_answered_whole_over_tcp(tmp_path: Path) -> None:
    strings = texts(0)
    path = write(tmp_path, strings)
    load([path])
    running = await start(path, server_id="n" * 255)  # the longest NSID we may send
    try:
        options = [dns.edns.ECSOption("2001:db8:1:2:3:4:5:6", 128),
                   dns.edns.GenericOption(dns.edns.NSID, b"")]
        for qname, edns in ((OWNER, False), ("BiG.example.test.", True)):
            q = dns.message.make_query(qname, "TXT", use_edns=0 if edns else False,
                                       options=options if edns else None)
            msg = await asyncio.wait_for(
                dns.asyncquery.tcp(q, running.host, port=running.port, timeout=5.0), 10.0)
            # sent whole: wire.encode sets TC past 65,535 octets over TCP
            assert msg.rcode() == dns.rcode.NOERROR and not msg.flags & dns.flags.TC
            assert sorted(rr.strings[0].decode() for rr in msg.answer[0]) == sorted(strings)
            q = dns.message.make_query(qname, "TXT", use_edns=0, payload=1232)
            msg = await asyncio.wait_for(
                dns.asyncquery.udp(q, running.host, port=running.port, timeout=5.0), 10.0)
            assert msg.flags & dns.flags.TC  # over UDP: truncated, ask again over TCP
    finally:
        await running.service.stop()
