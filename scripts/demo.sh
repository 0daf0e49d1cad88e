#!/usr/bin/env bash
# Builds alp and shows it working: two profiles ("personal" and "research")
# in a throw-away home, each with its own identity, each trusting the other.
# Set ALP_DEMO_HOME to keep the home somewhere else.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --release --bin alp
alp=target/release/alp
home=${ALP_DEMO_HOME:-$(mktemp -d)}
export ALP_HOME=$home
echo "# demo home: $home" >&2

personal=$($alp -p personal init)
research=$($alp -p research init)
$alp -p personal peer add research "$research" --addr 127.0.0.1:7118
$alp -p research peer add personal "$personal" --addr 127.0.0.1:7117

echo "personal node id: $($alp -p personal id)"
echo "research node id: $($alp -p research id)"
echo "peers of personal:"
$alp -p personal peer list
