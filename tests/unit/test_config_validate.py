"""Config validation: every problem reported with FILE:LINE: KEY.PATH: message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gslb import countries
from gslb.config.load import load
from gslb.config.model import Check, GslbRecord, Location, Origin, Pool, RRset
from gslb.errors import ConfigError

DATA = Path(__file__).parent.parent / "data" / "zones"
EXAMPLE = Path(__file__).parent.parent.parent / "zones" / "example.yaml"

ZONE = """\
zones:
  example.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 30, NS: ns1}
"""
WEB = "origins:\n  web1: {ipv4: 192.0.2.1}\n  web2: {ipv4: 192.0.2.2}\n"


def errors_of(tmp_path: Path, text: str) -> tuple[str, list[str]]:
    """Write ``text`` (plus a valid zone unless it has zones) and load it."""
    path = tmp_path / "c.yaml"
    path.write_text(text if "zones:" in text else text + ZONE)
    with pytest.raises(ConfigError) as info:
        load([path])
    return str(path), list(info.value.reasons)


def assert_reason(reasons: list[str], prefix: str, message: str) -> None:
    assert any(r.startswith(prefix) and message in r for r in reasons), (prefix, message, reasons)


CASES = [
    # top level
    ("extra: 1\n", 1, "extra",
     "unknown key 'extra' (allowed: origins, pools, zones, vantages, health, rate_limit, "
     "cookies, alerts)"),
    ("origins: [a]\n", 1, "origins", "expected a mapping, got a list"),
    (WEB + "  web1: {ipv4: 192.0.2.9}\n", 4, "origins.web1",
     "duplicate key 'web1' (first at line 2)"),
    # origins
    ("origins:\n  a: {ipv4: 192.0.2.256}\n", 2, "origins.a.ipv4", "bad IPv4 address '192.0.2.256'"),
    ("origins:\n  a: {ipv6: [2001:db8::1, 192.0.2.1]}\n", 2, "origins.a.ipv6[1]",
     "'192.0.2.1' is an IPv4 address, not IPv6"),
    ("origins:\n  a:\n    ipv4:\n      - 192.0.2.1\n      - 192.0.2.01\n", 5, "origins.a.ipv4[1]",
     "bad IPv4 address"),
    ("origins:\n  a: {ipv4: [192.0.2.1, 192.0.2.1]}\n", 2, "origins.a.ipv4[1]",
     "duplicate address"),
    ("origins:\n  a: {ipv4: []}\n", 2, "origins.a.ipv4", "at least one IPv4 address"),
    ("origins:\n  a: {weight: 2}\n", 2, "origins.a", "needs at least one address"),
    ("origins:\n  a: {ipv4: 192.0.2.1, weight: '3'}\n", 2, "origins.a.weight",
     "expected an integer, got a string"),
    ("origins:\n  a: {ipv4: 192.0.2.1, weight: yes}\n", 2, "origins.a.weight",
     "expected an integer, got a boolean"),
    ("origins:\n  a: {ipv4: 192.0.2.1, weight: 0}\n", 2, "origins.a.weight", "0 is below 1"),
    ("origins:\n  a: {ipv4: 192.0.2.1, weight: 1.5}\n", 2, "origins.a.weight", "got a number"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    location: {lat: 10, lon: 181}\n", 4,
     "origins.a.location.lon", "181 is outside -180..180 degrees"),
    ("origins:\n  a: {ipv4: 192.0.2.1, location: {lat: 10}}\n", 2, "origins.a.location",
     "needs lat and lon, or country"),
    ("origins:\n  a: {ipv4: 192.0.2.1, location: {country: ZZ}}\n", 2,
     "origins.a.location.country", "unknown country code 'ZZ'"),
    ("origins:\n  a: {ipv4: 192.0.2.1, location: {country: SE, lat: 1, lon: 2}}\n", 2,
     "origins.a.location", "either country or lat/lon"),
    # checks
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check: {port: 80}\n", 4, "origins.a.check",
     "missing required key 'type'"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check: {type: ping}\n", 4, "origins.a.check.type",
     "unknown check type 'ping'"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check: {type: tcp}\n", 4, "origins.a.check",
     "missing required key 'port'"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      port: 65536\n", 6,
     "origins.a.check.port", "65536 is above 65535"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      path: health\n", 6,
     "origins.a.check.path", "must start with '/'"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      expect: [200, 99]\n",
     6, "origins.a.check.expect[1]", "99 is below 100"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: tcp\n      port: 22\n"
     "      body: ok\n", 7, "origins.a.check.body", "only valid for http and https checks"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      tls_verify: false\n",
     6, "origins.a.check.tls_verify", "only valid for https checks"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: https\n      tls_verify: 0\n",
     6, "origins.a.check.tls_verify", "expected true or false, got an integer"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      interval: 0\n", 6,
     "origins.a.check.interval", "0 must be above 0 seconds"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      interval: 5s\n", 6,
     "origins.a.check.interval", "expected a number of seconds, got a string"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      interval: 0.2\n"
     "      timeout: 0.3\n", 7, "origins.a.check.timeout", "timeout 0.3 s is longer than interval"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      fall: 0\n", 6,
     "origins.a.check.fall", "0 is below 1"),
    ("origins:\n  a:\n    ipv4: 192.0.2.1\n    check:\n      type: http\n      target: web\n", 6,
     "origins.a.check.target", "target 'web' is not an IP address"),
    # pools
    (WEB + "pools:\n  p: {origins: [web1]}\n", 5, "pools.p", "missing required key 'policy'"),
    (WEB + "pools:\n  p: {policy: random, origins: [web1]}\n", 5, "pools.p.policy",
     "unknown policy 'random'"),
    (WEB + "pools:\n  p: {policy: weighted}\n", 5, "pools.p", "missing required key 'origins'"),
    (WEB + "pools:\n  p:\n    policy: all\n    origins: [web1, web3]\n", 7, "pools.p.origins[1]",
     "unknown origin or pool 'web3'"),
    (WEB + "pools:\n  p: {policy: all, origins: web3}\n", 5, "pools.p.origins",
     "unknown origin or pool 'web3'"),
    (WEB + "pools:\n  p: {policy: all, origins: [web1, web2, web1]}\n", 5, "pools.p.origins[2]",
     "origin 'web1' is listed twice"),
    (WEB + "pools:\n  p:\n    policy: weighted\n    origins: [web1]\n    tiers: [web1]\n", 8,
     "pools.p.tiers", "only valid for policy failover (this pool's policy is weighted)"),
    (WEB + "pools:\n  p:\n    policy: failover\n    countries: {SE: web1}\n    tiers: [web1]\n",
     7, "pools.p.countries", "only valid for policy geo"),
    (WEB + "pools:\n  p: {policy: failover}\n", 5, "pools.p", "missing required key 'tiers'"),
    (WEB + "pools:\n  p: {policy: failover, origins: [web1, web2], tiers: [web1]}\n", 5,
     "pools.p.origins", "origin 'web2' is in no tier"),
    (WEB + "pools:\n  p: {policy: failover, tiers: [[web1], [web2, web1]]}\n", 5,
     "pools.p.tiers[1][1]", "origin 'web1' is listed twice"),
    (WEB + "pools:\n  p: {policy: failover, tiers: [[]]}\n", 5, "pools.p.tiers[0]",
     "at least one origin"),
    (WEB + "pools:\n  p:\n    policy: geo\n    origins: [web1]\n    default: web2\n", 8,
     "pools.p.default", "'web2' is not a member of this pool (origins: web1)"),
    (WEB + "pools:\n  p:\n    policy: geo\n    origins: [web1]\n    countries:\n      XK1: web1\n",
     9, "pools.p.countries.XK1", "unknown country code 'XK1'"),
    (WEB + "pools:\n  p:\n    policy: geo\n    origins: [web1]\n    continents:\n      EUR: web1\n",
     9, "pools.p.continents.EUR", "unknown continent code 'EUR'"),
    (WEB + "pools:\n  p:\n    policy: geo\n    origins: [web1, web2]\n    continents:\n"
     "      EU: [web1, [web2]]\n", 9, "pools.p.continents.EU", "mix of names and lists"),
    (WEB + "pools:\n  p:\n    policy: geo\n    origins: [web1]\n    continents:\n      EU: web1\n"
     "      eu: web1\n", 10, "pools.p.continents.eu", "EU is mapped twice"),
    (WEB + "pools:\n  p: {policy: all, origins: [web1], max_answers: 0}\n", 5,
     "pools.p.max_answers", "0 is below 1"),
    (WEB + "pools:\n  p: {policy: all, origins: [web1], fallback: spare}\n", 5, "pools.p.fallback",
     "fallback 'spare' is neither 'all', 'none' nor a known pool"),
    (WEB + "pools:\n  p: {policy: all, origins: [web1], fallback: p}\n", 5, "pools.p.fallback",
     "cannot fall back to itself"),
    (WEB + "pools:\n  p: {policy: all, origins: [web1], fallback: q}\n"
     "  q: {policy: all, origins: [web2], fallback: r}\n"
     "  r: {policy: all, origins: [web2], fallback: p}\n", 5, "pools.p.fallback",
     "fallback cycle: p -> q -> r -> p"),
    # zones
    ("zones:\n  example.test: {ttl: 60}\n", 2, "zones.example.test",
     "missing required key 'records'"),
    ("zones:\n  example..test: {records: {}}\n", 2, "zones.example..test", "bad domain name"),
    (ZONE + "    ttl: 2147483648\n", 5, "zones.example.test.ttl", "2147483648 is above 2147483647"),
    (ZONE + "      ns1: {A: 192.0.2.1}\n      NS1.example.test.: {AAAA: '2001:db8::1'}\n", 6,
     "zones.example.test.records.NS1.example.test.",
     "name ns1.example.test. is defined twice in this zone (first at line 5)"),
    (ZONE + "      www.example.com.: {A: 192.0.2.1}\n", 5,
     "zones.example.test.records.www.example.com.", "record outside its zone"),
    (ZONE + "      bad name: {A: 192.0.2.1}\n", 5, "zones.example.test.records.bad name",
     "bad domain name 'bad name.example.test.'"),
    (ZONE + "      www: {PTR: x}\n", 5, "zones.example.test.records.www.PTR",
     "unknown record type 'PTR'"),
    (ZONE + "      www: {A: 192.0.2.1, a: 192.0.2.2}\n", 5, "zones.example.test.records.www.a",
     "A is given twice for this name"),
    (ZONE + "      www: {A: 192.0.2.1, gslb: web}\n", 5, "zones.example.test.records.www",
     "cannot also have static A or AAAA"),
    (ZONE + "      www: {gslb: nowhere}\n", 5, "zones.example.test.records.www.gslb",
     "unknown pool 'nowhere'"),
    (ZONE + "      www: {gslb: {ttl: 5}}\n", 5, "zones.example.test.records.www.gslb",
     "missing required key 'pool'"),
    (ZONE + "      www:\n        A: [192.0.2.1, 192.0.2.2, 192.0.2.1]\n", 6,
     "zones.example.test.records.www.A[2]", "duplicate value '192.0.2.1'"),
    (ZONE + "      www:\n        AAAA: 192.0.2.1\n", 6, "zones.example.test.records.www.AAAA",
     "bad AAAA address"),
    (ZONE + "      www:\n        MX:\n          ttl: 60\n          values: mail\n", 8,
     "zones.example.test.records.www.MX.values", "bad MX data 'mail'"),
    (ZONE + "      www:\n        A: {ttl: -1, values: 192.0.2.1}\n", 6,
     "zones.example.test.records.www.A.ttl", "-1 is below 0"),
    (ZONE + "      www:\n        A: {value: 192.0.2.1, values: [192.0.2.2]}\n", 6,
     "zones.example.test.records.www.A", "exactly one of 'values' or 'value'"),
    (ZONE + "      www:\n        TXT: [true]\n", 6, "zones.example.test.records.www.TXT[0]",
     "expected TXT data as a string, got a boolean"),
    (ZONE + "      www:\n        SOA: ns1 hostmaster 1 3600 600 86400 30\n", 5,
     "zones.example.test.records.www", "SOA is only allowed at the zone apex"),
    (ZONE + "      www:\n        CNAME: [a, b]\n", 5, "zones.example.test.records.www",
     "CNAME must have exactly one value"),
    ("zones:\n  example.test:\n    records:\n      '@':\n"
     "        SOA: [ns1 h 1 2 3 4 5, ns2 h 1 2 3 4 5]\n        NS: ns1\n",
     4, "zones.example.test.records.@", "SOA record must have exactly one"),
    (ZONE + "      sub: {A: 192.0.2.1}\n  sub.example.test:\n    records:\n"
     "      '@': {SOA: ns1 hostmaster 1 3600 600 86400 30, NS: ns1}\n", 5,
     "zones.example.test.records.sub",
     "record sub.example.test. lies inside the configured zone sub.example.test."),
    (ZONE + "  Example.Test.:\n    records: {}\n", 5, "zones.Example.Test.",
     "zone 'Example.Test.' is defined twice (first at"),
]


@pytest.mark.parametrize(("text", "line", "path", "message"), CASES,
                         ids=[f"{c[2]}:{c[3][:30]}" for c in CASES])
def test_error_names_file_line_path_and_problem(tmp_path: Path, text: str, line: int, path: str,
                                                message: str) -> None:
    if "gslb: web" in text:
        text = WEB + "pools:\n  web: {policy: all, origins: [web1]}\n" + text
        line += 5
    name, reasons = errors_of(tmp_path, text)
    assert_reason(reasons, f"{name}:{line}: {path}: ", message)


@pytest.mark.parametrize("text", ["- a\n", "just text\n", ""])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    name, reasons = errors_of(tmp_path, text + "#zones:\n")
    assert reasons == [reasons[0]]
    assert reasons[0].startswith(f"{name}:1: (top): the file must be a mapping")


def test_yaml_syntax_error_has_file_and_line(tmp_path: Path) -> None:
    name, reasons = errors_of(tmp_path, "origins:\n  a: {ipv4: [192.0.2.1}\n")
    assert len(reasons) == 1 and reasons[0].startswith(f"{name}:2: (yaml): ")


def test_missing_file_is_a_reason_beside_other_files_reasons(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extra: 1\n" + ZONE)
    with pytest.raises(ConfigError) as info:
        load([tmp_path / "nope.yaml", bad])
    assert info.value.reasons == (
        f"{tmp_path / 'nope.yaml'}:1: (file): cannot read: No such file or directory",
        f"{bad}:1: extra: unknown key 'extra' (allowed: origins, pools, zones, vantages, "
        "health, rate_limit, cookies, alerts)",
    )


def expectations(path: Path) -> list[tuple[int, str, str]]:
    """The ``# expect: LINE: KEY.PATH: message`` lines at the top of a bad file."""
    found = re.findall(r"^# expect: (\d+): (\S+): (.+)$", path.read_text(), re.MULTILINE)
    return [(int(line), key, msg) for line, key, msg in found]


BAD_FILES = sorted(DATA.glob("bad-*.yaml"))


def test_the_committed_bad_files_cover_each_error_class() -> None:
    names = {p.stem for p in BAD_FILES}
    assert {"bad-unknown-key", "bad-address", "bad-weight", "bad-pool-unknown-origin",
            "bad-cname-beside-data", "bad-outside-zone", "bad-missing-soa", "bad-missing-ns",
            "bad-several"} <= names


@pytest.mark.parametrize("path", BAD_FILES, ids=[p.name for p in BAD_FILES])
def test_bad_file_reports_exactly_its_expected_errors(path: Path) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} names no expected error"
    with pytest.raises(ConfigError) as info:
        load([path])
    reasons = info.value.reasons
    assert len(reasons) == len(expected), reasons
    for (line, key, message), reason in zip(expected, reasons, strict=True):
        assert reason.startswith(f"{path}:{line}: {key}: "), (reason, line, key)
        assert message in reason


def test_several_errors_come_at_once_in_file_order() -> None:
    with pytest.raises(ConfigError) as info:
        load([DATA / "bad-several.yaml"])
    lines = [int(r.split(":")[1]) for r in info.value.reasons]
    assert len(lines) == 11 and lines == sorted(lines)
    assert str(info.value).count("\n") == 10


def test_minimal_config_model() -> None:
    config = load([DATA / "ok-minimal.yaml"])
    assert config.files == (str(DATA / "ok-minimal.yaml"),)
    assert config.origins["web1"] == Origin(name="web1", ipv4=("192.0.2.1",))
    assert config.pools["web"] == Pool(name="web", policy="all", origins=("web1",),
                                       tiers=(("web1",),))
    zone = config.zones["example.test."]
    assert zone.soa == RRset("example.test.", "SOA", 3600,
                             ("ns1.example.test. hostmaster.example.test. 1 3600 600 86400 30",))
    assert zone.rrsets["example.test.", "NS"].rdata == ("ns1.example.test.",)
    assert zone.rrsets["ns1.example.test.", "A"] == RRset("ns1.example.test.", "A", 3600,
                                                          ("192.0.2.53",))
    assert set(zone.rrsets) == {("example.test.", "SOA"), ("example.test.", "NS"),
                                ("ns1.example.test.", "A")}
    assert dict(zone.gslb) == {"www.example.test.": GslbRecord("www.example.test.", "web", 30)}


def test_several_zones_model() -> None:
    config = load([DATA / "ok-several-zones.yaml"])
    assert set(config.zones) == {"example.test.", "sub.example.test.", "example.org."}
    a, b, c = (config.origins[n] for n in "abc")
    assert a.ipv6 == ("2001:db8::1",) and a.weight == 2 and a.country == "SE"
    assert a.location is not None and a.check is None
    assert b.location == Location(-33.87, 151.21) and b.country is None
    assert b.check == Check(type="https", target="192.0.2.2", port=443, interval_s=0.5,
                            timeout_s=0.25, rise=1, fall=1, expect_status=(200, 204),
                            host_header="b.example.test", tls_verify=False)
    assert c.check == Check(type="tcp", target="2001:db8::3", port=5432)
    geo, spare, last = (config.pools[n] for n in ("geo", "spare", "last"))
    assert dict(geo.countries) == {"SE": (("a",),), "US": (("c",), ("a",))}
    assert dict(geo.continents) == {"OC": (("b", "c"),)}
    assert geo.default == (("a",), ("b",)) and geo.fallback == "spare"
    assert geo.tiers == (("a", "b", "c"),)
    assert spare.tiers == (("a",), ("b", "c")) and spare.origins == ("a", "b", "c")
    assert (last.max_answers, last.fallback) == (2, "none")
    top = config.zones["example.test."]
    assert top.rrsets["example.test.", "NS"].rdata == ("ns1.example.test.", "ns2.example.test.")
    assert top.rrsets["example.test.", "NS"].ttl == 600
    assert top.rrsets["mail.example.test.", "MX"] == RRset(
        "mail.example.test.", "MX", 60, ("10 mx1.example.test.", "20 mx2.example.net."))
    assert top.rrsets["txt.example.test.", "TXT"].rdata == ('"v=spf1 -all"',)
    assert top.gslb["www.example.test."].ttl == 10
    sub = config.zones["sub.example.test."]
    assert sub.soa.ttl == 3600 and "api.sub.example.test." in sub.gslb
    assert config.zones["example.org."].rrsets["www.example.org.", "CNAME"].rdata == (
        "www.example.test.",)


def test_norway_is_not_false(tmp_path: Path) -> None:
    if countries.lookup("NO") is None:
        pytest.skip("countries table without NO")
    path = tmp_path / "c.yaml"
    path.write_text(WEB + "pools:\n  p:\n    policy: geo\n    origins: [web1]\n"
                    "    countries: {NO: web1}\n" + ZONE)
    assert dict(load([path]).pools["p"].countries) == {"NO": (("web1",),)}


def test_example_config() -> None:
    config = load([EXAMPLE])
    assert {n: p.policy for n, p in config.pools.items()} == {
        "web": "geo", "api": "weighted", "db": "failover", "everyone": "all",
        "europe": "weighted", "europe-first": "failover", "app": "geo"}
    assert config.pools["europe"].min_healthy == 2
    assert config.pools["europe-first"].tiers == (("europe",), ("virginia",))
    web = config.pools["web"]
    assert web.countries["SE"] == (("stockholm",), ("london",))
    assert {n for tier in web.continents["EU"] for n in tier} == {"london", "stockholm"}
    assert web.continents["NA"] == (("virginia",),) and web.default == (("virginia",),)
    assert config.pools["db"].tiers == (("london",), ("stockholm", "virginia"))
    assert config.pools["db"].fallback == "none"
    london, stockholm = config.origins["london"], config.origins["stockholm"]
    assert london.weight == 3 and london.country == "GB" and london.ipv6 == ("2001:db8::11",)
    assert london.check is not None and london.check.interval_s == 1.0
    assert london.check.timeout_s == 0.5 and london.check.target == "127.0.0.11"
    # the anchored check is shared, but each origin probes its own address
    assert stockholm.check is not None and stockholm.check.target == "127.0.0.12"
    assert config.origins["singapore"].check.type == "tcp"  # type: ignore[union-attr]
    assert config.origins["virginia"].location == Location(38.95, -77.45)
    zone = config.zones["gslb.example.com."]
    assert zone.soa.ttl == 300
    assert zone.gslb["api.gslb.example.com."] == GslbRecord("api.gslb.example.com.", "api", 20)
    assert zone.gslb["www.gslb.example.com."].ttl == 30
    assert zone.rrsets["static.gslb.example.com.", "A"] == RRset(
        "static.gslb.example.com.", "A", 60, ("192.0.2.10", "192.0.2.11"))
    assert zone.rrsets["docs.gslb.example.com.", "CNAME"].rdata == ("www.gslb.example.com.",)
    assert ("_sip._udp.gslb.example.com.", "SRV") in zone.rrsets


def test_files_merge_and_names_must_be_unique_across_them(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(WEB + "pools:\n  web: {policy: all, origins: [web1, web2]}\n")
    second.write_text(ZONE + "      www: {gslb: web}\n")
    config = load([first, second])
    assert config.files == (str(first), str(second))
    assert config.zones["example.test."].gslb["www.example.test."].pool == "web"
    third = tmp_path / "c.yaml"
    third.write_text("pools:\n  web: {policy: all, origins: [web1]}\nzones:\n"
                     "  Example.Test.:\n    records: {}\n")
    with pytest.raises(ConfigError) as info:
        load([first, second, third])
    assert info.value.reasons == (
        f"{third}:2: pools.web: pool 'web' is defined twice (first at {first}:5)",
        f"{third}:4: zones.Example.Test.: zone 'Example.Test.' is defined twice "
        f"(first at {second}:2)",
    )


def test_docs_examples_load(tmp_path: Path) -> None:
    docs = Path(__file__).parent.parent.parent / "docs" / "config.md"
    blocks = re.findall(r"^```yaml gslb\n(.*?)^```", docs.read_text(), re.MULTILINE | re.DOTALL)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"doc{i}.yaml"
        path.write_text(block)
        assert load([path]).zones
