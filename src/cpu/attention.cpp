// CPU twin of kernels/attention.cuh: the same arithmetic (f64
// accumulation for f64 tensors, f32 otherwise), the same dropout hash, OpenMP over rows.
#include <omp.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/attention.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

namespace {



template <class A, class T>
A dot(const T* a, const T* b, int64_t D) {
  A s = 0;
  for (int64_t d = 0; d < D; ++d) s += A(a[d]) * A(b[d]);
  return s;
}

// Z_ij: 1/(1-p) when kept, 0 when dropped; 1 without dropout.
template <class A>
A keep_factor(const AttnGeom& g, int64_t bh, int64_t i, int64_t j) {
  if (g.dropout <= 0) return A(1);
  return common::attention_keep(g.seed, uint64_t(bh), uint64_t(i), uint64_t(j), uint64_t(g.Lq), uint64_t(g.Lk),
                                 g.dropout)
             ? A(1.0 / (1.0 - g.dropout))
             : A(0);
}

// Kᵀ of one (b, h): (Lk, D) -> (D, Lk), so that score rows accumulate over d with j
// innermost (contiguous, vectorisable; the same summation order over d as the kernels).
template <class T, class A>
void transpose_rows(const T* src, int64_t L, int64_t D, std::vector<A>& dst) {
  dst.resize(size_t(L * D));
  for (int64_t j = 0; j < L; ++j)
    for (int64_t d = 0; d < D; ++d) dst[size_t(d * L + j)] = A(src[j * D + d]);
}

// s[j] = scale · Σ_d a[d] · bt[d][j]
template <class T, class A>
void row_scores(const T* a, const std::vector<A>& bt, int64_t L, int64_t D, A scale, A* s) {
  for (int64_t j = 0; j < L; ++j) s[j] = 0;
  for (int64_t d = 0; d < D; ++d) {
    const A ad = A(a[d]);
    const A* row = bt.data() + d * L;
    for (int64_t j = 0; j < L; ++j) s[j] += ad * row[j];
  }
  for (int64_t j = 0; j < L; ++j) s[j] *= scale;
}

template <class T>
void attn_fwd(const T* q, const T* k, const T* v, const bool* mask, T* o, T* lse, const AttnGeom& g) {
  using A = acc_t<T>;
  constexpr A ninf = -std::numeric_limits<A>::infinity();
  const int64_t BH = g.B * g.H, D = g.D, Lk = g.Lk;
#pragma omp parallel
  {
    std::vector<A> s(static_cast<size_t>(Lk)), acc(static_cast<size_t>(D)), kt;
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / g.H;
      transpose_rows(k + bh * Lk * D, Lk, D, kt);
      for (int64_t i = 0; i < g.Lq; ++i) {
        row_scores(q + (bh * g.Lq + i) * D, kt, Lk, D, A(g.scale), s.data());
        A m = ninf;
        for (int64_t j = 0; j < Lk; ++j) {
          if (mask && mask[b * Lk + j]) s[j] = ninf;
          m = std::max(m, s[j]);
        }
        std::fill(acc.begin(), acc.end(), A(0));
        A l = 0;
        if (m != ninf)
          for (int64_t j = 0; j < Lk; ++j) {
            if (s[j] == ninf) continue;
            const A p = std::exp(s[j] - m);
            l += p;
            const A pd = p * keep_factor<A>(g, bh, i, j);
            if (pd == A(0)) continue;
            const T* vj = v + (bh * Lk + j) * D;
            for (int64_t d = 0; d < D; ++d) acc[d] += pd * A(vj[d]);
          }
        T* oi = o + (bh * g.Lq + i) * D;
        const A inv = l > 0 ? A(1) / l : A(0);
        for (int64_t d = 0; d < D; ++d) oi[d] = T(acc[d] * inv);
        lse[bh * g.Lq + i] = l > 0 ? T(m + std::log(l)) : T(ninf);
      }
    }
  }
}

template <class T>
void attn_bwd(const T* q, const T* k, const T* v, const bool* mask, const T* o, const T* go, const T* lse, T* gq,
              T* gk, T* gv, const AttnGeom& g) {
  using A = acc_t<T>;
  const int64_t BH = g.B * g.H, D = g.D, Lk = g.Lk;
#pragma omp parallel
  {
    std::vector<A> s(static_cast<size_t>(Lk)), dp(static_cast<size_t>(Lk)), aq(static_cast<size_t>(D)), ak, av, kt, vt;
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / g.H;
      ak.assign(size_t(Lk * D), A(0));
      av.assign(size_t(Lk * D), A(0));
      transpose_rows(k + bh * Lk * D, Lk, D, kt);
      transpose_rows(v + bh * Lk * D, Lk, D, vt);
      for (int64_t i = 0; i < g.Lq; ++i) {
        const T* qi = q + (bh * g.Lq + i) * D;
        const T* gi = go + (bh * g.Lq + i) * D;
        const A lse_i = A(lse[bh * g.Lq + i]);
        std::fill(aq.begin(), aq.end(), A(0));
        if (lse_i != -std::numeric_limits<A>::infinity()) {
          const A dlt = dot<A>(gi, o + (bh * g.Lq + i) * D, D);
          row_scores(qi, kt, Lk, D, A(g.scale), s.data());
          row_scores(gi, vt, Lk, D, A(1), dp.data());
          for (int64_t j = 0; j < Lk; ++j) {
            if (mask && mask[b * Lk + j]) continue;
            const A p = std::exp(s[j] - lse_i);
            const A z = keep_factor<A>(g, bh, i, j);
            const A ds = p * (z * dp[j] - dlt), pz = p * z;
            const T* kj = k + (bh * Lk + j) * D;
            A* avj = av.data() + j * D;
            A* akj = ak.data() + j * D;
            for (int64_t d = 0; d < D; ++d) {
              avj[d] += pz * A(gi[d]);
              akj[d] += ds * A(qi[d]);
              aq[d] += ds * A(kj[d]);
            }
          }
        }
        T* gqi = gq + (bh * g.Lq + i) * D;
        for (int64_t d = 0; d < D; ++d) gqi[d] = T(A(g.scale) * aq[d]);
      }
      for (int64_t e = 0; e < Lk * D; ++e) {
        gk[bh * Lk * D + e] = T(A(g.scale) * ak[size_t(e)]);
        gv[bh * Lk * D + e] = T(av[size_t(e)]);
      }
    }
  }
}

}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                       const Tensor& lse, const AttnGeom& g) {
  float_dispatch(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using T = decltype(tag);
    attn_fwd<T>(q.data_ptr<T>(), k.data_ptr<T>(), v.data_ptr<T>(), opt_ptr<bool>(mask), o.data_ptr<T>(),
                lse.data_ptr<T>(), g);
  });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                        const Tensor& go, const Tensor& lse, const Tensor& gq, const Tensor& gk, const Tensor& gv,
                        const AttnGeom& g) {
  float_dispatch(q.dtype(), "scaled_dot_product_attention backward", [&](auto tag) {
    using T = decltype(tag);
    attn_bwd<T>(q.data_ptr<T>(), k.data_ptr<T>(), v.data_ptr<T>(), opt_ptr<bool>(mask), o.data_ptr<T>(),
                go.data_ptr<T>(), lse.data_ptr<T>(), gq.data_ptr<T>(), gk.data_ptr<T>(), gv.data_ptr<T>(), g);
  });
}

}  // namespace adnn::cpu
