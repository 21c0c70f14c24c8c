#pragma once
// Separable resampling geometry: one output index's taps (index, weight) along an axis,
// computed where they are used — per output pixel in the CPU twin (src/cpu/interp.cpp) and in
// every kernel thread (kernels/interp.cuh) by the same ADNN_HD function, so no tap table is
// built on the host or copied to the device, and the taps (indices and weights) agree bit
// for bit between the backends: every product here is mul_rn (common/mul_rn.hpp), which nvcc
// never fuses into a multiply-add. The sums over the taps may fuse on a GPU: the outputs
// agree up to rounding.
// Layout: x (N, H, W, C), y (N, OH, OW, C).
#include <adnn/ops/enums.hpp>

#include "common/mul_rn.hpp"

namespace adnn::common {

// One axis: `in` input positions resampled to `out` (torch.nn.functional.interpolate's
// conventions: half-pixel centres, or corners aligned).
struct InterpAxis {
  int64_t in, out;
  InterpMode mode;
  bool align_corners;
};
struct InterpGeom {
  int64_t N, C;
  InterpAxis y, x;  // y.in = H, y.out = OH; x.in = W, x.out = OW
};

ADNN_HD int interp_tap_count(InterpMode mode) {
  return mode == InterpMode::nearest ? 1 : mode == InterpMode::bilinear ? 2 : 4;
}

// The cubic convolution kernel (A = -0.75, as OpenCV and torch's bicubic).
ADNN_HD double cubic_weight(double x) {
  constexpr double A = -0.75;
  x = x < 0 ? -x : x;
  if (x <= 1) return mul_rn(mul_rn(mul_rn(A + 2, x) - (A + 3), x), x) + 1;       // ((A+2)x − (A+3))x² + 1
  if (x < 2) return mul_rn(mul_rn(mul_rn(A, x) - 5 * A, x) + 8 * A, x) - 4 * A;  // ((Ax − 5A)x + 8A)x − 4A
  return 0;
}

// The taps of output index o along axis a: writes interp_tap_count(a.mode) (index, weight)
// pairs, indices clamped into [0, in) (edge replication, as torch).
ADNN_HD int interp_axis_taps(const InterpAxis& a, int64_t o, int64_t* idx, double* w) {
  if (a.mode == InterpMode::nearest) {
    const int64_t i = int64_t(::floor(mul_rn(double(o), double(a.in) / double(a.out))));
    idx[0] = i < a.in - 1 ? i : a.in - 1;
    w[0] = 1;
    return 1;
  }
  const double scale_ac = a.out > 1 ? double(a.in - 1) / double(a.out - 1) : 0.0;
  double src =
      a.align_corners ? mul_rn(double(o), scale_ac) : mul_rn(double(o) + 0.5, double(a.in) / double(a.out)) - 0.5;
  if (a.mode == InterpMode::bilinear) {
    if (src < 0) src = 0;
    int64_t i0 = int64_t(::floor(src));
    if (i0 > a.in - 1) i0 = a.in - 1;
    const double l = src - double(i0);
    idx[0] = i0;
    idx[1] = i0 + 1 < a.in - 1 ? i0 + 1 : a.in - 1;
    w[0] = 1 - l;
    w[1] = l;
    return 2;
  }
  const int64_t i0 = int64_t(::floor(src));
  const double l = src - double(i0);
  const double ws[4] = {cubic_weight(1 + l), cubic_weight(l), cubic_weight(1 - l), cubic_weight(2 - l)};
  for (int k = 0; k < 4; ++k) {
    const int64_t i = i0 - 1 + k;
    idx[k] = i < 0 ? 0 : i > a.in - 1 ? a.in - 1 : i;
    w[k] = ws[k];
  }
  return 4;
}

// Calls f(h, w, weight) for the taps of output pixel (oh, ow): the separable product of the
// row and column taps.
template <class F>
ADNN_HD void for_each_interp_tap(const InterpGeom& g, int64_t oh, int64_t ow, F&& f) {
  int64_t iy[4], ix[4];
  double wy[4], wx[4];
  const int ny = interp_axis_taps(g.y, oh, iy, wy), nx = interp_axis_taps(g.x, ow, ix, wx);
  for (int i = 0; i < ny; ++i)
    for (int j = 0; j < nx; ++j) f(iy[i], ix[j], mul_rn(wy[i], wx[j]));
}

// ---------------------------------------------------------------- warp_affine
// x (N, H, W, C), y (B, OH, OW, C), m (B, 6) f64: output pixel (ox, oy) samples the input at
// (m0·ox + m1·oy + m2, m3·ox + m4·oy + m5) (OpenCV's inverse-map convention, pixel centres at
// integers). N == B, or N == 1 (every output samples the one image). Taps outside the image
// read 0 (a constant black border).
struct WarpGeom {
  int64_t N, H, W, C, B, OH, OW;
  InterpMode mode;
};

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
  for (int k = 0; k < 4; ++k)  // a constant trip count: unrolled, the taps stay in registers
    if (k < n && (idx[k] < 0 || idx[k] >= size)) idx[k] = -1;
  return n;
}

// The taps of output pixel (ox, oy) of crop b, m (B, 6): rows iy/wy (ny of them), columns
// ix/wx (nx); an index of -1 is outside the image.
struct WarpTaps {
  int64_t iy[4], ix[4];
  double wy[4], wx[4];
  int ny, nx;
};
ADNN_HD WarpTaps warp_taps(const double* m, int64_t b, int64_t ox, int64_t oy, const WarpGeom& g) {
  WarpTaps t;
  const double* mb = m + b * 6;
  const double sx = mul_rn(mb[0], double(ox)) + mul_rn(mb[1], double(oy)) + mb[2];
  const double sy = mul_rn(mb[3], double(ox)) + mul_rn(mb[4], double(oy)) + mb[5];
  t.ny = warp_axis_taps(sy, g.H, g.mode, t.iy, t.wy);
  t.nx = warp_axis_taps(sx, g.W, g.mode, t.ix, t.wx);
  return t;
}

}  // namespace adnn::common
