#!/usr/bin/env bash
# The main job on a fresh Debian machine: install gslb, build the country
# GeoIP database from Debian's tor-geoipdb if it is missing, and serve
# zones/example.yaml on 127.0.0.1:5353 (UDP and TCP). Extra arguments go to
# `gslb serve`, e.g. --listen '[::1]:5353'.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh tor-geoipdb dnsutils
.venv/bin/gslb geoip build --if-missing
exec .venv/bin/gslb serve --config zones/example.yaml "$@"
