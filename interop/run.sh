#!/usr/bin/env bash
# Runs the Python interop client's tests: the spec's test vectors, then the
# client against a real `alp serve` on loopback.
#
#   interop/run.sh                 # uses target/debug/alp
#   ALP_BIN=path/to/alp interop/run.sh
#
# The virtualenv (default target/interop-venv, or $INTEROP_VENV) is created
# on first use and reused while requirements.txt is unchanged.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
INTEROP="$ROOT/interop"
VENV=${INTEROP_VENV:-"$ROOT/target/interop-venv"}
ALP_BIN=${ALP_BIN:-"$ROOT/target/debug/alp"}
if [ ! -x "$ALP_BIN" ]; then
    echo "interop/run.sh: no alp binary at $ALP_BIN (build it with 'cargo build', or set ALP_BIN)" >&2
    exit 1
fi
ALP_BIN=$(cd "$(dirname "$ALP_BIN")" && pwd)/$(basename "$ALP_BIN")
export ALP_BIN

if ! command -v python3 >/dev/null 2>&1; then
    echo "interop/run.sh: python3 is needed (3.11 or later)" >&2
    exit 1
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "interop/run.sh: python3 is $(python3 -V 2>&1); aioquic 1.7.2 and blake3 need 3.11 or later" >&2
    exit 1
fi

# Debian ships the part of `python3 -m venv` that installs pip (ensurepip)
# in the separate package python3-venv.
make_venv() {
    rm -rf "$VENV"
    python3 -m venv "$VENV"
}

STAMP="$VENV/.requirements.sha256"
WANT=$(sha256sum "$INTEROP/requirements.txt" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "creating $VENV..." >&2
    if ! make_venv >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "installing python3-venv..." >&2
            apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null
            make_venv
        else
            echo "interop/run.sh: 'python3 -m venv' fails: install python3-venv (e.g. 'sudo apt-get install python3-venv')" >&2
            exit 1
        fi
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$INTEROP/requirements.txt"
    echo "$WANT" >"$STAMP"
fi

cd "$INTEROP"
"$VENV/bin/python" -m unittest -v tests.test_vectors tests.test_against_alp
