"""Config `vantages` and `health` sections: model, defaults, merging, every error's place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gslb import countries
from gslb.config.load import load
from gslb.config.model import HealthSettings, Location, Vantage
from gslb.errors import ConfigError
from tests.unit.test_config_validate import DATA, ZONE, assert_reason, errors_of

V = "vantages:\n"
CASES = [
    # vantages
    ("vantages: [eu]\n", 1, "vantages", "expected a mapping, got a list"),
    (V + "  EU-West: {continent: EU}\n", 2, "vantages.EU-West", "bad vantage name 'EU-West'"),
    (V + "  eu west: {}\n", 2, "vantages.eu west", "1-63 characters of lower-case letters"),
    (V + f"  {'a' * 64}: {{}}\n", 2, f"vantages.{'a' * 64}", "bad vantage name"),
    (V + "  local: {continent: EU}\n", 2, "vantages.local",
     "vantage name 'local' is reserved for the prober embedded in 'gslb serve'"),
    (V + "  eu: {}\n  eu: {}\n", 3, "vantages.eu", "duplicate key 'eu' (first at line 2)"),
    (V + "  eu: [EU]\n", 2, "vantages.eu", "expected a mapping, got a list"),
    (V + "  eu: {region: EU}\n", 2, "vantages.eu.region",
     "unknown key 'region' (allowed: location, continent)"),
    (V + "  eu: {continent: EUR}\n", 2, "vantages.eu.continent", "unknown continent code 'EUR'"),
    (V + "  eu: {continent: 1}\n", 2, "vantages.eu.continent",
     "expected a non-empty string, got an integer"),
    (V + "  eu:\n    location: {country: US}\n    continent: EU\n", 4, "vantages.eu.continent",
     "continent EU does not match country US, which is in NA"),
    (V + "  eu:\n    location: {lat: 91, lon: 0}\n", 3, "vantages.eu.location.lat",
     "91 is outside -90..90 degrees"),
    (V + "  eu: {location: {country: ZZ}}\n", 2, "vantages.eu.location.country",
     "unknown country code 'ZZ'"),
    (V + "  eu: {location: {country: GB, lat: 1, lon: 2}}\n", 2, "vantages.eu.location",
     "either country or lat/lon"),
    (V + "  eu: {location: {lon: 2}}\n", 2, "vantages.eu.location",
     "needs lat and lon, or country"),
    # health
    ("health: 5\n", 1, "health", "expected a mapping, got an integer"),
    ("health: {}\nhealth: {}\n", 2, "health", "duplicate key 'health' (first at line 1)"),
    ("health: {quorum: 1, ttl: 5}\n", 1, "health.ttl", "unknown key 'ttl' (allowed: quorum, "
     "stale_after, heartbeat_interval, resync_interval, unknown, report_key_file)"),
    ("health: {unknown: maybe}\n", 1, "health.unknown", "expected up or down, got 'maybe'"),
    ("health: {quorum: most}\n", 1, "health.quorum",
     "expected 'majority' or an integer, got 'most'"),
    ("health: {quorum: 0}\n", 1, "health.quorum", "0 is below 1"),
    ("health: {quorum: true}\n", 1, "health.quorum", "expected an integer, got a boolean"),
    ("health: {quorum: 1.5}\n", 1, "health.quorum", "expected an integer, got a number"),
    (V + "  a: {}\n  b:\nhealth:\n  quorum: 3\n", 5, "health.quorum",
     "quorum 3 is more than the 2 declared vantages"),
    ("health: {stale_after: 0}\n", 1, "health.stale_after", "0 must be above 0 seconds"),
    ("health: {heartbeat_interval: 1s}\n", 1, "health.heartbeat_interval",
     "expected a number of seconds, got a string"),
    ("health: {resync_interval: -1}\n", 1, "health.resync_interval", "-1 must be above 0 seconds"),
    ("health: {resync_interval: .inf}\n", 1, "health.resync_interval", "must be above 0 seconds"),
    ("health:\n  heartbeat_interval: 2\n  stale_after: 3.5\n", 3, "health.stale_after",
     "stale_after 3.5 s is below 2 × heartbeat_interval (2 s): a live vantage would look stale"),
    ("health: {heartbeat_interval: 6}\n", 1, "health",
     "stale_after 10 s is below 2 × heartbeat_interval (6 s)"),
]


@pytest.mark.parametrize(("text", "line", "path", "message"), CASES,
                         ids=[f"{c[2][:20]}:{c[3][:30]}" for c in CASES])
def test_error_names_file_line_path_and_problem(tmp_path: Path, text: str, line: int, path: str,
                                                message: str) -> None:
    name, reasons = errors_of(tmp_path, text)
    assert_reason(reasons, f"{name}:{line}: {path}: ", message)


def test_vantages_and_health_model() -> None:
    config = load([DATA / "ok-vantages.yaml"])
    gb = countries.lookup("GB")
    assert gb is not None
    assert dict(config.vantages) == {
        "eu-west": Vantage("eu-west", Location(gb.lat, gb.lon), "GB", "EU"),
        "us-east": Vantage("us-east", Location(38.9, -77.4), None, "NA"),
        "ap-south": Vantage("ap-south", None, None, "AS"),
        "lab_1.rack-2": Vantage("lab_1.rack-2"),
    }
    assert list(config.vantages) == ["eu-west", "us-east", "ap-south", "lab_1.rack-2"]
    assert config.health == HealthSettings(quorum=2, stale_after_s=2.5, heartbeat_interval_s=0.5,
                                           resync_interval_s=60.0)


def test_both_sections_are_optional_with_defaults() -> None:
    config = load([DATA / "ok-minimal.yaml"])
    assert dict(config.vantages) == {}
    assert config.health == HealthSettings(quorum=None, stale_after_s=10.0,
                                           heartbeat_interval_s=1.0, resync_interval_s=30.0)


@pytest.mark.parametrize(("text", "expected"), [
    ("health: {quorum: majority}\n", HealthSettings()),
    ("health: {}\n", HealthSettings()),
    # without declared vantages the quorum is only capped at run time
    ("health: {quorum: 7}\n", HealthSettings(quorum=7)),
    ("vantages: {a: , b: }\nhealth: {quorum: 2}\n", HealthSettings(quorum=2)),
    # the bound is inclusive; seconds may be integers or fractions
    ("health: {stale_after: 1, heartbeat_interval: 0.5, resync_interval: 5}\n",
     HealthSettings(stale_after_s=1.0, heartbeat_interval_s=0.5, resync_interval_s=5.0)),
])
def test_health_values(tmp_path: Path, text: str, expected: HealthSettings) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text + ZONE)
    assert load([path]).health == expected


def test_country_and_matching_continent_agree(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("vantages:\n  se: {location: {country: SE}, continent: eu}\n" + ZONE)
    vantage = load([path]).vantages["se"]
    assert (vantage.country, vantage.continent) == ("SE", "EU")


def test_files_merge_but_a_vantage_or_health_is_given_once(tmp_path: Path) -> None:
    first, second, third = (tmp_path / f"{n}.yaml" for n in "abc")
    first.write_text("vantages:\n  eu: {continent: EU}\nhealth: {quorum: 2}\n" + ZONE)
    second.write_text("vantages:\n  us: {continent: NA}\n")
    config = load([first, second])
    assert list(config.vantages) == ["eu", "us"] and config.health.quorum == 2
    third.write_text("health:\n  quorum: 1\nvantages:\n  eu: {continent: EU}\n")
    with pytest.raises(ConfigError) as info:
        load([first, second, third])
    assert info.value.reasons == (
        f"{third}:1: health: health is given twice (first at {first}:3)",
        f"{third}:4: vantages.eu: vantage 'eu' is defined twice (first at {first}:2)",
    )


def test_docs_example_declares_vantages_and_health(tmp_path: Path) -> None:
    docs = Path(__file__).parent.parent.parent / "docs" / "config.md"
    blocks = re.findall(r"^```yaml gslb\n(.*?)^```", docs.read_text(), re.MULTILINE | re.DOTALL)
    configs = []
    for i, block in enumerate(blocks):
        (path := tmp_path / f"doc{i}.yaml").write_text(block)
        configs.append(load([path]))
    assert any(c.vantages and c.health != HealthSettings() for c in configs)


def test_report_key_file_is_read_and_checked(tmp_path: Path) -> None:
    key = tmp_path / "report.key"
    key.write_text("  " + "ab" * 32 + "\n")
    base = "health: {report_key_file: %s}\n"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(base % key)
    try:
        load([cfg])
    except ConfigError as exc:  # the rest of the config may be missing: only our key matters
        assert not any("report_key_file" in r for r in exc.reasons), exc.reasons
    cases = (("short\n", "holds 5 byte(s) of key, fewer than 16: make one with `openssl rand "
                         "-hex 32 >"), (None, "cannot read the report key"))
    for content, message in cases:
        path = tmp_path / "bad.key"
        if content is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(content)
        cfg.write_text(base % path)
        with pytest.raises(ConfigError) as info:
            load([cfg])
        assert any(r.startswith(f"{cfg}:1: health.report_key_file: ") and message in r
                   for r in info.value.reasons), info.value.reasons
