#pragma once
// Fused scaled-dot-product attention on tensor cores (f16 / bf16 inputs), forward and
// backward, the FlashAttention-2 scheme on mma.sync m16n8k16 (kernels/mma.cuh). It computes
// what the SIMT kernels of kernels/attention.cuh compute (same mask, dropout hash and
// all-masked-row rule):
//   S = scale · Q Kᵀ, P = softmax(S), O = (P ∘ Z) V, lse_i = log Σ_j exp(S_ij),
// with Q·Kᵀ and P·V as f16/bf16 products accumulated in f32, the online softmax in f32,
// P rounded to the input type for P·V (as FlashAttention does), O written in the input
// type and lse in f32. The backward kernels are below the forward.
//
// Layout: Q (BH, Lq, D), K and V (BH, Lk, D), O like Q, lse (BH, Lq) f32, mask (B, Lk) bool
//   or null, all contiguous. D ≤ 256, padded with zeros to DP ∈ {32, 64, 128, 256} in
//   shared memory (the template parameter), so any head size runs.
// Threads: grid (⌈Lq/64⌉, BH), block 128 = 4 warps; warp w owns query rows 16w … 16w+15 of
//   the block's 64. Per tile of 32 keys (K and V staged in shared memory, rows padded by 8
//   values so the fragment loads of 8 rows × 4 lanes hit 32 different banks):
//   S (16×32 per warp) = DP/16 × 4 mma from Q and K fragments read from shared memory; lane
//   (g, t) holds S for rows g and g+8, columns 2t, 2t+1 of each 8-key tile, so the row max
//   and row sum are two quad shuffles; the rescaled P, rounded to T, is reused in registers
//   as the A operand of P·V: 2 × DP/8 mma into the O accumulator (DP/2 floats per lane).
// Cost per (b, h): 4·Lq·Lk·DP tensor-core flops; reads Q once and K, V ⌈Lq/64⌉ times (L2),
//   writes O and lse. Shared memory (64 + 2·32)·(DP + 8)·sizeof(T): 67.6 KB at DP = 256.
#include "attention.cuh"
#include "mma.cuh"

namespace adnn::kernels {

constexpr int attn_mma_warps = 4;
constexpr int attn_mma_rows = 16 * attn_mma_warps;  // query rows per block
constexpr int attn_mma_keys = 32;                   // keys per tile

// Rows [r0, r0 + n) of src (rows of D values) into dst (rows of `pitch`), zero past `rows`
// and in columns D … DP − 1.
template <class T>
__device__ __forceinline__ void attn_stage_padded(ADNN_SHARED_PTR(T) dst, const T* src, int64_t r0, int n, int64_t rows, int64_t D,
                                                  int DP, int pitch) {
  for (int e = threadIdx.x; e < n * DP; e += blockDim.x) {
    const int r = e / DP, d = e % DP;
    dst[r * pitch + d] = r0 + r < rows && d < D ? src[(r0 + r) * D + d] : from_float<T>(0.f);
  }
}

// Fragment loads from row-major tiles in shared memory (rows of `pitch` values), in the
// layout of kernels/mma.cuh; g = lane / 4, t = lane % 4.
// A (16×16) whose element (r, k) is M[r][k]; base = &M[0][0].
template <class T>
__device__ __forceinline__ void frag_a(uint32_t a[4], ADNN_SHARED_PTR(const T) base, int pitch, int g, int t) {
  ADNN_SHARED_PTR(const T) p = base + g * pitch + 2 * t;
  a[0] = load_pair(p);
  a[1] = load_pair(p + 8 * pitch);
  a[2] = load_pair(p + 8);
  a[3] = load_pair(p + 8 * pitch + 8);
}
// B (16×8) whose element (k, n) is M[n][k] (M's rows are B's columns: Kᵀ from K); base = &M[0][0].
template <class T>
__device__ __forceinline__ void frag_b_rows(uint32_t b[2], ADNN_SHARED_PTR(const T) base, int pitch, int g, int t) {
  ADNN_SHARED_PTR(const T) p = base + g * pitch + 2 * t;
  b[0] = load_pair(p);
  b[1] = load_pair(p + 8);
}
// B (16×8) whose element (k, n) is M[k][n] (V in P·V); base = &M[0][0].
template <class T>
__device__ __forceinline__ void frag_b_cols(uint32_t b[2], ADNN_SHARED_PTR(const T) base, int pitch, int g, int t) {
  ADNN_SHARED_PTR(const T) p = base + 2 * t * pitch + g;
  b[0] = pack_pair<T>(p[0], p[pitch]);
  b[1] = pack_pair<T>(p[8 * pitch], p[9 * pitch]);
}
// The A fragment (16×16) formed by two m16n8 accumulators (columns 0–7 and 8–15), rounded to T.
template <class T>
__device__ __forceinline__ void frag_a_from_acc(uint32_t a[4], const float lo[4], const float hi[4]) {
  a[0] = pack_pair<T>(lo[0], lo[1]);
  a[1] = pack_pair<T>(lo[2], lo[3]);
  a[2] = pack_pair<T>(hi[0], hi[1]);
  a[3] = pack_pair<T>(hi[2], hi[3]);
}

// Stores NT accumulator fragments (the C layout: lane (g, t) holds rows g and g + 8, columns
// 2t and 2t + 1 of each 8-wide tile) into out (rows of D): out[row[h], d] = acc·scale[h];
// rows at or past L and columns past D are skipped.
template <class T, int NT>
__device__ __forceinline__ void store_acc_rows(T* out, const float (&acc)[NT][4], const int64_t (&row)[2], int64_t L,
                                               int64_t D, const float (&scale)[2], int t) {
  ADNN_UNROLL
  for (int n = 0; n < NT; ++n)
    ADNN_UNROLL
    for (int r = 0; r < 4; ++r) {
      const int h = r / 2;
      const int64_t d = n * 8 + 2 * t + r % 2;
      if (row[h] < L && d < D) out[row[h] * D + d] = from_float<T>(acc[n][r] * scale[h]);
    }
}

template <class T, int DP>
__global__ void __launch_bounds__(128)
    attention_forward_mma_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                 const bool* __restrict__ mask, T* __restrict__ o, float* __restrict__ lse,
                                 AttnGeom P) {
  attn_resolve_seed(P);  // the graph replay salt, once
  constexpr int pitch = DP + 8;  // 16 bytes of padding per staged row
  constexpr int NT = DP / 8;     // 8-column tiles of the O accumulator
  constexpr int KC = DP / 16;    // 16-deep chunks of Q·Kᵀ
  constexpr int ST = attn_mma_keys / 8;  // 8-key tiles of S
  ADNN_DYNAMIC_SHARED(T, smem);
  ADNN_SHARED_PTR(T) Qs = smem;                          // (64, pitch)
  ADNN_SHARED_PTR(T) Ks = Qs + attn_mma_rows * pitch;    // (32, pitch)
  ADNN_SHARED_PTR(T) Vs = Ks + attn_mma_keys * pitch;    // (32, pitch)
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t D = P.D, Lq = P.Lq, Lk = P.Lk, bh = blockIdx.y, b = bh / P.H;
  const int64_t i0 = int64_t(blockIdx.x) * attn_mma_rows;
  const int64_t rows[2] = {i0 + warp * 16 + g, i0 + warp * 16 + g + 8};  // this lane's query rows
  attn_stage_padded(Qs, q + bh * Lq * D, i0, attn_mma_rows, Lq, D, DP, pitch);
  const T* kb = k + bh * Lk * D;
  const T* vb = v + bh * Lk * D;

  float acc[NT][4];
  ADNN_UNROLL
  for (int n = 0; n < NT; ++n)
    ADNN_UNROLL
    for (int r = 0; r < 4; ++r) acc[n][r] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // l: this lane's partial row sums
  const float scale = float(P.scale);
  const float keep_scale = P.dropout > 0 ? float(1.0 / (1.0 - P.dropout)) : 1.f;
  ADNN_SHARED_PTR(const T) Qw = Qs + warp * 16 * pitch;  // this warp's 16 query rows

  for (int64_t j0 = 0; j0 < Lk; j0 += attn_mma_keys) {
    __syncthreads();  // previous tile consumed (and Qs staged on the first pass)
    attn_stage_padded(Ks, kb, j0, attn_mma_keys, Lk, D, DP, pitch);
    attn_stage_padded(Vs, vb, j0, attn_mma_keys, Lk, D, DP, pitch);
    __syncthreads();

    // S = Q Kᵀ for this warp's 16 rows × 32 keys
    float s[ST][4];
    ADNN_UNROLL
    for (int n = 0; n < ST; ++n)
      ADNN_UNROLL
      for (int r = 0; r < 4; ++r) s[n][r] = 0.f;
    ADNN_UNROLL
    for (int kc = 0; kc < KC; ++kc) {
      uint32_t a[4], bw[2];
      frag_a<T>(a, Qw + kc * 16, pitch, g, t);
      ADNN_UNROLL
      for (int n = 0; n < ST; ++n) {
        frag_b_rows<T>(bw, Ks + n * 8 * pitch + kc * 16, pitch, g, t);
        mma_m16n8k16<T>(s[n], a, bw);
      }
    }

    // online softmax: lane holds rows g (r < 2) and g + 8 (r ≥ 2), keys j0 + 8n + 2t + r % 2
    float mt[2] = {-INFINITY, -INFINITY};
    ADNN_UNROLL
    for (int n = 0; n < ST; ++n)
      ADNN_UNROLL
      for (int r = 0; r < 4; ++r) {
        const int64_t j = j0 + n * 8 + 2 * t + r % 2;
        const bool valid = j < Lk && !(mask && mask[b * Lk + j]);
        s[n][r] = valid ? s[n][r] * scale : -INFINITY;
        mt[r / 2] = fmaxf(mt[r / 2], s[n][r]);
      }
    float alpha[2];
    ADNN_UNROLL
    for (int h = 0; h < 2; ++h) {
      mt[h] = fmaxf(mt[h], __shfl_xor_sync(0xffffffffu, mt[h], 1));
      mt[h] = fmaxf(mt[h], __shfl_xor_sync(0xffffffffu, mt[h], 2));
      const float m_new = fmaxf(m[h], mt[h]);
      alpha[h] = m[h] == -INFINITY ? 0.f : math::exp(m[h] - m_new);
      m[h] = m_new;
      l[h] *= alpha[h];
    }
    ADNN_UNROLL
    for (int n = 0; n < ST; ++n)
      ADNN_UNROLL
      for (int r = 0; r < 4; ++r) {
        const int h = r / 2;
        float p = s[n][r] == -INFINITY ? 0.f : math::exp(s[n][r] - m[h]);
        l[h] += p;
        if (P.dropout > 0) {
          const int64_t j = j0 + n * 8 + 2 * t + r % 2;
          p = rows[h] < Lq && attention_keep(P.seed, uint64_t(bh), uint64_t(rows[h]), uint64_t(j), uint64_t(Lq),
                                             uint64_t(Lk), P.dropout)
                  ? p * keep_scale
                  : 0.f;
        }
        s[n][r] = p;
      }
    ADNN_UNROLL
    for (int n = 0; n < NT; ++n) {
      acc[n][0] *= alpha[0];
      acc[n][1] *= alpha[0];
      acc[n][2] *= alpha[1];
      acc[n][3] *= alpha[1];
    }

    // O += P̃ V: P̃ from registers (two 8-key tiles form one A fragment), V from shared memory
    ADNN_UNROLL
    for (int kc = 0; kc < ST / 2; ++kc) {
      uint32_t a[4], bw[2];
      frag_a_from_acc<T>(a, s[2 * kc], s[2 * kc + 1]);
      ADNN_UNROLL
      for (int n = 0; n < NT; ++n) {
        frag_b_cols<T>(bw, Vs + kc * 16 * pitch + n * 8, pitch, g, t);
        mma_m16n8k16<T>(acc[n], a, bw);
      }
    }
  }

  float inv[2];
  ADNN_UNROLL
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    inv[h] = l[h] > 0 ? 1.f / l[h] : 0.f;
  }
  store_acc_rows<T>(o + bh * Lq * D, acc, rows, Lq, D, inv, t);
  if (t == 0)
    ADNN_UNROLL
    for (int h = 0; h < 2; ++h)
      if (rows[h] < Lq) lse[bh * Lq + rows[h]] = l[h] > 0 ? m[h] + math::log(l[h]) : -INFINITY;
}

// ---------------------------------------------------------------- backward
// The SIMT backward's two kernels on tensor cores, recomputing P from the f32 lse:
//   dQ kernel: grid (⌈Lq/64⌉, BH), warp w owns 16 query rows; per tile of 16 keys:
//     S = Q Kᵀ and dP = dO Vᵀ (2·DP/16·2 mma), dS = P ∘ (Z ∘ dP − Dlt) in registers, dQ += dS K.
//   dK/dV kernel: grid (⌈Lk/64⌉, BH), warp w owns 16 keys; per tile of 16 queries:
//     Sᵀ = K Qᵀ and dPᵀ = V dOᵀ, then dV += P̃ᵀ dO and dK += dSᵀ Q.
// dS and P̃ are rounded to T for the second product (as FlashAttention-2); sums in f32.
// Cost per (b, h): 2 × 4·Lq·Lk·DP flops recomputing S and dP (once per kernel) + 6·Lq·Lk·DP
// for dQ, dK, dV; K and V (dQ kernel) or Q and dO (dK/dV kernel) read ⌈L/64⌉ times.
// Dlt (BH, Lq) f32 comes from attention_row_dot_kernel. Shared memory (128 + 32)·(DP + 8)·
// sizeof(T) (+ 128 bytes): 84.6 KB at DP = 256, within sm_86's 99 KB.
constexpr int attn_mma_bwd_tile = 16;

inline size_t attention_mma_bwd_smem(int DP, size_t elem) {
  return size_t(2 * attn_mma_rows + 2 * attn_mma_bwd_tile) * size_t(DP + 8) * elem + 2 * attn_mma_bwd_tile * 4;
}

// Two 16×16 products over the same DP-deep k loop, as the backward needs them (S and dP):
// c0 = X0 · Y0ᵀ, c1 = X1 · Y1ᵀ with X0, X1 this warp's 16 rows and Y0, Y1 16 rows of a tile,
// all row-major in shared memory.
template <class T, int DP>
__device__ __forceinline__ void mma_pair_16x16(float c0[2][4], float c1[2][4], ADNN_SHARED_PTR(const T) X0,
                                               ADNN_SHARED_PTR(const T) X1, ADNN_SHARED_PTR(const T) Y0,
                                               ADNN_SHARED_PTR(const T) Y1, int pitch, int g, int t) {
  ADNN_UNROLL
  for (int kc = 0; kc < DP / 16; ++kc) {
    uint32_t a0[4], a1[4], bw[2];
    frag_a<T>(a0, X0 + kc * 16, pitch, g, t);
    frag_a<T>(a1, X1 + kc * 16, pitch, g, t);
    ADNN_UNROLL
    for (int n = 0; n < 2; ++n) {
      frag_b_rows<T>(bw, Y0 + n * 8 * pitch + kc * 16, pitch, g, t);
      mma_m16n8k16<T>(c0[n], a0, bw);
      frag_b_rows<T>(bw, Y1 + n * 8 * pitch + kc * 16, pitch, g, t);
      mma_m16n8k16<T>(c1[n], a1, bw);
    }
  }
}

template <class T, int DP>
__global__ void __launch_bounds__(128)
    attention_backward_dq_mma_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                     const bool* __restrict__ mask, const T* __restrict__ go,
                                     const float* __restrict__ lse, const float* __restrict__ dlt,
                                     T* __restrict__ gq, AttnGeom P) {
  attn_resolve_seed(P);  // the graph replay salt, once
  constexpr int pitch = DP + 8, NT = DP / 8, BT = attn_mma_bwd_tile;
  ADNN_DYNAMIC_SHARED(T, smem);
  ADNN_SHARED_PTR(T) Qs = smem;                          // (64, pitch)
  ADNN_SHARED_PTR(T) Gs = Qs + attn_mma_rows * pitch;    // (64, pitch): dO rows
  ADNN_SHARED_PTR(T) Ks = Gs + attn_mma_rows * pitch;    // (16, pitch)
  ADNN_SHARED_PTR(T) Vs = Ks + BT * pitch;               // (16, pitch)
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t D = P.D, Lq = P.Lq, Lk = P.Lk, bh = blockIdx.y, b = bh / P.H;
  const int64_t i0 = int64_t(blockIdx.x) * attn_mma_rows;
  const int64_t rows[2] = {i0 + warp * 16 + g, i0 + warp * 16 + g + 8};
  float lse_r[2], dlt_r[2];
  ADNN_UNROLL
  for (int h = 0; h < 2; ++h) {
    lse_r[h] = rows[h] < Lq ? lse[bh * Lq + rows[h]] : -INFINITY;
    dlt_r[h] = rows[h] < Lq ? dlt[bh * Lq + rows[h]] : 0.f;
  }
  attn_stage_padded(Qs, q + bh * Lq * D, i0, attn_mma_rows, Lq, D, DP, pitch);
  attn_stage_padded(Gs, go + bh * Lq * D, i0, attn_mma_rows, Lq, D, DP, pitch);
  ADNN_SHARED_PTR(const T) Qw = Qs + warp * 16 * pitch;
  ADNN_SHARED_PTR(const T) Gw = Gs + warp * 16 * pitch;
  const float scale = float(P.scale);
  const float keep_scale = P.dropout > 0 ? float(1.0 / (1.0 - P.dropout)) : 1.f;
  float acc[NT][4];
  ADNN_UNROLL
  for (int n = 0; n < NT; ++n)
    ADNN_UNROLL
    for (int r = 0; r < 4; ++r) acc[n][r] = 0.f;

  for (int64_t j0 = 0; j0 < Lk; j0 += BT) {
    __syncthreads();  // previous tile consumed (Qs, Gs staged on the first pass)
    attn_stage_padded(Ks, k + bh * Lk * D, j0, BT, Lk, D, DP, pitch);
    attn_stage_padded(Vs, v + bh * Lk * D, j0, BT, Lk, D, DP, pitch);
    __syncthreads();
    float s[2][4] = {}, dp[2][4] = {};  // S = Q Kᵀ, dP = dO Vᵀ: 16 queries × 16 keys
    mma_pair_16x16<T, DP>(s, dp, Qw, Gw, Ks, Vs, pitch, g, t);
    ADNN_UNROLL
    for (int n = 0; n < 2; ++n)
      ADNN_UNROLL
      for (int r = 0; r < 4; ++r) {
        const int h = r / 2;
        const int64_t j = j0 + n * 8 + 2 * t + r % 2;
        const bool valid = j < Lk && !(mask && mask[b * Lk + j]) && lse_r[h] != -INFINITY;
        const float p = valid ? math::exp(s[n][r] * scale - lse_r[h]) : 0.f;
        float z = keep_scale;
        if (P.dropout > 0 && valid &&
            !attention_keep(P.seed, uint64_t(bh), uint64_t(rows[h]), uint64_t(j), uint64_t(Lq), uint64_t(Lk),
                            P.dropout))
          z = 0.f;
        s[n][r] = p * (z * dp[n][r] - dlt_r[h]);  // dS
      }
    uint32_t a[4], bw[2];
    frag_a_from_acc<T>(a, s[0], s[1]);
    ADNN_UNROLL
    for (int n = 0; n < NT; ++n) {
      frag_b_cols<T>(bw, Ks + n * 8, pitch, g, t);
      mma_m16n8k16<T>(acc[n], a, bw);
    }
  }
  const float sc[2] = {scale, scale};
  store_acc_rows<T>(gq + bh * Lq * D, acc, rows, Lq, D, sc, t);
}

template <class T, int DP>
__global__ void __launch_bounds__(128)
    attention_backward_dkv_mma_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                      const bool* __restrict__ mask, const T* __restrict__ go,
                                      const float* __restrict__ lse, const float* __restrict__ dlt,
                                      T* __restrict__ gk, T* __restrict__ gv, AttnGeom P) {
  attn_resolve_seed(P);  // the graph replay salt, once
  constexpr int pitch = DP + 8, NT = DP / 8, BT = attn_mma_bwd_tile;
  ADNN_DYNAMIC_SHARED(T, smem);
  ADNN_SHARED_PTR(T) Ks = smem;                          // (64, pitch)
  ADNN_SHARED_PTR(T) Vs = Ks + attn_mma_rows * pitch;    // (64, pitch)
  ADNN_SHARED_PTR(T) Qs = Vs + attn_mma_rows * pitch;    // (16, pitch)
  ADNN_SHARED_PTR(T) Gs = Qs + BT * pitch;               // (16, pitch): dO rows
  ADNN_SHARED_PTR(float) Ls = ADNN_SHARED_CAST(float, Gs + BT * pitch);  // (16) lse of the query tile
  ADNN_SHARED_PTR(float) Ds = Ls + BT;                                     // (16) Dlt of the query tile
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t D = P.D, Lq = P.Lq, Lk = P.Lk, bh = blockIdx.y, b = bh / P.H;
  const int64_t j0 = int64_t(blockIdx.x) * attn_mma_rows;
  const int64_t keys[2] = {j0 + warp * 16 + g, j0 + warp * 16 + g + 8};
  bool kvalid[2];
  ADNN_UNROLL
  for (int h = 0; h < 2; ++h) kvalid[h] = keys[h] < Lk && !(mask && mask[b * Lk + keys[h]]);
  attn_stage_padded(Ks, k + bh * Lk * D, j0, attn_mma_rows, Lk, D, DP, pitch);
  attn_stage_padded(Vs, v + bh * Lk * D, j0, attn_mma_rows, Lk, D, DP, pitch);
  ADNN_SHARED_PTR(const T) Kw = Ks + warp * 16 * pitch;
  ADNN_SHARED_PTR(const T) Vw = Vs + warp * 16 * pitch;
  const float scale = float(P.scale);
  const float keep_scale = P.dropout > 0 ? float(1.0 / (1.0 - P.dropout)) : 1.f;
  float ak[NT][4], av[NT][4];
  ADNN_UNROLL
  for (int n = 0; n < NT; ++n)
    ADNN_UNROLL
    for (int r = 0; r < 4; ++r) ak[n][r] = av[n][r] = 0.f;

  for (int64_t i0 = 0; i0 < Lq; i0 += BT) {
    __syncthreads();
    attn_stage_padded(Qs, q + bh * Lq * D, i0, BT, Lq, D, DP, pitch);
    attn_stage_padded(Gs, go + bh * Lq * D, i0, BT, Lq, D, DP, pitch);
    if (threadIdx.x < BT) {
      const int64_t i = i0 + threadIdx.x;
      Ls[threadIdx.x] = i < Lq ? lse[bh * Lq + i] : -INFINITY;
      Ds[threadIdx.x] = i < Lq ? dlt[bh * Lq + i] : 0.f;
    }
    __syncthreads();
    float st[2][4] = {}, dpt[2][4] = {};  // Sᵀ = K Qᵀ, dPᵀ = V dOᵀ: 16 keys × 16 queries
    mma_pair_16x16<T, DP>(st, dpt, Kw, Vw, Qs, Gs, pitch, g, t);
    ADNN_UNROLL
    for (int n = 0; n < 2; ++n)
      ADNN_UNROLL
      for (int r = 0; r < 4; ++r) {
        const int h = r / 2, ic = n * 8 + 2 * t + r % 2;
        const int64_t i = i0 + ic;
        const bool valid = kvalid[h] && Ls[ic] != -INFINITY;  // rows past Lq have lse −inf
        const float p = valid ? math::exp(st[n][r] * scale - Ls[ic]) : 0.f;
        float z = keep_scale;
        if (P.dropout > 0 && valid &&
            !attention_keep(P.seed, uint64_t(bh), uint64_t(i), uint64_t(keys[h]), uint64_t(Lq), uint64_t(Lk),
                            P.dropout))
          z = 0.f;
        st[n][r] = p * z;                        // P̃ᵀ
        dpt[n][r] = p * (z * dpt[n][r] - Ds[ic]);  // dSᵀ
      }
    uint32_t ap[4], ads[4], bw[2];
    frag_a_from_acc<T>(ap, st[0], st[1]);
    frag_a_from_acc<T>(ads, dpt[0], dpt[1]);
    ADNN_UNROLL
    for (int n = 0; n < NT; ++n) {
      frag_b_cols<T>(bw, Gs + n * 8, pitch, g, t);
      mma_m16n8k16<T>(av[n], ap, bw);
      frag_b_cols<T>(bw, Qs + n * 8, pitch, g, t);
      mma_m16n8k16<T>(ak[n], ads, bw);
    }
  }
  const float sc[2] = {scale, scale}, one[2] = {1.f, 1.f};
  store_acc_rows<T>(gk + bh * Lk * D, ak, keys, Lk, D, sc, t);
  store_acc_rows<T>(gv + bh * Lk * D, av, keys, Lk, D, one, t);
}

inline int attention_mma_dp(int64_t D) { return D <= 32 ? 32 : D <= 64 ? 64 : D <= 128 ? 128 : 256; }
inline size_t attention_mma_smem(int DP, size_t elem) {
  return size_t(attn_mma_rows + 2 * attn_mma_keys) * size_t(DP + 8) * elem;
}

// T: f16 or bf16. Needs sm_80 or later on a GPU (the CUDA backend checks); any emulated device.
template <class T>
void launch_attention_forward_mma(const T* q, const T* k, const T* v, const bool* mask, T* o, float* lse,
                                  const AttnGeom& P, Stream stream) {
  if (P.Lq == 0 || P.B * P.H == 0) return;
  const dim3 grid(ceil_div(P.Lq, attn_mma_rows), unsigned(P.B * P.H)), block(32 * attn_mma_warps);
  const int DP = attention_mma_dp(P.D);
  const size_t smem = attention_mma_smem(DP, sizeof(T));
  switch (DP) {
    case 32: ADNN_LAUNCH((attention_forward_mma_kernel<T, 32>), grid, block, smem, stream, q, k, v, mask, o, lse, P); break;
    case 64: ADNN_LAUNCH((attention_forward_mma_kernel<T, 64>), grid, block, smem, stream, q, k, v, mask, o, lse, P); break;
    case 128: ADNN_LAUNCH((attention_forward_mma_kernel<T, 128>), grid, block, smem, stream, q, k, v, mask, o, lse, P); break;
    default: ADNN_LAUNCH((attention_forward_mma_kernel<T, 256>), grid, block, smem, stream, q, k, v, mask, o, lse, P); break;
  }
}

// dlt: (BH, Lq) f32 scratch. T: f16 or bf16, as launch_attention_forward_mma.
template <class T>
void launch_attention_backward_mma(const T* q, const T* k, const T* v, const bool* mask, const T* o, const T* go,
                                   const float* lse, float* dlt, T* gq, T* gk, T* gv, const AttnGeom& P,
                                   Stream stream) {
  const int64_t BH = P.B * P.H;
  if (BH == 0) return;
  const dim3 block(32 * attn_mma_warps);
  const int DP = attention_mma_dp(P.D);
  const size_t smem = attention_mma_bwd_smem(DP, sizeof(T));
  if (P.Lq > 0) {
    ADNN_LAUNCH((attention_row_dot_kernel<T, float>), dim3(ceil_div(BH * P.Lq, 8)), dim3(256), 0, stream, go, o, dlt,
                BH * P.Lq, P.D);
    const dim3 grid(ceil_div(P.Lq, attn_mma_rows), unsigned(BH));
    switch (DP) {
      case 32: ADNN_LAUNCH((attention_backward_dq_mma_kernel<T, 32>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gq, P); break;
      case 64: ADNN_LAUNCH((attention_backward_dq_mma_kernel<T, 64>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gq, P); break;
      case 128: ADNN_LAUNCH((attention_backward_dq_mma_kernel<T, 128>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gq, P); break;
      default: ADNN_LAUNCH((attention_backward_dq_mma_kernel<T, 256>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gq, P); break;
    }
  }
  if (P.Lk > 0) {
    const dim3 grid(ceil_div(P.Lk, attn_mma_rows), unsigned(BH));
    switch (DP) {
      case 32: ADNN_LAUNCH((attention_backward_dkv_mma_kernel<T, 32>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gk, gv, P); break;
      case 64: ADNN_LAUNCH((attention_backward_dkv_mma_kernel<T, 64>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gk, gv, P); break;
      case 128: ADNN_LAUNCH((attention_backward_dkv_mma_kernel<T, 128>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gk, gv, P); break;
      default: ADNN_LAUNCH((attention_backward_dkv_mma_kernel<T, 256>), grid, block, smem, stream, q, k, v, mask, go, lse, dlt, gk, gv, P); break;
    }
  }
}

}  // namespace adnn::kernels
