#!/usr/bin/env bash
# CUDA compiler launcher (CMake option ADNN_CUDA_RESOURCE_USAGE): runs the nvcc command line it is
# given (compiled with --resource-usage) and keeps ptxas's resource-usage lines in
# <object>.resource-usage.txt, so scripts/kernel-report.sh can read them from an up-to-date build
# without compiling again. Every other line nvcc prints (warnings, errors) still goes to stderr.
set -u
obj=""
prev=""
for a in "$@"; do
  if [[ $prev == -o ]]; then obj=$a; fi
  prev=$a
done
log=$(mktemp)
"$@" 2>"$log"
rc=$?
if [[ -n $obj && $rc -eq 0 ]]; then
  grep -E '^ptxas info|bytes stack frame' "$log" >"$obj.resource-usage.txt" || true
fi
grep -vE '^ptxas info|bytes stack frame' "$log" >&2 || true
rm -f "$log"
exit $rc
