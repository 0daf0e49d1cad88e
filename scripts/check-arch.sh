#!/usr/bin/env bash
# Checks the architecture rules that the compiler does not:
#  - alp-protocol is sans-I/O: no async runtime or socket crate among its
#    dependencies, and no thread, global state, clock, file or socket in
#    its code (tests aside);
#  - the crate graph has no edge the design forbids.
# Run by .ci/run; prints every violation, exits 1 if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
complain() {
    echo "check-arch: $*" >&2
    fail=1
}

# 1. protocol's dependencies: nothing that does I/O or runs tasks.
deps=$(cargo tree --locked -p alp-protocol -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
for banned in tokio quinn mio socket2 async-std smol reqwest; do
    if grep -qx "$banned" <<<"$deps"; then
        complain "alp-protocol depends on $banned (it must do no I/O)"
    fi
done

# 2. protocol's code, without its test modules: no threads, no global
#    mutable state, no clock, no files, no sockets.
forbidden='std::thread|thread::spawn|thread_local!|static +[A-Za-z_0-9]+ *: *[^=]*(Mutex|RwLock|OnceLock|OnceCell|LazyLock|Lazy<|Atomic|RefCell|Cell<)|static mut |Instant::now|SystemTime::now|std::fs|File::|UdpSocket|TcpStream|TcpListener|std::env::'
while IFS= read -r file; do
    # Everything from the first #[cfg(test)] (or #![cfg(test)]) on is test code.
    hits=$(awk '/^#!?\[cfg\(test\)\]/{exit} {print FILENAME":"FNR": "$0}' "$file" | grep -E "$forbidden" || true)
    if [ -n "$hits" ]; then
        complain "alp-protocol must stay pure (time, randomness and keys are passed in):"
        echo "$hits" >&2
    fi
done < <(find protocol/src -name '*.rs' ! -name 'tests.rs')

# 2b. The workgroup crate is pure too, but for its store (the log on disk).
while IFS= read -r file; do
    hits=$(awk '/^#!?\[cfg\(test\)\]/{exit} {print FILENAME":"FNR": "$0}' "$file" | grep -E "$forbidden" || true)
    if [ -n "$hits" ]; then
        complain "alp-workgroup must stay pure outside store.rs (time and keys are passed in):"
        echo "$hits" >&2
    fi
done < <(find workgroup/src -name '*.rs' ! -name 'tests.rs' ! -name 'store.rs' ! -path '*/store/*')

# 3. The crate graph: what each crate must never depend on (normal deps).
forbid_edge() { # crate, dependency, why
    if cargo tree --locked -p "$1" -e normal --prefix none --format '{p}' | awk '{print $1}' | grep -qx "$2"; then
        complain "$1 depends on $2: $3"
    fi
}
if [ -d agent ] && [ -d link ]; then
    forbid_edge alp-agent alp-link "agent defines the traits node implements with the link"
    forbid_edge alp-link alp-agent "link carries requests; node joins it to agent work"
    for dep in tokio alp-link alp-agent alp-profiles; do
        forbid_edge alp-workgroup "$dep" "the workgroup log and fold are pure; node wires them to the link"
    done
    forbid_edge alp-mcp alp-link "MCP servers are local tools; peers are node's business"
    forbid_edge alp-agent alp-mcp "agent knows tools only by its Tool trait; alp-mcp implements it"
    for lib in alp-protocol alp-blobstore alp-profiles alp-link alp-agent alp-workgroup alp-mcp; do
        forbid_edge "$lib" alp-node "alp-node is the binary that wires the libraries"
    done
fi

if [ "$fail" -ne 0 ]; then
    exit 1
fi
echo "check-arch: ok" >&2
