"""Online DNSSEC signing (issue 17): keys and their files, RRSIGs that
dnspython's validator accepts for every kind of answer (static, GSLB with
ECS, CNAME chains, wildcards, NODATA, Compact Denial NXDOMAIN, referrals
with and without DS), the signature cache (each distinct RRset signed once
per period), signing periods and the answer cache, and the config errors.

The end-to-end proof through a validating resolver is
``tests/ttl/test_dnssec.py``; here dnspython (``dns.dnssec.validate``) is
the validator, and its signer (deterministic ECDSA, RFC 6979, and Ed25519)
the reference our RRSIGs are compared with byte for byte."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import dns.dnssec
import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from gslb.authority import Authority, respond
from gslb.cli import main
from gslb.config.load import load
from gslb.config.secretfile import SecretFileError, read_secret_text
from gslb.dns import dnssec
from gslb.dns.signer import SigningPolicy, ZoneSigner
from gslb.errors import ConfigError
from tests.unit.fakes import Health

ZONE = "gslb.example.test."
NOW = 1_800_000_000.0
"""The clock of every signer here (2027-01-15), seconds since the epoch."""

CONFIG = """
origins:
  london: {{ipv4: [192.0.2.11], ipv6: ["2001:db8::11"], location: {{country: GB}}}}
  stockholm: {{ipv4: [192.0.2.12], location: {{country: SE}}}}
  virginia: {{ipv4: [192.0.2.13], location: {{country: US}}}}
pools:
  web:
    policy: geo
    origins: [london, stockholm, virginia]
    countries: {{GB: london, SE: stockholm}}
    default: virginia
  v4only: {{policy: failover, tiers: [[stockholm], [virginia]]}}
  split: {{policy: weighted, origins: [london, virginia]}}
  eu: {{policy: all, origins: [london, stockholm]}}
  tree: {{policy: failover, tiers: [eu, virginia]}}
zones:
  {zone}
    ttl: 300
    dnssec:
      keys: [{keys}]
      {extra}
    records:
      "@":
        SOA: ns1 hostmaster 1 3600 600 86400 30
        NS: [ns1, ns2]
        TXT: '"signed zone"'
      ns1: {{A: 127.0.0.1}}
      ns2: {{A: 127.0.0.2}}
      www: {{gslb: web}}
      v4: {{gslb: {{pool: v4only, ttl: 20}}}}
      split: {{gslb: split}}
      tree: {{gslb: tree}}
      static:
        A: [192.0.2.10, 192.0.2.20]
        MX: 10 Mail.Example.Test.
      alias: {{CNAME: www}}
      chain: {{CNAME: alias}}
      dangling: {{CNAME: gone}}
      _sip._udp: {{SRV: 10 5 5060 static}}
      "*.wild": {{A: 192.0.2.99}}
      "*.gwild": {{gslb: web}}
      insecure: {{NS: ns.insecure}}
      ns.insecure: {{A: 192.0.2.53}}
      secure: {{NS: ns.insecure, DS: "{ds}"}}
"""

#: A DS RDATA for the ``secure`` child (its own key: any well-formed DS).
CHILD_DS = "12345 13 2 " + "AB" * 32


def make_key(folder: Path, algorithm: int = 13, zone: str = ZONE) -> str:
    """A new key pair written into ``folder``; its basename's file name."""
    return dnssec.write_key(dnssec.SigningKey.generate(zone, algorithm), folder).name


def write(folder: Path, keys: str, extra: str = "", zone: str = ZONE) -> Path:
    """The config with ``keys`` (YAML flow items) written into ``folder``."""
    path = folder / "zone.yaml"
    path.write_text(textwrap.dedent(CONFIG).format(
        zone=zone.rstrip(".") + ":", keys=keys, extra=extra, ds=CHILD_DS))
    return path


def authority(path: Path, health: Health | None = None, cache_entries: int = 1024,
              now: float | list[float] = NOW) -> Authority:
    """An Authority of the config at ``path``, its signers' clock at ``now``."""
    return Authority(load([path]), health or Health(), cache_entries=cache_entries,
                     clock=(lambda: now[0]) if isinstance(now, list) else lambda: now)


@pytest.fixture
def signed(tmp_path: Path) -> Authority:
    return authority(write(tmp_path, f"{{file: {make_key(tmp_path)}}}"))


def ask(auth: Authority, qname: str, qtype: str = "A", *, do: bool = True,
        ecs: str | None = None, who: str = "198.51.100.1", flags: int = 0,
        udp: bool = False) -> dns.message.Message:
    options = [dns.edns.ECSOption(ecs.split("/")[0], int(ecs.split("/")[1]))] if ecs else []
    q = dns.message.make_query(qname, qtype, want_dnssec=do, options=options,
                               ednsflags=flags | (dns.flags.DO if do else 0))
    wire = respond(auth, q.to_wire(), who, udp)
    assert wire is not None
    return dns.message.from_wire(wire)


def key_rrset(auth: Authority) -> dns.rrset.RRset:
    """The zone's DNSKEY RRset, as served."""
    m = ask(auth, ZONE, "DNSKEY")
    return m.find_rrset(m.answer, dns.name.from_text(ZONE), dns.rdataclass.IN,
                        dns.rdatatype.DNSKEY)


def validated(auth: Authority, m: dns.message.Message) -> set[tuple[str, str]]:
    """Every RRset of ``m`` checked: each one but a delegation's NS and the
    glue must have an RRSIG of the zone that dnspython validates (at
    ``NOW``); the set of ``(owner, type)`` validated."""
    keys = {dns.name.from_text(ZONE): key_rrset(auth)}
    seen = set()
    sections = [(m.answer, True), (m.authority, True),
                (m.additional, not m.flags & dns.flags.AA or bool(m.answer))]
    for section, authoritative in sections:
        sigs = [r for r in section if r.rdtype == dns.rdatatype.RRSIG]
        for rrset in section:
            if rrset.rdtype == dns.rdatatype.RRSIG:
                continue
            delegation = (rrset.rdtype == dns.rdatatype.NS
                          and rrset.name != dns.name.from_text(ZONE))
            mine = [s for s in sigs if s.name == rrset.name and s.covers == rrset.rdtype]
            if delegation or not authoritative or not m.flags & dns.flags.AA:
                if delegation:
                    assert not mine, f"a delegation's NS is not signed: {rrset}"
                continue
            assert mine, f"no RRSIG over {rrset}"
            dns.dnssec.validate(rrset, mine[0], keys, now=NOW)
            for sig in mine[0]:
                assert sig.original_ttl == rrset.ttl == mine[0].ttl  # RFC 4034 section 3
            seen.add((rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype)))
    return seen


def nsec_of(m: dns.message.Message) -> dns.rrset.RRset:
    found = [r for r in m.authority if r.rdtype == dns.rdatatype.NSEC]
    assert len(found) == 1, m
    return found[0]


def bitmap(rrset: dns.rrset.RRset) -> set[str]:
    return set(rrset[0].to_text().split()[1:])


# ---------------------------------------------------------------------------
# keys
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", [13, 15])
def test_key_tag_dnskey_and_ds_agree_with_dnspython(algorithm: int) -> None:
    key = dnssec.SigningKey.generate(ZONE, algorithm)
    rd = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey, 0,
                             len(key.dnskey))
    assert dns.dnssec.key_id(rd) == key.tag
    assert rd.to_text().replace(" ", "") == key.dnskey_text().replace(" ", "")
    ds = dns.dnssec.make_ds(ZONE, rd, "SHA256")
    assert ds.to_wire() == key.ds()
    assert ds.to_text().upper() == key.ds_text().upper()


@pytest.mark.parametrize("algorithm", [13, 15])
def test_rrsig_is_byte_for_byte_dnspythons(algorithm: int) -> None:
    """Both signers are deterministic (RFC 6979 ECDSA, Ed25519): the same
    RRset, key and times give the same RRSIG octets, names of mixed case in
    the RDATA included (canonical form, RFC 4034 section 6.2)."""
    key = dnssec.SigningKey.generate(ZONE, algorithm)
    dnskey = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.DNSKEY, key.dnskey, 0,
                                 len(key.dnskey))
    for owner, rtype, texts in [
            ("www." + ZONE, "A", ["192.0.2.2", "192.0.2.1", "192.0.2.1"]),
            ("static." + ZONE, "MX", ["20 B.Example.", "10 a.example."]),
            ("*.wild." + ZONE, "TXT", ['"x"']),
            (ZONE, "SOA", ["ns1.GSLB.example.test. h.example. 1 2 3 4 5"])]:
        rrset = dns.rrset.from_text(owner, 30, "IN", rtype, *texts)
        theirs = dns.dnssec.sign(rrset, key.private, dns.name.from_text(ZONE), dnskey,
                                 inception=int(NOW) - 3600, expiration=int(NOW) + 86400)
        code = dns.rdatatype.from_text(rtype)
        ours = dnssec.rrsig(key, owner, code, 30, [rd.to_wire() for rd in rrset],
                            int(NOW) - 3600, int(NOW) + 86400)
        assert ours == theirs.to_wire(), rtype


def test_key_files_round_trip_and_refuse_open_private_files(tmp_path: Path) -> None:
    key = dnssec.SigningKey.generate(ZONE, 15)
    base = dnssec.write_key(key, tmp_path)
    assert os.stat(f"{base}.private").st_mode & 0o777 == 0o600
    for name in (base, f"{base}.key", f"{base}.private"):
        again = dnssec.read_key(name, ZONE, read_secret_text)
        assert (again.tag, again.public, again.flags) == (key.tag, key.public, 257)
    with pytest.raises(dnssec.KeyFileError, match=r"not example\.org"):
        dnssec.read_key(base, "example.org.", read_secret_text)
    os.chmod(f"{base}.private", 0o640)
    with pytest.raises(SecretFileError, match=r"mode 0640.*chmod 600"):
        dnssec.read_key(base, ZONE, read_secret_text)
    with pytest.raises(FileExistsError):
        dnssec.write_key(key, tmp_path)


def test_private_key_of_another_pair_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    a = dnssec.write_key(dnssec.SigningKey.generate(ZONE), tmp_path / "a")
    b = dnssec.write_key(dnssec.SigningKey.generate(ZONE), tmp_path)
    os.replace(f"{b}.private", f"{a}.private")
    with pytest.raises(dnssec.KeyFileError, match="does not hold the private key"):
        dnssec.read_key(a, ZONE, read_secret_text)


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v ldns-keygen"],
                                   capture_output=True).returncode != 0,
                    reason="ldns-keygen (Debian ldnsutils) is not installed")
@pytest.mark.parametrize("algorithm", ["ECDSAP256SHA256", "ED25519"])
def test_keys_made_by_ldns_keygen_load(tmp_path: Path, algorithm: str) -> None:
    made = subprocess.run(["ldns-keygen", "-a", algorithm, "-k", ZONE], cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout.strip()
    os.chmod(tmp_path / f"{made}.private", 0o600)
    key = dnssec.read_key(tmp_path / made, ZONE, read_secret_text)
    ds = subprocess.run(["ldns-key2ds", "-n", "-2", f"{made}.key"], cwd=tmp_path,
                        capture_output=True, text=True, check=True).stdout.split()
    assert " ".join(ds[-4:]).upper() == key.ds_text().upper()


@pytest.mark.usefixtures("cli_logging")
def test_cli_keygen_then_ds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dnssec", "keygen", "--zone", "gslb.example.test", "--out",
                 str(tmp_path / "keys")]) == 0
    base = capsys.readouterr().out.strip()
    key = dnssec.read_key(base, ZONE, read_secret_text)
    assert main(["dnssec", "ds", "--zone", ZONE, "--key", base]) == 0
    assert capsys.readouterr().out == f"{ZONE} 3600 IN DS {key.ds_text()}\n"
    path = write(tmp_path, f"{{file: {Path(base).relative_to(tmp_path)}}}")
    assert main(["dnssec", "ds", "--zone", ZONE, "--config", str(path)]) == 0
    assert capsys.readouterr().out == f"{ZONE} 3600 IN DS {key.ds_text()}\n"
    assert main(["dnssec", "ds", "--zone", "other.test", "--config", str(path)]) == 1
    assert "has no dnssec section" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# every kind of answer validates
# ---------------------------------------------------------------------------

def test_apex_rrsets_validate(signed: Authority) -> None:
    for qtype in ("SOA", "NS", "TXT", "DNSKEY", "CDS", "CDNSKEY"):
        m = ask(signed, ZONE, qtype)
        assert m.rcode() == dns.rcode.NOERROR and m.flags & dns.flags.AA
        assert (ZONE, qtype) in validated(signed, m), qtype
    key = next(iter(signed.signers.values())).active[0]
    m = ask(signed, ZONE, "CDS")
    assert m.answer[0][0].to_text().upper() == key.ds_text().upper()  # RFC 7344 section 3.1
    # the NS answer's addresses (additional section, authoritative) are signed too
    addresses = {("ns1." + ZONE, "A"), ("ns2." + ZONE, "A")}
    assert addresses <= validated(signed, ask(signed, ZONE, "NS"))


@pytest.mark.parametrize(("ecs", "address"), [("81.2.69.0/24", "192.0.2.11"),
                                              ("89.160.20.0/24", "192.0.2.12"),
                                              (None, "192.0.2.13")])
def test_geo_answers_with_ecs_validate(signed: Authority, ecs: str | None,
                                       address: str) -> None:
    from gslb.geo import GeoDB
    signed.locator = GeoDB(Path(__file__).parents[1] / "data" / "geoip" / "fake-country.mmdb"
                           ).locate
    m = ask(signed, "www." + ZONE, ecs=ecs)
    assert [rd.to_text() for rd in m.answer[0]] == [address]
    assert ("www." + ZONE, "A") in validated(signed, m)


@pytest.mark.parametrize("name", ["v4", "split", "tree", "static"])
def test_pool_and_static_answers_validate(signed: Authority, name: str) -> None:
    for qtype in ("A", "AAAA") if name != "static" else ("A", "MX"):
        m = ask(signed, f"{name}.{ZONE}", qtype)
        assert m.rcode() == dns.rcode.NOERROR
        checked = validated(signed, m)
        if m.answer:
            assert (f"{name}.{ZONE}", qtype) in checked
        else:  # NODATA: v4 has no IPv6 origin
            assert qtype == "AAAA" and name == "v4"
            nsec = nsec_of(m)
            assert bitmap(nsec) == {"A", "RRSIG", "NSEC"}  # the pool's family, not AAAA


def test_cname_chain_validates_hop_by_hop(signed: Authority) -> None:
    m = ask(signed, "chain." + ZONE)
    checked = validated(signed, m)
    assert {("chain." + ZONE, "CNAME"), ("alias." + ZONE, "CNAME"), ("www." + ZONE, "A")} \
        <= checked


def test_compact_denial_nxdomain(signed: Authority) -> None:
    """RFC 9824: NOERROR with one NSEC at the name (next ``\\000.name``,
    types RRSIG NSEC NXNAME); NXDOMAIN and the CO flag for a query with CO
    (section 4); the NSEC's TTL the negative TTL (RFC 9077)."""
    for qname in ("nope." + ZONE, "a.b.c." + ZONE):
        m = ask(signed, qname)
        assert m.rcode() == dns.rcode.NOERROR and not m.answer
        nsec = nsec_of(m)
        assert nsec.name.to_text() == qname and nsec.ttl == 30
        assert nsec[0].next.to_text() == "\\000." + qname
        assert bitmap(nsec) == {"RRSIG", "NSEC", "NXNAME"}
        assert {(qname, "NSEC"), (ZONE, "SOA")} <= validated(signed, m)
        co = ask(signed, qname, flags=0x4000)
        assert co.rcode() == dns.rcode.NXDOMAIN and co.ednsflags & 0x4000
    # a CNAME to a name that does not exist: the NSEC is the target's
    m = ask(signed, "dangling." + ZONE)
    assert nsec_of(m).name.to_text() == "gone." + ZONE
    assert ("dangling." + ZONE, "CNAME") in validated(signed, m)


@pytest.mark.parametrize(("qname", "qtype", "types"), [
    ("static." + ZONE, "TXT", {"A", "MX"}),
    ("www." + ZONE, "TXT", {"A", "AAAA"}),            # GSLB: both families
    ("_udp." + ZONE, "A", set()),                      # empty non-terminal
    ("x.wild." + ZONE, "TXT", {"A"}),                  # the wildcard's types
    (ZONE, "MX", {"SOA", "NS", "TXT", "DNSKEY", "CDS", "CDNSKEY"}),
])
def test_nodata_bitmap_matches_the_name(signed: Authority, qname: str, qtype: str,
                                        types: set[str]) -> None:
    m = ask(signed, qname, qtype)
    assert m.rcode() == dns.rcode.NOERROR and not m.answer
    nsec = nsec_of(m)
    assert nsec.name.to_text() == qname
    assert bitmap(nsec) == types | {"RRSIG", "NSEC"}
    assert (qname, "NSEC") in validated(signed, m)


def test_all_down_fallback_answer_is_signed(tmp_path: Path) -> None:
    """Every origin of ``v4`` down: the pool's fallback (``all``) still
    answers, and that answer is signed like any other."""
    auth = authority(write(tmp_path, f"{{file: {make_key(tmp_path)}}}"),
                     Health(stockholm=False, virginia=False))
    m = ask(auth, "v4." + ZONE)
    assert m.answer and {r.to_text() for r in m.answer[0]} <= {"192.0.2.12", "192.0.2.13"}
    assert ("v4." + ZONE, "A") in validated(auth, m)


def test_nsec_asked_for_is_the_answer(signed: Authority) -> None:
    m = ask(signed, "static." + ZONE, "NSEC")
    assert m.rcode() == dns.rcode.NOERROR and not m.authority
    nsec = m.find_rrset(m.answer, dns.name.from_text("static." + ZONE), dns.rdataclass.IN,
                        dns.rdatatype.NSEC)
    assert bitmap(nsec) == {"A", "MX", "RRSIG", "NSEC"}
    assert ("static." + ZONE, "NSEC") in validated(signed, m)


def test_wildcard_answers_are_signed_as_the_name(signed: Authority) -> None:
    for qname in ("x.wild." + ZONE, "deep.y.gwild." + ZONE):
        m = ask(signed, qname)
        assert m.answer and (qname, "A") in validated(signed, m)
        sig = next(r for r in m.answer if r.rdtype == dns.rdatatype.RRSIG)[0]
        assert sig.labels == len(dns.name.from_text(qname)) - 1  # no wildcard proof needed


def test_referrals_carry_ds_or_its_absence(signed: Authority) -> None:
    m = ask(signed, "www.insecure." + ZONE)
    assert not m.flags & dns.flags.AA and m.authority
    nsec = nsec_of(m)
    assert nsec.name.to_text() == "insecure." + ZONE and bitmap(nsec) == {"NS", "RRSIG",
                                                                          "NSEC"}
    keys = {dns.name.from_text(ZONE): key_rrset(signed)}
    sig = [r for r in m.authority if r.rdtype == dns.rdatatype.RRSIG]
    assert len(sig) == 1 and sig[0].covers == dns.rdatatype.NSEC
    dns.dnssec.validate(nsec, sig[0], keys, now=NOW)
    assert m.additional and not [r for r in m.additional if r.rdtype == dns.rdatatype.RRSIG]
    m = ask(signed, "www.secure." + ZONE)
    ds = [r for r in m.authority if r.rdtype == dns.rdatatype.DS]
    sig = [r for r in m.authority if r.rdtype == dns.rdatatype.RRSIG]
    assert ds and [s.covers for s in sig] == [dns.rdatatype.DS]
    dns.dnssec.validate(ds[0], sig[0], keys, now=NOW)
    # DS asked at the cut: the parent's answer, signed (RFC 4035 section 3.1.4.1)
    m = ask(signed, "secure." + ZONE, "DS")
    assert m.flags & dns.flags.AA and ("secure." + ZONE, "DS") in validated(signed, m)
    m = ask(signed, "insecure." + ZONE, "DS")
    assert bitmap(nsec_of(m)) == {"NS", "RRSIG", "NSEC"}
    assert ("insecure." + ZONE, "NSEC") in validated(signed, m)


def test_do_clear_gets_no_dnssec_records(signed: Authority) -> None:
    for qname, qtype in [("www." + ZONE, "A"), ("nope." + ZONE, "A"),
                         ("static." + ZONE, "TXT"), ("a.insecure." + ZONE, "A")]:
        m = ask(signed, qname, qtype, do=False)
        types = {r.rdtype for s in (m.answer, m.authority, m.additional) for r in s}
        assert not types & {dns.rdatatype.RRSIG, dns.rdatatype.NSEC, dns.rdatatype.DS}
    assert ask(signed, "nope." + ZONE, do=False).rcode() == dns.rcode.NXDOMAIN
    assert ask(signed, ZONE, "DNSKEY", do=False).answer  # the keys are data of the zone


def test_cd_bit_is_copied_from_the_query(signed: Authority) -> None:
    """RFC 4035 section 3.1.6 (genreport's ``docd``), on cache hits too."""
    for _ in range(2):
        for cd in (0, dns.flags.CD):
            q = dns.message.make_query("www." + ZONE, "A", want_dnssec=True)
            q.flags |= cd
            wire = respond(signed, q.to_wire(), "198.51.100.1", True)
            assert wire is not None
            assert dns.message.from_wire(wire).flags & dns.flags.CD == cd


def test_ed25519_zone_validates(tmp_path: Path) -> None:
    auth = authority(write(tmp_path, f"{{file: {make_key(tmp_path, 15)}}}"))
    for qname, qtype in [("www." + ZONE, "A"), ("nope." + ZONE, "A"), (ZONE, "DNSKEY")]:
        validated(auth, ask(auth, qname, qtype))


# ---------------------------------------------------------------------------
# signature cache, periods, answer cache
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cache_entries", [0, 1024])
def test_each_distinct_rrset_is_signed_once_per_period(tmp_path: Path,
                                                       cache_entries: int) -> None:
    """300 queries from 100 ECS subnets over 3 countries: 3 distinct
    answers of www, so 3 signatures, with the answer cache on or off."""
    from gslb.geo import GeoDB
    auth = authority(write(tmp_path, f"{{file: {make_key(tmp_path)}}}"),
                     cache_entries=cache_entries)
    auth.locator = GeoDB(Path(__file__).parents[1] / "data" / "geoip" / "fake-country.mmdb"
                         ).locate
    signer = auth.signers[ZONE]
    answers = set()
    for i in range(100):
        for prefix in ("81.2.69", "89.160.20", "216.160.83"):
            m = ask(auth, "www." + ZONE, ecs=f"{prefix}.{i}/32")
            answers.add(m.answer[0][0].to_text())
    assert len(answers) == 3 and signer.signatures == 3
    validated(auth, m)


def test_new_period_resigns_and_empties_the_answer_cache(tmp_path: Path) -> None:
    clock = [NOW]
    auth = authority(write(tmp_path, f"{{file: {make_key(tmp_path)}}}",
                           "validity: 86400\n      refresh: 3600\n      inception_skew: 600"),
                     now=clock)
    signer = auth.signers[ZONE]
    start = int(NOW // 3600) * 3600

    def sig_of(m: dns.message.Message) -> object:
        return next(r for r in m.answer if r.rdtype == dns.rdatatype.RRSIG)[0]

    first = sig_of(ask(auth, "static." + ZONE))
    assert (first.inception, first.expiration) == (start - 600, start + 86400)
    hits = auth.cache.hits if auth.cache else 0
    assert sig_of(ask(auth, "static." + ZONE)) == first
    assert auth.cache is not None and auth.cache.hits == hits + 1
    clock[0] = start + 3600 + 1  # the next period
    later = sig_of(ask(auth, "static." + ZONE))
    assert (later.inception, later.expiration) == (start + 3600 - 600, start + 3600 + 86400)
    assert signer.expiration == start + 3600 + 86400


def test_health_change_is_signed_afresh(tmp_path: Path) -> None:
    health = Health()
    auth = authority(write(tmp_path, f"{{file: {make_key(tmp_path)}}}"), health)
    assert [r.to_text() for r in ask(auth, "v4." + ZONE).answer[0]] == ["192.0.2.12"]
    health.states["stockholm"] = False
    health.generation += 1
    m = ask(auth, "v4." + ZONE)
    assert [r.to_text() for r in m.answer[0]] == ["192.0.2.13"]
    assert ("v4." + ZONE, "A") in validated(auth, m)


def test_rollover_keys_sign_as_their_state_says(tmp_path: Path) -> None:
    """A published key is in DNSKEY/CDS/CDNSKEY and signs those, not the
    rest (pre-publish and retire, docs/dnssec.md "Key rollover")."""
    old, new = make_key(tmp_path), make_key(tmp_path)
    auth = authority(write(tmp_path, f"{{file: {old}}}, {{file: {new}, state: published}}"))
    tags = {int(n.rsplit("+", 1)[1]) for n in (old, new)}
    m = ask(auth, ZONE, "DNSKEY")
    assert {dns.dnssec.key_id(rd) for rd in m.answer[0]} == tags
    assert {s.key_tag for r in m.answer if r.rdtype == dns.rdatatype.RRSIG for s in r} == tags
    assert len(ask(auth, ZONE, "CDS").answer[0]) == 2
    m = ask(auth, "www." + ZONE)
    assert {s.key_tag for r in m.answer if r.rdtype == dns.rdatatype.RRSIG for s in r} == {
        int(old.rsplit("+", 1)[1])}
    validated(auth, m)


def test_signed_answers_fit_or_truncate_over_udp(signed: Authority) -> None:
    q = dns.message.make_query(ZONE, "NS", want_dnssec=True, payload=512)
    wire = respond(signed, q.to_wire(), "198.51.100.1", True)
    assert wire is not None and len(wire) <= 512
    m = dns.message.from_wire(wire)
    assert m.flags & dns.flags.TC or validated(signed, m)


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(("keys", "extra", "message"), [
    ("{file: missing}", "", "cannot read"),
    ("{file: KEY, state: standby}", "", "state must be one of active, published"),
    ("{file: KEY, state: published}", "", "at least one key must be active"),
    ("{file: KEY}", "refresh: 86400\n      validity: 100000", "at most half of validity"),
    ("{file: KEY}", "validity: 60", "validity"),
    ("{file: KEY}, {file: KEY}", "", "listed twice"),
    ("{file: KEY}, {file: ED}", "", "same algorithm"),
    ("{file: KEY, sign: yes}", "", "unknown key 'sign'"),
    ("{file: OTHER}", "", "the key is for other.test., not gslb.example.test."),
])
def test_bad_dnssec_config_names_file_line_and_key(tmp_path: Path, keys: str, extra: str,
                                                   message: str) -> None:
    key, ed = make_key(tmp_path), make_key(tmp_path, 15)
    other = make_key(tmp_path, zone="other.test.")
    path = write(tmp_path, keys.replace("KEY", key).replace("ED", ed).replace("OTHER", other),
                 extra)
    with pytest.raises(ConfigError) as err:
        load([path])
    text = "\n".join(err.value.reasons)
    assert message in text and f"{path}:" in text and "dnssec" in text, text


def test_group_readable_private_key_is_refused_at_load(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    os.chmod(tmp_path / f"{key}.private", 0o644)
    with pytest.raises(ConfigError) as err:
        load([write(tmp_path, f"{{file: {key}}}")])
    assert "chmod 600" in "\n".join(err.value.reasons)


def test_signer_refuses_without_an_active_key() -> None:
    with pytest.raises(ValueError):
        ZoneSigner(ZONE, ())
    with pytest.raises(ValueError):
        SigningPolicy(validity=100, refresh=200)


# ---------------------------------------------------------------------------
# every answer, whatever is asked
# ---------------------------------------------------------------------------

NAMES = ["", "www.", "v4.", "split.", "tree.", "static.", "alias.", "chain.", "dangling.",
         "_udp.", "_sip._udp.", "a.wild.", "b.c.gwild.", "insecure.", "x.insecure.", "secure.",
         "ns1.", "nope.", "x.nope.", "*.wild."]


QTYPES = [1, 2, 5, 6, 15, 16, 28, 33, 43, 46, 47, 48, 59, 60, 99, 255, 65280]


def test_every_signed_answer_validates(signed: Authority) -> None:
    """Every name of the zone (and some that do not exist) asked for every
    type, with and without the CO flag, in either case: the response
    decodes, every RRset an authoritative answer carries validates (a
    referral's NS and glue excepted), and a negative answer carries
    exactly one NSEC, at the name denied, without the type asked."""
    for i, (name, qtype) in enumerate((n, t) for n in NAMES for t in QTYPES):
        qname = (name + ZONE).upper() if i % 3 == 0 else name + ZONE
        m = ask(signed, qname, dns.rdatatype.to_text(qtype), flags=0x4000 if i % 2 else 0)
        assert m.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), (qname, qtype)
        validated(signed, m)
        if not m.answer and m.flags & dns.flags.AA:
            asked = dns.rdatatype.to_text(qtype)
            assert asked not in bitmap(nsec_of(m)) or qtype == 46, (qname, qtype)
