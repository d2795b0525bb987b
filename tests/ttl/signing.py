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
from pathlib import Path

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
