"""Response rate limiting (gslb.dns.rrl): classification from bytes, the
token buckets and their keys, slip, exemption, log-only, the bounded table,
the log lines, and the ``rate_limit`` config section."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import textwrap
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from gslb.config.load import load
from gslb.config.model import RateLimit
from gslb.dns import rrl
from gslb.dns.rrl import Proven, RateLimiter, classify, truncated
from gslb.errors import ConfigError
from gslb.stats import QueryStats


class Clock:
    """A clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0


class Limiter(RateLimiter):
    """A ``RateLimiter`` asked at the time of ``clock``."""

    __slots__ = ("clock",)

    def __init__(self, limits: RateLimit, counts: dict[tuple[str, str], int] | None = None,
                 clock: Clock | None = None, proven: Proven | None = None) -> None:
        super().__init__(limits, counts, proven)
        self.clock = clock or Clock()

    def limit(self, response: bytes, who: str, now: float | None = None,
              query: bytes = b"") -> bytes | None:
        return super().limit(response, who, self.clock.now if now is None else now, query)


def response(qname: str = "www.example.test.", rdtype: str = "A", *, rcode: int = 0,
             answers: int = 1, aa: bool = True, authority: bool = False,
             edns: bool = True) -> bytes:
    """An encoded response (built by dnspython, not by gslb)."""
    q = dns.message.make_query(qname, rdtype, use_edns=0 if edns else False,
                               options=[dns.edns.NSIDOption(b"")] if edns else [])
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if aa:
        r.flags |= dns.flags.AA
    for i in range(answers):
        r.answer.append(dns.rrset.from_text(qname, 30, "IN", "A", f"192.0.2.{i + 1}"))
    if authority:
        r.authority.append(dns.rrset.from_text("sub." + qname, 300, "IN", "NS", "ns.other."))
    return r.to_wire()


def limits(**kw: object) -> RateLimit:
    """The defaults with ``kw``; the other kinds' rates follow
    ``responses_per_second`` as in the config section."""
    if "responses_per_second" in kw:
        for key in ("nodata", "nxdomains", "referrals", "errors"):
            kw.setdefault(f"{key}_per_second", kw["responses_per_second"])
    return dataclasses.replace(RateLimit(), **kw)  # type: ignore[arg-type]


# -- classification --------------------------------------------------------------


@pytest.mark.parametrize(("wire", "kind"), [
    (response(), rrl.ANSWER),
    (response(answers=0), rrl.NODATA),
    (response(answers=0, rcode=dns.rcode.NXDOMAIN), rrl.NXDOMAIN),
    (response(answers=0, aa=False, authority=True), rrl.REFERRAL),
    (response(answers=0, rcode=dns.rcode.REFUSED, aa=False), rrl.ERROR),
    (response(answers=0, rcode=dns.rcode.SERVFAIL), rrl.ERROR),
    (response(answers=0, rcode=dns.rcode.FORMERR, aa=False), rrl.ERROR),
    (response(answers=0, rcode=dns.rcode.BADVERS, aa=False), rrl.ERROR),  # extended RCODE
])
def test_classify_from_the_header(wire: bytes, kind: int) -> None:
    assert classify(wire) == kind


def test_truncated_keeps_question_and_opt_and_empties_the_rest() -> None:
    wire = response(answers=3, authority=True)
    short = dns.message.from_wire(truncated(wire))
    full = dns.message.from_wire(wire)
    assert short.flags & dns.flags.TC and short.flags & dns.flags.AA
    assert short.id == full.id and short.question == full.question
    assert not short.answer and not short.authority
    assert short.edns == 0 and short.options == full.options  # OPT kept whole
    plain = dns.message.from_wire(truncated(response(edns=False)))
    assert plain.edns == -1 and plain.flags & dns.flags.TC


# -- buckets -------------------------------------------------------------------


def sent(limiter: Limiter, wire: bytes, who: str, n: int) -> list[bytes | None]:
    return [limiter.limit(wire, who) for _ in range(n)]


def test_a_prefix_gets_rate_times_window_then_rate_per_second() -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=10, slip=0), clock=clock)
    wire = response()
    first = sent(limiter, wire, "192.0.2.1", 25)
    assert sum(r is not None for r in first) == 10
    clock.now += 0.5
    assert sum(r is not None for r in sent(limiter, wire, "192.0.2.77", 25)) == 5  # same /24
    for _ in range(20):  # a sustained flood is held at the rate, never silenced
        clock.now += 0.1
        assert sum(r is not None for r in sent(limiter, wire, "192.0.2.9", 10)) == 1
    assert limiter.counts[("dropped", "answer")] == 15 + 20 + 20 * 9


def test_window_is_the_depth_of_the_bucket() -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=10, window_s=3.0, slip=0), clock=clock)
    assert sum(r is not None for r in sent(limiter, response(), "192.0.2.1", 100)) == 30


def test_keys_identical_answers_per_name_and_negative_answers_per_prefix() -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=5, slip=0), clock=clock)
    for name in ("a.example.test.", "b.example.test.", "c.example.test."):
        clock.now += 1.0  # past the responses the fast path sent (RateLimiter)
        assert sum(r is not None for r in sent(limiter, response(name), "192.0.2.1", 9)) == 5
    # case does not make a new bucket (0x20 echo)
    assert limiter.limit(response("C.Example.TEST."), "192.0.2.1") is None
    # a new name right after the fast path ran dry still finds half a depth
    assert 3 <= sum(r is not None for r in sent(limiter, response("d.example.test."),
                                               "192.0.2.1", 9)) <= 5
    # NXDOMAIN for many names shares one bucket per prefix
    clock.now += 1.0
    nx = [response(f"r{i}.example.test.", answers=0, rcode=dns.rcode.NXDOMAIN)
          for i in range(20)]
    assert sum(limiter.limit(w, "192.0.2.1") is not None for w in nx) == 5
    # another prefix is untouched
    assert all(r is not None for r in sent(limiter, response("a.example.test."),
                                          "192.0.3.1", 5))


def test_a_kind_at_zero_is_not_limited_and_all_per_second_bounds_them_together() -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=0, slip=0), clock=clock)
    assert all(r is not None for r in sent(limiter, response(), "192.0.2.1", 500))
    limiter = Limiter(limits(responses_per_second=100, all_per_second=10, slip=0),
                          clock=clock)
    names = [response(f"n{i}.example.test.") for i in range(50)]
    assert sum(limiter.limit(w, "192.0.2.1") is not None for w in names) == 10


def test_ipv6_groups_by_56_and_ipv4_by_the_configured_length() -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=4, slip=0), clock=clock)
    wire = response()
    got = [limiter.limit(wire, who) is not None
           for who in ("2001:db8:0:1::1", "2001:db8:0:ff::2", "2001:db8::3", "2001:db8:0:42::9",
                       "2001:db8:0:7::1")]
    assert got == [True, True, True, True, False]  # one /56
    assert limiter.limit(wire, "2001:db8:0:100::1") is not None  # the next /56
    assert limiter.limit(wire, "::ffff:192.0.2.1") is not None  # IPv4-mapped: 192.0.2.0/24
    narrow = Limiter(limits(responses_per_second=1, slip=0, ipv4_prefix_length=32,
                                ipv6_prefix_length=128), clock=clock)
    assert all(narrow.limit(wire, f"192.0.2.{i}") is not None for i in range(1, 50))
    assert narrow.limit(wire, "192.0.2.1") is None
    assert all(narrow.limit(wire, f"2001:db8::{i:x}") is not None for i in range(1, 50))


@pytest.mark.parametrize(("slip", "pattern"), [
    (0, "......"), (1, "TTTTTT"), (2, ".T.T.T"), (3, "..T..T"),
])
def test_slip_sends_every_nth_limited_response_truncated(slip: int, pattern: str) -> None:
    limiter = Limiter(limits(responses_per_second=1, slip=slip))
    wire = response()
    assert limiter.limit(wire, "192.0.2.1") == wire
    out = sent(limiter, wire, "192.0.2.1", 6)
    shown = "".join("." if r is None else "T" for r in out)
    assert shown == pattern
    for r in out:
        if r is not None:
            msg = dns.message.from_wire(r)
            assert msg.flags & dns.flags.TC and not msg.answer
    assert limiter.counts.get(("slipped", "answer"), 0) == pattern.count("T")


def test_exempt_networks_and_proven_clients_are_never_limited() -> None:
    ex = (ipaddress.ip_network("192.0.2.128/25"), ipaddress.ip_network("2001:db8::/32"))
    asked: list[tuple[bytes, str]] = []

    def proven(query: bytes, who: str) -> bool:
        asked.append((query, who))
        return query == b"a valid cookie"

    limiter = Limiter(limits(responses_per_second=1, slip=0, exempt=ex), proven=proven)
    wire = response()
    assert all(r is not None for r in sent(limiter, wire, "192.0.2.200", 50))
    assert all(r is not None for r in sent(limiter, wire, "2001:db8::1", 50))
    assert limiter.limit(wire, "192.0.2.1") == wire  # same /24: exempt ones spent nothing
    assert limiter.limit(wire, "192.0.2.1") is None
    assert limiter.limit(wire, "192.0.2.1", query=b"a valid cookie") == wire
    assert limiter.limit(wire, "192.0.2.1", query=b"a forged one") is None
    # asked only of responses about to be limited
    assert asked == [(b"a valid cookie", "192.0.2.1"), (b"a forged one", "192.0.2.1")]
    assert sum(n for k, n in limiter.counts.items() if k[0] == "dropped") == 2


def test_log_only_drops_nothing_and_counts() -> None:
    limiter = Limiter(limits(responses_per_second=2, log_only=True))
    wire = response()
    assert sent(limiter, wire, "192.0.2.1", 10) == [wire] * 10
    assert limiter.counts == {("logged_only", "answer"): 8}


def test_the_table_stays_bounded_under_a_spoofed_flood() -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=1, max_table_size=100), clock=clock)
    wire = response()
    for i in range(20000):
        limiter.limit(wire, f"10.{i >> 8 & 255}.{i & 255}.1")
        assert len(limiter) <= 100
    assert limiter.counts[("evicted", "")] > 0
    clock.now += 5  # idle buckets are dropped first, without counting as evictions
    before = limiter.counts[("evicted", "")]
    for i in range(40):  # a prefix's own bucket and its answer bucket: 80 in all
        limiter.limit(wire, f"172.16.{i}.1")
    assert limiter.counts[("evicted", "")] == before


def test_reconfigure_keeps_buckets_unless_the_prefix_lengths_change() -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=3, slip=0), clock=clock)
    wire = response()
    sent(limiter, wire, "192.0.2.1", 3)
    limiter.configure(limits(responses_per_second=2, slip=0))
    assert limiter.limit(wire, "192.0.2.1") is None  # still empty
    limiter.configure(limits(responses_per_second=2, slip=0, ipv4_prefix_length=32))
    assert len(limiter) == 0 and limiter.limit(wire, "192.0.2.1") == wire


def test_one_log_line_when_limiting_starts_and_one_when_it_stops(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=1, slip=2), clock=clock)
    wire = response()
    with caplog.at_level(logging.INFO, logger="gslb.rrl"):
        for _ in range(30):
            clock.now += 0.05
            sent(limiter, wire, "192.0.2.1", 10)
        clock.now += 2.0
        limiter.limit(wire, "198.51.100.1")  # any later response runs the once-a-second tick
    lines = [r.getMessage() for r in caplog.records]
    assert [x for x in lines if "192.0.2.0/24" in x and "responses over" in x] == [
        "rate limiting 192.0.2.0/24: answer responses over 1/s (slip 2)"]
    ended = [x for x in lines if "ended" in x]
    assert len(ended) == 1 and "192.0.2.0/24" in ended[0]
    assert "dropped" in ended[0] and "slipped" in ended[0]


def test_log_lines_for_many_prefixes_are_themselves_limited(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limiter = Limiter(limits(responses_per_second=1), clock=clock)
    wire = response()
    with caplog.at_level(logging.INFO, logger="gslb.rrl"):
        for i in range(200):
            sent(limiter, wire, f"10.0.{i}.1", 3)
        clock.now += 1.5
        limiter.limit(wire, "198.51.100.1")
    starts = [r for r in caplog.records if "responses over" in r.getMessage()]
    assert len(starts) == rrl.LOG_STARTS_PER_S
    assert any("190 more prefix(es)" in r.getMessage() for r in caplog.records)


# -- the config section ----------------------------------------------------------

ZONE = """
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 127.0.0.1}
"""


def config(tmp_path: Path, text: str, extra: str | None = None) -> list[Path]:
    path = tmp_path / "c.yaml"
    path.write_text(ZONE + textwrap.dedent(text))
    paths = [path]
    if extra is not None:
        (tmp_path / "d.yaml").write_text(textwrap.dedent(extra))
        paths.append(tmp_path / "d.yaml")
    return paths


def test_absent_section_is_off_and_an_empty_one_takes_the_defaults(tmp_path: Path) -> None:
    assert load(config(tmp_path, "")).rate_limit is None
    assert load(config(tmp_path, "rate_limit:\n")).rate_limit == RateLimit()
    assert load(config(tmp_path, "rate_limit: {}\n")).rate_limit == RateLimit()


def test_section_read_whole(tmp_path: Path) -> None:
    got = load(config(tmp_path, """
        rate_limit:
          responses_per_second: 15
          errors_per_second: 3
          all_per_second: 50
          window: 2
          slip: 3
          ipv4_prefix_length: 28
          ipv6_prefix_length: 64
          max_table_size: 5000
          exempt: [192.0.2.0/24, "2001:db8::/32"]
          log_only: true
        """)).rate_limit
    assert got == RateLimit(15, 15, 15, 15, 3, 50, 2.0, 3, 28, 64, 5000,
                            (ipaddress.ip_network("192.0.2.0/24"),
                             ipaddress.ip_network("2001:db8::/32")), True)


@pytest.mark.parametrize(("body", "message"), [
    ("slip: 11", "rate_limit.slip: 11 is above 10"),
    ("responses_per_second: -1", "rate_limit.responses_per_second: -1 is below 0"),
    ("window: 0", "rate_limit.window: 0 must be above 0 seconds"),
    ("ipv4_prefix_length: 33", "rate_limit.ipv4_prefix_length: 33 is above 32"),
    ("ipv6_prefix_length: 8", "rate_limit.ipv6_prefix_length: 8 is below 16"),
    ("max_table_size: 10", "rate_limit.max_table_size: 10 is below 100"),
    ("exempt: [192.0.2.1/24]", "rate_limit.exempt[0]: not a CIDR network"),
    ("exempt: [42]", "rate_limit.exempt[0]: expected a network"),
    ("log_only: yes please", "rate_limit.log_only: expected true or false"),
    ("burst: 3", "rate_limit.burst: unknown key 'burst'"),
])
def test_bad_values_name_file_line_and_key(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(config(tmp_path, f"rate_limit:\n  window: 1\n  {body}\n"))
    text = str(err.value)
    assert message in text
    assert f"c.yaml:{ZONE.count(chr(10)) + 3}:" in text  # the line of the bad key


def test_given_twice_across_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"d\.yaml:1: rate_limit: rate_limit is given twice"):
        load(config(tmp_path, "rate_limit: {slip: 1}\n", "rate_limit: {slip: 2}\n"))


def test_counts_ship_from_a_worker_to_the_supervisor() -> None:
    """A worker's limiter counts into its QueryStats; ``take`` empties the
    dict in place (the limiter keeps writing to it) and ``add`` sums."""
    worker, supervisor = QueryStats(), QueryStats()
    limiter = Limiter(limits(responses_per_second=1, slip=2), worker.rrl)
    wire = response()
    sent(limiter, wire, "192.0.2.1", 5)
    supervisor.add(worker.take())
    sent(limiter, wire, "192.0.2.1", 4)
    supervisor.add(worker.take())
    assert worker.rrl == {}
    assert supervisor.rrl == {("dropped", "answer"): 4, ("slipped", "answer"): 4}
