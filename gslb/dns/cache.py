"""Answer cache: encoded responses reused for repeated queries.

A nameserver for a few busy names sees the same few query shapes again and
again; decoding, steering and encoding each one costs many times what
patching a stored response does (figures: ``docs/performance.md``, "Where
the time goes"). The cache holds the encoded
response per **query shape**: the query message without its ID, with the
qname lower-cased (names compare case-insensitively, RFC 4343 section 3),
plus whether it came over UDP. The EDNS OPT record, its payload size, DO
bit and ECS option are part of the shape, so an ECS answer is only reused
for the same client subnet (RFC 7871 section 7.3.1).

On a hit the stored response gets the query's ID and the qname exactly as
asked (the case echo of 0x20, draft-vixie-dnsext-dns0x20): the question is
the same length in both, and names in the answer point at it (offset 12).

What may be stored is the authority's call (``Answer.reusable``,
``Answer.per_client``), made from what each steering choice reports it
depended on (:class:`gslb.steering.base.Basis`): an answer that came from a
random draw between two or more origins, or from RTTs, is never stored;
one that depends on where the client is, is keyed by the packet's source
address too when the query has no ECS address to go by. Every entry
belongs to one health ``generation``: the first lookup that sees another
generation empties the cache, so a state change or drain shows in the very
next answer.

An answer whose leading A or AAAA RRset rotates (``Answer.rotate``: a
pool's ``order`` of ``cyclic`` or ``random``) is stored with a
:class:`Rotation`: each hit moves the first record on by one (the k-th hit
of an entry starts k records further than the answer stored, so over n
hits each address comes first once), or shuffles the records, in the
stored bytes: the answer section starts right after the question, and
every record of the RRset has the same length (owner a pointer to the
qname, the same type, RDATA without names), so records trade places
without a compression pointer moving. The order of an RRset carries no
meaning (RFC 2181 section 5); rotating it is RFC 1794's round robin.

An answer decided by one weighted draw and nothing else that moves
(``Answer.drawn``; :mod:`gslb.steering.draws` says which) is stored with a
:class:`Draw`: the response for every outcome of that draw, made when the
first one was, and their cumulative weights; each hit draws an outcome
afresh from the cache's ``rng``, so the shares stay those of the weights
(the entry is the draw, not one of its results).

Observers (metrics, query log) hear of a reused answer with the query and
answer it was built for: the query log shows the qname in lower case and
the ECS of that first query (the same shape: the same ECS option).

Only messages of the decoder's common shape are stored (one question of
plain labels, at most an OPT record: ``Query.question_wire`` set); the
first zero octet after the header then ends the qname.

A COOKIE option (RFC 7873) differs for every client, so it is left out of
the shape (the key then starts ``u``/``t`` rather than ``U``/``T``): every
client with a cookie shares one entry. The response stored is the one made
for the first of them; its COOKIE option is its last ``REPLY_BYTES``
octets (``gslb.dns.wire.response_options`` puts it last), which the
cache's user replaces on a hit with the cookie for this client
(:func:`cookie_data` finds the query's; ``gslb.authority.respond`` does
it). Only the shape of a query with EDNS options pays for this: one
comparison otherwise.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from enum import Enum
from typing import Final, Generic, NamedTuple, TypeVar

from gslb.dns.cookies import OPTION_COOKIE

#: Default bound on stored responses (and per-client variants); what one
#: costs in memory: ``docs/performance.md``, "The answer cache's own costs".
DEFAULT_ENTRIES = 16384

Note = TypeVar("Note")
"""What the cache's user stores beside each response and gets back on a hit."""

Shape = tuple[bytes, int]
"""A query's key and the offset where its qname ends (:meth:`AnswerCache.shape`)."""


#: From the qname's terminating zero octet to the first EDNS option when an
#: OPT record follows the question: the zero, QTYPE and QCLASS (5), the OPT
#: record's root name, TYPE, CLASS, TTL and RDLENGTH (11).
_TO_OPTIONS = 16


def cookie_span(data: bytes, end: int) -> tuple[int, int] | None:
    """Where the first COOKIE option of query ``data`` lies, from its
    OPTION-CODE to the end of its data, when ``data`` is a question (whose
    qname ends at offset ``end``) then an OPT record whose options are well
    formed up to it and its data is well formed (8 or 16 to 40 octets,
    RFC 7873 section 5.2.2); else None."""
    pos, stop = end + _TO_OPTIONS, len(data)
    while pos + 4 <= stop:
        code = (data[pos] << 8) | data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        after = pos + 4 + length
        if after > stop:
            return None
        if code == OPTION_COOKIE:  # valid_length, inline
            return (pos, after) if length == 8 or 16 <= length <= 40 else None
        pos = after
    return None


def cookie_data(data: bytes, end: int) -> bytes | None:
    """The COOKIE option data of query ``data`` (qname ending at offset
    ``end``) as :func:`cookie_span` finds it, or None."""
    span = cookie_span(data, end)
    return None if span is None else data[span[0] + 4:span[1]]


def _without_cookie(key: bytes, end: int) -> tuple[bytes, bytes] | None:
    """The key of a query with a COOKIE option (``key`` and ``end`` of its
    :meth:`AnswerCache.shape`), the option left out and ``u``/``t`` first,
    and the option's data; None when the query has none. (The key holds
    the query from its qname's zero octet on at offset ``end - 1``.)"""
    if len(key) <= end + _TO_OPTIONS - 1:
        return None
    span = cookie_span(key, end - 1)
    if span is None:
        return None
    start, stop = span
    return ((b"u" if key[0] == 0x55 else b"t") + key[1:start] + key[stop:],
            key[start + 4:stop])


CookiePatch = Callable[[bytes, bytes, str, bool], bytes]
"""``patch(response, option, who, udp)``: the stored ``response`` (ID and
qname already patched) as it must go to a query whose COOKIE option data
is ``option``, from ``who`` over UDP or TCP: its last octets, the COOKIE
option data, made for this client; empty when it must not be reused (the
query gets another answer, BADCOOKIE)."""


class Rotation:
    """How a stored response's leading answer records move on each hit:
    ``count`` records of ``size`` octets from offset ``start`` (to
    ``stop``); cyclic (``turn``: the hits so far, modulo ``count``) or
    shuffled (``shuffle``: Fisher-Yates, each swap's index drawn below
    ``n`` as ``bits(n.bit_length())`` again until below ``n``, ``bits``
    being ``rng.getrandbits``: the draws ``random.Random.shuffle`` makes,
    so a seeded ``rng`` shuffles alike here and in the compiled packet
    path, ``gslb.dns._packets``, which reads these attributes and moves
    ``turn`` itself)."""

    __slots__ = ("bits", "count", "shuffle", "size", "start", "stop", "turn")

    def __init__(self, start: int, size: int, count: int, shuffle: bool,
                 rng: random.Random) -> None:
        self.start, self.size, self.count = start, size, count
        self.stop = start + size * count
        self.shuffle, self.bits, self.turn = shuffle, rng.getrandbits, 0

    @classmethod
    def of(cls, response: bytes, end: int, count: int, shuffle: bool,
           rng: random.Random) -> Rotation | None:
        """The rotation of the first ``count`` answer records of
        ``response`` (its qname ending at offset ``end``) when they are
        what an A or AAAA RRset of the qname encodes to (owner a pointer to
        offset 12, one type and RDATA length); None otherwise (the answer
        then must not be stored, its order would freeze)."""
        start = end + 5  # the zero octet, QTYPE and QCLASS
        if len(response) < start + 12:
            return None
        head = response[start:start + 4]
        size = 12 + ((response[start + 10] << 8) | response[start + 11])
        if head[:2] != b"\xc0\x0c" or size not in (16, 28):
            return None
        rotation = cls(start, size, count, shuffle, rng)
        if (((response[6] << 8) | response[7]) < count or len(response) < rotation.stop
                or any(response[p:p + 4] != head or response[p + 10:p + 12]
                       != response[start + 10:start + 12]
                       for p in range(start, rotation.stop, size))):
            return None
        return rotation

    def pick(self, stored: bytes, note: Note) -> tuple[bytes, Note]:
        """``(stored, note)`` as the next hit answers it: :meth:`apply`."""
        return self.apply(stored), note

    def apply(self, stored: bytes) -> bytes:
        """``stored`` with its records in the order of the next hit."""
        start, stop, size = self.start, self.stop, self.size
        if self.shuffle:
            records = [stored[p:p + size] for p in range(start, stop, size)]
            bits = self.bits
            for i in range(len(records) - 1, 0, -1):
                n = i + 1
                k = n.bit_length()
                j = bits(k)
                while j >= n:
                    j = bits(k)
                records[i], records[j] = records[j], records[i]
            return stored[:start] + b"".join(records) + stored[stop:]
        self.turn = turn = (self.turn + 1) % self.count
        cut = start + turn * size
        return stored[:start] + stored[cut:stop] + stored[start:cut] + stored[stop:]


#: The most outcomes of one draw stored in one entry (an answer drawn among
#: more is answered afresh each time, as before drawn entries).
MAX_OUTCOMES = 32

#: The largest value of ``bits(64)``.
_MAX64 = (1 << 64) - 1
#: The largest total weight of a stored draw (the compiled path draws in 64
#: bits; a draw of a larger total is answered afresh each time).
MAX_TOTAL_WEIGHT = 1 << 62


def storable_draw(cumulative: tuple[int, ...] | None, rotate: int) -> bool:
    """Whether an answer of one weighted draw by ``cumulative`` (None: the
    lookup drew otherwise, or more than once) whose leading ``rotate``
    records rotate (0: none) is stored as a :class:`Draw`: not with a
    rotation, past :data:`MAX_OUTCOMES` outcomes or past
    :data:`MAX_TOTAL_WEIGHT`."""
    return (cumulative is not None and rotate <= 1 and 0 < len(cumulative) <= MAX_OUTCOMES
            and cumulative[-1] <= MAX_TOTAL_WEIGHT)


class Draw(NamedTuple, Generic[Note]):
    """A stored answer that was one outcome of a weighted draw: ``outcomes``
    holds ``(response, note)`` for each outcome ``i``, drawn with
    probability ``(cumulative[i] - cumulative[i - 1]) / cumulative[-1]``.
    ``bits``: the random source's ``getrandbits``. A hit takes
    ``v = bits(64)``, again while ``v > accept_max`` (so ``v % total`` is
    uniform: ``accept_max`` is ``2**64 - 1 - 2**64 % total``), and answers
    outcome ``bisect_right(cumulative, v % total)``. The compiled packet
    path draws the same way from the same source, in the same order, so
    both paths answer alike byte for byte. (A tuple, fields in this order:
    ``gslb.dns._packets`` reads them.)"""

    bits: Callable[[int], int]
    cumulative: tuple[int, ...]
    accept_max: int
    outcomes: tuple[tuple[bytes, Note], ...]

    @classmethod
    def of(cls, rng: random.Random, cumulative: tuple[int, ...],
           outcomes: tuple[tuple[bytes, Note], ...]) -> Draw[Note]:
        """The draw of ``outcomes`` by ``cumulative`` (one per outcome,
        increasing positive integers), drawing from ``rng``. Raises
        ``ValueError`` when they do not match."""
        if len(outcomes) != len(cumulative) or not cumulative or cumulative[0] < 1:
            raise ValueError("one outcome per cumulative weight, the first at least 1")
        return cls(rng.getrandbits, cumulative, _MAX64 - (1 << 64) % cumulative[-1], outcomes)

    def pick(self, stored: bytes, note: Note) -> tuple[bytes, Note]:
        """The outcome of the next hit's draw (``stored`` and ``note`` are
        one of the outcomes: the first drawn)."""
        v = self.bits(64)
        while v > self.accept_max:
            v = self.bits(64)
        return self.outcomes[bisect_right(self.cumulative, v % self.cumulative[-1])]


class _Marker(Enum):
    PER_CLIENT = 0


#: The value stored for a shape whose answers are kept per source address.
_PER_CLIENT: Final = _Marker.PER_CLIENT


class AnswerCache(Generic[Note]):
    """Encoded responses by query shape, for one health view, each stored
    with a ``Note`` (``AnswerCache[Note]``: the authority keeps the query
    and answer a response was built for, for the observers of a reuse).

    ``generation``: returns the health view's current generation (any
    change empties the cache). ``max_entries``: at most this many stored
    responses; the oldest goes first when full. ``cookie_patch``: what a
    hit for a query with a COOKIE option goes through (:data:`CookiePatch`);
    None: the stored response as it is. ``rng``: what shuffles a stored
    answer of ``order: random`` and draws the outcome of a :class:`Draw`
    (default: a new ``random.Random``; the authority gives its own). Not
    thread-safe: one event loop.
    """

    __slots__ = ("_entries", "_generation", "_rng", "_seen", "cookie_patch", "hits",
                 "max_entries", "misses")

    def __init__(self, generation: Callable[[], int], max_entries: int = DEFAULT_ENTRIES,
                 cookie_patch: CookiePatch | None = None,
                 rng: random.Random | None = None) -> None:
        self.cookie_patch = cookie_patch
        self._rng = rng if rng is not None else random.Random()
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._generation = generation
        self._seen = generation()
        # OrderedDict, not dict: evicting the oldest of a full dict with
        # ``del d[next(iter(d))]`` scans the deleted slots left at its front
        # until the next resize; ``popitem(last=False)`` is O(1) (figures:
        # docs/performance.md, "The answer cache's own costs")
        self._entries: OrderedDict[
            bytes | tuple[bytes, str],
            tuple[bytes, Note, Rotation | Draw[Note] | None] | _Marker] = OrderedDict()
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def carry_counts(self, old: AnswerCache[Note] | None) -> None:
        """Go on counting from ``old``'s ``hits`` and ``misses``: a config
        reload replaces the cache, and the metrics made of these are
        Prometheus counters, which must never go down."""
        if old is not None:
            self.hits += old.hits
            self.misses += old.misses

    @staticmethod
    def shape(data: bytes, udp: bool) -> Shape:
        """The key of ``data`` (a query message of at least 12 octets) and
        the offset where its qname ends (its terminating zero octet): what
        ``get`` and ``put`` take, worked out once per query (with a COOKIE
        option, they use the key without it)."""
        end = data.find(0, 12)
        if end < 0:
            end = len(data)
        return (b"U" if udp else b"T") + data[2:12] + data[12:end].lower() + data[end:], end

    def get(self, shape: Shape, data: bytes, who: str) -> tuple[bytes, Note] | None:
        """The response to ``data`` (whose ``shape`` is given) from ``who``,
        ID and qname as asked, and the note stored with it; None on a miss."""
        generation = self._generation()
        if generation != self._seen:
            self._entries.clear()
            self._seen = generation
            self.misses += 1
            return None
        key, end = shape
        entries = self._entries
        found = entries.get(key)
        if found is _PER_CLIENT:
            found = entries.get((key, who))
        elif found is None and (bare := _without_cookie(key, end)) is not None:
            # a COOKIE option: tried second, so a query without one pays nothing
            return self._get_cookie(*bare, data, end, who)
        if found is None or found is _PER_CLIENT:  # (a per-client key never holds the marker)
            self.misses += 1
            return None
        self.hits += 1
        stored, note, variant = found
        if variant is not None:
            stored, note = variant.pick(stored, note)
        return data[:2] + stored[2:12] + data[12:end] + stored[end:], note

    def table(self) -> dict[object, object]:
        """The stored entries themselves, for the compiled packet path
        (``gslb.dns._packets``), which answers the hits :meth:`get` would
        answer from ``(response, note, variant)`` entries (a plain one, a
        :class:`Rotation`, a :class:`Draw`; a COOKIE query's under its key
        without the option) and leaves per-client entries to :meth:`get`:
        emptied first when the view moved (as :meth:`get` does). Valid
        until the loop next runs anything else; the caller adds the hits it
        answered to ``hits``."""
        generation = self._generation()
        if generation != self._seen:
            self._entries.clear()
            self._seen = generation
        return self._entries  # type: ignore[return-value]

    def holds(self, shape: Shape, who: str) -> bool | None:
        """Whether a query of ``shape`` from ``who`` would be answered from
        this cache now, without changing it (no count, no eviction, no
        rotation: ``gslb explain``): True, False, or None when it is kept
        per source address and ``who`` has none stored."""
        if self._generation() != self._seen:
            return False  # the next get empties it
        bare = _without_cookie(*shape)
        key = shape[0] if bare is None else bare[0]
        found = self._entries.get(key)
        if found is _PER_CLIENT:
            return True if self._entries.get((shape[0], who)) is not None else None
        return found is not None

    def _get_cookie(self, key: bytes, option: bytes, data: bytes, end: int,
                    who: str) -> tuple[bytes, Note] | None:
        """``get`` for a query with a COOKIE option (its data ``option``),
        whose key without it is ``key``: the stored response with
        ``cookie_patch`` applied."""
        entries = self._entries
        found = entries.get(key)
        if found is _PER_CLIENT:
            found = entries.get((key, who))
        if found is None or found is _PER_CLIENT:
            self.misses += 1
            return None
        stored, note, variant = found
        if variant is not None:
            stored, note = variant.pick(stored, note)
        response = data[:2] + stored[2:12] + data[12:end] + stored[end:]
        if self.cookie_patch is not None:
            response = self.cookie_patch(response, option, who, key[0] == 0x75)  # "u"
            if not response:
                self.misses += 1
                return None
        self.hits += 1
        return response, note

    def put(self, shape: Shape, who: str, response: bytes, note: Note,
            per_client: bool, rotate: int = 0, shuffle: bool = False,
            drawn: tuple[tuple[int, ...], tuple[tuple[bytes, Note], ...]] | None = None
            ) -> None:
        """Store ``response`` (to the query of ``shape`` from ``who``) with
        ``note`` (given back on hits); ``per_client``: only for queries from
        ``who``; ``rotate``, ``shuffle``: its first ``rotate`` answer
        records move on each hit, randomly when ``shuffle``
        (``Answer.rotate``, :class:`Rotation`; not stored when they are not
        laid out as one A or AAAA RRset of the qname). ``drawn``: the
        response was one outcome of a weighted draw, ``(cumulative,
        outcomes)`` as in :class:`Draw` (``response`` among them): each hit
        draws again (stored only when :func:`storable_draw`)."""
        if self._generation() != self._seen:
            return  # the view moved while answering: this answer may be stale
        variant: Rotation | Draw[Note] | None = None
        if drawn is not None:
            if not storable_draw(drawn[0], rotate):
                return
            variant = Draw.of(self._rng, *drawn)
        elif rotate > 1 and ((response[6] << 8) | response[7]):  # none when truncated (TC)
            variant = Rotation.of(response, shape[1], rotate, shuffle, self._rng)
            if variant is None:
                return
        bare = _without_cookie(*shape)
        key: bytes | tuple[bytes, str] = shape[0] if bare is None else bare[0]
        entries = self._entries
        if per_client:
            entries[key] = _PER_CLIENT
            key = (shape[0], who)
        while len(entries) >= self.max_entries:
            entries.popitem(last=False)
        entries[key] = (response, note, variant)


__all__ = ["DEFAULT_ENTRIES", "MAX_OUTCOMES", "MAX_TOTAL_WEIGHT", "AnswerCache", "CookiePatch",
           "Draw", "Note", "Rotation", "Shape", "cookie_data", "cookie_span", "storable_draw"]
