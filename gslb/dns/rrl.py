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
is held at ``rate`` per second rather than silenced.

The table is bounded (``max_table_size`` entries): when full, buckets idle
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
from time import monotonic
from typing import Protocol

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
#: Most addresses whose exemption is remembered (then forgotten at once).
EXEMPT_CACHE = 4096

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


class RateLimiter:
    """The responses of one answering process, limited per client prefix
    and kind (module docstring). ``counts[(action, kind name)]`` counts
    limited responses (``action``: :data:`DROPPED`, :data:`SLIPPED`,
    :data:`LOGGED_ONLY`) and ``counts[(EVICTED, "")]`` buckets dropped from
    a full table; the dict is the caller's (kept across
    :meth:`configure`), emptied in place by whoever ships it. ``clock``
    gives seconds (monotonic). Raises ``ValueError`` for prefix lengths out
    of range."""

    __slots__ = ("_all", "_clock", "_exempt", "_exempt_cache", "_idle_s", "_limiting", "_next_tick",
                 "_rates", "_suppressed", "_table", "_v4_fast", "_v4_shift", "_v6_shift",
                 "counts", "limits")

    def __init__(self, limits: Limits, counts: dict[tuple[str, str], int] | None = None,
                 clock: Callable[[], float] = monotonic) -> None:
        self._clock = clock
        self.counts: dict[tuple[str, str], int] = counts if counts is not None else {}
        self._table: dict[object, list[float]] = {}
        self._limiting: dict[object, _Limiting] = {}
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
            self._limiting.clear()
        self.limits = limits
        window = limits.window_s
        per_kind = (limits.responses_per_second, limits.nodata_per_second,
                    limits.nxdomains_per_second, limits.referrals_per_second,
                    limits.errors_per_second)
        self._rates = tuple((float(rate), max(1.0, rate * window)) for rate in per_kind)
        rate = limits.all_per_second
        self._all = (float(rate), max(1.0, rate * window)) if rate else None
        # a bucket left alone this long is full again: it holds no state
        used = [r for r, _ in self._rates if r] + ([self._all[0]] if self._all else [])
        self._idle_s = max([window, *(1.0 / r for r in used)])
        self._v4_fast = limits.ipv4_prefix_length == 24
        self._v4_shift = 32 - limits.ipv4_prefix_length
        self._v6_shift = 128 - limits.ipv6_prefix_length
        self._exempt = tuple(limits.exempt)
        self._exempt_cache: dict[str, bool] = {}

    def __len__(self) -> int:
        """Buckets in the table."""
        return len(self._table)

    def limit(self, response: bytes, who: str, exempt: bool = False) -> bytes | None:
        """What to send for ``response`` (encoded, at least a header) to
        the UDP client at address ``who``: ``response`` itself, its
        :func:`truncated` form (slipped) or None (dropped). ``exempt``: the
        client is not to be limited whatever its address (a valid server
        cookie, RFC 7873 section 5.2.3, as BIND exempts it); its responses
        still spend from its buckets."""
        now = self._clock()
        if now >= self._next_tick:
            self._tick(now)
        kind = classify(response)
        rate, depth = self._rates[kind]
        if not rate:
            return response
        try:
            prefix = self._prefix(who)
        except (OSError, ValueError):
            prefix = who
        if kind <= NODATA:
            end = response.find(b"\0", 12)
            key: object = (prefix, kind, response[12:end + 3].lower())
        else:
            key = (prefix, kind)
        table = self._table
        bucket = table.get(key)
        if bucket is None:
            if len(table) >= self.limits.max_table_size:
                self._make_room(now)
            table[key] = [depth - 1.0, now]
        else:
            tokens = bucket[0] + (now - bucket[1]) * rate
            if tokens > depth:
                tokens = depth
            bucket[1] = now
            if tokens < 1.0:
                bucket[0] = tokens
                return self._limited(response, who, prefix, kind, now, exempt)
            bucket[0] = tokens - 1.0
        if self._all is not None and not self._spend_all(prefix, now):
            return self._limited(response, who, prefix, kind, now, exempt)
        return response

    def _spend_all(self, prefix: object, now: float) -> bool:
        """Spend a token from the prefix's overall bucket; False: none left."""
        assert self._all is not None
        rate, depth = self._all
        key = (prefix,)
        bucket = self._table.get(key)
        if bucket is None:
            if len(self._table) >= self.limits.max_table_size:
                self._make_room(now)
            self._table[key] = [depth - 1.0, now]
            return True
        tokens = min(depth, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prefix(self, who: str) -> object:
        """The client prefix of address ``who``: a string (IPv4 /24: the
        first three octets) or an int (IPv6: negative). Raises ``OSError``
        or ``ValueError`` for a string that is not an address."""
        if ":" in who:
            if who.startswith("::ffff:") and "." in who:  # IPv4-mapped (RFC 4291 2.5.5.2)
                return self._prefix(who[7:])
            packed = socket.inet_pton(socket.AF_INET6, who.partition("%")[0])
            return -1 - (int.from_bytes(packed, "big") >> self._v6_shift)
        if self._v4_fast:
            return who.rpartition(".")[0]
        return int.from_bytes(socket.inet_aton(who), "big") >> self._v4_shift

    def _show(self, prefix: object) -> str:
        """``prefix`` as CIDR text (for logs)."""
        limits = self.limits
        if isinstance(prefix, str):
            return f"{prefix}.0/24" if self._v4_fast else prefix
        if isinstance(prefix, int) and prefix < 0:
            net = (-1 - prefix) << self._v6_shift
            return f"{ipaddress.IPv6Address(net)}/{limits.ipv6_prefix_length}"
        if isinstance(prefix, int):
            return f"{ipaddress.IPv4Address(prefix << self._v4_shift)}/{limits.ipv4_prefix_length}"
        return str(prefix)

    def _is_exempt(self, who: str) -> bool:
        """``who`` is inside an ``exempt`` network (remembered per address)."""
        if not self._exempt:
            return False
        cache = self._exempt_cache
        known = cache.get(who)
        if known is None:
            try:
                address = ipaddress.ip_address(who.partition("%")[0])
            except ValueError:
                known = False
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                known = any(address in net for net in self._exempt)
            if len(cache) >= EXEMPT_CACHE:
                cache.clear()
            cache[who] = known
        return known

    def _limited(self, response: bytes, who: str, prefix: object, kind: int, now: float,
                 exempt: bool) -> bytes | None:
        """A response with no token left: sent (exempt, ``log_only``),
        slipped or dropped, counted, and its prefix noted for the log."""
        if exempt or self._is_exempt(who):
            return response
        state = self._limiting.get(prefix)
        if state is None:
            state = self._start(prefix, kind, now)
        else:
            state.last = now
        counts = self.counts
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
        counts[key] = counts.get(key, 0) + 1
        return out

    def _start(self, prefix: object, kind: int, now: float) -> _Limiting | None:
        """Note ``prefix`` as limited (logged, at most ``LOG_STARTS_PER_S``
        a second); None when too many prefixes are noted already."""
        if len(self._limiting) >= self.limits.max_table_size:
            return None
        state = self._limiting[prefix] = _Limiting(now, now, kind)
        if self._suppressed < LOG_STARTS_PER_S:
            limits = self.limits
            rate = self._rates[kind][0]
            log.warning("rate limiting %s: %s responses over %g/s%s", self._show(prefix),
                        KINDS[kind], rate,
                        " (log only: nothing dropped)" if limits.log_only
                        else f" (slip {limits.slip})",
                        extra={"event": "rrl_start", "prefix": self._show(prefix),
                               "kind": KINDS[kind]})
        self._suppressed += 1
        return state

    def _tick(self, now: float) -> None:
        """Once a second: log the prefixes quiet for ``QUIET_S`` as no
        longer limited, and how many starts went unlogged."""
        self._next_tick = now + 1.0
        if self._suppressed > LOG_STARTS_PER_S:
            log.warning("rate limiting %d more prefix(es) (not logged one by one)",
                        self._suppressed - LOG_STARTS_PER_S,
                        extra={"event": "rrl_start", "unlogged": self._suppressed
                               - LOG_STARTS_PER_S})
        self._suppressed = 0
        quiet = [p for p, s in self._limiting.items() if now - s.last >= QUIET_S]
        for prefix in quiet:
            s = self._limiting.pop(prefix)
            if len(quiet) <= LOG_STARTS_PER_S:
                log.info("rate limiting %s ended after %.1f s: %d dropped, %d slipped, "
                         "%d logged only", self._show(prefix), s.last - s.since, s.dropped,
                         s.slipped, s.logged,
                         extra={"event": "rrl_stop", "prefix": self._show(prefix),
                                "dropped": s.dropped, "slipped": s.slipped,
                                "logged_only": s.logged})
        if len(quiet) > LOG_STARTS_PER_S:
            log.info("rate limiting ended for %d prefix(es)", len(quiet),
                     extra={"event": "rrl_stop", "prefixes": len(quiet)})

    def _make_room(self, now: float) -> None:
        """Drop buckets idle long enough to be full; if that frees less
        than a quarter of the table, the oldest too, down to three quarters
        (so a spoofed flood of new prefixes costs O(1) per response)."""
        table = self._table
        bound = self.limits.max_table_size
        idle = now - self._idle_s
        for key in [k for k, b in table.items() if b[1] <= idle]:
            del table[key]
        keep = bound * 3 // 4
        if len(table) > keep:
            extra = len(table) - keep
            for key in list(islice(table, extra)):
                del table[key]
            evicted = (EVICTED, "")
            self.counts[evicted] = self.counts.get(evicted, 0) + extra


def _slip(response: bytes) -> bytes | None:
    """The truncated form of ``response``; None (drop) when its bytes do
    not parse (never for what ``gslb.dns.wire.encode`` makes)."""
    try:
        return truncated(response)
    except IndexError:
        return None


__all__ = ["ANSWER", "DROPPED", "ERROR", "EVICTED", "KINDS", "LOGGED_ONLY", "NODATA",
           "NXDOMAIN", "REFERRAL", "SLIPPED", "Limits", "RateLimiter", "classify", "truncated"]
