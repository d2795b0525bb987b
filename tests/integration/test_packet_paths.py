"""The compiled packet path (``gslb.dns._packets``) against the pure-Python
listener, byte for byte: the same randomized queries (names, case, IDs,
types, EDNS, ECS, NSID, COOKIE, DO, payload sizes that truncate, garbage),
sent in bursts to one nameserver on each path, get the same responses in
the same order, and both count them alike (queries by type and rcode,
answers by origin, fallbacks). The names are the zone's (a weighted draw,
whose stored outcomes both paths draw from one seeded source, among them)
and one outside it."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rdatatype
import pytest

from gslb.dns.cookies import server_cookie
from tests.conftest import require_compiled_path
from tests.integration.dnsutil import BASE_ZONE, Running, start, write_config

ZONE = """
origins:
  a: {ipv4: [192.0.2.1], ipv6: ["2001:db8::1"]}
  b: {ipv4: [192.0.2.2]}
  c: {ipv4: [192.0.2.3], weight: 3}
  m: {ipv4: [198.51.100.1, 198.51.100.2, 198.51.100.3]}
pools:
  both: {policy: all, origins: [a, b]}
  heavy: {policy: weighted, origins: [a, c]}
  cyc: {policy: all, origins: [a, b, c], order: cyclic}
  shuf: {policy: all, origins: [a, b, c, m], order: random}
  near: {policy: geo, origins: [a, b, m], networks: {81.2.0.0/16: m, 10.0.0.0/8: b}, default: a}
""" + BASE_ZONE.format(minimum=30) + """
      www: {gslb: {pool: both, ttl: 20}}
      heavy: {gslb: heavy}
      cyc: {gslb: cyc}
      shuf: {gslb: shuf}
      near: {gslb: near}
      multi: {gslb: {pool: near, ttl: 10}}
      static:
        A: {ttl: 60, values: [192.0.2.10, 192.0.2.11]}
        AAAA: "2001:db8::10"
        TXT: [{big}]
      alias: {CNAME: static}
""".replace("{big}", ", ".join(f'"{"x" * 200} {i}"' for i in range(6)))

ORIGIN = "gslb.example.test."
NAMES = ["www", "heavy", "heavy", "cyc", "shuf", "near", "multi", "static", "alias", "nope", "@",
         "a.b.static", "elsewhere.test."]
"""Owner names asked for (``heavy``, a weighted draw, twice as often);
the last is outside the zone (REFUSED)."""
TYPES = ["A", "AAAA", "TXT", "SOA", "NS", "MX", "ANY"]
CLIENTS = [bytes(range(i, i + 8)) for i in range(4)]
SUBNETS = [("81.2.69.0", 24), ("81.2.70.0", 24), ("10.1.0.0", 16), ("192.0.2.0", 24),
           ("2001:db8::", 48), ("81.2.69.0", 0)]
#: A fixed clock for both servers' DNS Cookies: their Server Cookies carry it.
COOKIE_NOW = 1_800_000_000.0
BURSTS, BURST = 100, 40


#: Client-IP of the test's queries (RFC 9018 section 4: it is hashed).
CLIENT_IP = bytes([127, 0, 0, 1])
#: Ages (seconds before COOKIE_NOW) of the valid-looking Server Cookies
#: sent: fresh, due for a refresh, expired, and ahead of the clock.
COOKIE_AGES = [0, 100, 1000, 2000, 3000, 4000, -100, -400]


def cookie_option(rng: random.Random, secrets: tuple[bytes, ...]) -> bytes:
    """COOKIE option data: a Client Cookie alone, with a random Server
    Cookie, or with one made by one of ``secrets`` (the current or the
    previous) at one of ``COOKIE_AGES``."""
    client, roll = rng.choice(CLIENTS), rng.random()
    if roll < 0.4 or not secrets:
        return client
    if roll < 0.6:
        return client + rng.randbytes(16)
    return client + server_cookie(rng.choice(secrets), client, CLIENT_IP,
                                  int(COOKIE_NOW) - rng.choice(COOKIE_AGES))


def random_query(rng: random.Random, secrets: tuple[bytes, ...] = ()) -> bytes:
    """One query, or now and then a message no server answers the same way
    twice by accident: short, a response, a bad label. Its COOKIE options'
    Server Cookies are made with ``secrets`` (:func:`cookie_option`)."""
    roll = rng.random()
    if roll < 0.02:
        return rng.randbytes(rng.randrange(1, 12))
    if roll < 0.04:
        return rng.randbytes(rng.randrange(12, 60))
    name = rng.choice(NAMES)
    qname = ORIGIN if name == "@" else name if name.endswith(".") else f"{name}.{ORIGIN}"
    qname = "".join(c.upper() if rng.random() < 0.3 else c for c in qname)
    edns = rng.random() < 0.85
    options: list[dns.edns.Option] = []
    if edns and rng.random() < 0.7:
        options.append(dns.edns.ECSOption(*rng.choice(SUBNETS)))
    if edns and rng.random() < 0.2:
        options.insert(rng.randrange(len(options) + 1), dns.edns.GenericOption(3, b""))
    if edns and rng.random() < 0.3:
        options.insert(rng.randrange(len(options) + 1),
                       dns.edns.GenericOption(10, cookie_option(rng, secrets)))
    q = dns.message.make_query(qname, rng.choice(TYPES), use_edns=0 if edns else False,
                               payload=rng.choice([512, 1232, 4096]), options=options,
                               want_dnssec=edns and rng.random() < 0.2)
    q.id = rng.randrange(65536)
    if rng.random() < 0.3:
        q.flags &= ~dns.flags.RD
    return q.to_wire()


async def exchange(server: Running, burst: list[bytes], sentinel: bytes) -> list[bytes]:
    """Send ``burst`` then ``sentinel`` from one socket; every response
    until the sentinel's (its ID), in the order they came."""
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect((server.host, server.port))
        for data in [*burst, sentinel]:
            sock.send(data)
        got: list[bytes] = []
        async with asyncio.timeout(5):
            while True:
                reply = await loop.sock_recv(sock, 65535)
                if reply[:2] == sentinel[:2] and reply[12:].startswith(sentinel[12:20]):
                    return got
                got.append(reply)


SECRETS = (bytes(range(16)), bytes(range(100, 116)))
"""The current and the previous secret of the ``require`` run."""
COOKIE_CONFIGS = {
    "default": "",  # a random secret per process: the two servers share it here
    "require": "cookies: {secret_file: SECRET, require: true}\n",
    "off": "cookies: {enabled: false}\n",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("cookie_config", list(COOKIE_CONFIGS))
async def test_both_paths_answer_and_count_byte_for_byte_alike(tmp_path, monkeypatch,
                                                              cookie_config):
    require_compiled_path()
    secret = tmp_path / "cookie.secret"
    secret.write_text("".join(s.hex() + "\n" for s in SECRETS))
    secret.chmod(0o600)
    path = write_config(tmp_path, ZONE + COOKIE_CONFIGS[cookie_config].replace(
        "SECRET", str(secret)))
    servers: dict[str, Running] = {}
    for name, flag in (("compiled", "0"), ("python", "1")):
        monkeypatch.setenv("GSLB_NO_EXT", flag)
        servers[name] = await start(path, seed=7, server_id="ns1.test")
        assert servers[name].service.server.packet_path == name
        cookies = servers[name].service.answering.authority.cookies
        if cookies is not None:
            cookies.clock = lambda: COOKIE_NOW
    cookies = servers["python"].service.answering.authority.cookies
    secrets = () if cookies is None else cookies.secrets
    try:
        rng = random.Random(19)
        sentinel = struct.pack(">H", 0xFFFF) + dns.message.make_query(
            "sentinel.example.test.", "A", use_edns=False).to_wire()[2:]
        answered = with_answers = 0
        heavy: set[str] = set()  # the addresses answered for heavy: both outcomes
        for _ in range(BURSTS):
            burst = [random_query(rng, secrets) for _ in range(BURST)]
            burst = [q if q[:2] != b"\xff\xff" else b"\xff\xfe" + q[2:] for q in burst]
            got = {name: await exchange(s, burst, sentinel) for name, s in servers.items()}
            assert got["compiled"] == got["python"]
            answered += len(got["compiled"])
            with_answers += sum(1 for r in got["compiled"] if len(r) > 12 and r[6:8] != b"\0\0")
            for r in got["compiled"]:
                if r[12:18].lower() == b"\x05heavy" and r[6:8] != b"\0\0":
                    heavy |= {rd.to_text() for rrset in dns.message.from_wire(r).answer
                              for rd in rrset if rrset.rdtype == dns.rdatatype.A}
        assert answered > BURSTS * BURST * 0.9
        assert with_answers > answered // 4  # the zone's names answered (BADCOOKIE aside)
        assert heavy == {"192.0.2.1", "192.0.2.3"}
        stats = {name: s.service.stats for name, s in servers.items()}
        for counted in ("queries", "answers", "fallbacks"):
            assert getattr(stats["compiled"], counted) == getattr(stats["python"], counted)
        caches = {name: s.service.answering.authority.cache for name, s in servers.items()}
        assert caches["compiled"].hits == caches["python"].hits > BURSTS * BURST // 5
        assert caches["compiled"].misses == caches["python"].misses
    finally:
        for s in servers.values():
            await s.service.stop()
