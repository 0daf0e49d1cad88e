#!/usr/bin/env bash
# Local model speed beside llama.cpp, in one run on this machine:
# builds llama.cpp's `llama-bench` from the PyPI source package of
# llama-cpp-python (which vendors llama.cpp) into target/llama.cpp, once,
# then runs `cargo bench -p alp-llm --bench speed` with LLAMA_BENCH set, so
# both measure the same GGUF with the same threads.
#
#   scripts/bench-llm.sh            # not part of CI: the build takes minutes
#
# Needs a C++ compiler and cmake (installed from the Debian packages if
# missing, when run as root), pip, and the model (scripts/fetch-model.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/llama.cpp
bin="$root/build/bin/llama-bench"
if [ ! -x "$bin" ]; then
    if ! command -v cmake >/dev/null; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq && apt-get install -y -qq cmake >/dev/null
        else
            echo "bench-llm: cmake is missing (apt-get install cmake)" >&2
            exit 1
        fi
    fi
    mkdir -p "$root"
    if ! ls "$root"/llama_cpp_python-*.tar.gz >/dev/null 2>&1; then
        # The source package as published; no build of the Python wheel.
        pip download --quiet --no-deps --no-binary llama-cpp-python llama-cpp-python -d "$root"
    fi
    sdist=$(ls "$root"/llama_cpp_python-*.tar.gz | head -1)
    rm -rf "$root/src" && mkdir -p "$root/src"
    tar -xzf "$sdist" -C "$root/src" --strip-components=1
    # Compiler output goes to a log of its own; its tail is shown on failure.
    log="$root/build.log"
    if ! { cmake -S "$root/src/vendor/llama.cpp" -B "$root/build" -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        && cmake --build "$root/build" --target llama-bench -j "$(nproc)"; } >"$log" 2>&1; then
        tail -20 "$log" >&2
        echo "bench-llm: building llama-bench failed (whole log: $log)" >&2
        exit 1
    fi
    echo "bench-llm: built $bin from $(basename "$sdist")" >&2
fi
model=${ALP_TEST_MODEL:-$(scripts/fetch-model.sh --dir target/models)}
ALP_TEST_MODEL="$model" LLAMA_BENCH="$PWD/$bin" cargo bench --locked -p alp-llm --bench speed
