#pragma once
// Pooling geometry and window iteration, shared by the CPU twin (src/cpu/pool.cpp) and the
// kernels (kernels/pool.cuh). Layout: x (N, H, W, C), y (N, OH, OW, C).
#include "common/hd.hpp"

namespace adnn::common {

struct PoolGeom {
  int64_t N, H, W, C, OH, OW, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};

// The divisor of average pooling at output (oh, ow), as torch: count_include_pad clips the
// window to the padded extent; otherwise only real pixels count.
ADNN_HD int64_t pool_divisor(const PoolGeom& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = h0 + g.kh < g.H + g.ph ? h0 + g.kh : g.H + g.ph;
  int64_t w1 = w0 + g.kw < g.W + g.pw ? w0 + g.kw : g.W + g.pw;
  if (g.count_include_pad) return (h1 - h0) * (w1 - w0);
  h0 = h0 > 0 ? h0 : 0;
  w0 = w0 > 0 ? w0 : 0;
  h1 = h1 < g.H ? h1 : g.H;
  w1 = w1 < g.W ? w1 : g.W;
  const int64_t n = (h1 - h0) * (w1 - w0);
  return n > 1 ? n : 1;
}

// The max-pool argmax of output (oh, ow) is its winner's offset inside the window, a·kw + b for
// the pixel at row a, column b of the unclipped window (padding counted): 0 … kh·kw − 1. It is
// stored in the smallest type that holds it — uint8 for windows of up to 256 pixels (every
// pool of the models; 1 byte per output element where torch keeps an int64 flat index), int32
// beyond (max_pool_index_is_u8).
ADNN_HD int64_t window_offset(const PoolGeom& g, int64_t oh, int64_t ow, int64_t h, int64_t w) {
  return (h - (oh * g.sh - g.ph)) * g.kw + (w - (ow * g.sw - g.pw));
}
ADNN_HD bool max_pool_index_is_u8(const PoolGeom& g) {
  return g.kh * g.kw <= 256;
}

// Calls f(h, w) for every input pixel inside the window of output (oh, ow) (padding skipped).
template <class F>
ADNN_HD void for_each_window_pixel(const PoolGeom& g, int64_t oh, int64_t ow, F&& f) {
  for (int64_t a = 0; a < g.kh; ++a) {
    const int64_t h = oh * g.sh - g.ph + a;
    if (h < 0 || h >= g.H) continue;
    for (int64_t b = 0; b < g.kw; ++b) {
      const int64_t w = ow * g.sw - g.pw + b;
      if (w >= 0 && w < g.W) f(h, w);
    }
  }
}

// Calls f(oh, ow) for every output whose window covers input pixel (h, w) (oh·sh − ph ≤ h <
// oh·sh − ph + kh, and the same along w), oh then ow increasing: the backward passes gather
// in this order on both backends, so their sums round alike.
template <class F>
ADNN_HD void for_each_covering_output(const PoolGeom& g, int64_t h, int64_t w, F&& f) {
  const int64_t hh = h + g.ph, ww = w + g.pw;
  const int64_t oh0 = hh - g.kh + 1 > 0 ? (hh - g.kh + g.sh) / g.sh : 0;
  const int64_t ow0 = ww - g.kw + 1 > 0 ? (ww - g.kw + g.sw) / g.sw : 0;
  const int64_t oh1 = hh / g.sh < g.OH - 1 ? hh / g.sh : g.OH - 1;
  const int64_t ow1 = ww / g.sw < g.OW - 1 ? ww / g.sw : g.OW - 1;
  for (int64_t oh = oh0; oh <= oh1; ++oh)
    for (int64_t ow = ow0; ow <= ow1; ++ow) f(oh, ow);
}

}  // namespace adnn::common
