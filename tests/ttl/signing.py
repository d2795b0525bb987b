"""Keys and zone signing for the signed delegation lab, with the tools an
operator uses: ``ldns-keygen``, ``ldns-key2ds``, ``ldns-signzone`` (Debian
``ldnsutils``) and ``gslb dnssec keygen`` / ``gslb dnssec ds``.

Key basenames are BIND style, ``DIR/K<zone>.+<alg>+<tag>`` (``.key`` holds
the DNSKEY RR, ``.private`` the private key, mode 600). Every function runs
its tool to completion (a few milliseconds each) and raises
``subprocess.CalledProcessError`` with the tool's output when it fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.ttl import lab

LDNS_TOOLS = ("ldns-keygen", "ldns-key2ds", "ldns-signzone")
TOOL_TIMEOUT_S = 30.0
"""Seconds a signing tool may take."""


def missing_tools() -> str | None:
    """Why the signed lab cannot run (a tool missing), or None."""
    for tool in LDNS_TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install -y ldnsutils)"
    return None


def _run(argv: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return done.stdout


def ldns_keygen(zone: str, out: Path) -> Path:
    """A new ECDSAP256SHA256 key with the SEP bit (flags 257, a CSK) for
    ``zone`` in ``out``; returns its basename path."""
    out.mkdir(parents=True, exist_ok=True)
    name = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone.rstrip(".") + "."],
                cwd=out).strip()
    (out / f"{name}.ds").unlink(missing_ok=True)  # we make DS with ldns-key2ds
    return out / name


def gslb_keygen(zone: str, out: Path) -> Path:
    """``gslb dnssec keygen --zone ZONE --out OUT``; returns the basename
    path it prints."""
    printed = _run([sys.executable, "-m", "gslb", "dnssec", "keygen", "--zone",
                    zone.rstrip("."), "--out", str(out)]).strip()
    return Path(printed.splitlines()[-1])


def ldns_ds(key: Path) -> str:
    """The SHA-256 DS RDATA (``"TAG ALG 2 HEX"``) of the key ``key``."""
    line = _run(["ldns-key2ds", "-n", "-2", f"{key}.key"]).split()
    return " ".join(line[-4:])


def gslb_ds(zone: str, config: Path) -> list[str]:
    """The DS RDATA texts ``gslb dnssec ds --zone ZONE --config CONFIG``
    prints (one per key of the zone), each ``"TAG ALG 2 HEX"``."""
    out = _run([sys.executable, "-m", "gslb", "dnssec", "ds", "--zone", zone.rstrip("."),
                "--config", str(config)])
    return [" ".join(line.split()[-4:]) for line in out.splitlines() if " DS " in line]


def dnskey_rr(key: Path) -> str:
    """The DNSKEY RR line of ``key`` (its ``.key`` file, comments dropped):
    what a trust-anchor file holds."""
    lines = [line.split(";")[0].strip() for line in Path(f"{key}.key").read_text().splitlines()]
    return "\n".join(line for line in lines if line) + "\n"


def sign_zone(text: str, origin: str, keys: list[Path], out: Path) -> Path:
    """Write ``text`` (a zone file) to ``out`` and sign it with ``keys``
    (``ldns-signzone``, NSEC, RFC 4035): signatures valid from an hour ago
    for 30 days. Returns the signed file's path (``out`` + ``.signed``)."""
    out.write_text(text)
    now = int(time.time())
    _run(["ldns-signzone", "-o", origin, "-i", str(now - 3600), "-e", str(now + 30 * 86400),
          "-f", f"{out}.signed", str(out), *(str(key) for key in keys)])
    return Path(f"{out}.signed")


@dataclass
class SignedZones:
    """The signed lab's zone files and NSD configs in ``workdir``:
    ``root_key``, ``parent_key`` (``example.test.``), ``child_key``
    (``lab.SECURE_CHILD``) basenames; ``anchor`` the trust-anchor file (the
    root's DNSKEY); ``secure_ds`` the signed child's DS RDATA texts;
    ``serial`` and ``gslb_ds`` of the parent zone as last signed;
    ``nsd_confs`` (``parent.conf`` for ``lab.SIGNED_PARENT``,
    ``child.conf`` for ``lab.CHILD``) with the zone each answers SOA for."""

    workdir: Path
    root_key: Path
    parent_key: Path
    child_key: Path
    anchor: Path
    secure_ds: list[str]
    serial: int = 0
    gslb_ds: list[str] = field(default_factory=list)
    nsd_confs: list[tuple[Path, str, str]] = field(default_factory=list)

    def sign_parent(self, gslb_ds: list[str]) -> None:
        """Sign ``example.test.`` again, with the next serial, holding
        ``gslb_ds`` (DS RDATA texts; empty: an insecure delegation)."""
        self.serial += 1
        self.gslb_ds = list(gslb_ds)
        sign_zone(lab.signed_parent_zone(self.serial, self.gslb_ds), "example.test.",
                  [self.parent_key], self.workdir / "example.test.zone")


def write_signed_zones(workdir: Path) -> SignedZones:
    """Make the root's, the parent's and the signed child's keys in
    ``workdir/keys``, write and sign their zones (the parent without DS
    for gslb) and the two NSD configs; returns what it wrote."""
    keys = workdir / "keys"
    root_key = ldns_keygen(".", keys)
    zones = SignedZones(workdir, root_key, ldns_keygen("example.test.", keys),
                        ldns_keygen(lab.SECURE_CHILD, keys), workdir / "root.key", [])
    zones.secure_ds = [ldns_ds(zones.child_key)]
    zones.anchor.write_text(dnskey_rr(root_key))
    sign_zone(lab.signed_root_zone(1, [ldns_ds(zones.parent_key)]), ".", [root_key],
              workdir / "root.zone")
    zones.sign_parent([])
    (workdir / "insecure.zone").write_text(lab.child_zone(lab.INSECURE_CHILD))
    sign_zone(lab.child_zone(lab.SECURE_CHILD), lab.SECURE_CHILD, [zones.child_key],
              workdir / "secure.zone")
    for conf, address, served in (
            ("parent.conf", lab.SIGNED_PARENT, {".": "root.zone.signed",
                                                "example.test.": "example.test.zone.signed"}),
            ("child.conf", lab.CHILD, {lab.INSECURE_CHILD: "insecure.zone",
                                       lab.SECURE_CHILD: "secure.zone.signed"})):
        (workdir / conf).write_text(lab.signed_nsd_conf(workdir, address, served))
        zones.nsd_confs.append((workdir / conf, address, next(iter(served))))
    return zones


START_SH = """\
#!/bin/sh
# Run the signed delegation lab in the foreground (as root); Ctrl-C stops it all.
cd "$(dirname "$0")"
nsd -d -c parent.conf & pids="$!"
nsd -d -c child.conf & pids="$pids $!"
{python} -m gslb serve --config gslb.yaml --listen {ns1}:53 --listen {ns2}:53 \\
  --geoip {mmdb} --no-admin & pids="$pids $!"
unbound -d -c unbound.conf & pids="$pids $!"
trap 'kill $pids 2>/dev/null' INT TERM
wait
"""


def main(argv: list[str]) -> int:
    """``python -m tests.ttl.signing DIR``: write the signed lab into DIR
    (keys, signed zones, NSD, gslb and validating unbound configs, the
    parent holding the DS ``gslb dnssec ds`` prints) and ``start.sh``;
    exit status 2 on bad usage, 1 when a tool is missing."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m tests.ttl.signing DIR\n")
        return 2
    if reason := missing_tools():
        sys.stderr.write(reason + "\n")
        return 1
    workdir = Path(argv[0]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    zones = write_signed_zones(workdir)
    key = gslb_keygen(lab.ZONE, workdir / "gslb-keys")
    config = workdir / "gslb.yaml"
    config.write_text(lab.signed_gslb_yaml([(str(key), "active")], zones.secure_ds))
    zones.sign_parent(gslb_ds(lab.ZONE, config))
    lab.write_signed_resolver(workdir, zones.anchor)
    (workdir / "start.sh").write_text(START_SH.format(
        python=sys.executable, ns1=lab.GSLB_NS[0], ns2=lab.GSLB_NS[1], mmdb=lab.MMDB))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
