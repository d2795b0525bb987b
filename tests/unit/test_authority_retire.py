"""A reload frees the config it replaced: ``Answering.install`` retires
the old authority, whose answer cache held it in a reference cycle that
``gc.freeze`` (every load) put out of the collector's reach, so each
reload kept the whole old zone (+26 MB a reload for 100,000 names)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from gslb.answering import Answering, AnswerSettings, build_authority
from gslb.config.load import load
from gslb.stats import QueryStats
from tests.integration.dnsutil import BASE_ZONE
from tests.unit.fakes import Health

CONFIG = """
origins:
  a: {ipv4: [192.0.2.1]}
pools:
  p: {policy: all, origins: [a]}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: p}
"""


def test_an_installed_authority_frees_the_one_it_replaced(tmp_path: Path) -> None:
    path = tmp_path / "zone.yaml"
    path.write_text(CONFIG)
    config, stats = load([path]), QueryStats()
    answering = Answering(build_authority(config, Health(), None, stats, AnswerSettings()),
                          stats)
    refs = []
    for _ in range(3):
        refs.append(weakref.ref(answering.authority))
        answering.install(build_authority(config, Health(), None, stats, AnswerSettings()))
    gc.freeze()  # as every load does: the collector would not find a cycle
    try:
        assert [r() for r in refs] == [None, None, None]
        assert answering.authority.cache is not None  # the one in force keeps its cache
    finally:
        gc.unfreeze()
