#!/usr/bin/env bash
# Removes each __syncthreads() in kernels/*.cuh, one at a time, rebuilds the emulated kernel
# tests and checks that the `sim` suite fails. Proves the emulator's shuffled scheduling
# catches a missing barrier in every kernel that has one. Usage: scripts/check-barriers.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
[[ -x "$build/bin/adnn_tests" ]] || { echo "build $build first (with -DADNN_CUDA_EMULATION=ON)"; exit 2; }
status=0
restore() { git checkout --quiet -- kernels/ 2>/dev/null || true; }
trap restore EXIT
for f in kernels/*.cuh; do
  n=$({ grep -o "__syncthreads();" "$f" || true; } | wc -l)
  for ((i = 1; i <= n; i++)); do
    python3 - "$f" "$i" <<'PY'
import sys
path, k = sys.argv[1], int(sys.argv[2])
s = open(path).read()
idx = -1
for _ in range(k):
    idx = s.index("__syncthreads();", idx + 1)
line = s.count("\n", 0, idx) + 1
s = s[:idx] + "/* barrier removed */" + s[idx + len("__syncthreads();"):]
open(path, "w").write(s)
print(f"{path}:{line}", end=" ")
PY
    cmake --build "$build" --target adnn_tests >/dev/null
    if "$build/bin/adnn_tests" --test-suite=sim,cuda >/dev/null 2>&1; then
      echo "NOT CAUGHT"
      status=1
    else
      echo "caught"
    fi
    restore
  done
done
cmake --build "$build" --target adnn_tests >/dev/null
exit $status
