#!/usr/bin/env bash
# The geometry helpers shared by the CPU twins and the kernels hold no fused multiply-add once
# nvcc compiles them (tests/nvcc/contraction.cu, PTX for sm_90; no GPU needed), so taps and
# NMS decisions agree bit for bit between a GPU and the CPU. The PTX may hold no fma and no
# unrounded mul.f32/f64 either (ptxas may fuse such a mul with an add after this stage;
# common::mul_rn's products are mul.rn, which it never fuses). The same file built with
# -DADNN_CONTRACTION_CONTROL (a plain a * b + c) must show an fma: nvcc contracts by default
# and this check can see it. nvcc runs with the flags the build gives the kernels
# (CMakeLists.txt: --expt-relaxed-constexpr, otherwise nvcc's defaults: IEEE division and
# square root, no flush to zero); a flag such as --use_fast_math there must be added here.
# Usage: scripts/check-contraction.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/check-contraction.sh OUT_DIR}
mkdir -p "$out"
ptx() { nvcc -std=c++17 -arch=sm_90 -ptx --expt-relaxed-constexpr -Iinclude -Isrc "$@"; }
ptx -DADNN_CONTRACTION_CONTROL tests/nvcc/contraction.cu -o "$out/contraction-control.ptx"
if ! grep -q 'fma\.rn\.f64' "$out/contraction-control.ptx"; then
  echo "check-contraction: the control a * b + c compiled to no fma: the check cannot see contraction" >&2
  exit 1
fi
ptx tests/nvcc/contraction.cu -o "$out/contraction.ptx"
if grep -nE '\bfma\.|\bmul\.f(16|32|64)\b' "$out/contraction.ptx" >&2; then
  echo "check-contraction: the shared geometry (tests/nvcc/contraction.cu) compiles to a fused multiply-add" \
    "or an unrounded multiply above: use common::mul_rn for its products" >&2
  exit 1
fi
echo "check-contraction: no fma and no unrounded multiply in the shared geometry's PTX (the control shows one)"
