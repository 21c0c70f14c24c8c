// CPU twin of kernels/loss.cuh: the fused compound loss (soft CE + center + DLS) with its
// gradients, per row in f64, OpenMP over rows: logits in SZ and features in SF (T, or f16/bf16
// natively when T is f32), everything else in T (f32 or f64).
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "common/loss.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

namespace {
template <class SZ, class SF, class T>
void compound_rows(const SZ* z, const SF* f, const T* t, const int64_t* y, const T* centers, const T* prior, const T* w,
                   double W, T* gz, T* gf, double* terms, int64_t* bad_label, const CompoundParams& P) {
  double t0 = 0, t1 = 0, t2 = 0;
#pragma omp parallel for schedule(static) reduction(+ : t0, t1, t2) if (P.B * (P.K + P.D) > 32768)
  for (int64_t i = 0; i < P.B; ++i) {
    const SZ* zi = z + i * P.K;
    const T* ti = t + i * P.K;
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < P.K; ++c) m = std::max(m, double(zi[c]));
    for (int64_t c = 0; c < P.K; ++c) s += std::exp(double(zi[c]) - m);
    const double lse = m + std::log(s);
    double ce = 0, a_sum = 0, dls = 0, q_sum = 0;
    for (int64_t c = 0; c < P.K; ++c) {
      const double nlp = lse - double(zi[c]), a = double(w ? w[c] : T(1)) * ti[c];
      const double q = (1.0 - P.eps) * ti[c] + double(P.eps) * prior[c];
      ce += a * nlp;
      a_sum += a;
      dls += q * nlp;
      q_sum += q;
    }
    for (int64_t c = 0; c < P.K; ++c) {
      const double p = std::exp(double(zi[c]) - lse), a = double(w ? w[c] : T(1)) * ti[c];
      const double q = (1.0 - P.eps) * ti[c] + double(P.eps) * prior[c];
      gz[i * P.K + c] = T(P.l_ce * (a_sum * p - a) / W + P.l_dls * (q_sum * p - q) / double(P.B));
    }
    const bool valid = y[i] >= 0 && y[i] < P.K;  // an invalid label is reported, its center never read
    if (!valid) {
#pragma omp critical(adnn_compound_bad_label)
      if (*bad_label == 0) *bad_label = y[i];
    }
    const T* ci = centers + (valid ? y[i] : 0) * P.D;
    double cl = 0;
    for (int64_t d = 0; d < P.D; ++d) {
      const double diff = valid ? double(f[i * P.D + d]) - ci[d] : 0.0;
      cl += diff * diff;
      gf[i * P.D + d] = T(P.l_center * diff / double(P.B));
    }
    t0 += ce / W;
    t1 += 0.5 * cl / double(P.B);
    t2 += dls / double(P.B);
  }
  terms[0] += t0;
  terms[1] += t1;
  terms[2] += t2;
}
}  // namespace

void compound_loss(const Tensor& logits, const Tensor& features, const Tensor& targets, const Tensor& labels,
                   const Tensor& centers, const Tensor& prior, const Tensor& weights, const Tensor& wsum,
                   const Tensor& grad_logits, const Tensor& grad_features, const Tensor& terms, const Tensor& bad_label,
                   const CompoundParams& p) {
  if (p.B == 0) return;
  dispatch::compound_types(logits.dtype(), features.dtype(), "cpu", [&](auto zt, auto ft, auto tag) {
    using SZ = decltype(zt);
    using SF = decltype(ft);
    using T = decltype(tag);
    compound_rows<SZ, SF, T>(logits.data_ptr<SZ>(), features.data_ptr<SF>(), targets.data_ptr<T>(),
                             labels.data_ptr<int64_t>(), centers.data_ptr<T>(), prior.data_ptr<T>(),
                             opt_ptr<T>(weights), double(wsum.item<T>()), grad_logits.data_ptr<T>(),
                             grad_features.data_ptr<T>(), terms.data_ptr<double>(), bad_label.data_ptr<int64_t>(), p);
  });
}

}  // namespace adnn::cpu
