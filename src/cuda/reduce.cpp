// The reduce family's launchers (kernels/reduce.cuh): row reductions and argmax.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/reduce.cuh"

namespace adnn::cuda {

using namespace launch_detail;

void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  float_types(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    if (R == 0) {  // empty sum
      fill(out, 0.0);
      return;
    }
    k::launch_reduce_rows<T>(op, ptr<T>(x), ptr<T>(out), rows, R, stream());
  });
}

void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    k::launch_argmax_rows<T>(ptr<T>(x), ptr<int64_t>(out), rows, R, stream());
  };
  switch (x.dtype()) {
    case DType::f32: return run(float{});
    case DType::f64: return run(double{});
    case DType::i32: return run(int32_t{});
    case DType::i64: return run(int64_t{});
    default: ADNN_FAIL("argmax (cuda): unsupported dtype ", x.desc());
  }
}

}  // namespace adnn::cuda
