#!/usr/bin/env bash
# Installs what the MCP end-to-end tests run, and prints two lines of
# `export` for the caller to eval:
#  - real MCP servers from the npm registry, at the versions
#    tests/mcp-servers/package-lock.json pins (needs node and npm: the
#    Debian packages nodejs and npm, installed here when missing and root);
#  - the Python `mcp` package from PyPI (tests/mcp-client/requirements.txt)
#    in a virtualenv under target/, as the real MCP client alp is served to.
# Each is reused while its pins are unchanged.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "mcp-fixtures: installing nodejs and npm..." >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq nodejs npm >/dev/null
    else
        echo "mcp-fixtures: node and npm are needed: install them, e.g. 'sudo apt-get install nodejs npm'" >&2
        exit 1
    fi
fi

servers=$ROOT/tests/mcp-servers
stamp=$servers/node_modules/.alp-lock
if ! cmp -s "$servers/package-lock.json" "$stamp" 2>/dev/null; then
    echo "mcp-fixtures: installing MCP servers from the npm registry..." >&2
    (cd "$servers" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$servers/package-lock.json" "$stamp"
fi

venv=$ROOT/target/mcp-venv
req=$ROOT/tests/mcp-client/requirements.txt
if ! cmp -s "$req" "$venv/.alp-requirements" 2>/dev/null; then
    echo "mcp-fixtures: installing the Python mcp client..." >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    cp "$req" "$venv/.alp-requirements"
fi

echo "export ALP_TEST_MCP_SERVERS=$servers/node_modules"
echo "export ALP_TEST_MCP_PYTHON=$venv/bin/python"
