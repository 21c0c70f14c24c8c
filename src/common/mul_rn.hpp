#pragma once
// A product that rounds on the device exactly as on the host. nvcc contracts a * b + c into
// one fused multiply-add by default (--fmad=true: one rounding instead of two), the host
// build never does (-ffp-contract=off), so a geometry computed from products and sums (a
// source coordinate, a cubic weight, an IoU) could differ in its last bit between a GPU and
// the CPU twin, and a floor or a threshold then decide differently. __fmul_rn / __dmul_rn are
// never contracted. Used where a decision depends on the bits (common/interp.hpp,
// common/nms.hpp, arange below), not in accumulations, which may fuse (they agree up to rounding);
// scripts/check-contraction.sh checks that the compiled geometry holds no fma.
#include "common/hd.hpp"

namespace adnn::common {

ADNN_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
ADNN_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// arange's element start + i·step, rounded as on the CPU twin: an integer dtype truncates
// it, so one fused rounding could move an element across an integer on a GPU.
ADNN_HD double arange_value(double start, double step, int64_t i) {
  return start + mul_rn(double(i), step);
}

}  // namespace adnn::common
