"""Instructions counted by callgrind, for the ``*_cost`` benchmarks: a
figure that does not move with the machine's load (docs/performance.md)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path


def instructions_of(code: str) -> int:
    """Total instructions (callgrind ``Ir``) of a fresh Python child running
    ``code`` under ``valgrind --tool=callgrind``. A benchmark runs two loop
    counts and takes the difference, so start-up cancels out. Raises
    ``subprocess.CalledProcessError`` when the child fails."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "callgrind.out"
        proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                               sys.executable, "-c", code], capture_output=True, text=True,
                              check=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    assert found, proc.stderr[-2000:]
    return int(found.group(1))
