#!/usr/bin/env bash
# The kernel resource report for sm_90 (docs/kernels.md, "Kernel resource report"): registers,
# spills, static shared memory and theoretical occupancy of every kernel instantiation, read
# from ptxas's --resource-usage output of the real CUDA build, written as Markdown; exits 1 when
# a kernel spills and docs/kernels.md does not list it, with its reason, as an allowed spill.
#
# usage: scripts/kernel-report.sh [BUILD_DIR] [OUT.md]
#   BUILD_DIR  an nvcc build (default build-nvcc). Configured with -DADNN_CUDA=ON
#              -DADNN_CUDA_RESOURCE_USAGE=ON (archs must include 90) unless it already is, and its
#              adnn_cuda_kernels target built (nothing to do when scripts/test.sh just built it).
#   OUT.md     default docs/results/kernel-resources-sm90.md
# Needs nvcc, python3 and c++filt. scripts/test.sh runs it after its nvcc build step.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-nvcc}
out=${2:-docs/results/kernel-resources-sm90.md}
command -v nvcc >/dev/null || { echo "kernel-report: nvcc not on PATH" >&2; exit 2; }
if ! grep -q '^ADNN_CUDA_RESOURCE_USAGE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=ON -DADNN_CUDA_RESOURCE_USAGE=ON >/dev/null
fi
grep -q '^ADNN_CUDA_ARCHS:STRING=.*90' "$build/CMakeCache.txt" ||
  { echo "kernel-report: $build does not compile for sm_90 (ADNN_CUDA_ARCHS)" >&2; exit 2; }
cmake --build "$build" --target adnn_cuda_kernels
shopt -s nullglob
files=("$build"/CMakeFiles/adnn_cuda_kernels.dir/src/cuda/*.o.resource-usage.txt)
traces=(docs/results/*kernel-report*.md)
[[ ${#files[@]} -gt 0 ]] || { echo "kernel-report: no *.resource-usage.txt in $build" >&2; exit 2; }
args=()
for t in "${traces[@]}"; do args+=(--trace "$t"); done
python3 scripts/kernel_report.py --allowed docs/kernels.md --sources src/cuda --sources kernels "${args[@]}" \
  --out "$out" --command "scripts/kernel-report.sh" "${files[@]}"
