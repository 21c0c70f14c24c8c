// The shared geometry that decides something (interpolation and warp taps, NMS's IoU,
// arange's element before an integer cast) must round on a GPU as on the CPU twin: no product
// fused into a sum (common::mul_rn, src/common/mul_rn.hpp). scripts/check-contraction.sh
// compiles this file to PTX for sm_90 (no GPU needed) and fails on any fma or unrounded
// multiply in it; built with -DADNN_CONTRACTION_CONTROL it holds only a plain a * b + c, which
// must compile to an fma (nvcc contracts by default and the check sees it).
#include "common/interp.hpp"
#include "common/mul_rn.hpp"
#include "common/nms.hpp"

using namespace adnn::common;

#if defined(ADNN_CONTRACTION_CONTROL)
__global__ void control(const double* a, double* y) { y[0] = a[0] * a[1] + a[2]; }
#else
__global__ void interp_taps(InterpAxis ax, int64_t o, int64_t* idx, double* w) { interp_axis_taps(ax, o, idx, w); }
__global__ void interp_pixel(InterpGeom g, int64_t oh, int64_t ow, int64_t* idx, double* w) {
  int k = 0;
  for_each_interp_tap(g, oh, ow, [&](int64_t h, int64_t x, double wt) {
    idx[2 * k] = h;
    idx[2 * k + 1] = x;
    w[k++] = wt;
  });
}
__global__ void warp(const double* m, WarpGeom g, int64_t ox, int64_t oy, WarpTaps* t) {
  *t = warp_taps(m, 0, ox, oy, g);
}
__global__ void iou_f32(const float* a, const float* b, float offset, float* y) { *y = box_iou(a, b, offset); }
__global__ void iou_f64(const double* a, const double* b, double offset, double* y) { *y = box_iou(a, b, offset); }
__global__ void arange(double start, double step, int64_t i, double* y) {
  *y = arange_value(start, step, i);
}
#endif
