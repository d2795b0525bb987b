#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages when
# missing, the virtualenv with the test extras) and runs ruff, mypy --strict
# (settings in pyproject.toml) and pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k ecs -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
GSLB_EXTRAS=test bash deploy/setup.sh dnsutils tor-geoipdb redis-server nsd unbound chromium \
    ldnsutils faketime prometheus
# Debian starts the packaged nsd/unbound where systemd runs; they would hold
# port 53 on every address, which the delegation lab (tests/ttl) needs. The
# tests use prometheus only for promtool: its daemon is not wanted either.
if command -v systemctl >/dev/null 2>&1; then
    for svc in nsd unbound prometheus; do
        if systemctl is-active --quiet "$svc" 2>/dev/null; then
            systemctl disable --now "$svc" >/dev/null 2>&1 || true
        fi
    done
fi
.venv/bin/ruff check gslb tests
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
