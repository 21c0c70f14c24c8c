// CPU twin of kernels/elementwise.cuh: copy/cast, fill, unary (+ backward), binary, where.
// The arithmetic of every op is common/activation.hpp's, instantiated per op so the loops
// have no switch inside.
#include <cmath>
#include <type_traits>

#include "common/activation.hpp"
#include "common/mul_rn.hpp"
#include "cpu/backend.hpp"
#include "cpu/convert.hpp"
#include "cpu/loop.hpp"

namespace adnn {

namespace cpu {

namespace {
template <class T> constexpr bool is_reduced_v = std::is_same_v<T, half> || std::is_same_v<T, bfloat16>;

template <class To, class From>
inline To cvt(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (is_reduced_v<From>) {
    return cvt<To>(float(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (is_reduced_v<To>) {
    return To(float(v));
  } else {
    return static_cast<To>(v);
  }
}

// Two-operand loop: out[i] = f(in[i]); fast path when both are unit-stride.
template <class TO, class TI, class F>
void map1(const Tensor& in, const Tensor& out, F f) {
  for_each_strided<2>({&out, &in}, [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
    if (s[0] == sizeof(TO) && s[1] == sizeof(TI)) {
      TO* o = reinterpret_cast<TO*>(p[0]);
      const TI* a = reinterpret_cast<const TI*>(p[1]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<TO*>(p[0] + i * s[0]) = f(*reinterpret_cast<const TI*>(p[1] + i * s[1]));
    }
  });
}

template <class TO, class TA, class TB, class F>
void map2(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  for_each_strided<3>({&out, &a, &b}, [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n) {
    if (s[0] == sizeof(TO) && s[1] == sizeof(TA) && s[2] == sizeof(TB)) {
      TO* o = reinterpret_cast<TO*>(p[0]);
      const TA* x = reinterpret_cast<const TA*>(p[1]);
      const TB* y = reinterpret_cast<const TB*>(p[2]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<TO*>(p[0] + i * s[0]) =
            f(*reinterpret_cast<const TA*>(p[1] + i * s[1]), *reinterpret_cast<const TB*>(p[2] + i * s[2]));
    }
  });
}

template <class T, class F>
void map3(const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& out, F f) {
  for_each_strided<4>({&out, &a, &b, &c}, [&](std::array<char*, 4> p, std::array<int64_t, 4> s, int64_t n) {
    if (s[0] == sizeof(T) && s[1] == sizeof(T) && s[2] == sizeof(T) && s[3] == sizeof(T)) {
      T* o = reinterpret_cast<T*>(p[0]);
      const T *x = reinterpret_cast<const T*>(p[1]), *y = reinterpret_cast<const T*>(p[2]),
              *z = reinterpret_cast<const T*>(p[3]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i], z[i]);
      return;
    }
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<T*>(p[0] + i * s[0]) = f(*reinterpret_cast<const T*>(p[1] + i * s[1]),
                                                 *reinterpret_cast<const T*>(p[2] + i * s[2]),
                                                 *reinterpret_cast<const T*>(p[3] + i * s[3]));
  });
}

// The value a map stores into a T element from the math type A: for f16/bf16 the f32 value
// itself, assigned through operator=(float) (one rounding, and a loop that vectorises;
// include/adnn/core/dtype.hpp), else converted.
template <class T, class A>
inline auto result(A v) {
  if constexpr (is_reduced_v<T>)
    return float(v);
  else
    return cvt<T>(v);
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  ADNN_CHECK(src.sizes() == dst.sizes(), "copy: shape ", src.desc(), " vs ", dst.desc());
  visit_dtype(src.dtype(), [&](auto s) {
    using S = decltype(s);
    visit_dtype(dst.dtype(), [&](auto d) {
      using D = decltype(d);
      constexpr bool to16 = std::is_same_v<S, float> && (std::is_same_v<D, bfloat16> || std::is_same_v<D, half>);
      constexpr bool from16 = std::is_same_v<D, float> && (std::is_same_v<S, bfloat16> || std::is_same_v<S, half>);
      if constexpr (to16 || from16) {  // contiguous casts of autocast (weights, their gradients)
        if (src.is_contiguous() && dst.is_contiguous()) {
          if constexpr (to16)
            convert::narrow_parallel(src.data_ptr<S>(), dst.data_ptr<D>(), src.numel());
          else
            convert::widen_parallel(src.data_ptr<S>(), dst.data_ptr<D>(), src.numel());
          return;
        }
      }
      map1<D, S>(src, dst, [](S v) { return cvt<D>(v); });
    });
  });
}

void fill(const Tensor& dst, double value) {
  visit_dtype(dst.dtype(), [&](auto d) {
    using D = decltype(d);
    D v = cvt<D>(value);
    for_each_strided<1>({&dst}, [&](std::array<char*, 1> p, std::array<int64_t, 1> s, int64_t n) {
      for (int64_t i = 0; i < n; ++i) *reinterpret_cast<D*>(p[0] + i * s[0]) = v;
    });
  });
}

void arange_fill(const Tensor& out, double start, double step) {
  visit_dtype(out.dtype(), [&](auto d) {
    using D = decltype(d);
    D* o = out.data_ptr<D>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = cvt<D>(common::arange_value(start, step, i));
  });
}

template <class T>
static void unary_t(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  using A = acc_t<T>;
  const A a0 = A(p0), a1 = A(p1);
  common::unary_dispatch(op, [&](auto tag) {
    constexpr UnaryOp Op = decltype(tag)::value;
    map1<T, T>(x, out, [&](T v) { return result<T>(common::unary_forward<Op>(cvt<A>(v), a0, a1)); });
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  const bool ok = visit_floating(x.dtype(), [&](auto tag) { unary_t<decltype(tag)>(op, x, out, p0, p1); });
  if (!ok) ADNN_FAIL(unary_name(op), ": needs a floating tensor, got ", x.desc());
}

template <class T>
static void unary_backward_t(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& gx,
                             double p0, double p1) {
  using A = acc_t<T>;
  const A a0 = A(p0), a1 = A(p1);
  common::unary_dispatch(op, [&](auto tag) {
    constexpr UnaryOp Op = decltype(tag)::value;
    map3<T>(g, x, y, gx, [&](T gv, T xv, T yv) {
      return result<T>(common::unary_backward<Op>(cvt<A>(gv), cvt<A>(xv), cvt<A>(yv), a0, a1));
    });
  });
}

void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& gx, double p0,
                    double p1) {
  const bool ok =
      visit_floating(x.dtype(), [&](auto tag) { unary_backward_t<decltype(tag)>(op, g, x, y, gx, p0, p1); });
  if (!ok) ADNN_FAIL(unary_name(op), " backward: needs a floating tensor, got ", x.desc());
}

template <class T>
static void binary_t(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  using A = acc_t<T>;
  common::binary_dispatch(op, [&](auto tag) {
    constexpr BinaryOp Op = decltype(tag)::value;
    if constexpr (common::is_comparison(Op))
      map2<bool, T, T>(a, b, out, [](T x, T y) { return common::binary_compare<Op>(cvt<A>(x), cvt<A>(y)); });
    else
      map2<T, T, T>(a, b, out, [](T x, T y) { return result<T>(common::binary_arith<Op>(cvt<A>(x), cvt<A>(y))); });
  });
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  switch (a.dtype()) {
    case DType::f32: return binary_t<float>(op, a, b, out);
    case DType::f64: return binary_t<double>(op, a, b, out);
    case DType::f16: return binary_t<half>(op, a, b, out);
    case DType::bf16: return binary_t<bfloat16>(op, a, b, out);
    case DType::i32: return binary_t<int32_t>(op, a, b, out);
    case DType::i64: return binary_t<int64_t>(op, a, b, out);
    case DType::u8: return binary_t<uint8_t>(op, a, b, out);
    case DType::boolean:
      ADNN_CHECK(op == BinaryOp::eq || op == BinaryOp::ne, binary_name(op), ": not defined for bool tensors");
      return map2<bool, bool, bool>(a, b, out, [&](bool x, bool y) { return op == BinaryOp::eq ? x == y : x != y; });
  }
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  visit_dtype(a.dtype(), [&](auto t) {
    using T = decltype(t);
    for_each_strided<4>({&out, &cond, &a, &b}, [&](std::array<char*, 4> p, std::array<int64_t, 4> s, int64_t n) {
      for (int64_t i = 0; i < n; ++i)
        *reinterpret_cast<T*>(p[0] + i * s[0]) = *reinterpret_cast<const bool*>(p[1] + i * s[1])
                                                     ? *reinterpret_cast<const T*>(p[2] + i * s[2])
                                                     : *reinterpret_cast<const T*>(p[3] + i * s[3]);
    });
  });
}

}  // namespace cpu
}  // namespace adnn
