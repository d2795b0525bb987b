"""Shared health state in Redis: probe workers write, nameservers watch.

* ``RedisSink`` (``sink``; a ``ReportSink``, used by ``gslb probe``) records
  the latest report per (vantage, origin) and ships everything pending in
  one MULTI/EXEC pipeline: the report hash, its TTL, and a pub/sub message
  when the prober says others should hear at once.
* ``RedisWatcher`` (``watcher``; used by ``gslb serve``) keeps a
  ``QuorumView`` in step: SUBSCRIBE first, then a full load (SCAN +
  HGETALL), then every message as it arrives, and a full load again every
  ``resync_interval_s`` seconds (``follow.follow_channel``, shared with the
  drain watcher ``gslb.health.overrides.RedisOverrides``).

Both ride out Redis outages: they log one warning when an outage starts and
one info line (with its duration) when it ends, retry with capped
exponential backoff and jitter, and catch up afterwards (``outage``).

The modules, one concern each:

* ``client``: Redis URLs (``parse_url``, ``mask_url``) and clients
  (``make_client``);
* ``schema``: the key schema and the message encoding (``NAMESPACE``,
  ``Keys``, ``dumps``, ``hash_items``);
* ``outage``: ``Backoff`` and ``Outage`` (one log line per outage);
* ``follow``: ``follow_channel``, a subscription plus full loads, riding
  out outages;
* ``sink``: ``RedisSink``, the probe side;
* ``watcher``: ``RedisWatcher``, the nameserver side.

The URL forms, the key schema and the message formats are documented in
``docs/redis.md``. Every module logs on ``gslb.health.redis``.
"""
