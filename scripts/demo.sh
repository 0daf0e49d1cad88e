#!/usr/bin/env bash
# Builds alp and shows what it does on this machine, offline:
#  1. two profiles working together: "personal" and "research" each get an
#     identity and run a node on 127.0.0.1; personal invites, research
#     pairs, and they ping each other over the authenticated link;
#  2. `alp chat --once` answering with the embedded default model,
#     in-process (the model is fetched once by scripts/fetch-model.sh into
#     your alp home; nothing is downloaded at run time).
# The profiles live in a throw-away home (set ALP_DEMO_HOME to keep it).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --release --bin alp
model=$(./scripts/fetch-model.sh)
alp=$PWD/target/release/alp
home=${ALP_DEMO_HOME:-$(mktemp -d)}
export ALP_HOME=$home
echo "# demo home: $home" >&2

pids=()
stop_nodes() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_nodes EXIT

# Starts `alp serve` for a profile on a free port and sets $addr to its
# address. (Not called in $(...): the pid must reach this shell's trap.)
serve() {
    local out=$home/$1.addr
    "$alp" -p "$1" serve --listen 127.0.0.1:0 >"$out" 2>"$home/$1.log" &
    pids+=($!)
    for _ in $(seq 200); do [ -s "$out" ] && break; sleep 0.05; done
    addr=$(head -1 "$out")
}

echo "personal: $("$alp" -p personal init 2>/dev/null)"
echo "research: $("$alp" -p research init 2>/dev/null)"
serve personal && echo "personal node listening on $addr"
serve research && echo "research node listening on $addr"

ticket=$("$alp" -p personal invite 2>/dev/null)
echo "personal invites: $ticket"
echo "research pairs, naming the peer: $("$alp" -p research pair "$ticket" 2>/dev/null)"

"$alp" -p research peer ping personal -c 3 -i 200ms
"$alp" -p personal peer ping research -c 3 -i 200ms
echo "peers of personal:"
"$alp" -p personal peer list

mkdir -p "$home/models" && ln -sf "$model" "$home/models/"
question="What is the capital of France?"
echo "personal asks its local model: $question"
"$alp" -p personal chat --once "$question"
