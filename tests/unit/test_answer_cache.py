"""The answer cache (``gslb.dns.cache``) through ``respond``: a reused
response reads exactly like a freshly built one (ID, 0x20 case, ECS scope,
TC), health changes show in the next answer, random and RTT answers are
never reused, and answers that depend on the client are kept per client."""

from __future__ import annotations

import random
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from gslb.authority import Authority, respond
from gslb.config.load import load
from gslb.dns.cache import AnswerCache
from gslb.geo import GeoDB
from gslb.health.state import VantageReport
from gslb.health.view import QuorumView

FAKE = Path(__file__).resolve().parent.parent / "data" / "geoip" / "fake-country.mmdb"
ZONE = """
origins:
  gb: {ipv4: [192.0.2.1], ipv6: ["2001:db8::1"]}
  se: {ipv4: [192.0.2.2]}
  us: {ipv4: [192.0.2.3]}
  big: {ipv4: [192.0.2.4], weight: 3}
pools:
  geo: {policy: geo, origins: [gb, se, us], countries: {GB: gb, SE: se}, default: us}
  fail: {policy: failover, tiers: [gb, [se, us]]}
  coin: {policy: weighted, origins: [gb, se]}
  tilt: {policy: weighted, origins: [gb, big]}
  pair: {policy: weighted, origins: [gb, se, us], max_answers: 2}
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 127.0.0.1}
      geo: {gslb: geo}
      fail: {gslb: fail}
      coin: {gslb: coin}
      tilt: {gslb: tilt}
      pair: {gslb: pair}
      big: {TXT: [BIG]}
""".replace("BIG", ", ".join(f'"{"x" * 90} {i}"' for i in range(12)))

GB_RESOLVER, SE_RESOLVER = "81.2.69.10", "89.160.1.1"


@pytest.fixture(scope="module")
def geodb():
    with GeoDB(FAKE) as db:
        yield db


def build(tmp_path: Path, geodb: GeoDB, cache_entries: int = 1024,
          seen: list | None = None) -> tuple[Authority, QuorumView]:
    path = tmp_path / "zone.yaml"
    path.write_text(ZONE)
    view = QuorumView()
    on_choice = (lambda owner, pool, choice: seen.append((owner, pool))) if (
        seen is not None) else None
    return Authority(load([path]), view, geodb.locate, rng=random.Random(7),
                     on_choice=on_choice, cache_entries=cache_entries), view


def query(name: str, qtype: str = "A", *, ecs: str | None = None, qid: int = 1,
          payload: int = 1232, edns: bool = True) -> bytes:
    options = [dns.edns.ECSOption(ecs, 24)] if ecs else []
    q = dns.message.make_query(name, qtype, use_edns=0 if edns else False, options=options,
                               payload=payload)
    q.id = qid
    return q.to_wire()


def down(view: QuorumView, origin: str) -> None:
    view.apply(VantageReport(origin, "local", False, 3, False, None, None, "refused", 1e18))


def addresses(response: bytes) -> list[str]:
    return sorted(rd.to_text() for rrset in dns.message.from_wire(response).answer
                  for rd in rrset)


def test_a_reused_response_is_the_fresh_one_with_this_query_id_and_case(tmp_path, geodb):
    cached, _ = build(tmp_path, geodb)
    fresh, _ = build(tmp_path, geodb, cache_entries=0)
    assert fresh.cache is None
    rng = random.Random(5)
    for i in range(400):
        name = "".join(c.upper() if rng.random() < 0.5 else c
                       for c in rng.choice(["geo", "fail", "ns1", "nope", "big", "@"])
                       + ".example.test.").replace("@.", "")
        data = query(name, rng.choice(["A", "AAAA", "TXT", "SOA"]), qid=rng.randrange(65536),
                     ecs=rng.choice([None, "81.2.69.0", "89.160.1.0"]),
                     payload=rng.choice([512, 1232]), edns=rng.random() < 0.8)
        udp = rng.random() < 0.8
        assert respond(cached, data, GB_RESOLVER, udp) == respond(fresh, data, GB_RESOLVER, udp), i
    assert cached.cache is not None and cached.cache.hits > 150


def test_truncation_is_kept_apart_from_tcp(tmp_path, geodb):
    authority, _ = build(tmp_path, geodb)
    data = query("big.example.test.", "TXT", edns=False)
    for _ in range(2):
        udp = dns.message.from_wire(respond(authority, data, GB_RESOLVER, True))
        tcp = dns.message.from_wire(respond(authority, data, GB_RESOLVER, False))
        assert udp.flags & dns.flags.TC and not udp.answer
        assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 12
    assert authority.cache.hits == 2


def test_a_health_change_shows_in_the_next_answer(tmp_path, geodb):
    authority, view = build(tmp_path, geodb)
    data = query("fail.example.test.")
    assert addresses(respond(authority, data, GB_RESOLVER, True)) == ["192.0.2.1"]
    assert addresses(respond(authority, data, GB_RESOLVER, True)) == ["192.0.2.1"]
    assert authority.cache.hits == 1
    down(view, "gb")
    after = addresses(respond(authority, data, GB_RESOLVER, True))
    assert len(after) == 1 and after[0] in ("192.0.2.2", "192.0.2.3")
    assert authority.cache.hits == 1


def test_a_draw_inside_a_failover_tier_is_stored_as_the_draw(tmp_path, geodb):
    # tier 2 holds two healthy origins of equal weight: each answer is a
    # draw, so the cache must not freeze one (it did while reuse was decided
    # from the pool's policy name): it stores the draw, and draws on each hit
    authority, view = build(tmp_path, geodb)
    down(view, "gb")
    data = query("fail.example.test.")
    seen = [addresses(respond(authority, data, GB_RESOLVER, True))[0] for _ in range(400)]
    assert authority.cache.hits == 399 and len(authority.cache) == 1
    assert 140 <= seen.count("192.0.2.2") <= 260 and 140 <= seen.count("192.0.2.3") <= 260
    view.apply(VantageReport("gb", "local", True, 3, False, None, None, "ok", 2e18))
    assert addresses(respond(authority, data, GB_RESOLVER, True)) == ["192.0.2.1"]


def test_weighted_draws_are_stored_as_draws_and_keep_their_shares(tmp_path, geodb):
    # weights 1 and 3: over 4,000 answers, the heavy one's share within
    # 0.72..0.78 (4.4 standard deviations); every answer heard as the origin
    # it gave, hits included
    path = tmp_path / "zone.yaml"
    path.write_text(ZONE)
    heard: list[str] = []
    authority = Authority(load([path]), QuorumView(), geodb.locate, rng=random.Random(7),
                          on_choice=lambda owner, pool, choice: heard.extend(choice.addresses))
    data = query("tilt.example.test.")
    seen = [addresses(respond(authority, data, GB_RESOLVER, True))[0] for _ in range(4000)]
    assert set(seen) == {"192.0.2.1", "192.0.2.4"}
    assert 0.72 <= seen.count("192.0.2.4") / 4000 <= 0.78
    assert heard == seen
    assert authority.cache.hits == 3999 and len(authority.cache) == 1


def test_an_answer_of_two_draws_is_never_reused(tmp_path, geodb):
    # two members drawn without replacement: two draws, no single outcome
    authority, _ = build(tmp_path, geodb)
    data = query("pair.example.test.")
    seen = {tuple(sorted(addresses(respond(authority, data, GB_RESOLVER, True))))
            for _ in range(200)}
    assert seen == {("192.0.2.1", "192.0.2.2"), ("192.0.2.1", "192.0.2.3"),
                    ("192.0.2.2", "192.0.2.3")}
    assert authority.cache.hits == 0 and len(authority.cache) == 0


def test_geo_without_ecs_is_kept_per_resolver_and_with_ecs_per_subnet(tmp_path, geodb):
    authority, _ = build(tmp_path, geodb)
    plain = query("geo.example.test.", edns=False)
    for _ in range(3):
        assert addresses(respond(authority, plain, GB_RESOLVER, True)) == ["192.0.2.1"]
        assert addresses(respond(authority, plain, SE_RESOLVER, True)) == ["192.0.2.2"]
    gb, se = query("geo.example.test.", ecs="81.2.69.0"), query("geo.example.test.",
                                                                ecs="89.160.1.0")
    for _ in range(3):  # the resolver's own address no longer matters
        for who in (GB_RESOLVER, SE_RESOLVER, "8.8.8.8"):
            reply = dns.message.from_wire(respond(authority, gb, who, True))
            assert [rd.to_text() for rd in reply.answer[0]] == ["192.0.2.1"]
            assert reply.options[0].scopelen == 24
            assert addresses(respond(authority, se, who, True)) == ["192.0.2.2"]
    assert authority.cache.hits == 4 + 16


def test_metrics_hear_of_reused_answers(tmp_path, geodb):
    seen: list = []
    authority, _ = build(tmp_path, geodb, seen=seen)
    data = query("fail.example.test.")
    for _ in range(5):
        respond(authority, data, GB_RESOLVER, True)
    assert seen == [("fail.example.test.", "fail")] * 5 and authority.cache.hits == 4


def test_the_bound_holds_and_the_oldest_goes_first(tmp_path, geodb):
    authority, _ = build(tmp_path, geodb, cache_entries=8)
    for i in range(20):
        respond(authority, query(f"n{i}.example.test."), GB_RESOLVER, True)
        assert len(authority.cache) <= 8
    respond(authority, query("n19.example.test."), GB_RESOLVER, True)
    respond(authority, query("n0.example.test."), GB_RESOLVER, True)
    assert authority.cache.hits == 1
    reply = dns.message.from_wire(respond(authority, query("n19.example.test."), GB_RESOLVER, True))
    assert reply.rcode() == dns.rcode.NXDOMAIN


def test_bad_bound_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        AnswerCache(lambda: 0, 0)


def test_a_draw_too_heavy_for_64_bits_is_answered_afresh(tmp_path, geodb):
    # a total weight past MAX_TOTAL_WEIGHT (the compiled path draws in 64
    # bits): not stored; the answers still follow the weights
    from gslb.dns.cache import MAX_TOTAL_WEIGHT

    path = tmp_path / "zone.yaml"
    path.write_text(ZONE.replace("big: {ipv4: [192.0.2.4], weight: 3}",
                                 f"big: {{ipv4: [192.0.2.4], weight: {MAX_TOTAL_WEIGHT}}}"))
    authority = Authority(load([path]), QuorumView(), geodb.locate, rng=random.Random(7))
    data = query("tilt.example.test.")
    seen = {addresses(respond(authority, data, GB_RESOLVER, True))[0] for _ in range(50)}
    assert seen == {"192.0.2.4"}
    assert authority.cache.hits == 0 and len(authority.cache) == 0
