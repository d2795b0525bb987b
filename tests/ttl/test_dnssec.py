"""DNSSEC validated end to end, the way a resolver sees it (issue 17, item 4).

The signed lab (``tests/ttl/lab.py``): NSD on ``lab.SIGNED_PARENT`` serves the
root and ``example.test.`` signed by ``ldns-signzone``, the parent holding
the DS of gslb's key; a validating unbound trusts the root's key only
(RFC 4033 section 5, RFC 4035 section 5). An answer it proves gets AD=1
(RFC 4035 section 3.2.3); a broken chain gets SERVFAIL (RFC 4035 section
5.5); an insecure delegation (no DS) gets AD=0 and its data
(RFC 4035 section 5.2).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.RRSIG
import pytest

from tests.conftest import FakeOrigin
from tests.ttl import lab, signing
from tests.ttl.conftest import (
    READY_TIMEOUT_S,
    Authoritatives,
    Resolver,
    SignedParent,
    StartResolver,
    StartSigned,
    addresses,
    signed_yaml,
)

pytestmark = pytest.mark.ttl


def _ad(reply: dns.message.Message) -> bool:
    return bool(reply.flags & dns.flags.AD)


def _texts(reply: dns.message.Message, rdtype: str) -> list[str]:
    code = dns.rdatatype.from_text(rdtype)
    return sorted(rr.to_text() for rrset in reply.answer if rrset.rdtype == code
                  for rr in rrset)


async def test_signed_parent_insecure_delegation(
        insecure_parent: SignedParent, authoritatives: Authoritatives,
        signed_resolver: StartResolver) -> None:
    """The parent signed, no DS for gslb, gslb unsigned: the parent's own
    data validates (AD=1), the parent proves the DS absent at the cut
    (its NSEC, AD=1), and gslb's names answer with their data, NOERROR and
    AD=0 (an insecure delegation, RFC 4035 section 5.2), never SERVFAIL."""
    unbound = await signed_resolver()
    parent_txt = await unbound.ask("www.example.test.", "TXT", dnssec=True)
    assert parent_txt.rcode() == dns.rcode.NOERROR and _ad(parent_txt)
    assert _texts(parent_txt, "TXT") == ['"signed parent"']
    no_ds = await unbound.ask(lab.ZONE, "DS", dnssec=True)
    assert no_ds.rcode() == dns.rcode.NOERROR and _ad(no_ds) and no_ds.answer == []
    for subnet, want in (("81.2.69.0/24", lab.LONDON), ("89.160.20.0/24", lab.STOCKHOLM)):
        reply = await unbound.ask("www.gslb.example.test.", ecs=subnet, dnssec=True)
        assert reply.rcode() == dns.rcode.NOERROR and not _ad(reply)
        assert addresses(reply) == [want]
    nx = await unbound.ask("nx.gslb.example.test.", dnssec=True)
    assert nx.rcode() == dns.rcode.NXDOMAIN and not _ad(nx)


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of answer asked through the validating resolver: ``qname``,
    ``qtype``, ``ecs`` (client subnet or None), the ``rcode`` and the
    answer data (sorted presentation texts of the ``qtype`` RRs, or None:
    not compared) expected, and ``secure`` (AD=1 expected, else AD=0)."""

    qname: str
    qtype: str
    rcode: int = dns.rcode.NOERROR
    data: tuple[str, ...] | None = ()
    ecs: str | None = None
    secure: bool = True


GB, SE, US = "81.2.69.0/24", "89.160.20.0/24", "8.8.8.0/24"
EU = (lab.LONDON, lab.STOCKHOLM)
"""The ``tree`` pool's answers for Europe (weighted, either)."""

KINDS = {
    "static-a": Kind("static.gslb.example.test.", "A", data=(lab.STATIC_A,)),
    "static-txt": Kind("static.gslb.example.test.", "TXT", data=('"signed static"',)),
    "static-mx": Kind("static.gslb.example.test.", "MX", data=("10 mail.gslb.example.test.",)),
    "soa": Kind(lab.ZONE, "SOA", data=None),
    "ns": Kind(lab.ZONE, "NS", data=("ns1.gslb.example.test.", "ns2.gslb.example.test.")),
    "dnskey": Kind(lab.ZONE, "DNSKEY", data=None),
    "geo-gb": Kind("www.gslb.example.test.", "A", ecs=GB, data=(lab.LONDON,)),
    "geo-se": Kind("www.gslb.example.test.", "A", ecs=SE, data=(lab.STOCKHOLM,)),
    "weighted": Kind("api.gslb.example.test.", "A", ecs=GB, data=(lab.VIRGINIA,)),
    "failover": Kind("fo.gslb.example.test.", "A", ecs=GB, data=(lab.PRIMARY,)),
    "tree-us": Kind("tree.gslb.example.test.", "A", ecs=US, data=(lab.VIRGINIA,)),
    "tree-gb": Kind("tree.gslb.example.test.", "A", ecs=GB, data=EU),
    "cname-chain": Kind("alias.gslb.example.test.", "A", ecs=SE, data=(lab.STOCKHOLM,)),
    # Compact Denial (RFC 9824): a resolver without the CO flag sees NODATA
    "nxdomain": Kind("nx.gslb.example.test.", "A"),
    "nodata-static": Kind("static.gslb.example.test.", "AAAA"),
    "nodata-gslb": Kind("www.gslb.example.test.", "AAAA", ecs=GB),
    "wildcard": Kind("host.wild.gslb.example.test.", "A", data=(lab.WILD_A,)),
    "ds-secure-child": Kind(lab.SECURE_CHILD, "DS", data=None),
    "ds-insecure-child": Kind(lab.INSECURE_CHILD, "DS"),
    "secure-child": Kind("host." + lab.SECURE_CHILD, "A", data=(lab.CHILD_A,)),
    "insecure-child": Kind("host." + lab.INSECURE_CHILD, "A", data=(lab.CHILD_A,),
                           secure=False),
}
"""Every kind of answer of issue 17 item 2, by test id."""


def check(kind: Kind, reply: dns.message.Message) -> None:
    """Assert ``reply`` (through the validating resolver) is what ``kind``
    expects: rcode, AD, answer data, and for secure gslb data an RRSIG by
    our zone over it."""
    what = f"{kind.qname} {kind.qtype} ecs={kind.ecs}: {reply}"
    assert reply.rcode() == kind.rcode, what
    assert _ad(reply) == kind.secure, what
    if kind.data is None:
        assert _texts(reply, kind.qtype), what
    elif kind.data == EU:
        assert [t in EU for t in _texts(reply, kind.qtype)] == [True], what
    else:
        assert _texts(reply, kind.qtype) == sorted(kind.data), what
    if kind.secure and kind.data != ():
        signers = {rr.signer.to_text() for rrset in reply.answer
                   if rrset.rdtype == dns.rdatatype.RRSIG for rr in rrset}
        want = lab.SECURE_CHILD if kind.qname.endswith(lab.SECURE_CHILD) else lab.ZONE
        if kind.qtype == "DS":
            want = lab.ZONE
        assert want in signers, what


async def ask_all(unbound: Resolver, kinds: Iterable[str] = KINDS) -> None:
    """Ask every kind in ``kinds`` through ``unbound`` (DO=1) and check it."""
    for name in kinds:
        kind = KINDS[name]
        check(kind, await unbound.ask(kind.qname, kind.qtype, ecs=kind.ecs, dnssec=True))


@pytest.mark.parametrize("answer_cache", [None, 0], ids=["cache", "no-cache"])
@pytest.mark.parametrize("name", list(KINDS))
async def test_every_answer_kind_validates(
        name: str, answer_cache: int | None, signed_gslb: StartSigned,
        signed_resolver: StartResolver, origin: FakeOrigin) -> None:
    """Through a validating unbound with the lab's trust anchor only, each
    kind of answer comes back with the rcode and data expected and AD=1
    (RFC 4035 section 3.2.3), the insecure child AD=0 without SERVFAIL
    (its DS absence proven by our NSEC at the cut, RFC 4035 section 5.2);
    asked 3 times (the later ones from unbound's cache), and the nested
    pool for Europe 20 times over fresh subnets (every answer signed
    however steering chooses); with gslb's answer cache on and off."""
    await signed_gslb(answer_cache=answer_cache)
    unbound = await signed_resolver()
    for _ in range(3):
        await ask_all(unbound, [name])
    if name == "tree-gb":
        for n in range(20):
            kind = KINDS[name]
            reply = await unbound.ask(kind.qname, ecs=f"81.2.69.{n}/32", dnssec=True)
            check(kind, reply)


async def test_nxdomain_is_compact_denial(
        signed_gslb: StartSigned, signed_resolver: StartResolver) -> None:
    """The NXDOMAIN of ``nx.gslb.example.test.`` reaches the client as
    NOERROR, no answer, AD=1 (RFC 9824 section 3: the resolver sends no CO
    flag), the proof an NSEC at the qname itself, validated, and the
    negative TTL our SOA's minimum (RFC 2308 section 5)."""
    await signed_gslb()
    unbound = await signed_resolver()
    reply = await unbound.ask("nx.gslb.example.test.", "A", dnssec=True)
    assert reply.rcode() == dns.rcode.NOERROR and _ad(reply) and reply.answer == []
    nsec = [rrset for rrset in reply.authority if rrset.rdtype == dns.rdatatype.NSEC]
    assert [rrset.name.to_text() for rrset in nsec] == ["nx.gslb.example.test."]
    soa = [rrset for rrset in reply.authority if rrset.rdtype == dns.rdatatype.SOA]
    assert [rrset.ttl for rrset in soa] == [lab.NEGATIVE_TTL]


async def test_wrong_key_is_bogus(
        signed_gslb: StartSigned, signed_resolver: StartResolver) -> None:
    """gslb signing with a key whose DS the parent does not hold: the chain
    of trust breaks at our DNSKEY (RFC 4035 section 5.2), unbound answers
    SERVFAIL for every name of ours, secure answer or negative, while the
    parent's own data still validates."""
    await signed_gslb(keys=[("wrong", "active")])
    unbound = await signed_resolver()
    for name in ("static-a", "geo-gb", "nxdomain", "nodata-gslb", "dnskey"):
        kind = KINDS[name]
        reply = await unbound.ask(kind.qname, kind.qtype, ecs=kind.ecs, dnssec=True)
        assert reply.rcode() == dns.rcode.SERVFAIL, (name, reply)
    parent_txt = await unbound.ask("www.example.test.", "TXT", dnssec=True)
    assert parent_txt.rcode() == dns.rcode.NOERROR and _ad(parent_txt)


def test_ds_of_gslb_and_ldns_agree(gslb_keys: SignedParent, tmp_path: Path) -> None:
    """``gslb dnssec ds`` prints, for a key made by ``gslb dnssec keygen``
    and one made by ``ldns-keygen``, the same SHA-256 DS as
    ``ldns-key2ds`` (RFC 4509), one line per key of the zone."""
    config = tmp_path / "gslb.yaml"
    config.write_text(signed_yaml(gslb_keys, [("gslb", "active"), ("ldns", "published")]))
    want = [signing.ldns_ds(gslb_keys.keys[name]) for name in ("gslb", "ldns")]
    got = signing.gslb_ds(lab.ZONE, config)
    assert sorted(text.upper() for text in got) == sorted(text.upper() for text in want)


async def test_expired_signatures_are_bogus(
        signed_parent: SignedParent, signed_resolver: StartResolver, tmp_path: Path) -> None:
    """gslb (``gslb serve``, both lab addresses) run with libfaketime
    preloaded (``FAKETIME=-30d``, what ``faketime -f -30d`` sets; preloaded
    directly so that the process stopped is gslb itself): its signatures,
    made 30 days ago with the 14-day default validity, expired 16 days ago;
    unbound, on the real clock, finds them
    bogus (RFC 4035 section 5.3.1) and answers SERVFAIL, positive and
    negative answers alike. The monotonic clock is not faked, so the
    server's timers run as usual."""
    libfaketime = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), None)
    if libfaketime is None:
        pytest.skip("libfaketime not installed (apt-get install -y faketime)")
    config = tmp_path / "gslb.yaml"
    config.write_text(signed_yaml(signed_parent, [("gslb", "active")]))
    listen = [arg for address in lab.GSLB_NS for arg in ("--listen", f"{address}:53")]
    log = tmp_path / "gslb.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gslb", "serve", "--config", str(config), *listen,
            "--geoip", str(lab.MMDB), "--no-admin", stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "LD_PRELOAD": str(libfaketime), "FAKETIME": "-30d",
                 "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    try:
        for address in lab.GSLB_NS:
            sig = await _first_rrsig(proc, address, log)
            assert sig.expiration < time.time() - 7 * 86400, sig  # its clock is faked
        unbound = await signed_resolver()
        for name in ("static-a", "geo-gb", "nxdomain", "nodata-gslb"):
            kind = KINDS[name]
            reply = await unbound.ask(kind.qname, kind.qtype, ecs=kind.ecs, dnssec=True)
            assert reply.rcode() == dns.rcode.SERVFAIL, (name, reply)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _first_rrsig(proc: asyncio.subprocess.Process, address: str,
                       log: Path) -> dns.rdtypes.ANY.RRSIG.RRSIG:
    """The RRSIG over the SOA that ``address`` serves, once ``gslb serve``
    answers there (fails with its log if it exits or stays silent for
    ``READY_TIMEOUT_S`` seconds)."""
    query = dns.message.make_query(lab.ZONE, "SOA", want_dnssec=True)
    try:
        async with asyncio.timeout(READY_TIMEOUT_S * 2):
            while True:
                if proc.returncode is not None:
                    pytest.fail(f"gslb serve exited {proc.returncode}:\n{log.read_text()}")
                try:
                    reply = await dns.asyncquery.udp(query, address, port=53, timeout=0.2)
                except (OSError, dns.exception.Timeout):
                    await asyncio.sleep(0.05)  # startup poll of an external daemon
                    continue
                sigs = [rr for rrset in reply.answer if rrset.rdtype == dns.rdatatype.RRSIG
                        for rr in rrset]
                assert sigs, reply
                return sigs[0]
    except TimeoutError:
        pytest.fail(f"gslb serve did not answer on {address}:53:\n{log.read_text()}")
