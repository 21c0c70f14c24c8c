#pragma once
// Helpers of the CUDA backend's family files (src/cuda/<family>.cpp): the current stream,
// tensor -> kernel pointer, the float-dtype switch, device scratch.
#include <adnn/core/tensor.hpp>
#include <adnn/cuda/runtime.hpp>

#include "dispatch/args.hpp"
#include "dispatch/dtypes.hpp"
#include "kernels/common.cuh"

#include <type_traits>

namespace adnn::cuda {
namespace k = adnn::kernels;
namespace launch_detail {

inline k::Stream stream() { return reinterpret_cast<k::Stream>(current_stream().handle); }

// adnn element types -> the kernels' types (identical layouts)
template <class T> struct ktype { using type = T; };
template <> struct ktype<half> { using type = k::f16; };
template <> struct ktype<bfloat16> { using type = k::bf16; };
template <class T> using kt = typename ktype<T>::type;

// The device pointer of an optional tensor; a tensor that is not on `cuda` is an error (its
// memory would be a host address: an illegal-address fault in the kernel).
template <class T>
auto ptr(const Tensor& t) {
  if (!t.defined()) return static_cast<kt<T>*>(nullptr);
  ADNN_CHECK(t.device().is_cuda(), "CUDA backend: a kernel argument is not on the device: ", t.desc());
  return reinterpret_cast<kt<T>*>(t.data_ptr());
}

template <class F>
void float_types(DType t, const char* op, F&& f) {
  if (t == DType::f32)
    f(float{});
  else if (t == DType::f64)
    f(double{});
  else
    ADNN_FAIL(op, " (cuda): unsupported dtype ", dtype_name(t));
}

// f(T{}) for the storage types of the kernels that take f16/bf16 natively (widened on load,
// math in acc_t, rounded once on store): float, double, half, bfloat16.
template <class F>
void storage_types(DType t, const char* op, F&& f) {
  dispatch::storage_types(t, op, "cuda", f);
}

// A workspace of n values of T (a host type with a DType) on the device; undefined (a null
// kernel pointer) when n is 0.
template <class T>
Tensor device_workspace(int64_t n) {
  return n > 0 ? empty({n}, TensorOptions(dtype_of<T>::value, kCUDA)) : Tensor();
}

// A workspace of n values of the accumulation type A (f32, or f64).
template <class A>
Tensor device_acc(int64_t n) {
  static_assert(std::is_same_v<A, float> || std::is_same_v<A, double>);
  return device_workspace<A>(n);
}

}  // namespace launch_detail
}  // namespace adnn::cuda
