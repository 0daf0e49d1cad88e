#!/usr/bin/env bash
# Every blob benchmark in docs/BENCHMARKS.md, in one command: throughput
# against raw quinn and BLAKE3 (one process), then separate processes
# through the CLI at 1 and 4 GiB (throughput and peak RSS of each side).
# Files go to $ALP_BENCH_DIR (default /var/tmp): keep 10 GiB free there.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -p alp-link --bench blob -- "${1:-1024}"
cargo bench --locked -p alp-node --bench blob_cli -- 1024 4096
