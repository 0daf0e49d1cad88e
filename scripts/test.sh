#!/usr/bin/env bash
# Runs the whole test suite: doc tests, then every unit, property and
# end-to-end test in the workspace through cargo-nextest, including the
# ones that run the real default model (fetched first).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest..." >&2
    cargo install --locked cargo-nextest
fi

# The real default model, for the tests that run it (fetched once, cached
# under target/ and checked by SHA-256 every run).
ALP_TEST_MODEL=$(./scripts/fetch-model.sh --dir "$PWD/target/models")
export ALP_TEST_MODEL

cargo test --locked --workspace --doc
cargo nextest run --locked --workspace --no-fail-fast
