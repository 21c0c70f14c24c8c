#pragma once
// Convolution geometry and path selection, shared by the CPU twin (src/cpu/conv.cpp), the
// CUDA launchers (src/cuda/conv.cpp) and the kernels (kernels/conv.cuh).
// Layout: x (N, H, W, C) NHWC, w (O, KH, KW, C/groups), y (N, OH, OW, O).
#include <algorithm>

#include "common/hd.hpp"

namespace adnn::common {

struct ConvGeom {
  int64_t N, H, W, C, O, KH, KW, OH, OW, sh, sw, pt, pl, dh, dw, groups;
};

// How a convolution runs, on every backend:
//   pointwise: 1x1, stride 1, no padding, groups 1 — one GEMM over N·H·W rows;
//   depthwise: groups == C == O > 1 — direct kernels, channels across lanes;
//   im2col:    everything else — im2col of `chunk_images` images at a time and group, then a
//              GEMM; the backward's col2im is in gather form (no atomics). The CPU runs the
//              input gradient of most stride-1 ones as the transposed convolution's forward
//              instead (use_transposed_backward below).
// The bound on the column buffer is the caller's: kConvColElements on CUDA,
// kConvColElementsCpu on the CPU.
enum class ConvPath { pointwise, depthwise, im2col };
// CUDA's im2col buffer holds at most this many elements (16 MiB in f32); at least one image.
constexpr int64_t kConvColElements = int64_t(1) << 22;
// The CPU's bound (2 MiB in f32; at least one image): the columns im2col writes are still in
// cache when the GEMM reads them (docs/results.md, "CPU convolutions (2026-12-02)").
constexpr int64_t kConvColElementsCpu = int64_t(1) << 19;
struct ConvPlan {
  ConvPath path;
  int64_t chunk_images;  // im2col: images per GEMM
  int64_t col_elements;  // im2col: the buffer's size (chunk_images · OH·OW · KH·KW·C/groups)
};
inline ConvPlan conv_plan(const ConvGeom& g, int64_t max_col_elements = kConvColElements) {
  if (g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.groups == 1 && g.OH == g.H &&
      g.OW == g.W)
    return {ConvPath::pointwise, 0, 0};
  if (g.groups == g.C && g.O == g.C && g.groups > 1) return {ConvPath::depthwise, 0, 0};
  const int64_t per = g.OH * g.OW * g.KH * g.KW * (g.C / g.groups);
  const int64_t nb = std::clamp<int64_t>(max_col_elements / std::max<int64_t>(per, 1), 1, std::max<int64_t>(g.N, 1));
  return {ConvPath::im2col, nb, nb * per};
}

// The input gradient of a stride-1 convolution is a stride-1 convolution of gy: the
// transposed convolution, with the weights turned 180° and each group's in and out channels
// swapped (O' = C, C' = O), and padding (K − 1)·d − p on each side (negative where p exceeds
// it: those rows of gy are then never read). Output pixel ih of it reads gy row
// ih − ((KH−1)·dh − pt) + kh'·dh = ih + pt − kh·dh with kh = KH−1−kh': exactly the taps that
// read x's pixel ih in the forward (for_each_tap_reading). The CPU twin runs it so (im2col of
// gy and one GEMM writing gx once, instead of a GEMM into per-tap columns and col2im).
// Where the CPU twin takes that form: im2col convolutions of stride 1 (for which the transposed
// one is a convolution) whose groups have at most twice as many output as input channels (the
// transposed columns hold KH·KW·Og values per pixel against the forward's KH·KW·Cg; the
// shapes measured, adnn_fer_nano's, have Og ≤ 2·Cg).
inline bool use_transposed_backward(const ConvGeom& g) {
  return g.sh == 1 && g.sw == 1 && g.O / g.groups <= 2 * (g.C / g.groups) && conv_plan(g).path == ConvPath::im2col;
}
inline ConvGeom transposed_geom(const ConvGeom& g) {
  return {g.N,  g.OH, g.OW,    g.O, g.C, g.KH, g.KW, g.H, g.W, 1, 1, (g.KH - 1) * g.dh - g.pt, (g.KW - 1) * g.dw - g.pl,
          g.dh, g.dw, g.groups};
}

// Calls f(ih, iw, kh, kw) for every tap of output (oh, ow) that falls inside the image (the
// gather form of the forward and of the weight gradient).
template <class F>
ADNN_HD void for_each_input_tap(const ConvGeom& g, int64_t oh, int64_t ow, F&& f) {
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t iw = ow * g.sw - g.pl + kw * g.dw;
      if (iw >= 0 && iw < g.W) f(ih, iw, kh, kw);
    }
  }
}

// Calls f(oh, ow, kh, kw) for every output position and tap that reads input pixel (ih, iw):
// the gather form of a convolution's adjoint (col2im and input gradients without atomics).
template <class F>
ADNN_HD void for_each_tap_reading(const ConvGeom& g, int64_t ih, int64_t iw, F&& f) {
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t t = ih + g.pt - kh * g.dh;
    if (t < 0 || t % g.sh) continue;
    const int64_t oh = t / g.sh;
    if (oh >= g.OH) continue;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t u = iw + g.pl - kw * g.dw;
      if (u < 0 || u % g.sw) continue;
      const int64_t ow = u / g.sw;
      if (ow >= g.OW) continue;
      f(oh, ow, kh, kw);
    }
  }
}

}  // namespace adnn::common
