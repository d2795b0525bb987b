"""Prometheus metrics: ``gslb_<subsystem>_<name>_<unit>``.

The query path only bumps plain integers in ``QueryStats`` (a dict
increment per query, a bisect for the latency bucket); ``GslbCollector``
turns them, and the health view, into metric families at scrape time, so a
query pays no lock and no label lookup. Each ``Service`` has its own
``CollectorRegistry`` (``make_registry``), never the global one.

Families (labels in braces):

* ``gslb_dns_queries_total{qtype,rcode}``: responses sent;
* ``gslb_dns_answer_duration_seconds``: histogram, decode to encoded
  response, seconds;
* ``gslb_dns_answer_cache_lookups_total{result}`` (``hit``, ``miss``),
  ``gslb_dns_answer_cache_entries``: the answer cache (every worker's);
  lookups count on across reloads and worker restarts;
* ``gslb_steering_answers_total{pool,policy,origin}``: origins put in GSLB
  answers (``pool`` is the pool that answered, after any fallback);
* ``gslb_steering_fallbacks_total{pool}``: answers given by a pool's
  all-down fallback; ``gslb_steering_pool_in_fallback{pool,family}``;
* ``gslb_health_transitions_total{origin,state}``: overall state changes
  (``up``, ``down``, ``drained``, ``undrained``);
* ``gslb_health_origin_up{origin}`` (after drains),
  ``gslb_health_origin_drained{origin}``,
  ``gslb_health_vantage_up{origin,vantage}``,
  ``gslb_health_vantage_fresh{origin,vantage}``,
  ``gslb_health_srtt_seconds{origin,vantage}`` (smoothed RTT),
  ``gslb_health_last_check_timestamp_seconds{origin,vantage}``,
  ``gslb_health_degraded`` (1: some origin has no fresh vantage);
* ``gslb_redis_connected{client}`` (``health``, ``overrides``; only with
  Redis);
* ``gslb_config_generation``, ``gslb_config_reloads_total{result}``,
  ``gslb_config_last_reload_timestamp_seconds``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gslb.dns.wire import Answer, Query
from gslb.logs import qtype_name, rcode_name
from gslb.steering import Choice

if TYPE_CHECKING:
    from gslb.service import Service

#: Upper bounds (seconds) of the answer latency histogram buckets.
LATENCY_BUCKETS_S = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                     0.005, 0.01, 0.025, 0.1)


class QueryStats:
    """Plain counters bumped on the query path (read at scrape time).

    * ``queries[(qtype, rcode)]``: responses (qtype -1 for a message
      answered FORMERR);
    * ``buckets[i]``: answers that took at most ``LATENCY_BUCKETS_S[i]``
      seconds and more than the bound before (the last: beyond every bound),
      ``duration_sum_s``: their total, seconds;
    * ``answers[(pool, address)]``, ``fallbacks[pool]``;
    * ``transitions[(origin, state)]``, ``reloads[result]``.
    """

    __slots__ = ("answers", "buckets", "duration_sum_s", "fallbacks", "queries", "reloads",
                 "transitions")

    def __init__(self) -> None:
        self.queries: dict[tuple[int, int], int] = {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.duration_sum_s = 0.0
        self.answers: dict[tuple[str, str], int] = {}
        self.fallbacks: dict[str, int] = {}
        self.transitions: dict[tuple[str, str], int] = {}
        self.reloads: dict[str, int] = {"ok": 0, "error": 0}

    def query(self, query: Query | None, answer: Answer | None, who: str) -> None:
        """Count one response (an ``authority.Observer``)."""
        key = (query.qtype, answer.rcode) if query is not None and answer is not None else (-1, 1)
        queries = self.queries
        queries[key] = queries.get(key, 0) + 1

    def take(self) -> dict[str, object]:
        """The query-path counters counted since the last ``take`` (queries,
        latency buckets and sum, answers, fallbacks), reset to zero: what a
        ``gslb serve --workers`` worker ships to the supervisor."""
        out: dict[str, object] = {"queries": self.queries, "buckets": self.buckets,
                                  "duration_sum_s": self.duration_sum_s,
                                  "answers": self.answers, "fallbacks": self.fallbacks}
        self.queries, self.answers, self.fallbacks = {}, {}, {}
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.duration_sum_s = 0.0
        return out

    def add(self, taken: dict[str, object]) -> None:
        """Add counters from another ``take`` (a worker's) to these."""
        for name in ("queries", "answers", "fallbacks"):
            mine: dict[object, int] = getattr(self, name)
            for key, n in taken[name].items():  # type: ignore[attr-defined]
                mine[key] = mine.get(key, 0) + n
        for i, n in enumerate(taken["buckets"]):  # type: ignore[call-overload]
            self.buckets[i] += n
        self.duration_sum_s += taken["duration_sum_s"]  # type: ignore[operator]

    def duration(self, seconds: float) -> None:
        """Count one answer's latency, seconds."""
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.duration_sum_s += seconds

    def choice(self, owner: str, pool: str, choice: object) -> None:
        """Count one steering outcome (``Authority``'s ``on_choice``)."""
        assert isinstance(choice, Choice)
        answers = self.answers
        for address in choice.addresses:
            key = (choice.pool, address)
            answers[key] = answers.get(key, 0) + 1
        if choice.fallback:
            self.fallbacks[pool] = self.fallbacks.get(pool, 0) + 1

    def transition(self, origin: str, state: str) -> None:
        """Count one overall state change of ``origin``."""
        key = (origin, state)
        self.transitions[key] = self.transitions.get(key, 0) + 1


class GslbCollector(Collector):
    """Builds every family above from ``service`` at scrape time."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        stats = service.stats
        yield from self._dns(stats)
        totals = getattr(service.server, "cache_totals", None)
        cache = service.authority.cache
        if totals is not None:  # gslb serve --workers: the workers' caches
            hits, misses, entries = totals()
        elif cache is not None:
            hits, misses, entries = cache.hits, cache.misses, len(cache)
        if totals is not None or cache is not None:
            lookups = CounterMetricFamily("gslb_dns_answer_cache_lookups", "Answer cache "
                                          "lookups by result", labels=["result"])
            lookups.add_metric(["hit"], hits)
            lookups.add_metric(["miss"], misses)
            yield lookups
            yield GaugeMetricFamily("gslb_dns_answer_cache_entries", "Responses in the "
                                    "answer cache (of every worker)", value=entries)
        yield from self._steering(service)
        transitions = CounterMetricFamily("gslb_health_transitions", "Overall origin state "
                                          "changes (health and drains)",
                                          labels=["origin", "state"])
        for (origin, state), n in sorted(stats.transitions.items()):
            transitions.add_metric([origin, state], n)
        yield transitions
        yield from self._health(service)
        if service.redis_url is not None:
            redis = GaugeMetricFamily("gslb_redis_connected", "1 when the Redis client is "
                                      "connected and synced", labels=["client"])
            for client, ok in service.redis_connected().items():
                redis.add_metric([client], int(ok))
            yield redis
        yield GaugeMetricFamily("gslb_config_generation", "Configuration generation (1 at "
                                "start, +1 per successful reload)", value=service.generation)
        reloads = CounterMetricFamily("gslb_config_reloads", "Reload attempts by result",
                                      labels=["result"])
        for result, n in sorted(stats.reloads.items()):
            reloads.add_metric([result], n)
        yield reloads
        yield GaugeMetricFamily("gslb_config_last_reload_timestamp_seconds", "When the "
                                "config in force was loaded (epoch seconds)",
                                value=service.loaded_at)

    @staticmethod
    def _dns(stats: QueryStats) -> Iterator[Metric]:
        queries = CounterMetricFamily("gslb_dns_queries", "DNS responses by query type and "
                                      "RCODE", labels=["qtype", "rcode"])
        for (qtype, rcode), n in sorted(stats.queries.items()):
            queries.add_metric(["" if qtype < 0 else qtype_name(qtype), rcode_name(rcode)], n)
        yield queries
        cumulative, buckets = 0, []
        for bound, n in zip((*LATENCY_BUCKETS_S, float("inf")), stats.buckets, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily("gslb_dns_answer_duration_seconds", "Time from a query's "
                                    "bytes to its response's bytes, seconds",
                                    buckets=buckets, sum_value=stats.duration_sum_s)

    @staticmethod
    def _steering(service: Service) -> Iterator[Metric]:
        stats, config = service.stats, service.config
        owners: dict[tuple[str, str], str] = {}
        for pool in config.pools.values():
            for name in pool.origins:
                origin = config.origins[name]
                for address in (*origin.ipv4, *origin.ipv6):
                    owners.setdefault((pool.name, address), name)
        answers = CounterMetricFamily("gslb_steering_answers", "Origins put in GSLB answers",
                                      labels=["pool", "policy", "origin"])
        per: dict[tuple[str, str, str], int] = {}
        for (pool, address), n in stats.answers.items():
            policy = config.pools[pool].policy if pool in config.pools else ""
            key = (pool, policy, owners.get((pool, address), address))
            per[key] = per.get(key, 0) + n
        for labels, n in sorted(per.items()):
            answers.add_metric(list(labels), n)
        yield answers
        fallbacks = CounterMetricFamily("gslb_steering_fallbacks", "Answers given by a pool's "
                                        "all-down fallback", labels=["pool"])
        for pool, n in sorted(stats.fallbacks.items()):
            fallbacks.add_metric([pool], n)
        yield fallbacks
        in_fallback = GaugeMetricFamily("gslb_steering_pool_in_fallback", "1 while the pool's "
                                        "last query found no healthy origin",
                                        labels=["pool", "family"])
        for pool, family in sorted(service.authority.steering.in_fallback):
            in_fallback.add_metric([pool, f"ipv{family}"], 1)
        yield in_fallback

    @staticmethod
    def _health(service: Service) -> Iterator[Metric]:
        view, overrides = service.health, service.overrides
        up = GaugeMetricFamily("gslb_health_origin_up", "1 when the origin may be answered "
                               "(healthy and not drained)", labels=["origin"])
        drained = GaugeMetricFamily("gslb_health_origin_drained", "1 while drained",
                                    labels=["origin"])
        for name in sorted(service.config.origins):
            up.add_metric([name], int(service.view.is_up(name)))
            drained.add_metric([name], int(overrides.is_drained(name)))
        yield up
        yield drained
        labels = ["origin", "vantage"]
        vup = GaugeMetricFamily("gslb_health_vantage_up", "1 when the vantage's last state "
                                "(after rise/fall) is up", labels=labels)
        fresh = GaugeMetricFamily("gslb_health_vantage_fresh", "1 while the vantage counts "
                                  "(heard from within stale_after)", labels=labels)
        srtt = GaugeMetricFamily("gslb_health_srtt_seconds", "Smoothed check RTT, seconds",
                                 labels=labels)
        checked = GaugeMetricFamily("gslb_health_last_check_timestamp_seconds", "When the "
                                    "vantage last checked the origin (epoch seconds)",
                                    labels=labels)
        for origin, status in sorted(view.snapshot().items()):
            for vantage, report in sorted(status.reports.items()):
                vup.add_metric([origin, vantage], int(report.up))
                fresh.add_metric([origin, vantage], int(vantage in status.fresh))
                checked.add_metric([origin, vantage], report.checked_at)
                if report.srtt_ms is not None:
                    srtt.add_metric([origin, vantage], report.srtt_ms / 1000.0)
        yield from (vup, fresh, srtt, checked)
        yield GaugeMetricFamily("gslb_health_degraded", "1 when some origin has no fresh "
                                "vantage (its last known state is held)",
                                value=int(view.degraded))


def make_registry(service: Service) -> CollectorRegistry:
    """A fresh registry holding ``GslbCollector(service)``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GslbCollector(service))
    return registry
