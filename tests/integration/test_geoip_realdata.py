"""Build the mmdb from Debian's real tor-geoipdb data and look up known
addresses (MaxMind's own test addresses). About 10 s on a 2-core machine."""

from __future__ import annotations

from pathlib import Path

import geoip2.database
import pytest

from gslb.geo import GeoDB, GeoLocation
from gslb.geoip_build import DEFAULT_V4, DEFAULT_V6, build

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not (DEFAULT_V4.exists() and DEFAULT_V6.exists()),
                       reason=f"{DEFAULT_V4} and {DEFAULT_V6} absent: "
                              "apt-get install -y tor-geoipdb"),
]


def test_build_from_real_data(tmp_path: Path) -> None:
    out = tmp_path / "country.mmdb"
    stats = build(DEFAULT_V4, DEFAULT_V6, out)
    assert stats.read > 500_000 and stats.written > 400_000
    assert stats.skipped.get("malformed", 0) == 0 and stats.skipped.get("overlap", 0) == 0
    expected = {"81.2.69.142": "GB", "89.160.20.112": "SE", "2001:4860:4860::8888": "US"}
    with geoip2.database.Reader(str(out)) as reader:
        for address, country in expected.items():
            assert reader.country(address).country.iso_code == country, address
    with GeoDB(out) as db:
        for address, country in expected.items():
            located = db.locate(address)
            assert located is not None and located.country == country, address
        # private and loopback: not located, for the whole reserved network
        assert db.locate("10.1.2.3") == GeoLocation(None, None, prefix_len=8)
        assert db.locate("127.0.0.1") == GeoLocation(None, None, prefix_len=8)
        assert db.locate("192.168.7.1") == GeoLocation(None, None, prefix_len=16)
