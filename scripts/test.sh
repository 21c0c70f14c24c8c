#!/usr/bin/env bash
# Builds and runs every test: the release suite with the CUDA kernels running under the SIMT
# emulator, the same suite under AddressSanitizer + UndefinedBehaviorSanitizer, the
# libFuzzer harnesses for 20 s each (scripts/fuzz.sh), the GPU kit's dry run
# (scripts/gpu-check.sh --dry-run, its JSON validated, scripts/gpu-results.py on it), the check that dropping any
# __syncthreads() of a kernel makes a test fail (scripts/check-barriers.sh, on the release build), the real
# kernels compiled by nvcc for sm_80/86/90 (compile only) with the sm_90 kernel resource report
# and its spill gate (scripts/kernel-report.sh) and the check that the geometry shared by the
# kernels and their CPU twins compiles to no fused multiply-add (scripts/check-contraction.sh),
# and a consumer project built
# against the installed package.
# Usage: scripts/test.sh [--quick]   (--quick: release suite only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh --tests
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# paths below the tree are hashed relative to it, and (NOHASHDIR) the build directory is not
# hashed even with -g (the ASan build), so another clone of the tree hits the same cache entries
# (a hit's debug info may then name the other clone's build directory: paths in traces only)
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
jobs=$(nproc)
step() { printf '\n=== %s (%ss elapsed)\n' "$1" "$SECONDS"; }

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=ON \
  -DADNN_CUDA=OFF -DADNN_CUDA_EMULATION=ON \
  -DCMAKE_INSTALL_PREFIX="$PWD/build/install" >/dev/null
cmake --build build -j "$jobs"
step "release tests"
ctest --test-dir build --output-on-failure -j 1

if [[ "${1:-}" == "--quick" ]]; then exit 0; fi

step "GPU kit dry run: scripts/gpu-check.sh --dry-run on the emulated device, tiny sizes"
kit_out=$(mktemp -d)
bash scripts/gpu-check.sh --dry-run "$kit_out" --bin-dir build/bin
python3 -m json.tool "$kit_out/summary.json" > /dev/null
python3 - "$kit_out/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
names = [x["name"] for x in s["steps"]]
assert names == ["device", "tests", "sanitizer", "kernels", "e2e", "nano"], names
bad = [x["name"] for x in s["steps"] if x["status"] not in ("ok", "skipped")]
assert not bad, bad
assert s["steps"][0]["results"]["hbm"]["copy_checked"] is True
assert s["steps"][0]["results"]["hbm"]["gemm_checked"] is True
g16 = s["steps"][0]["results"]["hbm"]["bf16_gemms"]
assert g16 and all(g["checked"] is True for g in g16), g16
assert s["steps"][1]["results"]["blocking"]["failed"] == 0
print("gpu-check dry run: " + ", ".join(f"{x['name']} {x['status']} {x['seconds']} s" for x in s["steps"]))
PY
tar -tzf "$kit_out/logs.tar.gz" > /dev/null
python3 scripts/gpu-results.py "$kit_out" --docs "$kit_out/docs" --name dry-run > /dev/null
test -s "$kit_out/docs/dry-run.md" && test -s "$kit_out/docs/dry-run-bandwidth.svg"
rm -rf "$kit_out"

step "ASan + UBSan build"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g" \
  -DADNN_SANITIZE=address,undefined -DADNN_CUDA=OFF -DADNN_CUDA_EMULATION=ON \
  -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=OFF -DADNN_BUILD_EXAMPLES=ON >/dev/null
cmake --build build-asan -j "$jobs"
step "ASan + UBSan tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j 1

step "fuzzing: each libFuzzer harness for 20 s under ASan + UBSan (clang)"
bash scripts/fuzz.sh 20

step "every __syncthreads() is needed and caught (each dropped in turn on the release build)"
bash scripts/check-barriers.sh build

if command -v nvcc >/dev/null; then
  step "nvcc: build the real CUDA backend for sm_80, sm_86, sm_90 and link the test suite (no GPU: not run)"
  cmake -S . -B build-nvcc -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=ON -DADNN_CUDA_ARCHS="80;86;90" \
    -DADNN_CUDA_RESOURCE_USAGE=ON -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=ON -DADNN_BUILD_EXAMPLES=OFF >/dev/null
  targets=(adnn adnn_tests)
  # the cuDNN comparison benchmark, when cuDNN was found (compiled here, run on a GPU machine)
  # (grep reads all of ninja's output: `grep -q` would exit at the first match and, under
  # pipefail, ninja's SIGPIPE would make the test false)
  if ninja -C build-nvcc -t targets all | grep '^bench_cudnn:' >/dev/null; then targets+=(bench_cudnn); fi
  cmake --build build-nvcc -j "$jobs" --target "${targets[@]}"
  step "kernel resource report (sm_90, from the build above): fails on a spill docs/kernels.md does not allow"
  bash scripts/kernel-report.sh build-nvcc build-nvcc/kernel-resources-sm90.md
  step "shared geometry (taps, IoU) compiles to no fused multiply-add: it decides as the CPU twin (PTX, sm_90)"
  bash scripts/check-contraction.sh build-nvcc/contraction
else
  echo "nvcc not on PATH: skipping the real-kernel compile"
fi

step "install + consumer project"
cmake --install build >/dev/null
rm -rf build/consumer
cmake -S tests/consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
cmake --build build/consumer
./build/consumer/adnn_consumer

step "all tests passed"
