"""The validated configuration: frozen dataclasses, no I/O.

Every name in the model is lower case and absolute (ends with a dot) unless
said otherwise. Durations are seconds (``*_s``), TTLs are seconds (``ttl``).
The loader (``gslb.config.loader``) builds these from YAML; nothing else
constructs them except tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from types import MappingProxyType
from typing import Literal

from gslb.dns.dnssec import SigningKey
from gslb.dns.signer import SigningPolicy

CheckType = Literal["http", "https", "tcp"]

#: Continent codes as used by MaxMind and GeoNames.
CONTINENTS = frozenset({"AF", "AN", "AS", "EU", "NA", "OC", "SA"})

DEFAULT_GSLB_TTL = 30
"""TTL (seconds) of GSLB answers when a record gives none."""

LOCAL_VANTAGE = "local"
"""The vantage name of the prober embedded in ``gslb serve`` (no Redis);
reserved: a config cannot declare it."""

DEFAULT_SWITCH_MARGIN_PCT = 20.0
"""``latency`` anti-flap relative margin (percent of the current origin's
smoothed RTT) when a pool gives none."""
DEFAULT_SWITCH_MARGIN_MS = 5.0
"""``latency`` anti-flap absolute margin (milliseconds) when a pool gives none."""


def _empty() -> Mapping[str, tuple[tuple[str, ...], ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Location:
    """A point on Earth in decimal degrees (WGS 84)."""

    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Check:
    """How the prober checks one origin.

    ``target`` is the address the check connects to (default: the origin's
    first IPv4 address, else its first IPv6 address). ``interval_s`` may be
    below one second. ``rise``/``fall`` are the consecutive results needed to
    change state (HAProxy's terms). ``load_header``/``load_json`` (http and
    https only, at most one set): where the response carries the origin's
    load figure, a response header's name or an RFC 6901 JSON pointer into
    the body (``load``; docs/checks.md "Reported load").
    """

    type: CheckType
    target: str
    port: int
    interval_s: float = 5.0
    timeout_s: float = 2.0
    rise: int = 2
    fall: int = 3
    path: str = "/"
    expect_status: tuple[int, ...] = (200,)
    body: str | None = None
    host_header: str | None = None
    tls_verify: bool = True
    load_header: str | None = None
    load_json: str | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """A server that can appear in answers.

    ``ipv4``/``ipv6`` are the addresses answered for A/AAAA. ``weight`` is a
    positive integer used by ``weighted`` selection. ``location`` feeds
    nearest-by-distance steering; ``country`` is the ISO 3166-1 alpha-2 code
    the location came from, when it was given that way. ``check`` is None for
    an origin that is always considered up. ``slow_start_s``: seconds over
    which its weight ramps up after it comes back up (its ``slow_start``;
    None: its pools' ``slow_start``, see :func:`slow_starts`).
    ``capacity``: a positive number, what ``least_loaded`` divides the
    origin's reported load by (default 1).
    """

    name: str
    ipv4: tuple[str, ...] = ()
    ipv6: tuple[str, ...] = ()
    weight: int = 1
    location: Location | None = None
    country: str | None = None
    check: Check | None = None
    slow_start_s: float | None = None
    capacity: float = 1.0


#: Deepest tree of pools (a pool, its member pools, theirs, ...): the config
#: validator refuses deeper trees, and cycles (docs/steering.md).
MAX_TREE_DEPTH = 8


Tiers = tuple[tuple[str, ...], ...]
"""Ordered tiers of origin names: the first tier with a healthy origin wins."""


class NetworkMap:
    """A pool's ``networks`` map: CIDR networks (IPv4 and IPv6) → tiers,
    looked up by longest prefix (gdnsd ``nets``, PowerDNS ``netmask()``,
    Route 53 IP-based routing). Built once per config; a lookup costs one
    dict probe per distinct prefix length the map holds.

    ``entries``: ``(network, tiers)`` pairs, ``network`` an
    ``ipaddress`` network; a network given twice keeps its last tiers.
    """

    __slots__ = ("_by_len", "entries")

    def __init__(self, entries: Iterable[tuple[IPv4Network | IPv6Network, Tiers]] = ()) -> None:
        self.entries: tuple[tuple[IPv4Network | IPv6Network, Tiers], ...] = tuple(entries)
        by_len: dict[tuple[int, int], dict[int, tuple[IPv4Network | IPv6Network, Tiers]]] = {}
        for network, tiers in self.entries:
            key = (network.version, network.prefixlen)
            by_len.setdefault(key, {})[int(network.network_address)] = (network, tiers)
        # longest prefix first, per IP version
        self._by_len = {v: tuple(((~0 << ((32 if v == 4 else 128) - length)), table)
                                 for (version, length), table in sorted(
                                     by_len.items(), key=lambda kv: -kv[0][1])
                                 if version == v)
                        for v in (4, 6)}

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NetworkMap) and other.entries == self.entries

    def __hash__(self) -> int:
        return hash(self.entries)

    def __repr__(self) -> str:
        return f"NetworkMap({len(self.entries)} networks)"

    def lookup(self, address: str) -> tuple[IPv4Network | IPv6Network, Tiers] | None:
        """``(network, tiers)`` of the longest network holding ``address``
        (IPv4 or IPv6 text; IPv4-mapped IPv6 as IPv4), or None (no network
        holds it, or it is not an address)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        value = int(ip)
        for mask, table in self._by_len[ip.version]:
            found = table.get(value & mask)
            if found is not None:
                return found
        return None


#: The values of a pool's ``order`` (``Pool.order``), and its default (why:
#: docs/steering.md, "Order of the addresses").
ORDERS = ("fixed", "cyclic", "random")
DEFAULT_ORDER = "cyclic"


@dataclass(frozen=True, slots=True)
class Pool:
    """A set of members (origins, or other pools: a tree) and the policy that
    picks among them (``policy``: a name of ``gslb.steering.registry``).

    * ``origins``: every member's name, in declaration order: an origin's or
      another pool's (the config validator keeps the two apart, refuses
      cycles and trees deeper than ``gslb.steering.MAX_TREE_DEPTH``).
    * ``tiers``: for ``failover``, the priority tiers; for other policies one
      tier holding every member.
    * ``networks``: ``geo`` and ``latency``: client networks → tiers
      (:class:`NetworkMap`), consulted before the countries.
    * ``asns``: ``geo`` and ``latency``: the client's autonomous system
      number → tiers (an ASN database, ``gslb serve --asn-db``), consulted
      after ``networks`` and before the countries.
    * ``countries``/``continents``/``default``: the ``geo`` map, each value
      ordered tiers of origin names. Country codes are ISO 3166-1 alpha-2,
      continent codes those of ``CONTINENTS``. ``latency`` pools may carry
      them too: its fallback when the client's vantage has no RTT data.
    * ``vantage_countries``/``vantage_continents``: ``latency`` only:
      country/continent code → vantage name, overriding "the vantage nearest
      the client".
    * ``switch_margin_pct``/``switch_margin_ms``: ``latency`` only: a
      better origin replaces the current one only when it is faster by more
      than this percentage of the current smoothed RTT AND by more than
      this many milliseconds.
    * ``max_answers``: records per answer (``all`` ignores it).
    * ``fallback``: when no member is healthy: ``"all"`` (answer as if every
      member were up), ``"none"`` (SERVFAIL), or the name of another pool.
    * ``weight``: the pool's weight as a member of another pool (a positive
      integer, like ``Origin.weight``).
    * ``min_healthy``, ``min_healthy_pct``: the pool counts as down (to a
      parent pool, and for its own ``fallback``) while fewer of its members
      (of the queried address family) are healthy than ``min_healthy`` (a
      count, at least 1) or than ``min_healthy_pct`` percent of them (None:
      no percentage), whichever asks more.
    * ``tier_min_healthy``: ``failover`` only: per tier (in ``tiers``
      order), ``(count, percent or None)`` below which the tier is skipped,
      as ``min_healthy`` for a pool; empty: every tier needs one.
    * ``hash_prefix_v4``/``hash_prefix_v6``: ``hash`` only: the prefix
      length (bits) a client address of that family is truncated to before
      it is hashed: every address of one such network gets the same answer.
    * ``hash_seed``: ``hash`` only: the key of the hash ("": the pool's
      name); another seed gives another assignment of networks to members.
    * ``order``: the order of a multi-address answer (one of ``ORDERS``):
      ``"fixed"`` as the selection gave it, ``"cyclic"`` (the default) the
      first address moving on by one on every answer, ``"random"`` shuffled
      per answer (RFC 1794; :meth:`gslb.steering.Steering.choose`).
    * ``slow_start_s``: seconds over which a member origin that comes back
      up ramps to its full weight (``slow_start``; None: none; an origin's
      own ``slow_start`` wins, see :func:`slow_starts`).
    * ``ttl_when_degraded``: seconds; the TTL of the answers of records of
      this pool that set none of their own while an answer is degraded
      (capped at each record's ``ttl``; None: keep the ``ttl``), see
      :func:`degraded_ttl`.
    """

    name: str
    policy: str
    origins: tuple[str, ...]
    tiers: Tiers
    max_answers: int = 1
    fallback: str = "all"
    countries: Mapping[str, Tiers] = field(default_factory=_empty)
    continents: Mapping[str, Tiers] = field(default_factory=_empty)
    default: Tiers = ()
    vantage_countries: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    vantage_continents: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    switch_margin_pct: float = DEFAULT_SWITCH_MARGIN_PCT
    switch_margin_ms: float = DEFAULT_SWITCH_MARGIN_MS
    networks: NetworkMap = field(default_factory=NetworkMap)
    asns: Mapping[int, Tiers] = field(default_factory=lambda: MappingProxyType({}))
    weight: int = 1
    min_healthy: int = 1
    min_healthy_pct: float | None = None
    tier_min_healthy: tuple[tuple[int, float | None], ...] = ()
    hash_prefix_v4: int = 24
    hash_prefix_v6: int = 56
    hash_seed: str = ""
    order: str = DEFAULT_ORDER
    slow_start_s: float | None = None
    ttl_when_degraded: int | None = None


def degraded_ttl(record: GslbRecord, pools: Mapping[str, Pool]) -> int | None:
    """The TTL (seconds) of ``record``'s degraded answers: its own
    ``ttl_when_degraded``, else its pool's capped at the record's ``ttl``;
    None when neither sets one, or when it is not shorter than ``ttl``
    (nothing to shorten)."""
    found = record.ttl_when_degraded
    if found is None:
        pool = pools.get(record.pool)
        found = pool.ttl_when_degraded if pool is not None else None
    return found if found is not None and found < record.ttl else None


def slow_starts(origins: Mapping[str, Origin], pools: Mapping[str, Pool]) -> dict[str, float]:
    """Per origin, the seconds its weight ramps over after it comes back up
    (docs/steering.md "Slow start and timed drains"): its own
    ``slow_start_s``, else the longest ``slow_start_s`` of the pools that
    list it; origins with neither are left out."""
    found: dict[str, float] = {}
    for pool in pools.values():
        if pool.slow_start_s is not None:
            for name in pool.origins:
                if name in origins:
                    found[name] = max(found.get(name, 0.0), pool.slow_start_s)
    for name, origin in origins.items():
        if origin.slow_start_s is not None:
            found[name] = origin.slow_start_s
    return found


@dataclass(frozen=True, slots=True)
class RRset:
    """A static RRset: owner name, type mnemonic, TTL (seconds), RDATA texts.

    ``rdata`` holds presentation-format texts (RFC 1035 section 5.1) with
    names made absolute, e.g. ``("10 mail.example.com.",)`` for MX.
    """

    name: str
    rtype: str
    ttl: int
    rdata: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GslbRecord:
    """A name whose A/AAAA answers come from ``pool``, with ``ttl`` seconds;
    ``ttl_when_degraded`` (seconds, 0 to ``ttl``; None: its pool's, see
    :func:`degraded_ttl`) is the TTL while the answer is degraded (its pool
    in fallback, or a member origin down or ramping; docs/steering.md
    "TTL that follows health")."""

    name: str
    pool: str
    ttl: int = DEFAULT_GSLB_TTL
    ttl_when_degraded: int | None = None


@dataclass(frozen=True, slots=True)
class Zone:
    """One zone we are authoritative for.

    ``rrsets`` maps (owner, type) to the static RRset; ``gslb`` maps owner to
    its GSLB record. The apex SOA and NS RRsets are always present.
    ``dnssec``: how the zone is signed (its ``dnssec`` key); None: unsigned.
    """

    name: str
    soa: RRset
    rrsets: Mapping[tuple[str, str], RRset]
    gslb: Mapping[str, GslbRecord]
    dnssec: Dnssec | None = None


KeyState = Literal["active", "published"]
"""A zone key's part: ``active`` keys sign every RRset; ``published`` keys
are in the DNSKEY, CDS and CDNSKEY RRsets (and sign those) without
signing the rest: a new key before it takes over, an old one after."""


@dataclass(frozen=True, slots=True)
class ZoneKey:
    """One key of a signed zone: ``file`` (the BIND key basename as
    written in the config), ``state`` and the key itself (``key``: a
    ``gslb.dns.dnssec.SigningKey``, private key included)."""

    file: str
    state: KeyState
    key: SigningKey = field(repr=False)


@dataclass(frozen=True, slots=True)
class Dnssec:
    """A zone's ``dnssec`` key (docs/dnssec.md): its ``keys`` (at least
    one active), RRSIG timing ``policy`` (seconds: validity, inception
    skew, signing period) and ``dnskey_ttl`` (seconds, the TTL of DNSKEY,
    CDS and CDNSKEY)."""

    keys: tuple[ZoneKey, ...]
    policy: SigningPolicy = field(default_factory=SigningPolicy)
    dnskey_ttl: int = 3600

    @property
    def active(self) -> tuple[SigningKey, ...]:
        """The keys that sign every RRset."""
        return tuple(k.key for k in self.keys if k.state == "active")

    @property
    def published(self) -> tuple[SigningKey, ...]:
        """The keys that are published only."""
        return tuple(k.key for k in self.keys if k.state == "published")


@dataclass(frozen=True, slots=True)
class Vantage:
    """A probe vantage point: where a ``gslb probe`` worker checks origins
    from. ``location`` in decimal degrees (from ``{lat, lon}`` or a
    country's representative point); ``country`` ISO 3166-1 alpha-2 and
    ``continent`` code when known."""

    name: str
    location: Location | None = None
    country: str | None = None
    continent: str | None = None


MIN_REPORT_KEY_BYTES = 16
"""The shortest ``health.report_key_file`` secret accepted, bytes
(``openssl rand -hex 32`` gives 64)."""


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How vantage reports combine into an origin's state.

    * ``quorum``: fresh vantages that must agree to change an origin's
      state (docs/checks.md "Several vantages: quorum"); None means a
      majority (more than half) of the declared vantages. Never lowered to
      the number of fresh ones: with fewer fresh, the state holds.
    * ``stale_after_s``: seconds after a vantage's last sign of life
      (heartbeat or report) when it stops counting.
    * ``heartbeat_interval_s``: seconds between a prober's heartbeats.
    * ``resync_interval_s``: seconds between full reloads of the shared
      state (Redis), repairing any missed change message.
    * ``unknown_up``: how an origin whose state is unknown (no result has
      decided it yet at a vantage) counts: True (``unknown: up``, the
      default) or False (``unknown: down``); docs/checks.md argues it.
    * ``report_key_file``: the file the shared secret was read from, and
      ``report_key`` the secret (bytes, at least ``MIN_REPORT_KEY_BYTES``)
      that signs and verifies reports and heartbeats in Redis
      (``gslb.health.signing``); None: unsigned.
    """

    quorum: int | None = None
    stale_after_s: float = 10.0
    heartbeat_interval_s: float = 1.0
    resync_interval_s: float = 30.0
    unknown_up: bool = True
    report_key_file: str | None = None
    report_key: bytes | None = field(default=None, repr=False)

    @property
    def key_ttl_s(self) -> float:
        """Seconds a vantage's Redis keys outlive its last write (the one
        definition; docs/redis.md): long enough to ride out a short outage,
        short enough that a vantage that went away leaves Redis:
        ``max(60, 6 × stale_after)``. Nameservers hold what they know past
        it: an expired key never changes an answer."""
        return max(60.0, 6 * self.stale_after_s)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Response rate limiting (the ``rate_limit`` section, docs/config.md;
    ``gslb.dns.rrl``): UDP responses per second per client prefix and
    kind (0: that kind is not limited); ``all_per_second`` bounds every
    kind together (0: no such bound); ``window_s``: seconds of responses a
    bucket may save up (its depth is rate × window); ``slip``: every Nth
    limited response is sent truncated (0: none); ``ipv4_prefix_length``
    and ``ipv6_prefix_length`` group clients; ``max_table_size`` bounds the
    buckets kept; ``exempt`` networks are never limited; ``log_only``
    counts and logs without dropping."""

    responses_per_second: int = 20
    nodata_per_second: int = 20
    nxdomains_per_second: int = 20
    referrals_per_second: int = 20
    errors_per_second: int = 20
    all_per_second: int = 0
    window_s: float = 1.0
    slip: int = 2
    ipv4_prefix_length: int = 24
    ipv6_prefix_length: int = 56
    max_table_size: int = 20000
    exempt: tuple[IPv4Network | IPv6Network, ...] = ()
    log_only: bool = False


@dataclass(frozen=True, slots=True)
class CookieSettings:
    """DNS Cookies (RFC 7873, server cookies of RFC 9018), the ``cookies``
    section (docs/config.md "cookies").

    * ``enabled``: COOKIE options are answered; False: no cookie is sent
      (a malformed COOKIE option still gets FORMERR).
    * ``secret_file``: the file the secrets were read from, and ``secrets``
      the secrets (16 bytes each): the current one first (it signs), then
      the previous one if any (it still validates). Empty: a random secret
      made once per process (``gslb.dns.cookies.process_secret``).
    * ``require``: a UDP query with a COOKIE option but no valid server
      cookie gets BADCOOKIE (RFC 7873 section 5.2.3); needs ``secret_file``.
    """

    enabled: bool = True
    secret_file: str | None = None
    secrets: tuple[bytes, ...] = field(default=(), repr=False)
    require: bool = False


ALERT_EVENTS = ("origin_down", "origin_up", "origin_degraded", "origin_quorum",
                "pool_fallback", "pool_healthy", "vantage_stale", "vantage_fresh",
                "redis_lost", "redis_back")
"""The events an ``alerts`` webhook can be sent (docs/operations.md "Alerts")."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """One ``alerts.webhooks`` entry (docs/operations.md "Alerts").

    * ``url``: where each event is POSTed (http or https); ``name``: its
      label in the metrics (default: the URL's host and port).
    * ``format``: ``gslb`` (one JSON object per event) or ``alertmanager``
      (a JSON list of alerts, Alertmanager's ``/api/v2/alerts``).
    * ``events``: the events sent (``ALERT_EVENTS``); empty: every one.
    * ``timeout_s``: seconds one POST may take; ``retries``: POSTs again
      after a failure, ``backoff_s`` seconds before the first, doubling;
      ``max_queue``: events waiting beyond it drop the oldest.
    * ``token``: the bearer token read from ``token_file`` (None: none).
    * ``repeat_s``: ``alertmanager`` only: seconds between two sends of an
      alert still firing (Alertmanager resolves one not sent again).
    """

    url: str
    name: str
    format: str = "gslb"
    events: frozenset[str] = frozenset()
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 1.0
    max_queue: int = 1000
    token_file: str | None = None
    token: str | None = field(default=None, repr=False)
    repeat_s: float = 60.0


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """The ``alerts`` section: ``webhooks`` (none: no alerts) and the
    ``nameserver`` named in each event (None: ``--server-id``, else the
    host name)."""

    webhooks: tuple[Webhook, ...] = ()
    nameserver: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """A whole validated configuration, as loaded from ``files``."""

    zones: Mapping[str, Zone]
    origins: Mapping[str, Origin]
    pools: Mapping[str, Pool]
    files: tuple[str, ...] = ()
    vantages: Mapping[str, Vantage] = field(default_factory=lambda: MappingProxyType({}))
    health: HealthSettings = field(default_factory=HealthSettings)
    rate_limit: RateLimit | None = None
    """Response rate limiting; None (no ``rate_limit`` section): off."""
    cookies: CookieSettings = field(default_factory=CookieSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    """State-change webhooks (docs/operations.md "Alerts"); none by default."""
