"""ASN maps (issue 13 item 4): ``asns`` in geo pools, looked up in the
project's fake ASN database (``tests/data/geoip/fake-asn.mmdb``), after the
networks and before the countries, with the ASN network's prefix-length as
ECS scope; a nameserver without ``--asn-db`` refuses such a config."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import Config
from gslb.errors import ConfigError
from gslb.geo import AsnDB, GeoLocation
from gslb.serve.service import Service
from gslb.steering import Client, Steering
from gslb.steering.base import Basis
from tests.unit.fakes import Health

FAKE_ASN = Path(__file__).resolve().parent.parent / "data" / "geoip" / "fake-asn.mmdb"
ZONE = """
origins:
  isp: {ipv4: [192.0.2.1]}
  wide: {ipv4: [192.0.2.2]}
  home: {ipv4: [192.0.2.9]}
pools:
  web:
    policy: geo
    origins: [isp, wide, home]
    networks: {81.2.69.128/25: home}
    asns: {AS64496: isp, 64497: [[wide], [home]]}
    countries: {GB: home}
    default: home
zones:
  asn.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 192.0.2.53}
      www: {gslb: web}
"""
GB = GeoLocation("GB", "EU", 51.5, -0.1, prefix_len=16)


@pytest.fixture(scope="module")
def asn_db():
    db = AsnDB(FAKE_ASN)
    yield db
    db.close()


def config(tmp_path: Path, text: str = ZONE) -> Config:
    path = tmp_path / "asn.yaml"
    path.write_text(text)
    return load([path])


def choose(cfg: Config, asn_db: AsnDB, ecs: str, source: int = 24,
           health: Health | None = None) -> tuple[tuple[str, ...], int, Basis, str]:
    client = Client("198.51.100.7", ecs, source, 4, locator=lambda _ip: GB,
                    asn_lookup=asn_db.lookup)
    got = Steering(cfg.pools, cfg.origins).choose("web", 4, client, health or Health(),
                                                  random.Random(0))
    return got.addresses, got.scope, got.basis, got.reason


def test_the_client_as_decides_with_its_network_as_scope(tmp_path: Path, asn_db: AsnDB) -> None:
    cfg = config(tmp_path)
    # 81.2.69.0/24 is AS64496 in the fake database
    assert choose(cfg, asn_db, "81.2.69.0") == (("192.0.2.1",), 24, Basis.CLIENT,
                                                "AS64496 tier 1")
    # 51.0.0.0/16 is AS64497: scope 16 for a /24 source, capped by a /12 one
    assert choose(cfg, asn_db, "51.0.7.0")[:2] == (("192.0.2.2",), 16)
    assert choose(cfg, asn_db, "51.0.0.0", source=12)[1] == 12
    # the network map comes first
    assert choose(cfg, asn_db, "81.2.69.128", source=25)[:2] == (("192.0.2.9",), 25)


def test_a_down_as_entry_and_an_unmapped_as_fall_through(tmp_path: Path, asn_db: AsnDB) -> None:
    cfg = config(tmp_path)
    got = choose(cfg, asn_db, "51.0.7.0", health=Health(wide=False))
    assert got[0] == ("192.0.2.9",) and got[3] == "AS64497 tier 2"
    got = choose(cfg, asn_db, "51.0.7.0", health=Health(wide=False, home=False))
    assert got[3].startswith("AS64497 down; ")
    # AS64498 (81.2.70.0/25) is not mapped: the country decides, and the
    # answer's scope is the more specific of the AS network (/25, capped at
    # the source /24) and the geo network (/16)
    addresses, scope, _basis, reason = choose(cfg, asn_db, "81.2.70.0")
    assert addresses == ("192.0.2.9",) and reason == "country GB tier 1" and scope == 24
    addresses, scope, _basis, _reason = choose(cfg, asn_db, "81.2.70.0", source=20)
    assert scope == 20


@pytest.mark.parametrize(("asns", "message"), [
    ("{AS0: isp}", "not an AS number: 'AS0'"),
    ("{ASX: isp}", "not an AS number: 'ASX'"),
    ("{4294967296: isp}", "not an AS number: '4294967296'"),
    ("{64496: isp, AS64496: wide}", "AS64496 is mapped twice"),
    ("{64496: nobody}", "unknown origin or pool 'nobody'"),
])
def test_bad_asns_are_refused_with_their_place(tmp_path: Path, asns: str, message: str) -> None:
    text = ZONE.replace("{AS64496: isp, 64497: [[wide], [home]]}", asns)
    with pytest.raises(ConfigError) as info:
        config(tmp_path, text)
    assert any(": pools.web.asns" in r and message in r for r in info.value.reasons), (
        info.value.reasons)


def test_a_nameserver_without_an_asn_database_refuses_asns(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pools\.web\.asns: an asns map needs an ASN "
                                          r"database: gslb serve --asn-db PATH"):
        Service(config(tmp_path), [("127.0.0.1", 0)])
