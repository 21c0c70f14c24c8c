// The interp family's plan: resampling taps, computed once on the host for both backends.
#include "common/interp.hpp"

#include <adnn/core/error.hpp>

#include <algorithm>
#include <cmath>

namespace adnn::common {

static double cubic_w(double x) {
  const double A = -0.75;
  x = std::fabs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

InterpTaps interp_taps(int64_t in, int64_t out, InterpMode mode, bool align_corners) {
  InterpTaps t;
  t.taps = mode == InterpMode::nearest ? 1 : mode == InterpMode::bilinear ? 2 : 4;
  t.index.resize(size_t(out * t.taps));
  t.weight.resize(size_t(out * t.taps));
  const double scale_ac = out > 1 ? double(in - 1) / double(out - 1) : 0.0;
  const double scale = double(in) / double(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t* ix = t.index.data() + o * t.taps;
    double* w = t.weight.data() + o * t.taps;
    if (mode == InterpMode::nearest) {
      ix[0] = std::min<int64_t>(int64_t(std::floor(double(o) * scale)), in - 1);
      w[0] = 1;
      continue;
    }
    double src = align_corners ? double(o) * scale_ac : (double(o) + 0.5) * scale - 0.5;
    if (mode == InterpMode::bilinear) {
      if (src < 0) src = 0;
      int64_t i0 = std::min<int64_t>(int64_t(std::floor(src)), in - 1);
      int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
      double l = src - double(i0);
      ix[0] = i0;
      ix[1] = i1;
      w[0] = 1 - l;
      w[1] = l;
    } else {
      int64_t i0 = int64_t(std::floor(src));
      double l = src - double(i0);
      double ws[4] = {cubic_w(1 + l), cubic_w(l), cubic_w(1 - l), cubic_w(2 - l)};
      for (int k = 0; k < 4; ++k) {
        ix[k] = std::clamp<int64_t>(i0 - 1 + k, 0, in - 1);
        w[k] = ws[k];
      }
    }
  }
  return t;
}

}  // namespace adnn::common
