#pragma once
// Dtype switches for the kernels that take f16/bf16 storage natively, shared by both backends
// (src/cpu, src/cuda): the 16-bit types are loaded widened, computed in acc_t (f32) and
// rounded once on store.
#include <adnn/core/dtype.hpp>
#include <adnn/core/error.hpp>

#include <type_traits>

namespace adnn::dispatch {

// f(T{}) for T in float, double, half, bfloat16; other dtypes are an error naming op and backend.
template <class F>
void storage_types(DType t, const char* op, const char* backend, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::f16: return f(half{});
    case DType::bf16: return f(bfloat16{});
    default: ADNN_FAIL(op, " (", backend, "): unsupported dtype ", dtype_name(t));
  }
}

// f(S{}, T{}): the storage type S of the activations and the type T of the parameters,
// statistics and math — (float, float), (double, double), (half, float), (bfloat16, float).
template <class F>
void storage_and_math_types(DType t, const char* op, const char* backend, F&& f) {
  storage_types(t, op, backend, [&](auto s) {
    using S = decltype(s);
    if constexpr (std::is_same_v<S, half> || std::is_same_v<S, bfloat16>)
      f(s, float{});
    else
      f(s, s);
  });
}

// f(I{}) for the max-pool argmax types (src/common/pool.hpp, max_pool_index_dtype): uint8 or
// int32 window offsets; others are an error naming op and backend.
template <class F>
void pool_index_types(DType t, const char* op, const char* backend, F&& f) {
  switch (t) {
    case DType::u8:
      return f(uint8_t{});
    case DType::i32:
      return f(int32_t{});
    default:
      ADNN_FAIL(op, " (", backend, "): the argmax must be u8 or i32 window offsets, not ", dtype_name(t));
  }
}

}  // namespace adnn::dispatch
