#pragma once
// Normalisation kernels: batch norm (channels last) and layer norm, forward and backward.
//
// Batch norm over x (M, C), M = N·H·W rows of C channels (NHWC flattened):
//   channel_partials: per channel, two sums over a slice of rows, in f64: mode sum
//     (Σx), mode sqdev (Σ(x-mean)²), mode grad (Σg and Σg·x̂). Block (32, 8): 32 channels
//     (coalesced across a row) × 8 row lanes; grid (C/32, P) with P row slices; partial
//     sums go to a (2, P, C) workspace, then channel_reduce adds the P slices and finalises
//     (mean, invstd, or the raw sums).
//   bn_stats_partials + bn_stats_merge (training statistics, one read of x): per channel,
//     Welford (count, mean, M2) in f64 over a slice of rows. Block (32, 8): 32 channels
//     (coalesced across a row) × 8 row lanes, each lane its own Welford run over rows
//     r ≡ slice·8 + lane (mod 8·P); the 8 lanes are merged in shared memory in lane order
//     (Chan et al.'s pairwise merge); grid (C/32, P), P from bn_stats_slices(M, C) — more
//     row slices when C is small, so the grid still fills the GPU. Partials (3, P, C) f64
//     (count, mean, M2). bn_stats_merge, one thread per channel, merges the P slices in slice
//     order (deterministic: no atomics), writes mean and invstd = 1/sqrt(M2/M + eps), and
//     updates the running statistics in place: rm = (1−m)·rm + m·mean, rv = (1−m)·rv +
//     m·M2/(M−1) (unbiased), when they are given.
//     Cost: x read once (M·C·sizeof(T)); 3·P·C f64 written and read; ~8 flops per element.
//   Latency: a thread's walk over its rows (channel_partials, bn_stats_partials, and layer
//   and group norm's parameter partials below) keeps four rows' loads in flight, its walk over
//   the P slices (channel_reduce, bn_stats_merge, layer_norm_param_sum) eight
//   (for_each_strided_batched, kernels/loops.cuh); the sums keep their order, so their bits.
//   Before, channel_partials' loop was one row at a time in nvcc's PTX (not unrolled, each
//   row's load after the previous row's arithmetic) — 784 dependent round trips a thread at
//   B5's 112² layers, batch 32 (401,408 rows over 8 row lanes × 64 slices); bn_stats_partials'
//   row walk and bn_stats_merge's slice walk (1,024 slices a thread at C = 24) have the same
//   shape (not read in PTX).
//   bn_apply: y = act(z), z = (x - mean)·invstd·w + b, V consecutive channels a thread a step
//     (16 bytes of the wider of x and the parameters where C and the pointers allow: 4 channels
//     of f32/bf16/f16, 2 of f64; else 1), parameters loaded as vectors; act is none,
//     SiLU or ReLU (the BN + activation pair of EfficientNet and ResNet blocks in one pass);
//     optionally y = residual + s[n]·act(z), the MBConv epilogue (BN, drop-path, skip add)
//     applied to the projection conv's output in the same pass.
//   bn_backward_apply (V channels a thread, as bn_apply; the sums and gb/gw as vectors):
//     gx = w·invstd·(g_z - Σg_z/M - x̂·Σg_z x̂/M) (training) or w·invstd·g_z
//     (eval), with g_z = g·act'(z) recomputed from x (the grad-mode partials do the same).
//   Storage: x, g, y, gx and the residual in T (f32, f64, or f16/bf16 natively: loaded
//   widened, math in f32, stored rounded once — no op-layer cast of the activations); the
//   per-channel parameters, statistics and drop-path scale in P (T, or f32 for f16/bf16).
//   Cost: stats read x twice (2·M·C·sizeof(T)); apply reads x, writes y; backward reads
//   g and x twice, writes gx. The fused activation saves a full write + read of z forward
//   and of g_z backward, and the activation's saved input.
// Layer norm over rows of x (M, D):
//   layer_norm_cached (D ≤ 8,192, or 2,048 for a row that is not 16-byte aligned): the row
//     held in registers (kernels/rows.cuh: vectors of V = 16 bytes along D, one warp a row for
//     short rows, up to 512 threads a row), x read once; the same two passes (mean, then mean
//     squared deviation) over the registers; w and b read as vectors; y written once.
//     layer_norm_backward_cached: g and x read once into registers, ĝ = g·w and x̂ there, the
//     two sums, gx written once. Cost: forward D·(sizeof(X) + sizeof(Y)) per row plus w and b
//     (cached), backward D·(sizeof(Y) + 2·sizeof(X)) plus w.
//   layer_norm_rows (longer rows): one block per row; two block reductions (mean, then mean
//     squared deviation: two-pass for accuracy) sharing one scratch array; writes y, mean, rstd.
//   layer_norm_backward_rows: one block per row; gx = rstd·(ĝ - mean(ĝ) - x̂·mean(ĝx̂)),
//     ĝ = g·w.
//   layer_norm_param_grads: gw[d] = Σ_r g·x̂, gb[d] = Σ_r g in two deterministic stages.
//     Stage 1 (layer_norm_param_partials): block (32, 8) over 32 columns (coalesced) × one
//     slice of kLnSliceRows rows, grid (slices, ⌈D/32⌉) (slices on x: up to 2^31 − 1 of
//     them, 65535 on y stopped at 16.8 M rows); the slice's mean and rstd are staged in shared memory by
//     coalesced loads (one load per row by every lane would be a 32-lane broadcast: 82.7%
//     coalescing on nano before), each thread sums every 8th row of the slice for its column
//     in double, the 8 partials meet in shared memory in a fixed order. One slice (rows ≤
//     256): those sums are the gradients. Several: they go to part (slices, 2, D) in double
//     and stage 2 (layer_norm_param_sum, one thread per column) adds them in slice order —
//     no atomics, the same bits every run. The old one-thread-per-column kernel ran D threads
//     (128 for nano) over every row serially. Measured (emulated nano step, docs/results/
//     2026-11-30-kernel-report-adnn_fer_nano.md): 99.9 % coalesced (82.7 % before), shared
//     1.22 wavefronts per request = the ideal (f64 words), no bank conflicts.
//   Storage: x and gx in X, y and g in Y, parameters/statistics/math in P: f32/f64 alone, or
//   f16/bf16 natively (loaded widened, math in f32, stored rounded once) with y in the same
//   16 bits or in f32 (autocast's layer norm: its f32 output read from the 16-bit activation
//   itself, no widened copy of x made or kept for backward).
//   Cost (the row kernels): forward reads x 3 times, writes y; backward reads g and x twice,
//   writes gx. Measured before the cached kernels (H200, docs/results/2026-12-04c-nvidia-h200.md):
//   38 % of the device copy at 3136 × 2048, 42 % at 4096 × 768; the cached ones are not yet
//   timed on a GPU.
// Group norm over x (N, P, C) channels last, G groups of Cg = C/G channels; statistics per
// (n, g) over its K = P·Cg values:
//   group_norm_forward: one block per (n, g), threads stride over the group's values with
//     the channel fastest (coalesced runs of Cg); two block reductions (mean, then squared
//     deviations), then y = (x − μ)·rstd·w[c] + b[c]; writes mean, rstd (N, G).
//   group_norm_backward: one block per (n, g): Σĝ and Σĝx̂ (ĝ = g·w[c]), then
//     gx = rstd·(ĝ − Σĝ/K − x̂·Σĝx̂/K).
//   group_norm_param_grads: gw[c] = Σ g·x̂, gb[c] = Σ g over the N·P rows in the two stages
//     of layer_norm_param_grads (group_norm_param_partials: 32 channels × a slice of
//     kLnSliceRows rows per block, each row's (n, group) statistics read from global; then
//     layer_norm_param_sum in slice order). It was one thread per channel over all N·P rows
//     (⌈C/128⌉ blocks: one block for C ≤ 128). sm_90 (docs/results/kernel-resources-sm90.md):
//     the partials kernel 40 registers, 4,224 B static shared, 75 % theoretical occupancy
//     at 256 threads (registers); the sum kernel 32 registers, 100 %.
//   Cost: forward reads x 3 times, writes y; backward reads g and x twice, writes gx; the
//   parameter gradients read g and x once more.
//   Storage: x, y, g, gx, the parameters and their gradients in T (f32, f64, or f16/bf16
//   natively: loaded widened, stored rounded once); mean and rstd in acc_t<T> (f32 for 16 bits).
#include "common/mul_rn.hpp"
#include "loops.cuh"
#include "reduce.cuh"
#include "rows.cuh"
#include "vector.cuh"

namespace adnn::kernels {

enum ChannelMode : int { ch_sum, ch_sqdev, ch_grad };

enum ChannelFinal : int { fin_mean, fin_invstd, fin_sums };

template <class T, class P>
__global__ void channel_partials_kernel(int mode, const T* __restrict__ x, const T* __restrict__ g,
                                        const P* __restrict__ mean, const P* __restrict__ invstd,
                                        const P* __restrict__ w, const P* __restrict__ b, NormActivation act,
                                        double* __restrict__ part, int64_t M, int64_t C) {
  ADNN_SHARED(double, s0, [8][33]);
  ADNN_SHARED(double, s1, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * 32 + tx;
  double a0 = 0, a1 = 0;
  if (c < C) {
    const double mu = mode == ch_sum ? 0.0 : double(mean[c]);
    const double is = mode == ch_grad ? double(invstd[c]) : 0.0;
    const bool with_act = mode == ch_grad && act != NormActivation::none;  // w and b are read for act' only
    const double wc = with_act && w ? double(w[c]) : 1.0, bc = with_act && b ? double(b[c]) : 0.0;
    struct XG {
      double x, g;
    };
    // rows r, r + 8·gridDim.y, …: four rows' loads in flight at a time (loops.cuh)
    for_each_strided_batched<4>(
        int64_t(blockIdx.y) * 8 + ty, M, 8 * int64_t(gridDim.y),
        [&](int64_t r) {
          return XG{load_as<double>(x[r * C + c]), mode == ch_grad ? load_as<double>(g[r * C + c]) : 0.0};
        },
        [&](int64_t, const XG& v) {
          if (mode == ch_sum) {
            a0 += v.x;
          } else if (mode == ch_sqdev) {
            a0 += (v.x - mu) * (v.x - mu);
          } else {
            const double xhat = (v.x - mu) * is;
            double gv = v.g;
            if (act != NormActivation::none) gv *= double(norm_act_grad<P>(act, P(xhat * wc + bc)));
            a0 += gv;
            a1 += gv * xhat;
          }
        });
  }
  s0[ty][tx] = a0;
  s1[ty][tx] = a1;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int k = 1; k < 8; ++k) {
      a0 += s0[k][tx];
      a1 += s1[k][tx];
    }
    const int64_t S = gridDim.y;
    part[(0 * S + blockIdx.y) * C + c] = a0;
    part[(1 * S + blockIdx.y) * C + c] = a1;
  }
}

// Adds the P partial slices; fin_mean: out0 = s0/M; fin_invstd: out0 = 1/sqrt(s0/M + eps);
// fin_sums: out0 = s0, out1 = s1 (either may be null).
template <class O>
__global__ void channel_reduce_kernel(int fin, const double* __restrict__ part, int64_t P, int64_t C, int64_t M,
                                      double eps, O* __restrict__ out0, O* __restrict__ out1) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  double a0 = 0, a1 = 0;
  struct Pair {
    double s0, s1;
  };
  for_each_strided_batched<8>(  // the slices in order, eight slices' loads in flight at a time
      int64_t(0), P, int64_t(1), [&](int64_t p) { return Pair{part[p * C + c], part[(P + p) * C + c]}; },
      [&](int64_t, const Pair& v) {
        a0 += v.s0;
        a1 += v.s1;
      });
  if (fin == fin_mean) {
    out0[c] = O(a0 / double(M));
  } else if (fin == fin_invstd) {
    out0[c] = O(1.0 / math::sqrt(a0 / double(M) + eps));
  } else {
    if (out0) out0[c] = O(a0);
    if (out1) out1[c] = O(a1);
  }
}

// With `residual` and `scale` it is also the MBConv epilogue: y = residual + s[n] · act(z),
// s the per-sample drop-path factor (0 or 1/(1-p)), n = row / rows_per_sample.
// Row slices of the per-channel sums: enough blocks along M, at most 64 partial rows.
inline int64_t channel_sum_slices(int64_t M) { return M / 256 < 1 ? 1 : (M / 256 > 64 ? 64 : M / 256); }
// Per-channel sums of x (M, C) (mode ch_sum / ch_sqdev / ch_grad) into the workspace `part`
// (2, channel_sum_slices(M), C) f64, then finalised (fin) into out0 / out1.
// x and g in T; mean, invstd, w, b in P.
template <class T, class O, class P = T>
void launch_channel_sums(int mode, int fin, const T* x, const T* g, const P* mean, const P* invstd, const P* w,
                         const P* b, NormActivation act, double* part, int64_t M, int64_t C, double eps, O* out0,
                         O* out1, Stream stream) {
  const int64_t S = channel_sum_slices(M);
  ADNN_LAUNCH((channel_partials_kernel<T, P>), dim3(ceil_div(C, 32), unsigned(S)), dim3(32, 8), 0, stream, mode, x, g,
              mean, invstd, w, b, act, part, M, C);
  ADNN_LAUNCH(channel_reduce_kernel<O>, dim3(ceil_div(C, 128)), dim3(128), 0, stream, fin, part, S, C, M, eps, out0,
              out1);
}

// Row slices of the Welford statistics: about 256 rows per slice at least, and up to about
// 1024 blocks in all (C/32 channel tiles × P slices), at most 1024 slices.
inline int64_t bn_stats_slices(int64_t M, int64_t C) {
  const int64_t by_rows = M / 256 < 1 ? 1 : M / 256;
  const int64_t tiles = ceil_div(C, 32);
  int64_t want = 1024 / (tiles < 1 ? 1 : tiles);
  if (want < 1) want = 1;
  if (want > 1024) want = 1024;
  return by_rows < want ? by_rows : want;
}

// Chan's merge of (nb, mb, qb) into (na, ma, qa): counts, means, sums of squared deviations.
__device__ __forceinline__ void welford_merge(double& na, double& ma, double& qa, double nb, double mb, double qb) {
  if (nb == 0) return;
  const double n = na + nb, d = mb - ma;
  ma += d * (nb / n);
  qa += qb + d * d * (na * nb / n);
  na = n;
}

// x (M, C); part (3, P, C) f64: count, mean, M2 of each (slice, channel).
template <class T>
__global__ void bn_stats_partials_kernel(const T* __restrict__ x, double* __restrict__ part, int64_t M, int64_t C) {
  ADNN_SHARED(double, sn, [8][33]);
  ADNN_SHARED(double, sm, [8][33]);
  ADNN_SHARED(double, sq, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * 32 + tx;
  double n = 0, mu = 0, q = 0;
  if (c < C)  // rows r, r + 8·gridDim.y, …: four rows' loads in flight at a time (loops.cuh)
    for_each_strided_batched<4>(
        int64_t(blockIdx.y) * 8 + ty, M, 8 * int64_t(gridDim.y), [&](int64_t r) { return load_as<double>(x[r * C + c]); },
        [&](int64_t, double v) {
          n += 1;
          const double d = v - mu;
          mu += d / n;
          q += d * (v - mu);
        });
  sn[ty][tx] = n;
  sm[ty][tx] = mu;
  sq[ty][tx] = q;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int k = 1; k < 8; ++k) welford_merge(n, mu, q, sn[k][tx], sm[k][tx], sq[k][tx]);
    const int64_t P = gridDim.y;
    part[(0 * P + blockIdx.y) * C + c] = n;
    part[(1 * P + blockIdx.y) * C + c] = mu;
    part[(2 * P + blockIdx.y) * C + c] = q;
  }
}

// One thread per channel: merges the P slices in order; mean, invstd (C); running_mean and
// running_var (C, may be null) updated in place with momentum and the unbiased variance.
template <class T>
__global__ void bn_stats_merge_kernel(const double* __restrict__ part, int64_t P, int64_t C, int64_t M, double eps,
                                      double momentum, T* __restrict__ mean, T* __restrict__ invstd,
                                      T* __restrict__ running_mean, T* __restrict__ running_var,
                                      int64_t* __restrict__ num_batches) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  if (num_batches && c == 0) *num_batches += 1;  // the module's num_batches_tracked: no launch of its own
  double n = 0, mu = 0, q = 0;
  struct Welford {
    double n, mu, q;
  };
  for_each_strided_batched<8>(  // the slices in order, eight slices' loads in flight at a time
      int64_t(0), P, int64_t(1),
      [&](int64_t p) { return Welford{part[p * C + c], part[(P + p) * C + c], part[(2 * P + p) * C + c]}; },
      [&](int64_t, const Welford& v) { welford_merge(n, mu, q, v.n, v.mu, v.q); });
  const double var = q / double(M);
  mean[c] = T(mu);
  invstd[c] = T(1.0 / math::sqrt(var + eps));
  if (running_mean) running_mean[c] = T((1.0 - momentum) * double(running_mean[c]) + momentum * mu);
  if (running_var)
    running_var[c] = T((1.0 - momentum) * double(running_var[c]) + momentum * q / double(M > 1 ? M - 1 : 1));
}

// Training statistics of x (M, C) in T into mean, invstd and the running statistics in P, and
// num_batches (or null) incremented: two launches, workspace part (3, bn_stats_slices(M, C), C) f64.
template <class T, class P>
void launch_bn_stats(const T* x, double* part, int64_t M, int64_t C, double eps, double momentum, P* mean, P* invstd,
                     P* running_mean, P* running_var, int64_t* num_batches, Stream stream) {
  const int64_t S = bn_stats_slices(M, C);
  ADNN_LAUNCH(bn_stats_partials_kernel<T>, dim3(ceil_div(C, 32), unsigned(S)), dim3(32, 8), 0, stream, x, part, M, C);
  ADNN_LAUNCH(bn_stats_merge_kernel<P>, dim3(ceil_div(C, 128)), dim3(128), 0, stream, part, S, C, M, eps, momentum,
              mean, invstd, running_mean, running_var, num_batches);
}

// x, y, residual in T; mean, invstd, w, b, scale in P (the math is in P).
template <class T, class P, int V = 1>
__global__ void bn_apply_kernel(const T* __restrict__ x, const P* __restrict__ mean, const P* __restrict__ invstd,
                                const P* __restrict__ w, const P* __restrict__ b, T* __restrict__ y, int64_t M,
                                int64_t C, NormActivation act, const T* __restrict__ residual,
                                const P* __restrict__ scale, DivIndex channel, DivIndex sample) {
  // V consecutive channels of one row a step (C % V == 0, every pointer V-aligned: the launcher)
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * C / V;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i * V, c = channel.rem(e);
    const vec_t<T, V> xv = load_vec<V>(x + e);
    const vec_t<P, V> mv = load_vec<V>(mean + c), sv = load_vec<V>(invstd + c);
    vec_t<P, V> wv{}, bv{};
    vec_t<T, V> rv{};
    if (w) wv = load_vec<V>(w + c);
    if (b) bv = load_vec<V>(b + c);
    if (residual) rv = load_vec<V>(residual + e);
    const P s = scale ? scale[sample.quot(e)] : P(1);  // one row: one sample
    vec_t<T, V> out;
    ADNN_UNROLL
    for (int k = 0; k < V; ++k) {
      // products rounded on their own (mul_rn: never fused with the next add): nvcc may contract
      // v·w + b into one fma in one width's code and not in the other's, and the result would
      // then depend on V (and differ from the cpu twin by more than its rounding)
      P v = mul_rn(load_as<P>(xv.v[k]) - mv.v[k], sv.v[k]);
      if (w) v = mul_rn(v, wv.v[k]);
      if (b) v = v + bv.v[k];
      v = norm_act<P>(act, v);
      if (scale) v = mul_rn(v, s);
      if (residual) v = v + load_as<P>(rv.v[k]);
      out.v[k] = store_as<T>(v);
    }
    store_vec<V>(y + e, out);
  }
}

// sums: (2, C) doubles: Σg_z, Σg_z·x̂ with g_z = g·act'(z) (g itself without activation)
// g, x, gx in T; w, b, mean, invstd in P. gb, gw (C, P, or null) = the sums rounded to P,
// written by the threads of the first row (two copy launches per BN backward before).
// V consecutive channels of one row a step, as bn_apply_kernel; the same arithmetic per element
// whatever V (the same bits).
template <class T, class P, int V = 1>
__global__ void bn_backward_apply_kernel(const T* __restrict__ g, const T* __restrict__ x, const P* __restrict__ w,
                                         const P* __restrict__ b, const P* __restrict__ mean,
                                         const P* __restrict__ invstd, const double* __restrict__ sums,
                                         T* __restrict__ gx, int64_t M, int64_t C, bool training, NormActivation act,
                                         P* __restrict__ gb, P* __restrict__ gw, DivIndex channel) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < M * C / V;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i * V, c = channel.rem(e);
    if (e < C) {  // the first row's threads: gb and gw, V channels each
      const vec_t<double, V> sb = load_vec<V>(sums + e), sw = load_vec<V>(sums + C + e);
      vec_t<P, V> ob, ow;
      ADNN_UNROLL
      for (int k = 0; k < V; ++k) {
        ob.v[k] = P(sb.v[k]);
        ow.v[k] = P(sw.v[k]);
      }
      if (gb) store_vec<V>(gb + e, ob);
      if (gw) store_vec<V>(gw + e, ow);
    }
    const vec_t<T, V> gv = load_vec<V>(g + e), xv = load_vec<V>(x + e);
    const vec_t<P, V> mv = load_vec<V>(mean + c), sv = load_vec<V>(invstd + c);
    vec_t<P, V> wv{}, bv{};
    if (w) wv = load_vec<V>(w + c);
    if (b) bv = load_vec<V>(b + c);
    vec_t<double, V> s0{}, s1{};  // Σg_z and Σg_z·x̂ of these channels (vectors: a warp's lanes
    if (training) {               // read consecutive 8·V-byte runs, not 8 bytes every 8·V)
      s0 = load_vec<V>(sums + c);
      s1 = load_vec<V>(sums + C + c);
    }
    vec_t<T, V> out;
    ADNN_UNROLL
    for (int k = 0; k < V; ++k) {
      const double wc = w ? double(wv.v[k]) : 1.0, scale = double(sv.v[k]) * wc;
      const double xhat = (load_as<double>(xv.v[k]) - double(mv.v[k])) * double(sv.v[k]);
      double gd = load_as<double>(gv.v[k]);
      if (act != NormActivation::none) gd *= double(norm_act_grad<P>(act, P(xhat * wc + (b ? double(bv.v[k]) : 0.0))));
      if (training)
        out.v[k] = store_as<T>(scale * (gd - s0.v[k] / double(M) - xhat * s1.v[k] / double(M)));
      else
        out.v[k] = store_as<T>(scale * gd);
    }
    store_vec<V>(gx + e, out);
  }
}

// ---------------------------------------------------------------- layer norm
// x in X, y and its gradient g in Y (X, or f32 for a 16-bit X: autocast's f32 output read
// straight from the 16-bit x), parameters, statistics and math in P (X's, f32 for 16-bit).
template <class X, class Y, class P>
__global__ void layer_norm_rows_kernel(const X* __restrict__ x, const P* __restrict__ w, const P* __restrict__ b,
                                       Y* __restrict__ y, P* __restrict__ mean, P* __restrict__ rstd, int64_t rows,
                                       int64_t D, double eps) {
  ADNN_SHARED(P, scratch, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const X* xr = x + r * D;
  P s = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += load_as<P>(xr[k]);
  const P mu = block_sum(s, scratch) / P(D);
  P v = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    const P dx = load_as<P>(xr[k]) - mu;
    v += dx * dx;
  }
  const P rs = P(1) / math::sqrt(block_sum(v, scratch) / P(D) + P(eps));
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    P o = (load_as<P>(xr[k]) - mu) * rs;
    if (w) o = o * w[k];
    if (b) o = o + b[k];
    y[r * D + k] = store_as<Y>(o);
  }
  if (threadIdx.x == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <class X, class Y, class P>
__global__ void layer_norm_backward_rows_kernel(const Y* __restrict__ g, const X* __restrict__ x,
                                                const P* __restrict__ w, const P* __restrict__ mean,
                                                const P* __restrict__ rstd, X* __restrict__ gx, int64_t rows,
                                                int64_t D) {
  ADNN_SHARED(P, scratch, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const P mu = mean[r], rs = rstd[r];
  const Y* gr = g + r * D;
  const X* xr = x + r * D;
  P s1 = 0, s2 = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    const P gh = load_as<P>(gr[k]) * (w ? w[k] : P(1));
    s1 += gh;
    s2 += gh * (load_as<P>(xr[k]) - mu) * rs;
  }
  s1 = block_sum(s1, scratch) / P(D);
  s2 = block_sum(s2, scratch) / P(D);
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    const P gh = load_as<P>(gr[k]) * (w ? w[k] : P(1));
    gx[r * D + k] = store_as<X>(rs * (gh - s1 - (load_as<P>(xr[k]) - mu) * rs * s2));
  }
}

// Rows that fit in registers (row_geom, kernels/rows.cuh): x read once into registers
// (vectors of V along D), mean and squared deviations reduced from there (the same two passes,
// over registers), y written once; w and b read as vectors.
template <class X, class Y, class P, int V, int N>
__global__ void layer_norm_cached_kernel(const X* __restrict__ x, const P* __restrict__ w, const P* __restrict__ b,
                                         Y* __restrict__ y, P* __restrict__ mean, P* __restrict__ rstd, int64_t rows,
                                         int64_t D, double eps) {
  ADNN_SHARED(P, scratch, [8 * 32]);
  if (row_block_past_end(rows)) return;
  const int64_t r = cached_row(rows);
  const bool valid = r >= 0;
  const int64_t ro = valid ? r * D : 0, nv = D / V;
  P v[N * V];  // 0 where the thread holds nothing
  load_row<V, N>(x + ro, D, valid, P(0), v);
  P s = 0;
ADNN_UNROLL
  for (int k = 0; k < N * V; ++k) s += v[k];
  const P mu = row_reduce<P>(ReduceOp::sum, s, P(0), &scratch[threadIdx.y * 32]) / P(D);
  P q = 0;
ADNN_UNROLL
  for (int i = 0; i < N; ++i) {
    const bool in = valid && threadIdx.x + int64_t(i) * blockDim.x < nv;
ADNN_UNROLL
    for (int e = 0; e < V; ++e) {
      const P dx = v[i * V + e] - mu;
      q += in ? dx * dx : P(0);
    }
  }
  const P rs = P(1) / math::sqrt(row_reduce<P>(ReduceOp::sum, q, P(0), &scratch[threadIdx.y * 32]) / P(D) + P(eps));
ADNN_UNROLL
  for (int k = 0; k < N * V; ++k) v[k] = (v[k] - mu) * rs;
  apply_row_params<V, N>(w, b, D, valid, v);
  store_row<V, N>(y + ro, D, valid, [&](int k) { return v[k]; });
  if (valid && threadIdx.x == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <class X, class Y, class P, int V, int N>
__global__ void layer_norm_backward_cached_kernel(const Y* __restrict__ g, const X* __restrict__ x,
                                                  const P* __restrict__ w, const P* __restrict__ mean,
                                                  const P* __restrict__ rstd, X* __restrict__ gx, int64_t rows,
                                                  int64_t D) {
  ADNN_SHARED(P, scratch, [8 * 32]);
  if (row_block_past_end(rows)) return;
  const int64_t r = cached_row(rows);
  const bool valid = r >= 0;
  const int64_t ro = valid ? r * D : 0;
  const P mu = valid ? mean[r] : P(0), rs = valid ? rstd[r] : P(0);
  P gh[N * V], xh[N * V];  // ĝ = g·w and x̂; 0 where the thread holds nothing
  load_row<V, N>(g + ro, D, valid, P(0), gh);
  apply_row_params<V, N>(w, static_cast<const P*>(nullptr), D, valid, gh);
  load_row<V, N>(x + ro, D, valid, P(0), xh);
  P s1 = 0, s2 = 0;
ADNN_UNROLL
  for (int k = 0; k < N * V; ++k) {
    xh[k] = (xh[k] - mu) * rs;
    s1 += gh[k];
    s2 += gh[k] * xh[k];
  }
  s1 = row_reduce<P>(ReduceOp::sum, s1, P(0), &scratch[threadIdx.y * 32]) / P(D);
  s2 = row_reduce<P>(ReduceOp::sum, s2, P(0), &scratch[threadIdx.y * 32]) / P(D);
  store_row<V, N>(gx + ro, D, valid, [&](int k) { return rs * (gh[k] - s1 - xh[k] * s2); });
}

inline constexpr int kLnSliceRows = 256;  // rows per block of layer_norm_param_partials

// The end of a (32, 8) parameter-partials block (layer norm's and group norm's): each thread's
// sums (aw, ab) of column d go through shared memory sw, sb [8][33]; row lane 0 adds the 8 in
// lane order and writes the slice's partials to part (2·slices, D), or, with one slice (part
// null), the gradients rounded once via acc_t<O> (16-bit O through f32, as
// layer_norm_param_sum).
template <class S, class O>
__device__ __forceinline__ void param_partials_store(S& sw, S& sb, double aw, double ab, int64_t d, int64_t D,
                                                     int64_t slice, double* __restrict__ part, O* __restrict__ gw,
                                                     O* __restrict__ gb) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty != 0 || d >= D) return;
  for (int k = 1; k < 8; ++k) {
    aw += sw[k][tx];
    ab += sb[k][tx];
  }
  if (part) {
    part[(slice * 2) * D + d] = aw;
    part[(slice * 2 + 1) * D + d] = ab;
  } else {
    if (gw) gw[d] = O(acc_t<O>(aw));
    if (gb) gb[d] = O(acc_t<O>(ab));
  }
}

template <class X, class Y, class P>
__global__ void layer_norm_param_partials_kernel(const Y* __restrict__ g, const X* __restrict__ x,
                                                 const P* __restrict__ mean, const P* __restrict__ rstd,
                                                 P* __restrict__ gw, P* __restrict__ gb, double* __restrict__ part,
                                                 int64_t rows, int64_t D) {
  ADNN_SHARED(double, smu, [kLnSliceRows]);
  ADNN_SHARED(double, srs, [kLnSliceRows]);
  ADNN_SHARED(double, sw, [8][33]);
  ADNN_SHARED(double, sb, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y, t = ty * 32 + tx;
  const int64_t d = int64_t(blockIdx.y) * 32 + tx, slice = blockIdx.x, r0 = slice * kLnSliceRows;
  const int n = int(rows - r0 < kLnSliceRows ? rows - r0 : kLnSliceRows);
  if (t < n) {
    smu[t] = double(mean[r0 + t]);
    srs[t] = double(rstd[r0 + t]);
  }
  __syncthreads();
  double aw = 0, ab = 0;
  struct GX {
    double g, x;
  };
  if (d < D)  // rows ty, ty + 8, … of the slice, four rows' loads in flight at a time (loops.cuh)
    for_each_strided_batched<4>(
        ty, n, 8,
        [&](int i) {
          const int64_t e = (r0 + i) * D + d;
          return GX{load_as<double>(g[e]), load_as<double>(x[e])};
        },
        [&](int i, const GX& v) {
          aw += v.g * (v.x - smu[i]) * srs[i];
          ab += v.g;
        });
  param_partials_store(sw, sb, aw, ab, d, D, slice, part, gw, gb);
}

template <class P>
__global__ void layer_norm_param_sum_kernel(const double* __restrict__ part, P* __restrict__ gw, P* __restrict__ gb,
                                            int64_t slices, int64_t D) {
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (d >= D) return;
  double aw = 0, ab = 0;
  struct Pair {
    double w, b;
  };
  for_each_strided_batched<8>(  // the slices in order, eight slices' loads in flight at a time
      int64_t(0), slices, int64_t(1), [&](int64_t s) { return Pair{part[(s * 2) * D + d], part[(s * 2 + 1) * D + d]}; },
      [&](int64_t, const Pair& v) {
        aw += v.w;
        ab += v.b;
      });
  if (gw) gw[d] = P(acc_t<P>(aw));  // 16-bit P (group norm's parameters): via f32, as stage 1
  if (gb) gb[d] = P(acc_t<P>(ab));
}

// ---------------------------------------------------------------- group norm
// Offset of the e-th value of group (n, gi) in x (N, P, C): pixel e / Cg, channel gi·Cg + e % Cg.
__device__ __forceinline__ int64_t group_offset(int64_t n, int64_t gi, int64_t e, int64_t P, int64_t C, int64_t Cg) {
  return (n * P + e / Cg) * C + gi * Cg + e % Cg;
}

template <class T>
__global__ void group_norm_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                          T* __restrict__ y, acc_t<T>* __restrict__ mean, acc_t<T>* __restrict__ rstd,
                                          int64_t P, int64_t C, int64_t G, double eps) {
  using A = acc_t<T>;
  ADNN_SHARED(A, scratch, [32]);
  const int64_t ng = blockIdx.x, n = ng / G, gi = ng % G, Cg = C / G, K = P * Cg;
  A s = 0;
  for (int64_t e = threadIdx.x; e < K; e += blockDim.x) s += A(x[group_offset(n, gi, e, P, C, Cg)]);
  const A mu = block_sum(s, scratch) / A(K);
  A q = 0;
  for (int64_t e = threadIdx.x; e < K; e += blockDim.x) {
    const A d = A(x[group_offset(n, gi, e, P, C, Cg)]) - mu;
    q += d * d;
  }
  const A rs = A(1) / math::sqrt(block_sum(q, scratch) / A(K) + A(eps));
  if (threadIdx.x == 0) {
    mean[ng] = mu;
    rstd[ng] = rs;
  }
  for (int64_t e = threadIdx.x; e < K; e += blockDim.x) {
    const int64_t off = group_offset(n, gi, e, P, C, Cg), c = gi * Cg + e % Cg;
    y[off] = T((A(x[off]) - mu) * rs * (w ? A(w[c]) : A(1)) + (b ? A(b[c]) : A(0)));
  }
}

template <class T>
__global__ void group_norm_backward_kernel(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ w,
                                           const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                                           T* __restrict__ gx, int64_t P, int64_t C, int64_t G) {
  using A = acc_t<T>;
  ADNN_SHARED(A, scratch, [32]);
  const int64_t ng = blockIdx.x, n = ng / G, gi = ng % G, Cg = C / G, K = P * Cg;
  const A mu = mean[ng], rs = rstd[ng];
  A s1 = 0, s2 = 0;
  for (int64_t e = threadIdx.x; e < K; e += blockDim.x) {
    const int64_t off = group_offset(n, gi, e, P, C, Cg), c = gi * Cg + e % Cg;
    const A gh = A(g[off]) * (w ? A(w[c]) : A(1));
    s1 += gh;
    s2 += gh * (A(x[off]) - mu) * rs;
  }
  s1 = block_sum(s1, scratch) / A(K);
  s2 = block_sum(s2, scratch) / A(K);
  for (int64_t e = threadIdx.x; e < K; e += blockDim.x) {
    const int64_t off = group_offset(n, gi, e, P, C, Cg), c = gi * Cg + e % Cg;
    const A gh = A(g[off]) * (w ? A(w[c]) : A(1));
    gx[off] = T(rs * (gh - s1 - (A(x[off]) - mu) * rs * s2));
  }
}

// Stage 1 of the group norm parameter gradients (stage 2: layer_norm_param_sum_kernel):
// block (32, 8) over 32 channels × one slice of kLnSliceRows of the N·P rows, as
// layer_norm_param_partials; a row's mean and rstd are those of its (n, group), read from
// global (the 32 channels of a warp fall in one or a few groups: a broadcast).
template <class T>
__global__ void group_norm_param_partials_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                                 const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                                                 T* __restrict__ gw, T* __restrict__ gb, double* __restrict__ part,
                                                 int64_t rows, int64_t P, int64_t C, int64_t G) {
  ADNN_SHARED(double, sw, [8][33]);
  ADNN_SHARED(double, sb, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.y) * 32 + tx, slice = blockIdx.x, r0 = slice * kLnSliceRows;
  const int n = int(rows - r0 < kLnSliceRows ? rows - r0 : kLnSliceRows);
  double aw = 0, ab = 0;
  if (c < C) {
    const int64_t gi = c / (C / G);
    struct Row {
      double g, x, mean, rstd;
    };
    for_each_strided_batched<4>(  // rows ty, ty + 8, …: four rows' loads in flight at a time
        ty, n, 8,
        [&](int i) {
          const int64_t r = r0 + i, st = (r / P) * G + gi, e = r * C + c;
          return Row{load_as<double>(g[e]), load_as<double>(x[e]), double(mean[st]), double(rstd[st])};
        },
        [&](int, const Row& v) {
          aw += v.g * (v.x - v.mean) * v.rstd;
          ab += v.g;
        });
  }
  param_partials_store(sw, sb, aw, ab, c, C, slice, part, gw, gb);
}

}  // namespace adnn::kernels
