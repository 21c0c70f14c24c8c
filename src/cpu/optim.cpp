// CPU twin of kernels/optim.cuh: one AdamW step over many f32 tensors, the element update of
// common/optim.hpp, chunks of kAdamWChunk elements across OpenMP threads.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/optim.hpp"
#include "cpu/backend.hpp"

namespace adnn::cpu {

void adamw_multi_tensor(const std::vector<AdamWTensor>& ts, const AdamWStep& step_in) {
  float lr_factor;
  const AdamWStep step = common::adamw_resolve(step_in, lr_factor);
  for (const AdamWTensor& t : ts) {
    const float lr = t.lr * lr_factor;
    const int64_t n = t.p.numel();
    float* p = t.p.data_ptr<float>();
    const float* g = t.g.data_ptr<float>();
    float* m = t.m.data_ptr<float>();
    float* v = t.v.data_ptr<float>();
    const int64_t chunk = common::kAdamWChunk / 4;
#pragma omp parallel for schedule(static) if (n > 4 * chunk)
    for (int64_t s0 = 0; s0 < n; s0 += chunk) {
      const int64_t e = std::min(n, s0 + chunk);
      for (int64_t i = s0; i < e; ++i) common::adamw_element(p[i], g[i], m[i], v[i], lr, t.wd, step);
    }
  }
}

// The twins of kernels/optim.cuh's clipping kernels: f64 partials per kNormChunk elements, summed
// in order (+ extra); the scale skips coef == 1.
void grad_norm_multi_tensor(const std::vector<Tensor>& ts, const Tensor& extra, const Tensor& norm, const Tensor& coef,
                            double max_norm) {
  std::vector<double> part;
  for (const Tensor& t : ts) {
    const float* x = t.data_ptr<float>();
    const int64_t n = t.numel(), chunks = (n + common::kNormChunk - 1) / common::kNormChunk;
    const size_t at = part.size();
    part.resize(at + size_t(chunks));
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
      double acc = 0;
      for (int64_t i = c * common::kNormChunk; i < std::min(n, (c + 1) * common::kNormChunk); ++i)
        acc += double(x[i]) * double(x[i]);
      part[at + size_t(c)] = acc;
    }
  }
  double total = 0;
  for (double p : part) total += p;
  if (extra.defined()) total += *extra.data_ptr<double>();
  const double nrm = std::sqrt(total);
  *norm.data_ptr<double>() = nrm;
  if (coef.defined()) *coef.data_ptr<double>() = common::clip_coefficient(nrm, max_norm);
}

void lerp_multi_tensor(const std::vector<Tensor>& xs, const std::vector<Tensor>& ends, double weight) {
  const float w = float(weight);
  for (size_t k = 0; k < xs.size(); ++k) {
    float* x = xs[k].data_ptr<float>();
    const float* e = ends[k].data_ptr<float>();
    const int64_t n = xs[k].numel();
#pragma omp parallel for schedule(static) if (n > 4 * common::kLerpChunk)
    for (int64_t i = 0; i < n; ++i) x[i] = common::lerp_element(x[i], e[i], w);
  }
}

void scale_multi_tensor(const std::vector<Tensor>& ts, const Tensor& coef) {
  const double c = *coef.data_ptr<double>();
  if (c == 1.0) return;
  const float cf = float(c);
  for (const Tensor& t : ts) {
    float* x = t.data_ptr<float>();
    const int64_t n = t.numel();
#pragma omp parallel for schedule(static) if (n > 4 * common::kNormChunk)
    for (int64_t i = 0; i < n; ++i) x[i] *= cf;
  }
}

}  // namespace adnn::cpu
