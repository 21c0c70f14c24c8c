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
#include "loops.cuh"
#include "reduce.cuh"
#include "vector.cuh"

#include <algorithm>

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

// ---------------------------------------------------------------- depthwise
// Channel tiling shared by the three depthwise kernels: a pixel's tile of channels is spread
// over `lanes` consecutive threads, each holding V consecutive channels (one 16-byte vector
// when C and the pointers allow, vector_width), so a warp reads 32·V·sizeof(T) contiguous
// bytes per tap when lanes = 32, or whole pixels back to back when C/V < 32. C/V vectors are
// split into `tiles` tiles of at most 32 lanes (grid.x; the last tile may be narrower);
// a block is lanes × rows threads (rows = ⌊256 / lanes⌋ pixels at once).
struct DepthwiseTiling {
  int lanes, tiles, rows;
};
inline DepthwiseTiling depthwise_tiling(int64_t C, int V, int64_t KK, size_t elem_bytes) {
  const int64_t cv = C / V;
  int64_t tiles = (cv + 31) / 32, lanes = (cv + tiles - 1) / tiles;
  // the forward's and input gradient's weight tile (KK · lanes · V elements) within 48 KiB
  const int64_t cap = std::max<int64_t>(1, int64_t(49152) / (KK * V * int64_t(elem_bytes)));
  if (lanes > cap) lanes = cap, tiles = (cv + lanes - 1) / lanes;
  return {int(lanes), int(tiles), int(256 / lanes)};
}

// wt[(k·V + j)·lanes + l] = w[(c0 + l·V + j)·KK + k] for the tile's tile_c channels: w (C, KH,
// KW) is read in its own order (one contiguous run per tile: coalesced) and written
// transposed, so that a tap reads one shared word per lane, unit stride along the lanes and
// the same word for every pixel row (a broadcast).
template <int V, class T>
__device__ __forceinline__ void load_depthwise_weight_tile(const T* __restrict__ w, ADNN_SHARED_PTR(T) wt, int c0,
                                                           int tile_c, int KK, int lanes) {
  for (int e = threadIdx.x; e < tile_c * KK; e += blockDim.x) {
    const int cl = e / KK, k = e % KK;
    wt[(k * V + cl % V) * lanes + cl / V] = w[int64_t(c0) * KK + e];
  }
  __syncthreads();
}

// y (N, OH, OW, C) = Σ_taps x (N, H, W, C) · w (C, KH, KW) [+ b (C), added after the taps as
// the CPU twin does]. grid (tiles, pixel blocks), block lanes × rows, dynamic shared memory
// KH·KW·lanes·V elements; grid-stride over the N·OH·OW output pixels.
template <class T, int V>
__global__ void depthwise_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                         T* __restrict__ y, ConvGeom g, int lanes) {
  ADNN_DYNAMIC_SHARED(T, wt);  // (KH·KW, V, lanes)
  const int KK = int(g.KH * g.KW), c0 = int(blockIdx.x) * lanes * V;
  const int tile_c = lanes * V < int(g.C) - c0 ? lanes * V : int(g.C) - c0;
  load_depthwise_weight_tile<V>(w, wt, c0, tile_c, KK, lanes);
  const int l = int(threadIdx.x) % lanes, r = int(threadIdx.x) / lanes, rows = int(blockDim.x) / lanes;
  if (l * V >= tile_c) return;
  const int64_t c = c0 + l * V, P = g.N * g.OH * g.OW;
  vec_t<T, V> bias{};
  if (b) bias = load_vec<V>(b + c);
  for (int64_t p = int64_t(blockIdx.y) * rows + r; p < P; p += int64_t(gridDim.y) * rows) {
    const int64_t ow = p % g.OW, oh = (p / g.OW) % g.OH, n = p / (g.OW * g.OH);
    vec_t<T, V> s{};
    for_each_input_tap(g, oh, ow, [&](int64_t ih, int64_t iw, int64_t kh, int64_t kw) {
      const vec_t<T, V> xv = load_vec<V>(x + ((n * g.H + ih) * g.W + iw) * g.C + c);
      const int k = int(kh * g.KW + kw);
      ADNN_UNROLL
      for (int j = 0; j < V; ++j) s.v[j] += xv.v[j] * T(wt[(k * V + j) * lanes + l]);
    });
    if (b) {
      ADNN_UNROLL
      for (int j = 0; j < V; ++j) s.v[j] += bias.v[j];
    }
    store_vec<V>(y + p * g.C + c, s);
  }
}

// gx (N, H, W, C) = Σ over the (output pixel, tap) pairs that read each input pixel of
// gy (N, OH, OW, C) · w (gather form, no atomics). Same tiling as the forward; grid-stride over
// the N·H·W input pixels.
template <class T, int V>
__global__ void depthwise_backward_input_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                T* __restrict__ gx, ConvGeom g, int lanes) {
  ADNN_DYNAMIC_SHARED(T, wt);  // (KH·KW, V, lanes)
  const int KK = int(g.KH * g.KW), c0 = int(blockIdx.x) * lanes * V;
  const int tile_c = lanes * V < int(g.C) - c0 ? lanes * V : int(g.C) - c0;
  load_depthwise_weight_tile<V>(w, wt, c0, tile_c, KK, lanes);
  const int l = int(threadIdx.x) % lanes, r = int(threadIdx.x) / lanes, rows = int(blockDim.x) / lanes;
  if (l * V >= tile_c) return;
  const int64_t c = c0 + l * V, P = g.N * g.H * g.W;
  for (int64_t p = int64_t(blockIdx.y) * rows + r; p < P; p += int64_t(gridDim.y) * rows) {
    const int64_t iw = p % g.W, ih = (p / g.W) % g.H, n = p / (g.W * g.H);
    vec_t<T, V> s{};
    for_each_tap_reading(g, ih, iw, [&](int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
      const vec_t<T, V> gv = load_vec<V>(gy + ((n * g.OH + oh) * g.OW + ow) * g.C + c);
      const int k = int(kh * g.KW + kw);
      ADNN_UNROLL
      for (int j = 0; j < V; ++j) s.v[j] += gv.v[j] * T(wt[(k * V + j) * lanes + l]);
    });
    store_vec<V>(gx + p * g.C + c, s);
  }
}

// Weight gradient, stage 1 of 2: part[s, c, k] = Σ_{p in slice s} gy[p, c] · x[tap k of p, c]
// over the output pixels p of slice s (pixels_per_slice consecutive ones). grid (tiles, KH·KW,
// slices), block lanes × rows; each thread sums its pixels (rows apart) in registers, then
// the rows of a lane are added in shared memory in a fixed order (deterministic, no atomics).
// Dynamic shared memory: V · blockDim.x accumulators.
template <class T, int V>
__global__ void depthwise_backward_weight_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                                 acc_t<T>* __restrict__ part, ConvGeom g, int lanes,
                                                 int64_t pixels_per_slice) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, red);  // (V, blockDim.x)
  const int KK = int(g.KH * g.KW), k = int(blockIdx.y), c0 = int(blockIdx.x) * lanes * V;
  const int tile_c = lanes * V < int(g.C) - c0 ? lanes * V : int(g.C) - c0;
  const int l = int(threadIdx.x) % lanes, r = int(threadIdx.x) / lanes, rows = int(blockDim.x) / lanes;
  const bool active = l * V < tile_c;
  const int64_t c = c0 + l * V, kh = k / g.KW, kw = k % g.KW, P = g.N * g.OH * g.OW;
  const int64_t p0 = int64_t(blockIdx.z) * pixels_per_slice;
  const int64_t p1 = p0 + pixels_per_slice < P ? p0 + pixels_per_slice : P;
  A s[V] = {};
  if (active)
    for (int64_t p = p0 + r; p < p1; p += rows) {
      const int64_t ow = p % g.OW, oh = (p / g.OW) % g.OH, n = p / (g.OW * g.OH);
      const int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
      if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) continue;
      const vec_t<T, V> gv = load_vec<V>(gy + p * g.C + c);
      const vec_t<T, V> xv = load_vec<V>(x + ((n * g.H + ih) * g.W + iw) * g.C + c);
      ADNN_UNROLL
      for (int j = 0; j < V; ++j) s[j] += A(xv.v[j] * gv.v[j]);
    }
  ADNN_UNROLL
  for (int j = 0; j < V; ++j) red[j * int(blockDim.x) + int(threadIdx.x)] = s[j];
  __syncthreads();
  if (r != 0 || !active) return;
  ADNN_UNROLL
  for (int j = 0; j < V; ++j) {
    A t = 0;
    for (int q = 0; q < rows; ++q) t += red[j * int(blockDim.x) + q * lanes + l];
    part[(int64_t(blockIdx.z) * g.C + c + j) * KK + k] = t;
  }
}

// Weight gradient, stage 2 of 2: gw[e] = Σ_s part[s, e] over the slices, e = (c, kh, kw) in
// gw's own (C, KH, KW) order; one thread per weight, coalesced along e.
template <class T>
__global__ void depthwise_weight_grad_sum_kernel(const acc_t<T>* __restrict__ part, T* __restrict__ gw, int64_t slices,
                                                 int64_t n) {
  grid_stride(n, [&](int64_t e) {
    acc_t<T> s = 0;
    for (int64_t q = 0; q < slices; ++q) s += part[q * n + e];
    gw[e] = T(s);
  });
}

// Output pixels per slice of the weight gradient's stage 1: at least 8 per row of a block, at
// most 1024 slices.
inline int64_t depthwise_pixels_per_slice(int64_t P, int rows) {
  const int64_t floor_px = int64_t(rows) * 8, even = (P + 1023) / 1024;
  return floor_px > even ? floor_px : even;
}

template <class T>
__global__ void bias_add_kernel(T* __restrict__ y, const T* __restrict__ b, int64_t rows, int64_t O) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < rows * O; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += b[i % O];
}

}  // namespace adnn::kernels
