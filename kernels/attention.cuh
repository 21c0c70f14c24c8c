#pragma once
// Fused scaled-dot-product attention (the FlashAttention scheme), SIMT path (f32, f64; the
// f16/bf16 tensor-core forward is kernels/attention_mma.cuh).
//
//   S = scale · Q Kᵀ (+ key padding mask: masked keys get −inf),
//   P = softmax(S) row-wise, P̃ = P ∘ Z with Z_ij = keep_ij / (1 − p) (dropout, or 1),
//   O = P̃ V, and the row log-sum-exp lse_i = log Σ_j exp(S_ij) is saved for backward.
//   A row whose keys are all masked gives O_i = 0 and lse_i = −inf (torch gives NaN).
// Backward recomputes S and P from lse (nothing of size L×L is ever stored):
//   Dlt_i = Σ_d dO_id O_id,  dP_ij = Z_ij (dO_i · V_j),  dS_ij = P_ij (dP_ij − Dlt_i),
//   dQ = scale · dS K,  dK = scale · dSᵀ Q,  dV = P̃ᵀ dO.
// Dropout draws keep_ij from a counter-based hash of (seed, b·H + h, i, j), so backward and
// the CPU twin regenerate exactly the forward's mask without storing it.
//
// Layout: Q (BH, Lq, D), K and V (BH, Lk, D), O and dO like Q, lse and Dlt (BH, Lq) f32/f64,
//   mask (B, Lk) bool or null (true = ignore that key), all contiguous; D ≤ 256.
// Threads (forward and dQ): grid (⌈Lq/16⌉, BH), block 128 = 4 warps, 4 query rows per warp.
//   Per tile of 32 keys, K and V rows are staged in shared memory (rows padded to D+1 so
//   lane j reading row j is conflict-free); lane j owns key j for the scores (the query row
//   is a shared-memory broadcast), online max/sum are warp shuffles, and for the P·V product
//   lane ℓ owns output columns ℓ, ℓ+32, … (≤ 8 accumulators per row) while P̃_ij is
//   broadcast from lane j.
// Threads (dK, dV): grid (⌈Lk/16⌉, BH), block 128, 4 keys per warp; per tile of 32 queries
//   (Q, dO staged in shared memory) lane i owns query i for the recomputed scores, and lane ℓ
//   owns columns ℓ + 32c of the dK/dV accumulators.
// Cost per (b, h): forward 4·Lq·Lk·D flops, reads Q once and K, V ⌈Lq/16⌉ times (L2), writes
//   O and lse; backward 2 × recomputation (dQ and dK/dV kernels) + 6·Lq·Lk·D flops for the
//   gradients, the same traffic pattern. Shared memory: (2·32·(D+1) + 16·D)·sizeof(T) forward,
//   (2·32·(D+1) + 32·D)·sizeof(T) for dQ, (2·32·(D+1) + 2·16·D)·sizeof(T) for dK/dV.
#include "common.cuh"
#include "common/attention.hpp"

#include <cstdint>
#include <type_traits>

namespace adnn::kernels {

constexpr int attn_max_head_dim = kAttnMaxHeadDim;
constexpr int attn_chunks = attn_max_head_dim / 32;  // accumulators per row and lane
constexpr int attn_rows_per_warp = 4;
constexpr int attn_warps = 4;
constexpr int attn_block_rows = attn_rows_per_warp * attn_warps;  // 16 query (or key) rows
constexpr int attn_tile = 32;                                       // keys (or queries) per tile

// A value of T in the accumulation type (f16 / bf16 through their float conversion).
template <class A, class T>
__device__ __forceinline__ A attn_value(T v) {
  if constexpr (std::is_same_v<T, A>) return v;
  else return A(to_float(v));
}

template <class A>
__device__ __forceinline__ A attn_warp_sum(A v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
template <class A>
__device__ __forceinline__ A attn_warp_max(A v) {
  for (int off = 16; off > 0; off >>= 1) {
    const A o = __shfl_xor_sync(0xffffffffu, v, off);
    v = o > v ? o : v;
  }
  return v;
}

// acc[c] += Σ_jj s_jj · rows[jj][lane + 32c] over a tile of staged rows (row pitch `pitch`),
// where s_jj is lane jj's `s` (a warp broadcast); a zero s_jj (uniform across the warp)
// skips its row.
template <class A, class T>
__device__ __forceinline__ void attn_accumulate_rows(A (&acc)[attn_chunks], A s, ADNN_SHARED_PTR(const T) rows, int64_t pitch,
                                                     int lane, int64_t D) {
  for (int jj = 0; jj < attn_tile; ++jj) {
    const A sj = __shfl_sync(0xffffffffu, s, jj);
    if (sj == A(0)) continue;
    ADNN_SHARED_PTR(const T) r = rows + jj * pitch;
    for (int c = 0; c < attn_chunks; ++c) {
      const int64_t d = lane + 32 * c;
      if (d < D) acc[c] += sj * A(r[d]);
    }
  }
}

// Stages rows [r0, r0 + n) of src (rows of D) into dst with row pitch `pitch` (zeros past
// `rows`); all threads of the block take part.
template <class T>
__device__ __forceinline__ void attn_stage(ADNN_SHARED_PTR(T) dst, const T* src, int64_t r0, int n, int64_t rows, int64_t D,
                                           int64_t pitch) {
  for (int64_t e = threadIdx.x; e < int64_t(n) * D; e += blockDim.x) {
    const int64_t r = e / D, d = e % D;
    dst[r * pitch + d] = r0 + r < rows ? src[(r0 + r) * D + d] : T(0);
  }
}

// What each tiled kernel's block works on: head dimension D, row pitch D + 1 of the staged
// (attn_tile, D) tiles (the +1 staggers banks), its (batch · head) index bh = blockIdx.y and
// batch b; and the kept-probability scale 1/(1 − dropout).
struct AttnBlock {
  int64_t D, pitch, bh, b;
};
__device__ __forceinline__ AttnBlock attn_block(const AttnGeom& P) {
  return {P.D, P.D + 1, int64_t(blockIdx.y), int64_t(blockIdx.y) / P.H};
}
// The tiled kernels' dynamic shared memory: two staged (attn_tile, D) tiles with row pitch
// `pitch`, then two (attn_block_rows, D) blocks of the block's own rows.
template <class T>
struct AttnSlots {  // one declaration each: on the device ADNN_SHARED_PTR(T) is T*
  ADNN_SHARED_PTR(T) tile0;
  ADNN_SHARED_PTR(T) tile1;
  ADNN_SHARED_PTR(T) rows0;
  ADNN_SHARED_PTR(T) rows1;
};
template <class T>
__device__ __forceinline__ AttnSlots<T> attn_slots(ADNN_SHARED_PTR(T) smem, int64_t D, int64_t pitch) {
  AttnSlots<T> s;
  s.tile0 = smem;
  s.tile1 = s.tile0 + attn_tile * pitch;
  s.rows0 = s.tile1 + attn_tile * pitch;
  s.rows1 = s.rows0 + attn_block_rows * D;
  return s;
}
template <class A>
__device__ __forceinline__ A attn_keep_scale(const AttnGeom& P) {
  return P.dropout > 0 ? A(1.0 / (1.0 - P.dropout)) : A(1);
}

// The tile loop's staging step: every warp is done with the previous tiles, then rows
// [r0, r0 + attn_tile) of x and y (rows of D, `rows` of them) are staged with pitch `pitch`
// into xs and ys, then every thread sees them.
template <class T>
__device__ __forceinline__ void attn_stage_tiles(ADNN_SHARED_PTR(T) xs, const T* x, ADNN_SHARED_PTR(T) ys, const T* y,
                                                 int64_t r0, int64_t rows, int64_t D, int64_t pitch) {
  __syncthreads();
  attn_stage(xs, x, r0, attn_tile, rows, D, pitch);
  attn_stage(ys, y, r0, attn_tile, rows, D, pitch);
  __syncthreads();
}

// The dropout factor of P_ij: 1/(1 − p) when kept (always with no dropout), 0 when dropped
// (common::attention_keep, the draw the forward made).
template <class A>
__device__ __forceinline__ A attn_keep_factor(const AttnGeom& P, int64_t bh, int64_t i, int64_t j, A keep_scale) {
  if (P.dropout > 0 && !attention_keep(P.seed, uint64_t(bh), uint64_t(i), uint64_t(j), uint64_t(P.Lq), uint64_t(P.Lk),
                                       P.dropout))
    return A(0);
  return keep_scale;
}

template <class T, class A>
__device__ __forceinline__ A attn_dot(ADNN_SHARED_PTR(const T) a, ADNN_SHARED_PTR(const T) b, int64_t D) {
  A s = 0;
  for (int64_t d = 0; d < D; ++d) s += A(a[d]) * A(b[d]);
  return s;
}

// ---------------------------------------------------------------- forward
template <class T>
__global__ void attention_forward_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                         const bool* __restrict__ mask, T* __restrict__ o, T* __restrict__ lse,
                                         AttnGeom P) {
  attn_resolve_seed(P);  // the graph replay salt, once
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const auto [D, pitch, bh, b] = attn_block(P);
  ADNN_DYNAMIC_SHARED(T, smem);
  const AttnSlots<T> slots = attn_slots<T>(smem, D, pitch);
  ADNN_SHARED_PTR(T) Ks = slots.tile0;  // (32, D+1): key tile
  ADNN_SHARED_PTR(T) Vs = slots.tile1;  // (32, D+1): value tile
  ADNN_SHARED_PTR(T) Qs = slots.rows0;  // (16, D): the block's query rows
  const int64_t i0 = int64_t(blockIdx.x) * attn_block_rows;
  const T* qb = q + bh * P.Lq * D;
  const T* kb = k + bh * P.Lk * D;
  const T* vb = v + bh * P.Lk * D;
  attn_stage(Qs, qb, i0, attn_block_rows, P.Lq, D, D);

  A acc[attn_rows_per_warp][attn_chunks];
  A m[attn_rows_per_warp], l[attn_rows_per_warp];
  for (int t = 0; t < attn_rows_per_warp; ++t) {
    m[t] = -INFINITY;
    l[t] = 0;
    for (int c = 0; c < attn_chunks; ++c) acc[t][c] = 0;
  }
  const A keep_scale = attn_keep_scale<A>(P);
  for (int64_t j0 = 0; j0 < P.Lk; j0 += attn_tile) {
    attn_stage_tiles(Ks, kb, Vs, vb, j0, P.Lk, D, pitch);  // (and Qs staged on the first pass)
    const int64_t j = j0 + lane;
    const bool valid = j < P.Lk && !(mask && mask[b * P.Lk + j]);
    for (int t = 0; t < attn_rows_per_warp; ++t) {
      const int r = warp * attn_rows_per_warp + t;
      const int64_t i = i0 + r;
      if (i >= P.Lq) break;  // uniform across the warp
      const A s = valid ? A(P.scale) * attn_dot<T, A>(Qs + r * D, Ks + lane * pitch, D) : A(-INFINITY);
      const A m_tile = attn_warp_max(s);
      const A m_new = m_tile > m[t] ? m_tile : m[t];
      if (m_new == A(-INFINITY)) continue;  // every key so far masked (uniform)
      const A p = valid ? math::exp(s - m_new) : A(0);
      const A alpha = m[t] == A(-INFINITY) ? A(0) : math::exp(m[t] - m_new);
      l[t] = l[t] * alpha + attn_warp_sum(p);
      m[t] = m_new;
      const A pd = P.dropout > 0 ? (valid ? p * attn_keep_factor(P, bh, i, j, keep_scale) : A(0)) : p;
      for (int c = 0; c < attn_chunks; ++c) acc[t][c] *= alpha;
      attn_accumulate_rows<A, T>(acc[t], pd, Vs, pitch, lane, D);  // O += P̃ V
    }
  }
  for (int t = 0; t < attn_rows_per_warp; ++t) {
    const int64_t i = i0 + warp * attn_rows_per_warp + t;
    if (i >= P.Lq) break;
    const A inv = l[t] > 0 ? A(1) / l[t] : A(0);
    T* orow = o + (bh * P.Lq + i) * D;
    for (int c = 0; c < attn_chunks; ++c) {
      const int64_t d = lane + 32 * c;
      if (d < D) orow[d] = T(acc[t][c] * inv);
    }
    if (lane == 0) lse[bh * P.Lq + i] = l[t] > 0 ? T(m[t] + math::log(l[t])) : T(-INFINITY);
  }
}

// ---------------------------------------------------------------- backward
// Dlt_i = Σ_d dO_id · O_id, one warp per row.
template <class T, class O = T>
__global__ void attention_row_dot_kernel(const T* __restrict__ go, const T* __restrict__ o, O* __restrict__ dlt,
                                         int64_t rows, int64_t D) {
  using A = acc_t<T>;
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // uniform per warp
  A s = 0;
  for (int64_t d = lane; d < D; d += 32) s += attn_value<A>(go[r * D + d]) * attn_value<A>(o[r * D + d]);
  s = attn_warp_sum(s);
  if (lane == 0) dlt[r] = O(s);
}

// P_ij recomputed from the saved log-sum-exp (0 for masked keys and fully masked rows).
template <class A>
__device__ __forceinline__ A attn_prob(A s, A lse_i, bool valid) {
  return valid && lse_i != A(-INFINITY) ? math::exp(s - lse_i) : A(0);
}

// dQ: the forward's structure over query tiles.
template <class T>
__global__ void attention_backward_dq_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                             const T* __restrict__ v, const bool* __restrict__ mask,
                                             const T* __restrict__ go, const T* __restrict__ lse,
                                             const T* __restrict__ dlt, T* __restrict__ gq, AttnGeom P) {
  attn_resolve_seed(P);  // the graph replay salt, once
  using A = acc_t<T>;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const auto [D, pitch, bh, b] = attn_block(P);
  ADNN_DYNAMIC_SHARED(T, smem);
  // key and value tiles (32, D+1); the block's query and dO rows (16, D)
  const auto [Ks, Vs, Qs, Gs] = attn_slots<T>(smem, D, pitch);
  const int64_t i0 = int64_t(blockIdx.x) * attn_block_rows;
  attn_stage(Qs, q + bh * P.Lq * D, i0, attn_block_rows, P.Lq, D, D);
  attn_stage(Gs, go + bh * P.Lq * D, i0, attn_block_rows, P.Lq, D, D);
  A acc[attn_rows_per_warp][attn_chunks];
  for (int t = 0; t < attn_rows_per_warp; ++t)
    for (int c = 0; c < attn_chunks; ++c) acc[t][c] = 0;
  const A keep_scale = attn_keep_scale<A>(P);
  for (int64_t j0 = 0; j0 < P.Lk; j0 += attn_tile) {
    attn_stage_tiles(Ks, k + bh * P.Lk * D, Vs, v + bh * P.Lk * D, j0, P.Lk, D, pitch);
    const int64_t j = j0 + lane;
    const bool valid = j < P.Lk && !(mask && mask[b * P.Lk + j]);
    for (int t = 0; t < attn_rows_per_warp; ++t) {
      const int r = warp * attn_rows_per_warp + t;
      const int64_t i = i0 + r;
      if (i >= P.Lq) break;
      A ds = 0;
      if (valid) {
        const A s = A(P.scale) * attn_dot<T, A>(Qs + r * D, Ks + lane * pitch, D);
        const A p = attn_prob(s, A(lse[bh * P.Lq + i]), true);
        const A z = attn_keep_factor(P, bh, i, j, keep_scale);
        const A dp = z * attn_dot<T, A>(Gs + r * D, Vs + lane * pitch, D);
        ds = p * (dp - A(dlt[bh * P.Lq + i]));
      }
      attn_accumulate_rows<A, T>(acc[t], ds, Ks, pitch, lane, D);  // dQ += dS K
    }
  }
  for (int t = 0; t < attn_rows_per_warp; ++t) {
    const int64_t i = i0 + warp * attn_rows_per_warp + t;
    if (i >= P.Lq) break;
    T* row = gq + (bh * P.Lq + i) * D;
    for (int c = 0; c < attn_chunks; ++c) {
      const int64_t d = lane + 32 * c;
      if (d < D) row[d] = T(A(P.scale) * acc[t][c]);
    }
  }
}

// dK and dV: key tiles of 16 (4 per warp), looping over query tiles of 32.
template <class T>
__global__ void attention_backward_dkv_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                              const T* __restrict__ v, const bool* __restrict__ mask,
                                              const T* __restrict__ go, const T* __restrict__ lse,
                                              const T* __restrict__ dlt, T* __restrict__ gk, T* __restrict__ gv,
                                              AttnGeom P) {
  attn_resolve_seed(P);  // the graph replay salt, once
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(T, smem);
  const auto [D, pitch, bh, b] = attn_block(P);
  // query and dO tiles (32, D+1); the block's key and value rows (16, D)
  const auto [Qs, Gs, Ks, Vs] = attn_slots<T>(smem, D, pitch);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t j0 = int64_t(blockIdx.x) * attn_block_rows;
  attn_stage(Ks, k + bh * P.Lk * D, j0, attn_block_rows, P.Lk, D, D);
  attn_stage(Vs, v + bh * P.Lk * D, j0, attn_block_rows, P.Lk, D, D);
  A ak[attn_rows_per_warp][attn_chunks], av[attn_rows_per_warp][attn_chunks];
  for (int t = 0; t < attn_rows_per_warp; ++t)
    for (int c = 0; c < attn_chunks; ++c) ak[t][c] = av[t][c] = 0;
  const A keep_scale = attn_keep_scale<A>(P);
  for (int64_t i0 = 0; i0 < P.Lq; i0 += attn_tile) {
    attn_stage_tiles(Qs, q + bh * P.Lq * D, Gs, go + bh * P.Lq * D, i0, P.Lq, D, pitch);
    const int64_t i = i0 + lane;
    const bool row_ok = i < P.Lq;
    const A lse_i = row_ok ? A(lse[bh * P.Lq + i]) : A(-INFINITY);
    const A dlt_i = row_ok ? A(dlt[bh * P.Lq + i]) : A(0);
    for (int t = 0; t < attn_rows_per_warp; ++t) {
      const int r = warp * attn_rows_per_warp + t;
      const int64_t j = j0 + r;
      if (j >= P.Lk) break;                               // uniform
      if (mask && mask[b * P.Lk + j]) continue;           // masked key: no gradient (uniform)
      A pz = 0, ds = 0;
      if (row_ok) {
        const A s = A(P.scale) * attn_dot<T, A>(Qs + lane * pitch, Ks + r * D, D);
        const A p = attn_prob(s, lse_i, true);
        const A z = attn_keep_factor(P, bh, i, j, keep_scale);
        pz = p * z;
        const A dp = z * attn_dot<T, A>(Gs + lane * pitch, Vs + r * D, D);
        ds = p * (dp - dlt_i);
      }
      attn_accumulate_rows<A, T>(av[t], pz, Gs, pitch, lane, D);  // dV += P̃ᵀ dO
      attn_accumulate_rows<A, T>(ak[t], ds, Qs, pitch, lane, D);  // dK += dSᵀ Q (scaled at the end)
    }
  }
  for (int t = 0; t < attn_rows_per_warp; ++t) {
    const int64_t j = j0 + warp * attn_rows_per_warp + t;
    if (j >= P.Lk) break;
    for (int c = 0; c < attn_chunks; ++c) {
      const int64_t d = lane + 32 * c;
      if (d < D) {
        gk[(bh * P.Lk + j) * D + d] = T(A(P.scale) * ak[t][c]);
        gv[(bh * P.Lk + j) * D + d] = T(av[t][c]);
      }
    }
  }
}

// ---------------------------------------------------------------- launches
inline size_t attention_forward_smem(int64_t D, size_t elem) {
  return size_t(2 * attn_tile * (D + 1) + attn_block_rows * D) * elem;
}
inline size_t attention_dq_smem(int64_t D, size_t elem) {
  return size_t(2 * attn_tile * (D + 1) + 2 * attn_block_rows * D) * elem;
}
inline size_t attention_dkv_smem(int64_t D, size_t elem) { return attention_dq_smem(D, elem); }

template <class T>
void launch_attention_forward(const T* q, const T* k, const T* v, const bool* mask, T* o, T* lse, const AttnGeom& P,
                              Stream stream) {
  if (P.Lq == 0 || P.B * P.H == 0) return;
  ADNN_LAUNCH(attention_forward_kernel<T>, dim3(ceil_div(P.Lq, attn_block_rows), unsigned(P.B * P.H)),
              dim3(32 * attn_warps), attention_forward_smem(P.D, sizeof(T)), stream, q, k, v, mask, o, lse, P);
}

template <class T>
void launch_attention_backward(const T* q, const T* k, const T* v, const bool* mask, const T* o, const T* go,
                               const T* lse, T* dlt, T* gq, T* gk, T* gv, const AttnGeom& P, Stream stream) {
  const int64_t BH = P.B * P.H;
  if (BH == 0) return;
  if (P.Lq > 0)
    ADNN_LAUNCH((attention_row_dot_kernel<T, T>), dim3(ceil_div(BH * P.Lq, 8)), dim3(256), 0, stream, go, o, dlt,
                BH * P.Lq, P.D);
  if (P.Lq > 0)
    ADNN_LAUNCH(attention_backward_dq_kernel<T>, dim3(ceil_div(P.Lq, attn_block_rows), unsigned(BH)),
                dim3(32 * attn_warps), attention_dq_smem(P.D, sizeof(T)), stream, q, k, v, mask, go, lse, dlt, gq, P);
  if (P.Lk > 0)
    ADNN_LAUNCH(attention_backward_dkv_kernel<T>, dim3(ceil_div(P.Lk, attn_block_rows), unsigned(BH)),
                dim3(32 * attn_warps), attention_dkv_smem(P.D, sizeof(T)), stream, q, k, v, mask, go, lse, dlt, gk,
                gv, P);
}

}  // namespace adnn::kernels
