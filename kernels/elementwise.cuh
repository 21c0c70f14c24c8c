#pragma once
// Elementwise kernels.
//
// unary_map: y[i] = f(x[i]) over n contiguous elements, f computed in f32 (f64 for double).
// binary_broadcast: out[i] = a[ia] (op) b[ib] for a contiguous output of up to 6 dims,
//   where a and b are addressed through their own strides (0 on broadcast dims), so
//   broadcasting and non-contiguous inputs need no copies.
// Threads: grid-stride loops, one element per thread per iteration, 256 threads a block;
//   consecutive threads touch consecutive output elements (coalesced writes; reads are
//   coalesced whenever the input's innermost stride is 1 or 0).
// Cost: unary reads/writes n·sizeof(T) each; binary reads up to 2n·sizeof(T), writes n·sizeof(T);
//   a few flops per element: memory bound.
#include "common.cuh"

namespace adnn::kernels {

enum class UnaryCode : int { neg, exp, log, sqrt, relu, sigmoid, tanh, silu, gelu };
enum class BinaryCode : int { add, sub, mul, div, maximum, minimum };

template <UnaryCode C, class A>
__device__ __forceinline__ A unary_apply(A v) {
  if constexpr (C == UnaryCode::neg) return -v;
  else if constexpr (C == UnaryCode::exp) return exp(v);
  else if constexpr (C == UnaryCode::log) return log(v);
  else if constexpr (C == UnaryCode::sqrt) return sqrt(v);
  else if constexpr (C == UnaryCode::relu) return v > A(0) ? v : A(0);
  else if constexpr (C == UnaryCode::sigmoid) return A(1) / (A(1) + exp(-v));
  else if constexpr (C == UnaryCode::tanh) return tanh(v);
  else if constexpr (C == UnaryCode::silu) return v / (A(1) + exp(-v));
  else return A(0.5) * v * (A(1) + erf(v * A(0.70710678118654752440)));  // gelu (erf)
}

template <BinaryCode C, class A>
__device__ __forceinline__ A binary_apply(A a, A b) {
  if constexpr (C == BinaryCode::add) return a + b;
  else if constexpr (C == BinaryCode::sub) return a - b;
  else if constexpr (C == BinaryCode::mul) return a * b;
  else if constexpr (C == BinaryCode::div) return a / b;
  else if constexpr (C == BinaryCode::maximum) return a > b ? a : b;
  else return a < b ? a : b;
}

template <class T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };

template <class T, UnaryCode C>
__global__ void unary_map_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n) {
  using A = typename acc_of<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<T, double>) y[i] = unary_apply<C, A>(x[i]);
    else y[i] = from_float<T>(unary_apply<C, A>(to_float(x[i])));
  }
}

template <class T, UnaryCode C>
void launch_unary_map(const T* x, T* y, int64_t n, Stream stream) {
  if (n == 0) return;
  ADNN_LAUNCH((unary_map_kernel<T, C>), dim3(std::min<unsigned>(ceil_div(n, 256), 4096)), dim3(256), 0, stream, x, y,
              n);
}

constexpr int kMaxDims = 6;
struct BroadcastGeom {
  int ndim;
  int64_t size[kMaxDims];      // output sizes
  int64_t stride_a[kMaxDims];  // element strides of a (0 where broadcast)
  int64_t stride_b[kMaxDims];
};

template <class T, BinaryCode C>
__global__ void binary_broadcast_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                                        int64_t n, BroadcastGeom g) {
  using A = typename acc_of<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, ia = 0, ib = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % g.size[d];
      rem /= g.size[d];
      ia += c * g.stride_a[d];
      ib += c * g.stride_b[d];
    }
    if constexpr (std::is_same_v<T, double>) out[i] = binary_apply<C, A>(a[ia], b[ib]);
    else out[i] = from_float<T>(binary_apply<C, A>(to_float(a[ia]), to_float(b[ib])));
  }
}

template <class T, BinaryCode C>
void launch_binary_broadcast(const T* a, const T* b, T* out, int64_t n, const BroadcastGeom& g, Stream stream) {
  if (n == 0) return;
  ADNN_LAUNCH((binary_broadcast_kernel<T, C>), dim3(std::min<unsigned>(ceil_div(n, 256), 4096)), dim3(256), 0, stream,
              a, b, out, n, g);
}

// ---- CPU twins
template <class T, UnaryCode C>
void unary_map_reference(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = from_float<T>(float(unary_apply<C, double>(double(to_float(x[i])))));
}

template <class T, BinaryCode C>
void binary_broadcast_reference(const T* a, const T* b, T* out, int64_t n, const BroadcastGeom& g) {
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, ia = 0, ib = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % g.size[d];
      rem /= g.size[d];
      ia += c * g.stride_a[d];
      ib += c * g.stride_b[d];
    }
    out[i] = from_float<T>(float(binary_apply<C, double>(double(to_float(a[ia])), double(to_float(b[ib])))));
  }
}

}  // namespace adnn::kernels
