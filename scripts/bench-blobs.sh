#!/usr/bin/env bash
# Every blob benchmark in docs/BENCHMARKS.md, in one command: throughput
# against raw quinn and BLAKE3 (one process), then separate processes
# through the CLI at 1 and 4 GiB (throughput and peak RSS of each side);
# put and get between two processes beside raw quinn and a ceiling probe;
# three paced senders against one; blob add against b3sum.
# Files go to $ALP_BENCH_DIR (default /var/tmp): keep 10 GiB free there.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -p alp-link --bench blob -- "${1:-1024}"
cargo bench --locked -p alp-node --bench blob_cli -- 1024 4096
cargo bench --locked -p alp-node --bench throughput -- 512 3
cargo bench --locked -p alp-node --bench multi_source -- 64 15 3
scripts/bench-add.sh 1024 5
