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

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.ttl import lab
from tests.ttl.conftest import Authoritatives, SignedParent, StartResolver, addresses

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
