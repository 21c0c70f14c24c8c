#pragma once
// 2-D pooling, NHWC, forward and backward.
//
// max_pool: y[n, oh, ow, c] = max over the window of x (padding never wins), argmax holds
//   the winning h·W + w for the backward pass. avg_pool: mean over the window, divisor as
//   torch (count_include_pad clips the window to the padded extent; otherwise only real
//   pixels count).
// Layout: x (N, H, W, C), y (N, OH, OW, C), contiguous.
// Threads: forward, one thread per output element (c fastest: coalesced); max backward,
//   one thread per output element scattering with atomicAdd (windows may overlap); avg
//   backward, one thread per input element gathering the outputs whose window covers it
//   (no atomics).
// Cost: forward reads kh·kw·|y| elements (mostly cached), writes |y| (+ |y| int64 indices
//   for max); backward reads |gy| (+ indices), writes |gx|.
#include "common.cuh"
#include "loops.cuh"
#include "common/pool.hpp"

namespace adnn::kernels {

template <class T>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ am,
                                        PoolGeom g) {
  for_each_nhwc(g.N, g.OH, g.OW, g.C, [&](int64_t i, int64_t n, int64_t oh, int64_t ow, int64_t c) {
    T best = -INFINITY;
    int64_t arg = -1;
    for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
      const T v = x[((n * g.H + h) * g.W + w) * g.C + c];
      if (v > best || arg < 0 || v != v) {
        best = v;
        arg = h * g.W + w;
      }
    });
    y[i] = best;
    am[i] = arg;
  });
}

template <class T>
__global__ void max_pool_backward_kernel(const T* __restrict__ gy, const int64_t* __restrict__ am, T* __restrict__ gx,
                                         PoolGeom g) {
  for_each_nhwc(g.N, g.OH, g.OW, g.C, [&](int64_t i, int64_t n, int64_t, int64_t, int64_t c) {
    if (am[i] >= 0) atomicAdd(gx + (n * g.H * g.W + am[i]) * g.C + c, gy[i]);
  });
}

template <class T>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeom g) {
  for_each_nhwc(g.N, g.OH, g.OW, g.C, [&](int64_t i, int64_t n, int64_t oh, int64_t ow, int64_t c) {
    T s = 0;
    for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) { s += x[((n * g.H + h) * g.W + w) * g.C + c]; });
    y[i] = s / T(pool_divisor(g, oh, ow));
  });
}

template <class T>
__global__ void avg_pool_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, PoolGeom g) {
  for_each_nhwc(g.N, g.H, g.W, g.C, [&](int64_t i, int64_t n, int64_t h, int64_t w, int64_t c) {
    T s = 0;
    // outputs oh with oh*sh - ph <= h < oh*sh - ph + kh
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const int64_t h0 = oh * g.sh - g.ph;
      if (h < h0 || h >= h0 + g.kh) continue;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t w0 = ow * g.sw - g.pw;
        if (w < w0 || w >= w0 + g.kw) continue;
        s += gy[((n * g.OH + oh) * g.OW + ow) * g.C + c] / T(pool_divisor(g, oh, ow));
      }
    }
    gx[i] = s;
  });
}

}  // namespace adnn::kernels
