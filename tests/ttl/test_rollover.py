"""A key rollover of gslb's zone by pre-publication (RFC 6781 section
4.1.1.1; RFC 7583 section 3.3 for the timings), through a validating
resolver that keeps its cache all along.

Phases, gslb reloaded (what SIGHUP does) and the parent re-signed between
them; ``gslb dnssec ds`` gives the DS to publish at each:

(a) key 1 active; the parent holds DS 1.
(b) key 2 published (in DNSKEY, not signing); the parent holds DS 1 + 2.
(c) key 2 active, key 1 published (still in DNSKEY).
(d) key 1 removed; the parent holds DS 2.

Each phase lasts until every cached DNSKEY and DS has expired: the lab's
unbound caps TTLs at ``MAX_TTL_S`` (``cache-max-ttl``) so that this takes
seconds, not the hours of real TTLs. Every answer kind of
``test_dnssec.KINDS`` validates (AD=1) right after each switch, from the
warm cache and from our servers, and again once the phase has aged.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import dns.dnssec
import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from tests.conftest import FakeOrigin
from tests.ttl import lab, signing
from tests.ttl.conftest import SignedParent, StartResolver, StartSigned, signed_yaml
from tests.ttl.test_dnssec import GB, ask_all

pytestmark = pytest.mark.ttl
log = logging.getLogger("tests.ttl")

MAX_TTL_S = 4
"""unbound's cache-max-ttl (seconds) in this test: the longest any DNSKEY,
DS or answer stays cached, so a phase's wait is MAX_TTL_S + 1 s (unbound's
clock has whole seconds)."""

KEY1, KEY2 = "gslb", "ldns"
"""Key 1 made by ``gslb dnssec keygen``, key 2 by ``ldns-keygen``."""

PHASES = {
    "a": [(KEY1, "active")],
    "b": [(KEY1, "active"), (KEY2, "published")],
    "c": [(KEY2, "active"), (KEY1, "published")],
    "d": [(KEY2, "active")],
}
"""The zone's keys (session key name, state) per phase."""


def _tags(signed_parent: SignedParent, names: list[str]) -> list[int]:
    """Key tags of the session keys ``names``, from their BIND basenames
    (``K<zone>.+<alg>+<tag>``)."""
    return sorted(int(signed_parent.keys[name].name.rsplit("+", 1)[1]) for name in names)


async def test_rollover_keeps_every_answer_validating(
        signed_parent: SignedParent, signed_gslb: StartSigned,
        signed_resolver: StartResolver, origin: FakeOrigin, tmp_path: Path) -> None:
    """Through phases (a)–(d), every kind of answer comes back AD=1 with its
    data, just after each switch and a cache lifetime later; at the end of
    each phase the DNSKEY RRset unbound serves holds exactly that phase's
    keys and the DS RRset the DS ``gslb dnssec ds`` printed for it."""
    unbound = await signed_resolver(cache_max_ttl=MAX_TTL_S)
    servers = await signed_gslb(keys=PHASES["a"])
    loop = asyncio.get_running_loop()
    for phase, keys in PHASES.items():
        started = loop.time()
        servers.config_path.write_text(signed_yaml(signed_parent, keys))
        if phase != "a":
            await servers.reload()
        ds = await asyncio.to_thread(signing.gslb_ds, lab.ZONE, servers.config_path)
        if phase == "c":  # the DS RRset stays DS 1 + 2 while key 1 is in DNSKEY
            assert sorted(ds) == sorted(signed_parent.gslb_ds)
        await signed_parent.publish(ds)
        await ask_all(unbound)  # just after the switch: caches still hold the last phase
        await asyncio.sleep(MAX_TTL_S + 1)  # TTL ageing is the point: the phase's wait
        await ask_all(unbound)  # every DNSKEY and DS fetched again
        dnskey = await unbound.ask(lab.ZONE, "DNSKEY", dnssec=True)
        served = sorted(dns.dnssec.key_id(rr) for rrset in dnskey.answer
                        if rrset.rdtype == dns.rdatatype.DNSKEY for rr in rrset)
        assert served == _tags(signed_parent, [name for name, _ in keys]), phase
        ds_reply = await unbound.ask(lab.ZONE, "DS", dnssec=True)
        parent_ds = sorted(rr.key_tag for rrset in ds_reply.answer
                           if rrset.rdtype == dns.rdatatype.DS for rr in rrset)
        assert parent_ds == sorted(int(text.split()[0]) for text in ds), phase
        log.info("rollover phase %s: keys %s, DS %s, %.1f s", phase, served, parent_ds,
                 loop.time() - started)


async def test_switching_without_the_wait_is_bogus(
        signed_parent: SignedParent, signed_gslb: StartSigned,
        signed_resolver: StartResolver) -> None:
    """Why the procedure waits: a resolver that cached the DNSKEY RRset of
    phase (a) (key 1 only, 60 s) and then meets an answer signed by key 2,
    switched to at once with DS 1 + 2 published, cannot validate it:
    SERVFAIL ("signatures from unknown keys"), until its cached DNSKEY
    expires (RFC 7583 section 3.3.1: the new key must be in caches before
    it signs)."""
    unbound = await signed_resolver(cache_max_ttl=60)
    servers = await signed_gslb(keys=PHASES["a"])
    warm = await unbound.ask("static.gslb.example.test.", dnssec=True)  # caches DNSKEY {1}
    assert warm.flags & dns.flags.AD
    servers.config_path.write_text(signed_yaml(signed_parent, PHASES["c"]))
    await servers.reload()
    await signed_parent.publish(
        await asyncio.to_thread(signing.gslb_ds, lab.ZONE, servers.config_path))
    reply = await unbound.ask("www.gslb.example.test.", ecs=GB, dnssec=True)
    assert reply.rcode() == dns.rcode.SERVFAIL, reply
