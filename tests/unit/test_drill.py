"""``gslb drill`` (issue 18 item 2): every place's answers now and with some
origins down, from the real steering, over a config with geo (countries,
continents, default, nearest, networks, ASNs), failover, a tree of pools,
weighted draws, ``all`` and the three fallbacks; a silent vantage under a
2-of-3 quorum; the JSON form; the command line's errors."""

from __future__ import annotations

import json
import random
import textwrap
import time
from pathlib import Path

import pytest

from gslb import countries
from gslb.cli import main
from gslb.config.load import load
from gslb.config.model import Config
from gslb.drill import DrillError, Report, Row, check_names, drill, places
from gslb.health.redis.once import quorum_view
from gslb.health.state import VantageReport
from gslb.health.view import AllUpExcept, QuorumView
from gslb.steering import Steering
from gslb.steering.base import Basis

CONFIG = """
vantages:
  v1: {location: {country: DE}}
  v2: {location: {country: US}}
  v3: {location: {country: SG}}
health: {quorum: 2}
origins:
  lon: {ipv4: [192.0.2.11], ipv6: ["2001:db8::11"], weight: 3, location: {country: GB},
        check: {type: tcp, port: 9}}
  sto: {ipv4: [192.0.2.12], ipv6: ["2001:db8::12"], location: {country: SE},
        check: {type: tcp, port: 9}}
  iad: {ipv4: [192.0.2.13], location: {lat: 38.95, lon: -77.45}, check: {type: tcp, port: 9}}
  sin: {ipv4: [192.0.2.14], location: {country: SG}, check: {type: tcp, port: 9}}
  syd: {ipv4: [192.0.2.15], location: {country: AU}, check: {type: tcp, port: 9}}
  isp: {ipv4: [192.0.2.16], check: {type: tcp, port: 9}}
pools:
  web:
    policy: geo
    origins: [lon, sto, iad, sin, syd, isp]
    networks: {10.0.0.0/8: isp, "2001:db8:aa::/48": [[isp], [iad]]}
    asns: {AS64496: [[isp], [iad]]}
    countries: {GB: [[lon], [sto]], SE: [[sto], [lon]]}
    continents: {EU: [[lon], [sto]], NA: iad}
    default: iad
  api: {policy: weighted, origins: [lon, iad], max_answers: 1}
  db: {policy: failover, tiers: [[lon], [sto, iad]], fallback: none}
  everyone: {policy: all, origins: [lon, sto, iad, sin]}
  europe: {policy: weighted, origins: [lon, sto], min_healthy: 2}
  europe-first: {policy: failover, tiers: [europe, iad]}
  app:
    policy: geo
    origins: [europe-first, iad, sin]
    continents: {EU: europe-first, NA: iad, AS: sin}
    default: europe-first
  solo: {policy: all, origins: [sin], fallback: all}
  spare: {policy: all, origins: [syd]}
  backup: {policy: all, origins: [sin], fallback: spare}
zones:
  gslb.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 192.0.2.53}
      www: {gslb: web}
      api: {gslb: api}
      db: {gslb: db}
      all: {gslb: everyone}
      app: {gslb: app}
      solo: {gslb: solo}
      backup: {gslb: backup}
"""

ADDRESS = {"lon": {"192.0.2.11", "2001:db8::11"}, "sto": {"192.0.2.12", "2001:db8::12"},
           "iad": {"192.0.2.13"}, "sin": {"192.0.2.14"}, "syd": {"192.0.2.15"},
           "isp": {"192.0.2.16"}}


pytestmark = pytest.mark.usefixtures("cli_logging")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    path = tmp_path_factory.mktemp("drill") / "drill.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    return load([path])


def row(report: Report, code: str, name: str, rtype: str = "A", continent: bool = False) -> Row:
    """The row of place ``code`` (a continent's when ``continent``: AS is both)."""
    found = [r for r in report.rows if r.place.code == code and r.name == name
             and r.rtype == rtype and (r.place.kind == "continent") == continent]
    assert len(found) == 1, (code, name, rtype)
    return found[0]


def test_every_country_continent_network_and_asn_is_a_place(config: Config) -> None:
    codes = [p.code for p, _c in places(config)]
    assert codes[:len(countries.COUNTRIES)] == sorted(countries.COUNTRIES)
    assert codes[len(countries.COUNTRIES):] == [*sorted(countries.CONTINENTS), "10.0.0.0/8",
                                                 "2001:db8:aa::/48", "AS64496"]
    report = drill(config, ["lon"])
    names = {r.name for r in report.rows}
    assert names == {f"{n}.gslb.test." for n in
                     ("www", "api", "db", "all", "app", "solo", "backup")}
    # AAAA only where the pool's tree has IPv6 addresses
    assert {r.rtype for r in report.rows if r.name == "solo.gslb.test."} == {"A"}
    assert len(report.rows) == len(codes) * (2 + 2 + 2 + 2 + 2 + 1 + 1)


@pytest.mark.parametrize("down", [["lon"], ["sin"], ["lon", "sin"], ["sto", "iad"], ["isp"],
                                  ["lon", "sto", "iad", "sin", "syd", "isp"]])
def test_changed_rows_are_exactly_those_whose_answer_changed(config: Config,
                                                             down: list[str]) -> None:
    report = drill(config, down)
    gone = set().union(*(ADDRESS[o] for o in down))
    # an oracle beside the drill: the same steering, a plain view with the origins out
    steering = Steering(config.pools, config.origins, vantages=config.vantages, quiet=True)
    view = AllUpExcept(frozenset(down))
    clients = dict(places(config))  # by Place: AS is a country and a continent
    for r in report.rows:
        assert r.changed == (r.now.kind != r.then.kind or r.now.options != r.then.options)
        # now (all up) never falls back; then holds a downed origin only by fallback
        assert not r.now.fallback
        assert r.then.fallback or not (set(r.then.addresses) & gone), r
        if not r.then.drawn and r.then.kind == "answer":
            family = 4 if r.rtype == "A" else 6
            choice = steering.choose(r.pool, family, clients[r.place], view,
                                     random.Random(1))
            assert set(choice.addresses) == set(r.then.options[0])
        if not set(r.now.addresses) & gone and not r.then.fallback:
            # nothing it answered went down (a tree's min_healthy aside)
            assert not r.changed or r.pool == "app", r
    assert report.changed == tuple(r for r in report.rows if r.changed)


def test_geo_rows(config: Config) -> None:
    report = drill(config, ["lon", "sin"])
    gb = row(report, "GB", "www.gslb.test.")
    assert (gb.now.options, gb.then.options, gb.changed) == (
        (("192.0.2.11",),), (("192.0.2.12",),), True)
    fr = row(report, "FR", "www.gslb.test.")  # continent EU
    assert (fr.now.options, fr.then.options) == ((("192.0.2.11",),), (("192.0.2.12",),))
    us = row(report, "US", "www.gslb.test.")  # continent NA: untouched
    assert (us.now.options, us.changed) == ((("192.0.2.13",),), False)
    jp = row(report, "JP", "www.gslb.test.")  # AS is not mapped: nearest, then the next
    assert (jp.now.options, jp.then.options) == ((("192.0.2.14",),), (("192.0.2.15",),))
    assert "nearest" in jp.now.reason
    an = row(report, "AN", "www.gslb.test.", continent=True)  # Antarctica: nearest too
    assert an.now.kind == "answer"
    net = row(report, "10.0.0.0/8", "www.gslb.test.")
    assert (net.place.kind, net.now.options, net.changed) == ("network", (("192.0.2.16",),),
                                                             False)
    asn = row(report, "AS64496", "www.gslb.test.")
    assert (asn.place.kind, asn.now.options) == ("asn", (("192.0.2.16",),))
    assert "AS64496" in asn.now.reason
    # the network's second tier takes over when its first is down
    report = drill(config, ["isp"])
    v6net = row(report, "2001:db8:aa::/48", "www.gslb.test.")
    assert (v6net.now.options, v6net.then.options) == ((("192.0.2.16",),), (("192.0.2.13",),))


def test_draws_show_every_possible_answer_and_say_one_of(config: Config) -> None:
    report = drill(config, ["lon"])
    api = row(report, "SE", "api.gslb.test.")
    assert api.now.drawn and api.now.options == (("192.0.2.11",), ("192.0.2.13",))
    assert api.now.text().startswith("one of 192.0.2.11, 192.0.2.13")
    assert not api.then.drawn and api.then.options == (("192.0.2.13",),) and api.changed
    # a draw inside a tree (geo → failover → weighted europe) is a draw too
    app = row(report, "FR", "app.gslb.test.")
    assert app.now.drawn and app.now.addresses == ("192.0.2.11", "192.0.2.12")
    # with lon down, europe (min_healthy 2) is down: its failover goes to iad
    assert app.then.options == (("192.0.2.13",),) and app.changed
    db = row(report, "SE", "db.gslb.test.")  # failover: the second tier of two is a draw
    assert db.then.drawn and db.then.addresses == ("192.0.2.12", "192.0.2.13")
    assert "one of" in db.then.text()


def test_a_weight_of_one_in_a_hundred_is_still_found(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(textwrap.dedent("""
        origins:
          big: {ipv4: [192.0.2.1], weight: 99}
          small: {ipv4: [192.0.2.2], weight: 1}
          mid: {ipv4: [192.0.2.3], weight: 50}
        pools:
          p: {policy: weighted, origins: [big, small, mid], max_answers: 2}
        zones:
          w.test:
            records:
              "@": {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}
              ns1: {A: 192.0.2.53}
              www: {gslb: p}
        """))
    report = drill(load([path]), ["mid"])
    r = report.rows[0]
    assert set(r.now.options) == {("192.0.2.1", "192.0.2.2"), ("192.0.2.1", "192.0.2.3"),
                                  ("192.0.2.2", "192.0.2.3")}
    assert r.then.options == (("192.0.2.1", "192.0.2.2"),) and not r.then.partial
    assert "one of 192.0.2.1 192.0.2.2 | " in r.now.text()


def test_all_and_fallbacks(config: Config) -> None:
    report = drill(config, ["sin"])
    everyone = row(report, "DE", "all.gslb.test.")
    assert everyone.now.options == (("192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14"),)
    assert everyone.then.options == (("192.0.2.11", "192.0.2.12", "192.0.2.13"),)
    solo = row(report, "DE", "solo.gslb.test.")  # fallback: all answers the dead origin
    assert solo.then.fallback and solo.then.options == (("192.0.2.14",),)
    assert not solo.changed and solo.then.text() == "192.0.2.14 (fallback)"
    backup = row(report, "DE", "backup.gslb.test.")  # fallback: another pool
    assert backup.then.fallback and backup.then.pool == "spare"
    assert backup.then.text("backup") == "192.0.2.15 (fallback, pool spare)"
    report = drill(config, ["lon", "sto", "iad"])
    db = row(report, "DE", "db.gslb.test.")  # fallback: none
    assert (db.then.kind, db.then.fallback, db.changed) == ("servfail", True, True)
    assert db.then.text() == "SERVFAIL (fallback)"


def now_view(config: Config, reports: dict[str, dict[str, bool]]) -> QuorumView:
    """A view as a full load from Redis leaves it: ``reports`` origin →
    vantage → up, every vantage fresh."""
    view = quorum_view(config)
    now = time.time()
    view.replace([VantageReport(o, v, up, 3, up, None, None, "", now)
                  for o, votes in reports.items() for v, up in votes.items()],
                 dict.fromkeys(config.vantages, now))
    return view


def test_a_silent_vantage_never_flips_an_origin_by_itself(config: Config) -> None:
    votes = {"lon": {"v1": False, "v2": True, "v3": True},   # only v1 saw it down: up
             "sto": {"v1": False, "v2": False, "v3": True},  # down by 2 of 3
             "iad": {"v1": True, "v2": True, "v3": True},
             "sin": {"v1": True, "v2": True, "v3": True},
             "syd": {"v1": True, "v2": True, "v3": True},
             "isp": {"v1": True, "v2": True, "v3": True}}
    health = now_view(config, votes)
    assert health.is_up("lon") and not health.is_up("sto")
    baseline = drill(config, ["syd"], health=health)
    for silent in (["v1"], ["v2"], ["v1", "v2"]):
        report = drill(config, ["syd"], silent=silent, health=health)
        assert report.silent == tuple(silent)
        assert [r for r in report.rows if r.changed] == [r for r in baseline.rows if r.changed]
        gb = row(report, "GB", "www.gslb.test.")
        assert gb.then.options == (("192.0.2.11",),)  # lon stays up
        se = row(report, "SE", "www.gslb.test.")
        assert se.then.options == (("192.0.2.11",),)  # sto stays down
        # changed rows are those whose pool could answer syd, nothing else
        assert all(r.pool in ("web", "backup") for r in report.changed)
    # two of three silent: fewer than the quorum fresh, every origin holds (degraded)
    report = drill(config, ["syd"], silent=["v1", "v2"], health=health)
    assert report.held == ("iad", "isp", "lon", "sin", "sto", "syd")
    assert drill(config, ["syd"], silent=["v1"], health=health).held == ()
    assert "held at their last state" in report.text()


def test_a_silent_vantage_counts_through_the_quorum_rules(config: Config) -> None:
    # iad: down by v1 and v2 while v3 was already stale; silencing v1
    # leaves one fresh vote of the two needed: the state holds, down
    view = quorum_view(config)
    now = time.time()
    view.replace([VantageReport("iad", v, False, 3, False, None, None, "", now)
                  for v in ("v1", "v2")], {"v1": now, "v2": now, "v3": now - 3600})
    assert not view.is_up("iad")
    report = drill(config, ["syd"], silent=["v1"], health=view)
    us = row(report, "US", "www.gslb.test.")
    assert "192.0.2.13" not in us.then.addresses and not us.changed
    assert report.held == ("iad",)


def test_json_round_trips(config: Config, capsys: pytest.CaptureFixture[str],
                          tmp_path: Path) -> None:
    report = drill(config, ["lon", "sin"])
    assert Report.from_json(json.loads(json.dumps(report.to_json()))) == report
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    assert main(["drill", "--down", "lon,sin", "--config", str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["changed"] == len(report.changed)
    again = Report.from_json(printed)
    # draws aside (their first run's reason only), the same rows
    assert [(r.place, r.name, r.rtype, r.now.options, r.then.options, r.changed)
            for r in again.rows] == [(r.place, r.name, r.rtype, r.now.options,
                                      r.then.options, r.changed) for r in report.rows]


def test_text_marks_changed_rows(config: Config, capsys: pytest.CaptureFixture[str],
                                 tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    assert main(["drill", "--down", "lon", "--config", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("gslb drill: down lon (now: all up); ")
    assert out[1].split() == ["PLACE", "NAME", "TYPE", "NOW", "WITH", "lon", "DOWN"]
    gb = [line for line in out if line[3:].startswith("GB ") and "www." in line
          and "  A  " in line]
    assert gb == [gb[0]] and gb[0].startswith("*") and gb[0].split()[-1] == "192.0.2.12"
    us = [line for line in out if line[3:].startswith("US ") and "www." in line]
    assert us and not us[0].startswith("*")
    assert main(["drill", "--down", "lon", "--config", str(path), "--changed"]) == 0
    changed = capsys.readouterr().out.splitlines()[2:]
    assert changed and all(line.startswith("*") for line in changed)


@pytest.mark.parametrize(("argv", "message"), [
    (["--down", "lon,paris"], "unknown origin(s): paris; known: iad, isp, lon, sin, sto, syd"),
    (["--down", ","], "name at least one origin"),
    (["--down", "lon", "--vantage-down", "v9"], "unknown vantage(s): v9; known: v1, v2, v3"),
])
def test_unknown_names_are_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         argv: list[str], message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(CONFIG))
    assert main(["drill", *argv, "--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_check_names(config: Config) -> None:
    assert check_names(config, ["lon", "lon", ""], ["v1"]) == (("lon",), ("v1",))
    assert check_names(config, ["lon"], ["v7"], heard={"v7"}) == (("lon",), ("v7",))
    with pytest.raises(DrillError, match="unknown vantage"):
        check_names(config, ["lon"], ["local"])


def test_250_countries_by_50_names_take_a_few_seconds(tmp_path: Path) -> None:
    origins = "".join(f"  o{i}: {{ipv4: [192.0.2.{i + 1}], ipv6: ['2001:db8::{i + 1:x}'], "
                      f"location: {{country: {c}}}}}\n"
                      for i, c in enumerate(["GB", "SE", "US", "SG", "AU", "BR", "ZA", "JP"]))
    mapped = sorted(countries.COUNTRIES)
    country_map = "".join(f"      {c}: [[o{i % 8}], [o{(i + 1) % 8}, o{(i + 2) % 8}]]\n"
                          for i, c in enumerate(mapped[::2]))
    members = ", ".join(f"o{i}" for i in range(8))
    pools = "".join(f"  p{n}:\n    policy: geo\n    origins: [{members}]"
                    f"\n    countries:\n{country_map}    continents: {{EU: [[o0, o1]]}}\n"
                    for n in range(5))
    pools += "  w:\n    policy: weighted\n    origins: [o0, o1, o2]\n"
    names = "".join(f"      n{n}: {{gslb: {'w' if n % 10 == 9 else f'p{n % 5}'}}}\n"
                    for n in range(50))
    path = tmp_path / "big.yaml"
    path.write_text(f"origins:\n{origins}pools:\n{pools}zones:\n  big.test:\n    records:\n"
                    "      '@': {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}\n"
                    f"      ns1: {{A: 192.0.2.53}}\n{names}")
    config = load([path])
    started = time.perf_counter()
    report = drill(config, ["o0", "o3"])
    took = time.perf_counter() - started
    assert len(report.rows) == len(places(config)) * 50 * 2
    assert len(places(config)) >= 250
    assert any(r.now.drawn for r in report.rows) and report.changed
    assert took < 10.0, f"{took:.1f} s"


def test_basis_decides_a_draw_not_the_policy_name(config: Config) -> None:
    # a weighted pool with one healthy origin left draws nothing: not "one of"
    report = drill(config, ["iad"])
    api = row(report, "DE", "api.gslb.test.")
    assert api.now.drawn and not api.then.drawn
    assert api.then.text() == "192.0.2.11"
    assert Basis.DRAW  # the flag the drill reads (gslb.steering.base.Basis)


def test_a_network_place_asks_from_outside_its_narrower_networks(tmp_path: Path) -> None:
    path = tmp_path / "n.yaml"
    path.write_text(textwrap.dedent("""
        origins:
          wide: {ipv4: [192.0.2.1]}
          narrow: {ipv4: [192.0.2.2]}
          other: {ipv4: [192.0.2.3]}
        pools:
          p:
            policy: geo
            origins: [wide, narrow, other]
            networks: {10.0.0.0/8: wide, 10.0.0.0/24: narrow, 192.0.2.0/24: other}
            default: other
        zones:
          n.test:
            records:
              "@": {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}
              ns1: {A: 192.0.2.53}
              www: {gslb: p}
        """))
    report = drill(load([path]), ["other"])
    assert row(report, "10.0.0.0/8", "www.n.test.").now.options == (("192.0.2.1",),)
    assert row(report, "10.0.0.0/24", "www.n.test.").now.options == (("192.0.2.2",),)
    # 192.0.2.0/24 holds the default client address: countries ask from another one
    se = row(report, "SE", "www.n.test.").now
    assert se.reason.endswith("default tier 1") and "network" not in se.reason
    assert row(report, "192.0.2.0/24", "www.n.test.").changed
