// The reduce family's launchers (kernels/reduce.cuh): row and column reductions, argmax.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/reduce.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// x in X, out in Y (X, or f32 for a 16-bit x), accumulation in acc_t<X>
void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  dispatch::storage_out_and_math_types(x.dtype(), out.dtype(), "reduce", "cuda", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    using A = decltype(pt);  // acc_t<X>
    if (R == 0) {  // empty sum
      fill(out, 0.0);
      return;
    }
    const int64_t S = k::reduce_rows_slices(rows, R);
    Tensor part = device_acc<A>(S > 1 ? rows * S : 0);  // (rows, S) partials when the rows are split
    k::launch_reduce_rows<kt<X>, kt<Y>>(op, ptr<X>(x), ptr<Y>(out), ptr<A>(part), rows, R, stream());
  });
}

void reduce_cols(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t R, int64_t inner) {
  if (outer * inner == 0) return;
  dispatch::storage_out_and_math_types(x.dtype(), out.dtype(), "reduce", "cuda", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    using A = decltype(pt);  // acc_t<X>: f32, or f64 for f64
    const int64_t S = k::reduce_cols_slices(outer, R, inner);
    Tensor part = device_acc<A>(S > 1 ? outer * S * inner : 0);  // (outer, S, inner) partials when R is split
    k::launch_reduce_cols<kt<X>, kt<Y>>(op, ptr<X>(x), ptr<Y>(out), ptr<A>(part), outer, R, inner, stream());
  });
}

void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    using V = k::acc_t<kt<T>>;  // f32 for f16/bf16, else T
    const int64_t S = k::reduce_rows_slices(rows, R), n = S > 1 ? rows * S : 0;
    Tensor part_v = device_workspace<V>(n), part_i = device_workspace<int64_t>(n);  // (rows, S) when split
    k::launch_argmax_rows<kt<T>>(ptr<T>(x), ptr<int64_t>(out), ptr<V>(part_v), ptr<int64_t>(part_i), rows, R, stream());
  };
  switch (x.dtype()) {
    case DType::f32: return run(float{});
    case DType::f64: return run(double{});
    case DType::f16:
      return run(half{});
    case DType::bf16:
      return run(bfloat16{});
    case DType::i32: return run(int32_t{});
    case DType::i64: return run(int64_t{});
    default: ADNN_FAIL("argmax (cuda): unsupported dtype ", x.desc());
  }
}

}  // namespace adnn::cuda
