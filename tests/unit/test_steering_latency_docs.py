"""The ``latency`` example of docs/steering.md loads and answers as the text
says, with the RTT table the text gives."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import Config
from gslb.geo import GeoLocation
from gslb.steering import Choice, Client, Steering
from tests.unit.fakes import Health

DOC = (Path(__file__).resolve().parents[2] / "docs" / "steering.md").read_text()
SECTION = DOC.split("\n## latency\n", 1)[1].split("\n## ", 1)[0]
BLOCK = re.findall(r"^```yaml gslb\n(.*?)^```$", SECTION, re.M | re.S)
HEADER = re.search(r"^\| from \\ to \| (.*) \|$", SECTION, re.M)
ROWS = re.findall(r"^\| ([a-z-]+) \| ([\d |]+) \|$", SECTION, re.M)

GB = GeoLocation("GB", "EU", 51.5, -0.1)
SE = GeoLocation("SE", "EU", 59.3, 18.1)
US = GeoLocation("US", "NA", 47.6, -122.3)  # Seattle: us-east is still the nearest
BR = GeoLocation("BR", "SA", -15.8, -47.9)


class Rtts(Health):
    def __init__(self, rtt: dict[tuple[str, str], float], **states: bool) -> None:
        super().__init__(**states)
        self.rtt = rtt

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return self.rtt.get((origin, vantage))


def doc_rtts() -> dict[tuple[str, str], float]:
    assert HEADER is not None and len(ROWS) == 3
    origins = HEADER[1].split(" | ")
    return {(o, v): float(ms) for v, row in ROWS for o, ms in zip(origins, row.split(" | "),
                                                                 strict=True)}


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    assert len(BLOCK) == 1
    path = tmp_path / "latency.yaml"
    path.write_text(BLOCK[0])
    return load([path])


def ask(s: Steering, loc: GeoLocation, health: Health) -> Choice:
    c = Client("198.51.100.1", "81.2.69.0", 24, 4, locator=lambda _ip: loc)
    return s.choose("fast", 4, c, health, random.Random(0))


def test_the_worked_example(cfg: Config) -> None:
    s = Steering(cfg.pools, cfg.origins, vantages=cfg.vantages)
    rtt = doc_rtts()
    assert ask(s, GB, Rtts(rtt)).addresses == ("127.0.0.11",)
    assert ask(s, SE, Rtts(rtt)).addresses == ("127.0.0.11",)
    us = ask(s, US, Rtts(rtt))
    assert (us.addresses, us.scope) == (("127.0.0.13",), 24)
    assert ask(s, BR, Rtts(rtt)).reason.startswith("vantage us-east (country BR)")
    # stockholm speeds up to 11 ms from eu-west: inside the margins
    rtt["stockholm", "eu-west"] = 11
    assert ask(s, GB, Rtts(rtt)).addresses == ("127.0.0.11",)
    # london degrades to 40 ms: past both margins
    rtt["london", "eu-west"] = 40
    moved = ask(s, SE, Rtts(rtt))
    assert moved.addresses == ("127.0.0.12",)
    assert "switched london 40.0 ms → stockholm 11.0 ms" in moved.reason
    # eu-west silent: the continents map answers
    silent = {k: v for k, v in rtt.items() if k[1] != "eu-west"}
    got = ask(s, SE, Rtts(silent))
    assert got.addresses == ("127.0.0.11",)
    assert "has no RTT data; geo: continent EU tier 1" in got.reason
