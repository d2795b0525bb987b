"""The load figure (RFC 6901 pointer, header text), its travel in reports
(fields, signing, the quorum view, worker snapshots), the config keys, and
the least_loaded ranking with its margin."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gslb.config.load import load
from gslb.config.model import Origin, Pool
from gslb.health.signing import SIG, Signer
from gslb.health.state import CheckResult, ProbeState, VantageReport
from gslb.health.view import QuorumView
from gslb.probe.checks.load import as_load, load_from_json, resolve_pointer
from gslb.steering.base import Basis, Client
from gslb.steering.least_loaded import LeastLoadedPolicy
from gslb.workers.messages import snapshot_of
from gslb.workers.worker import MirrorView
from tests.integration.dnsutil import BASE_ZONE
from tests.unit.test_config_validate import errors_of

# RFC 6901 section 5's example document and pointers
DOC = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4, "i\\j": 5,
       'k"l': 6, " ": 7, "m~n": 8}


@pytest.mark.parametrize(("pointer", "value"), [
    ("", DOC), ("/foo", ["bar", "baz"]), ("/foo/0", "bar"), ("/", 0), ("/a~1b", 1),
    ("/c%d", 2), ("/e^f", 3), ("/g|h", 4), ("/i\\j", 5), ('/k"l', 6), ("/ ", 7), ("/m~0n", 8),
])
def test_rfc6901_examples(pointer: str, value: object) -> None:
    assert resolve_pointer(DOC, pointer) == value


def test_pointer_decodes_tilde_one_before_tilde_zero() -> None:
    assert resolve_pointer({"~1": "x", "/": "y"}, "/~01") == "x"  # "~01" is "~1", not "/"


@pytest.mark.parametrize("pointer", ["/nope", "/foo/2", "/foo/01", "/foo/-", "/foo/x",
                                     "/foo/0/deeper", "/m~n/1"])
def test_pointer_to_nothing(pointer: str) -> None:
    with pytest.raises(LookupError):
        resolve_pointer(DOC, pointer)


def test_pointer_must_start_with_slash() -> None:
    with pytest.raises(ValueError):
        resolve_pointer(DOC, "foo")


@pytest.mark.parametrize(("text", "value"), [
    ("12", 12.0), (" 0.75 ", 0.75), ("0", 0.0), ("1e3", 1000.0), ("-1", None), ("nan", None),
    ("inf", None), ("", None), ("busy", None), (None, None), (True, None), (3, 3.0),
])
def test_as_load(text: object, value: float | None) -> None:
    assert as_load(text) == value


def test_load_from_json() -> None:
    body = b'{"stats": {"active": 42, "list": [1, 2.5]}, "flag": true}'
    assert load_from_json(body, "/stats/active") == 42.0
    assert load_from_json(body, "/stats/list/1") == 2.5
    assert load_from_json(body, "/flag") is None
    assert load_from_json(body, "/stats") is None
    assert load_from_json(body, "/missing") is None
    assert load_from_json(b"not json", "/x") is None
    assert load_from_json(b"7", "") == 7.0


# -- reports -------------------------------------------------------------------------

def report(load: float | None, vantage: str = "eu", up: bool = True) -> VantageReport:
    return VantageReport("a", vantage, up, 3, up, 1.0, 1.0, "status 200", 100.0, load)


def test_fields_round_trip_and_old_records() -> None:
    r = report(12.5)
    assert r.to_fields()["load"] == "12.5"
    assert VantageReport.from_fields("a", "eu", r.to_fields()) == r
    assert report(None).to_fields()["load"] == ""
    old = {k: v for k, v in r.to_fields().items() if k != "load"}  # before loads existed
    assert VantageReport.from_fields("a", "eu", old).load is None


def test_signature_covers_the_load_and_old_records_still_verify() -> None:
    signer = Signer(b"k" * 32)
    fields = report(12.5).to_fields()
    fields[SIG] = signer.report("eu", "a", fields)
    assert signer.verify_report("eu", "a", fields)
    assert not signer.verify_report("eu", "a", {**fields, "load": "0.5"})
    old = {k: v for k, v in report(None).to_fields().items() if k != "load"}
    old[SIG] = signer.report("eu", "a", old)
    assert signer.verify_report("eu", "a", old)


def test_a_load_change_is_announced() -> None:
    state = ProbeState("eu")
    assert state.observe("a", CheckResult(True, 1.0, "ok", 5.0), 1, 1, 1.0)[2]
    assert not state.observe("a", CheckResult(True, 1.0, "ok", 5.0), 1, 1, 2.0)[2]
    rep, _, notify = state.observe("a", CheckResult(True, 1.0, "ok", 6.0), 1, 1, 3.0)
    assert notify and rep.load == 6.0
    assert state.observe("a", CheckResult(True, 1.0, "ok", None), 1, 1, 4.0)[2]


def test_view_load_is_the_highest_fresh_up_figure() -> None:
    now = [100.0]
    view = QuorumView(stale_after_s=10.0, clock=lambda: now[0])
    assert view.load("a") is None
    view.apply(report(10.0, "eu"))
    view.apply(report(30.0, "us"))
    view.apply(report(None, "ap"))
    assert view.load("a") == 30.0
    view.apply(report(99.0, "us", up=False))  # a vantage that says down has no say
    assert view.load("a") == 10.0
    now[0] += 11  # every vantage stale: fail safe, unknown
    assert view.load("a") is None


def test_worker_snapshot_carries_loads() -> None:
    view = QuorumView(clock=lambda: 100.0)
    view.apply(report(7.0))
    snap = snapshot_of(view, lambda _o: False, ["a", "b"], ())
    assert snap.load == {"a": 7.0}
    mirror = MirrorView(snap)
    assert (mirror.load("a"), mirror.load("b")) == (7.0, None)


# -- config -----------------------------------------------------------------------------

HEAD = """origins:
  a:
    ipv4: [192.0.2.1]
    capacity: 4
    check: {type: http, port: 80, load: {json: /stats/active}}
  b:
    ipv4: [192.0.2.2]
    check: {type: https, load: {header: X-Load}}
pools:
  web: {policy: least_loaded, origins: [a, b], switch_margin: 15}
""" + BASE_ZONE.format(minimum=30) + "      www: {gslb: web}\n"


def test_config_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD)
    cfg = load([path])
    a, b = cfg.origins["a"], cfg.origins["b"]
    assert (a.capacity, b.capacity) == (4.0, 1.0)
    assert a.check is not None and (a.check.load_json, a.check.load_header) == (
        "/stats/active", None)
    assert b.check is not None and b.check.load_header == "X-Load"
    assert cfg.pools["web"].switch_margin_pct == 15
    path.write_text(HEAD.replace(", switch_margin: 15", ""))
    assert load([path]).pools["web"].switch_margin_pct == 10.0  # least_loaded's default


@pytest.mark.parametrize(("old", "new", "line", "key", "message"), [
    ("capacity: 4", "capacity: 0", 4, "origins.a.capacity", "capacity must be above 0"),
    ("capacity: 4", "capacity: x", 4, "origins.a.capacity", "expected a number"),
    ("load: {json: /stats/active}", "load: {json: stats}", 5, "origins.a.check.load.json",
     "RFC 6901 pointer"),
    ("load: {json: /stats/active}", "load: {}", 5, "origins.a.check.load",
     "exactly one of 'header' or 'json'"),
    ("load: {header: X-Load}", "load: {header: X, json: /y}", 8, "origins.b.check.load",
     "exactly one of 'header' or 'json'"),
    ("load: {header: X-Load}", "load: {size: 1}", 8, "origins.b.check.load.size",
     "unknown key 'size'"),
    ("type: http, port: 80,", "type: tcp, port: 80,", 5, "origins.a.check.load",
     "only valid for http and https checks"),
])
def test_config_errors(tmp_path: Path, old: str, new: str, line: int, key: str,
                       message: str) -> None:
    assert old in HEAD
    name, reasons = errors_of(tmp_path, HEAD.replace(old, new))
    assert any(r.startswith(f"{name}:{line}: {key}: ") and message in r for r in reasons), (
        reasons)


# -- the policy ---------------------------------------------------------------------------

class Loads:
    """A HealthView with settable loads and ramp factors."""

    generation = 0

    def __init__(self, **loads: float | None) -> None:
        self.loads = dict(loads)
        self.down: set[str] = set()
        self.factors: dict[str, float] = {}

    @property
    def ramping(self) -> bool:
        return bool(self.factors)

    def is_up(self, origin: str) -> bool:
        return origin not in self.down

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return None

    def load(self, origin: str) -> float | None:
        return self.loads.get(origin)

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        return self.factors.get(origin, 1.0)


ORIGINS = [Origin("a", ("192.0.2.1",)), Origin("b", ("192.0.2.2",), capacity=2.0),
           Origin("c", ("192.0.2.3",))]


def pick(policy: LeastLoadedPolicy, pool: Pool, health: Loads) -> tuple[list[str], int]:
    sel = policy.select(pool, ORIGINS, Client("198.51.100.1"), health, random.Random(1))
    return [m.name for m in sel.members], sel.basis


def pool(k: int = 1, margin: float = 10.0) -> Pool:
    return Pool("web", "least_loaded", ("a", "b", "c"), (("a", "b", "c"),), max_answers=k,
                switch_margin_pct=margin)


def test_lowest_load_per_capacity_with_margin() -> None:
    p = pool()
    policy = LeastLoadedPolicy(p, logger=None)
    health = Loads(a=50, b=90, c=60)  # per capacity: 50, 45, 60
    names, basis = pick(policy, p, health)
    assert names == ["b"]
    assert basis & Basis.RTT and basis & Basis.RANKED and not basis & Basis.RAMP
    health.loads["a"] = 41  # 41 against 45: within 10 %
    assert pick(policy, p, health)[0] == ["b"]
    health.loads["a"] = 40  # 40 against 45: 11 % lower
    assert pick(policy, p, health)[0] == ["a"]
    health.down.add("a")
    assert pick(policy, p, health)[0] == ["b"]


def test_unknown_loads_rank_last_and_none_known_is_declaration_order() -> None:
    p = pool(k=2, margin=0)
    policy = LeastLoadedPolicy(p, logger=None)
    assert pick(policy, p, Loads(a=None, b=None, c=5))[0] == ["c", "a"]
    assert pick(policy, p, Loads())[0] == ["a", "b"]
    health = Loads(a=3, b=2, c=1)
    health.down = {"a", "b", "c"}
    assert pick(policy, p, health) == ([], Basis.RTT | Basis.RANKED)


def test_a_ramping_member_counts_its_factor() -> None:
    p = pool(margin=0)
    policy = LeastLoadedPolicy(p, logger=None)
    health = Loads(a=50, b=20, c=60)  # b: 10 per unit of capacity
    health.factors = {"b": 0.1}  # slow start: 20 / (2 × 0.1) = 100
    names, basis = pick(policy, p, health)
    assert names == ["a"] and basis & Basis.RAMP
    health.factors = {"b": 0.5}  # 20 / 1 = 20
    assert pick(policy, p, health)[0] == ["b"]
    health.factors = {"b": 0.0}  # ramped to nothing: after every figure
    assert pick(policy, p, health)[0] == ["a"]
