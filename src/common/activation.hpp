#pragma once
// Activations and their derivatives, once, for every kernel and CPU twin: the elementwise
// unary ops (UnaryOp), the activation fused after batch norm (NormActivation), the gates of
// CBAM and squeeze-excite. A is the accumulation type (float for f32/f16/bf16, double for
// f64); Exp is the exp used (libm by default; the CPU backend's vectorisable vexp).
#include <adnn/ops/enums.hpp>

#include <type_traits>

#include "common/hd.hpp"

namespace adnn::common {

template <class A, class Exp = math::libm_exp>
ADNN_HD A sigmoid(A x, Exp e = {}) {
  return A(1) / (A(1) + e(-x));
}
template <class A, class Exp = math::libm_exp>
ADNN_HD A silu(A x, Exp e = {}) {
  return x / (A(1) + e(-x));
}
// d silu(x) / dx = σ(x) (1 + x (1 − σ(x)))
template <class A, class Exp = math::libm_exp>
ADNN_HD A silu_grad(A x, Exp e = {}) {
  const A s = sigmoid(x, e);
  return s * (A(1) + x * (A(1) - s));
}
// GELU with the exact erf form (torch's default approximate='none').
template <class A>
ADNN_HD A gelu(A x) {
  return A(0.5) * x * (A(1) + math::erf(x * A(0.70710678118654752440)));
}
template <class A>
ADNN_HD A gelu_grad(A x) {
  const A cdf = A(0.5) * (A(1) + math::erf(x * A(0.70710678118654752440)));
  return cdf + x * A(0.39894228040143267794) * math::exp(A(-0.5) * x * x);
}
template <class A>
ADNN_HD A relu(A x) {
  return x > A(0) ? x : A(0);
}

// ---------------------------------------------------------------- elementwise unary ops
// y = op(v; p0, p1). leaky_relu: p0 = slope; clamp: [p0, p1]; pow_scalar: exponent p0;
// add/mul/rsub/rdiv_scalar: v + p0, v · p0, p0 − v, p0 / v.
template <UnaryOp Op, class A>
ADNN_HD A unary_forward(A v, A p0, A p1) {
  if constexpr (Op == UnaryOp::neg) return -v;
  else if constexpr (Op == UnaryOp::exp) return math::exp(v);
  else if constexpr (Op == UnaryOp::log) return math::log(v);
  else if constexpr (Op == UnaryOp::sqrt) return math::sqrt(v);
  else if constexpr (Op == UnaryOp::rsqrt) return A(1) / math::sqrt(v);
  else if constexpr (Op == UnaryOp::abs) return v < A(0) ? -v : v;
  else if constexpr (Op == UnaryOp::relu) return relu(v);
  else if constexpr (Op == UnaryOp::leaky_relu) return v > A(0) ? v : v * p0;
  else if constexpr (Op == UnaryOp::sigmoid) return sigmoid(v);
  else if constexpr (Op == UnaryOp::tanh) return math::tanh(v);
  else if constexpr (Op == UnaryOp::silu) return silu(v);
  else if constexpr (Op == UnaryOp::gelu) return gelu(v);
  else if constexpr (Op == UnaryOp::clamp) return v < p0 ? p0 : (v > p1 ? p1 : v);
  else if constexpr (Op == UnaryOp::add_scalar) return v + p0;
  else if constexpr (Op == UnaryOp::mul_scalar) return v * p0;
  else if constexpr (Op == UnaryOp::rsub_scalar) return p0 - v;
  else if constexpr (Op == UnaryOp::rdiv_scalar) return p0 / v;
  else return math::pow(v, p0);  // pow_scalar
}
// g · d op(x) / dx, with y = op(x) given for the ops whose derivative is cheaper from it.
template <UnaryOp Op, class A>
ADNN_HD A unary_backward(A g, A x, A y, A p0, A p1) {
  if constexpr (Op == UnaryOp::neg) return -g;
  else if constexpr (Op == UnaryOp::exp) return g * y;
  else if constexpr (Op == UnaryOp::log) return g / x;
  else if constexpr (Op == UnaryOp::sqrt) return g * A(0.5) / y;
  else if constexpr (Op == UnaryOp::rsqrt) return g * A(-0.5) * y * y * y;
  else if constexpr (Op == UnaryOp::abs) return x > A(0) ? g : (x < A(0) ? -g : A(0));
  else if constexpr (Op == UnaryOp::relu) return x > A(0) ? g : A(0);
  else if constexpr (Op == UnaryOp::leaky_relu) return x > A(0) ? g : g * p0;
  else if constexpr (Op == UnaryOp::sigmoid) return g * y * (A(1) - y);
  else if constexpr (Op == UnaryOp::tanh) return g * (A(1) - y * y);
  else if constexpr (Op == UnaryOp::silu) return g * silu_grad(x);
  else if constexpr (Op == UnaryOp::gelu) return g * gelu_grad(x);
  else if constexpr (Op == UnaryOp::clamp) return (x >= p0 && x <= p1) ? g : A(0);
  else if constexpr (Op == UnaryOp::add_scalar) return g;
  else if constexpr (Op == UnaryOp::mul_scalar) return g * p0;
  else if constexpr (Op == UnaryOp::rsub_scalar) return -g;
  else if constexpr (Op == UnaryOp::rdiv_scalar) return -(g * p0) / (x * x);
  else return p0 == A(0) ? A(0) : g * p0 * math::pow(x, p0 - A(1));  // pow_scalar
}

// Calls f(std::integral_constant<UnaryOp, op>{}) for an op known at run time, so loops and
// kernels are instantiated per op (no switch inside the element loop).
template <class F>
inline void unary_dispatch(UnaryOp op, F&& f) {
  switch (op) {
#define ADNN_UNARY_CASE(o) \
  case UnaryOp::o: return f(std::integral_constant<UnaryOp, UnaryOp::o>{});
    ADNN_UNARY_CASE(neg) ADNN_UNARY_CASE(exp) ADNN_UNARY_CASE(log) ADNN_UNARY_CASE(sqrt) ADNN_UNARY_CASE(rsqrt)
    ADNN_UNARY_CASE(abs) ADNN_UNARY_CASE(relu) ADNN_UNARY_CASE(leaky_relu) ADNN_UNARY_CASE(sigmoid)
    ADNN_UNARY_CASE(tanh) ADNN_UNARY_CASE(silu) ADNN_UNARY_CASE(gelu) ADNN_UNARY_CASE(clamp)
    ADNN_UNARY_CASE(pow_scalar) ADNN_UNARY_CASE(add_scalar) ADNN_UNARY_CASE(mul_scalar) ADNN_UNARY_CASE(rsub_scalar)
    ADNN_UNARY_CASE(rdiv_scalar)
#undef ADNN_UNARY_CASE
  }
}

// The run-time forms, for kernels that take the op as an argument (one kernel per dtype).
template <class A>
ADNN_HD A apply_unary(UnaryOp op, A v, A p0, A p1) {
  switch (op) {
#define ADNN_UNARY_CASE(o) \
  case UnaryOp::o: return unary_forward<UnaryOp::o>(v, p0, p1);
    ADNN_UNARY_CASE(neg) ADNN_UNARY_CASE(exp) ADNN_UNARY_CASE(log) ADNN_UNARY_CASE(sqrt) ADNN_UNARY_CASE(rsqrt)
    ADNN_UNARY_CASE(abs) ADNN_UNARY_CASE(relu) ADNN_UNARY_CASE(leaky_relu) ADNN_UNARY_CASE(sigmoid)
    ADNN_UNARY_CASE(tanh) ADNN_UNARY_CASE(silu) ADNN_UNARY_CASE(gelu) ADNN_UNARY_CASE(clamp)
    ADNN_UNARY_CASE(add_scalar) ADNN_UNARY_CASE(mul_scalar) ADNN_UNARY_CASE(rsub_scalar) ADNN_UNARY_CASE(rdiv_scalar)
#undef ADNN_UNARY_CASE
    default: return unary_forward<UnaryOp::pow_scalar>(v, p0, p1);
  }
}
template <class A>
ADNN_HD A apply_unary_backward(UnaryOp op, A g, A x, A y, A p0, A p1) {
  switch (op) {
#define ADNN_UNARY_CASE(o) \
  case UnaryOp::o: return unary_backward<UnaryOp::o>(g, x, y, p0, p1);
    ADNN_UNARY_CASE(neg) ADNN_UNARY_CASE(exp) ADNN_UNARY_CASE(log) ADNN_UNARY_CASE(sqrt) ADNN_UNARY_CASE(rsqrt)
    ADNN_UNARY_CASE(abs) ADNN_UNARY_CASE(relu) ADNN_UNARY_CASE(leaky_relu) ADNN_UNARY_CASE(sigmoid)
    ADNN_UNARY_CASE(tanh) ADNN_UNARY_CASE(silu) ADNN_UNARY_CASE(gelu) ADNN_UNARY_CASE(clamp)
    ADNN_UNARY_CASE(add_scalar) ADNN_UNARY_CASE(mul_scalar) ADNN_UNARY_CASE(rsub_scalar) ADNN_UNARY_CASE(rdiv_scalar)
#undef ADNN_UNARY_CASE
    default: return unary_backward<UnaryOp::pow_scalar>(g, x, y, p0, p1);
  }
}

// ---------------------------------------------------------------- elementwise binary ops
template <BinaryOp Op, class A>
ADNN_HD A binary_arith(A a, A b) {
  if constexpr (Op == BinaryOp::add) return A(a + b);
  else if constexpr (Op == BinaryOp::sub) return A(a - b);
  else if constexpr (Op == BinaryOp::mul) return A(a * b);
  else if constexpr (Op == BinaryOp::div) return A(a / b);
  else if constexpr (Op == BinaryOp::pow) return A(math::pow(double(a), double(b)));
  else if constexpr (Op == BinaryOp::maximum) return a != a ? a : (a >= b ? a : b);  // NaN propagates
  else return a != a ? a : (a <= b ? a : b);                                         // minimum
}
template <BinaryOp Op, class A>
ADNN_HD bool binary_compare(A a, A b) {
  if constexpr (Op == BinaryOp::eq) return a == b;
  else if constexpr (Op == BinaryOp::ne) return a != b;
  else if constexpr (Op == BinaryOp::lt) return a < b;
  else if constexpr (Op == BinaryOp::le) return a <= b;
  else if constexpr (Op == BinaryOp::gt) return a > b;
  else return a >= b;
}
constexpr bool is_comparison(BinaryOp op) { return int(op) >= int(BinaryOp::eq); }
template <class A>
ADNN_HD A apply_binary(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::add: return binary_arith<BinaryOp::add>(a, b);
    case BinaryOp::sub: return binary_arith<BinaryOp::sub>(a, b);
    case BinaryOp::mul: return binary_arith<BinaryOp::mul>(a, b);
    case BinaryOp::div: return binary_arith<BinaryOp::div>(a, b);
    case BinaryOp::pow: return binary_arith<BinaryOp::pow>(a, b);
    case BinaryOp::maximum: return binary_arith<BinaryOp::maximum>(a, b);
    default: return binary_arith<BinaryOp::minimum>(a, b);
  }
}
template <class A>
ADNN_HD bool apply_compare(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::eq: return binary_compare<BinaryOp::eq>(a, b);
    case BinaryOp::ne: return binary_compare<BinaryOp::ne>(a, b);
    case BinaryOp::lt: return binary_compare<BinaryOp::lt>(a, b);
    case BinaryOp::le: return binary_compare<BinaryOp::le>(a, b);
    case BinaryOp::gt: return binary_compare<BinaryOp::gt>(a, b);
    default: return binary_compare<BinaryOp::ge>(a, b);
  }
}
template <class F>
inline void binary_dispatch(BinaryOp op, F&& f) {
  switch (op) {
#define ADNN_BINARY_CASE(o) \
  case BinaryOp::o: return f(std::integral_constant<BinaryOp, BinaryOp::o>{});
    ADNN_BINARY_CASE(add) ADNN_BINARY_CASE(sub) ADNN_BINARY_CASE(mul) ADNN_BINARY_CASE(div) ADNN_BINARY_CASE(pow)
    ADNN_BINARY_CASE(maximum) ADNN_BINARY_CASE(minimum) ADNN_BINARY_CASE(eq) ADNN_BINARY_CASE(ne)
    ADNN_BINARY_CASE(lt) ADNN_BINARY_CASE(le) ADNN_BINARY_CASE(gt) ADNN_BINARY_CASE(ge)
#undef ADNN_BINARY_CASE
  }
}

// ---------------------------------------------------------------- activation fused after a norm
// y = act(z); backward recomputes z from x and the statistics, so no pre-activation tensor
// is stored. Act is a NormActivation known at compile time (norm_act_dispatch for run time).
template <NormActivation Act, class A, class Exp = math::libm_exp>
ADNN_HD A norm_act(A z, Exp e = {}) {
  if constexpr (Act == NormActivation::silu) return silu(z, e);
  else if constexpr (Act == NormActivation::relu) return relu(z);
  else return z;
}
template <NormActivation Act, class A, class Exp = math::libm_exp>
ADNN_HD A norm_act_grad(A z, Exp e = {}) {  // d act(z) / dz
  if constexpr (Act == NormActivation::silu) return silu_grad(z, e);
  else if constexpr (Act == NormActivation::relu) return z > A(0) ? A(1) : A(0);
  else return A(1);
}
// The run-time forms (kernels that take the activation as an argument).
template <class A>
ADNN_HD A norm_act(NormActivation act, A z) {
  if (act == NormActivation::silu) return silu(z);
  if (act == NormActivation::relu) return relu(z);
  return z;
}
template <class A>
ADNN_HD A norm_act_grad(NormActivation act, A z) {
  if (act == NormActivation::silu) return silu_grad(z);
  if (act == NormActivation::relu) return z > A(0) ? A(1) : A(0);
  return A(1);
}
template <class F>
void norm_act_dispatch(NormActivation act, F&& f) {
  if (act == NormActivation::silu) f(std::integral_constant<NormActivation, NormActivation::silu>{});
  else if (act == NormActivation::relu) f(std::integral_constant<NormActivation, NormActivation::relu>{});
  else f(std::integral_constant<NormActivation, NormActivation::none>{});
}

}  // namespace adnn::common
