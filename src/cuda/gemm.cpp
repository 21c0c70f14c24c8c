// The gemm family on the device: batched products through cuBLAS (the CPU BLAS under the
// emulator), operands laid out by common::bmm_plan.
#include "cuda/backend.hpp"
#include "common/gemm.hpp"
#include "cuda/launch.hpp"


namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- GEMM
void bmm(const Tensor& a, const Tensor& b, const Tensor& c) {
  const common::BmmPlan p = common::bmm_plan(a, b);
  float_types(c.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(p.a.data_ptr());
    const T* pb = static_cast<const T*>(p.b.data_ptr());
    T* pc = static_cast<T*>(c.data_ptr());
    for (int64_t i = 0; i < p.B; ++i)
      gemm(p.ta, p.tb, p.M, p.N, p.K, T(1), pa + i * p.a.stride(0), p.lda, pb + i * p.b.stride(0), p.ldb, T(0),
           pc + i * p.M * p.N, p.N);
  });
}

}  // namespace adnn::cuda
