"""The monitoring files in ``deploy/``: the Prometheus alert rules pass
``promtool check rules`` and their unit tests (``promtool test rules``: the
origin-down and signature-expiry alerts fire after their ``for:`` and stay
quiet otherwise), every alert carries ``for:``, a severity, a summary, a
description and a runbook link to an anchor of docs/operations.md; the
Grafana dashboard is importable (schema version, a ``datasource``
variable every panel uses, PromQL that promtool parses); a started
Service's live ``/metrics`` passes ``promtool check metrics``, and every
metric name the dashboard and the rules use is one a live ``/metrics``
exposes (with Redis and a signed zone), so neither can drift from
gslb/serve/metrics.py.

promtool comes from the Debian package ``prometheus``; without it the
promtool checks skip, the others still run."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import pytest
import yaml

from gslb.serve.service import Service
from tests.integration.adminutil import call, config_text, start_service
from tests.integration.test_dnssec_serve import signed_config

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "gslb-rules.yml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "gslb-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "gslb.json"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")

#: Metrics that are not gslb's: Prometheus's own scrape health.
PROMETHEUS_METRICS = {"up"}
#: What the dashboard must show (issue 18 item 5).
DASHBOARD_MUST_USE = {
    "gslb_dns_queries_total", "gslb_dns_answer_duration_seconds_bucket",
    "gslb_steering_answers_total", "gslb_origin_state", "gslb_health_vantage_up",
    "gslb_vantage_fresh", "gslb_steering_pool_in_fallback",
    "gslb_dns_answer_cache_lookups_total", "gslb_rrl_responses_total",
    "gslb_dns_tcp_connections_closed_total",
    "gslb_dnssec_signature_expiration_timestamp_seconds", "gslb_config_reloads_total",
}


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dash["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_exprs(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dash) for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["definition"])
    return exprs


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values``
    query) selects: identifiers outside string literals that are not
    functions, keywords or label names."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)  # label matchers
    names = set()
    for m in re.finditer(r"(?<![\w$])([a-zA-Z_:][\w:]*)\s*(\()?", bare):
        if m.group(2) is None and m.group(1) not in {"and", "or", "unless", "bool", "offset"}:
            names.add(m.group(1))
    return names


def slug(heading: str) -> str:
    """A Markdown heading's anchor as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", markdown, re.M)}


def test_metric_names_reads_promql():
    assert metric_names('sum by (rcode) (rate(gslb_dns_queries_total{job=~"$job",'
                        'rcode="up"}[$__rate_interval])) / up') == {"gslb_dns_queries_total",
                                                                    "up"}
    assert metric_names('label_values(gslb_config_generation{job=~"$job"}, instance)') == {
        "gslb_config_generation", "instance"}
    assert metric_names("x - time() < 7 * 86400 and y >= 2") == {"x", "y"}


def test_every_alert_has_for_severity_annotations_and_a_runbook_anchor():
    docs = anchors(OPERATIONS.read_text())
    seen = set()
    for rule in rules():
        name = rule["alert"]
        assert name not in seen, name
        seen.add(name)
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/operations.md" and anchor in docs, (name, anchor)
    assert {"GslbOriginDown", "GslbPoolInFallback", "GslbVantageStale",
            "GslbRedisDisconnected", "GslbInternalErrors", "GslbConfigReloadFailed",
            "GslbDnssecSignaturesExpiring", "GslbServfailRatioHigh",
            "GslbNameserverDown"} <= seen


def test_the_runbook_covers_the_five_incidents():
    docs = anchors(OPERATIONS.read_text())
    assert {"runbook", "one-origin-down", "one-region-down", "a-vantage-blind", "redis-lost",
            "a-bad-config-pushed"} <= docs


def test_dashboard_is_importable():
    dash = dashboard()
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert dash["title"] and dash["uid"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for panel in panels(dash):
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys(), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"] and target["refId"], panel["title"]
    used = set().union(*map(metric_names, dashboard_exprs(dash)))
    assert used >= DASHBOARD_MUST_USE, DASHBOARD_MUST_USE - used


@needs_promtool
def test_promtool_checks_the_rules_and_their_unit_tests():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(RULES_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@needs_promtool
def test_promtool_parses_every_dashboard_query(tmp_path):
    """Each panel's PromQL, Grafana's variables put in, as a recording rule:
    ``promtool check rules`` parses it."""
    exprs = [t["expr"] for p in panels(dashboard()) for t in p.get("targets", [])]
    records = []
    for i, expr in enumerate(exprs):
        expr = expr.replace("$__rate_interval", "5m").replace("$job", ".*")
        records.append({"record": f"dashboard:panel{i}", "expr": expr.replace("$instance", ".*")})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    checked = promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def exposed(text: str) -> set[str]:
    """The sample names a Prometheus text exposition can hold, from its
    ``# TYPE`` lines (a family with no sample yet still counts)."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        name, kind = m.groups()
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


async def scrape(service: Service) -> str:
    host, port = service.addresses[0]
    for _ in range(5):  # answers, cache hits and signatures to count
        q = dns.message.make_query("www.gslb.example.test.", "A", want_dnssec=True)
        await dns.asyncquery.udp(q, host, port=port, timeout=2)
    status, text = await call(service, "GET", "/metrics")
    assert status == 200
    assert isinstance(text, str)
    return text


async def check_metrics(text: str) -> None:
    assert PROMTOOL is not None
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(text.encode()), 60)
    assert proc.returncode == 0, (out + err).decode()


@needs_promtool
async def test_live_metrics_pass_promtool_and_hold_every_name_used(
        tmp_path, fake_origin, refused_port, redis_server):
    origin = await fake_origin()
    signed_text, _ = signed_config(tmp_path, origin.port, refused_port)
    texts = []
    signed = await start_service(tmp_path, signed_text, name="signed.yaml")
    try:
        texts.append(await scrape(signed))
    finally:
        await signed.stop()
    shared = await start_service(tmp_path, config_text(origin.port, refused_port),
                                 redis_url=redis_server.url, name="redis.yaml")
    try:
        texts.append(await scrape(shared))
    finally:
        await shared.stop()
    for text in texts:
        await check_metrics(text)
    live = exposed(texts[0]) | exposed(texts[1])
    assert "gslb_dnssec_signature_expiration_timestamp_seconds" in exposed(texts[0])
    assert "gslb_redis_connected" in exposed(texts[1])
    used: dict[str, set[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(rule["alert"])
    for expr in dashboard_exprs(dashboard()):
        for name in metric_names(expr) - {"instance", "job"}:
            used.setdefault(name, set()).add(DASHBOARD.name)
    unknown = {name: sorted(where) for name, where in used.items()
               if name not in live and name not in PROMETHEUS_METRICS}
    assert not unknown, f"names no live /metrics exposes: {unknown}"
