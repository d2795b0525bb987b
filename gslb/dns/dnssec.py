"""DNSSEC records and keys: what online signing is built from.

* :class:`SigningKey`: one zone key (algorithm 13, ECDSAP256SHA256, RFC
  6605; or 15, Ed25519, RFC 8080), its DNSKEY RDATA (RFC 4034 section 2),
  key tag (Appendix B) and DS RDATA (section 5, SHA-256 digest of RFC
  4509); the private key is a ``cryptography`` object, never our own
  arithmetic.
* Key files in BIND's format (what ``dnssec-keygen`` and ``ldns-keygen``
  write, so keys move between tools): ``K<zone>.+<alg>+<tag>.key`` (the
  DNSKEY RR) and ``.private`` (``Private-key-format: v1.3``), read by the
  caller's reader (the config refuses one its group or others may read:
  :mod:`gslb.config.secretfile`).
* :func:`rrsig`: the RRSIG of an RRset (RFC 4034 section 3, RFC 4035
  section 2.2), over the canonical form of section 6.
* :func:`nsec_rdata`, :func:`type_bitmap`: NSEC RDATA (RFC 4034 section
  4), for Compact Denial of Existence (RFC 9824).

Nothing here keeps state or reads a clock: :mod:`gslb.dns.signer` does.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

#: RR types of DNSSEC (RFC 4034 sections 2-5; CDS, CDNSKEY: RFC 7344
#: section 3; NXNAME: RFC 9824 section 3.5, a pseudo-type only ever in an
#: NSEC type bitmap).
QTYPE_DS, QTYPE_RRSIG, QTYPE_NSEC, QTYPE_DNSKEY = 43, 46, 47, 48
QTYPE_CDS, QTYPE_CDNSKEY, QTYPE_NXNAME = 59, 60, 128

#: The algorithms gslb signs with (RFC 8624 section 3.1: both MUST be
#: implemented by validators; 13 RECOMMENDED for signing).
ECDSAP256SHA256, ED25519 = 13, 15
ALGORITHMS = {ECDSAP256SHA256: "ECDSAP256SHA256", ED25519: "ED25519"}
#: DNSKEY flags: Zone Key (bit 7) and Secure Entry Point (bit 15), RFC
#: 4034 section 2.1.1. A key with both (257) is what the parent's DS
#: points at; gslb makes combined signing keys (CSK) of that kind.
FLAG_ZONE, FLAG_SEP = 0x0100, 0x0001
CSK_FLAGS = FLAG_ZONE | FLAG_SEP
#: DS digest type SHA-256 (RFC 4509 section 2.1).
DIGEST_SHA256 = 2

#: Types whose RDATA holds domain names lower-cased in the canonical form
#: (RFC 4034 section 6.2 item 3, NSEC taken out by RFC 6840 section 5.1).
_NAMED_TYPES = frozenset({2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 15, 17, 18, 21, 24, 26, 33, 35,
                          36, 39, 46})

def _ecdsa() -> ec.ECDSA:
    """ECDSA with SHA-256, deterministic (RFC 6979) when this OpenSSL can
    (3.2 and newer), else with random nonces."""
    deterministic = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    try:
        ec.generate_private_key(ec.SECP256R1()).sign(b"", deterministic)
    except Exception:  # UnsupportedAlgorithm on an older OpenSSL
        return ec.ECDSA(hashes.SHA256())
    return deterministic


_ECDSA = _ecdsa()


class KeyFileError(ValueError):
    """A key file cannot be used; the message names the file and why."""


def name_wire(name: str) -> bytes:
    """``name`` (absolute, presentation form without escapes) in wire form,
    lower-cased: the canonical form of an owner (RFC 4034 section 6.2)."""
    if name == ".":
        return b"\0"
    return b"".join(bytes((len(label),)) + label
                    for label in name.rstrip(".").lower().encode("ascii").split(b".")) + b"\0"


def label_count(name: str) -> int:
    """The RRSIG Labels field of owner ``name``: its labels, the root and a
    leading ``*`` not counted (RFC 4034 section 3.1.3)."""
    labels = name.rstrip(".").split(".") if name != "." else []
    return len(labels) - (1 if labels and labels[0] == "*" else 0)


def canonical_rdata(rtype: int, rdata: bytes) -> bytes:
    """RDATA octets in canonical form (RFC 4034 section 6.2 item 3): the
    domain names in it lower-cased, for the types that have them (through
    dnspython); other RDATA is its own canonical form."""
    if rtype not in _NAMED_TYPES:
        return rdata
    rd = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.RdataType.make(rtype), rdata,
                            0, len(rdata))
    return rd.to_digestable()


def key_tag(dnskey: bytes) -> int:
    """The key tag of DNSKEY RDATA ``dnskey`` (RFC 4034 Appendix B: the
    ones'-complement-like sum of its 16-bit words)."""
    total = 0
    for i, octet in enumerate(dnskey):
        total += octet << 8 if i % 2 == 0 else octet
    total += (total >> 16) & 0xFFFF
    return total & 0xFFFF


def type_bitmap(types: Iterable[int]) -> bytes:
    """The Type Bit Maps field of an NSEC record for ``types`` (RFC 4034
    section 4.1.2): one window block per 256 types that has any, each as
    long as its last type needs."""
    windows: dict[int, bytearray] = {}
    for code in sorted(set(types)):
        window, low = divmod(code, 256)
        bits = windows.setdefault(window, bytearray(32))
        bits[low // 8] |= 0x80 >> (low % 8)
    out = bytearray()
    for window, bits in sorted(windows.items()):
        length = max(i for i, b in enumerate(bits) if b) + 1
        out += bytes((window, length)) + bits[:length]
    return bytes(out)


def nsec_rdata(next_wire: bytes, types: Iterable[int]) -> bytes:
    """NSEC RDATA (RFC 4034 section 4.1): the Next Domain Name, in wire
    form (``next_wire``, lower case, as RFC 6840 section 5.1 has it sent),
    then the type bitmap of ``types``."""
    return next_wire + type_bitmap(types)


def compact_next_wire(name: str) -> bytes:
    """The Next Domain Name of a Compact Denial NSEC at ``name``, in wire
    form, lower case: its immediate successor in canonical order,
    ``\\000.name`` (RFC 9824 section 3.1, RFC 4470 section 2.1)."""
    return b"\x01\x00" + name_wire(name)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One zone key: ``zone`` (absolute, lower case), ``flags`` (257 for a
    KSK or CSK, 256 for a ZSK), ``algorithm`` (13 or 15), ``public`` (the
    DNSKEY Public Key field: 64 octets x||y for 13, RFC 6605 section 4; 32
    for 15, RFC 8080 section 3), ``private`` (a ``cryptography`` private
    key), ``tag`` (RFC 4034 Appendix B) and ``dnskey`` (the DNSKEY RDATA)."""

    zone: str
    flags: int
    algorithm: int
    public: bytes
    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    tag: int
    dnskey: bytes

    @classmethod
    def of(cls, zone: str, private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
           flags: int = CSK_FLAGS) -> SigningKey:
        """The key of ``zone`` with ``private`` (P-256 or Ed25519). Raises
        ``ValueError`` for another kind of key."""
        if isinstance(private, ed25519.Ed25519PrivateKey):
            algorithm = ED25519
            public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
                private.curve, ec.SECP256R1):
            algorithm = ECDSAP256SHA256
            public = private.public_key().public_bytes(
                Encoding.X962, PublicFormat.UncompressedPoint)[1:]
        else:
            raise ValueError("only P-256 (algorithm 13) and Ed25519 (15) keys are supported")
        dnskey = struct.pack("!HBB", flags, 3, algorithm) + public
        zone = zone.lower() if zone.endswith(".") else zone.lower() + "."
        return cls(zone, flags, algorithm, public, private, key_tag(dnskey), dnskey)

    @classmethod
    def generate(cls, zone: str, algorithm: int = ECDSAP256SHA256,
                 flags: int = CSK_FLAGS) -> SigningKey:
        """A new random key for ``zone``. Raises ``ValueError`` for an
        algorithm other than 13 or 15."""
        if algorithm == ECDSAP256SHA256:
            return cls.of(zone, ec.generate_private_key(ec.SECP256R1()), flags)
        if algorithm == ED25519:
            return cls.of(zone, ed25519.Ed25519PrivateKey.generate(), flags)
        raise ValueError(f"algorithm {algorithm} is not supported (13 or 15)")

    @property
    def sep(self) -> bool:
        """Whether the key has the SEP flag: the parent's DS points at it,
        and CDS/CDNSKEY list it (RFC 7344 section 4.1)."""
        return bool(self.flags & FLAG_SEP)

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data`` as the RRSIG Signature field wants it:
        r||s, 32 octets each, for 13 (RFC 6605 section 4), deterministic
        (RFC 6979) where OpenSSL offers it, so no signature depends on a
        random number generator; the 64-octet Ed25519 signature for 15
        (RFC 8080 section 4, deterministic by design)."""
        private = self.private
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return private.sign(data)
        r, s = decode_dss_signature(private.sign(data, _ECDSA))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` (as :meth:`sign` makes it) is this key's
        over ``data``."""
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        public = self.private.public_key()
        try:
            if isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(signature, data)
            else:
                der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                           int.from_bytes(signature[32:], "big"))
                public.verify(der, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def ds(self, digest_type: int = DIGEST_SHA256) -> bytes:
        """DS RDATA for this key (RFC 4034 section 5.1.4: the digest of the
        owner name in wire form then the DNSKEY RDATA; SHA-256, RFC 4509).
        Raises ``ValueError`` for a digest type other than 2."""
        if digest_type != DIGEST_SHA256:
            raise ValueError(f"DS digest type {digest_type} is not supported (2, SHA-256)")
        digest = hashlib.sha256(name_wire(self.zone) + self.dnskey).digest()
        return struct.pack("!HBB", self.tag, self.algorithm, digest_type) + digest

    def dnskey_text(self) -> str:
        """The DNSKEY RDATA in presentation form (RFC 4034 section 2.2)."""
        return (f"{self.flags} 3 {self.algorithm} "
                f"{base64.b64encode(self.public).decode('ascii')}")

    def ds_text(self) -> str:
        """The DS RDATA in presentation form (RFC 4034 section 5.3)."""
        return ds_text(self.zone, self.dnskey)

    @property
    def basename(self) -> str:
        """The file name stem BIND gives the key: ``K<zone>.+<alg>+<tag>``."""
        return f"K{self.zone}+{self.algorithm:03d}+{self.tag:05d}"


# ---------------------------------------------------------------------------
# Key files (BIND's format)
# ---------------------------------------------------------------------------

def key_paths(path: str | Path) -> tuple[Path, Path]:
    """The ``.key`` and ``.private`` files of a key named by ``path``: the
    BIND basename (``K<zone>.+013+<tag>``) or either file."""
    text = str(path)
    for suffix in (".key", ".private"):
        if text.endswith(suffix):
            text = text[:-len(suffix)]
    return Path(text + ".key"), Path(text + ".private")


_DNSKEY_LINE = re.compile(r"^\s*(\S+)\s+(?:\d+\s+)?(?:IN\s+)?(?:\d+\s+)?DNSKEY\s+(.*)$",
                          re.IGNORECASE)


def read_public(path: str | Path, zone: str | None = None) -> tuple[str, bytes]:
    """The owner and DNSKEY RDATA of the key named by ``path`` (BIND
    basename or either file), from its ``.key`` file (comments start with
    ``;``). ``zone``: the zone it must belong to (absolute). Raises
    ``KeyFileError`` when the file cannot be read, holds no DNSKEY record
    or a malformed one, or is for another zone."""
    public_path = key_paths(path)[0]
    try:
        text = public_path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(
            f"cannot read {public_path}: {getattr(exc, 'strerror', None) or exc}") from None
    for line in text.splitlines():
        match = _DNSKEY_LINE.match(line.split(";", 1)[0])
        if match is None:
            continue
        fields = match.group(2).split()
        try:
            flags, protocol, algorithm = int(fields[0]), int(fields[1]), int(fields[2])
            public = base64.b64decode("".join(fields[3:]), validate=True)
        except (ValueError, IndexError):
            raise KeyFileError(f"{public_path}: malformed DNSKEY record") from None
        if protocol != 3:
            raise KeyFileError(f"{public_path}: DNSKEY protocol {protocol}, not 3 "
                               "(RFC 4034 section 2.1.2)")
        owner = match.group(1).lower()
        owner = owner if owner.endswith(".") else owner + "."
        if zone is not None and owner != zone.lower():
            raise KeyFileError(f"{public_path}: the key is for {owner}, not {zone}")
        return owner, struct.pack("!HBB", flags, protocol, algorithm) + public
    raise KeyFileError(f"{public_path}: no DNSKEY record")


def read_key(path: str | Path, zone: str | None,
             read_private: Callable[[Path], str]) -> SigningKey:
    """The key pair named by ``path`` (BIND basename or either file):
    :func:`read_public`, then the ``.private`` file's text through
    ``read_private`` (which refuses a file others may read:
    ``gslb.config.secretfile.read_secret_text``; its ``ValueError``
    passes through). Raises ``KeyFileError`` as :func:`read_public`, and
    when the private file is malformed, the algorithm is not 13 or 15, or
    the private key does not match the DNSKEY."""
    public_path, private_path = key_paths(path)
    owner, dnskey = read_public(path, zone)
    flags, algorithm = struct.unpack_from("!HxB", dnskey)
    if algorithm not in ALGORITHMS:
        raise KeyFileError(f"{public_path}: algorithm {algorithm} is not supported "
                           "(13 ECDSAP256SHA256 or 15 ED25519)")
    fields = {}
    for line in read_private(private_path).splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    try:
        found = int(fields.get("algorithm", "").split()[0])
        secret = base64.b64decode(fields["privatekey"], validate=True)
    except (ValueError, IndexError, KeyError):
        raise KeyFileError(f"{private_path}: not a BIND private key file "
                           "(Algorithm: and PrivateKey: lines)") from None
    if found != algorithm:
        raise KeyFileError(f"{private_path}: algorithm {found}, but the DNSKEY says {algorithm}")
    try:
        private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if algorithm == ED25519:
            private = ed25519.Ed25519PrivateKey.from_private_bytes(secret)
        else:
            private = ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise KeyFileError(f"{private_path}: bad private key: {exc}") from None
    key = SigningKey.of(owner, private, flags)
    if key.dnskey != dnskey:
        raise KeyFileError(f"{private_path} does not hold the private key of {public_path}")
    return key


def ds_text(zone: str, dnskey: bytes) -> str:
    """The DS RDATA (SHA-256, RFC 4509) of DNSKEY RDATA ``dnskey`` of
    ``zone`` (absolute) in presentation form (RFC 4034 section 5.3)."""
    digest = hashlib.sha256(name_wire(zone) + dnskey).hexdigest().upper()
    return f"{key_tag(dnskey)} {dnskey[3]} {DIGEST_SHA256} {digest}"


def write_key(key: SigningKey, folder: str | Path, now: float | None = None) -> Path:
    """Write ``key`` into ``folder`` as BIND does: ``<basename>.key``
    (mode 644) and ``<basename>.private`` (mode 600, created so: never
    readable by others, not even for a moment). Returns the basename path.
    Raises ``FileExistsError`` when either file exists, ``OSError`` when
    they cannot be written."""
    base = Path(folder) / key.basename
    public_path, private_path = key_paths(base)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    kind = "key-signing" if key.sep else "zone-signing"
    public_text = (f"; This is a {kind} key, keyid {key.tag}, for {key.zone}\n"
                   f"; Created: {stamp} (gslb dnssec keygen)\n"
                   f"{key.zone} IN DNSKEY {key.dnskey_text()}\n")
    private = key.private
    if isinstance(private, ed25519.Ed25519PrivateKey):
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat
        secret = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    else:
        secret = private.private_numbers().private_value.to_bytes(32, "big")
    private_text = ("Private-key-format: v1.3\n"
                    f"Algorithm: {key.algorithm} ({ALGORITHMS[key.algorithm]})\n"
                    f"PrivateKey: {base64.b64encode(secret).decode('ascii')}\n"
                    f"Created: {stamp}\nPublish: {stamp}\nActivate: {stamp}\n")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private_text)
    try:
        fd = os.open(public_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError:
        private_path.unlink()
        raise
    with os.fdopen(fd, "w") as handle:
        handle.write(public_text)
    return base


# ---------------------------------------------------------------------------
# RRSIG
# ---------------------------------------------------------------------------

_RRSIG_FIXED = struct.Struct("!HBBIIIH")
_RR_FIXED = struct.Struct("!HHIH")


def signed_data(owner: str, rtype: int, ttl: int, rdatas: Sequence[bytes],
                rrsig_fields: bytes, rclass: int = 1) -> bytes:
    """What an RRSIG signs (RFC 4034 section 3.1.8.1): its RDATA up to the
    signature, then each RR of the RRset in canonical form (owner lower
    case, the Original TTL, canonical RDATA) in canonical order (section
    6.3: by RDATA octets, duplicates once)."""
    head = name_wire(owner) + struct.pack("!HHI", rtype, rclass, ttl)
    rrs = sorted({canonical_rdata(rtype, rd) for rd in rdatas})
    return rrsig_fields + b"".join(head + struct.pack("!H", len(rd)) + rd for rd in rrs)


def rrsig(key: SigningKey, owner: str, rtype: int, ttl: int, rdatas: Sequence[bytes],
          inception: int, expiration: int) -> bytes:
    """The RRSIG RDATA by ``key`` over the RRset (``owner``, ``rtype``,
    TTL ``ttl`` seconds, RDATA octets ``rdatas``), valid from
    ``inception`` to ``expiration`` (seconds since the epoch, written
    modulo 2**32, RFC 4034 section 3.1.5). The Labels field counts the
    owner's labels (section 3.1.3): a name a wildcard answered is signed
    as the name itself, as online signers do (no wildcard proof needed)."""
    fields = _RRSIG_FIXED.pack(rtype, key.algorithm, label_count(owner), ttl,
                               expiration & 0xFFFFFFFF, inception & 0xFFFFFFFF,
                               key.tag) + name_wire(key.zone)
    return fields + key.sign(signed_data(owner, rtype, ttl, rdatas, fields))


__all__ = [
    "ALGORITHMS", "CSK_FLAGS", "DIGEST_SHA256", "ECDSAP256SHA256", "ED25519", "FLAG_SEP",
    "FLAG_ZONE", "QTYPE_CDNSKEY", "QTYPE_CDS", "QTYPE_DNSKEY", "QTYPE_DS", "QTYPE_NSEC",
    "QTYPE_NXNAME", "QTYPE_RRSIG", "KeyFileError", "SigningKey", "canonical_rdata",
    "compact_next_wire", "ds_text", "key_paths", "key_tag", "label_count",
    "name_wire", "nsec_rdata", "read_key", "read_public", "rrsig", "signed_data", "type_bitmap",
    "write_key",
]
