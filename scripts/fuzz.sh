#!/usr/bin/env bash
# Runs one fuzz target for a bounded time on the stable toolchain, with
# libFuzzer's coverage instrumentation (the flags cargo-fuzz uses, minus the
# nightly-only sanitizer). Usage: scripts/fuzz.sh TARGET [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
secs=${2:-60}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation out of build scripts.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --locked --release --bin "$target" --target "$host" --target-dir target/instrumented
mkdir -p "corpus/$target"
"target/instrumented/$host/release/$target" -max_total_time="$secs" "corpus/$target"
