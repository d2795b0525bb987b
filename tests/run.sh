#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages when
# missing, the virtualenv with the test extras) and runs ruff and pytest.
# Extra arguments go to pytest, e.g. `bash tests/run.sh -k ecs -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
GSLB_EXTRAS=test bash deploy/setup.sh dnsutils tor-geoipdb redis-server
.venv/bin/ruff check gslb tests
.venv/bin/python -m pytest "$@"
