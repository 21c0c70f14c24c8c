#pragma once
// CBAM kernels (Woo et al. 2018), NHWC, forward and backward.
//
// channel_pool: x (N, P, C), P = H·W  ->  out (N, 2, C) = [mean over P; max over P] and the
//   argmax (N, C) int64 (first index on ties) for backward. One pass over x produces both.
//   Block (32, 8): 32 channels (coalesced) × 8 row lanes striding over P; grid (⌈C/32⌉, N, S):
//   S = position_slices(N, P, C) slices of P — one unless the ⌈C/32⌉·N blocks are fewer than
//   1024 and P > 256 (an early stage at a small batch — SE's pool in B5's first stage at 456²,
//   batch 8: C = 48, P = 51,984 gave 16 blocks; now 2,048 of 407 positions), as reduce_cols. With S > 1
//   each block writes its slice's (sum, max, argmax) to a workspace (2·N·S·C acc_t, N·S·C
//   int64) and channel_pool_finish merges the S partials in slice order, one thread per (n, c):
//   a function of the shape, so deterministic, and argmax_merge keeps the first index.
//   Cost: reads N·P·C, writes 2·N·C values (+ 3·N·S·C written and read with S > 1).
//   backward: gx[n,p,c] = g[n,0,c] / P + [p = argmax] · g[n,1,c]. The forward's block (32, 8),
//   grid (⌈C/32⌉, N, slices of P up to ~1024 blocks): each thread loads its channel's three
//   values once and writes its positions of the slice, 32 channels per warp store.
// spatial_pool: x (M, C), M = N·H·W  ->  out (M, 2) = [mean over C, max over C] and the argmax
//   (M) int64. One warp per kSpatialPixels = 8 consecutive pixels: the warp reduces each
//   pixel's row (lanes stride over C, coalesced), lane j keeps pixel j's result, and lanes
//   0..7 then store the 8 (mean, max) pairs (one 2-element vector each when aligned: 8 lanes ×
//   8 bytes = 2 full sectors for f32) and the 8 argmaxes (64 contiguous bytes) — instead of
//   three 1-lane stores per pixel. 8 warps (64 pixels) per 256-thread block.
//   Cost: reads M·C, writes 2·M values and M int64.
//   backward: gx[m,c] = g[m,0] / C + [c = argmax] · g[m,1]. The same warp ↔ 8-pixel mapping:
//   lanes 0..7 load the 8 pixels' (g mean, g max) pairs and argmaxes (coalesced, not a
//   32-lane broadcast per element as one thread per element gave: 71% coalescing on nano),
//   the warp writes each pixel's row with lanes along C (shuffles pass the pixel's values).
//   Cost: reads 2·M values and M int64, writes M·C.
//   channel_pool backward, measured (paper step at 64×64, batch 2,
//   docs/results/2026-12-01-kernel-report-adnn_fer_paper.md): 100.0 % coalesced, 5.21 sectors
//   per load request (the int64 argmax: 8 per 32 lanes), 3.91 per store (88.0 % with one
//   thread per element); the select of g max is a bit mask (value_or_zero), so the emulator's
//   GCC code keeps one store instruction as nvcc's does.
//   Measured (emulated trace, `adnn-fer profile --model adnn_fer_nano --train --batch 2`,
//   docs/results/2026-11-30-kernel-report-adnn_fer_nano.md): forward 100 % coalesced (89.1 %
//   before), backward 96.6 % (71 % with one thread per element; 87.6 % while the argmax
//   element was a per-element select, which GCC split into two store instructions; now the
//   row of means, then the argmax element by its lane: 2.00 sectors per load request, 3.57
//   per store, the one-lane fix-up stores included).
// sigmoid_gate: y = x · σ(a), x (N, P, C), a broadcast per (n, c) (channel mode, a (N, C))
//   or per (n, p) (spatial mode, a (N, P)). x, y, g, gx in T (f16/bf16 natively); the logits a
//   and their gradient ga in acc_t<T> (f32 for the 16-bit types). Forward one thread per element (reads 2, writes 1).
//   backward fuses gx = g · σ(a) with ga = σ'(a) · Σ g·x over the broadcast dim: channel mode
//   with the channel_pool thread layout and its position slices (partial Σ g·x per slice to
//   an N·S·C workspace, sigmoid_gate_channel_finish adds them in order), spatial mode one warp
//   per pixel. Cost: reads g and x once, writes gx and ga.
#include "common.cuh"
#include "common/reduce.hpp"
#include "reduce.cuh"
#include "vector.cuh"

#include <type_traits>

namespace adnn::kernels {

// ---------------------------------------------------------------- channel pool
// Slices of P for the channel pool, SE's pool and the channel gate's backward: reduce_cols'
// rule (a function of the shape only, so the summation order is too), and the positions per
// slice (the last slice may be short; with S = 1 all of P).
inline int64_t position_slices(int64_t N, int64_t P, int64_t C) {
  return reduce_cols_slices(N, P, C);
}
inline int64_t positions_per_slice(int64_t P, int64_t S) {
  return S > 1 ? (P + S - 1) / S : P;
}

// The (n, c) result of the channel pool from its sum, maximum and first argmax over P.
template <class T, class A>
__device__ __forceinline__ void channel_pool_store(T* __restrict__ out, int64_t* __restrict__ am, int64_t n, int64_t c,
                                                   int64_t P, int64_t C, A s, A best, int64_t bi) {
  out[n * 2 * C + c] = store_as<T>(P > 0 ? s / A(P) : A(0));
  out[n * 2 * C + C + c] = store_as<T>(best);
  am[n * C + c] = bi;
}

// per: positions per slice (blockIdx.z); part/part_idx: with S = gridDim.z > 1 the workspace
// (2, N, S, C) sums then maxima and (N, S, C) argmaxes, else null (the result goes to out/am).
template <class T>
__global__ void channel_pool_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t* __restrict__ am,
                                    acc_t<T>* __restrict__ part, int64_t* __restrict__ part_idx, int64_t N, int64_t P,
                                    int64_t C, int64_t per) {
  using A = acc_t<T>;
  ADNN_SHARED(A, ssum, [8][33]);
  ADNN_SHARED(A, smax, [8][33]);
  ADNN_SHARED(int64_t, sidx, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * 32 + tx, z = blockIdx.z, S = gridDim.z;
  const int64_t p0 = z * per, p1 = p0 + per < P ? p0 + per : P;
  A s = 0, best = -INFINITY;
  int64_t bi = -1;
  if (c < C)
    for (int64_t p = p0 + ty; p < p1; p += 8) {
      const A v = load_as<A>(x[(n * P + p) * C + c]);
      s += v;
      argmax_merge(best, bi, v, p);
    }
  ssum[ty][tx] = s;
  smax[ty][tx] = best;
  sidx[ty][tx] = bi;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int r = 1; r < 8; ++r) {
      s += ssum[r][tx];
      argmax_merge(best, bi, A(smax[r][tx]), int64_t(sidx[r][tx]));
    }
    if (part) {
      const int64_t e = (n * S + z) * C + c;
      part[e] = s;
      part[N * S * C + e] = best;
      part_idx[e] = bi;
    } else {
      channel_pool_store(out, am, n, c, P, C, s, best, bi);
    }
  }
}

// The S slices' partials of (n, c) merged in slice order; one thread per (n, c), consecutive
// threads along c (coalesced partial reads).
template <class T>
__global__ void channel_pool_finish_kernel(const acc_t<T>* __restrict__ part, const int64_t* __restrict__ part_idx,
                                           T* __restrict__ out, int64_t* __restrict__ am, int64_t N, int64_t S,
                                           int64_t P, int64_t C) {
  using A = acc_t<T>;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < N * C; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = e / C, c = e % C;
    A s = 0, best = -INFINITY;
    int64_t bi = -1;
    for (int64_t z = 0; z < S; ++z) {
      const int64_t f = (n * S + z) * C + c;
      s += part[f];
      argmax_merge(best, bi, A(part[N * S * C + f]), part_idx[f]);
    }
    channel_pool_store(out, am, n, c, P, C, s, best, bi);
  }
}

// Block (32, 8): 32 channels × 8 position lanes, as the forward; grid (⌈C/32⌉, N, slices of
// P). A thread loads its channel's g mean, g max and argmax once (coalesced along c) and
// writes gx for its positions of the slice, a warp storing 32 consecutive channels of one
// position. (One thread per element re-read the three per-channel values for every position
// and loaded g max only in the argmax lanes: 88.0 % coalesced in the paper step.)
template <class T>
__global__ void channel_pool_backward_kernel(const T* __restrict__ g, const int64_t* __restrict__ am,
                                             T* __restrict__ gx, int64_t P, int64_t C, int64_t slice) {
  using A = acc_t<T>;
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * 32 + threadIdx.x, p0 = int64_t(blockIdx.z) * slice;
  const int64_t p1 = p0 + slice < P ? p0 + slice : P;
  if (c >= C || p0 + threadIdx.y >= p1) return;  // (rows past a short slice load nothing)
  const A mean = load_as<A>(g[n * 2 * C + c]) / A(P), mx = load_as<A>(g[n * 2 * C + C + c]);
  const int64_t a = am[n * C + c];
  for (int64_t p = p0 + threadIdx.y; p < p1; p += 8)
    gx[(n * P + p) * C + c] = store_as<T>(mean + value_or_zero(p == a, mx));
}

// ---------------------------------------------------------------- spatial pool
inline constexpr int kSpatialPixels = 8;  // pixels per warp

// V = 2: the (mean, max) pairs of out / g are 2·sizeof(T)-aligned, one vector access per pixel.
template <class T, int V>
__global__ void spatial_pool_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t* __restrict__ am,
                                    int64_t M, int64_t C) {
  using A = acc_t<T>;
  const int64_t m0 = (int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32) * kSpatialPixels;
  const int lane = threadIdx.x % 32;
  if (m0 >= M) return;  // uniform per warp
  const int count = int(M - m0 < kSpatialPixels ? M - m0 : kSpatialPixels);
  A my_mean = 0, my_max = 0;
  int64_t my_arg = -1;
  for (int j = 0; j < count; ++j) {
    const T* row = x + (m0 + j) * C;  // (C)
    A s = 0, best = -INFINITY;
    int64_t bi = -1;
    for (int64_t c = lane; c < C; c += 32) {
      const A v = load_as<A>(row[c]);
      s += v;
      argmax_merge(best, bi, v, c);
    }
    for (int off = 16; off > 0; off >>= 1) {
      s += __shfl_xor_sync(0xffffffffu, s, off);
      const A ob = __shfl_xor_sync(0xffffffffu, best, off);
      const int64_t oi = __shfl_xor_sync(0xffffffffu, bi, off);
      argmax_merge(best, bi, ob, oi);
    }
    if (lane == j) {
      my_mean = C > 0 ? s / A(C) : A(0);
      my_max = best;
      my_arg = bi;
    }
  }
  if (lane < count) {
    const int64_t m = m0 + lane;
    if constexpr (V == 2) {
      vec_t<T, 2> pair;
      pair.v[0] = store_as<T>(my_mean);
      pair.v[1] = store_as<T>(my_max);
      store_vec<2>(out + m * 2, pair);
    } else {
      out[m * 2] = store_as<T>(my_mean);
      out[m * 2 + 1] = store_as<T>(my_max);
    }
    am[m] = my_arg;
  }
}

template <class T, int V>
__global__ void spatial_pool_backward_kernel(const T* __restrict__ g, const int64_t* __restrict__ am,
                                             T* __restrict__ gx, int64_t M, int64_t C) {
  using A = acc_t<T>;
  const int64_t m0 = (int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32) * kSpatialPixels;
  const int lane = threadIdx.x % 32;
  if (m0 >= M) return;  // uniform per warp
  const int count = int(M - m0 < kSpatialPixels ? M - m0 : kSpatialPixels);
  A g_mean = 0, g_max = 0;  // lane j < count: pixel m0 + j's gradients (mean already / C)
  int64_t arg = -1;
  if (lane < count) {
    const int64_t m = m0 + lane;
    if constexpr (V == 2) {
      const vec_t<T, 2> pair = load_vec<2>(g + m * 2);
      g_mean = load_as<A>(pair.v[0]);
      g_max = load_as<A>(pair.v[1]);
    } else {
      g_mean = load_as<A>(g[m * 2]);
      g_max = load_as<A>(g[m * 2 + 1]);
    }
    g_mean /= A(C);
    arg = am[m];
  }
  for (int j = 0; j < count; ++j) {
    const A gm = __shfl_sync(0xffffffffu, g_mean, j), gk = __shfl_sync(0xffffffffu, g_max, j);
    const int64_t a = __shfl_sync(0xffffffffu, arg, j);
    T* row = gx + (m0 + j) * C;  // (C)
    // the row of means in one store instruction per 32 channels, then the argmax element by
    // the lane that wrote it (program order: its value wins). A per-element select here was
    // compiled by GCC into two store instructions, which split every row's requests
    // (87.6 % coalescing in the emulator's trace; docs/kernels.md)
    for (int64_t c = lane; c < C; c += 32) row[c] = store_as<T>(gm);
    if (a >= 0 && a % 32 == lane) row[a] = store_as<T>(gm + gk);
  }
}

// ---------------------------------------------------------------- sigmoid gate
enum GateMode : int { gate_channel, gate_spatial };

template <class T>
__global__ void sigmoid_gate_kernel(const T* __restrict__ x, const acc_t<T>* __restrict__ a, T* __restrict__ y,
                                    int64_t N, int64_t P, int64_t C, int mode) {
  using A = acc_t<T>;
  const int64_t total = N * P * C;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % C, np = e / C, n = np / P;
    const A s = sigmoid(a[mode == gate_channel ? n * C + c : np]);
    y[e] = store_as<T>(load_as<A>(x[e]) * s);
  }
}

// Channel mode: the channel_pool layout and position slices; ga[n, c] = σ'(a) Σ_p g·x.
// (a and ga in acc_t<T>: f32 logits for 16-bit g, x, gx.) part: with S = gridDim.z > 1 the
// (N, S, C) partial sums of g·x, else null (ga written here).
template <class T>
__global__ void sigmoid_gate_backward_channel_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                                     const acc_t<T>* __restrict__ a, T* __restrict__ gx,
                                                     acc_t<T>* __restrict__ ga, acc_t<T>* __restrict__ part, int64_t P,
                                                     int64_t C, int64_t per) {
  using A = acc_t<T>;
  ADNN_SHARED(A, sacc, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * 32 + tx, z = blockIdx.z, S = gridDim.z;
  const int64_t p0 = z * per, p1 = p0 + per < P ? p0 + per : P;
  A acc = 0, s = 0;
  if (c < C) {
    s = sigmoid(A(a[n * C + c]));
    for (int64_t p = p0 + ty; p < p1; p += 8) {
      const int64_t e = (n * P + p) * C + c;
      const A gv = load_as<A>(g[e]);
      if (gx) gx[e] = store_as<T>(gv * s);
      acc += gv * load_as<A>(x[e]);
    }
  }
  sacc[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < C && ga) {
    for (int r = 1; r < 8; ++r) acc += sacc[r][tx];
    if (part)
      part[(n * S + z) * C + c] = acc;
    else
      ga[n * C + c] = acc * s * (A(1) - s);
  }
}

// ga[n, c] = σ'(a) · the S partials of (n, c) added in slice order; one thread per (n, c).
template <class A>
__global__ void sigmoid_gate_channel_finish_kernel(const A* __restrict__ part, const A* __restrict__ a,
                                                   A* __restrict__ ga, int64_t N, int64_t S, int64_t C) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < N * C; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = e / C, c = e % C;
    A acc = 0;
    for (int64_t z = 0; z < S; ++z) acc += part[(n * S + z) * C + c];
    const A s = sigmoid(a[e]);
    ga[e] = acc * s * (A(1) - s);
  }
}

// Spatial mode: one warp per pixel m = (n, p); ga[m] = σ'(a) Σ_c g·x.
template <class T>
__global__ void sigmoid_gate_backward_spatial_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                                     const acc_t<T>* __restrict__ a, T* __restrict__ gx,
                                                     acc_t<T>* __restrict__ ga, int64_t M, int64_t C) {
  using A = acc_t<T>;
  const int64_t m = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (m >= M) return;
  const A s = sigmoid(A(a[m]));
  A acc = 0;
  for (int64_t c = lane; c < C; c += 32) {
    const A gv = load_as<A>(g[m * C + c]);
    if (gx) gx[m * C + c] = store_as<T>(gv * s);
    acc += gv * load_as<A>(x[m * C + c]);
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0 && ga) ga[m] = acc * s * (A(1) - s);
}

// ---------------------------------------------------------------- launches
inline dim3 cbam_grid(int64_t n) { return dim3(unsigned(std::min<int64_t>((n + 255) / 256, 65535))); }

// part, part_idx: 2·N·S·C acc_t<T> and N·S·C int64 when S = position_slices(N, P, C) > 1.
template <class T>
void launch_channel_pool(const T* x, T* out, int64_t* am, acc_t<T>* part, int64_t* part_idx, int64_t N, int64_t P,
                         int64_t C, Stream stream) {
  if (N * C == 0) return;
  const int64_t S = position_slices(N, P, C);
  ADNN_CHECK(N <= 65535, "channel_pool: grid (", ceil_div(C, 32), ", ", N, ", ", S, ") over the limits");
  ADNN_CHECK(S == 1 || (part && part_idx), "channel_pool: P = ", P, " is split into ", S,
             " slices, and no workspace for their partials was given");
  ADNN_LAUNCH(channel_pool_kernel<T>, dim3(ceil_div(C, 32), unsigned(N), unsigned(S)), dim3(32, 8), 0, stream, x, out,
              am, S > 1 ? part : static_cast<acc_t<T>*>(nullptr), part_idx, N, P, C, positions_per_slice(P, S));
  if (S > 1)
    ADNN_LAUNCH(channel_pool_finish_kernel<T>, grid_for(N * C), dim3(256), 0, stream,
                static_cast<const acc_t<T>*>(part), static_cast<const int64_t*>(part_idx), out, am, N, S, P, C);
}
template <class T>
void launch_channel_pool_backward(const T* g, const int64_t* am, T* gx, int64_t N, int64_t P, int64_t C,
                                  Stream stream) {
  if (N * P * C == 0) return;
  // slices of P (multiples of the 8 position lanes) until ~1024 blocks
  const int64_t tiles = ceil_div(C, 32) * N, want = std::clamp<int64_t>(ceil_div(1024, tiles), 1, ceil_div(P, 8));
  const int64_t slice = ceil_div(ceil_div(P, want), 8) * 8, slices = ceil_div(P, slice);
  ADNN_CHECK(N <= 65535 && slices <= 65535, "channel_pool_backward: grid (", ceil_div(C, 32), ", ", N, ", ", slices,
             ") over the limits");
  ADNN_LAUNCH(channel_pool_backward_kernel<T>, dim3(ceil_div(C, 32), unsigned(N), unsigned(slices)), dim3(32, 8), 0,
              stream, g, am, gx, P, C, slice);
}
// 8 warps of kSpatialPixels pixels per 256-thread block
inline dim3 spatial_pool_grid(int64_t M) { return dim3(unsigned(ceil_div(M, 8 * kSpatialPixels))); }
template <class T>
void launch_spatial_pool(const T* x, T* out, int64_t* am, int64_t M, int64_t C, Stream stream) {
  if (M == 0) return;
  if (vector_width<T>(2, {out}) >= 2)
    ADNN_LAUNCH((spatial_pool_kernel<T, 2>), spatial_pool_grid(M), dim3(256), 0, stream, x, out, am, M, C);
  else
    ADNN_LAUNCH((spatial_pool_kernel<T, 1>), spatial_pool_grid(M), dim3(256), 0, stream, x, out, am, M, C);
}
template <class T>
void launch_spatial_pool_backward(const T* g, const int64_t* am, T* gx, int64_t M, int64_t C, Stream stream) {
  if (M * C == 0) return;
  if (vector_width<T>(2, {g}) >= 2)
    ADNN_LAUNCH((spatial_pool_backward_kernel<T, 2>), spatial_pool_grid(M), dim3(256), 0, stream, g, am, gx, M, C);
  else
    ADNN_LAUNCH((spatial_pool_backward_kernel<T, 1>), spatial_pool_grid(M), dim3(256), 0, stream, g, am, gx, M, C);
}
template <class T>
void launch_sigmoid_gate(const T* x, const acc_t<T>* a, T* y, int64_t N, int64_t P, int64_t C, GateMode mode,
                         Stream stream) {
  if (N * P * C == 0) return;
  ADNN_LAUNCH(sigmoid_gate_kernel<T>, cbam_grid(N * P * C), dim3(256), 0, stream, x, a, y, N, P, C, int(mode));
}
// part: N·S·C acc_t<T> when channel mode, ga is wanted and S = position_slices(N, P, C) > 1.
template <class T>
void launch_sigmoid_gate_backward(const T* g, const T* x, const acc_t<T>* a, T* gx, acc_t<T>* ga, acc_t<T>* part,
                                  int64_t N, int64_t P, int64_t C, GateMode mode, Stream stream) {
  using A = acc_t<T>;
  if (N * P * C == 0) return;
  if (mode == gate_channel) {
    const int64_t S = position_slices(N, P, C);
    A* partials = S > 1 && ga ? part : static_cast<A*>(nullptr);
    ADNN_CHECK(N <= 65535, "sigmoid_gate backward: grid (", ceil_div(C, 32), ", ", N, ", ", S, ") over the limits");
    ADNN_CHECK(S == 1 || !ga || part, "sigmoid_gate backward: P = ", P, " is split into ", S,
               " slices, and no workspace for their partials was given");
    ADNN_LAUNCH(sigmoid_gate_backward_channel_kernel<T>, dim3(ceil_div(C, 32), unsigned(N), unsigned(S)), dim3(32, 8),
                0, stream, g, x, a, gx, ga, partials, P, C, positions_per_slice(P, S));
    if (partials)
      ADNN_LAUNCH(sigmoid_gate_channel_finish_kernel<A>, grid_for(N * C), dim3(256), 0, stream,
                  static_cast<const A*>(partials), a, ga, N, S, C);
  } else {
    ADNN_LAUNCH(sigmoid_gate_backward_spatial_kernel<T>, dim3(ceil_div(N * P, 8)), dim3(256), 0, stream, g, x, a, gx,
                ga, N * P, C);
  }
}

}  // namespace adnn::kernels
