#!/usr/bin/env bash
# Runs the whole test suite: doc tests, then every unit, property and
# end-to-end test in the workspace through cargo-nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest..." >&2
    cargo install --locked cargo-nextest
fi

cargo test --locked --workspace --doc
cargo nextest run --locked --workspace --no-fail-fast
