"""DNS Cookies (RFC 7873, server cookies of RFC 9018): the test vectors of
RFC 9018 Appendix A byte for byte, the validity window of section 4.3,
secret rotation, the COOKIE option on the wire (FORMERR on bad lengths,
RFC 7873 section 5.2.2), ``respond`` with the answer cache on and off
(each client its own server cookie from one cached entry), BADCOOKIE only
over UDP with ``require``, and the ``cookies`` config section."""

from __future__ import annotations

import os
import random
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest

from gslb.authority import Authority, cookies_of, respond
from gslb.config.load import load
from gslb.config.model import CookieSettings
from gslb.dns import wire
from gslb.dns.cache import AnswerCache
from gslb.dns.cookies import (
    BADCOOKIE,
    FUTURE_S,
    LIFETIME_S,
    OPTION_COOKIE,
    RECENT_MAX,
    REFRESH_S,
    Cookies,
    check,
    client_ip,
    process_secret,
    server_cookie,
)
from gslb.errors import ConfigError
from tests.unit.fakes import Health

H = bytes.fromhex
SECRET = H("e5e973e5a6b2a43f48e7dc849e37bfcf")
OLD_SECRET = H("dd3bdf9344b678b185a6f5cb60fca715")
NEW_SECRET = H("445536bcd2513298075a5d379663c962")
V6 = "2001:db8:220:1:59de:d0f4:8769:82b8"


# -- RFC 9018 Appendix A ---------------------------------------------------

def test_a1_learning_a_new_server_cookie() -> None:
    cookies = Cookies([SECRET])
    reply, valid = cookies.reply(H("2464c4abcf10c957"), "198.51.100.100", now=1559731985)
    assert reply == H("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
    assert not valid


def test_a2_a_cookie_older_than_half_an_hour_is_renewed() -> None:
    sent = H("2464c4abcf10c957010000005cf79f111f8130c3eee29480")
    reply, valid = Cookies([SECRET]).reply(sent, "198.51.100.100", now=1559734385)
    assert reply == H("2464c4abcf10c957010000005cf7a871d4a564a1442aca77")
    assert valid  # 40 minutes old: still valid, renewed


def test_a3_reserved_octets_are_hashed_as_sent_and_the_reply_has_them_zero() -> None:
    client, server = H("fc93fc62807ddb86"), H("01abcdef5cf78f71a314227b6679ebf5")
    ip = client_ip("203.0.113.203")
    assert check([SECRET], client, server, ip, 1559727985 + 60) == 0  # valid when fresh
    # at the example's reply time it is 1 h 52 min old: past LIFETIME_S
    assert check([SECRET], client, server, ip, 1559734700) == -1
    reply, valid = Cookies([SECRET]).reply(client + server, "203.0.113.203", now=1559734700)
    assert reply == H("fc93fc62807ddb86010000005cf7a9acf73a7810aca2381e")
    assert not valid


def test_a4_ipv6_client_after_a_rotation() -> None:
    sent = H("22681ab97d52c298010000005cf7c57926556bd0934c72f8")
    assert check([OLD_SECRET], sent[:8], sent[8:], client_ip(V6), 1559741961) == 0
    rotated = Cookies([NEW_SECRET, OLD_SECRET])
    reply, valid = rotated.reply(sent, V6, now=1559741961)
    assert valid  # the previous secret still validates
    assert reply == H("22681ab97d52c298010000005cf7c609a6bb79d16625507a")  # the new one signs
    assert not Cookies([NEW_SECRET]).reply(sent, V6, now=1559741961)[1]  # previous dropped


# -- the validity window and what is sent back ----------------------------

def test_validity_window_is_one_hour_back_five_minutes_ahead() -> None:
    ip, client, made = client_ip("192.0.2.7"), H("0102030405060708"), 2_000_000_000
    server = server_cookie(SECRET, client, ip, made)
    assert check([SECRET], client, server, ip, made + LIFETIME_S) == 0
    assert check([SECRET], client, server, ip, made + LIFETIME_S + 1) == -1
    assert check([SECRET], client, server, ip, made - FUTURE_S) == 0
    assert check([SECRET], client, server, ip, made - FUTURE_S - 1) == -1
    # serial arithmetic (RFC 1982): a cookie made just before the 32-bit wrap
    wrap = server_cookie(SECRET, client, ip, 2**32 - 10)
    assert check([SECRET], client, wrap, ip, 2**32 + 100) == 0


def test_a_young_cookie_comes_back_unchanged_an_old_one_is_refreshed() -> None:
    cookies, ip, client, made = Cookies([SECRET]), "192.0.2.7", H("0102030405060708"), 2 * 10**9
    option = client + server_cookie(SECRET, client, client_ip(ip), made)
    assert cookies.reply(option, ip, now=made + REFRESH_S - 1) == (option, True)
    fresh, valid = cookies.reply(option, ip, now=made + REFRESH_S)
    assert valid and fresh != option
    assert fresh == client + server_cookie(SECRET, client, client_ip(ip), made + REFRESH_S)


@pytest.mark.parametrize("change", ["hash", "version", "client", "address", "secret"])
def test_a_forged_or_foreign_cookie_is_treated_as_client_only(change: str) -> None:
    ip, client, now = "192.0.2.7", H("0102030405060708"), 2 * 10**9
    server = bytearray(server_cookie(SECRET, client, client_ip(ip), now))
    secret = SECRET
    if change == "hash":
        server[-1] ^= 1
    elif change == "version":
        server[0] = 2
    elif change == "client":
        client = H("0102030405060709")
    elif change == "address":
        ip = "192.0.2.8"
    else:
        secret = os.urandom(16)
    reply, valid = Cookies([secret]).reply(client + bytes(server), ip, now=now)
    assert not valid
    assert reply == client + server_cookie(secret, client, client_ip(ip), now)


@pytest.mark.parametrize("length", [8, 12, 32])
def test_server_cookies_not_ours_in_length_are_not_valid(length: int) -> None:
    client = H("0102030405060708")
    reply, valid = Cookies([SECRET]).reply(client + b"\1" * length, "192.0.2.7", now=10**9)
    assert not valid and len(reply) == 24


def test_client_ip() -> None:
    assert client_ip("192.0.2.1") == H("c0000201")
    assert client_ip("::ffff:192.0.2.1") == H("c0000201")  # a dual-stack socket's view
    assert len(client_ip("2001:db8::1")) == 16
    assert client_ip("") == b"" and client_ip("not an address") == b""


def test_cookies_takes_one_or_two_secrets_of_16_octets() -> None:
    for bad in ([], [SECRET] * 3, [SECRET[:15]]):
        with pytest.raises(ValueError):
            Cookies(bad)


def test_the_clock_is_a_parameter() -> None:
    now = [1559731985.7]
    cookies = Cookies([SECRET], clock=lambda: now[0])
    assert cookies.reply(H("2464c4abcf10c957"), "198.51.100.100")[0] == H(
        "2464c4abcf10c957010000005cf79f111f8130c3eee29480")


# -- the option on the wire ------------------------------------------------

def cookie_query(name: str, option: bytes | None, qid: int = 1, qtype: str = "A") -> bytes:
    options = [] if option is None else [dns.edns.GenericOption(OPTION_COOKIE, option)]
    q = dns.message.make_query(name, qtype, use_edns=0, options=options, payload=1232)
    q.id = qid
    return q.to_wire()


@pytest.mark.parametrize("length", [8, 16, 24, 40])
def test_well_formed_cookie_options_are_read(length: int) -> None:
    data = cookie_query("www.example.test.", bytes(range(length)))
    assert wire.decode(data).cookie == bytes(range(length))
    assert wire.decode_dnslib(data).cookie == bytes(range(length))


@pytest.mark.parametrize("length", [0, 1, 7, 9, 15, 41, 64])
def test_bad_cookie_lengths_get_formerr_with_the_opt_kept(length: int) -> None:
    data = cookie_query("www.example.test.", bytes(length), qid=77)
    for decode in (wire.decode, wire.decode_dnslib):
        with pytest.raises(wire.FormErr) as info:
            decode(data)
        response = dns.message.from_wire(info.value.response)
        assert response.id == 77 and response.rcode() == dns.rcode.FORMERR
        assert response.edns == 0  # RFC 6891 section 7: OPT kept
        assert not [o for o in response.options if o.otype == OPTION_COOKIE]


# -- respond, with and without the answer cache ----------------------------

ZONE = """
origins:
  a: {ipv4: [192.0.2.1]}
pools:
  web: {policy: failover, tiers: [a]}
zones:
  example.test:
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 60
        NS: ns1
      ns1: {A: 127.0.0.1}
      www: {gslb: web}
      big: {TXT: [BIG]}
""".replace("BIG", ", ".join(f'"{"x" * 90} {i}"' for i in range(14)))


def build(tmp_path: Path, cache_entries: int, require: bool = False,
          secrets: tuple[bytes, ...] = (SECRET,), now: list[float] | None = None) -> Authority:
    path = tmp_path / "zone.yaml"
    path.write_text(ZONE)
    authority = Authority(load([path]), Health(), rng=random.Random(1),
                          cache_entries=cache_entries)
    clock = (lambda: now[0]) if now is not None else (lambda: 2 * 10**9)
    authority.cookies = Cookies(secrets, require, clock=clock)
    return authority


def reply_cookie(response: bytes) -> bytes | None:
    msg = dns.message.from_wire(response)
    found = [o for o in msg.options if o.otype == OPTION_COOKIE]
    assert len(found) <= 1
    return None if not found else found[0].to_wire()


def clients(n: int) -> list[tuple[str, bytes]]:
    return [(f"192.0.2.{10 + i}", os.urandom(8)) for i in range(n)]


@pytest.mark.parametrize("cache_entries", [1024, 0])
def test_each_client_gets_its_own_server_cookie(tmp_path: Path, cache_entries: int) -> None:
    authority = build(tmp_path, cache_entries)
    everyone = clients(20)
    for _round in range(3):
        for i, (who, client) in enumerate(everyone):
            for udp in (True, False):
                data = cookie_query("WwW.example.test.", client, qid=i + 1)
                response = respond(authority, data, who, udp)
                assert response is not None
                msg = dns.message.from_wire(response)
                assert msg.id == i + 1 and str(msg.question[0].name) == "WwW.example.test."
                assert [str(r) for rrset in msg.answer for r in rrset] == ["192.0.2.1"]
                expect = client + server_cookie(SECRET, client, client_ip(who), 2 * 10**9)
                assert reply_cookie(response) == expect
                # sent back: it validates, and comes back unchanged
                again = respond(authority, cookie_query("www.example.test.", expect), who, udp)
                assert again is not None and reply_cookie(again) == expect
    if authority.cache is not None:
        assert authority.cache.hits > 200 and len(authority.cache) <= 4  # shared entries


@pytest.mark.parametrize("cache_entries", [1024, 0])
def test_no_cookie_no_cookie_back(tmp_path: Path, cache_entries: int) -> None:
    authority = build(tmp_path, cache_entries)
    for _ in range(3):
        response = respond(authority, cookie_query("www.example.test.", None), "192.0.2.1", True)
        assert response is not None and reply_cookie(response) is None
        assert dns.message.from_wire(response).answer


@pytest.mark.parametrize("cache_entries", [1024, 0])
def test_truncated_answers_carry_the_cookie_too(tmp_path: Path, cache_entries: int) -> None:
    authority = build(tmp_path, cache_entries)
    for who, client in clients(5):
        response = respond(authority, cookie_query("big.example.test.", client, qtype="TXT"),
                           who, True)
        assert response is not None and len(response) <= 1232
        msg = dns.message.from_wire(response)
        assert msg.flags & dns.flags.TC
        assert reply_cookie(response) == client + server_cookie(
            SECRET, client, client_ip(who), 2 * 10**9)


@pytest.mark.parametrize("cache_entries", [1024, 0])
def test_a_cookie_of_the_previous_secret_still_answers(tmp_path: Path,
                                                        cache_entries: int) -> None:
    authority = build(tmp_path, cache_entries, require=True, secrets=(NEW_SECRET, OLD_SECRET))
    for who, client in clients(5):
        old = client + server_cookie(OLD_SECRET, client, client_ip(who), 2 * 10**9 - 60)
        response = respond(authority, cookie_query("www.example.test.", old), who, True)
        assert response is not None
        assert dns.message.from_wire(response).rcode() == dns.rcode.NOERROR
        assert reply_cookie(response) == client + server_cookie(
            NEW_SECRET, client, client_ip(who), 2 * 10**9)


@pytest.mark.parametrize("cache_entries", [1024, 0])
def test_badcookie_only_with_require_over_udp(tmp_path: Path, cache_entries: int) -> None:
    now = [2e9]
    authority = build(tmp_path, cache_entries, require=True, now=now)
    who, client = "192.0.2.9", os.urandom(8)
    good = client + server_cookie(SECRET, client, client_ip(who), int(now[0]))
    forged = client + bytes(16)
    for _ in range(3):  # twice: the cache must not hand out an answer meant for a valid cookie
        for option in (good, client, forged):
            for udp in (True, False):
                response = respond(authority, cookie_query("www.example.test.", option), who, udp)
                assert response is not None
                msg = dns.message.from_wire(response)
                refused = udp and option is not good
                assert msg.rcode() == (BADCOOKIE if refused else dns.rcode.NOERROR)
                assert bool(msg.answer) is not refused
                assert reply_cookie(response) == good  # the new (or still valid) cookie
    # a query without a cookie is answered (RFC 7873 section 5.2.1)
    plain = respond(authority, cookie_query("www.example.test.", None), who, True)
    assert plain is not None and dns.message.from_wire(plain).answer
    # an expired cookie gets BADCOOKIE and a fresh one
    now[0] += LIFETIME_S + 1
    response = respond(authority, cookie_query("www.example.test.", good), who, True)
    assert response is not None
    assert dns.message.from_wire(response).rcode() == BADCOOKIE
    assert reply_cookie(response) == client + server_cookie(
        SECRET, client, client_ip(who), int(now[0]))


def test_without_require_no_badcookie_ever(tmp_path: Path) -> None:
    authority = build(tmp_path, 1024)
    for who, client in clients(10):
        for option in (client, client + bytes(16), client + os.urandom(24)):
            response = respond(authority, cookie_query("www.example.test.", option), who, True)
            assert response is not None
            assert dns.message.from_wire(response).rcode() == dns.rcode.NOERROR


def test_the_cache_key_leaves_the_cookie_out() -> None:
    cache: AnswerCache[str] = AnswerCache(lambda: 0)
    first = cookie_query("www.example.test.", os.urandom(8), qid=1)
    cache.put(cache.shape(first, True), "192.0.2.1", b"R" * 60, "note", False)
    other = cookie_query("WWW.example.test.", os.urandom(8), qid=2)
    hit = cache.get(cache.shape(other, True), other, "192.0.2.2")
    assert hit is not None and hit[1] == "note"
    assert hit[0][:2] == other[:2] and hit[0][12:29] == other[12:29]  # ID and qname as asked
    for miss in (cookie_query("www.example.test.", None), other):  # no cookie; over TCP
        assert cache.get(cache.shape(miss, miss is not other), miss, "192.0.2.2") is None
    full = cookie_query("www.example.test.", os.urandom(24))  # another length, its own entry
    assert cache.get(cache.shape(full, True), full, "192.0.2.2") is None
    assert len(cache) == 1


# -- configuration ---------------------------------------------------------

def test_cookies_of() -> None:
    assert cookies_of(CookieSettings(enabled=False)) is None
    default = cookies_of(CookieSettings())
    assert default is not None and default.secrets == (process_secret(),)
    assert process_secret() == process_secret()  # one per process, kept across reloads
    shared = cookies_of(CookieSettings(secret_file="x", secrets=(SECRET, OLD_SECRET),
                                       require=True))
    assert shared is not None and shared.secrets == (SECRET, OLD_SECRET) and shared.require


MINIMAL = """zones:
  example.test:
    records:
      "@": {SOA: ns1 hostmaster 1 3600 600 86400 60, NS: ns1}
      ns1: {A: 127.0.0.1}
"""


def secret_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "cookie.secret"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_secret_file_current_and_previous(tmp_path: Path) -> None:
    path = secret_file(tmp_path, f"# rotated 2026-12-02\n{NEW_SECRET.hex()}\n\n"
                                 f"{OLD_SECRET.hex().upper()}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(MINIMAL + f"cookies: {{secret_file: {path}, require: true}}\n")
    settings = load([cfg]).cookies
    assert settings == CookieSettings(True, str(path), (NEW_SECRET, OLD_SECRET), True)
    assert CookieSettings() == load([_write(tmp_path, MINIMAL)]).cookies


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plain.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("content", "mode", "key", "message"), [
    ("ab" * 16, 0o644, "secret_file", "has mode 0644: its group or others may read or write "
                                      "it; make it readable by its owner only (chmod 600"),
    ("ab" * 16, 0o660, "secret_file", "has mode 0660"),
    (None, 0o600, "secret_file", "cannot read"),
    ("", 0o600, "secret_file", "holds 0 secret(s)"),
    ("ab" * 16 + "\n" + "cd" * 16 + "\n" + "ef" * 16, 0o600, "secret_file",
     "holds 3 secret(s)"),
    ("ab" * 16 + "\n" + "cd" * 15, 0o600, "secret_file",
     "line 2: expected 32 hex digits (a 128-bit secret), got 30 character(s)"),
    ("zz" * 16, 0o600, "secret_file", "line 1: expected 32 hex digits (a 128-bit secret), "
                                      "got 32 character(s) that are not all hex digits"),
])
def test_bad_secret_files(tmp_path: Path, content: str | None, mode: int, key: str,
                          message: str) -> None:
    path = tmp_path / "cookie.secret"
    if content is not None:
        secret_file(tmp_path, content, mode)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(MINIMAL + "cookies:\n  require: false\n" + f"  secret_file: {path}\n")
    with pytest.raises(ConfigError) as info:
        load([cfg])
    reasons = info.value.reasons
    assert any(r.startswith(f"{cfg}:8: cookies.{key}: ") and message in r
               for r in reasons), reasons


@pytest.mark.parametrize(("section", "where", "message"), [
    ("{require: true}", "6: cookies.require", "require: true needs secret_file"),
    ("{enabled: false, require: true, secret_file: SECRET}", "6: cookies.require",
     "require: true with enabled: false"),
    ("{enable: true}", "6: cookies.enable", "unknown key 'enable' (allowed: enabled, "
                                            "secret_file, require)"),
    ("{require: yes please}", "6: cookies.require", "expected true or false"),
    ("[1]", "6: cookies", "expected a mapping"),
])
def test_bad_cookies_sections(tmp_path: Path, section: str, where: str, message: str) -> None:
    path = secret_file(tmp_path, "ab" * 16)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(MINIMAL + "cookies: " + section.replace("SECRET", str(path)) + "\n")
    with pytest.raises(ConfigError) as info:
        load([cfg])
    reasons = info.value.reasons
    assert any(r.startswith(f"{cfg}:{where}: ") and message in r for r in reasons), reasons


def test_cookies_given_twice(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    one.write_text(MINIMAL + "cookies: {enabled: true}\n")
    two.write_text("cookies: {enabled: false}\n")
    with pytest.raises(ConfigError) as info:
        load([one, two])
    reasons = info.value.reasons
    assert any(r.startswith(f"{two}:1: cookies: cookies is given twice (first at {one}:6")
               for r in reasons), reasons


def test_replies_remembered_within_a_second_stay_right_and_bounded() -> None:
    """``Cookies.reply`` remembers its answer for the second it was made in:
    the same within it, worked out again the next second (a cookie of the
    previous secret is renewed either way), and a flood of new cookies
    holds at most ``RECENT_MAX`` answers."""
    cookies = Cookies((SECRET, OLD_SECRET))
    client, at = os.urandom(8), 2 * 10**9
    old = client + server_cookie(OLD_SECRET, client, client_ip("192.0.2.1"), at)
    first = cookies.reply(old, "192.0.2.1", at)
    assert first == cookies.reply(old, "192.0.2.1", at) and first[1]
    assert first[0] != old  # renewed with the current secret
    later = cookies.reply(old, "192.0.2.1", at + 1)
    assert later[1] and later[0] == client + server_cookie(SECRET, client,
                                                          client_ip("192.0.2.1"), at + 1)
    assert cookies.reply(old, "192.0.2.1", at + LIFETIME_S + 1)[1] is False  # expired
    assert cookies.reply(old, "192.0.2.9", at)[1] is False  # another address
    for _ in range(RECENT_MAX + 10):
        cookies.reply(os.urandom(8), "192.0.2.1", at)
    assert len(cookies._recent) <= RECENT_MAX
