// Elementwise ops and their derivative rules.
#include <cmath>
#include <limits>

#include <adnn/amp/amp.hpp>

#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

namespace {

Tensor unary_grad(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, double p0, double p1) {
  Tensor gx = new_like(x, x.sizes());
  backend::unary_backward(op, g, x, y, gx, p0, p1);
  return gx;
}

Tensor unary_op(UnaryOp op, const Tensor& x, double p0 = 0, double p1 = 0) {
  const char* name = unary_name(op);
  check_defined(name, x, "input");
  check_devices(name, {&x});
  check_floating(name, x);
  Tensor y = new_like(x, x.sizes());
  backend::unary(op, x, y, p0, p1);
  if (autograd::needs_grad({&x})) {
    Tensor yd = y.detach();  // saving y itself would make a reference cycle
    autograd::record(name, {x}, y, [=](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{unary_grad(op, g, x.detach(), yd, p0, p1)};
    });
  }
  return y;
}

bool is_compare(BinaryOp op) { return int(op) >= int(BinaryOp::eq); }

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_defined(name, a, "first operand");
  check_defined(name, b, "second operand");
  check_devices(name, {&a, &b});
  if (a.dtype() != b.dtype() && is_floating(a.dtype()) && is_floating(b.dtype())) {  // torch's promotion
    const DType t = a.dtype() == DType::f64 || b.dtype() == DType::f64 ? DType::f64 : DType::f32;
    return binary_op(op, a.dtype() == t ? a : a.to(t), b.dtype() == t ? b : b.to(t));
  }
  check_same_dtype(name, {&a, &b});
  Shape shape = broadcast_shapes(name, a.sizes(), b.sizes());
  Tensor out = empty(shape, TensorOptions(is_compare(op) ? DType::boolean : a.dtype(), a.device()));
  backend::binary(op, a.detach().expand(shape), b.detach().expand(shape), out);
  if (is_compare(op) || !autograd::needs_grad({&a, &b})) return out;
  Shape sa = a.sizes(), sb = b.sizes();
  Tensor od = out.detach();
  autograd::record(name, {a, b}, out, [=](const Tensor& g, const std::vector<bool>& need) {
    Tensor ga, gb;
    switch (op) {
      case BinaryOp::add:
        ga = g;
        gb = g;
        break;
      case BinaryOp::sub:
        ga = g;
        if (need[1]) gb = neg(g);
        break;
      case BinaryOp::mul:
        if (need[0]) ga = mul(g, b);
        if (need[1]) gb = mul(g, a);
        break;
      case BinaryOp::div:
        if (need[0]) ga = div(g, b);
        if (need[1]) gb = neg(div(mul(g, a), mul(b, b)));
        break;
      case BinaryOp::pow:
        if (need[0]) ga = mul(mul(g, b), pow(a, sub(b, scalar_tensor(1.0, TensorOptions(b.dtype(), b.device())))));
        if (need[1]) gb = mul(mul(g, od), log(a));
        break;
      case BinaryOp::maximum:
      case BinaryOp::minimum: {
        Tensor win = op == BinaryOp::maximum ? gt(a, b) : lt(a, b);
        Tensor tie = mul(eq(a, b).to(g.dtype()), 0.5);
        Tensor wa = add(win.to(g.dtype()), tie);
        if (need[0]) ga = mul(g, wa);
        if (need[1]) gb = mul(g, sub(scalar_tensor(1.0, TensorOptions(g.dtype(), g.device())), wa));
        break;
      }
      default: break;
    }
    if (ga.defined()) ga = sum_to(ga, sa);
    if (gb.defined()) gb = sum_to(gb, sb);
    return std::vector<Tensor>{need[0] ? ga : Tensor(), need[1] ? gb : Tensor()};
  });
  return out;
}

Tensor scalar_like(const Tensor& t, double v) {
  check_defined("scalar op", t, "tensor operand");
  return scalar_tensor(v, TensorOptions(t.dtype(), t.device()));
}

// x + s, x · s, s − x, s / x for a floating x: one unary kernel with s as its parameter (in the
// compute type, as torch's opmath), not a filled scalar tensor and a broadcast binary (two
// launches, and s rounded to x's dtype first). The gradients of x + s, x · s and s − x need
// neither x nor y (nothing saved); s / x keeps x. The gradients are ops themselves (double
// backward works). Integer and bool x: the binary op.
Tensor scalar_op(UnaryOp op, const Tensor& x, double s) {
  check_defined(unary_name(op), x, "tensor operand");
  if (!is_floating(x.dtype())) {
    const Tensor st = scalar_like(x, s);
    switch (op) {
      case UnaryOp::add_scalar:
        return add(x, st);
      case UnaryOp::mul_scalar:
        return mul(x, st);
      case UnaryOp::rsub_scalar:
        return sub(st, x);
      default:
        return div(st, x);
    }
  }
  check_devices(unary_name(op), {&x});
  Tensor y = new_like(x, x.sizes());
  backend::unary(op, x, y, s, 0);
  if (autograd::needs_grad({&x})) {
    const Tensor xs = op == UnaryOp::rdiv_scalar ? x : Tensor();  // d(s / x) = −s·g / x²
    autograd::record(unary_name(op), {x}, y, [op, s, xs](const Tensor& g, const std::vector<bool>&) {
      if (op == UnaryOp::add_scalar) return std::vector<Tensor>{g};
      if (op == UnaryOp::rsub_scalar) return std::vector<Tensor>{neg(g)};
      if (op == UnaryOp::mul_scalar) return std::vector<Tensor>{scalar_op(UnaryOp::mul_scalar, g, s)};
      return std::vector<Tensor>{neg(div(scalar_op(UnaryOp::mul_scalar, g, s), mul(xs, xs)))};
    });
  }
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) {
  ADNN_CHECK(!a.defined() || is_floating(a.dtype()), "div: integer division is not supported (", a.desc(),
             "); convert with .to(f32)");
  return binary_op(BinaryOp::div, a, b);
}
Tensor pow(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::pow, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::maximum, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::minimum, a, b); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::ge, a, b); }
Tensor add(const Tensor& a, double b) {
  return scalar_op(UnaryOp::add_scalar, a, b);
}
Tensor mul(const Tensor& a, double b) {
  return scalar_op(UnaryOp::mul_scalar, a, b);
}
Tensor pow(const Tensor& a, double p) { return unary_op(UnaryOp::pow_scalar, a, p); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", cond, "condition");
  check_defined("where", a, "first operand");
  check_defined("where", b, "second operand");
  check_devices("where", {&cond, &a, &b});
  check_same_dtype("where", {&a, &b});
  ADNN_CHECK(cond.dtype() == DType::boolean, "where: condition must be bool, got ", cond.desc());
  Shape shape = broadcast_shapes("where", broadcast_shapes("where", cond.sizes(), a.sizes()), b.sizes());
  Tensor out = empty(shape, TensorOptions(a.dtype(), a.device()));
  backend::where(cond.expand(shape), a.detach().expand(shape), b.detach().expand(shape), out);
  Shape sa = a.sizes(), sb = b.sizes();
  autograd::record("where", {a, b}, out, [=](const Tensor& g, const std::vector<bool>& need) {
    Tensor z = zeros({}, TensorOptions(g.dtype(), g.device()));
    return std::vector<Tensor>{need[0] ? sum_to(where(cond, g, z), sa) : Tensor(),
                               need[1] ? sum_to(where(cond, z, g), sb) : Tensor()};
  });
  return out;
}

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::sqrt, x); }
Tensor rsqrt(const Tensor& x) { return unary_op(UnaryOp::rsqrt, x); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::abs, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::relu, x); }
Tensor leaky_relu(const Tensor& x, double slope) { return unary_op(UnaryOp::leaky_relu, x, slope); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::tanh, x); }
Tensor silu(const Tensor& x) { return unary_op(UnaryOp::silu, x); }
Tensor gelu(const Tensor& x) { return unary_op(UnaryOp::gelu, x); }
Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi) {
  double l = lo ? *lo : -std::numeric_limits<double>::infinity();
  double h = hi ? *hi : std::numeric_limits<double>::infinity();
  ADNN_CHECK(!(lo && hi) || l <= h, "clamp: min ", l, " greater than max ", h);
  return unary_op(UnaryOp::clamp, x, l, h);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) {
  return scalar_op(UnaryOp::rsub_scalar, b, a);
}
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(double a, const Tensor& b) {
  return scalar_op(UnaryOp::rdiv_scalar, b, a);
}

}  // namespace adnn
