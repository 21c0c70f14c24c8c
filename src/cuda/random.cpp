// The random family's launcher (kernels/random.cuh): Philox-based masks on the device.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/random.cuh"

namespace adnn::cuda {

using namespace launch_detail;

void bernoulli_fill(const Tensor& out, double p, double value, uint64_t seed) {
  const int64_t n = out.numel();
  if (n == 0) return;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::bernoulli_fill_kernel<kt<T>>, k::grid_for(common::bernoulli_calls(n)), dim3(256), 0, stream(),
                ptr<T>(out), n, float(p), value, seed, capture_rng_salt(current_stream()));
  };
  switch (out.dtype()) {
    case DType::f32: return run(float{});
    case DType::f64: return run(double{});
    case DType::f16: return run(half{});
    case DType::bf16: return run(bfloat16{});
    default: ADNN_FAIL("bernoulli (cuda): unsupported dtype ", out.desc());
  }
}

// The last node of a graph whose launches read its replay salt (runtime.cpp, Graph::capture_end).
void advance_graph_salt(uint64_t* salt) {
  ADNN_LAUNCH(k::advance_salt_kernel<0>, dim3(1), dim3(1), 0, stream(), salt);
}

}  // namespace adnn::cuda
