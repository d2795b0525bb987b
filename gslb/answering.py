"""The answer path of one answering process: bytes in, bytes out, counted.

``gslb serve`` answers through one :class:`Answering` (with ``--workers N``,
each worker process has its own and the supervisor none). It holds the
:class:`gslb.authority.Authority` in force, times each answer into a
:class:`gslb.stats.QueryStats` and hands every response to the process's
observer (metrics and the sampled query log). :func:`build_authority` is
the one way an ``Authority`` is made from a config for serving, so the
single-process server and the workers answer alike.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import random
from dataclasses import dataclass
from time import perf_counter
from typing import cast

from gslb.authority import Authority, CacheNote, respond, servfail
from gslb.config.model import Config
from gslb.dns.cache import DEFAULT_ENTRIES
from gslb.dns.cookies import SIPHASH
from gslb.dns.rrl import RateLimiter
from gslb.geo import AsnDB, GeoDB
from gslb.health.view import HealthView
from gslb.logs import RateLimitedLog, error_key, qtype_name, with_query_log
from gslb.stats import QueryStats

log = logging.getLogger("gslb.dns")

#: Seconds between two tracebacks of one distinct internal error (its
#: exception type and where it was raised, :func:`gslb.logs.error_key`).
ERROR_LOG_PERIOD_S = 60.0


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """How a process answers, beside the config: ``answer_cache`` bounds
    the answer cache (responses; 0 disables it, :mod:`gslb.dns.cache`);
    ``query_log_sample`` is the fraction (0 to 1) of queries logged on
    ``gslb.query``; ``server_id`` is answered to NSID and CHAOS
    ``id.server`` (:func:`gslb.authority.server_identity`; None: not
    answered)."""

    answer_cache: int = DEFAULT_ENTRIES
    query_log_sample: float = 0.0
    server_id: str | None = None


def build_authority(config: Config, view: HealthView, geo: GeoDB | None, stats: QueryStats,
                    settings: AnswerSettings, rng: random.Random | None = None,
                    asn: AsnDB | None = None) -> Authority:
    """The :class:`Authority` that serves ``config``, reading health from
    ``view``, locating clients through ``geo`` (None: geo pools answer
    from their ``default``), finding their AS through ``asn`` (None: no
    ASN database) and counting steering outcomes into ``stats``.
    Raises ``ValueError`` for a bad ``settings.server_id`` or a config the
    validator should have refused."""
    return Authority(config, view, geo.locate if geo is not None else None, rng=rng,
                     on_choice=stats.choice, cache_entries=settings.answer_cache,
                     server_id=settings.server_id,
                     asn_lookup=asn.lookup if asn is not None else None,
                     signing_counts=stats.signing)


class Answering:
    """Answers queries with ``authority`` (swapped by :meth:`install` on
    reload), counting into ``stats``; ``query_log_sample`` as in
    :class:`AnswerSettings`. UDP responses go through ``limiter``
    (:mod:`gslb.dns.rrl`) when the config has a ``rate_limit`` section;
    its counts land in ``stats.rrl``; a client whose query carries a valid
    server cookie is not limited. Raises ``ValueError`` for a sample
    above 1.

    A query whose answer fails with an exception (a bug in lookup,
    steering or encoding, or in a health view) is answered SERVFAIL
    (:func:`gslb.authority.servfail`), counted in
    ``stats.internal_errors`` and logged on ``gslb.dns`` with its
    traceback, one line per distinct error (:func:`gslb.logs.error_key`)
    per ``ERROR_LOG_PERIOD_S`` seconds."""

    __slots__ = ("_errors", "_observe", "authority", "limiter", "stats")

    def __init__(self, authority: Authority, stats: QueryStats,
                 query_log_sample: float = 0.0) -> None:
        self.authority = authority
        self.stats = stats
        self._observe = with_query_log(stats.query, query_log_sample)
        self._errors = RateLimitedLog(log, ERROR_LOG_PERIOD_S)
        self.limiter: RateLimiter | None = None
        self._set_limits(authority.config)

    def handle(self, data: bytes, who: str, udp: bool) -> bytes | None:
        """Answer one query message from address ``who`` (the DNS
        listeners' handler, :mod:`gslb.dns.server`); None: send nothing.
        Never raises (an ``Exception``): see the class doc. Over UDP the
        response may be dropped or truncated by the rate limiter; TCP is
        never limited (its source is proven)."""
        start = perf_counter()
        try:
            response = respond(self.authority, data, who, udp, self._observe)
            if udp and response is not None and self.limiter is not None:
                response = self.limiter.limit(response, who, start, data)
        except Exception as exc:  # the limiter's too: never silence
            response = self._failed(exc, data, who, udp)
        self.stats.duration(perf_counter() - start)
        return response

    def cached_table(self) -> tuple[dict[object, object], object] | None:
        """The answer cache's entries for the compiled packet path
        (``gslb.dns.server.CachedAnswers``) and the DNS Cookies state it
        answers COOKIE queries with: ``()`` when cookies are off, else
        ``(now, require, secrets, siphash)`` (epoch seconds of this batch
        by the cookies' clock, ``Cookies.require``, its secrets, current
        first, and ``siphashc.siphash``: ``Authority.cookie_patch``'s
        inputs). None when every query must go through :meth:`handle`: no
        answer cache, a rate limiter (it reads each UDP response), a
        sampled query log (it reads each query), or steering outcomes
        heard by something other than ``stats`` (each must hear of every
        one)."""
        authority = self.authority
        cache = authority.cache
        if (cache is None or self.limiter is not None or self._observe != self.stats.query
                or authority.on_choice != self.stats.choice):
            return None
        cookies = authority.cookies
        if cookies is None:
            return cache.table(), ()
        return cache.table(), (int(cookies.clock()), cookies.require, cookies.secrets,
                              SIPHASH)

    def cached_served(self, hits: int, notes: list[tuple[object, int]],
                      seconds_each: float) -> None:
        """Count ``hits`` answers the compiled packet path gave from the
        table :meth:`cached_table` returned in this turn of the loop, each
        of ``notes`` (a ``CacheNote``) ``count`` times, each answer
        ``seconds_each`` seconds (its share of the batch's time outside
        :meth:`handle`), as :meth:`handle` counts a hit."""
        cache = self.authority.cache
        if cache is not None:
            cache.hits += hits
        stats = self.stats
        for note, times in notes:
            query, answer, choices = cast(CacheNote, note)
            stats.reused(query, answer, choices, times)
        stats.duration(seconds_each, hits)

    def _failed(self, exc: Exception, data: bytes, who: str, udp: bool) -> bytes | None:
        """SERVFAIL for ``data``, whose answer raised ``exc``: counted, logged."""
        self.stats.internal_errors += 1
        response, query = servfail(data, who, udp, self._observe)
        asked = f"{query.qname} {qtype_name(query.qtype)}" if query is not None else "a query"
        with contextlib.suppress(Exception):  # a log handler failing: still answer
            self._errors.log(error_key(exc), logging.ERROR, "internal error answering %s from "
                             "%s (SERVFAIL): %s: %s", asked, who, type(exc).__name__, exc,
                             exc_info=exc, extra={"client": who})
        return response

    def _set_limits(self, config: Config) -> None:
        """The rate limiter for ``config``: none without a ``rate_limit``
        section; the one in use reconfigured (keeping its buckets when the
        prefix lengths stay) when there is one."""
        limits = config.rate_limit
        if limits is None:
            self.limiter = None
        elif self.limiter is None:
            self.limiter = RateLimiter(limits, self.stats.rrl, self._proven)
        else:
            self.limiter.configure(limits)

    def _proven(self, data: bytes, who: str) -> bool:
        """The rate limiter's ``proven`` check: a valid server cookie (of
        the authority in force) exempts a client, as BIND's RRL does."""
        return self.authority.proves_source(data, who)

    def install(self, authority: Authority) -> None:
        """Answer from ``authority`` from now on: one assignment, so a query
        sees the old config or the new one, never a mix. The answer cache's
        lookup counters count on from the old cache's; the old authority is
        retired (``Authority.retire``), so it is freed."""
        old = self.authority
        if authority.cache is not None:
            authority.cache.carry_counts(old.cache)
        self._set_limits(authority.config)
        self.authority = authority
        if old is not authority:
            old.retire()  # freed when its last reference goes, not kept for ever
        freeze_loaded()


def freeze_loaded() -> None:
    """Keep what is loaded now (a zone is millions of long-lived objects)
    out of every later garbage collection: a full collection over them
    would pause answering. Called after each config is loaded."""
    gc.freeze()


__all__ = ["AnswerSettings", "Answering", "build_authority", "freeze_loaded"]
