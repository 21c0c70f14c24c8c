#!/usr/bin/env bash
# Builds and runs every test: the release suite, the same suite under AddressSanitizer +
# UndefinedBehaviorSanitizer, and a consumer project built against the installed package.
# Usage: scripts/test.sh [--quick]   (--quick: release suite only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
jobs=$(nproc)
step() { printf '\n=== %s (%ss elapsed)\n' "$1" "$SECONDS"; }

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=ON \
  -DCMAKE_INSTALL_PREFIX="$PWD/build/install" >/dev/null
cmake --build build -j "$jobs"
step "release tests"
ctest --test-dir build --output-on-failure -j 1

if [[ "${1:-}" == "--quick" ]]; then exit 0; fi

step "ASan + UBSan build"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DADNN_SANITIZE=address,undefined -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=OFF -DADNN_BUILD_EXAMPLES=ON >/dev/null
cmake --build build-asan -j "$jobs" --target adnn_tests mlp_train
step "ASan + UBSan tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j 1

step "install + consumer project"
cmake --install build >/dev/null
rm -rf build/consumer
cmake -S tests/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
cmake --build build/consumer
./build/consumer/adnn_consumer

step "all tests passed"
