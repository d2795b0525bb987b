#!/usr/bin/env bash
# Shared set-up for a fresh Debian machine (used by deploy/quickstart.sh and
# tests/run.sh): installs the missing Debian packages named as arguments,
# makes the virtualenv .venv and installs gslb into it with the extras in
# $GSLB_EXTRAS (e.g. "test"; none when unset).
# Usage: [GSLB_EXTRAS=test] bash deploy/setup.sh [debian-package ...]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
target="."
[ -z "${GSLB_EXTRAS:-}" ] || target=".[${GSLB_EXTRAS}]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$target"
