"""The authoritative answer: zone lookup, static RRsets, GSLB records.

``Authority`` is built once per configuration (all the work at load time:
RDATA compiled, names indexed) and answers a decoded ``Query`` with an
``Answer`` ready to encode. It never does I/O.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum

from gslb.config.loader import gc_paused
from gslb.config.model import Config, CookieSettings, GslbRecord, Pool, Zone, degraded_ttl
from gslb.dns import wire
from gslb.dns.cache import DEFAULT_ENTRIES, AnswerCache, Shape, cookie_data, storable_draw
from gslb.dns.cookies import BADCOOKIE, CLIENT_BYTES, REPLY_BYTES, Cookies, process_secret
from gslb.dns.dnssec import QTYPE_CDNSKEY, QTYPE_CDS, QTYPE_DNSKEY, QTYPE_NSEC, QTYPE_NXNAME
from gslb.dns.signer import SigningCounts, ZoneSigner, sig_rdata, sign_answer
from gslb.dns.wire import (
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    QTYPE_A,
    QTYPE_AAAA,
    QTYPE_ANY,
    QTYPE_CNAME,
    QTYPE_NS,
    QTYPE_SOA,
    QTYPE_TXT,
    REFUSED,
    SERVFAIL,
    Answer,
    Query,
)
from gslb.geo import AsnLookup
from gslb.health.view import HealthView
from gslb.logs import RateLimitedLog, qtype_name
from gslb.steering import DEGRADED_RAMP, Choice, Steering
from gslb.steering.base import Basis, Client, Locator
from gslb.steering.draws import Draws
from gslb.steering.trace import Trace

log = logging.getLogger("gslb.dns")

#: The RCODE a question of a Meta-TYPE or QTYPE (RFC 6895 section 3.1) gets
#: instead of a lookup; ANY (255) is looked up (RFC 8482). Chosen as BIND
#: answers (``ns_query_start``), where Knot and NSD send NODATA:
#:
#: * AXFR (252), IXFR (251): REFUSED, as NSD and Knot answer a transfer no
#:   ACL allows: gslb serves no zone transfers (RFC 5936 section 4.2 leaves
#:   the policy to the operator); each is logged, one line per client per
#:   minute (:class:`gslb.logs.RateLimitedLog`);
#: * MAILB (253), MAILA (254): NOTIMP, obsolete QTYPEs (RFC 1035 section
#:   3.2.3, RFC 2505 section 2.6), and TKEY (249): NOTIMP, since gslb
#:   implements no key agreement (RFC 2930);
#: * OPT (41), TSIG (250) and the rest of the Meta-TYPE and QTYPE range
#:   128-254 (e.g. NXNAME, 128, RFC 9824 section 3.5): FORMERR: they
#:   describe a message, never data a name holds, and cannot be asked for
#:   (RFC 6891 section 6.1.1, RFC 8945 section 4.1); type 0 too, reserved
#:   and never a data type (RFC 6895 section 3.1).
META_RCODES: dict[int, int] = {
    **{code: FORMERR for code in range(128, 255)},
    0: FORMERR, wire.QTYPE_OPT: FORMERR, wire.QTYPE_TSIG: FORMERR,
    wire.QTYPE_TKEY: NOTIMP, wire.QTYPE_MAILB: NOTIMP, wire.QTYPE_MAILA: NOTIMP,
    wire.QTYPE_IXFR: REFUSED, wire.QTYPE_AXFR: REFUSED,
}

#: Seconds between two log lines about one client's zone transfer requests.
TRANSFER_LOG_PERIOD_S = 60.0

#: A choice that depended on these may not be reused (``Basis``); one that
#: drew (``Basis.DRAW``) only as an outcome of its draw (``Answer.drawn``).
_NOT_REUSABLE = Basis.RTT | Basis.RAMP

#: Longest CNAME chain followed inside our zones before giving up.
MAX_CNAME_CHAIN = 8

#: The DS type (RFC 4034 section 5): answered by the parent side of a
#: zone cut (RFC 4035 section 3.1.4.1).
QTYPE_DS = 43
#: The types a delegation point holds on the parent side of a cut (RFC
#: 4035 section 2.3): what its NSEC lists.
_CUT_TYPES = frozenset({QTYPE_NS, QTYPE_DS})

#: CHAOS-class names answered with the server identity (RFC 4892 section
#: 2.3: ``id.server``; ``hostname.bind`` as BIND, Knot and PowerDNS do).
IDENTITY_NAMES = frozenset({"id.server.", "hostname.bind."})
#: TTL of the CHAOS identity TXT answer, seconds: it names this server
#: only, so resolvers should not keep it.
IDENTITY_TTL = 0


def server_identity(text: str) -> bytes:
    """The identity bytes of ``text`` (``gslb serve --server-id``): what an
    NSID (RFC 5001) and a CHAOS TXT ``id.server`` (RFC 4892) query get.
    Raises ``ValueError`` unless it is 1 to 255 printable ASCII characters
    (one TXT character-string, RFC 1035 section 3.3)."""
    raw = text.encode("ascii", "replace")
    if not 1 <= len(raw) <= 255 or not text.isascii() or not text.isprintable():
        raise ValueError(f"server id {text!r} must be 1 to 255 printable ASCII characters")
    return raw


RR = tuple[str, int, int, wire.Rdata]
"""One resource record as the zone index holds it and ``wire.Answer``'s
sections take it: ``(owner, type code, TTL in seconds, compiled RDATA)``."""


def cookies_of(settings: CookieSettings) -> Cookies | None:
    """The COOKIE policy of the ``cookies`` section: its secrets, or the
    process's own random one (``gslb.dns.cookies.process_secret``) when it
    names no file; None when cookies are disabled (``enabled: false``)."""
    if not settings.enabled:
        return None
    return Cookies(settings.secrets or (process_secret(),), settings.require)


Chosen = tuple[str, str, Choice]
"""One steering outcome behind an answer: ``(owner name, pool name, Choice)``."""

OnChoice = Callable[[str, str, Choice], None]
"""``on_choice(owner, pool, choice)``: hears of every steering outcome, the
``(owner name, pool name, Choice)`` of a :data:`Chosen`."""

CacheNote = tuple[Query, Answer, tuple[Chosen, ...]]
"""What the answer cache keeps beside each response (``AnswerCache[CacheNote]``):
the query and answer it was built for and the steering outcomes behind it,
given again to the observers and to ``on_choice`` on every reuse."""


class Kind(Enum):
    """What a lookup found (CoreDNS ``file`` plugin's Result)."""

    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"
    DELEGATION = "delegation"
    SERVFAIL = "servfail"


@dataclass(slots=True)
class _Zone:
    """One zone compiled for lookups: ``rrsets`` owner → type code → RRs (a
    tuple, in config order); ``ents`` the empty non-terminals (names with no
    data of their own but data below them); ``cuts`` the delegations;
    ``wildcards``: some owner's leftmost label is ``*`` (RFC 4592), so a
    name that does not exist is looked up as a wildcard match."""

    name: str
    soa: RR
    negative_ttl: int
    rrsets: dict[str, dict[int, tuple[RR, ...]]]
    gslb: dict[str, GslbRecord]
    ents: frozenset[str] = frozenset()
    cuts: frozenset[str] = frozenset()
    wildcards: bool = False
    signer: ZoneSigner | None = None
    gslb_types: dict[str, frozenset[int]] | None = None

    def types_at(self, name: str) -> frozenset[int]:
        """The types ``name`` (lower case, absolute, in the zone) holds,
        for the type bitmap of its NSEC (RFC 4034 section 4.1.2): its
        static RRsets' types, A and/or AAAA for a GSLB name as its pool's
        origins have addresses of each family (``gslb_types``), those of
        the wildcard that covers it, and only NS and DS at a delegation
        (the parent side's data, RFC 4035 section 2.3)."""
        node = self.rrsets.get(name)
        record = name if name in self.gslb else None
        if node is None and record is None and self.wildcards and name not in self.ents:
            source = self.source_of_synthesis(name)
            if source is not None:
                node = self.rrsets.get(source)
                record = source if source in self.gslb else None
        types = frozenset(node or ())
        if name in self.cuts:
            return types & _CUT_TYPES
        if record is not None and self.gslb_types is not None:
            types |= self.gslb_types.get(record, frozenset())
        return types

    def exists(self, name: str) -> bool:
        """Whether ``name`` (lower case, absolute, in the zone) has any data,
        static or GSLB, or is an empty non-terminal (NODATA, not NXDOMAIN)."""
        return name in self.rrsets or name in self.gslb or name in self.ents

    def source_of_synthesis(self, name: str) -> str | None:
        """The wildcard owner whose data answers ``name`` (lower case,
        absolute, in the zone, not existing, not at or below a cut), or None
        when no wildcard covers it (RFC 4592 section 3.3.1): ``*.`` and the
        closest encloser (the longest existing ancestor of ``name``, empty
        non-terminals included), when that owner exists. A ``*`` label
        elsewhere than leftmost is a plain label: ``ghost.*.example.``'s
        closest encloser is ``*.example.`` itself, which has no ``*`` child."""
        apex = self.name
        encloser = name
        while encloser != apex:
            encloser = encloser.split(".", 1)[1]
            if self.exists(encloser):
                break
        source = "*." + encloser
        return source if source in self.rrsets or source in self.gslb else None


def _ancestors(name: str, apex: str) -> list[str]:
    """``name`` and each parent of it down to (excluding) ``apex``."""
    out = []
    while name != apex and name.endswith("." + apex):
        out.append(name)
        name = name.split(".", 1)[1]
    return out


def _compile_zone(zone: Zone, shared: dict[tuple[str, str], wire.Rdata] | None = None,
                  families: Callable[[str], frozenset[int]] | None = None,
                  counts: SigningCounts | None = None,
                  clock: Callable[[], float] = time.time,
                  pools: Mapping[str, Pool] | None = None) -> _Zone:
    """``zone`` compiled; ``shared``: RDATA compiled so far, reused (see
    ``wire.compile_rdata``). A signed zone (``zone.dnssec``) gets its
    DNSKEY, CDS and CDNSKEY RRsets at the apex and a ``ZoneSigner``;
    ``families(pool)``: the address families (4, 6) a pool can answer,
    for the NSEC type bitmaps of GSLB names. ``pools``: the config's, whose
    ``ttl_when_degraded`` the GSLB records that set none take
    (:func:`gslb.config.model.degraded_ttl`)."""
    shared = {} if shared is None else shared
    codes: dict[str, int] = {}
    rrsets: dict[str, dict[int, tuple[RR, ...]]] = {}
    for (owner, rtype), rrset in zone.rrsets.items():
        code = codes.get(rtype)
        if code is None:
            code = codes[rtype] = wire.qtype_code(rtype)
        rrs = tuple((owner, code, rrset.ttl, wire.compile_rdata(rtype, text, shared))
                    for text in rrset.rdata)
        node = rrsets.get(owner)
        if node is None:
            rrsets[owner] = {code: rrs}
        else:
            node[code] = rrs
    soa_rr = rrsets[zone.name][QTYPE_SOA][0]
    minimum = int(zone.soa.rdata[0].split()[-1])
    gslb = dict(zone.gslb)
    for owner, record in gslb.items():  # the TTL of degraded answers, resolved once
        degraded = degraded_ttl(record, pools or {})
        if degraded != record.ttl_when_degraded:
            gslb[owner] = replace(record, ttl_when_degraded=degraded)
    ents: set[str] = set()
    for owner in (*rrsets, *gslb):
        if owner == zone.name:
            continue
        for name in _ancestors(owner.split(".", 1)[1], zone.name):
            if name in ents or name in rrsets or name in gslb:
                break  # its parents are done, or will be as an owner's
            ents.add(name)
    cuts = frozenset(o for o, types in rrsets.items() if o != zone.name and QTYPE_NS in types)
    wildcards = any(owner.startswith("*.") for owner in (*rrsets, *gslb))
    signer = gslb_types = None
    if zone.dnssec is not None:
        signer, gslb_types = _signing(zone, rrsets, families, counts, clock)
    return _Zone(
        name=zone.name,
        soa=soa_rr,
        # RFC 2308 section 5: negative answers are cached for
        # min(SOA TTL, SOA MINIMUM); we send that as the SOA's TTL.
        negative_ttl=min(zone.soa.ttl, minimum),
        rrsets=rrsets,
        gslb=gslb,
        ents=frozenset(ents),
        cuts=cuts,
        wildcards=wildcards,
        signer=signer,
        gslb_types=gslb_types,
    )


def _signing(zone: Zone, rrsets: dict[str, dict[int, tuple[RR, ...]]],
             families: Callable[[str], frozenset[int]] | None,
             counts: SigningCounts | None = None,
             clock: Callable[[], float] = time.time
             ) -> tuple[ZoneSigner, dict[str, frozenset[int]]]:
    """The signer of ``zone`` (which has a ``dnssec`` key) and the types of
    its GSLB names; the apex RRsets of its keys are added to ``rrsets``:
    DNSKEY (every key, RFC 4035 section 2.1), and CDS and CDNSKEY (the
    keys with the SEP flag: the DS set the parent should hold, RFC 7344
    section 4, RFC 8078)."""
    settings = zone.dnssec
    assert settings is not None
    keys = (*settings.active, *settings.published)
    ttl, apex = settings.dnskey_ttl, rrsets[zone.name]
    apex[QTYPE_DNSKEY] = tuple((zone.name, QTYPE_DNSKEY, ttl, sig_rdata(QTYPE_DNSKEY, k.dnskey))
                               for k in keys)
    sep = [k for k in keys if k.sep]
    if sep:
        apex[QTYPE_CDS] = tuple((zone.name, QTYPE_CDS, ttl, sig_rdata(QTYPE_CDS, k.ds()))
                                for k in sep)
        apex[QTYPE_CDNSKEY] = tuple(
            (zone.name, QTYPE_CDNSKEY, ttl, sig_rdata(QTYPE_CDNSKEY, k.dnskey)) for k in sep)
    signer = ZoneSigner(zone.name, settings.active, settings.published, settings.policy,
                        clock=clock, counts=counts)
    gslb_types = {}
    for owner, record in zone.gslb.items():
        found = families(record.pool) if families is not None else frozenset({4, 6})
        gslb_types[owner] = frozenset(
            code for family, code in ((4, QTYPE_A), (6, QTYPE_AAAA)) if family in found)
    return signer, gslb_types


_NO_DATA: dict[int, tuple[RR, ...]] = {}
"""The node of a name without static data (never modified)."""


def _renamed(node: dict[int, tuple[RR, ...]], owner: str) -> dict[int, tuple[RR, ...]]:
    """``node``'s RRsets with ``owner`` as their owner: a wildcard's data
    synthesised for the name asked (RFC 4592 section 3.3.1). A function of
    its own, so that ``_lookup_in``'s locals are not closure cells."""
    return {code: tuple((owner, c, t, r) for _o, c, t, r in rrs) for code, rrs in node.items()}


@dataclass(frozen=True, slots=True)
class Lookup:
    """The kind of a lookup, the answer built for it and the steering
    outcomes behind that answer (empty unless a GSLB name answered)."""

    kind: Kind
    answer: Answer
    choices: tuple[Chosen, ...] = ()


class Authority:
    """Answers queries for every zone of one configuration.

    ``health`` is read on every GSLB answer; ``locator`` maps an address to a
    ``GeoLocation`` (or None). ``rng`` drives weighted choices (seed it in
    tests). ``on_choice(owner, pool, choice)`` hears of every steering
    outcome, reused answers included. ``cache_entries``: bound of the
    answer cache (:mod:`gslb.dns.cache`) :func:`respond` uses; 0 disables it.
    ``server_id``: this server's identity (see :func:`server_identity`),
    sent in reply to an NSID option (RFC 5001) and to CHAOS TXT
    ``id.server``/``hostname.bind`` (RFC 4892); None: neither is answered
    (NSID is ignored, CHAOS gets REFUSED). Raises ``ValueError`` for a bad
    ``server_id``. ``asn_lookup`` maps an address to its ``Asn`` (or None;
    ``AsnDB.lookup``); a client is looked up in either only when a policy asks.
    ``signing_counts``: where the signers of signed zones report the RRSIGs
    they make (``QueryStats.signing``); ``clock``: the wall clock they
    sign by (seconds since the epoch; tests pass another).
    """

    def __init__(
        self,
        config: Config,
        health: HealthView,
        locator: Locator | None = None,
        rng: random.Random | None = None,
        on_choice: OnChoice | None = None,
        cache_entries: int = DEFAULT_ENTRIES,
        server_id: str | None = None,
        asn_lookup: AsnLookup | None = None,
        signing_counts: SigningCounts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.server_id = server_identity(server_id) if server_id is not None else None
        self._identity = None if self.server_id is None else wire.Rdata.from_wire(
            QTYPE_TXT, bytes((len(self.server_id),)) + self.server_id,
            '"' + self.server_id.decode().replace("\\", "\\\\").replace('"', '\\"') + '"')
        self.health = health
        self.locator = locator
        self.asn_lookup = asn_lookup
        self.rng = Draws(rng or random.Random())
        """Every draw steering makes, recorded per lookup (so an answer
        decided by one weighted draw is stored once per outcome:
        :mod:`gslb.steering.draws`); its ``source`` is the ``rng`` given."""
        self.steering = Steering(config.pools, config.origins, vantages=config.vantages)
        shared: dict[tuple[str, str], wire.Rdata] = {}
        with gc_paused():  # millions of lasting objects, no garbage cycles
            self.zones = {name: _compile_zone(zone, shared, self.steering.families,
                                              signing_counts, clock, config.pools)
                          for name, zone in config.zones.items()}
        self._clock = clock
        self.signers: dict[str, ZoneSigner] = {
            name: z.signer for name, z in self.zones.items() if z.signer is not None}
        """The online signer of each signed zone, by zone name."""
        self._on_choice = on_choice
        self._transfers = RateLimitedLog(log, TRANSFER_LOG_PERIOD_S)
        self.cookies: Cookies | None = cookies_of(config.cookies)
        """The DNS Cookies policy (RFC 7873) :func:`respond` follows (None:
        COOKIE options get no answer); replace it to use another clock."""
        self.cache: AnswerCache[CacheNote] | None = AnswerCache(
            self._generation_function(), cache_entries,
            self.cookie_patch, self.rng.source) if cache_entries > 0 else None
        """Encoded responses reused by :func:`respond` (None: disabled)."""
        self.trace: Trace | None = None
        """Set only for the span of :meth:`explain_lookup`: where the lookup
        and its steering record what they decide."""

    def _generation_function(self) -> Callable[[], int]:
        """What the answer cache's entries belong to: the health view's
        generation, and with signed zones the signing period too (a stored
        signed response must not outlive its RRSIGs' period:
        ``ZoneSigner.epoch``)."""
        health = self.health
        refreshes = tuple(sorted({s.policy.refresh for s in self.signers.values()}))
        if not refreshes:
            return lambda: health.generation
        clock = self._clock  # read on every lookup: no method call, no attribute chain
        if len(refreshes) == 1:
            refresh = refreshes[0]
            return lambda: (health.generation << 40) | int(clock() // refresh)
        # each period number only grows, so their sum moves whenever one does
        return lambda: (health.generation << 40) | sum(int(clock() // r) for r in refreshes)

    @property
    def on_choice(self) -> OnChoice | None:
        """What hears of every steering outcome (given to the constructor)."""
        return self._on_choice

    def retire(self) -> None:
        """This authority no longer answers (a reload replaced it): drop its
        answer cache, whose ``cookie_patch`` is a method of this authority,
        so that nothing but references from outside keeps it. Without this
        the cycle survives, out of reach of a collector that ``gc.freeze``
        told to skip it, and every reload would keep the old zone."""
        self.cache = None

    def cookie_patch(self, response: bytes, option: bytes, who: str, udp: bool) -> bytes:
        """A stored ``response`` to a query with a COOKIE option, made for
        another client, with the cookie for this query (COOKIE option data
        ``option``, from ``who``) in its last octets (the COOKIE option is
        the message's last, ``wire.response_options``);
        empty when it must not be reused: the query gets BADCOOKIE
        (``require``, over UDP, no valid Server Cookie). The answer cache's
        :data:`gslb.dns.cache.CookiePatch`."""
        cookies = self.cookies
        if cookies is None:
            return response  # stored without a cookie too
        reply, valid = cookies.reply(option, who)
        if not valid and udp and cookies.require:
            return b""
        return response[:-REPLY_BYTES] + reply

    def proves_source(self, data: bytes, who: str) -> bool:
        """Whether query message ``data`` from address ``who`` carries a
        valid Server Cookie of ours, so its source address is not forged
        (RFC 7873 section 5.2.3; only a client that got an answer from us
        has one): the rate limiter's ``proven`` check (``gslb.dns.rrl``),
        asked only of queries about to be limited."""
        cookies = self.cookies
        end = data.find(0, 12)
        if cookies is None or end < 0:
            return False
        option = cookie_data(data, end)
        return option is not None and len(option) > CLIENT_BYTES and cookies.reply(option, who)[1]

    def find_zone(self, qname: str) -> _Zone | None:
        """The most specific zone holding ``qname`` (lower case, absolute)."""
        name = qname
        while True:
            zone = self.zones.get(name)
            if zone is not None:
                return zone
            if name == ".":
                return None
            name = name.split(".", 1)[1] or "."

    def client_for(self, query: Query, who: str) -> Client:
        """The client facts of ``query`` from packet source address ``who``.

        An ECS option with source prefix-length 0 carries no address
        information (RFC 7871 section 7.1.2): the client is then located by
        the packet's source address, like a query without ECS.
        """
        ecs = query.ecs
        if ecs is None or ecs.source == 0:
            return Client(who, locator=self.locator, asn_lookup=self.asn_lookup)
        return Client(who, ecs.address, ecs.source, ecs.version, locator=self.locator,
                      asn_lookup=self.asn_lookup)

    def explain_lookup(self, query: Query, who: str, trace: Trace) -> Lookup:
        """:meth:`lookup`, recording into ``trace`` what it decides (``gslb
        explain``): the same path a query takes, its steering included, so
        it moves what one more query would move (a ``cyclic`` pool's turn,
        the random draws, ``latency``'s memory, the fallback log); the
        outcome is not counted (``on_choice`` is not called) and nothing is
        stored in the answer cache. Synchronous: no query interleaves."""
        with self.unheard():
            self.trace = trace
            self.rng.start()  # rng.partition: what this lookup drew, not the last query's
            try:
                return self.lookup(query, who)
            finally:
                self.trace = None

    @contextlib.contextmanager
    def unheard(self) -> Iterator[None]:
        """Steering outcomes within are not heard (``on_choice`` is not
        called): lookups that answer no query, made to explain one
        (:meth:`explain_lookup`) or to store the other outcomes of a draw
        (:func:`respond`)."""
        on_choice, self._on_choice = self._on_choice, None
        try:
            yield
        finally:
            self._on_choice = on_choice

    def lookup(self, query: Query, who: str) -> Lookup:
        """Answer ``query`` from packet source address ``who`` (text).

        Another OPCODE than QUERY gets NOTIMP (RFC 1035 section 4.1.1: gslb
        implements none of IQUERY, STATUS, NOTIFY, UPDATE); a Meta-TYPE or
        QTYPE other than ANY gets the RCODE of :data:`META_RCODES`."""
        if query.opcode != 0:
            return Lookup(Kind.REFUSED, Answer(rcode=NOTIMP, aa=False))
        if query.qtype in META_RCODES:
            return self._meta(query, who)
        if query.qclass != wire.CLASS_IN:
            return self._chaos(query)
        zone = self.find_zone(query.qname_lower)
        if zone is None:
            return Lookup(Kind.REFUSED, Answer(rcode=REFUSED, aa=False))
        return self._lookup_in(zone, query, who)

    def _meta(self, query: Query, who: str) -> Lookup:
        """A question of a Meta-TYPE or QTYPE (:data:`META_RCODES`); a zone
        transfer request is logged (at most one line per client a minute)
        and never reused from the answer cache, so each is seen."""
        rcode = META_RCODES[query.qtype]
        answer = Answer(rcode=rcode, aa=False)
        if rcode == REFUSED:
            answer.reusable = False
            zone = self.find_zone(query.qname_lower)
            name = zone.name if zone is not None else query.qname_lower
            kind = qtype_name(query.qtype)
            self._transfers.log(who, logging.INFO, "%s of %s from %s refused: zone transfers "
                                "are not served%s", kind, name, who,
                                "" if zone is not None else " (not a zone of ours)",
                                extra={"client": who, "zone": name, "qtype": kind})
        return Lookup(Kind.REFUSED, answer)

    def _chaos(self, query: Query) -> Lookup:
        """CHAOS TXT ``id.server``/``hostname.bind`` with a server id: the
        identity (RFC 4892 section 2.3); any other class or name: REFUSED."""
        name = query.qname_lower
        if (self._identity is None or query.qclass != wire.CLASS_CH
                or name not in IDENTITY_NAMES):
            return Lookup(Kind.REFUSED, Answer(rcode=REFUSED, aa=False))
        answer = Answer()
        if query.qtype in (QTYPE_TXT, QTYPE_ANY):
            answer.answer.append((name, QTYPE_TXT, IDENTITY_TTL, self._identity))
        return Lookup(Kind.ANSWER if answer.answer else Kind.NODATA, answer)

    # ------------------------------------------------------------------
    def _negative(self, zone: _Zone, kind: Kind, answer: Answer,
                  choices: tuple[Chosen, ...] = ()) -> Lookup:
        owner, code, _ttl, rdata = zone.soa
        answer.authority.append((owner, code, zone.negative_ttl, rdata))
        if kind is Kind.NXDOMAIN:
            answer.rcode = NXDOMAIN
        return Lookup(kind, answer, choices)

    def _referral(self, zone: _Zone, cut: str, answer: Answer) -> Lookup:
        """A referral to the child zone at ``cut`` (RFC 1034 section 4.3.2 step
        3b): not authoritative, NS in the authority section, the zone's
        addresses of the NS targets as glue. In-domain glue (targets at or
        below ``cut``) comes first and must fit, else the response is sent
        with TC (RFC 9471 section 3.1, ``Answer.required_additional``);
        sibling glue (targets elsewhere in the zone) follows and is dropped
        without TC when it does not fit (RFC 9471 section 3.2)."""
        answer.aa = False
        ns_rrs = zone.rrsets[cut][QTYPE_NS]
        answer.authority.extend(ns_rrs)
        below = "." + cut
        sibling: list[RR] = []
        for _o, _c, _t, rdata in ns_rrs:
            target = str(rdata).lower()
            glue = answer.additional if target == cut or target.endswith(below) else sibling
            node = zone.rrsets.get(target, _NO_DATA)
            for code in (QTYPE_A, QTYPE_AAAA):
                glue.extend(node.get(code, ()))
        answer.required_additional = len(answer.additional)
        answer.additional.extend(sibling)
        return Lookup(Kind.DELEGATION, answer)

    @staticmethod
    def _ns_addresses(zone: _Zone, ns_rrs: tuple[RR, ...], answer: Answer) -> None:
        """Add the zone's A and AAAA RRsets of the targets of ``ns_rrs`` (an
        NS RRset answered, e.g. at the apex) to the additional section, as
        RFC 1034 section 4.3.2 step 6 suggests; dropped without TC when the
        response does not fit."""
        additional = answer.additional
        for _o, _c, _t, rdata in ns_rrs:
            node = zone.rrsets.get(str(rdata).lower(), _NO_DATA)
            for code in (QTYPE_A, QTYPE_AAAA):
                additional.extend(node.get(code, ()))

    def _lookup_in(self, zone: _Zone, query: Query, who: str) -> Lookup:
        """``query`` answered from ``zone``: referral below a cut, GSLB or
        static data, CNAMEs followed inside the zone, wildcards synthesised
        (RFC 4592 section 3.3.1: only for a name that does not exist, owner
        the name asked), DS at a cut from the parent side (RFC 4035 section
        3.1.4.1), else NODATA or NXDOMAIN with the SOA."""
        answer = Answer()
        name = query.qname_lower
        qtype = query.qtype
        for _hop in range(MAX_CNAME_CHAIN + 1):
            for cut in reversed(_ancestors(name, zone.name)):
                if cut in zone.cuts:
                    if cut == name and qtype == QTYPE_DS:
                        break  # the parent side's own data, authoritative
                    if answer.answer:  # CNAME led below a cut: stop at the CNAME
                        return Lookup(Kind.ANSWER, answer)
                    return self._referral(zone, cut, answer)
            node = zone.rrsets.get(name, _NO_DATA)
            record = zone.gslb.get(name)
            if record is None and node is _NO_DATA and zone.wildcards and name not in zone.ents:
                record, node = self._synthesised(zone, name)
            if record is not None and qtype in (QTYPE_A, QTYPE_AAAA, QTYPE_ANY):
                family_qtype = QTYPE_A if qtype == QTYPE_ANY else qtype
                return self._gslb(zone, record, family_qtype, query, who, name, answer)
            if qtype in node:
                answer.answer.extend(node[qtype])
                if qtype == QTYPE_NS:
                    self._ns_addresses(zone, node[qtype], answer)
                return Lookup(Kind.ANSWER, answer)
            cname = node.get(QTYPE_CNAME)
            if cname is not None:
                answer.answer.extend(cname)
                target = str(cname[0][3]).lower()
                found = self.find_zone(target)
                if found is not zone:  # out of our zone: the resolver follows it
                    return Lookup(Kind.ANSWER, answer)
                name = target
                continue
            if qtype == QTYPE_ANY and node:
                # RFC 8482 section 4.1: answer ANY with one RRset of the name.
                rrs = node[min(node)]
                answer.answer.extend(rrs)
                if rrs[0][1] == QTYPE_NS:
                    self._ns_addresses(zone, rrs, answer)
                return Lookup(Kind.ANSWER, answer)
            # a CNAME chain ending at a name without the type: the response
            # carries the chain, NOERROR (RFC 2308 section 2.2); a name a
            # wildcard covers exists (RFC 4592 section 2.2.1: NODATA)
            covered = zone.exists(name) or (
                zone.wildcards and zone.source_of_synthesis(name) is not None)
            kind = Kind.NODATA if covered else Kind.NXDOMAIN
            return self._negative(zone, kind, answer)
        answer.rcode = SERVFAIL  # CNAME loop inside our zones
        return Lookup(Kind.SERVFAIL, answer)

    def _synthesised(self, zone: _Zone, name: str
                     ) -> tuple[GslbRecord | None, dict[int, tuple[RR, ...]]]:
        """The GSLB record and the RRsets (owner ``name``) of the wildcard
        that covers ``name``, a name ``zone`` does not hold (RFC 4592
        section 3.3.1: the owner becomes the name asked); none when no
        wildcard covers it. An explained lookup notes a ``wildcard`` event
        (``name``, ``source``)."""
        source = zone.source_of_synthesis(name)
        if source is None:
            return None, _NO_DATA
        if self.trace is not None:
            self.trace.add("wildcard", name=name, source=source)
        return zone.gslb.get(source), _renamed(zone.rrsets.get(source, _NO_DATA), name)

    def sign(self, query: Query, lookup: Lookup) -> None:
        """Sign ``lookup``'s answer to ``query`` (which set DO, RFC 3225
        section 3) when its zone is signed (RFC 4035 section 3.1): every
        authoritative RRset with its RRSIGs, and

        * a negative answer with the Compact Denial NSEC at the name that
          does not exist or lacks the type (the end of a CNAME chain): its
          types for NODATA, NXNAME for a name that does not exist (RFC
          9824 section 3), whose RCODE becomes NOERROR unless the query
          set the CO flag (section 4);
        * a referral with the DS RRset of the cut, or the NSEC at the cut
          that proves there is none (RFC 4035 section 3.1.4: the
          delegation is then insecure);
        * a query for the NSEC of a name (existing or not) with that NSEC
          as the answer.
        """
        kind = lookup.kind
        if kind is Kind.REFUSED or kind is Kind.SERVFAIL:
            return
        zone = self.find_zone(query.qname_lower)
        signer = zone.signer if zone is not None else None
        if zone is None or signer is None:
            return
        answer = lookup.answer
        if kind is Kind.ANSWER:
            sign_answer(signer, answer)
        elif kind is Kind.DELEGATION:
            cut = answer.authority[0][0]
            ds = zone.rrsets[cut].get(QTYPE_DS)
            if ds:
                answer.authority.extend(ds)
                sign_answer(signer, answer, referral=True)
            else:
                sign_answer(signer, answer, (cut, (QTYPE_NS,), zone.negative_ttl),
                            referral=True)
        elif query.qtype == QTYPE_NSEC and not answer.answer:
            # a name's NSEC is data it holds: answered, not denied, as Knot's
            # onlinesign does (a proof that NSEC is absent would list NSEC)
            name = query.qname_lower
            held = (QTYPE_NXNAME,) if kind is Kind.NXDOMAIN else zone.types_at(name)
            answer.rcode = NOERROR
            answer.authority.clear()
            answer.answer.append(signer.nsec(name, held, zone.negative_ttl))
            sign_answer(signer, answer)
        else:
            name = query.qname_lower
            for _owner, rtype, _ttl, rdata in answer.answer:
                if rtype == QTYPE_CNAME:
                    name = str(rdata).lower()
            if kind is Kind.NXDOMAIN:
                types: frozenset[int] = frozenset((QTYPE_NXNAME,))
                if not query.compact_ok:
                    answer.rcode = NOERROR
            else:
                types = zone.types_at(name) - {query.qtype}
            sign_answer(signer, answer, (name, types, zone.negative_ttl))

    def _gslb(self, zone: _Zone, record: GslbRecord, qtype: int, query: Query, who: str,
              owner: str, answer: Answer) -> Lookup:
        """Append the GSLB answer for ``record`` (at ``owner`` in ``zone``)
        to ``answer``: ANSWER, or NODATA (with the SOA), or SERVFAIL."""
        family = 4 if qtype == QTYPE_A else 6
        client = self.client_for(query, who)
        trace = self.trace
        if trace is not None:
            client.trace = trace
            trace.add("record", zone=zone.name, owner=owner, pool=record.pool, ttl=record.ttl,
                      family=family, client=client)
        choice = self.steering.choose(record.pool, family, client, self.health, self.rng)
        answer.ecs_scope = max(answer.ecs_scope, choice.scope)
        # reuse follows from what this choice depended on (Basis), not from
        # which policies the pool has
        if choice.basis & _NOT_REUSABLE:
            answer.reusable = False
        if choice.basis & Basis.DRAW:
            answer.drawn = True
        if choice.basis & Basis.CLIENT:
            answer.per_client = True
        chosen = ((owner, record.pool, choice),)
        if self._on_choice is not None:
            self._on_choice(owner, record.pool, choice)
        if choice.kind == "servfail":
            answer.rcode = SERVFAIL
            answer.aa = False
            answer.answer.clear()
            return Lookup(Kind.SERVFAIL, answer, chosen)
        if choice.kind == "nodata" or not choice.addresses:
            return self._negative(zone, Kind.NODATA, answer, chosen)
        if choice.rotate and not answer.answer:  # leading: no CNAME before it
            answer.rotate, answer.shuffle = choice.rotate, choice.shuffle
        elif choice.rotate:
            answer.reusable = False  # the cache rotates only a leading RRset
        ttl = record.ttl
        if record.ttl_when_degraded is not None:  # resolved at load: shorter than ttl
            degraded = self.steering.degraded(choice, family, self.health)
            if degraded:
                ttl = record.ttl_when_degraded
                if degraded == DEGRADED_RAMP:  # moves with time, not the generation
                    answer.reusable = False
                if self.trace is not None:
                    self.trace.add("degraded_ttl", ttl=ttl, full=record.ttl,
                                   why="ramp" if degraded == DEGRADED_RAMP else "down")
        answer.answer.extend(
            (owner, qtype, ttl, wire.address_rdata(address)) for address in choice.addresses
        )
        return Lookup(Kind.ANSWER, answer, chosen)


Observer = Callable[[Query | None, Answer | None, str], None]
"""``(query, answer, who)``, called once per response sent (``query`` and
``answer`` None for a message answered FORMERR): metrics and query log."""


def respond(authority: Authority, data: bytes, who: str, udp: bool,
            observe: Observer | None = None) -> bytes | None:
    """Bytes in, bytes out: decode ``data`` (a query from address ``who``),
    answer it and encode the response, or None when nothing must be sent.
    ``observe`` (optional) hears of every response before it is encoded
    (for a reused response: with the query and answer it was built for).
    A response in ``authority.cache`` is reused; a reusable new one is
    stored there.

    Over UDP the response is truncated to the client's limit (TC set);
    over TCP it is sent whole (RFC 7766 section 6.2). EDNS version other
    than 0 gets BADVERS (RFC 6891 section 6.1.3).

    A COOKIE option (RFC 7873 section 5.2) gets the client's cookie back
    with a Server Cookie of ours, from the cache too (the stored one's last
    octets replaced: ``Authority.cookie_patch``); with
    ``authority.cookies.require``, a UDP query whose COOKIE option carries
    no valid Server Cookie gets BADCOOKIE with a fresh one instead of an
    answer (section 5.2.3), never over TCP. A query with no question but a
    COOKIE option gets NOERROR with only the cookie (section 5.4).
    """
    cache = authority.cache
    if cache is not None and len(data) >= 12:
        shape = cache.shape(data, udp)
        hit = cache.get(shape, data, who)
        if hit is not None:
            response, (query, answer, choices) = hit
            if observe is not None:
                observe(query, answer, who)
            on_choice = authority._on_choice
            if on_choice is not None:
                for owner, pool, choice in choices:
                    on_choice(owner, pool, choice)
            return response
    try:
        query = wire.decode(data)
    except wire.Drop:
        return None
    except wire.FormErr as err:
        if observe is not None:
            observe(None, None, who)
        return err.response
    cookies = authority.cookies
    cookie = None if query.cookie is None or cookies is None else _cookie_reply(
        cookies, query, who)
    if query.edns and query.edns_version != 0:
        answer, choices = Answer(rcode=wire.BADVERS, aa=False), ()
    elif query.question_wire == b"":  # a server cookie asked for alone (RFC 7873 section 5.4)
        rcode = NOERROR if cookie is not None else wire.FORMERR  # cookies off: malformed
        answer, choices = Answer(rcode=rcode, aa=False, reusable=False), ()
    elif (cookie is not None and not query.cookie_valid and udp and cookies is not None
          and cookies.require):
        answer, choices = Answer(rcode=BADCOOKIE, aa=False, reusable=False), ()
    else:
        authority.rng.start()
        answer, choices = _looked_up(authority, query, who)
    if query.nsid:
        answer.nsid = authority.server_id
    answer.cookie = cookie
    if observe is not None:
        observe(query, answer, who)
    limit = query.udp_limit if udp else 65535
    response = wire.encode(query, answer, limit)
    if cache is not None and answer.reusable and query.question_wire is not None:
        _store(authority, cache, shape, query, who, limit, answer, choices, response)
    return response


def _store(authority: Authority, cache: AnswerCache[CacheNote], shape: Shape, query: Query,
           who: str, limit: int, answer: Answer, choices: tuple[Chosen, ...],
           response: bytes) -> None:
    """Store ``response`` (reusable ``answer`` to ``query`` of ``shape``
    from ``who``, within ``limit`` octets) in ``cache``; one that was drawn
    only with every other outcome of its draw (:func:`_outcomes`)."""
    drawn = None
    if answer.drawn:
        drawn = _outcomes(authority, query, who, limit, answer, choices, response)
        if drawn is None:
            return
    ecs = query.ecs
    per_client = answer.per_client and (ecs is None or ecs.source == 0)
    # kept for observers of reused answers: drop what they never read
    query.question_wire, query.qname = None, query.qname_lower
    cache.put(shape, who, response, (query, answer, choices), per_client,
              answer.rotate, answer.shuffle, drawn)


def _outcomes(authority: Authority, query: Query, who: str, limit: int, answer: Answer,
              choices: tuple[Chosen, ...], response: bytes
              ) -> tuple[tuple[int, ...], tuple[tuple[bytes, CacheNote], ...]] | None:
    """For ``response`` (``answer`` to ``query`` from ``who``, encoded
    within ``limit`` octets, from the steering outcomes ``choices``), made
    by one weighted draw: the draw's cumulative weights and the response
    and note of each of its outcomes, each made by the same lookup with
    that outcome forced (:class:`gslb.steering.draws.Draws`) and none of
    them counted (``on_choice`` is not called). None, and the answer is
    not stored, when the draw is none the cache stores
    (``gslb.dns.cache.storable_draw``: the lookup drew otherwise or more
    than once, among too many, or it rotates) or another outcome came
    about otherwise than by the same draw."""
    draws = authority.rng
    partition, drawn = draws.partition, draws.outcome
    if partition is None or not storable_draw(partition, answer.rotate):
        return None
    outcomes: list[tuple[bytes, CacheNote]] = []
    with authority.unheard():
        for i in range(len(partition)):
            if i == drawn:
                outcomes.append((response, (query, answer, choices)))
                continue
            draws.start(forced=i)
            other, other_choices = _looked_up(authority, query, who)
            if (draws.partition != partition or draws.outcome != i or not other.reusable
                    or not other.drawn or other.rotate
                    or other.per_client != answer.per_client):
                return None
            other.nsid, other.cookie = answer.nsid, answer.cookie
            outcomes.append((wire.encode(query, other, limit), (query, other, other_choices)))
    return partition, tuple(outcomes)


def _looked_up(authority: Authority, query: Query, who: str) -> tuple[Answer, tuple[Chosen, ...]]:
    """The answer to ``query`` from ``who`` and the steering outcomes
    behind it, signed when the query set DO and its zone is signed."""
    lookup = authority.lookup(query, who)
    if query.dnssec_ok and authority.signers:
        authority.sign(query, lookup)
    return lookup.answer, lookup.choices


def servfail(data: bytes, who: str, udp: bool,
             observe: Observer | None = None) -> tuple[bytes | None, Query | None]:
    """The response to ``data`` (from address ``who``) when answering it
    failed with an exception, and the query it was, decoded again:
    SERVFAIL (RFC 1035 section 4.1.1: the server could not process the
    query, as CoreDNS answers a plugin's error) with the ID, the question
    and an OPT record as usual, RD copied, AA clear; ``observe`` hears of
    it. A message that cannot be decoded gets a header-only SERVFAIL
    (query None); one that is no query gets nothing (``(None, None)``, as
    :func:`respond`). Never raises."""
    try:
        query = wire.decode(data)
    except wire.Drop:
        return None, None
    except Exception:  # FORMERR, or the decoder failing: answer from the header
        return wire.header_reply(data, SERVFAIL), None
    answer = Answer(rcode=SERVFAIL, aa=False)
    try:
        response = wire.encode(query, answer, query.udp_limit if udp else 65535)
    except Exception:
        return wire.header_reply(data, SERVFAIL), query
    if observe is not None:
        with contextlib.suppress(Exception):  # the observer may be what failed
            observe(query, answer, who)
    return response, query


def _cookie_reply(cookies: Cookies, query: Query, who: str) -> bytes:
    """The COOKIE option data to send to ``query`` (which has one) from
    ``who``; sets ``query.cookie_valid``."""
    assert query.cookie is not None
    reply, query.cookie_valid = cookies.reply(query.cookie, who)
    return reply


__all__ = ["IDENTITY_NAMES", "META_RCODES", "NOERROR", "RR", "Authority", "CacheNote", "Chosen",
           "Kind", "Lookup", "Observer", "OnChoice", "cookies_of", "respond", "server_identity",
           "servfail"]
