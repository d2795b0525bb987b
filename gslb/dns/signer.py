"""Online DNSSEC signing: RRSIGs made as answers are sent, and kept.

A GSLB answer is chosen per query, so its RRSIG cannot be made ahead of
time. :class:`ZoneSigner` signs an RRset the first time it is sent in a
**signing period** and keeps the RRSIGs by the RRset's content (owner,
type, TTL, RDATA): each distinct answer is signed once per period, not once
per query, whichever client or ECS subnet got it.

Periods are wall-clock windows of ``refresh`` seconds. Every RRSIG made in
period ``k`` has inception ``k * refresh - skew`` (in the past: a resolver
whose clock is behind still accepts it) and expiration
``k * refresh + validity``; a new period re-signs on first use, so a
signature sent always has at least ``validity - refresh`` seconds left.
The answer cache belongs to a period too (``epoch``), so a stored signed
response never outlives its signatures' period.

:func:`sign_answer` adds the RRSIGs to an :class:`~gslb.dns.wire.Answer`
(RFC 4035 section 3.1.1: each authoritative RRset followed by its
RRSIGs; a delegation's NS RRset and glue are not signed, section 2.2), and
the Compact Denial of Existence NSEC (RFC 9824) for a negative answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gslb.dns import dnssec
from gslb.dns.dnssec import QTYPE_CDNSKEY, QTYPE_CDS, QTYPE_DNSKEY, QTYPE_NSEC, QTYPE_RRSIG
from gslb.dns.wire import QTYPE_NS, Answer, Rdata

RR = tuple[str, int, int, Rdata]
"""``(owner, type code, TTL in seconds, RDATA)``, as ``wire.Answer`` holds them."""

#: Default validity of an RRSIG after its period starts, seconds (14 days:
#: Knot's ``rrsig-lifetime``).
DEFAULT_VALIDITY_S = 14 * 86400
#: Default seconds the inception is put back, for resolvers' clock skew
#: (1 hour: BIND's default ``sig-validity-interval`` jitter is of that kind).
DEFAULT_SKEW_S = 3600
#: Default signing period, seconds (1 day).
DEFAULT_REFRESH_S = 86400
#: Default bound on RRsets whose RRSIGs are kept.
DEFAULT_SIGNATURES = 65536

#: Types signed by every key of the zone, published ones too: the apex
#: key RRsets a resolver must be able to validate from any DS the parent
#: holds during a rollover (RFC 6781 section 4.1.2, RFC 7344 section 4.1).
KEY_TYPES = frozenset({QTYPE_DNSKEY, QTYPE_CDS, QTYPE_CDNSKEY})


class _Sig(Rdata):
    """DNSSEC RDATA whose presentation text is made only when asked for
    (the query log, ``str()``): signing on the answer path pays nothing
    for it."""

    __slots__ = ()

    def __str__(self) -> str:
        if not self.text:
            import dns.rdata
            import dns.rdataclass
            import dns.rdatatype
            wire = self.wire
            self.text = dns.rdata.from_wire(
                dns.rdataclass.IN, dns.rdatatype.RdataType.make(self.rtype), wire, 0,
                len(wire)).to_text()
        return self.text

    def __repr__(self) -> str:
        return f"Rdata({str(self)!r})"


def sig_rdata(rtype: int, wire: bytes) -> Rdata:
    """RDATA of type ``rtype`` from its octets, text made on demand."""
    rdata = _Sig.__new__(_Sig)
    rdata.rtype, rdata.wire, rdata.text = rtype, wire, ""
    return rdata


@dataclass(frozen=True, slots=True)
class SigningPolicy:
    """When RRSIGs are valid, seconds: ``validity`` after the start of the
    signing period, ``skew`` before it (inception), a new period every
    ``refresh``. Raises ``ValueError`` unless ``0 < refresh < validity``
    and ``skew >= 0``."""

    validity: int = DEFAULT_VALIDITY_S
    skew: int = DEFAULT_SKEW_S
    refresh: int = DEFAULT_REFRESH_S

    def __post_init__(self) -> None:
        if not 0 < self.refresh < self.validity or self.skew < 0:
            raise ValueError("signing needs 0 < refresh < validity and skew >= 0 (seconds)")


class SigningCounts:
    """What signers report, by zone name: ``made`` RRSIGs (a counter,
    bumped in place) and ``expiration``, when the RRSIGs made last expire
    (seconds since the epoch, a gauge): one object per process, shared by
    the signers of every config it loads (``gslb.stats.QueryStats``)."""

    __slots__ = ("expiration", "made")

    def __init__(self) -> None:
        self.made: dict[str, int] = {}
        self.expiration: dict[str, int] = {}


class ZoneSigner:
    """Signs the RRsets of one zone with its ``active`` keys (the DNSKEY,
    CDS and CDNSKEY RRsets with ``published`` keys too), RRSIG validity by
    ``policy``, the wall clock ``clock`` (seconds since the epoch). Keeps
    the RRSIGs of up to ``max_entries`` RRsets (the oldest dropped first).
    ``signatures`` counts RRSIGs made, ``hits`` RRsets whose RRSIGs were
    reused; ``counts`` (optional) hears of every RRSIG made. Not
    thread-safe: one event loop."""

    def __init__(self, zone: str, active: Sequence[dnssec.SigningKey],
                 published: Sequence[dnssec.SigningKey] = (),
                 policy: SigningPolicy | None = None,
                 clock: Callable[[], float] = time.time,
                 max_entries: int = DEFAULT_SIGNATURES,
                 counts: SigningCounts | None = None) -> None:
        if not active:
            raise ValueError(f"zone {zone}: no active key to sign with")
        self.zone = zone
        self.active = tuple(active)
        self.published = tuple(published)
        self.policy = policy or SigningPolicy()
        self.clock = clock
        self.max_entries = max_entries
        self._period = -1
        self._inception = self._expiration = 0
        self._cache: OrderedDict[tuple[str, int, int, tuple[bytes, ...]], tuple[RR, ...]] = (
            OrderedDict())
        self.signatures = 0
        self.hits = 0
        self.counts = counts

    @property
    def keys(self) -> tuple[dnssec.SigningKey, ...]:
        """Every key of the zone: active first, then published."""
        return self.active + self.published

    def epoch(self) -> int:
        """The current signing period's number (``clock() // refresh``);
        starting a new one forgets every RRSIG kept."""
        period = int(self.clock() // self.policy.refresh)
        if period != self._period:
            self._period = period
            start = period * self.policy.refresh
            self._inception = start - self.policy.skew
            self._expiration = start + self.policy.validity
            self._cache.clear()
        return period

    @property
    def expiration(self) -> int:
        """When the RRSIGs of the current period expire (seconds since the
        epoch; 0 before the first is made): the ``/metrics`` signature
        expiry."""
        return self._expiration

    def rrsigs(self, rrset: Sequence[RR]) -> tuple[RR, ...]:
        """The RRSIG RRs for ``rrset`` (RRs of one owner, type and TTL; the
        owner as sent), one per signing key, TTL the RRset's (RFC 4034
        section 3: the Original TTL too). Made once per period and RRset
        content."""
        owner, rtype, ttl, _rd = rrset[0]
        wires = tuple(sorted(rr[3].wire for rr in rrset))
        self.epoch()
        key = (owner, rtype, ttl, wires)
        cache = self._cache
        found = cache.get(key)
        if found is not None:
            self.hits += 1
            return found
        keys = self.keys if rtype in KEY_TYPES else self.active
        made = tuple(
            (owner, QTYPE_RRSIG, ttl, sig_rdata(QTYPE_RRSIG, dnssec.rrsig(
                k, owner, rtype, ttl, wires, self._inception, self._expiration)))
            for k in keys)
        self.signatures += len(made)
        counts = self.counts
        if counts is not None:
            zone = self.zone
            counts.made[zone] = counts.made.get(zone, 0) + len(made)
            counts.expiration[zone] = self._expiration
        while len(cache) >= self.max_entries:
            cache.popitem(last=False)
        cache[key] = made
        return made

    def nsec(self, name: str, types: Iterable[int], ttl: int) -> RR:
        """The Compact Denial NSEC at ``name`` (RFC 9824 section 3): next
        name ``\\000.name``, the bitmap of ``types`` with RRSIG and NSEC,
        TTL ``ttl`` seconds (min of the SOA TTL and minimum, RFC 9077
        section 3)."""
        bitmap = {*types, QTYPE_RRSIG, QTYPE_NSEC}
        return (name, QTYPE_NSEC, ttl, sig_rdata(QTYPE_NSEC, dnssec.nsec_rdata(
            dnssec.compact_next_wire(name), bitmap)))


def _signed(signer: ZoneSigner, records: list[RR], skip_delegation: bool) -> list[RR]:
    """``records`` with the RRSIGs of each RRset (a run of RRs of one owner
    and type) after it; a delegation's NS RRset (owner other than the
    zone's apex) left unsigned when ``skip_delegation``."""
    out: list[RR] = []
    start, count = 0, len(records)
    while start < count:
        owner, rtype = records[start][0], records[start][1]
        stop = start + 1
        while stop < count and records[stop][0] == owner and records[stop][1] == rtype:
            stop += 1
        rrset = records[start:stop]
        out.extend(rrset)
        if not (skip_delegation and rtype == QTYPE_NS and owner != signer.zone):
            out.extend(signer.rrsigs(rrset))
        start = stop
    return out


def sign_answer(signer: ZoneSigner, answer: Answer, denial: tuple[str, Iterable[int], int]
                | None = None, referral: bool = False) -> None:
    """Sign ``answer`` in place (RFC 4035 section 3.1.1): every RRset of
    the answer and authority sections followed by its RRSIGs, and of the
    additional section unless ``referral`` (glue is not authoritative,
    section 2.2; nor is a delegation's NS RRset). ``denial``: ``(name,
    types, ttl)``: the Compact Denial NSEC at ``name`` with ``types``
    (:meth:`ZoneSigner.nsec`) and its RRSIG go in the authority section,
    after what is there (the SOA of a negative answer, a delegation's NS)."""
    if answer.answer:
        answer.answer = _signed(signer, answer.answer, False)
    if answer.authority:
        answer.authority = _signed(signer, answer.authority, True)
    if denial is not None:
        nsec = signer.nsec(*denial)
        answer.authority.append(nsec)
        answer.authority.extend(signer.rrsigs((nsec,)))
    if answer.additional and not referral:
        answer.additional = _signed(signer, answer.additional, False)


__all__ = ["DEFAULT_REFRESH_S", "DEFAULT_SIGNATURES", "DEFAULT_SKEW_S", "DEFAULT_VALIDITY_S",
           "KEY_TYPES", "SigningCounts", "SigningPolicy", "ZoneSigner", "sig_rdata", "sign_answer"]
