#!/usr/bin/env bash
# Try to build llama.cpp's llama-server from the llama.cpp copy vendored in the
# llama-cpp-python sdist (the version harness pins), within a CPU budget.
#   bench/build_llama_server.sh SDIST.tar.gz WORKDIR [SECONDS]
# Prints the binary's path on success. Optional: tests/test_remote.py uses a stub for the
# native API; with a binary, run it as  llama-server -m MODEL --port P -c 1024 -t 1  and point
# `harness generate --backend llama-server+http://127.0.0.1:P` at it.
# Measured on the 2-core dev machine (shared, -j1, nice 19): 600 s of CPU got through ~60% of the
# steps (ggml, llama, part of mtmd; common and the server itself still to go), so a full build
# needs roughly 15-20 CPU minutes. Re-running the script resumes where it stopped.
set -euo pipefail
sdist=${1:?sdist .tar.gz}; work=${2:?work dir}; budget=${3:-600}
mkdir -p "$work"
src="$work/src"
if [ ! -d "$src" ]; then
    mkdir -p "$src"
    tar xzf "$sdist" -C "$src" --strip-components=3 --wildcards '*/vendor/llama.cpp/*'
fi
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DGGML_NATIVE=ON \
      -DBUILD_SHARED_LIBS=OFF > "$work/configure.log" 2>&1
start=$(date +%s)
timeout "$budget" nice -n 19 cmake --build "$work/build" --target llama-server -j "${CMAKE_BUILD_PARALLEL_LEVEL:-1}" > "$work/build.log" 2>&1 \
    || { echo "not built within ${budget}s (see $work/build.log; $(grep -c '\.o$\|Building' "$work/build.log") steps done)"; exit 1; }
echo "built in $(( $(date +%s) - start ))s: $work/build/bin/llama-server"
