"""Prometheus metrics: ``gslb_<subsystem>_<name>_<unit>``.

The query path only bumps plain integers in :class:`gslb.stats.QueryStats`;
``GslbCollector`` turns them, and the health view, into metric families at
scrape time, so a query pays no lock and no label lookup. Each ``Service``
has its own ``CollectorRegistry`` (``make_registry``), never the global
one; the admin server (:mod:`gslb.admin`) serves it on ``/metrics``.

Families (labels in braces):

* ``gslb_dns_queries_total{qtype,rcode}``: responses sent;
* ``gslb_dns_answer_duration_seconds``: histogram, decode to encoded
  response, seconds;
* ``gslb_dns_internal_errors_total``: queries whose answer failed with an
  exception (answered SERVFAIL; every worker's);
* ``gslb_dns_answer_cache_lookups_total{result}`` (``hit``, ``miss``),
  ``gslb_dns_answer_cache_entries``: the answer cache (every worker's);
  lookups count on across reloads and worker restarts;
* ``gslb_rrl_responses_total{action,kind}``: UDP responses the rate
  limiter (``rate_limit``) did not send as built: ``action`` ``dropped``,
  ``slipped`` (sent truncated) or ``logged_only``; ``kind`` ``answer``,
  ``nodata``, ``nxdomain``, ``referral``, ``error``;
  ``gslb_rrl_table_evictions_total``: buckets dropped from a full table
  (every worker's);
* ``gslb_dns_tcp_connections_closed_total{reason}``: TCP connections the
  server refused or closed early: ``refused_per_source``, ``refused_full``,
  ``evicted`` (idle, to admit a new one), ``write_timeouts`` (the client
  did not read), ``idle_timeouts`` (every worker's);
* ``gslb_steering_answers_total{pool,policy,origin}``: origins put in GSLB
  answers (``pool`` is the leaf pool the origin came from, after any
  fallback: in a tree of pools, the pool that holds the origin);
* ``gslb_steering_fallbacks_total{pool}``: answers given by a pool's
  all-down fallback; ``gslb_steering_pool_in_fallback{pool,family}``;
* ``gslb_health_transitions_total{origin,state}``: overall state changes
  (``up``, ``down``, ``drained``, ``undrained``);
* ``gslb_origin_state{origin,state}``: 1 for the current state (``up``,
  ``degraded``, ``unknown``, ``down``, ``drained``), 0 for the others;
* ``gslb_health_origin_up{origin}`` (after drains),
  ``gslb_health_origin_drained{origin}``,
  ``gslb_health_vantage_up{origin,vantage}``,
  ``gslb_health_vantage_fresh{origin,vantage}``,
  ``gslb_health_srtt_seconds{origin,vantage}`` (smoothed RTT),
  ``gslb_health_load{origin,vantage}`` (the load the origin last reported
  to that vantage's check, ``load:``; absent when none),
  ``gslb_health_last_check_timestamp_seconds{origin,vantage}``,
  ``gslb_health_degraded`` (1: some origin holds its state with fewer
  than quorum fresh vantages);
* ``gslb_health_reports_rejected_total{reason}`` (``unsigned``,
  ``bad_signature``, ``replayed``): health records and messages from Redis
  dropped for their signature (``health.report_key_file``);
* ``gslb_vantage_fresh{vantage}``: 1 while the vantage counts (heard from
  within ``stale_after``), for every known vantage;
* ``gslb_redis_connected{client}`` (``health``, ``overrides``; only with
  Redis);
* ``gslb_config_generation``, ``gslb_config_reloads_total{result}``,
  ``gslb_config_last_reload_timestamp_seconds``;
* with a signed zone (docs/dnssec.md): ``gslb_dnssec_signatures_total{zone}``
  (RRSIGs made, every worker's), ``gslb_dnssec_signature_expiration_timestamp_seconds{zone}``
  (when the RRSIGs made last expire, epoch seconds: alert well before
  ``time()`` reaches it), ``gslb_dnssec_key_info{zone,key_tag,algorithm,state}``
  (1 per key of the config in force).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gslb.config.model import Config
from gslb.dns.server import TCP_COUNTERS
from gslb.health.overrides import DrainedView, Overrides
from gslb.health.view import QuorumView
from gslb.logs import qtype_name, rcode_name
from gslb.serve.operations import RedisClients
from gslb.serve.reload import Reloader
from gslb.stats import LATENCY_BUCKETS_S, QueryStats


class Measured(Protocol):
    """What the collector reads of a serving nameserver
    (:class:`gslb.serve.service.Service` is one)."""

    stats: QueryStats
    reloader: Reloader
    quorum: QuorumView
    view: DrainedView
    overrides: Overrides
    redis: RedisClients | None

    @property
    def config(self) -> Config: ...

    def cache_counts(self) -> tuple[int, int, int] | None:
        """Answer cache ``(hits, misses, entries)`` of every answering
        process; None when the cache is disabled."""
        ...

    def in_fallback(self) -> frozenset[tuple[str, int]]:
        """``(pool, family)`` pairs whose last query (in any answering
        process) found no healthy origin."""
        ...


class GslbCollector(Collector):
    """Builds every family above from ``service`` at scrape time."""

    def __init__(self, service: Measured) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        service = self.service
        stats = service.stats
        yield from self._dns(stats)
        counts = service.cache_counts()
        if counts is not None:
            hits, misses, entries = counts
            lookups = CounterMetricFamily("gslb_dns_answer_cache_lookups", "Answer cache "
                                          "lookups by result", labels=["result"])
            lookups.add_metric(["hit"], hits)
            lookups.add_metric(["miss"], misses)
            yield lookups
            yield GaugeMetricFamily("gslb_dns_answer_cache_entries", "Responses in the "
                                    "answer cache (of every worker)", value=entries)
        yield from self._rrl(stats)
        yield self._tcp(stats)
        yield from self._steering(service)
        transitions = CounterMetricFamily("gslb_health_transitions", "Overall origin state "
                                          "changes (health and drains)",
                                          labels=["origin", "state"])
        for (origin, state), n in sorted(stats.transitions.items()):
            transitions.add_metric([origin, state], n)
        yield transitions
        yield from self._health(service)
        if service.redis is not None:
            redis = GaugeMetricFamily("gslb_redis_connected", "1 when the Redis client is "
                                      "connected and synced", labels=["client"])
            for client, ok in service.redis.connected().items():
                redis.add_metric([client], int(ok))
            yield redis
        yield GaugeMetricFamily("gslb_config_generation", "Configuration generation (1 at "
                                "start, +1 per successful reload)",
                                value=service.reloader.loaded.generation)
        reloads = CounterMetricFamily("gslb_config_reloads", "Reload attempts by result",
                                      labels=["result"])
        for result, n in sorted(stats.reloads.items()):
            reloads.add_metric([result], n)
        yield reloads
        yield GaugeMetricFamily("gslb_config_last_reload_timestamp_seconds", "When the "
                                "config in force was loaded (epoch seconds)",
                                value=service.reloader.loaded.loaded_at)
        yield from self._dnssec(stats, service.reloader.loaded.config)

    @staticmethod
    def _dnssec(stats: QueryStats, config: Config) -> Iterator[Metric]:
        signed = {name: zone.dnssec for name, zone in config.zones.items()
                  if zone.dnssec is not None}
        if not signed and not stats.signing.made:
            return
        made = CounterMetricFamily("gslb_dnssec_signatures", "RRSIGs made by online "
                                   "signing", labels=["zone"])
        for zone, n in sorted(stats.signing.made.items()):
            made.add_metric([zone], n)
        yield made
        expiry = GaugeMetricFamily("gslb_dnssec_signature_expiration_timestamp_seconds",
                                   "When the RRSIGs made last expire (epoch seconds)",
                                   labels=["zone"])
        for zone, when in sorted(stats.signing.expiration.items()):
            expiry.add_metric([zone], when)
        yield expiry
        keys = GaugeMetricFamily("gslb_dnssec_key_info", "The keys of each signed zone "
                                 "(1 per key)", labels=["zone", "key_tag", "algorithm", "state"])
        for zone, dnssec in sorted(signed.items()):
            for k in dnssec.keys:
                keys.add_metric([zone, str(k.key.tag), str(k.key.algorithm), k.state], 1)
        yield keys

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
        yield CounterMetricFamily("gslb_dns_internal_errors", "Queries whose answer failed "
                                  "with an internal error (answered SERVFAIL)",
                                  value=stats.internal_errors)

    @staticmethod
    def _rrl(stats: QueryStats) -> Iterator[Metric]:
        responses = CounterMetricFamily("gslb_rrl_responses", "UDP responses the rate limiter "
                                        "dropped, slipped (sent truncated) or only logged",
                                        labels=["action", "kind"])
        evicted = 0
        for (action, kind), n in sorted(stats.rrl.items()):
            if action == "evicted":
                evicted += n
            else:
                responses.add_metric([action, kind], n)
        yield responses
        yield CounterMetricFamily("gslb_rrl_table_evictions", "Rate limiter buckets dropped "
                                  "from a full table", value=evicted)

    @staticmethod
    def _tcp(stats: QueryStats) -> Metric:
        closed = CounterMetricFamily("gslb_dns_tcp_connections_closed", "TCP connections "
                                     "the DNS server refused or closed early, by reason",
                                     labels=["reason"])
        for reason in TCP_COUNTERS:
            closed.add_metric([reason], stats.tcp.get(reason, 0))
        return closed

    @staticmethod
    def _steering(service: Measured) -> Iterator[Metric]:
        stats, config = service.stats, service.config
        owners: dict[tuple[str, str], str] = {}
        for pool_config in config.pools.values():
            for name in pool_config.origins:
                origin = config.origins.get(name)
                if origin is None:  # a member pool: its addresses count at its own leaves
                    continue
                for address in (*origin.ipv4, *origin.ipv6):
                    owners.setdefault((pool_config.name, address), name)
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
        for pool, family in sorted(service.in_fallback()):
            in_fallback.add_metric([pool, f"ipv{family}"], 1)
        yield in_fallback

    @staticmethod
    def _health(service: Measured) -> Iterator[Metric]:
        view, overrides = service.quorum, service.overrides
        up = GaugeMetricFamily("gslb_health_origin_up", "1 when the origin may be answered "
                               "(healthy and not drained)", labels=["origin"])
        drained = GaugeMetricFamily("gslb_health_origin_drained", "1 while drained",
                                    labels=["origin"])
        state = GaugeMetricFamily("gslb_origin_state", "1 for the origin's current state: up, "
                                  "degraded (answered, a recent check failed), unknown, down, "
                                  "drained", labels=["origin", "state"])
        for name in sorted(service.config.origins):
            up.add_metric([name], int(service.view.is_up(name)))
            drained.add_metric([name], int(overrides.is_drained(name)))
            now = "drained" if overrides.is_drained(name) else view.state(name)
            for each in ORIGIN_STATES:
                state.add_metric([name, each], int(each == now))
        yield up
        yield drained
        yield state
        labels = ["origin", "vantage"]
        vup = GaugeMetricFamily("gslb_health_vantage_up", "1 when the vantage's last state "
                                "(after rise/fall) is up", labels=labels)
        fresh = GaugeMetricFamily("gslb_health_vantage_fresh", "1 while the vantage counts "
                                  "(heard from within stale_after)", labels=labels)
        srtt = GaugeMetricFamily("gslb_health_srtt_seconds", "Smoothed check RTT, seconds",
                                 labels=labels)
        loads = GaugeMetricFamily("gslb_health_load", "The load the origin last reported "
                                  "to the vantage's check (check load:)", labels=labels)
        checked = GaugeMetricFamily("gslb_health_last_check_timestamp_seconds", "When the "
                                    "vantage last checked the origin (epoch seconds)",
                                    labels=labels)
        for origin, status in sorted(view.snapshot().items()):
            for vantage, report in sorted(status.reports.items()):
                vup.add_metric([origin, vantage], int(report.up is True))  # unknown: 0
                fresh.add_metric([origin, vantage], int(vantage in status.fresh))
                checked.add_metric([origin, vantage], report.checked_at)
                if report.srtt_ms is not None:
                    srtt.add_metric([origin, vantage], report.srtt_ms / 1000.0)
                if report.load is not None:
                    loads.add_metric([origin, vantage], report.load)
        yield from (vup, fresh, srtt, loads, checked)
        yield GaugeMetricFamily("gslb_health_degraded", "1 when some origin holds its last "
                                "known state with fewer than quorum fresh vantages",
                                value=int(view.degraded))
        vantage_fresh = GaugeMetricFamily("gslb_vantage_fresh", "1 while the vantage counts "
                                          "(heard from within stale_after, by this "
                                          "nameserver's clock)", labels=["vantage"])
        rejected = CounterMetricFamily("gslb_health_reports_rejected", "Reports, heartbeats, "
                                       "vantage records, forgets and drains read from Redis "
                                       "and dropped for their signature "
                                       "(health.report_key_file)",
                                       labels=["reason"])
        counts: dict[str, int] = {}
        if service.redis is not None:
            for part in (service.redis.watcher.rejected, service.redis.overrides.rejected):
                for reason, n in part.items():
                    counts[reason] = counts.get(reason, 0) + n
        for reason in ("unsigned", "bad_signature", "replayed"):
            rejected.add_metric([reason], counts.get(reason, 0))
        yield rejected
        fresh_now = view.fresh_vantages()
        for vantage in sorted(view.known_vantages() | fresh_now):
            vantage_fresh.add_metric([vantage], int(vantage in fresh_now))
        yield vantage_fresh


#: The values of ``gslb_origin_state``'s ``state`` label.
ORIGIN_STATES = ("up", "degraded", "unknown", "down", "drained")


def make_registry(service: Measured) -> CollectorRegistry:
    """A fresh registry holding ``GslbCollector(service)``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GslbCollector(service))
    return registry
