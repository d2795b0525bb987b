"""The delegation lab: the DNS path users have, on loopback addresses.

::

    client ──► unbound 127.0.53.53:53 (caching resolver, ECS via subnetcache)
                 ├─► NSD 127.0.53.10:53: root "." → example.test. → NS + glue of gslb
                 └─► gslb 127.0.53.1:53, 127.0.53.2:53: authoritative for gslb.example.test.

Each gslb instance needs port 53 of its own address because glue carries no
port; binding port 53 needs root. This module only renders configuration text
(no I/O besides ``write_lab``); ``tests/ttl/conftest.py`` runs the daemons.
``python -m tests.ttl.lab DIR`` writes every file into DIR, plus ``start.sh``
to run the lab by hand (see docs/testing.md, "The delegation lab").
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

PARENT = "127.0.53.10"
"""NSD: the private root and the parent zone ``example.test.``."""
GSLB_NS = ("127.0.53.1", "127.0.53.2")
"""The two gslb nameservers (glue of ``ns1``/``ns2.gslb.example.test.``)."""
RESOLVER = "127.0.53.53"
"""unbound: listens here and sends its upstream queries from here."""
ORIGIN = ("127.0.54.1", 8080)
"""The checked HTTP origin of the ``fo`` failover pool (address, port)."""
ZONE = "gslb.example.test."
MMDB = Path(__file__).resolve().parents[1] / "data" / "geoip" / "fake-country.mmdb"

# Numbers the tests assert against (seconds).
FAILOVER_TTL = 3
"""TTL of ``fo`` (failover: checked primary 127.0.54.1, unchecked backup)."""
STALE_TTL = 2
"""TTL of ``brief`` (weighted, one unchecked origin, ECS scope 0)."""
PREFETCH_TTL = 10
"""TTL of ``pre`` (weighted like ``api``): long enough for a last tenth of
whole seconds, for the prefetch test."""
HEAL_TTL = 8
"""TTL of ``heal`` and ``heal-full`` (both the ``fo`` pool)."""
DEGRADED_TTL = 2
"""``ttl_when_degraded`` of ``heal``: its TTL while the primary is down."""
NEGATIVE_TTL = 3
"""SOA minimum; the SOA RRset's TTL is 60, so NXDOMAIN/NODATA carry min(60, 3)."""
CHECK_INTERVAL_S, CHECK_TIMEOUT_S, CHECK_FALL, CHECK_RISE = 0.2, 0.2, 2, 1
DETECTION_S = CHECK_INTERVAL_S * CHECK_FALL + CHECK_TIMEOUT_S
"""Worst-case time (s) from the origin's death to the nameserver's new answer."""
RECOVERY_S = CHECK_INTERVAL_S * CHECK_RISE + CHECK_TIMEOUT_S
"""Worst-case time (s) from the origin's return to the nameserver's answer with it."""

PRIMARY, BACKUP = ORIGIN[0], "192.0.2.2"
LONDON, STOCKHOLM, VIRGINIA = "192.0.2.11", "192.0.2.12", "192.0.2.13"

GSLB_YAML = f"""\
# The gslb side of the delegation lab (tests/ttl). Short TTLs keep tests quick.
origins:
  primary:
    ipv4: [{PRIMARY}]
    check: {{type: http, port: {ORIGIN[1]}, interval: {CHECK_INTERVAL_S},
             timeout: {CHECK_TIMEOUT_S}, fall: {CHECK_FALL}, rise: {CHECK_RISE}}}
  backup: {{ipv4: [{BACKUP}]}}
  london: {{ipv4: [{LONDON}], location: {{country: GB}}}}
  stockholm: {{ipv4: [{STOCKHOLM}], location: {{country: SE}}}}
  virginia: {{ipv4: [{VIRGINIA}], location: {{country: US}}}}
pools:
  fo: {{policy: failover, tiers: [[primary], [backup]]}}
  web:
    policy: geo
    origins: [london, stockholm, virginia]
    countries: {{GB: london, SE: stockholm}}
    default: virginia
  api: {{policy: weighted, origins: [virginia]}}
zones:
  gslb.example.test:
    ttl: 60
    records:
      "@":
        SOA: ns1 hostmaster.example.test. 1 3600 600 86400 {NEGATIVE_TTL}
        NS: [ns1, ns2]
      ns1: {{A: {GSLB_NS[0]}}}
      ns2: {{A: {GSLB_NS[1]}}}
      fo: {{gslb: {{pool: fo, ttl: {FAILOVER_TTL}}}}}
      www: {{gslb: {{pool: web, ttl: 30}}}}
      api: {{gslb: {{pool: api, ttl: 30}}}}
      brief: {{gslb: {{pool: api, ttl: {STALE_TTL}}}}}
      pre: {{gslb: {{pool: api, ttl: {PREFETCH_TTL}}}}}
      heal: {{gslb: {{pool: fo, ttl: {HEAL_TTL}, ttl_when_degraded: {DEGRADED_TTL}}}}}
      heal-full: {{gslb: {{pool: fo, ttl: {HEAL_TTL}}}}}
"""

ROOT_ZONE = f"""\
$TTL 3600
.                IN SOA a.root.test. hostmaster.root.test. 1 3600 600 86400 60
.                IN NS  a.root.test.
a.root.test.     IN A   {PARENT}
example.test.    IN NS  ns.example.test.
ns.example.test. IN A   {PARENT}
"""

PARENT_ZONE = f"""\
$TTL 3600
@        IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 60
@        IN NS  ns.example.test.
ns       IN A   {PARENT}
; the delegation: NS + glue, as deploy/parent-zone.example shows
gslb     IN NS  ns1.gslb.example.test.
gslb     IN NS  ns2.gslb.example.test.
ns1.gslb IN A   {GSLB_NS[0]}
ns2.gslb IN A   {GSLB_NS[1]}
"""

ROOT_HINTS = f"""\
.            3600000 IN NS a.root.test.
a.root.test. 3600000 IN A  {PARENT}
"""


def nsd_conf(workdir: Path) -> str:
    """NSD config serving ``root.zone`` and ``example.test.zone`` from
    ``workdir`` on ``PARENT`` port 53, all state files in ``workdir``."""
    return f"""\
server:
  ip-address: {PARENT}
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{workdir}"
  database: ""
  zonelistfile: "{workdir}/zone.list"
  pidfile: "{workdir}/nsd.pid"
  xfrdfile: "{workdir}/xfrd.state"
  xfrdir: "{workdir}"
  logfile: "{workdir}/nsd.log"
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: "."
  zonefile: "root.zone"
zone:
  name: "example.test."
  zonefile: "example.test.zone"
"""


def unbound_conf(workdir: Path, *, ecs: bool = True,
                 options: Mapping[str, str | int] | None = None,
                 anchor: Path | None = None, hints: str = "root.hints") -> str:
    """unbound config for ``RESOLVER`` port 53 with root hints at ``PARENT``.

    ``ecs``: load the ``subnetcache`` module and send EDNS Client Subnet
    (RFC 7871) to both gslb nameservers, passing on a client's own ECS
    option. ``options``: further ``server:`` settings (e.g.
    ``{"cache-min-ttl": 6}``), written after the defaults so they win.
    ``anchor``: validate (module ``validator``) from this trust-anchor
    file. Reads ``hints`` (root hints) from ``workdir``; logs to stderr.
    """
    modules = ("subnetcache " if ecs else "") + ("validator " if anchor else "") + "iterator"
    lines = {
        "interface": RESOLVER, "port": 53, "outgoing-interface": RESOLVER,
        "do-daemonize": "no", "username": '""', "chroot": '""',
        "directory": f'"{workdir}"', "pidfile": '""', "use-syslog": "no",
        "logfile": '""', "verbosity": 1, "num-threads": 1, "do-ip6": "no",
        "access-control": "127.0.0.0/8 allow",
        "do-not-query-localhost": "no",   # our servers live on loopback
        "local-zone": '"test." nodefault',  # RFC 6761 zone unbound blocks by default
        "root-hints": f'"{workdir}/{hints}"',
        "module-config": f'"{modules}"',
    }
    if anchor is not None:
        lines |= {"trust-anchor-file": f'"{anchor}"', "val-log-level": 2}
    text = "server:\n" + "".join(f"  {key}: {value}\n" for key, value in lines.items())
    if ecs:
        text += "".join(f"  send-client-subnet: {ns}\n" for ns in GSLB_NS)
        text += "  client-subnet-always-forward: yes\n"
    text += "".join(f"  {key}: {value}\n" for key, value in (options or {}).items())
    return text + "remote-control:\n  control-enable: no\n"


def write_lab(workdir: Path, *, unbound_options: Mapping[str, str | int] | None = None,
              ecs: bool = True) -> None:
    """Write the NSD, unbound and gslb configuration files into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = {
        "root.zone": ROOT_ZONE, "example.test.zone": PARENT_ZONE, "root.hints": ROOT_HINTS,
        "nsd.conf": nsd_conf(workdir), "gslb.yaml": GSLB_YAML,
        "unbound.conf": unbound_conf(workdir, ecs=ecs, options=unbound_options),
    }
    for name, text in files.items():
        (workdir / name).write_text(text)



# ---------------------------------------------------------------------------
# The signed lab (tests/ttl/test_dnssec.py): the same picture with the root
# and example.test. signed by a second NSD, unbound validating from the root's
# trust anchor, and gslb signing online. It has addresses of its own so that
# it runs beside the unsigned lab in one session.

SIGNED_PARENT = "127.0.53.11"
"""NSD: the signed root and ``example.test.`` (one CSK each)."""
CHILD = "127.0.53.12"
"""NSD: the two child zones gslb delegates, ``insecure.`` (unsigned, no DS)
and ``secure.gslb.example.test.`` (signed, DS in gslb's zone)."""
INSECURE_CHILD = "insecure.gslb.example.test."
SECURE_CHILD = "secure.gslb.example.test."
STATIC_A, MAIL_A, WILD_A, CHILD_A = "192.0.2.20", "192.0.2.25", "192.0.2.30", "192.0.2.40"

SIGNED_POOLS = """\
  eu: {policy: weighted, origins: [london, stockholm]}
  eu-first: {policy: failover, tiers: [eu, virginia]}
  tree:
    policy: geo
    origins: [eu-first, virginia]
    countries: {US: virginia}
    continents: {EU: eu-first}
    default: eu-first
"""
"""Pools added to ``GSLB_YAML``'s: a tree of three (geo → failover → weighted)."""


def signed_gslb_yaml(keys: list[tuple[str, str]], secure_ds: list[str], *,
                     dnssec: Mapping[str, int] | None = None) -> str:
    """``GSLB_YAML`` plus the names the signed tests ask (a static name with
    A/TXT/MX, a CNAME chain ending at a GSLB name, a wildcard, a nested pool,
    two delegations to ``CHILD``) and a ``dnssec:`` section.

    ``keys``: (key basename path, ``active`` | ``published``) in order;
    ``secure_ds``: DS RDATA texts (``"TAG 13 2 HEX"``) of ``SECURE_CHILD``;
    ``dnssec``: further settings (``validity``, ``inception_skew``,
    ``refresh``, seconds)."""
    head, zones = GSLB_YAML.split("zones:\n")
    key_lines = "".join(f"        - {{file: {path}, state: {state}}}\n" for path, state in keys)
    extra = "".join(f"      {key}: {value}\n" for key, value in (dnssec or {}).items())
    ds = ", ".join(f'"{text}"' for text in secure_ds)
    return head + SIGNED_POOLS + "zones:\n" + zones + f"""\
      tree: {{gslb: {{pool: tree, ttl: 30}}}}
      static:
        A: {STATIC_A}
        TXT: '"signed static"'
        MX: 10 mail.gslb.example.test.
      mail: {{A: {MAIL_A}}}
      alias: {{CNAME: alias2}}
      alias2: {{CNAME: www}}
      "*.wild": {{A: {WILD_A}}}
      insecure: {{NS: ns.insecure}}
      ns.insecure: {{A: {CHILD}}}
      secure: {{NS: ns.secure, DS: [{ds}]}}
      ns.secure: {{A: {CHILD}}}
    dnssec:
      keys:
{key_lines}{extra}"""


def signed_root_zone(serial: int, example_ds: list[str]) -> str:
    """The root zone (unsigned text, for ``ldns-signzone``) with the DS
    RRset of ``example.test.`` (``example_ds``: DS RDATA texts)."""
    ds = "".join(f"example.test.    IN DS  {text}\n" for text in example_ds)
    return f"""\
$TTL 3600
.                IN SOA a.root.test. hostmaster.root.test. {serial} 3600 600 86400 60
.                IN NS  a.root.test.
a.root.test.     IN A   {SIGNED_PARENT}
example.test.    IN NS  ns.example.test.
ns.example.test. IN A   {SIGNED_PARENT}
{ds}"""


def signed_parent_zone(serial: int, gslb_ds: list[str]) -> str:
    """``example.test.`` (unsigned text) delegating ``gslb`` by NS + glue,
    with ``gslb_ds`` (DS RDATA texts; empty: an insecure delegation) and a
    TXT at ``www.example.test.`` to ask the parent's own data."""
    ds = "".join(f"gslb     IN DS  {text}\n" for text in gslb_ds)
    return f"""\
$TTL 3600
@        IN SOA ns.example.test. hostmaster.example.test. {serial} 3600 600 86400 60
@        IN NS  ns.example.test.
ns       IN A   {SIGNED_PARENT}
www      IN TXT "signed parent"
gslb     IN NS  ns1.gslb.example.test.
gslb     IN NS  ns2.gslb.example.test.
ns1.gslb IN A   {GSLB_NS[0]}
ns2.gslb IN A   {GSLB_NS[1]}
{ds}"""


def child_zone(origin: str) -> str:
    """A child zone of gslb's: SOA, NS ``ns.<origin>`` at ``CHILD``, and
    ``host`` A ``CHILD_A``."""
    return f"""\
$ORIGIN {origin}
$TTL 300
@    IN SOA ns hostmaster 1 3600 600 86400 60
@    IN NS  ns
ns   IN A   {CHILD}
host IN A   {CHILD_A}
"""


def signed_nsd_conf(workdir: Path, address: str, zones: Mapping[str, str]) -> str:
    """NSD config like ``nsd_conf`` on ``address`` port 53 serving
    ``zones`` (zone name → zone file name in ``workdir``); state files get
    the address in their names so that two NSDs share ``workdir``."""
    text = nsd_conf(workdir).split("zone:\n")[0].replace(PARENT, address)
    for state in ("zone.list", "nsd.pid", "xfrd.state", "nsd.log"):
        text = text.replace(f"{workdir}/{state}", f"{workdir}/{address}-{state}")
    return text + "".join(f'zone:\n  name: "{name}"\n  zonefile: "{file}"\n'
                          for name, file in zones.items())


def write_signed_resolver(workdir: Path, anchor: Path,
                          options: Mapping[str, str | int] | None = None) -> None:
    """Write ``unbound.conf`` (ECS on, validating from the root's ``anchor``
    file: its DNSKEY RR, RFC 4033 section 5) and ``signed.hints`` (the root
    at ``SIGNED_PARENT``) into ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "signed.hints").write_text(ROOT_HINTS.replace(PARENT, SIGNED_PARENT))
    (workdir / "unbound.conf").write_text(
        unbound_conf(workdir, options=options, anchor=anchor, hints="signed.hints"))


START_SH = """\
#!/bin/sh
# Run the gslb delegation lab in the foreground (as root); Ctrl-C stops it all.
cd "$(dirname "$0")"
nsd -d -c nsd.conf & pids="$!"
{python} -m gslb serve --config gslb.yaml --listen {ns1}:53 --geoip {mmdb} & pids="$pids $!"
{python} -m gslb serve --config gslb.yaml --listen {ns2}:53 --geoip {mmdb} & pids="$pids $!"
unbound -d -c unbound.conf & pids="$pids $!"
trap 'kill $pids 2>/dev/null' INT TERM
wait
"""


def main(argv: list[str]) -> int:
    """``python -m tests.ttl.lab DIR``: write the lab's files and ``start.sh``
    into DIR (absolute paths inside); exit status 2 on bad usage."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m tests.ttl.lab DIR\n")
        return 2
    workdir = Path(argv[0]).resolve()
    write_lab(workdir)
    (workdir / "start.sh").write_text(START_SH.format(
        python=sys.executable, ns1=GSLB_NS[0], ns2=GSLB_NS[1], mmdb=MMDB))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
