#!/usr/bin/env bash
# Runs the whole test suite: doc tests, then every unit, property and
# end-to-end test in the workspace through cargo-nextest, including the
# ones that run the real default model (fetched first), then the Python
# interop client against the node.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest..." >&2
    cargo install --locked cargo-nextest
fi

# Installs Debian package $1 when this runs as root with apt-get; fails
# (for the caller to say what is missing) otherwise.
install_debian() {
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    echo "installing $1..." >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq "$1" >/dev/null
}

# bubblewrap, the sandbox the shell tool runs peers' programs in: the
# tests of the sandbox need it (Debian package `bubblewrap`).
if ! command -v bwrap >/dev/null 2>&1 && ! install_debian bubblewrap; then
    echo "test.sh: the sandbox tests need bubblewrap (bwrap): install it, e.g. 'sudo apt-get install bubblewrap'" >&2
    exit 1
fi

# man(1), which the e2e tests render `alp man` with (Debian package
# `man-db`).
if ! command -v man >/dev/null 2>&1 && ! install_debian man-db; then
    echo "test.sh: the manual-page test needs man(1): install it, e.g. 'sudo apt-get install man-db'" >&2
    exit 1
fi

# Chromium, the headless browser the dashboard's page is tested in
# (Debian package `chromium`).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! install_debian chromium; then
    echo "test.sh: NOTICE: no chromium; the dashboard's browser test will be skipped ('sudo apt-get install chromium')" >&2
fi

# nftables, for the NAT tests in network namespaces (Debian package
# `nftables`; they run as root and are skipped, saying so, without it).
if ! command -v nft >/dev/null 2>&1 && ! install_debian nftables; then
    echo "test.sh: NOTICE: no nft; the NAT tests will be skipped ('sudo apt-get install nftables')" >&2
fi

# Protocol stays sans-I/O (its dependencies and its code), and the crate
# graph has no forbidden edge.
./scripts/check-arch.sh

# The real default model, for the tests that run it (fetched once, cached
# under target/ and checked by SHA-256 every run).
ALP_TEST_MODEL=$(./scripts/fetch-model.sh --dir "$PWD/target/models")
export ALP_TEST_MODEL

# Real MCP servers (npm) and a real MCP client (PyPI) for the MCP tests.
eval "$(./scripts/mcp-fixtures.sh)"

cargo test --locked --workspace --doc
cargo nextest run --locked --workspace --no-fail-fast

# The second implementation of the protocol (interop/: Python, written
# from docs/PROTOCOL.md alone) against the binary just built: the spec's
# test vectors, then a real `alp serve`.
cargo build --locked --bin alp
ALP_BIN="$PWD/target/debug/alp" interop/run.sh
