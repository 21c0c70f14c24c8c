#!/usr/bin/env bash
# Shows that every __syncthreads() in kernels/*.cuh is needed: each one in turn is dropped and
# the emulated kernel tests (the `sim` and `cuda` suites) must then fail. Proves the emulator
# (its race checker and shuffled scheduling) catches a missing barrier in every kernel that
# has one. Usage: scripts/check-barriers.sh [BUILD_DIR]   (default: build)
#
# BUILD_DIR is an emulated build (ADNN_CUDA_EMULATION=ON) with the test suite, such as the one
# scripts/test.sh makes; adnn_tests is brought up to date in it. A barrier is dropped at run
# time, not by editing the source: the emulator's __syncthreads() knows its call site, and
# ADNN_SIM_DROP_BARRIER=<file>:<line> makes the one at that site return at once, exactly as if
# the line were deleted (src/sim/simt.hpp, drop_barrier; tests/test_sim.cpp shows it catching a
# broken kernel). So one build serves every mutation and the tree is never touched. A mutation
# counts as caught only when the tests fail AND the emulator says it dropped that barrier (a
# failure elsewhere, or a barrier no test reaches, is reported as not caught). Needs bash,
# awk, grep, coreutils, cmake, ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[[ -f "$build/CMakeCache.txt" ]] || { echo "check-barriers: $build is not a configured build directory (run scripts/test.sh --quick first)"; exit 1; }
grep -q '^ADNN_CUDA_EMULATION:BOOL=ON' "$build/CMakeCache.txt" || { echo "check-barriers: $build is not an emulated build (ADNN_CUDA_EMULATION=ON)"; exit 1; }
cmake --build "$build" --target adnn_tests >/dev/null
par=${CHECK_BARRIERS_JOBS:-$(nproc)}
[[ "$par" =~ ^[1-9][0-9]*$ ]] || { echo "check-barriers: CHECK_BARRIERS_JOBS must be a positive integer, got '$par'"; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/adnn-barriers.XXXXXX")
# test processes still running (an interrupt, a failure) are stopped before their logs go
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
# the kernel cases of the sim suite (seconds), then of the cuda suite; the cases that run
# emulated nano training steps (graphs, allocator measurement, host round trips: the one list
# is ADNN_SKIP_EMULATED_NANO in tests/) exercise no kernel the op registry does not, and take
# minutes on the emulator, as does the DDP case's worker process. A mutation stops at the first
# failing case.
export ADNN_TEST_SKIP_EMULATED_NANO=1
run_tests() {
  "$build/bin/adnn_tests" --no-version --test-suite=sim --abort-after=1 &&
    "$build/bin/adnn_tests" --no-version --test-suite=cuda --abort-after=1 \
      "--test-case-exclude=DistributedDataParallel on cuda*"
}
unset ADNN_SIM_DROP_BARRIER
# one single-threaded test process per core: the emulated suites have serial stretches, so this
# beats one process on every core
export OMP_NUM_THREADS=1
# without a drop the suites must pass (in the same setting), or "caught" below would mean nothing
run_tests >"$tmp/clean.log" 2>&1 ||
  { tail -30 "$tmp/clean.log"; echo "check-barriers: the sim/cuda suites fail without any barrier dropped"; exit 1; }

shopt -s nullglob
kernels=(kernels/*.cuh)
((${#kernels[@]})) || { echo "no kernels/*.cuh found"; exit 1; }
sites=()
for f in "${kernels[@]}"; do
  # the line of every `__syncthreads();` (one per line: a second on the same line is an error,
  # as a site names a line)
  lines=$(awk 'index($0, "__syncthreads();") {
                 if (index(substr($0, index($0, "__syncthreads();") + 16), "__syncthreads();")) { print "two barriers on line " NR > "/dev/stderr"; exit 3 }
                 print NR }' "$f")
  for line in $lines; do sites+=("$f:$line"); done
done
((${#sites[@]})) || { echo "no __syncthreads() found in kernels/"; exit 1; }

# one site: its verdict line (and, when not caught, the end of its log) into $tmp/<index>
check_site() {
  local site=$1 out=$tmp/$2 start=$SECONDS
  if ADNN_SIM_DROP_BARRIER="$site" run_tests >"$out.log" 2>&1; then
    echo "$site NOT CAUGHT (the tests pass without it)" >"$out"
  elif ! grep -qF "$site is dropped (drop_barrier)" "$out.log"; then
    { echo "$site NOT CAUGHT (the tests fail, but no test reached this barrier: the failure is elsewhere)"
      tail -5 "$out.log"; } >"$out"
  else
    echo "$site caught ($((SECONDS - start)) s)" >"$out"
  fi
}
running=0
for i in "${!sites[@]}"; do
  if ((running >= par)); then
    wait -n || true
    running=$((running - 1))
  fi
  check_site "${sites[$i]}" "$i" &
  running=$((running + 1))
done
wait
status=0 caught=0
for i in "${!sites[@]}"; do
  [[ -s "$tmp/$i" ]] || { echo "${sites[$i]} NO VERDICT (its test process died)"; status=1; continue; }
  cat "$tmp/$i"
  if head -1 "$tmp/$i" | grep -qF "${sites[$i]} caught ("; then caught=$((caught + 1)); else status=1; fi
done
echo "check-barriers: $caught of ${#sites[@]} barriers caught"
exit $status
