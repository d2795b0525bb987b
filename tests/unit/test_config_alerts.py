"""The ``alerts`` section: webhooks read into the model, every problem
reported with file, line and key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import AlertSettings, Webhook
from gslb.errors import ConfigError

ZONE = """\
zones:
  example.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 30, NS: ns1}
"""


def load_text(tmp_path: Path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(ZONE + text)
    return path, load([path])


def test_no_section_and_an_empty_one_mean_no_alerts(tmp_path: Path) -> None:
    assert load_text(tmp_path, "")[1].alerts == AlertSettings()
    assert load_text(tmp_path, "alerts:\n")[1].alerts == AlertSettings()


def test_webhooks_are_read_with_defaults_and_the_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("# the bearer token\ns3cret\n")
    os.chmod(token, 0o600)
    _, config = load_text(tmp_path, f"""\
alerts:
  nameserver: ns1
  webhooks:
    - url: https://hooks.example.test/gslb
    - url: http://127.0.0.1:9093/api/v2/alerts
      name: am
      format: alertmanager
      events: [origin_down, origin_up]
      timeout: 2
      retries: 5
      backoff: 0.5
      max_queue: 10
      repeat: 30
      token_file: {token}
""")
    first, am = config.alerts.webhooks
    assert config.alerts.nameserver == "ns1"
    assert first == Webhook(url="https://hooks.example.test/gslb", name="hooks.example.test")
    assert (am.name, am.format, am.events, am.timeout_s, am.retries, am.backoff_s,
            am.max_queue, am.repeat_s, am.token_file, am.token) == (
        "am", "alertmanager", frozenset({"origin_down", "origin_up"}), 2.0, 5, 0.5, 10, 30.0,
        str(token), "s3cret")
    assert "s3cret" not in repr(am)


@pytest.mark.parametrize(("text", "line", "key", "message"), [
    ("alerts: [1]\n", 5, "alerts", "expected a mapping"),
    ("alerts: {hooks: []}\n", 5, "alerts.hooks", "unknown key 'hooks'"),
    ("alerts:\n  webhooks: [{name: x}]\n", 6, "alerts.webhooks[0]",
     "missing required key 'url'"),
    ("alerts:\n  webhooks: [{url: ftp://h/}]\n", 6, "alerts.webhooks[0].url",
     "expected an http:// or https:// URL"),
    ("alerts:\n  webhooks: [{url: 'http://u:p@h/'}]\n", 6, "alerts.webhooks[0].url",
     "no credentials in the URL"),
    ("alerts:\n  webhooks: [{url: 'http://h/', format: slack}]\n", 6,
     "alerts.webhooks[0].format", "expected one of gslb, alertmanager"),
    ("alerts:\n  webhooks: [{url: 'http://h/', events: [origin_sad]}]\n", 6,
     "alerts.webhooks[0].events[0]", "expected one of origin_down"),
    ("alerts:\n  webhooks: [{url: 'http://h/', retries: 99}]\n", 6,
     "alerts.webhooks[0].retries", ""),
    ("alerts:\n  webhooks: [{url: 'http://h/', timeout: 0}]\n", 6,
     "alerts.webhooks[0].timeout", "must be above 0 seconds"),
    ("alerts:\n  webhooks: [{url: 'http://h/', max_queue: 0}]\n", 6,
     "alerts.webhooks[0].max_queue", ""),
    ("alerts:\n  webhooks:\n    - {url: 'http://h/'}\n    - {url: 'http://h/x'}\n", 8,
     "alerts.webhooks[1]", "webhook name 'h' is used twice"),
])
def test_bad_alerts_are_reported_with_file_line_and_key(tmp_path: Path, text: str, line: int,
                                                         key: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(ZONE + text)
    with pytest.raises(ConfigError) as info:
        load([path])
    prefix = f"{path}:{line}: {key}: "
    assert any(r.startswith(prefix) and message in r for r in info.value.reasons), (
        prefix, info.value.reasons)


def test_a_token_file_others_may_read_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    os.chmod(token, 0o644)
    path = tmp_path / "c.yaml"
    path.write_text(ZONE + f"alerts:\n  webhooks: [{{url: 'http://h/', token_file: {token}}}]\n")
    with pytest.raises(ConfigError) as info:
        load([path])
    assert any(r.startswith(f"{path}:6: alerts.webhooks[0].token_file: ") and "chmod 600" in r
               for r in info.value.reasons), info.value.reasons
