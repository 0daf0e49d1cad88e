#!/usr/bin/env bash
# Adding a file to the store against `b3sum` hashing the same file, in the
# same run, both on every core, the file in the page cache: `alp blob add
# --reference` (hash in place, keep the tree), `alp blob add` (copy in the
# kernel, then hash the copy), `b3sum` (the baseline). Prints each run and
# the medians. b3sum is built into target/ if it is not on PATH.
# Usage: scripts/bench-add.sh [MiB, default 1024] [runs, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
runs=${2:-5}
cargo build --locked --release --bin alp >&2
alp=$PWD/target/release/alp
b3sum=$(command -v b3sum || true)
if [ -z "$b3sum" ]; then
    [ -x target/b3sum/bin/b3sum ] || cargo install --locked --quiet b3sum --root target/b3sum >&2
    b3sum=$PWD/target/b3sum/bin/b3sum
fi
dir=$(mktemp -d "${ALP_BENCH_DIR:-/var/tmp}/alp-bench-add.XXXXXX")
trap 'rm -rf "$dir"' EXIT
head -c "$((mib << 20))" /dev/urandom > "$dir/file"
cat "$dir/file" > /dev/null
"$alp" --home "$dir/home" init > /dev/null 2>&1
hash=$("$b3sum" --no-names "$dir/file")
secs() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
declare -a B R C
for i in $(seq "$runs"); do
    B+=("$(secs "$b3sum" --no-names "$dir/file")")
    R+=("$(secs "$alp" --home "$dir/home" blob add --reference "$dir/file")")
    "$alp" --home "$dir/home" blob rm "$hash" > /dev/null 2>&1
    C+=("$(secs "$alp" --home "$dir/home" blob add "$dir/file")")
    "$alp" --home "$dir/home" blob rm "$hash" > /dev/null 2>&1
    echo "run $i: b3sum ${B[-1]} s, add --reference ${R[-1]} s, add (copy) ${C[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b=$(median "${B[@]}"); r=$(median "${R[@]}"); c=$(median "${C[@]}")
echo "median of $runs, $mib MiB: b3sum $b s; add --reference $r s ($(echo "scale=2; $b / $r" | bc)x b3sum's speed); add (copy) $c s ($(echo "scale=2; $b / $c" | bc)x)"
