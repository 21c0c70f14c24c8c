#pragma once
// Elementwise kernels over strided tensors: copy/cast, fill, unary ops and their
// derivatives, binary ops with broadcasting, where.
//
// Layout: any strides. Each launch gets a Geom: the output's sizes (up to 8 dims) and, per
//   operand, its element strides (0 on broadcast dims). The output index i is the row-major
//   linear index over `size`; operand k lives at sum_d coord_d(i) * stride[k][d].
// Threads: grid-stride loop, one element per thread per iteration, 256 threads per block;
//   consecutive threads take consecutive output elements, so writes to a contiguous output
//   and reads of unit-stride operands are coalesced.
// Cost: memory bound. Per element: reads of each operand (sizeof(T) each; broadcast operands
//   mostly hit cache) + one write; a few flops (exp/erf/tanh for the transcendental ops) and
//   ndim integer div/mods for the index.
// Arithmetic runs in f32 for f32/f16/bf16 (f64 for double, native for integers).
#include "common.cuh"

namespace adnn::kernels {

constexpr int kMaxDims = 8;
constexpr int kMaxOperands = 4;

struct Geom {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[kMaxOperands][kMaxDims] = {};
};

template <int N>
__device__ __forceinline__ void geom_offsets(const Geom& g, int64_t i, int64_t (&off)[N]) {
  for (int k = 0; k < N; ++k) off[k] = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t c = i % g.size[d];
    i /= g.size[d];
    for (int k = 0; k < N; ++k) off[k] += c * g.stride[k][d];
  }
}

template <class T> struct acc_of { using type = float; };
template <> struct acc_of<double> { using type = double; };
template <> struct acc_of<int32_t> { using type = int32_t; };
template <> struct acc_of<int64_t> { using type = int64_t; };
template <> struct acc_of<uint8_t> { using type = uint8_t; };
template <> struct acc_of<bool> { using type = bool; };

template <class A, class T> __device__ __forceinline__ A load_as(T v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>) return A(to_float(v));
  else return A(v);
}
template <class T, class A> __device__ __forceinline__ T store_as(A v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>) return from_float<T>(float(v));
  else if constexpr (std::is_same_v<T, bool>) return v != A(0);
  else return T(v);
}

// ---------------------------------------------------------------- copy / cast, fill
template <class S, class D>
__global__ void copy_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n, Geom g) {
  using A = std::conditional_t<std::is_same_v<S, double> || std::is_same_v<D, double>, double,
                               std::conditional_t<std::is_integral_v<S> && std::is_integral_v<D>, int64_t, float>>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    geom_offsets<2>(g, i, off);  // operand 0: dst, operand 1: src
    if constexpr (std::is_same_v<D, bool>) dst[off[0]] = load_as<A>(src[off[1]]) != A(0);
    else dst[off[0]] = store_as<D, A>(load_as<A>(src[off[1]]));
  }
}

template <class T>
__global__ void fill_kernel(T* __restrict__ dst, T value, int64_t n, Geom g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    geom_offsets<1>(g, i, off);
    dst[off[0]] = value;
  }
}

// ---------------------------------------------------------------- unary
// Codes match adnn::UnaryOp.
enum UnaryCode : int { u_neg, u_exp, u_log, u_sqrt, u_rsqrt, u_abs, u_relu, u_leaky_relu, u_sigmoid, u_tanh, u_silu,
                       u_gelu, u_clamp, u_pow };

template <class A>
__device__ __forceinline__ A unary_fwd(int op, A v, A p0, A p1) {
  switch (op) {
    case u_neg: return -v;
    case u_exp: return math::exp(v);
    case u_log: return math::log(v);
    case u_sqrt: return math::sqrt(v);
    case u_rsqrt: return A(1) / math::sqrt(v);
    case u_abs: return v < A(0) ? -v : v;
    case u_relu: return v > A(0) ? v : A(0);
    case u_leaky_relu: return v > A(0) ? v : v * p0;
    case u_sigmoid: return A(1) / (A(1) + math::exp(-v));
    case u_tanh: return math::tanh(v);
    case u_silu: return v / (A(1) + math::exp(-v));
    case u_gelu: return A(0.5) * v * (A(1) + math::erf(v * A(0.70710678118654752440)));
    case u_clamp: return v < p0 ? p0 : (v > p1 ? p1 : v);
    default: return math::pow(v, p0);
  }
}

// d op(x) / dx times g; y = op(x).
template <class A>
__device__ __forceinline__ A unary_bwd(int op, A g, A x, A y, A p0, A p1) {
  switch (op) {
    case u_neg: return -g;
    case u_exp: return g * y;
    case u_log: return g / x;
    case u_sqrt: return g * A(0.5) / y;
    case u_rsqrt: return g * A(-0.5) * y * y * y;
    case u_abs: return x > A(0) ? g : (x < A(0) ? -g : A(0));
    case u_relu: return x > A(0) ? g : A(0);
    case u_leaky_relu: return x > A(0) ? g : g * p0;
    case u_sigmoid: return g * y * (A(1) - y);
    case u_tanh: return g * (A(1) - y * y);
    case u_silu: {
      const A s = A(1) / (A(1) + math::exp(-x));
      return g * s * (A(1) + x * (A(1) - s));
    }
    case u_gelu: {
      const A cdf = A(0.5) * (A(1) + math::erf(x * A(0.70710678118654752440)));
      return g * (cdf + x * A(0.39894228040143267794) * math::exp(A(-0.5) * x * x));
    }
    case u_clamp: return (x >= p0 && x <= p1) ? g : A(0);
    default: return p0 == A(0) ? A(0) : g * p0 * math::pow(x, p0 - A(1));
  }
}

// out (contiguous) = op(x); operand 0: out, 1: x
template <class T>
__global__ void unary_kernel(int op, const T* __restrict__ x, T* __restrict__ out, int64_t n, Geom g, double p0,
                             double p1) {
  using A = typename acc_of<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    geom_offsets<2>(g, i, off);
    out[off[0]] = store_as<T, A>(unary_fwd<A>(op, load_as<A>(x[off[1]]), A(p0), A(p1)));
  }
}

// gx = op'(x) * g; operands 0: gx, 1: g, 2: x, 3: y
template <class T>
__global__ void unary_backward_kernel(int op, const T* __restrict__ g, const T* __restrict__ x,
                                      const T* __restrict__ y, T* __restrict__ gx, int64_t n, Geom geo, double p0,
                                      double p1) {
  using A = typename acc_of<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[4];
    geom_offsets<4>(geo, i, off);
    gx[off[0]] = store_as<T, A>(
        unary_bwd<A>(op, load_as<A>(g[off[1]]), load_as<A>(x[off[2]]), load_as<A>(y[off[3]]), A(p0), A(p1)));
  }
}

// ---------------------------------------------------------------- binary, where
// Codes match adnn::BinaryOp.
enum BinaryCode : int { b_add, b_sub, b_mul, b_div, b_pow, b_maximum, b_minimum, b_eq, b_ne, b_lt, b_le, b_gt, b_ge };

template <class A>
__device__ __forceinline__ A binary_arith(int op, A a, A b) {
  switch (op) {
    case b_add: return A(a + b);
    case b_sub: return A(a - b);
    case b_mul: return A(a * b);
    case b_div: return A(a / b);
    case b_pow: return A(math::pow(double(a), double(b)));
    case b_maximum: return a != a ? a : (a >= b ? a : b);
    default: return a != a ? a : (a <= b ? a : b);
  }
}
template <class A>
__device__ __forceinline__ bool binary_compare(int op, A a, A b) {
  switch (op) {
    case b_eq: return a == b;
    case b_ne: return a != b;
    case b_lt: return a < b;
    case b_le: return a <= b;
    case b_gt: return a > b;
    default: return a >= b;
  }
}

// out (contiguous) = a op b; operands 0: out, 1: a, 2: b. Out is bool for comparisons.
template <class T, class Out>
__global__ void binary_kernel(int op, const T* __restrict__ a, const T* __restrict__ b, Out* __restrict__ out,
                              int64_t n, Geom g) {
  using A = typename acc_of<T>::type;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    geom_offsets<3>(g, i, off);
    const A x = load_as<A>(a[off[1]]), y = load_as<A>(b[off[2]]);
    if constexpr (std::is_same_v<Out, bool>) out[off[0]] = binary_compare<A>(op, x, y);
    else out[off[0]] = store_as<Out, A>(binary_arith<A>(op, x, y));
  }
}

// out = cond ? a : b; operands 0: out, 1: cond, 2: a, 3: b
template <class T>
__global__ void where_kernel(const bool* __restrict__ cond, const T* __restrict__ a, const T* __restrict__ b,
                             T* __restrict__ out, int64_t n, Geom g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[4];
    geom_offsets<4>(g, i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

inline dim3 grid_for(int64_t n, unsigned threads = 256) {
  return dim3(std::max(1u, std::min<unsigned>(ceil_div(n, threads), 65535u)));
}

}  // namespace adnn::kernels
