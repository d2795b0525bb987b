"""Response rate limiting (RRL): how many UDP responses a client prefix gets.

A nameserver that answers UDP from anyone is an amplifier: a spoofed source
address turns a 40-byte query into a 500-byte response aimed at a victim.
RRL, as BIND (``rate-limit``) and Knot (``mod-rrl``) define it, bounds the
responses sent to one client *prefix* (IPv4 /24, IPv6 /56 by default), per
kind of response, and sends some of the rest truncated (``slip``) so that a
real client behind a spoofed prefix retries over TCP, where its source is
proven (RFC 7766; TCP is never limited).

:class:`RateLimiter` sees only the response's bytes and the client's
address, so it works alike on fresh answers and answer-cache hits. A
response is classified from its header (:func:`classify`): RCODE, AA,
ANCOUNT and NSCOUNT. The key of its token bucket:

* answer and NODATA: ``(prefix, kind, qname + qtype)``, the qname lower-cased
  (a repeated identical response is what an amplifier sends; a resolver
  behind the prefix asks many names, each rarely, as BIND argues);
* NXDOMAIN, referral and error: ``(prefix, kind)``: the names behind these
  are unbounded (random subdomains, any name below a cut, garbage), so
  keying them by name would give a flood of distinct names a bucket per
  name; BIND keys NXDOMAIN by zone and referrals by delegation, which differ
  from this only with several zones or cuts;
* with ``all_per_second``, every response also spends from ``(prefix,)``:
  the bound on a flood of distinct existing (or wildcard) names.

Each bucket refills ``rate`` tokens per second up to ``rate × window``
(``window`` seconds, at least one token); a response spends one; a response
with no token left is *limited*: dropped, or every ``slip``-th one sent as
a truncated response (TC set, empty sections, question and OPT kept: RFC
2181 section 9, RFC 6891 section 7), or, in ``log_only`` mode, sent anyway
and counted. Unlike BIND, a bucket never goes into debt: a sustained flood
is held at ``rate`` per second rather than silenced. A prefix well below
every limit costs one bucket of its own per response (the fast path,
:class:`RateLimiter`).

The table is bounded (``max_table_size`` entries, the prefixes' own
buckets included): when full, buckets idle
long enough to be full again (they hold no state) are dropped, then the
oldest. One log line (``gslb.rrl``) when a prefix starts being limited and
one when it has been quiet for a second, at most ``LOG_STARTS_PER_S``
starts a second (the rest are counted in one line).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from itertools import islice
from typing import Any, Protocol

log = logging.getLogger("gslb.rrl")

ANSWER, NODATA, NXDOMAIN, REFERRAL, ERROR = range(5)
"""Response kinds (:func:`classify`), indices of :data:`KINDS`."""
KINDS = ("answer", "nodata", "nxdomain", "referral", "error")
"""Kind names, as logs and the ``kind`` metric label spell them."""

DROPPED, SLIPPED, LOGGED_ONLY = "dropped", "slipped", "logged_only"
"""What happened to a limited response (the ``action`` metric label)."""
EVICTED = "evicted"
"""The counter key of buckets dropped from a full table."""

#: Most "limiting starts" lines logged per second; the rest are counted.
LOG_STARTS_PER_S = 10
#: Seconds a limited prefix must go without a limited response to be
#: logged as no longer limited.
QUIET_S = 1.0
#: Most client addresses whose prefix is remembered (then forgotten at once).
CLIENT_CACHE = 65536

Network = IPv4Network | IPv6Network


class Limits(Protocol):
    """What a :class:`RateLimiter` is configured from
    (``gslb.config.model.RateLimit`` is one): per-second rates per kind
    (0: that kind is not limited), ``all_per_second`` (0: no overall
    bound), ``window`` seconds, ``slip`` (0: never), prefix lengths, the
    table bound, ``exempt`` networks and ``log_only``."""

    @property
    def responses_per_second(self) -> int: ...
    @property
    def nodata_per_second(self) -> int: ...
    @property
    def nxdomains_per_second(self) -> int: ...
    @property
    def referrals_per_second(self) -> int: ...
    @property
    def errors_per_second(self) -> int: ...
    @property
    def all_per_second(self) -> int: ...
    @property
    def window_s(self) -> float: ...
    @property
    def slip(self) -> int: ...
    @property
    def ipv4_prefix_length(self) -> int: ...
    @property
    def ipv6_prefix_length(self) -> int: ...
    @property
    def max_table_size(self) -> int: ...
    @property
    def exempt(self) -> Sequence[Network]: ...
    @property
    def log_only(self) -> bool: ...


def classify(response: bytes) -> int:
    """The kind of an encoded response (at least its 12-byte header):
    RCODE NXDOMAIN → NXDOMAIN; another non-zero RCODE → ERROR; NOERROR with
    answers → ANSWER; without, AA set → NODATA (RFC 2308 section 2.2),
    AA clear with authority records → REFERRAL (RFC 1034 section 4.3.2),
    else ERROR (an extended RCODE such as BADVERS lives in the OPT record,
    RFC 6891 section 6.1.3, and leaves the header's NOERROR, AA clear and
    no records)."""
    rcode = response[3] & 0x0F
    if rcode:
        return NXDOMAIN if rcode == 3 else ERROR
    if response[6] or response[7]:
        return ANSWER
    if response[2] & 0x04:
        return NODATA
    return REFERRAL if response[8] or response[9] else ERROR


def _skip_name(data: bytes, pos: int) -> int:
    """The offset after the (maybe compressed) name at ``pos``."""
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def truncated(response: bytes) -> bytes:
    """``response`` as a slipped response: TC set, answer and authority
    sections empty, the question and the OPT record (RFC 6891 section 7:
    a response to an EDNS query carries OPT) kept, flags and RCODE as they
    were. A client retries a truncated response over TCP (RFC 7766 section
    5). Raises ``IndexError`` for bytes that are not a whole message."""
    qdcount = (response[4] << 8) | response[5]
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(response, pos) + 4
    question = response[12:pos]
    records = (((response[6] << 8) | response[7]) + ((response[8] << 8) | response[9]))
    additional = (response[10] << 8) | response[11]
    opt = b""
    for i in range(records + additional):
        start = pos
        pos = _skip_name(response, pos)
        rtype = (response[pos] << 8) | response[pos + 1]
        pos += 10 + ((response[pos + 8] << 8) | response[pos + 9])
        if i >= records and rtype == 41:
            opt = response[start:pos]
            break
    header = (response[:2] + bytes((response[2] | 0x02, response[3])) + response[4:6]
              + b"\0\0\0\0" + (b"\0\1" if opt else b"\0\0"))
    return header + question + opt


@dataclass(slots=True)
class _Limiting:
    """A prefix being limited: since when, and what befell its responses."""

    since: float
    last: float
    kind: int
    dropped: int = 0
    slipped: int = 0
    logged: int = 0


Prefix = list[Any]
"""A client prefix's state: ``[tokens, stamp, keys, dry, owed]``: its own
bucket (tokens, and the time they were counted, seconds), its bucket keys
(one per kind, then the ``all_per_second`` one: ``RateLimiter._learn``),
when its own bucket last ran dry (seconds) and how many responses it had
sent then that its refill had not covered."""


Proven = Callable[[bytes, str], bool]
"""``proven(query, who)``: whether the query message from address ``who``
proves that address is not forged (a valid server cookie); asked only of
queries whose response would be limited."""


class RateLimiter:
    """The responses of one answering process, limited per client prefix
    and kind (module docstring). ``counts[(action, kind name)]`` counts
    limited responses (``action``: :data:`DROPPED`, :data:`SLIPPED`,
    :data:`LOGGED_ONLY`) and ``counts[(EVICTED, "")]`` buckets dropped from
    a full table; the dict is the caller's (kept across
    :meth:`configure`), emptied in place by whoever ships it. Raises
    ``ValueError`` for prefix lengths out of range.

    The fast path: each prefix also has one bucket of its own, spending
    from every response at half the lowest rate and depth configured.
    While it has a token, no bucket of the prefix can be empty (none sees
    more responses than the prefix does), so the response is sent without
    being classified or keyed. When it runs dry it goes into debt (down to
    minus its depth), so under a sustained flood only the per-kind buckets
    decide, and those count the responses the fast path sent without them
    and had not refilled when it ran dry as spent (refilling from then), so
    a key gets no more than its own rate and depth."""

    __slots__ = ("_all", "_clients", "_exempt", "_fast", "_idle_s", "_limiting", "_next_tick",
                 "_prefixes", "_proven", "_rates", "_suppressed", "_table", "_v4_shift",
                 "_v6_shift", "counts", "limits")

    def __init__(self, limits: Limits, counts: dict[tuple[str, str], int] | None = None,
                 proven: Proven | None = None) -> None:
        self.counts: dict[tuple[str, str], int] = counts if counts is not None else {}
        self._proven = proven
        self._table: dict[bytes, list[float]] = {}
        self._prefixes: dict[bytes, Prefix] = {}
        self._clients: dict[str, Prefix] = {}
        self._limiting: dict[bytes, _Limiting] = {}
        self._next_tick = 0.0
        self._suppressed = 0
        self.configure(limits)

    def configure(self, limits: Limits) -> None:
        """Limit by ``limits`` from now on. The buckets are kept when the
        prefix lengths are unchanged (a bucket above a new, lower depth is
        cut down on its next use), else the table starts empty."""
        if not 0 <= limits.ipv4_prefix_length <= 32 or not 0 <= limits.ipv6_prefix_length <= 128:
            raise ValueError("prefix lengths must be 0 to 32 (IPv4) and 0 to 128 (IPv6)")
        old = getattr(self, "limits", None)
        if old is not None and (old.ipv4_prefix_length, old.ipv6_prefix_length) != (
                limits.ipv4_prefix_length, limits.ipv6_prefix_length):
            self._table.clear()
            self._prefixes.clear()
            self._limiting.clear()
        self._clients.clear()  # the exempt networks may have changed
        self.limits = limits
        window = limits.window_s
        per_kind = (limits.responses_per_second, limits.nodata_per_second,
                    limits.nxdomains_per_second, limits.referrals_per_second,
                    limits.errors_per_second)
        self._rates = tuple((float(rate), max(1.0, rate * window)) for rate in per_kind)
        rate = limits.all_per_second
        self._all = (float(rate), max(1.0, rate * window)) if rate else None
        used = [pair for pair in (*self._rates, self._all) if pair is not None and pair[0]]
        # the fast path: half the lowest rate and depth (so a prefix that
        # crosses it still finds half a depth in the buckets of new names)
        low = min(used) if used else (2e12, 2e12)
        self._fast = (low[0] / 2.0, low[1] / 2.0)
        # a bucket left alone this long is full again, even from its deepest
        # debt: it holds no state
        self._idle_s = max([window, *(2.0 * d / r for r, d in used)])
        self._v4_shift = 32 - limits.ipv4_prefix_length
        self._v6_shift = 128 - limits.ipv6_prefix_length
        self._exempt = tuple((net.version, net.max_prefixlen - net.prefixlen,
                              int(net.network_address) >> (net.max_prefixlen - net.prefixlen))
                             for net in limits.exempt)

    def __len__(self) -> int:
        """Buckets in the table (the prefixes' own included)."""
        return len(self._table) + len(self._prefixes)

    def limit(self, response: bytes, who: str, now: float, query: bytes = b""
              ) -> bytes | None:
        """What to send for ``response`` (encoded, at least a header) to
        the UDP client at address ``who`` at time ``now`` (seconds, a
        monotonic clock: ``time.perf_counter`` or ``time.monotonic``, the
        same one every call): ``response`` itself, its :func:`truncated`
        form (slipped) or None (dropped). ``query``: the query message
        ``response`` answers, given to the ``proven`` check of the
        constructor when the response would be limited: a client whose
        query proves its address (a valid server cookie, RFC 7873 section
        5.2.3, as BIND exempts it) is not limited; its responses still
        spend from its buckets."""
        if now >= self._next_tick:
            self._tick(now)
        prefix = self._clients.get(who)
        if prefix is None:
            prefix = self._learn(who, now)
        if not prefix:  # an exempt address
            return response
        rate, depth = self._fast
        tokens = prefix[0] + (now - prefix[1]) * rate
        if tokens > depth:
            tokens = depth
        prefix[1] = now
        tokens -= 1.0
        if tokens >= 0.0:
            prefix[0] = tokens
            return response
        if prefix[0] >= 0.0:  # the fast path ran dry now, owing what it sent
            prefix[3], prefix[4] = now, depth - tokens - 1.0
        prefix[0] = tokens if tokens > -depth else -depth
        return self._slow(response, prefix, now, who, query)

    def _slow(self, response: bytes, prefix: Prefix, now: float, who: str, query: bytes
              ) -> bytes | None:
        """:meth:`limit` for a prefix past its own bucket: by the kind's
        bucket (and the overall one)."""
        keys: tuple[bytes, ...] = prefix[2]
        since, owed = now - prefix[3], prefix[4]
        kind = classify(response)
        rate, depth = self._rates[kind]
        if rate:
            if kind <= NODATA:  # with the question's qname and qtype, lower-cased
                key = keys[kind] + response[12:response.find(b"\0", 12) + 3].lower()
            else:
                key = keys[kind]
            if not self._spend(key, rate, depth, now, owed - since * rate):
                return self._limited(response, keys, kind, now, who, query)
        if self._all is not None and not self._spend(
                keys[-1], self._all[0], self._all[1], now, owed - since * self._all[0]):
            return self._limited(response, keys, kind, now, who, query)
        return response

    def _spend(self, key: bytes, rate: float, depth: float, now: float, owed: float
               ) -> bool:
        """Spend a token from bucket ``key`` (refilled at ``rate`` per
        second up to ``depth``; a new one starts full); False: none left.
        ``owed``: responses the fast path sent without this bucket that it
        has not refilled yet: the bucket holds at most ``depth - owed``."""
        cap = depth - owed if owed > 0.0 else depth
        table = self._table
        bucket = table.get(key)
        if bucket is None:
            if len(self) >= self.limits.max_table_size:
                self._make_room(now)
            tokens = cap
            bucket = table[key] = [cap, now]
        else:
            tokens = bucket[0] + (now - bucket[1]) * rate
            if tokens > cap:
                tokens = cap
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _learn(self, who: str, now: float) -> Prefix:
        """The state of the prefix of address ``who`` (made when new),
        remembered for ``who``; empty for an ``exempt`` address. Bucket keys
        are a kind letter and the prefix: ``4`` or ``6`` and the prefix's
        number, fixed length (``?`` and the text for what is not an
        address)."""
        clients = self._clients
        if len(clients) >= CLIENT_CACHE:
            clients.clear()
        text = who.partition("%")[0]
        if text.startswith("::ffff:") and "." in text:  # IPv4-mapped (RFC 4291 2.5.5.2)
            text = text[7:]
        try:
            if ":" in text:
                family, number = 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text))
                net = b"6" + (number >> self._v6_shift).to_bytes(16)
            else:
                family, number = 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text))
                net = b"4" + (number >> self._v4_shift).to_bytes(4)
        except OSError:
            family, number, net = 0, 0, b"?" + who.encode(errors="replace")
        if any(f == family and number >> shift == n for f, shift, n in self._exempt):
            clients[who] = []
            return clients[who]
        prefix = self._prefixes.get(net)
        if prefix is None:
            if len(self) >= self.limits.max_table_size:
                self._make_room(now)
            keys = tuple(mark + net for mark in (b"a", b"d", b"x", b"r", b"e", b"*"))
            prefix = self._prefixes[net] = [self._fast[1], now, keys, now, 0.0]
        clients[who] = prefix
        return prefix

    def _show(self, key: bytes) -> str:
        """The client prefix of a bucket ``key`` as CIDR text (for logs)."""
        family, number = key[1:2], int.from_bytes(key[2:])
        if family == b"6":
            net = ipaddress.IPv6Address(number << self._v6_shift)
            return f"{net}/{self.limits.ipv6_prefix_length}"
        if family == b"4":
            net4 = ipaddress.IPv4Address(number << self._v4_shift)
            return f"{net4}/{self.limits.ipv4_prefix_length}"
        return key[2:].decode(errors="replace")

    def _limited(self, response: bytes, keys: tuple[bytes, ...], kind: int, now: float,
                 who: str, query: bytes) -> bytes | None:
        """A response with no token left: sent (its query ``proven``,
        ``log_only``), slipped or dropped, counted, and its prefix noted for
        the log."""
        if query and self._proven is not None and self._proven(query, who):
            return response
        prefix = keys[0]
        state = self._limiting.get(prefix)
        if state is None:
            state = self._start(prefix, kind, now)
        else:
            state.last = now
        if self.limits.log_only:
            action: str = LOGGED_ONLY
            out: bytes | None = response
            if state is not None:
                state.logged += 1
        else:
            slip = self.limits.slip
            seen = (state.dropped + state.slipped + 1) if state is not None else 1
            if slip and seen % slip == 0:
                action, out = SLIPPED, _slip(response)
                if state is not None:
                    state.slipped += 1
            else:
                action, out = DROPPED, None
                if state is not None:
                    state.dropped += 1
        key = (action, KINDS[kind])
        self.counts[key] = self.counts.get(key, 0) + 1
        return out

    def _start(self, prefix: bytes, kind: int, now: float) -> _Limiting | None:
        """Note ``prefix`` as limited (logged, at most ``LOG_STARTS_PER_S``
        a second); None when too many prefixes are noted already."""
        if len(self._limiting) >= self.limits.max_table_size:
            return None
        state = self._limiting[prefix] = _Limiting(now, now, kind)
        if self._suppressed < LOG_STARTS_PER_S:
            limits = self.limits
            shown = self._show(prefix)
            log.warning("rate limiting %s: %s responses over %g/s%s", shown, KINDS[kind],
                        self._rates[kind][0] or (self._all or (0.0, 0.0))[0],
                        " (log only: nothing dropped)" if limits.log_only
                        else f" (slip {limits.slip})",
                        extra={"event": "rrl_start", "prefix": shown, "kind": KINDS[kind]})
        self._suppressed += 1
        return state

    def _tick(self, now: float) -> None:
        """Once a second: log the prefixes quiet for ``QUIET_S`` as no
        longer limited, and how many starts went unlogged."""
        self._next_tick = now + 1.0
        if self._suppressed > LOG_STARTS_PER_S:
            unlogged = self._suppressed - LOG_STARTS_PER_S
            log.warning("rate limiting %d more prefix(es) (not logged one by one)", unlogged,
                        extra={"event": "rrl_start", "unlogged": unlogged})
        self._suppressed = 0
        quiet = [p for p, s in self._limiting.items() if now - s.last >= QUIET_S]
        for prefix in quiet:
            s = self._limiting.pop(prefix)
            if len(quiet) <= LOG_STARTS_PER_S:
                shown = self._show(prefix)
                log.info("rate limiting %s ended after %.1f s: %d dropped, %d slipped, "
                         "%d logged only", shown, s.last - s.since, s.dropped, s.slipped,
                         s.logged, extra={"event": "rrl_stop", "prefix": shown,
                                          "dropped": s.dropped, "slipped": s.slipped,
                                          "logged_only": s.logged})
        if len(quiet) > LOG_STARTS_PER_S:
            log.info("rate limiting ended for %d prefix(es)", len(quiet),
                     extra={"event": "rrl_stop", "prefixes": len(quiet)})

    def _make_room(self, now: float) -> None:
        """Drop buckets and prefixes idle long enough to be full; if that
        frees less than a quarter of the bound, the oldest too, down to
        three quarters (so a spoofed flood of new prefixes costs O(1) per
        response). The address cache is emptied (it points at prefixes)."""
        idle = now - self._idle_s
        tables: tuple[dict[bytes, Any], ...] = (self._table, self._prefixes)
        for table in tables:
            for key in [k for k, b in table.items() if b[1] <= idle]:
                del table[key]
        keep = self.limits.max_table_size * 3 // 4
        evicted = 0
        while (extra := len(self) - keep) > 0:
            larger = max(tables, key=len)
            extra = min(extra, len(larger))
            for key in list(islice(larger, extra)):
                del larger[key]
            evicted += extra
        self._clients.clear()
        if evicted:
            counted = (EVICTED, "")
            self.counts[counted] = self.counts.get(counted, 0) + evicted


def _slip(response: bytes) -> bytes | None:
    """The truncated form of ``response``; None (drop) when its bytes do
    not parse (never for what ``gslb.dns.wire.encode`` makes)."""
    try:
        return truncated(response)
    except IndexError:
        return None


__all__ = ["ANSWER", "DROPPED", "ERROR", "EVICTED", "KINDS", "LOGGED_ONLY", "NODATA",
           "NXDOMAIN", "REFERRAL", "SLIPPED", "Limits", "Proven", "RateLimiter", "classify",
           "truncated"]
