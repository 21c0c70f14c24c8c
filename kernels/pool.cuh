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

namespace adnn::kernels {

struct PoolDims {
  int64_t N, H, W, C, OH, OW, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};

// G: PoolDims, or the CPU twin's cpu::PoolGeom (same fields); both backends use these two.
template <class G>
__host__ __device__ __forceinline__ int64_t pool_divisor(const G& g, int64_t oh, int64_t ow) {
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

// Calls f(h, w) for every input pixel inside the window of output (oh, ow) (padding skipped).
template <class G, class F>
__host__ __device__ __forceinline__ void for_each_window_pixel(const G& g, int64_t oh, int64_t ow, F&& f) {
  for (int64_t a = 0; a < g.kh; ++a) {
    const int64_t h = oh * g.sh - g.ph + a;
    if (h < 0 || h >= g.H) continue;
    for (int64_t b = 0; b < g.kw; ++b) {
      const int64_t w = ow * g.sw - g.pw + b;
      if (w >= 0 && w < g.W) f(h, w);
    }
  }
}

template <class T>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ am,
                                        PoolDims g) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, ow = (i / g.C) % g.OW, oh = (i / (g.C * g.OW)) % g.OH, n = i / (g.C * g.OW * g.OH);
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
  }
}

template <class T>
__global__ void max_pool_backward_kernel(const T* __restrict__ gy, const int64_t* __restrict__ am, T* __restrict__ gx,
                                         PoolDims g) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, n = i / (g.C * g.OW * g.OH);
    if (am[i] >= 0) atomicAdd(gx + (n * g.H * g.W + am[i]) * g.C + c, gy[i]);
  }
}

template <class T>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolDims g) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, ow = (i / g.C) % g.OW, oh = (i / (g.C * g.OW)) % g.OH, n = i / (g.C * g.OW * g.OH);
    T s = 0;
    for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) { s += x[((n * g.H + h) * g.W + w) * g.C + c]; });
    y[i] = s / T(pool_divisor(g, oh, ow));
  }
}

template <class T>
__global__ void avg_pool_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, PoolDims g) {
  const int64_t total = g.N * g.H * g.W * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, w = (i / g.C) % g.W, h = (i / (g.C * g.W)) % g.H, n = i / (g.C * g.W * g.H);
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
  }
}

}  // namespace adnn::kernels
