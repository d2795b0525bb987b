"""Query-path counters: plain integers bumped per query, read at scrape time.

A query pays a dict increment and a bisect here, no lock and no label
lookup; :mod:`gslb.serve.metrics` turns these counters into Prometheus
families when ``/metrics`` is scraped. ``gslb serve --workers`` workers
``take`` theirs every second and the supervisor ``add``s them.
"""

from __future__ import annotations

import bisect
from typing import TypedDict, TypeVar

from gslb.dns.signer import SigningCounts
from gslb.dns.wire import Answer, Query
from gslb.steering import Choice

#: Upper bounds (seconds) of the answer latency histogram buckets.
LATENCY_BUCKETS_S = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                     0.005, 0.01, 0.025, 0.1)


K = TypeVar("K")


class Taken(TypedDict):
    """The counters one :meth:`QueryStats.take` hands over (fields as
    :class:`QueryStats` names them)."""

    queries: dict[tuple[int, int], int]
    buckets: list[int]
    duration_sum_s: float
    answers: dict[tuple[str, str], int]
    fallbacks: dict[str, int]
    internal_errors: int
    rrl: dict[tuple[str, str], int]
    tcp: dict[str, int]
    signatures: dict[str, int]
    expiration: dict[str, int]


def _add_counts(mine: dict[K, int], theirs: dict[K, int]) -> None:
    for key, n in theirs.items():
        mine[key] = mine.get(key, 0) + n


class QueryStats:
    """Plain counters bumped on the query path (read at scrape time).

    * ``queries[(qtype, rcode)]``: responses (qtype -1 for a message
      answered FORMERR);
    * ``buckets[i]``: answers that took at most ``LATENCY_BUCKETS_S[i]``
      seconds and more than the bound before (the last: beyond every bound),
      ``duration_sum_s``: their total, seconds;
    * ``answers[(pool, address)]`` (``pool``: the leaf pool the address
      came from, in a tree of pools), ``fallbacks[pool]``;
    * ``transitions[(origin, state)]``, ``reloads[result]``;
    * ``internal_errors``: queries whose answer failed with an exception
      (answered SERVFAIL, :class:`gslb.answering.Answering`);
    * ``rrl[(action, kind)]``: responses the rate limiter dropped, slipped
      or only logged (``gslb.dns.rrl``), and ``rrl[("evicted", "")]``;
    * ``tcp[reason]``: TCP connections the DNS server refused, evicted or
      closed (``gslb.dns.server.TCP_COUNTERS``; the server bumps this dict);
    * ``signing``: RRSIGs made per zone and when the last ones expire
      (``gslb.dns.signer.SigningCounts``; the signers bump it).
    """

    __slots__ = ("answers", "buckets", "duration_sum_s", "fallbacks", "internal_errors", "queries",
                 "reloads", "rrl", "signing", "tcp", "transitions")

    def __init__(self) -> None:
        self.queries: dict[tuple[int, int], int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.duration_sum_s = 0.0
        self.answers: dict[tuple[str, str], int] = {}
        self.fallbacks: dict[str, int] = {}
        self.transitions: dict[tuple[str, str], int] = {}
        self.reloads: dict[str, int] = {"ok": 0, "error": 0}
        self.internal_errors = 0
        self.rrl: dict[tuple[str, str], int] = {}
        self.tcp: dict[str, int] = {}
        self.signing = SigningCounts()

    def query(self, query: Query | None, answer: Answer | None, who: str) -> None:
        """Count one response (an ``authority.Observer``)."""
        key = (query.qtype, answer.rcode) if query is not None and answer is not None else (-1, 1)
        queries = self.queries
        queries[key] = queries.get(key, 0) + 1

    def reused(self, query: Query, answer: Answer, choices: tuple[tuple[str, str, Choice], ...],
               times: int) -> None:
        """Count ``times`` responses reused from the answer cache, each
        built for ``query`` and ``answer`` from the steering outcomes
        ``choices`` (``(owner, pool, Choice)`` each), at once (the
        compiled packet path answers them
        without a call per query): what ``query`` and ``choice`` would
        count for each."""
        key = (query.qtype, answer.rcode)
        queries = self.queries
        queries[key] = queries.get(key, 0) + times
        for owner, pool, choice in choices:
            self.choice(owner, pool, choice, times)

    def take(self) -> Taken:
        """The query-path counters counted since the last ``take`` (queries,
        latency buckets and sum, answers, fallbacks, internal errors), reset
        to zero: what a
        ``gslb serve --workers`` worker ships to the supervisor."""
        out: Taken = {"queries": self.queries, "buckets": self.buckets,
                      "duration_sum_s": self.duration_sum_s,
                      "answers": self.answers, "fallbacks": self.fallbacks,
                      "internal_errors": self.internal_errors,
                      "rrl": dict(self.rrl), "tcp": dict(self.tcp),
                      "signatures": dict(self.signing.made),
                      "expiration": dict(self.signing.expiration)}
        self.signing.made.clear()  # in place: the signers hold it
        self.internal_errors = 0
        self.rrl.clear()  # in place: the rate limiter holds this dict
        self.tcp.update(dict.fromkeys(self.tcp, 0))  # and the DNS server this one
        self.queries, self.answers, self.fallbacks = {}, {}, {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.duration_sum_s = 0.0
        return out

    def add(self, taken: Taken) -> None:
        """Add counters from another ``take`` (a worker's) to these."""
        _add_counts(self.queries, taken["queries"])
        _add_counts(self.answers, taken["answers"])
        _add_counts(self.fallbacks, taken["fallbacks"])
        _add_counts(self.rrl, taken["rrl"])
        _add_counts(self.tcp, taken["tcp"])
        _add_counts(self.signing.made, taken["signatures"])
        # a gauge: the latest report wins (a reload may shorten the validity,
        # a clock may be set back: never keep a higher value than was sent)
        self.signing.expiration.update(taken["expiration"])
        for i, n in enumerate(taken["buckets"]):
            self.buckets[i] += n
        self.duration_sum_s += taken["duration_sum_s"]
        self.internal_errors += taken["internal_errors"]

    def duration(self, seconds: float, times: int = 1) -> None:
        """Count one answer's latency, seconds (``times`` answers of that
        latency each)."""
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += times
        self.duration_sum_s += seconds * times

    def choice(self, owner: str, pool: str, choice: Choice, times: int = 1) -> None:
        """Count one steering outcome (``Authority``'s ``on_choice``;
        ``times``: that many answers of it)."""
        answers = self.answers
        leaves = choice.leaves
        for i, address in enumerate(choice.addresses):
            key = (leaves[i] if leaves else choice.pool, address)  # the leaf pool of a tree
            answers[key] = answers.get(key, 0) + times
        if choice.fallback:
            self.fallbacks[pool] = self.fallbacks.get(pool, 0) + times

    def transition(self, origin: str, state: str) -> None:
        """Count one overall state change of ``origin``."""
        key = (origin, state)
        self.transitions[key] = self.transitions.get(key, 0) + 1
