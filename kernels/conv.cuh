#pragma once
// Convolution kernels, NHWC activations, weights (O, KH, KW, C/groups).
//
// im2col: col[r, (kh, kw, c)] = x[n, oh·sh - pt + kh·dh, ow·sw - pl + kw·dw, g·Cg + c] (0 in
//   the padding), r = (n, oh, ow) over a chunk of images. Channel groups of 128 bytes or more
//   (im2col_kernel): one thread per col element, c fastest, each pixel's channels one
//   coalesced run. Narrower groups (im2col_tiled_kernel, the stem's 3 channels): a block
//   stages the KH input row segments of tw output pixels in shared memory, read as
//   contiguous runs, and writes its tw·KK column entries as one contiguous run, every warp
//   request on 32 aligned elements (see "im2col, narrow channels" below). The GEMM col · Wᵀ then gives the
//   output (cuBLAS on a GPU). f16/bf16 x: the forward gathers 16-bit columns for a 16-bit
//   GEMM (cuBLASLt, f32 accumulation, the bias in its epilogue, one rounding); the backward
//   gathers f32 columns (widened in the gather) and runs f32 GEMMs and col2im on f32
//   copies of gy and w, rounding gx and gw once (src/cuda/conv.cpp; the CPU twin alike, but
//   for the stride-1 input gradients it takes as the transposed forward, below).
// col2im: gx[n, ih, iw, g·Cg + c] += Σ of the col entries that read that pixel, in the
//   gather form (one thread per input element summing its own taps): no atomics. Groups of
//   128 bytes or more (col2im_kernel): dcol (nb·OH·OW, KK), each tap's Cg channels one run.
//   Narrower groups (col2im_tiled_kernel, CBAM's 2-channel 7×7): the GEMM writes dcol
//   transposed, (KK, nb·OH·OW), and a block stages each kernel row's taps for its tile of gx
//   in shared memory (see "col2im, narrow channels" below); the sums are the same, in the
//   same tap order, as the CPU twin's where it uses col2im too. For most stride-1 convolutions
//   (common::use_transposed_backward) the CPU twin computes the same sums as the transposed
//   convolution's forward instead (im2col of gy, one GEMM; another summation order): on the CPU the
//   dcol round trip through memory cost more than the GEMM (docs/results.md, "CPU
//   convolutions"). Whether it pays on a GPU too is not measured (no GPU lent yet).
// depthwise (groups == C == O): direct kernels, x, y, gx, gy (N, H|OH, W|OW, C), w (C, KH, KW).
//   Storage T is f32, f64, or f16/bf16 natively; the math is in A = acc_t<T> (f32 for the
//   16-bit types: loaded widened, accumulated in f32, stored rounded once), and the weight
//   tile in shared memory holds A.
//   Thread mapping (DepthwiseTiling): lanes along C, each lane V consecutive channels loaded
//   and stored as one 16-byte vector (V = 4 for f32, 2 for f64, 8 for f16/bf16) when C and
//   the pointers allow, else narrower (scalar fallback); C/V split into tiles of ≤ 32 lanes (grid.x);
//   a block is lanes × rows threads, rows = ⌊256 / lanes⌋ pixels at a time.
//   forward: y[p, c] = Σ_taps x[tap(p), c] · w[c, tap] (+ b[c] after the taps, as the CPU
//     twin); grid-stride over the N·OH·OW pixels, ~4 per thread. The block's weight tile
//     (KH·KW × lanes·V) is read once from w (contiguous) into shared memory, transposed to
//     (V, tap, lane) so that each tap is one conflict-free shared read per lane.
//   backward input: gx[p, c] = Σ over the (output pixel, tap) pairs that read input pixel p
//     of gy · w (gather form, no atomics); same tiling and weight tile as the forward.
//   row-tiled forward and input gradient (depthwise_forward_rows_kernel, _backward_input_rows_;
//     KW 3 or 5, column dilation 1, column stride 1 or 2 forward, 1 backward — EfficientNet's
//     depthwise layers): a thread's item is TW = 4 consecutive pixels of a row; per kernel row
//     it copies the row's KW·V weights from the tile into registers once and reads each of the
//     (TW − 1)·SW + KW vectors of the row the item needs once (3×3, stride 1: 6 vector loads
//     and 12 shared reads per 4 outputs and kernel row, where the per-pixel kernel makes 12
//     and 48) — the same taps in the same order per pixel, so the same bits. Why: per warp a
//     16-byte vector load and a tap's V shared reads are 4 wavefronts each, so the per-pixel
//     kernel moves ~8·KH·KW wavefronts per pixel row of 32 lanes through L1/shared memory
//     against ~2 × 4 of compulsory HBM traffic; at sm_90's 128 bytes per clock per SM and
//     ~18 bytes of HBM per clock per SM, a 3×3 layer was bound by L1 (≈ 76 against 56 clocks
//     per 32 pixels-lanes) and a 5×5 one ~3.6× over its HBM time. Row-tiled: ≈ 31 and 69.
//     Loads in flight (2026-12-05): every direct kernel stages its weight tile 16 elements a
//     thread at a time, all 16 loads issued before the first store, and the row-tiled ones
//     load a kernel row's J input vectors in batches before using them (for_each_row_vector),
//     where nvcc had made one dependent global round trip per element and per column. The
//     cost is registers (docs/kernels.md, "Depthwise loads in flight").
//   backward weight, two stages, deterministic (no atomics): stage 1, grid (tiles, groups of
//     R taps, slices of ≥ 8·rows output pixels; R = 9, or 5 for 16-bit storage), loads
//     gy[p, c] once per pixel and sums gy[p, c] · x[tap(p), c] for each of the group's taps
//     over its slice in R·V registers (a 3×3 kernel is one group in f32: gy read once, not 9
//     times), adds its rows in shared memory tap by tap in a fixed order and stores the
//     (slice, tap, C) partials as vectors; stage 2 (depthwise_weight_grad_sum_kernel), one block per 32
//     channels, sums the slices in order (eight slices' loads in flight: up to 1,024 slices),
//     transposes through shared memory and writes gw in its (C, KH, KW) order.
//   Indices: channel, lane and tap indices are int; pixel and element offsets are the
//   launch's index type I, int32 when every tensor of the launch has fewer than 2^30 elements
//   (depthwise_index_fits; cheaper divisions on the device), int64 otherwise.
// bias_add: y[r, o] += b[o].
// Cost: im2col writes |col| = N·OH·OW·KH·KW·Cg elements; the direct kernel reads as many
//   (cached), the tiled one stages ~KH·|x|·(tw·sw + KW)/(tw·sw) and reads each staged
//   element from shared memory KW/sw times; no flops: memory bound.
//   depthwise forward and input gradient: 2·KH·KW flops per output element, read
//   KH·KW·|x| bytes from L1/L2 (|x| + |y| compulsory, plus KH·KW·C weights per block) and
//   write |y|; weight gradient: stage 1 reads ⌈KH·KW/R⌉·|gy| + KH·KW·|x| (|gy| + |x| compulsory),
//   2·KH·KW flops per output element, writes slices·KH·KW·C partials (f32 for f32, f64 for
//   f64) that stage 2 reads once: memory bound.
// Measured coalescing, im2col (B5 step below, its stem: 3 channels, 3×3, stride 2): the direct
//   kernel 74.8 %, 0.552 MB fetched; the tiled one 100.0 %, 0.367 MB (0.319 compulsory),
//   4.00 sectors per load and store request, 1.23 shared wavefronts per request, at most
//   2-way (tests/test_trace.cpp checks ≥ 90 % and ≤ 2-way over stems, 5×5, 7×7/2, groups).
//   sm_90 (docs/results/kernel-resources-sm90.md): 32 registers with int indices, 100 %
//   theoretical occupancy at 256 threads (≤ 16 KiB of staged rows per block), no spills.
// Measured coalescing (emulator access trace, one training step of efficientnet_b5 at
//   64×64, batch 1, docs/results/2026-11-30-kernel-report-efficientnet_b5.md): forward
//   99.4 %, input gradient 99.4 %, weight gradient stage 1 99.7 %, stage 2 100 % (before this
//   layout: 23.2 %, 23.4 %, 12.5 %). Shared memory: the taps' reads are conflict-free; the
//   weight tile's transposed stores, in w's order, land on consecutive rows of the (V, tap,
//   lane) tile — an odd pitch keeps them at most 2-way where a warp spans two lanes' rows
//   (depthwise_tiling picks the pitch with the fewest): at most 2-way, 1.03 wavefronts per
//   request over the forward and 1.02 over the input gradient (B5 step above, `adnn-fer
//   profile --model efficientnet_b5 --classes 7 --train --batch 1 --image-size 64`). The
//   (tap, V, lane) layout before put consecutive taps V rows apart: 4-way for V = 4, 1.18 and
//   1.16 wavefronts per request.
#include "common/conv.hpp"
#include "loops.cuh"
#include "reduce.cuh"
#include "vector.cuh"

#include <algorithm>
#include <map>
#include <tuple>

namespace adnn::kernels {

// x's value as a column entry: T itself, or widened to TC = f32 for a 16-bit x.
template <class T, class TC>
__device__ __forceinline__ TC im2col_value(T v) {
  if constexpr (std::is_same_v<T, TC>)
    return v;
  else
    return store_as<TC>(load_as<acc_t<T>>(v));
}

// TC: the columns' type — T, or f32 for 16-bit x (the widening fused into the gather).
template <class T, class TC = T>
__global__ void im2col_kernel(const T* __restrict__ x, TC* __restrict__ col, ConvGeom g, int64_t n0, int64_t nb,
                              int64_t gi) {
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg, total = nb * g.OH * g.OW * KK;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = i % KK, r = i / KK;
    const int64_t c = k % Cg, kw = (k / Cg) % g.KW, kh = k / (Cg * g.KW);
    const int64_t ow = r % g.OW, oh = (r / g.OW) % g.OH, n = n0 + r / (g.OW * g.OH);
    const int64_t ih = oh * g.sh - g.pt + kh * g.dh, iw = ow * g.sw - g.pl + kw * g.dw;
    col[i] = (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                 ? store_as<TC>(acc_t<TC>(0))
                 : im2col_value<T, TC>(x[((n * g.H + ih) * g.W + iw) * g.C + gi * Cg + c]);
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
  int pitch;  // the weight tile's row pitch in elements (lanes ≤ pitch < lanes + 32)
};

// Bank-conflict count of `total` shared-memory accesses issued in warps of 32 consecutive
// work items: work item e (0 ≤ e < total) runs in lane (e + skew) % 32 of warp (e + skew) / 32
// (the first max_warps warps) and accesses the element of index index_of(e), elem_bytes wide.
// Σ over the warps of the worst bank's distinct 4-byte words (32 banks): Nsight Compute's
// wavefronts, the n-way conflict of each request summed.
template <class F>
int64_t shared_wavefronts(int64_t total, size_t elem_bytes, F&& index_of, int64_t max_warps = 64, int skew = 0) {
  int64_t sum = 0;
  for (int64_t u0 = 0; u0 < total + skew && u0 < 32 * max_warps; u0 += 32) {
    int64_t bank_words[32][64];
    int count[32] = {};
    for (int64_t e = std::max<int64_t>(u0 - skew, 0); e < u0 + 32 - skew && e < total; ++e) {
      const int64_t byte = int64_t(index_of(e)) * int64_t(elem_bytes);
      for (int64_t word = byte / 4; word <= (byte + int64_t(elem_bytes) - 1) / 4; ++word) {
        const int b = int(word % 32);
        bool seen = false;
        for (int i = 0; i < count[b]; ++i) seen = seen || bank_words[b][i] == word;
        if (!seen && count[b] < 64) bank_words[b][count[b]++] = word;
      }
    }
    int most = 0;
    for (int b = 0; b < 32; ++b) most = count[b] > most ? count[b] : most;
    sum += most;
  }
  return sum;
}

// The weight tile's transposed stores (load_depthwise_weight_tile) with row pitch `pitch`.
inline int64_t depthwise_tile_wavefronts(int V, int KK, int tile_c, int pitch, size_t elem_bytes) {
  return shared_wavefronts(int64_t(tile_c) * KK, elem_bytes, [&](int64_t e) {
    const int cl = int(e / KK), k = int(e % KK);
    return int64_t((cl % V) * KK + k) * pitch + cl / V;
  });
}

inline DepthwiseTiling depthwise_tiling(int64_t C, int V, int64_t KK, size_t elem_bytes) {
  // the pitch search costs ~0.1 ms on the host: once per shape and thread
  thread_local std::map<std::tuple<int64_t, int, int64_t, size_t>, DepthwiseTiling> known;
  const auto key = std::make_tuple(C, V, KK, elem_bytes);
  if (auto it = known.find(key); it != known.end()) return it->second;
  const int64_t cv = C / V;
  int64_t tiles = (cv + 31) / 32, lanes = (cv + tiles - 1) / tiles;
  // the forward's and input gradient's weight tile (KK · V · pitch elements, pitch < lanes + 32)
  // within 48 KiB of shared memory
  const int64_t cap = std::max<int64_t>(1, int64_t(49152) / (KK * V * int64_t(elem_bytes)) - 32);
  if (lanes > cap) lanes = cap, tiles = (cv + lanes - 1) / lanes;
  const int tile_c = int(std::min<int64_t>(lanes * V, C));
  int pitch = int(lanes);
  int64_t best = -1;
  for (int p = int(lanes); p < int(lanes) + 32; ++p) {
    const int64_t w = depthwise_tile_wavefronts(V, int(KK), tile_c, p, elem_bytes);
    if (best < 0 || w < best) best = w, pitch = p;
  }
  return known[key] = DepthwiseTiling{int(lanes), int(tiles), int(256 / lanes), pitch};
}

// wt[(j·KK + k)·pitch + l] = w[(c0 + l·V + j)·KK + k] for the tile's tile_c channels, in the
// compute type A: w (C, KH, KW) is read in its own order (one contiguous run per tile:
// coalesced) and written transposed — consecutive elements of w (taps of one channel, then
// the next channel j) to consecutive rows — so that a tap reads one shared word per lane, unit
// stride along the lanes and the same word for every pixel row (a broadcast). The pitch
// (depthwise_tiling) is the one with the fewest bank conflicts for these transposed stores.
// A thread takes up to depthwise_stage_batch<A> elements a round (16 in f32, 8 in f64: 16
// registers) and issues all their loads before the first store, so they are in flight
// together: the loop of one load, a division and a store per element it replaces was, in
// nvcc's code, one dependent global round trip per element before a block's first tap (13 a
// thread for a 5×5 tile of 120 f32 channels on 240 threads; 25 for one of 240 bf16 channels).
template <class A>
inline constexpr int depthwise_stage_batch = int(64 / sizeof(A));
template <int V, class A, class T>
__device__ __forceinline__ void load_depthwise_weight_tile(const T* __restrict__ w, ADNN_SHARED_PTR(A) wt, int c0,
                                                           int tile_c, int KK, int pitch) {
  constexpr int B = depthwise_stage_batch<A>;
  const int n = tile_c * KK, step = int(blockDim.x);
  const T* src = w + int64_t(c0) * KK;
  for (int e0 = int(threadIdx.x); e0 < n; e0 += B * step) {
    A v[B];
    ADNN_UNROLL
    for (int u = 0; u < B; ++u) v[u] = e0 + u * step < n ? load_as<A>(src[e0 + u * step]) : A(0);
    ADNN_UNROLL
    for (int u = 0; u < B; ++u) {
      const int e = e0 + u * step;
      if (e >= n) break;
      const int cl = e / KK, k = e - cl * KK;
      wt[((cl % V) * KK + k) * pitch + cl / V] = v[u];
    }
  }
  __syncthreads();
}

// The prologue of the direct depthwise kernels (forward and input gradient, per-pixel and
// row-tiled): block x's channel tile c0 … c0 + tile_c − 1 (lanes · V channels, fewer at the
// end) has its weights staged by load_depthwise_weight_tile; thread t is lane l = t % lanes
// (channels c0 + l·V …) of row r = t / lanes of rows = blockDim.x / lanes, active while its
// channels lie in the tile.
struct DepthwiseThread {
  int c0, l, r, rows;
  bool active;
};
template <int V, class A, class T>
__device__ __forceinline__ DepthwiseThread stage_depthwise_weight_tile(const T* __restrict__ w,
                                                                       ADNN_SHARED_PTR(A) wt, int C, int KK,
                                                                       int lanes, int pitch) {
  const int c0 = int(blockIdx.x) * lanes * V;
  const int tile_c = lanes * V < C - c0 ? lanes * V : C - c0;
  load_depthwise_weight_tile<V, A>(w, wt, c0, tile_c, KK, pitch);
  const int l = int(threadIdx.x) % lanes;
  return DepthwiseThread{c0, l, int(threadIdx.x) / lanes, int(blockDim.x) / lanes, l * V < tile_c};
}

// The geometry in the index type I of a launch: int (32-bit) when every index of the launch
// fits (depthwise_index_fits), int64_t otherwise; 32-bit divisions and multiplies are several
// times cheaper on the device than 64-bit ones.
template <class I>
struct ConvGeomI {
  I N, H, W, C, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw;
  __device__ __forceinline__ explicit ConvGeomI(const ConvGeom& g)
      : N(I(g.N)), H(I(g.H)), W(I(g.W)), C(I(g.C)), OH(I(g.OH)), OW(I(g.OW)), KH(I(g.KH)), KW(I(g.KW)), sh(I(g.sh)),
        sw(I(g.sw)), pt(I(g.pt)), pl(I(g.pl)), dh(I(g.dh)), dw(I(g.dw)) {}
};
// Whether 32-bit indices suffice: every element offset of x, y (or gx, gy) and the weight
// gradient's partials below 2^30, so that a grid-stride step (< 2^24) cannot overflow either.
inline bool depthwise_index_fits(const ConvGeom& g, int64_t partials = 0) {
  const int64_t lim = int64_t(1) << 30;
  return g.N * g.H * g.W * g.C < lim && g.N * g.OH * g.OW * g.C < lim && partials < lim;
}

// ---------------------------------------------------------------- im2col, narrow channels
// The direct im2col_kernel reads each pixel's Cg channels as one run of Cg·sizeof(T) bytes;
// below 128 bytes (the stem's 3 channels: 12 bytes) a warp's 32 lanes span several runs, KW
// pixels of each of KH input rows apart, and fetch ~6 sectors per request where 4 would do
// (74.8% coalesced in the B5 step). The tiled form (im2col_tiled_kernel): a block takes `tw`
// consecutive output pixels of one output row, stages the KH input row segments they read —
// span = (tw - 1)·sw + (KW - 1)·dw + 1 pixels × Cg channels each, contiguous in NHWC when
// groups == 1 — in shared memory (as TC, zeros in the padding), then writes the tile's tw·KK
// column entries, contiguous in col, from there: both global streams are unit-stride. Staged
// rows lie `pitch` elements apart, the pitch with the fewest bank conflicts over the staging
// stores and the gathering loads together (im2col_tiling).
struct Im2colTiling {
  bool tiled = false;
  int tw = 0, pitch = 0;            // output pixels per block, staged rows' pitch (elements)
  int64_t tiles_w = 0;              // blocks per output row
  size_t smem = 0;                  // dynamic shared bytes: KH·pitch elements of TC
};

// The tiled kernel's shape for g, x elements of x_bytes and columns of col_bytes, or
// tiled = false where the direct kernel's runs already fill lines (Cg·x_bytes ≥ 128) or KH
// staged rows of even one output pixel exceed the 16 KiB budget (then the direct kernel).
inline Im2colTiling im2col_tiling(const ConvGeom& g, size_t x_bytes, size_t col_bytes) {
  // the pitch search costs a few ms on the host: once per shape and thread
  thread_local std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, size_t, size_t>, Im2colTiling>
      known;
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg;
  const auto key = std::make_tuple(Cg, g.KH, g.KW, g.sw, g.dw, g.OW, x_bytes, col_bytes);
  if (auto it = known.find(key); it != known.end()) return it->second;
  Im2colTiling t;
  if (KK == 0 || Cg * int64_t(x_bytes) >= 128) return known[key] = t;  // nothing to gather, or runs fill lines
  const auto span_of = [&](int64_t w) { return (w - 1) * g.sw + (g.KW - 1) * g.dw + 1; };
  const int64_t budget = int64_t(16384 / col_bytes), slack = 64;  // elements; pitch in [span·Cg, + slack)
  int64_t tw = std::clamp<int64_t>((2048 + KK - 1) / KK, 1, std::max<int64_t>(g.OW, 1));  // ~8 entries a thread
  while (tw > 1 && g.KH * (span_of(tw) * Cg + slack) > budget) --tw;
  if (g.KH * (span_of(tw) * Cg + slack) > budget) return known[key] = t;
  const int64_t span = span_of(tw), row = span * Cg;
  int64_t best = -1;
  // the kernel's loops start their warps at any of 32 skews (the global address's): the
  // staging stores of consecutive whole rows (their one run crosses rows within a warp) and
  // the column gather's loads, over every skew
  for (int64_t p = row; p < row + slack; ++p) {
    int64_t w = 0;
    for (int skew = 0; skew < 32; ++skew)
      w += shared_wavefronts(
               g.KH * row, col_bytes, [&](int64_t e) { return (e / row) * p + e % row; }, 8, skew) +
           shared_wavefronts(
               tw * KK, col_bytes,
               [&](int64_t e) {
                 const int64_t c = e % Cg, q = e / Cg, kw = q % g.KW, kh = (q / g.KW) % g.KH, o = q / (g.KW * g.KH);
                 return kh * p + (o * g.sw + kw * g.dw) * Cg + c;
               },
               8, skew);
    if (best < 0 || w < best) best = w, t.pitch = int(p);
  }
  t.tiled = true;
  t.tw = int(tw), t.tiles_w = (g.OW + tw - 1) / tw;
  t.smem = size_t(g.KH * t.pitch) * col_bytes;
  return known[key] = t;
}

// col (nb·OH·OW, KH·KW·Cg), rows r = (n - n0, oh, ow), from x (N, H, W, C), group gi: one
// block per (n - n0, oh, tile of tw output pixels), blockIdx.x = ((n - n0)·OH + oh)·tiles_w +
// tile; dynamic shared memory KH·pitch elements of TC. Pixel offsets in I (int when x has
// fewer than 2^30 elements), a block's column offset in int64.
// The element offset of p modulo 32: how far p lies past a 32-element boundary. A loop over
// the elements from p starts its warps that far back, so that each full warp covers 32
// aligned elements (4 whole sectors in f32, 128 bytes).
template <class T>
__device__ __forceinline__ int warp_skew(const T* p) {
  return int(reinterpret_cast<uintptr_t>(p) / sizeof(T) % 32);
}

// f(e) for e in [0, n), element e in lane (e + skew) % 32: the block's warps take the aligned
// chunks of 32 in turn. The first chunk (lanes < skew idle) is warp 0's alone and a __syncwarp
// follows it, so that every other request has all 32 lanes on one chunk — also in the
// emulator's trace, which matches a lane's k-th execution of an access to its neighbours'
// (docs/kernels.md): a lane idle in one iteration would pair later iterations across chunks.
template <class F>
__device__ __forceinline__ void block_for_aligned(int n, int skew, F&& f) {
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, warps = int(blockDim.x) / 32;
  if (warp == 0) {
    if (lane >= skew && lane - skew < n) f(lane - skew);
    __syncwarp();
  }
  for (int e = 32 * (1 + warp) - skew + lane; e - lane < n; e += 32 * warps)
    if (e < n) f(e);
}

// The same within one warp (all 32 lanes call it with the same n and skew).
template <class F>
__device__ __forceinline__ void warp_for_aligned(int n, int skew, F&& f) {
  const int lane = int(threadIdx.x) % 32;
  if (lane >= skew && lane - skew < n) f(lane - skew);
  __syncwarp();
  for (int e = 32 - skew + lane; e - lane < n; e += 32)
    if (e < n) f(e);
  __syncwarp();
}

template <class T, class TC, class I>
__global__ void im2col_tiled_kernel(const T* __restrict__ x, TC* __restrict__ col, ConvGeom g, int64_t n0, int64_t gi,
                                    int tw, int pitch, int tiles_w) {
  ADNN_DYNAMIC_SHARED(TC, s);  // (KH, pitch): a staged row is span pixels × Cg channels
  const ConvGeomI<I> q(g);
  const int Cg = int(g.C / g.groups), KW = int(q.KW), KH = int(q.KH), KK = KH * KW * Cg;
  const int H = int(q.H), W = int(q.W), sw = int(q.sw), dh = int(q.dh), dw = int(q.dw);
  const int tile = int(blockIdx.x % unsigned(tiles_w));
  const int64_t row = int64_t(blockIdx.x / unsigned(tiles_w));  // (n - n0)·OH + oh
  const I n = I(n0 + row / g.OH), c0 = I(gi * Cg);
  const int oh = int(row % g.OH), ow0 = tile * tw, nw = tw < int(q.OW) - ow0 ? tw : int(q.OW) - ow0;
  const int used = (nw - 1) * sw + (KW - 1) * dw + 1;  // staged pixels of this tile's rows
  const int iw0 = ow0 * sw - int(q.pl), ih0 = oh * int(q.sh) - int(q.pt);
  const int lo = iw0 > 0 ? iw0 : 0, hi = iw0 + used < W ? iw0 + used : W;  // the rows' columns inside the image
  // 1. a tile that reaches into the padding: zeros first, the image's part over them after a barrier
  if (lo > iw0 || hi < iw0 + used || ih0 < 0 || ih0 + (KH - 1) * dh >= H) {
    for (int e = int(threadIdx.x); e < KH * pitch; e += int(blockDim.x)) s[e] = store_as<TC>(acc_t<TC>(0));
    __syncthreads();
  }
  // 2. the part inside the image, each warp request on 32 aligned elements of x
  const int len = hi > lo ? (hi - lo) * Cg : 0;  // elements of one staged row inside the image
  if (len > 0 && g.groups == 1 && lo == 0 && hi == W && dh == 1) {
    // whole rows, consecutive in x: one run from the first row inside the image to the last
    const int ka = ih0 < 0 ? -ih0 : 0, kb = H - ih0 < KH ? H - ih0 : KH;
    if (kb > ka) {
      const T* src = x + (n * q.H + I(ih0 + ka)) * q.W * q.C;
      block_for_aligned((kb - ka) * len, warp_skew(src), [&](int e) {
        s[(ka + e / len) * pitch + (lo - iw0) * Cg + e % len] = im2col_value<T, TC>(src[e]);
      });
    }
  } else if (len > 0) {
    // row by row, a warp per row
    for (int kh = int(threadIdx.x) / 32; kh < KH; kh += int(blockDim.x) / 32) {
      const int ih = ih0 + kh * dh;
      if (ih < 0 || ih >= H) continue;
      const T* src = x + ((n * q.H + I(ih)) * q.W + I(lo)) * q.C + c0;
      warp_for_aligned(len, warp_skew(src), [&](int p) {
        const int j = p / Cg, c = p % Cg;
        s[kh * pitch + (lo - iw0 + j) * Cg + c] = im2col_value<T, TC>(src[I(j) * q.C + I(c)]);
      });
    }
  }
  __syncthreads();
  // 3. the tile's nw·KK column entries, contiguous in col, each warp request on 32 aligned elements
  TC* out = col + (row * g.OW + ow0) * KK;
  block_for_aligned(nw * KK, warp_skew(out), [&](int e) {
    const int c = e % Cg, t = e / Cg, kw = t % KW, kh = (t / KW) % KH, o = t / (KW * KH);
    out[e] = s[kh * pitch + (o * sw + kw * dw) * Cg + c];
  });
}

// ---------------------------------------------------------------- col2im, narrow channels
// col2im_kernel reads dcol (nb·OH·OW, KK) in runs of Cg elements, one per tap: below 128 bytes
// (CBAM's spatial conv: 2 channels, 7×7) consecutive lanes' taps lie KK elements apart and a
// warp fetches 2–4× the sectors it uses (56.6 % in the paper step). The transposed form: the
// GEMM writes dcolT (KK, nb·OH·OW) = W_gᵀ · gy_gᵀ, so that one tap k of consecutive output
// pixels is contiguous, and col2im_tiled_kernel gathers from it through shared memory:
//   a block owns a tile of gx's elements — ti whole images (H·W·Cg ≤ 224 each), th whole rows
//   of one image (W·Cg ≤ 224), or tw pixels of one row — at most 224 elements, one per thread,
//   (image, row, pixel, c) in gx's order, each warp on 32 aligned elements of gx (warp_skew);
//   for each kernel row kh (block-uniform, skipped where no element of the tile reads it) the
//   tile's taps (kh, kw, c) read the output pixels p of one contiguous range [p_lo, p_hi) of
//   the chunk (the output rows kh maps the tile's rows to; whole rows when the tile spans the
//   width). Each of the KW·Cg rows k of dcolT is staged by one warp from the 32-byte boundary
//   at or below k·P + p_lo, L elements (a multiple of 8 f32): every warp request is whole
//   sectors, its stores consecutive words (no bank conflicts). Shared
//   row kk holds p at column A - 1 + p - p_lo (A: elements per sector), the same column in
//   every row, so that a tap's lanes read consecutive words, Cg rows `pitch` apart;
//   each thread then adds its taps of that kh from shared memory, kw inner: the order of
//   common::for_each_tap_reading, so the sum is the CPU twin's, bit for bit, given the same
//   dcol. A tap outside the image reads a staged word next to its neighbours' and adds +0
//   (value_or_zero): every lane issues the same loads (the trace pairs them), and +0 leaves a
//   sum that started at +0 unchanged.
// Cost: KH·KW·Cg·L elements staged per tile ≈ |dcol| over the grid (+ < 2·A per row for the
//   alignment) read once, |gx| read and written once; KK adds per gx element: memory bound.
// Measured: paper step (docs/results/2026-12-01-kernel-report-adnn_fer_paper.md, CBAM's
//   2-channel 7×7 input gradient) 100.0 % coalesced, 0.019 MB fetched for 0.014 compulsory,
//   1.00 shared wavefronts per request (the direct kernel: 56.6 %). sm_90
//   (docs/results/kernel-resources-sm90.md): 40 registers (f32), 75 % theoretical occupancy at
//   256 threads, limited by registers; no spills.
struct Col2imTiling {
  bool tiled = false;
  int ti = 0, th = 0, tw = 0;  // images, rows, pixels per tile (ti > 1 → whole images; th < H → ti = 1)
  int L = 0, pitch = 0;        // staged elements per dcolT row, their rows' pitch (elements)
  int64_t tiles = 0;           // blocks: ⌈nb/ti⌉·⌈H/th⌉·⌈W/tw⌉
  size_t smem = 0;             // KW·Cg·pitch elements
};

// The tiled col2im's shape for g and a chunk of nb images, elements of elem_bytes, or tiled =
// false (the direct kernel on the untransposed dcol) where Cg·elem_bytes ≥ 128 — runs of a
// line already — or the staged rows exceed 48 KiB.
inline Col2imTiling col2im_tiling(const ConvGeom& g, int64_t nb, size_t elem_bytes) {
  // the pitch search costs ~0.5 ms on the host: once per shape and thread
  // keyed on every field of the geometry but N, C and O (the tile, the staged run and the
  // pitch depend on OW, OH and the padding too: a key without OW served one padding's
  // shared-memory size to another; found by review)
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int64_t, int64_t, int64_t, size_t>;
  thread_local std::map<Key, Col2imTiling> known;
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg;
  const Key key{Cg, g.H, g.W, g.OH, g.OW, g.KH, g.KW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, nb, elem_bytes};
  if (auto it = known.find(key); it != known.end()) return it->second;
  Col2imTiling t;
  if (KK == 0 || nb == 0 || g.H == 0 || g.W == 0 || g.OH == 0 || g.OW == 0 || Cg * int64_t(elem_bytes) >= 128)
    return known[key] = t;
  constexpr int64_t kElems = 224;  // + a skew of ≤ 31 within 256 threads
  const int64_t A = std::max<int64_t>(1, 32 / int64_t(elem_bytes)), img = g.H * g.W * Cg;
  int64_t ti = 1, th = 1, tw = 1, run = 0;  // run: the longest [p_lo, p_hi) of one kh
  if (img <= kElems) {
    ti = std::min(nb, kElems / img), th = g.H, tw = g.W, run = ti * g.OH * g.OW;
  } else if (g.W * Cg <= kElems) {
    th = kElems / (g.W * Cg), tw = g.W, run = ((th - 1) / g.sh + 1) * g.OW;
  } else {
    tw = std::max<int64_t>(1, kElems / Cg), run = (tw - 1 + (g.KW - 1) * g.dw) / g.sw + 1;
  }
  const int64_t L = (run + A - 1 + A - 1) / A * A, cols = L + A - 1, rows = g.KW * Cg;
  if (rows * (cols + 32) * int64_t(elem_bytes) > 49152) return known[key] = t;
  // the pitch with the fewest bank conflicts over the taps' loads: lanes along (pixel, c), c
  // fastest, read words c·pitch + pixel / sw (+ a common offset), warps at every skew (the
  // staging stores are a warp per row, conflict-free at any pitch)
  const int64_t px = std::min<int64_t>(ti * th * tw, kElems / Cg);
  int64_t best = -1;
  for (int64_t p = cols; p < cols + 32; ++p) {
    int64_t w = 0;
    for (int skew = 0; skew < 32; ++skew)
      w += shared_wavefronts(
          px * Cg, elem_bytes, [&](int64_t e) { return (e % Cg) * p + (e / Cg) / g.sw; }, 8, skew);
    if (best < 0 || w < best) best = w, t.pitch = int(p);
  }
  t.tiled = true;
  t.ti = int(ti), t.th = int(th), t.tw = int(tw), t.L = int(L);
  t.tiles = ((nb + ti - 1) / ti) * ((g.H + th - 1) / th) * ((g.W + tw - 1) / tw);
  t.smem = size_t(rows * t.pitch) * elem_bytes;
  return known[key] = t;
}

// gx[n0 + n, ih, iw, gi·Cg + c] += Σ over the taps that read it of dcolT[k, p] (KK, P = nb·OH·OW),
// k = (kh·KW + kw)·Cg + c, p = (n·OH + oh)·OW + ow; one block per tile (col2im_tiling),
// blockIdx.x = (image tile·⌈H/th⌉ + row tile)·⌈W/tw⌉ + column tile; dynamic shared memory
// KW·Cg·pitch elements of T. T is f32 or f64 (16-bit gradients run through f32 copies).
template <class T>
__global__ void col2im_tiled_kernel(const T* __restrict__ dcolT, T* __restrict__ gx, ConvGeom g, int64_t n0, int64_t nb,
                                    int64_t gi, int ti, int th, int tw, int L, int pitch) {
  ADNN_DYNAMIC_SHARED(T, s);  // (KW·Cg, pitch): one kh's staged rows of dcolT
  const int Cg = int(g.C / g.groups), KW = int(g.KW), KH = int(g.KH), H = int(g.H), W = int(g.W);
  const int OH = int(g.OH), OW = int(g.OW), sh = int(g.sh), sw = int(g.sw), pt = int(g.pt), pl = int(g.pl);
  const int dh = int(g.dh), dw = int(g.dw), rows = KW * Cg, A = 32 / int(sizeof(T));
  const int64_t P = nb * g.OH * g.OW, total = int64_t(KH) * rows * P;
  const int tiles_w = (W + tw - 1) / tw, tiles_h = (H + th - 1) / th;
  const int bw = int(blockIdx.x % unsigned(tiles_w)), bh = int(blockIdx.x / unsigned(tiles_w) % unsigned(tiles_h));
  const int64_t nlo = int64_t(blockIdx.x / unsigned(tiles_w * tiles_h)) * ti;  // chunk-relative
  const int iw0 = bw * tw, ih0 = bh * th;
  const int ntw = tw < W - iw0 ? tw : W - iw0, nth = th < H - ih0 ? th : H - ih0;
  const int nti = int(ti < nb - nlo ? ti : nb - nlo), count = nti * nth * ntw * Cg;
  // thread threadIdx.x owns element e = threadIdx.x - skew of the tile, (image, row, pixel, c)
  // in gx's order, so that each warp covers 32 aligned elements of gx where groups == 1
  T* gx_tile = gx + (((n0 + nlo) * g.H + ih0) * g.W + iw0) * g.C + gi * Cg;
  const int skew = g.groups == 1 ? warp_skew(gx_tile) : 0, e = int(threadIdx.x) - skew;
  const bool mine = e >= 0 && e < count;
  const int c = mine ? e % Cg : 0, px = mine ? e / Cg : 0;
  const int iw = iw0 + px % ntw, ih = ih0 + px / ntw % nth, ni = px / (ntw * nth);  // ni: within the tile
  T acc = T(0);
  for (int kh = 0; kh < KH; ++kh) {
    // the output rows kh maps the tile's rows to, and the output columns of its pixels
    const int tlo = ih0 + pt - kh * dh, thi = ih0 + nth - 1 + pt - kh * dh;
    const int ohl = tlo <= 0 ? 0 : (tlo + sh - 1) / sh, ohh = thi < 0 ? -1 : (thi / sh < OH - 1 ? thi / sh : OH - 1);
    int owl = 0, owh = OW - 1;
    if (ntw < W) {
      const int ulo = iw0 + pl - (KW - 1) * dw, uhi = iw0 + ntw - 1 + pl;
      owl = ulo <= 0 ? 0 : (ulo + sw - 1) / sw, owh = uhi < 0 ? -1 : (uhi / sw < OW - 1 ? uhi / sw : OW - 1);
    }
    if (ohl > ohh || owl > owh) continue;  // no element of the tile reads this kernel row
    const int64_t plo = (nlo * OH + ohl) * OW + owl, phi = ((nlo + nti - 1) * OH + ohh) * OW + owh + 1;
    // 1. stage rows k = kh·KW·Cg + kk of dcolT, L elements from the sector boundary at or
    //    below k·P + p_lo; p lands at column A - 1 + p - p_lo of every row
    //    (a warp per row: its stores are consecutive words, conflict-free)
    for (int kk = int(threadIdx.x) / 32; kk < rows; kk += int(blockDim.x) / 32) {
      const int64_t src = (int64_t(kh) * rows + kk) * P + plo, at = src - src % A;
      const int n = int(total - at < L ? total - at : L), to = kk * pitch + A - 1 - int(src - at);
      warp_for_aligned(n, 0, [&](int j) { s[to + j] = dcolT[at + j]; });
    }
    __syncthreads();
    // 2. the taps (kh, kw) of this thread's element, kw inner; outside the image: +0
    if (mine) {
      const int t = ih + pt - kh * dh, oh = t / sh;
      const bool vh = t >= 0 && t % sh == 0 && oh < OH;
      for (int kw = 0; kw < KW; ++kw) {
        const int u = iw + pl - kw * dw, ow = u / sw;
        const bool v = vh && u >= 0 && u % sw == 0 && ow < OW;
        // p - p_lo, clamped into the staged range where the tap is outside the image
        const int64_t q = (nlo + ni) * OH * OW + int64_t(oh) * OW + ow - plo;
        const int col = A - 1 + int(q < 0 ? 0 : (q < phi - plo ? q : phi - plo - 1));
        const T staged = s[(kw * Cg + c) * pitch + col];
        acc += value_or_zero(v, staged);
      }
    }
    __syncthreads();
  }
  // groups == 1: the tile's elements are one run of gx (whole rows, or one row's segment)
  if (mine) gx_tile[g.groups == 1 ? int64_t(e) : ((int64_t(ni) * H + (ih - ih0)) * W + (iw - iw0)) * g.C + c] += acc;
}

// A V-vector of accumulators rounded to T and stored as one vector.
template <int V, class T, class A>
__device__ __forceinline__ void store_acc_vec(T* p, const A (&s)[V]) {
  vec_t<T, V> o;
  ADNN_UNROLL
  for (int j = 0; j < V; ++j) o.v[j] = store_as<T>(s[j]);
  store_vec<V>(p, o);
}

// y (N, OH, OW, C) = Σ_taps x (N, H, W, C) · w (C, KH, KW) [+ b (C), added after the taps as
// the CPU twin does]. grid (tiles, pixel blocks), block lanes × rows, dynamic shared memory
// KH·KW·V·pitch elements of acc_t<T>; grid-stride over the N·OH·OW output pixels.
template <class T, int V, class I>
__global__ void depthwise_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                         T* __restrict__ y, ConvGeom g, int lanes, int pitch) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, wt);  // (V, KH·KW, pitch)
  const ConvGeomI<I> q(g);
  const int KK = int(q.KH * q.KW);
  const DepthwiseThread th = stage_depthwise_weight_tile<V, A>(w, wt, int(q.C), KK, lanes, pitch);
  if (!th.active) return;
  const int c0 = th.c0, l = th.l, r = th.r, rows = th.rows;
  const I c = c0 + l * V, P = q.N * q.OH * q.OW;
  A bias[V] = {};
  if (b) {
    const vec_t<T, V> bv = load_vec<V>(b + c);
    ADNN_UNROLL
    for (int j = 0; j < V; ++j) bias[j] = load_as<A>(bv.v[j]);
  }
  for (I p = I(blockIdx.y) * rows + r; p < P; p += I(gridDim.y) * rows) {
    const I ow = p % q.OW, oh = (p / q.OW) % q.OH, n = p / (q.OW * q.OH);
    A s[V] = {};
    // the taps of common::for_each_input_tap, in its order; the shared weights are read for
    // every tap, inside the image or not, so a warp's lanes read the same tap row together
    for (I kh = 0; kh < q.KH; ++kh) {
      const I ih = oh * q.sh - q.pt + kh * q.dh;
      for (I kw = 0; kw < q.KW; ++kw) {
        const int k = int(kh * q.KW + kw);
        A wk[V];
        ADNN_UNROLL
        for (int j = 0; j < V; ++j) wk[j] = wt[(j * KK + k) * pitch + l];
        const I iw = ow * q.sw - q.pl + kw * q.dw;
        if (ih < 0 || ih >= q.H || iw < 0 || iw >= q.W) continue;
        const vec_t<T, V> xv = load_vec<V>(x + ((n * q.H + ih) * q.W + iw) * q.C + c);
        ADNN_UNROLL
        for (int j = 0; j < V; ++j) s[j] += load_as<A>(xv.v[j]) * wk[j];
      }
    }
    if (b) {
      ADNN_UNROLL
      for (int j = 0; j < V; ++j) s[j] += bias[j];
    }
    store_acc_vec<V>(y + p * q.C + c, s);
  }
}

// Row-tiled forward for the common kernels (KW = 3 or 5, column stride SW = 1 or 2, column
// dilation 1; any KH, row stride, row dilation and padding): the work item of a thread is TW
// consecutive output pixels of one output row, for its V channels. Per kernel row it reads
// the row's KW·V weights from the shared tile once into registers and each of the
// (TW − 1)·SW + KW input vectors the TW outputs need once, and adds every (input column,
// output) pair it serves — TW·KW products from (TW − 1)·SW + KW loads where the per-pixel
// kernel makes TW·KW loads and TW·KW·V shared reads. Each output sums its taps in the same
// order (kernel rows, then columns, ascending), skipping the same padded taps, as the
// per-pixel kernel and the CPU twin: the same bits. grid (tiles, item blocks), block lanes ×
// rows, dynamic shared memory as the per-pixel kernel; grid-stride over N·OH·⌈OW/TW⌉ items.
// wr[kw][j] = the tile's weight of kernel row kh, column kw, for lane l's channel j (registers).
template <int KW, int V, class A>
__device__ __forceinline__ void load_depthwise_weight_row(ADNN_SHARED_PTR(A) wt, int KK, int kh, int pitch, int l,
                                                          A (&wr)[KW][V]) {
  ADNN_UNROLL
  for (int kw = 0; kw < KW; ++kw)
    ADNN_UNROLL
    for (int j = 0; j < V; ++j) wr[kw][j] = wt[(j * KK + kh * KW + kw) * pitch + l];
}

// The J vectors of a kernel row that a row-tiled item reads (those with in(jj)), loaded by
// load(jj) and passed to use(jj, vector) in ascending or descending jj. The loads go in batches,
// all of a batch issued before its first use, so that they are in flight together: with a
// load inside each column's bounds branch, as before, nvcc waited out each load before issuing
// the next (per kernel row, J dependent round trips). A batch is at most 8 vectors of f32 or
// f64 (32 registers) or 4 of f16/bf16 (widened to f32 when used: 32), the J split evenly into
// the fewest batches (J = 9: 5 + 4). The 16-bit forward at 5×5, stride 2 (J = 11) keeps one
// load at a time: batches of 2–4 took it from 116 to 136–157 registers on sm_90, past the 128
// at which two blocks of 8 warps fit an SM. A register cap (__launch_bounds__(256, 3): 80 for
// three blocks an SM) made the 5×5 f32 kernels spill: not taken.
template <int J, int V, bool Ascending, class In, class Load, class Use>
__device__ __forceinline__ void for_each_row_vector(In&& in, Load&& load, Use&& use) {
  using Vec = decltype(load(0));
  constexpr int most = sizeof(Vec) / V >= 4 ? 8 : J > 9 ? 1 : 4;  // vectors a batch (f32/f64 elements: 8)
  constexpr int batches = (J + most - 1) / most, LB = (J + batches - 1) / batches;
  if constexpr (LB == 1) {  // the load inside its bounds branch, as before (no hoisting)
    ADNN_UNROLL
    for (int u = 0; u < J; ++u) {
      const int jj = Ascending ? u : J - 1 - u;
      if (in(jj)) use(jj, load(jj));
    }
  } else {
    ADNN_UNROLL
    for (int b = 0; b < J; b += LB) {
      Vec v[LB];
      bool ok[LB];
      ADNN_UNROLL
      for (int u = 0; u < LB; ++u) {
        const int jj = Ascending ? b + u : J - 1 - b - u;
        ok[u] = b + u < J && in(jj);
        v[u] = ok[u] ? load(jj) : Vec{};
      }
      ADNN_UNROLL
      for (int u = 0; u < LB; ++u)
        if (ok[u]) use(Ascending ? b + u : J - 1 - b - u, v[u]);
    }
  }
}

template <class T, int V, class I, int KW, int SW, int TW>
__global__ void depthwise_forward_rows_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                              const T* __restrict__ b, T* __restrict__ y, ConvGeom g, int lanes,
                                              int pitch) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, wt);  // (V, KH·KW, pitch)
  const ConvGeomI<I> q(g);
  const int KK = int(q.KH) * KW;
  const DepthwiseThread th = stage_depthwise_weight_tile<V, A>(w, wt, int(q.C), KK, lanes, pitch);
  if (!th.active) return;
  const int c0 = th.c0, l = th.l, r = th.r, rows = th.rows;
  constexpr int J = (TW - 1) * SW + KW;  // input columns one item reads per kernel row
  const I c = c0 + l * V, OWB = (q.OW + TW - 1) / TW, Q = q.N * q.OH * OWB;
  A bias[V] = {};
  if (b) {
    const vec_t<T, V> bv = load_vec<V>(b + c);
    ADNN_UNROLL
    for (int j = 0; j < V; ++j) bias[j] = load_as<A>(bv.v[j]);
  }
  for (I p = I(blockIdx.y) * rows + r; p < Q; p += I(gridDim.y) * rows) {
    const I owb = p % OWB, oh = (p / OWB) % q.OH, n = p / (OWB * q.OH);
    const I ow0 = owb * TW, iw0 = ow0 * SW - q.pl;
    A s[TW][V] = {};
    for (I kh = 0; kh < q.KH; ++kh) {
      // the row's weights are read whether the row is padding or not, so that a warp whose items
      // lie in different output rows still reads one weight row at a time (no divergence)
      A wr[KW][V];
      load_depthwise_weight_row<KW, V, A>(wt, KK, int(kh), pitch, l, wr);
      const I ih = oh * q.sh - q.pt + kh * q.dh;
      if (ih < 0 || ih >= q.H) continue;  // a padded row: no tap of it is added
      const T* xrow = x + (n * q.H + ih) * q.W * q.C + c;
      for_each_row_vector<J, V, true>(
          [&](int jj) { return iw0 + jj >= 0 && iw0 + jj < q.W; },
          [&](int jj) { return load_vec<V>(xrow + (iw0 + jj) * q.C); },
          [&](int jj, const vec_t<T, V>& xv) {
            ADNN_UNROLL
            for (int t = 0; t < TW; ++t) {
              const int kw = jj - t * SW;  // a constant once unrolled
              if (kw < 0 || kw >= KW) continue;
              ADNN_UNROLL
              for (int j = 0; j < V; ++j) s[t][j] += load_as<A>(xv.v[j]) * wr[kw][j];
            }
          });
    }
    ADNN_UNROLL
    for (int t = 0; t < TW; ++t) {
      if (ow0 + t >= q.OW) break;
      if (b) {
        ADNN_UNROLL
        for (int j = 0; j < V; ++j) s[t][j] += bias[j];
      }
      store_acc_vec<V>(y + ((n * q.OH + oh) * q.OW + ow0 + t) * q.C + c, s[t]);
    }
  }
}

// Row-tiled input gradient for column stride SW = 1 or 2 and column dilation 1 (KW = 3 or 5;
// any KH, row stride, row dilation and padding): a thread's item is TW consecutive input pixels
// of one input row. For each kernel row that reaches an output row it reads the row's weights
// once and each gradient vector the TW pixels need once — the output columns ow_lo … ow_lo + J − 1
// with ow_lo = ⌈(iw0 + pl − (KW − 1)) / SW⌉, TW + KW − 1 of them at stride 1, ⌈(TW + KW − 1) / 2⌉
// or one more at stride 2 — from the rightmost down, so that each input pixel adds its taps in
// the per-pixel kernel's order (kernel rows, then columns, ascending): the same bits. At stride 2
// the kw of (pixel t, column jj) is OFF + t − 2·jj with OFF = iw0 + pl − 2·ow_lo, KW − 2 or
// KW − 1 (the same for a whole warp: TW is even, so iw0 is): one instantiation each, so that
// every kw is a constant once unrolled (registers, not a local array). Grid-stride over
// N·H·⌈W/TW⌉ items.
// One kernel row's taps: grow = gy's output row (at lane's channels), wr = the row's weights.
template <class T, int V, class I, int KW, int SW, int TW, int OFF, class A>
__device__ __forceinline__ void depthwise_input_row_taps(const T* grow, I ow_lo, I OW, I C, const A (&wr)[KW][V],
                                                         A (&s)[TW][V]) {
  constexpr int J = (OFF + TW - 1) / SW + 1;  // output columns with a tap for some t
  // kw = OFF + t − jj·SW rises as jj falls: the columns from the rightmost down
  for_each_row_vector<J, V, false>(
      [&](int jj) { return ow_lo + jj >= 0 && ow_lo + jj < OW; },
      [&](int jj) { return load_vec<V>(grow + (ow_lo + jj) * C); },
      [&](int jj, const vec_t<T, V>& gv) {
        ADNN_UNROLL
        for (int t = 0; t < TW; ++t) {
          const int kw = OFF + t - jj * SW;  // a constant once unrolled
          if (kw < 0 || kw >= KW) continue;
          ADNN_UNROLL
          for (int j = 0; j < V; ++j) s[t][j] += load_as<A>(gv.v[j]) * wr[kw][j];
        }
      });
}

template <class T, int V, class I, int KW, int SW, int TW>
__global__ void depthwise_backward_input_rows_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                     T* __restrict__ gx, ConvGeom g, int lanes, int pitch) {
  static_assert(SW == 1 || SW == 2, "column stride 1 or 2");
  static_assert(TW % 2 == 0, "an even tile keeps OFF uniform over a warp");
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, wt);  // (V, KH·KW, pitch)
  const ConvGeomI<I> q(g);
  const int KK = int(q.KH) * KW;
  const DepthwiseThread th = stage_depthwise_weight_tile<V, A>(w, wt, int(q.C), KK, lanes, pitch);
  if (!th.active) return;
  const int c0 = th.c0, l = th.l, r = th.r, rows = th.rows;
  const I c = c0 + l * V, WB = (q.W + TW - 1) / TW, Q = q.N * q.H * WB;
  for (I p = I(blockIdx.y) * rows + r; p < Q; p += I(gridDim.y) * rows) {
    const I wb = p % WB, ih = (p / WB) % q.H, n = p / (WB * q.H);
    const I iw0 = wb * TW, lo = iw0 + q.pl - (KW - 1);
    const I ow_lo = lo > 0 ? (lo + SW - 1) / SW : lo / SW;  // ⌈lo / SW⌉ (division truncates toward 0)
    const bool off_low = SW == 2 && iw0 + q.pl - ow_lo * SW == KW - 2;
    A s[TW][V] = {};
    for (I kh = 0; kh < q.KH; ++kh) {
      A wr[KW][V];  // read for every kernel row, as in the forward
      load_depthwise_weight_row<KW, V, A>(wt, KK, int(kh), pitch, l, wr);
      const I th = ih + q.pt - kh * q.dh, oh = th / q.sh;
      if (th < 0 || th % q.sh != 0 || oh >= q.OH) continue;
      const T* grow = gy + (n * q.OH + oh) * q.OW * q.C + c;
      if constexpr (SW == 2) {
        if (off_low) {
          depthwise_input_row_taps<T, V, I, KW, SW, TW, KW - 2>(grow, ow_lo, q.OW, q.C, wr, s);
          continue;
        }
      }
      depthwise_input_row_taps<T, V, I, KW, SW, TW, KW - 1>(grow, ow_lo, q.OW, q.C, wr, s);
    }
    ADNN_UNROLL
    for (int t = 0; t < TW; ++t) {
      if (iw0 + t >= q.W) break;
      store_acc_vec<V>(gx + ((n * q.H + ih) * q.W + iw0 + t) * q.C + c, s[t]);
    }
  }
}

// Which row-tiled kernel a geometry takes: KW 3 or 5, column dilation 1 and column stride 1
// or 2; 0 otherwise (the per-pixel kernels).
inline constexpr int kDepthwiseRowTile = 4;  // TW: output (or input) pixels per item
inline int depthwise_rows_kw(const ConvGeom& g) {  // forward and input gradient alike
  if (g.dw != 1 || (g.KW != 3 && g.KW != 5)) return 0;
  if (g.sw != 1 && g.sw != 2) return 0;
  return int(g.KW);
}

// gx (N, H, W, C) = Σ over the (output pixel, tap) pairs that read each input pixel of
// gy (N, OH, OW, C) · w (gather form, no atomics). Same tiling as the forward; grid-stride over
// the N·H·W input pixels.
template <class T, int V, class I>
__global__ void depthwise_backward_input_kernel(const T* __restrict__ gy, const T* __restrict__ w,
                                                T* __restrict__ gx, ConvGeom g, int lanes, int pitch) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, wt);  // (V, KH·KW, pitch)
  const ConvGeomI<I> q(g);
  const int KK = int(q.KH * q.KW);
  const DepthwiseThread th = stage_depthwise_weight_tile<V, A>(w, wt, int(q.C), KK, lanes, pitch);
  if (!th.active) return;
  const int c0 = th.c0, l = th.l, r = th.r, rows = th.rows;
  const I c = c0 + l * V, P = q.N * q.H * q.W;
  for (I p = I(blockIdx.y) * rows + r; p < P; p += I(gridDim.y) * rows) {
    const I iw = p % q.W, ih = (p / q.W) % q.H, n = p / (q.W * q.H);
    A s[V] = {};
    // the (output pixel, tap) pairs of common::for_each_tap_reading, in its order; the shared
    // weights are read for every tap, so a warp's lanes read the same tap row together
    for (I kh = 0; kh < q.KH; ++kh) {
      const I th = ih + q.pt - kh * q.dh, oh = th / q.sh;
      const bool row_ok = th >= 0 && th % q.sh == 0 && oh < q.OH;
      for (I kw = 0; kw < q.KW; ++kw) {
        const int k = int(kh * q.KW + kw);
        A wk[V];
        ADNN_UNROLL
        for (int j = 0; j < V; ++j) wk[j] = wt[(j * KK + k) * pitch + l];
        const I tw = iw + q.pl - kw * q.dw, ow = tw / q.sw;
        if (!row_ok || tw < 0 || tw % q.sw != 0 || ow >= q.OW) continue;
        const vec_t<T, V> gv = load_vec<V>(gy + ((n * q.OH + oh) * q.OW + ow) * q.C + c);
        ADNN_UNROLL
        for (int j = 0; j < V; ++j) s[j] += load_as<A>(gv.v[j]) * wk[j];
      }
    }
    store_acc_vec<V>(gx + p * q.C + c, s);
  }
}

// Taps of the weight gradient's stage 1 that one thread accumulates in registers: R·V
// accumulators (f32: 9 taps × 4 channels, f64: 9 × 2, f16/bf16: 5 × 8), so that a 3×3
// kernel's taps are one group (f32, f64) and gy is read once per group of taps, not once
// per tap (5×5: 3 groups of ≤ 9).
template <int V>
inline constexpr int depthwise_wgrad_taps = V >= 8 ? 5 : 9;
inline int64_t depthwise_wgrad_groups(int64_t KK, int R) { return (KK + R - 1) / R; }

// Weight gradient, stage 1 of 2: part[s, k, c] = Σ_{p in slice s} gy[p, c] · x[tap k of p, c]
// over the output pixels p of slice s (pixels_per_slice consecutive ones). grid (tiles, groups
// of R taps, slices), block lanes × rows; each thread loads gy[p, c] once per pixel and adds it
// times x at each of its group's ≤ R taps into R·V registers (pixels rows apart), then, tap by
// tap, the rows of a lane are added in shared memory in a fixed order (deterministic, no
// atomics). Dynamic shared memory: V · blockDim.x accumulators.
// Three blocks per SM (≤ 80 registers, 38 % occupancy on sm_90) where that costs no spill:
// 32-bit indices and at most 36 f32 accumulators (144 bytes); else two (≤ 128).
template <class T, int V, class I, int R = depthwise_wgrad_taps<V>>
__global__ void __launch_bounds__(256, sizeof(I) == 4 && R * V * sizeof(acc_t<T>) <= 144 ? 3 : 2)
    depthwise_backward_weight_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                                                 acc_t<T>* __restrict__ part, ConvGeom g, int lanes,
                                                 I pixels_per_slice_) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, red);  // (V, blockDim.x)
  const ConvGeomI<I> q(g);
  const I pixels_per_slice = I(pixels_per_slice_);
  const int KK = int(q.KH * q.KW), k0 = int(blockIdx.y) * R, nt = KK - k0 < R ? KK - k0 : R;
  const int c0 = int(blockIdx.x) * lanes * V;
  const int tile_c = lanes * V < int(q.C) - c0 ? lanes * V : int(q.C) - c0;
  const int l = int(threadIdx.x) % lanes, r = int(threadIdx.x) / lanes, rows = int(blockDim.x) / lanes;
  const bool active = l * V < tile_c;
  const I c = c0 + l * V, P = q.N * q.OH * q.OW;
  // the group's first tap (row, column); the taps after it are walked in w's order below
  // (offsets kept incrementally: ~20 fewer registers than a table of R offsets)
  const I kh0 = I(k0) / q.KW, kw0 = I(k0) % q.KW;
  const I p0 = I(blockIdx.z) * pixels_per_slice;
  const I p1 = p0 + pixels_per_slice < P ? p0 + pixels_per_slice : P;
  A s[R][V] = {};
  if (active)
    for (I p = p0 + r; p < p1; p += rows) {
      const I ow = p % q.OW, oh = (p / q.OW) % q.OH, n = p / (q.OW * q.OH);
      const I ih0 = oh * q.sh - q.pt, iw0 = ow * q.sw - q.pl;
      const vec_t<T, V> gv = load_vec<V>(gy + p * q.C + c);
      A gva[V];
      ADNN_UNROLL
      for (int j = 0; j < V; ++j) gva[j] = load_as<A>(gv.v[j]);
      I ih = ih0 + kh0 * q.dh, iw = iw0 + kw0 * q.dw, kw = kw0;
      ADNN_UNROLL
      for (int t = 0; t < R; ++t) {
        if (t < nt && ih >= 0 && ih < q.H && iw >= 0 && iw < q.W) {
          const vec_t<T, V> xv = load_vec<V>(x + ((n * q.H + ih) * q.W + iw) * q.C + c);
          ADNN_UNROLL
          for (int j = 0; j < V; ++j) s[t][j] += load_as<A>(xv.v[j]) * gva[j];
        }
        iw += q.dw;  // the next tap: along the kernel row, then to the next row's start
        if (++kw == q.KW) kw = 0, iw = iw0, ih += q.dh;
      }
    }
  ADNN_UNROLL
  for (int t = 0; t < R; ++t) {
    if (t >= nt) break;  // nt is the same for the whole block: the barriers stay uniform
    ADNN_UNROLL
    for (int j = 0; j < V; ++j) red[j * int(blockDim.x) + int(threadIdx.x)] = s[t][j];
    __syncthreads();
    if (r == 0 && active) {
      vec_t<A, V> u{};
      ADNN_UNROLL
      for (int j = 0; j < V; ++j)
        for (int w = 0; w < rows; ++w) u.v[j] += red[j * int(blockDim.x) + w * lanes + l];
      A* dst = part + (I(blockIdx.z) * KK + k0 + t) * q.C + c;
      if constexpr (std::is_same_v<A, T>)  // (S, KK, C) along C: the lanes' vectors are contiguous
        store_vec<V>(dst, u);
      else
        for (int j = 0; j < V; ++j) dst[j] = u.v[j];
    }
    __syncthreads();  // the next tap's sums overwrite red
  }
}

// Weight gradient, stage 2 of 2: gw[c, k] = Σ_s part[s, k, c], in a fixed order over the
// slices. One block per 32 channels: its threads read part along C (coalesced, k by k), keep
// the 32 × KH·KW sums in shared memory (pitch KK | 1, odd: conflict-free column writes), and
// after one barrier write them in gw's own (C, KH, KW) order, one contiguous run per block.
// Dynamic shared memory: 32 · (KK | 1) accumulators.
template <class T>
__global__ void depthwise_weight_grad_sum_kernel(const acc_t<T>* __restrict__ part, T* __restrict__ gw, int64_t slices,
                                                 int64_t C, int KK) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, tile);  // (32, KK | 1)
  const int pitch = KK | 1;
  const int64_t c0 = int64_t(blockIdx.x) * 32;
  const int nc = int(C - c0 < 32 ? C - c0 : 32);
  for (int e = threadIdx.x; e < 32 * KK; e += blockDim.x) {
    const int k = e / 32, cl = e % 32;
    if (cl >= nc) continue;
    A s = 0;
    for_each_strided_batched<8>(  // the slices in order, eight slices' loads in flight at a time
        int64_t(0), slices, int64_t(1), [&](int64_t q) { return part[(q * KK + k) * C + c0 + cl]; },
        [&](int64_t, A v) { s += v; });
    tile[cl * pitch + k] = s;
  }
  __syncthreads();
  for (int e = threadIdx.x; e < nc * KK; e += blockDim.x)
    gw[c0 * KK + e] = store_as<T>(A(tile[(e / KK) * pitch + e % KK]));
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
