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

// The backward passes that add into gx with atomics (interp, gather's scatter_add) accumulate in
// acc_t of the gradient's storage type: gx must be `expected` (f32 for an f16/bf16 gradient,
// which the op layer rounds once afterwards).
inline void check_accumulator(const char* op, const char* backend, DType gx, DType expected) {
  if (gx != expected)
    ADNN_FAIL(op, " (", backend, "): the gradient accumulator is ", dtype_name(gx), ", expected ", dtype_name(expected),
              " (f32 for an f16/bf16 gradient)");
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

// f(X{}, Y{}, P{}) for the kernels whose output may be wider than their input (layer norm,
// softmax): x in X, y (and its gradient) in Y — X, or f32 for a 16-bit X (autocast's f32
// statistics and outputs, read from the 16-bit tensor itself: no widened copy) — and the
// parameters, statistics and math in P (X's, or f32 for a 16-bit X). Other pairs are an
// error naming op, backend and both dtypes.
template <class F>
void storage_out_and_math_types(DType x, DType y, const char* op, const char* backend, F&& f) {
  storage_and_math_types(x, op, backend, [&](auto s, auto p) {
    using S = decltype(s);
    using P = decltype(p);
    if (y == x) return f(s, s, p);
    if constexpr (!std::is_same_v<S, P>)
      if (y == DType::f32) return f(s, float{}, p);
    ADNN_FAIL(op, " (", backend, "): input ", dtype_name(x), " with output ", dtype_name(y),
              " (the output is the input's dtype, or f32 for an f16/bf16 input)");
  });
}

// f(SZ{}, SF{}, T{}) for the compound loss: the math type T is the logits' for f32/f64, f32
// for f16/bf16 logits; logits in SZ and features in SF, each T or (when T is f32) f16/bf16
// read natively. Other pairs are an error naming the backend and both dtypes (the op layer
// widens such inputs first).
template <class F>
void compound_types(DType z, DType f, const char* backend, F&& fn) {
  storage_and_math_types(z, "compound_loss", backend, [&](auto zs, auto zm) {
    using T = decltype(zm);
    storage_types(f, "compound_loss", backend, [&](auto fs) {
      using SF = decltype(fs);
      if constexpr (std::is_same_v<SF, T> || (std::is_same_v<T, float> && !std::is_same_v<SF, double>))
        fn(zs, fs, zm);
      else
        ADNN_FAIL("compound_loss (", backend, "): features ", dtype_name(f), " with logits ", dtype_name(z));
    });
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
