"""Rebuild fake-country.mmdb from fixture-geoip and fixture-geoip6, and
fake-asn.mmdb from fixture-asn, with the same builders as the real data
(``gslb.geoip_build.build`` and ``build_asn``)::

    .venv/bin/python tests/data/geoip/make_fake_mmdb.py

tests/unit/test_geoip_build.py checks that the committed files still answer
like a fresh build, so rerun this after changing the fixtures or the builders.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gslb.geoip_build import build, build_asn

HERE = Path(__file__).resolve().parent
V4, V6, OUT = HERE / "fixture-geoip", HERE / "fixture-geoip6", HERE / "fake-country.mmdb"
ASN, ASN_OUT = HERE / "fixture-asn", HERE / "fake-asn.mmdb"


def asn_entries(path: Path = ASN) -> list[tuple[str, int, str | None]]:
    """The (network, AS number, organisation or None) lines of ``path``
    (``network,number,organisation``; ``#`` starts a comment line)."""
    entries: list[tuple[str, int, str | None]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            network, number, organization = line.split(",", 2)
            entries.append((network, int(number), organization or None))
    return entries


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build(V4, V6, OUT)
    build_asn(asn_entries(), ASN_OUT)
