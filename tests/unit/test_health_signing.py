"""Signed health state (issue 14 item 5): HMAC-SHA256 over reports,
heartbeats, vantage hashes and forgets; the watcher drops what is unsigned,
badly signed or replayed, and counts it."""

from __future__ import annotations

import json
import time

import pytest

from gslb.health.redis.watcher import RedisWatcher
from gslb.health.signing import SIG, Signer
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView

KEY = b"0123456789abcdef0123456789abcdef"


def test_signatures_cover_every_field_and_need_the_key():
    signer, other = Signer(KEY), Signer(KEY[::-1])
    fields = VantageReport("o", "eu", False, 3, False, None, 1.5, "refused", 1.0).to_fields()
    signed = {**fields, SIG: signer.report("eu", "o", fields)}
    assert signer.verify_report("eu", "o", signed)
    assert not other.verify_report("eu", "o", signed)
    assert not signer.verify_report("eu", "p", signed)  # the origin is signed too
    assert not signer.verify_report("us", "o", signed)
    for name in fields:
        assert not signer.verify_report("eu", "o", {**signed, name: signed[name] + "x"}), name
    assert not signer.verify_report("eu", "o", fields)  # unsigned
    assert signer.verify_heartbeat("eu", 12.5, signer.heartbeat("eu", 12.5))
    assert not signer.verify_heartbeat("eu", 12.6, signer.heartbeat("eu", 12.5))
    meta = {"at": "1.000000", "pid": "1", "host": "h", "version": "1"}
    hashed = {**meta, SIG: signer.vantage("eu", meta), "redis_at": "2.0"}  # Redis writes redis_at
    assert signer.verify_vantage("eu", hashed)
    assert not signer.verify_vantage("eu", {**hashed, "at": "9.000000"})
    assert signer.verify_forget("eu", "o", 3.0, signer.forget("eu", "o", 3.0))
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Signer(b"short")


def test_the_watcher_drops_unsigned_forged_and_replayed_messages():
    signer = Signer(KEY)
    view = QuorumView(1, 10.0)
    watcher = RedisWatcher("redis://127.0.0.1:1/0", view, resync_interval_s=30, signer=signer)
    now = time.time()
    fields = VantageReport("o", "eu", False, 3, False, None, None, "refused", now).to_fields()
    good = {**fields, SIG: signer.report("eu", "o", fields)}

    def send(message: dict[str, object]) -> None:
        watcher._on_message(json.dumps(message))

    send({"type": "report", "vantage": "eu", "origin": "o", "fields": fields})
    send({"type": "report", "vantage": "eu", "origin": "o", "fields": {**good, "up": "1"}})
    assert view.report_of("o", "eu") is None and view.is_up("o")
    send({"type": "report", "vantage": "eu", "origin": "o", "fields": good})
    assert not view.is_up("o")
    send({"type": "report", "vantage": "eu", "origin": "o", "fields": good})  # replayed
    beat = {"type": "heartbeat", "vantage": "eu", "at": now + 1}
    send({**beat, SIG: signer.heartbeat("eu", now + 1)})
    send({**beat, SIG: signer.heartbeat("eu", now + 1)})  # replayed: keeps nothing fresh
    send(beat)
    send({"type": "forget", "vantage": "eu", "origin": "o", "at": now})
    assert view.report_of("o", "eu") is not None
    assert watcher.rejected == {"unsigned": 3, "bad_signature": 1, "replayed": 2}


def test_drains_are_signed_and_forged_ones_dropped():
    from gslb.health.overrides import Override, Overrides, RedisOverrides

    signer = Signer(KEY)
    overrides = Overrides(None)
    shared = RedisOverrides("redis://127.0.0.1:1/0", overrides, resync_interval_s=30,
                            signer=signer)
    fields = Override("o", "kernel", "alice", time.time(), None).to_fields()

    def send(message: dict[str, object]) -> None:
        shared._on_message(json.dumps(message))

    send({"type": "drain", "origin": "o", "fields": fields})
    send({"type": "drain", "origin": "o", "fields": {**fields, SIG: "0" * 64}})
    assert not overrides.is_drained("o")
    send({"type": "drain", "origin": "o", "fields": {**fields, SIG: signer.drain("o", fields)}})
    assert overrides.is_drained("o")
    send({"type": "undrain", "origin": "o", "who": "mallory", "reason": "", "at": 1.0})
    assert overrides.is_drained("o")
    send({"type": "undrain", "origin": "o", "who": "alice", "reason": "done", "at": 2.0,
          SIG: signer.undrain("o", "alice", "done", 2.0)})
    assert not overrides.is_drained("o")
    assert shared.rejected == {"unsigned": 2, "bad_signature": 1}
