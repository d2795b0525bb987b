"""Rebuild fake-country.mmdb from fixture-geoip and fixture-geoip6 with the
same builder as the real data (``gslb.geoip_build.build``)::

    .venv/bin/python tests/data/geoip/make_fake_mmdb.py

tests/unit/test_geoip_build.py checks that the committed file still answers
like a fresh build, so rerun this after changing the fixtures or the builder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gslb.geoip_build import build

HERE = Path(__file__).resolve().parent
V4, V6, OUT = HERE / "fixture-geoip", HERE / "fixture-geoip6", HERE / "fake-country.mmdb"

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(V4, V6, OUT)
