#pragma once
// The fused compound loss: per sample i (one block per row),
//   p = softmax(z_i);  a_c = w_c t_ic;  q_c = (1 − ε) t_ic + ε π_c;  d = f_i − c_{y_i}
//   CE_i = Σ a_c (−log p_c),  DLS_i = Σ q_c (−log p_c),  C_i = ½ Σ d²
//   ∂/∂z_c = λ1 (Σa · p_c − a_c) / W + λ3 (Σq · p_c − q_c) / B,   ∂/∂f = λ2 d / B
// with W = Σ_i Σ_c a_ic (read from device memory, computed beforehand). The row terms are
// added into terms[0..2] (f64 atomics) as CE/W, C/B, DLS/B.
// Layout: logits, targets (B, K); features (B, D); centers (K, D); weights, prior (K);
//   labels (B) int64; all contiguous. The logits are read in SZ and the features in SF —
//   each T, or f16/bf16 natively when T is f32 (autocast's bf16 logits: no widened copy);
//   the targets, centers, prior, weights, the gradients and the math in T (f32 or f64;
//   weights may be null).
// Threads: one block per row; block reductions over K for the softmax, strided loops over
//   K and D for the terms and gradients.
// Cost: reads B·(2K + 2D) values (+ K·D centers rows used), writes B·(K + D) gradients; one
//   exp and one log per logit.
#include "common/loss.hpp"
#include "reduce.cuh"

namespace adnn::kernels {

template <class SZ, class SF, class T>
__global__ void compound_loss_kernel(const SZ* __restrict__ z, const SF* __restrict__ f, const T* __restrict__ t,
                                     const int64_t* __restrict__ y, const T* __restrict__ centers,
                                     const T* __restrict__ prior, const T* __restrict__ w, const T* __restrict__ wsum,
                                     T* __restrict__ gz, T* __restrict__ gf, double* __restrict__ terms,
                                     int64_t* __restrict__ bad_label, CompoundParams P) {
  ADNN_SHARED(T, scratch, [32]);  // T (float or double) is also the accumulation type
  const int64_t i = blockIdx.x;
  const SZ* zi = z + i * P.K;
  const T* ti = t + i * P.K;
  T m = -INFINITY;
  for (int64_t c = threadIdx.x; c < P.K; c += blockDim.x) {
    const T v = load_as<T>(zi[c]);
    m = v > m ? v : m;
  }
  m = block_max(m, scratch);
  T s = 0;
  for (int64_t c = threadIdx.x; c < P.K; c += blockDim.x) s += math::exp(load_as<T>(zi[c]) - m);
  s = block_sum(s, scratch);
  const T lse = m + math::log(s);
  T ce = 0, a_sum = 0, dls = 0, q_sum = 0;
  for (int64_t c = threadIdx.x; c < P.K; c += blockDim.x) {
    const T nlp = lse - load_as<T>(zi[c]);
    const T a = (w ? w[c] : T(1)) * ti[c];
    const T q = (T(1) - T(P.eps)) * ti[c] + T(P.eps) * prior[c];
    ce += a * nlp;
    a_sum += a;
    dls += q * nlp;
    q_sum += q;
  }
  ce = block_sum(ce, scratch);
  a_sum = block_sum(a_sum, scratch);
  dls = block_sum(dls, scratch);
  q_sum = block_sum(q_sum, scratch);
  const T W = *wsum, B = T(P.B);
  for (int64_t c = threadIdx.x; c < P.K; c += blockDim.x) {
    const T p = math::exp(load_as<T>(zi[c]) - lse);
    const T a = (w ? w[c] : T(1)) * ti[c];
    const T q = (T(1) - T(P.eps)) * ti[c] + T(P.eps) * prior[c];
    gz[i * P.K + c] = T(P.l_ce) * (a_sum * p - a) / W + T(P.l_dls) * (q_sum * p - q) / B;
  }
  const int64_t yi = y[i];
  const bool valid = yi >= 0 && yi < P.K;  // an invalid label is reported, its center never read
  if (!valid && threadIdx.x == 0) atomicCAS(reinterpret_cast<unsigned long long*>(bad_label), 0ull, (unsigned long long)yi);
  const T* ci = centers + (valid ? yi : 0) * P.D;
  T cl = 0;
  for (int64_t d = threadIdx.x; d < P.D; d += blockDim.x) {
    const T diff = valid ? load_as<T>(f[i * P.D + d]) - ci[d] : T(0);
    cl += diff * diff;
    gf[i * P.D + d] = T(P.l_center) * diff / B;
  }
  cl = block_sum(cl, scratch);
  if (threadIdx.x == 0) {
    atomicAdd(terms + 0, double(ce) / double(W));
    atomicAdd(terms + 1, 0.5 * double(cl) / double(B));
    atomicAdd(terms + 2, double(dls) / double(B));
  }
}

}  // namespace adnn::kernels
