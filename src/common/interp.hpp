#pragma once
// Separable resampling geometry: the taps (index, weight) of every output row and column,
// computed once on the host (the plan of the interp family) and used by the CPU twin
// (src/cpu/interp.cpp) and the kernels (kernels/interp.cuh, uploaded to the device).
// Layout: x (N, H, W, C), y (N, OH, OW, C).
#include <adnn/ops/enums.hpp>

#include <vector>

#include "common/hd.hpp"

namespace adnn::common {

struct InterpGeom {
  int64_t N, H, W, C, OH, OW, ty, tx;  // ty, tx: taps per output row / column
};

// For each output row/col: `taps` (index, weight) pairs into the input.
struct InterpTaps {
  int64_t taps;                  // 1, 2 or 4
  std::vector<int64_t> index;    // out · taps
  std::vector<double> weight;    // out · taps
};
// Calls f(h, w, weight) for the taps of output pixel (oh, ow): the separable product of the
// row and column taps.
template <class F>
void for_each_interp_tap(const InterpTaps& ty, const InterpTaps& tx, int64_t oh, int64_t ow, F&& f) {
  for (int64_t i = 0; i < ty.taps; ++i) {
    const int64_t h = ty.index[oh * ty.taps + i];
    const double wy = ty.weight[oh * ty.taps + i];
    for (int64_t j = 0; j < tx.taps; ++j) f(h, tx.index[ow * tx.taps + j], wy * tx.weight[ow * tx.taps + j]);
  }
}

// Nearest (torch's floor rule), bilinear and bicubic (A = −0.75, border-clamped) taps.
InterpTaps interp_taps(int64_t in, int64_t out, InterpMode mode, bool align_corners);

// ---------------------------------------------------------------- warp_affine
// x (N, H, W, C), y (B, OH, OW, C), m (B, 6) f64: output pixel (ox, oy) samples the input at
// (m0·ox + m1·oy + m2, m3·ox + m4·oy + m5) (OpenCV's inverse-map convention, pixel centres at
// integers). N == B, or N == 1 (every output samples the one image). Taps outside the image
// read 0 (a constant black border).
struct WarpGeom {
  int64_t N, H, W, C, B, OH, OW;
  InterpMode mode;
};

// The cubic convolution kernel (A = -0.75, as OpenCV and torch's bicubic).
ADNN_HD double cubic_weight(double x) {
  const double A = -0.75;
  x = x < 0 ? -x : x;
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

// The taps of one axis at source coordinate s over [0, size): writes up to 4 (index,
// weight) pairs and returns their count; taps outside the axis get index -1 (they read 0).
ADNN_HD int warp_axis_taps(double s, int64_t size, InterpMode mode, int64_t* idx, double* w) {
  const double f = ::floor(s);
  const int64_t i0 = int64_t(f);
  const double l = s - f;
  int n = 0;
  if (mode == InterpMode::nearest) {
    const int64_t i = l < 0.5 ? i0 : i0 + 1;  // round half up
    idx[0] = i;
    w[0] = 1;
    n = 1;
  } else if (mode == InterpMode::bilinear) {
    idx[0] = i0;
    w[0] = 1 - l;
    idx[1] = i0 + 1;
    w[1] = l;
    n = 2;
  } else {
    for (int k = 0; k < 4; ++k) {
      idx[k] = i0 - 1 + k;
      w[k] = cubic_weight(l + 1 - k);
    }
    n = 4;
  }
  for (int k = 0; k < n; ++k)
    if (idx[k] < 0 || idx[k] >= size) idx[k] = -1;
  return n;
}

}  // namespace adnn::common
