"""Protocol edges of the answer path: non-QUERY opcodes, Meta-TYPE and
QTYPE questions, FORMERR with OPT, SERVFAIL on internal errors, and the
rate-limited log they use (gslb.logs.RateLimitedLog)."""

from __future__ import annotations

import logging
import random
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from gslb.answering import Answering
from gslb.authority import META_RCODES, Authority, respond, servfail
from gslb.config.load import load
from gslb.dns import wire
from gslb.health.view import QuorumView
from gslb.logs import RateLimitedLog, error_key
from gslb.stats import QueryStats

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
pools:
  p: {policy: weighted, origins: [a]}
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 127.0.0.1}
      www: {gslb: p}
"""

WHO = "127.0.0.1"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("z") / "zone.yaml"
    path.write_text(ZONE)
    return load([path])


@pytest.fixture(params=[1000, 0], ids=["cache", "no-cache"])
def authority(config, request) -> Authority:
    return Authority(config, QuorumView(), rng=random.Random(1), cache_entries=request.param)


def header(reply: bytes) -> tuple[int, int, int, int, int, int]:
    return struct.unpack_from("!6H", reply)


def query_wire(name: str = "www.example.test.", rdtype: str | int = "A", *,
               edns: bool = True, options=(), rd: bool = True) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False,
                               options=list(options))
    q.flags = dns.flags.RD if rd else dns.flags.Flag(0)
    return q.to_wire()


def with_flags(data: bytes, opcode: int, extra: int = 0x0100) -> bytes:
    """``data`` with its OPCODE set and the flag bits ``extra`` (default RD)."""
    (flags,) = struct.unpack_from("!H", data, 2)
    flags = (flags & ~0x7800) | (opcode << 11) | extra
    return data[:2] + struct.pack("!H", flags) + data[4:]


ALL_FLAGS = 0x0400 | 0x0200 | 0x0100 | 0x0080 | 0x0040 | 0x0020 | 0x0010  # AA TC RD RA Z AD CD


# -- non-QUERY opcodes ----------------------------------------------------------------


@pytest.mark.parametrize("opcode", [1, 2, 3, 4, 5, 6, 7, 8, 15])
@pytest.mark.parametrize("edns", [True, False])
def test_other_opcodes_get_notimp_with_only_qr_and_opcode(authority, opcode, edns):
    data = with_flags(query_wire(edns=edns), opcode, ALL_FLAGS)
    for _ in range(3):  # again: a reused answer too
        reply = respond(authority, data, WHO, True)
        rid, flags, qd, an, ns, ar = header(reply)
        assert rid == header(data)[0]
        # RFC 1035 section 4.1.1 / RFC 2136 section 2.2: no AA TC RD RA Z AD CD
        assert flags == 0x8000 | (opcode << 11) | dns.rcode.NOTIMP
        # the question is echoed for NOTIFY and UPDATE (zone section) only
        assert qd == (1 if opcode in (4, 5) else 0)
        assert (an, ns, ar) == (0, 0, 1 if edns else 0)
        if qd == 0:
            assert len(reply) == 12 + (11 if edns else 0)


def test_header_only_other_opcode_gets_notimp_without_rd(authority):
    data = struct.pack("!6H", 0x1234, (15 << 11) | ALL_FLAGS, 0, 0, 0, 0)
    assert respond(authority, data, WHO, True) == struct.pack(
        "!6H", 0x1234, 0x8000 | (15 << 11) | dns.rcode.NOTIMP, 0, 0, 0, 0)


def test_query_opcode_still_copies_rd(authority):
    for rd in (False, True, False):
        reply = dns.message.from_wire(respond(authority, query_wire(rd=rd), WHO, True))
        assert bool(reply.flags & dns.flags.RD) == rd
        assert reply.flags & dns.flags.AA


# -- Meta-TYPEs and QTYPEs ---------------------------------------------------------------


@pytest.mark.parametrize(("rdtype", "rcode"), [
    ("AXFR", dns.rcode.REFUSED), ("IXFR", dns.rcode.REFUSED),
    ("MAILA", dns.rcode.NOTIMP), ("MAILB", dns.rcode.NOTIMP), ("TKEY", dns.rcode.NOTIMP),
    ("OPT", dns.rcode.FORMERR), ("TSIG", dns.rcode.FORMERR), (0, dns.rcode.FORMERR),
    (128, dns.rcode.FORMERR), (248, dns.rcode.FORMERR),
])
@pytest.mark.parametrize("name", ["example.test.", "www.example.test.", "example.org."])
def test_meta_types_get_their_rcode(authority, rdtype, rcode, name):
    data = query_wire(name, rdtype)
    for _ in range(2):
        reply = dns.message.from_wire(respond(authority, data, WHO, True))
        assert reply.rcode() == rcode
        assert not reply.flags & dns.flags.AA
        assert reply.question[0].name.to_text() == name and reply.edns == 0
        assert not reply.answer and not reply.authority


def test_meta_table_leaves_any_and_data_types_alone():
    assert wire.QTYPE_ANY not in META_RCODES
    assert not any(code in META_RCODES for code in (1, 2, 6, 28, 41 + 1, 127, 256, 65535))


def test_axfr_is_logged_once_per_client_per_period(config, caplog):
    authority = Authority(config, QuorumView())
    caplog.set_level(logging.INFO, "gslb.dns")
    for who in ("192.0.2.1", "192.0.2.2"):
        for rdtype in ("AXFR", "IXFR", "AXFR"):
            respond(authority, query_wire("example.test.", rdtype), who, False)
    lines = [r for r in caplog.records if "zone transfers" in r.getMessage()]
    assert [(r.client, r.zone, r.qtype) for r in lines] == [
        ("192.0.2.1", "example.test.", "AXFR"), ("192.0.2.2", "example.test.", "AXFR")]


# -- FORMERR keeps OPT (RFC 6891 section 7) -----------------------------------------------


def _opt_query(opt_rdata: bytes, qdcount: int = 1, opts: int = 1) -> bytes:
    question = b"\x03www\x07example\x04test\x00" + struct.pack("!HH", 1, 1)
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0x8000, len(opt_rdata)) + opt_rdata
    return (struct.pack("!6H", 0x4242, 0x0100, qdcount, 0, 0, opts)
            + question * qdcount + opt * opts)


@pytest.mark.parametrize(("what", "data"), [
    ("ECS too short", _opt_query(struct.pack("!HH", 8, 2) + b"\x00\x01")),
    ("ECS bad family", _opt_query(struct.pack("!HH", 8, 4) + b"\x00\x07\x00\x00")),
    ("option past the RDATA", _opt_query(struct.pack("!HH", 10, 8) + b"abcd")),
    ("half an option header", _opt_query(b"\x00\x0a")),
    ("ECS bad, dnslib path", _opt_query(struct.pack("!HH", 8, 2) + b"\x00\x01", qdcount=1)
     .replace(b"\x03www", b"\x03w w")),
    ("no question", _opt_query(b"", qdcount=0)),
    ("two questions", _opt_query(b"", qdcount=2)),
    ("two OPT records", _opt_query(b"", opts=2)),
])
def test_formerr_keeps_opt(authority, what, data):
    reply = respond(authority, data, WHO, True)
    rid, flags, qd, an, ns, ar = header(reply)
    assert rid == 0x4242 and flags == 0x8000 | 0x0100 | dns.rcode.FORMERR, what
    assert (an, ns, ar) == (0, 0, 1), what
    assert qd == (1 if "question" not in what else 0), what
    msg = dns.message.from_wire(reply)
    assert msg.edns == 0 and msg.ednsflags & dns.flags.DO and msg.payload == wire.OUR_UDP_SIZE


def test_formerr_without_opt_is_header_only(authority):
    data = struct.pack("!6H", 7, 0x0100, 2, 0, 0, 0) + (b"\x00" + struct.pack("!HH", 1, 1)) * 2
    assert respond(authority, data, WHO, True) == struct.pack(
        "!6H", 7, 0x8100 | dns.rcode.FORMERR, 0, 0, 0, 0)


# -- SERVFAIL on an internal error ---------------------------------------------------------


class BrokenView:
    """A HealthView whose ``is_up`` raises (after ``ok`` good calls)."""

    def __init__(self, ok: int = 0) -> None:
        self.ok = ok
        self.generation = 0

    def is_up(self, origin: str) -> bool:
        if self.ok <= 0:
            raise RuntimeError("health view broke")
        self.ok -= 1
        return True

    def srtt_ms(self, origin: str, vantage: str) -> float | None:
        return None

    ramping = False

    def weight_factor(self, origin: str, now: float | None = None) -> float:
        return 1.0


@pytest.mark.parametrize("udp", [True, False])
def test_failure_in_steering_gets_servfail(config, caplog, udp):
    stats = QueryStats()
    answering = Answering(Authority(config, BrokenView()), stats)
    data = query_wire(options=[dns.edns.ECSOption("192.0.2.0", 24)])
    with caplog.at_level(logging.ERROR, "gslb.dns"):
        for _ in range(100):
            reply = dns.message.from_wire(answering.handle(data, WHO, udp))
            assert reply.rcode() == dns.rcode.SERVFAIL and reply.id == header(data)[0]
            assert reply.flags & dns.flags.RD and not reply.flags & dns.flags.AA
            assert reply.question[0].name.to_text() == "www.example.test." and reply.edns == 0
    assert stats.internal_errors == 100
    assert stats.queries[(1, dns.rcode.SERVFAIL)] == 100
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "health view broke" in tracebacks[0].getMessage()


def test_failure_on_a_cache_hit_gets_servfail(config):
    broken = [False]

    def on_choice(owner: str, pool: str, choice: object) -> None:
        if broken[0]:
            raise ValueError("observer broke")

    stats = QueryStats()
    answering = Answering(Authority(config, QuorumView(), on_choice=on_choice), stats)
    data = query_wire()
    first = dns.message.from_wire(answering.handle(data, WHO, True))
    assert first.rcode() == dns.rcode.NOERROR
    broken[0] = True
    again = dns.message.from_wire(answering.handle(data, WHO, True))
    assert again.rcode() == dns.rcode.SERVFAIL and again.question == first.question
    assert answering.authority.cache is not None and answering.authority.cache.hits == 1
    assert stats.internal_errors == 1


def test_servfail_of_what_cannot_be_decoded():
    junk = struct.pack("!6H", 9, 0x0100, 1, 0, 0, 0) + b"\x3fjunk"
    assert servfail(junk, WHO, True) == (struct.pack("!6H", 9, 0x8100 | 2, 0, 0, 0, 0), None)
    assert servfail(junk[:11], WHO, True) == (None, None)  # no header
    assert servfail(b"\x00\x09\x80" + junk[3:], WHO, True) == (None, None)  # a response


def test_internal_errors_are_shipped_by_take():
    worker, supervisor = QueryStats(), QueryStats()
    worker.internal_errors = 3
    supervisor.add(worker.take())
    assert worker.internal_errors == 0
    worker.internal_errors = 2
    supervisor.add(worker.take())
    assert supervisor.internal_errors == 5


# -- RateLimitedLog --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limited_log_one_line_per_key_per_period(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("gslb.test"), 60.0, clock=clock)
    caplog.set_level(logging.INFO, "gslb.test")
    for _ in range(5):
        limited.log("a", logging.INFO, "event %s", "a")
        limited.log("b", logging.INFO, "event %s", "b")
        clock.now += 10
    assert [r.getMessage() for r in caplog.records] == ["event a", "event b"]
    clock.now += 20  # 60 s after the first lines
    assert limited.log("a", logging.INFO, "event %s", "a")
    assert caplog.records[-1].getMessage() == "event a (4 more since)"
    assert caplog.records[-1].suppressed == 4
    assert limited.suppressed == 8


def test_rate_limited_log_is_bounded(caplog):
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("gslb.test"), 60.0, max_keys=10, max_lines=50,
                             clock=clock)
    caplog.set_level(logging.INFO, "gslb.test")
    for i in range(1000):  # a flood from many sources
        limited.log(i, logging.INFO, "from %d", i)
    assert len(caplog.records) == 50 and limited.suppressed == 950
    assert len(limited._seen) <= 10
    clock.now += 60
    assert limited.log(999, logging.INFO, "from %d", 999)


def test_rate_limited_log_rejects_bad_bounds():
    with pytest.raises(ValueError):
        RateLimitedLog(logging.getLogger("gslb.test"), 0)


def test_error_key_is_type_and_innermost_frame():
    def inner() -> None:
        raise KeyError("x")

    keys = set()
    for _ in range(3):
        try:
            inner()
        except KeyError as exc:
            keys.add(error_key(exc))
    (key,) = keys
    assert key[0] == "KeyError" and key[1] == __file__ and key[2] > 0
    assert error_key(ValueError()) == ("ValueError", "", 0)
