#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz) with clang under AddressSanitizer +
# UndefinedBehaviorSanitizer into build-fuzz, and runs each for SECONDS (default 30) from its
# committed seed corpus (tests/fuzz/corpus/<name>/). New inputs go to build-fuzz/corpus/<name>
# (never into the tree); a crash, sanitizer report, timeout (10 s per input) or leak stops
# the script with the reproducer saved in build-fuzz/artifacts/. Prints the executions run
# per harness. Usage: scripts/fuzz.sh [SECONDS]   (docs/testing.md: longer runs)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
[[ "$secs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] (a positive integer, got '$secs')"; exit 2; }
command -v clang++ >/dev/null || { echo "clang++ not found (scripts/setup-debian.sh installs it)"; exit 2; }
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DCMAKE_CXX_COMPILER=clang++ -DADNN_SANITIZE=address,undefined -DADNN_BUILD_FUZZERS=ON \
  -DADNN_CUDA=OFF -DADNN_CUDA_EMULATION=OFF -DADNN_BUILD_TESTS=OFF -DADNN_BUILD_BENCH=OFF \
  -DADNN_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target fuzz_safetensors fuzz_image fuzz_fer_csv fuzz_parse fuzz_config
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p build-fuzz/artifacts
for name in safetensors image fer_csv parse config; do
  mkdir -p "build-fuzz/corpus/$name"
  log="build-fuzz/fuzz_$name.log"
  # -max_len: the CSV seeds are 16 KB; the others stay small
  max_len=4096
  [[ "$name" == fer_csv ]] && max_len=20000
  if ! build-fuzz/bin/fuzz_"$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
      -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/${name}-" \
      "build-fuzz/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz_$name FAILED (log: $log, reproducer: build-fuzz/artifacts/${name}-*)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz_$name: ${runs:-?} executions in ${secs}s, no failure"
done
