"""`python -m gslb check` on good and bad files, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
DATA = ROOT / "tests" / "data" / "zones"


def check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gslb", "check", *map(str, files)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)


def test_check_accepts_the_example_and_good_files() -> None:
    done = check(ROOT / "zones" / "example.yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok: 1 zone(s), 7 pool(s), 4 origin(s)"
    assert check(DATA / "ok-minimal.yaml").returncode == 0


def test_check_reports_every_error_with_file_and_line() -> None:
    bad = DATA / "bad-weight.yaml"
    done = check(bad)
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{bad}:5: origins.web1.weight: 0 is below 1",
        f"{bad}:6: origins.web2.weight: -2 is below 1",
        "2 error(s)",
    ]
