// CPU twin of kernels/optim.cuh: one AdamW step over many f32 tensors, the element update of
// common/optim.hpp, chunks of kAdamWChunk elements across OpenMP threads.
#include <omp.h>

#include <algorithm>

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

}  // namespace adnn::cpu
