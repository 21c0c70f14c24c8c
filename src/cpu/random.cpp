// CPU twin of kernels/random.cuh: the same Philox stream, so masks equal the device's.
#include <omp.h>

#include "common/random.hpp"
#include "cpu/backend.hpp"

namespace adnn::cpu {

void bernoulli_fill(const Tensor& out, double p, double value, uint64_t seed) {
  const int64_t n = out.numel();
  const float pf = float(p);
  auto run = [&](auto* o) {
    using T = std::remove_pointer_t<decltype(o)>;
    using A = common::acc_t<T>;  // the kernel's: f64 for f64, f32 otherwise
    const A v = A(value);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t q = 0; q < common::bernoulli_calls(n); ++q) {
      if (common::bernoulli_element_index(q, 0) >= n) continue;
      const common::Philox4 r = common::philox4x32(seed, uint64_t(q));
      for (int j = 0; j < 4; ++j) {
        const int64_t i = common::bernoulli_element_index(q, j);  // the kernel's mapping
        if (i < n) o[i] = T(common::uniform_from_bits(r.x[j]) < pf ? v : A(0));
      }
    }
  };
  switch (out.dtype()) {
    case DType::f32: return run(out.data_ptr<float>());
    case DType::f64: return run(out.data_ptr<double>());
    case DType::f16: return run(out.data_ptr<half>());
    case DType::bf16: return run(out.data_ptr<bfloat16>());
    default: ADNN_FAIL("bernoulli: unsupported dtype ", out.desc());
  }
}

}  // namespace adnn::cpu
