#pragma once
// Convolution kernels, NHWC activations, weights (O, KH, KW, C/groups).
//
// im2col: col[r, (kh, kw, c)] = x[n, oh·sh - pt + kh·dh, ow·sw - pl + kw·dw, g·Cg + c] (0 in
//   the padding), r = (n, oh, ow) over a chunk of images; one thread per col element, c
//   fastest (coalesced reads of x and writes of col). The GEMM col · Wᵀ then gives the
//   output (cuBLAS on a GPU).
// col2im: gx[n, ih, iw, g·Cg + c] += Σ of the col entries that read that pixel, in the
//   gather form (one thread per input element summing its own taps): no atomics.
// depthwise (groups == C == O): direct kernels.
//   forward: one thread per output element, kh·kw taps, c fastest.
//   backward input: one thread per input element gathering the taps that read it.
//   backward weight: one block per weight element (c, kh, kw), its threads stride over the
//   N·OH·OW output positions and reduce with warp shuffles + shared memory.
// bias_add: y[r, o] += b[o].
// Cost: im2col writes |col| = N·OH·OW·KH·KW·Cg elements and reads as many (cached);
//   depthwise forward reads KH·KW·|y| (cached) and writes |y|: memory bound.
#include "common/conv.hpp"
#include "reduce.cuh"

namespace adnn::kernels {

template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ col, ConvGeom g, int64_t n0, int64_t nb,
                              int64_t gi) {
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg, total = nb * g.OH * g.OW * KK;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % KK, r = i / KK;
    const int64_t c = k % Cg, kw = (k / Cg) % g.KW, kh = k / (Cg * g.KW);
    const int64_t ow = r % g.OW, oh = (r / g.OW) % g.OH, n = n0 + r / (g.OW * g.OH);
    const int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
    col[i] = (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) ? T(0) : x[((n * g.H + ih) * g.W + iw) * g.C + gi * Cg + c];
  }
}

template <class T>
__global__ void col2im_kernel(const T* __restrict__ dcol, T* __restrict__ gx, ConvGeom g, int64_t n0, int64_t nb,
                              int64_t gi) {
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg, total = nb * g.H * g.W * Cg;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % Cg, iw = (i / Cg) % g.W, ih = (i / (Cg * g.W)) % g.H, n = i / (Cg * g.W * g.H);
    T s = 0;
    for_each_tap_reading(g, ih, iw, [&](int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
      s += dcol[((n * g.OH + oh) * g.OW + ow) * KK + (kh * g.KW + kw) * Cg + c];
    });
    gx[(((n0 + n) * g.H + ih) * g.W + iw) * g.C + gi * Cg + c] += s;
  }
}

template <class T>
__global__ void depthwise_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                         T* __restrict__ y, ConvGeom g) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, ow = (i / g.C) % g.OW, oh = (i / (g.C * g.OW)) % g.OH, n = i / (g.C * g.OW * g.OH);
    T s = b ? b[c] : T(0);
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
      if (ih < 0 || ih >= g.H) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t iw = ow * g.sw - g.pl + kw * g.dw;
        if (iw < 0 || iw >= g.W) continue;
        s += x[((n * g.H + ih) * g.W + iw) * g.C + c] * w[(c * g.KH + kh) * g.KW + kw];
      }
    }
    y[i] = s;
  }
}

template <class T>
__global__ void depthwise_backward_input_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                T* __restrict__ gx, ConvGeom g) {
  const int64_t total = g.N * g.H * g.W * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, iw = (i / g.C) % g.W, ih = (i / (g.C * g.W)) % g.H, n = i / (g.C * g.W * g.H);
    T s = 0;
    for_each_tap_reading(g, ih, iw, [&](int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
      s += gy[((n * g.OH + oh) * g.OW + ow) * g.C + c] * w[(c * g.KH + kh) * g.KW + kw];
    });
    gx[i] = s;
  }
}

// grid.x = C·KH·KW blocks; block = 256 threads
template <class T>
__global__ void depthwise_backward_weight_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                                 T* __restrict__ gw, ConvGeom g) {
  ADNN_SHARED(T, scratch, [32]);
  const int64_t e = blockIdx.x;  // (c, kh, kw)
  const int64_t kw = e % g.KW, kh = (e / g.KW) % g.KH, c = e / (g.KW * g.KH);
  T s = 0;
  for (int64_t p = threadIdx.x; p < g.N * g.OH * g.OW; p += blockDim.x) {
    const int64_t ow = p % g.OW, oh = (p / g.OW) % g.OH, n = p / (g.OW * g.OH);
    const int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
    s += gy[p * g.C + c] * x[((n * g.H + ih) * g.W + iw) * g.C + c];
  }
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) gw[e] = s;
}

template <class T>
__global__ void bias_add_kernel(T* __restrict__ y, const T* __restrict__ b, int64_t rows, int64_t O) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * O; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % O];
}

}  // namespace adnn::kernels
