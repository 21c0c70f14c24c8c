// CPU twin of kernels/softmax.cuh: softmax and log-softmax along the middle dim of
// (outer, D, inner), forward and backward; f16/bf16 input natively (math in f32, the
// output in the input's dtype or in f32).
#include <cmath>
#include <limits>

#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

// X: the input's storage, Y: the output's (X, or f32 for a 16-bit X: autocast's f32 softmax
// read from the 16-bit tensor), P: the math (X's, f32 for 16-bit). f32/f64: X = Y = P, the
// bits of the single-type loops.
template <class X, class Y, class P>
static void softmax_t(const X* x, Y* y, int64_t outer, int64_t D, int64_t inner, bool log) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * D * inner > 16384)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const X* p = x + o * D * inner + i;
      Y* q = y + o * D * inner + i;
      P m = -std::numeric_limits<P>::infinity();
      for (int64_t d = 0; d < D; ++d) m = std::max(m, P(p[d * inner]));
      if (m == -std::numeric_limits<P>::infinity()) m = 0;  // all -inf row: keep it finite
      P s = 0;
      for (int64_t d = 0; d < D; ++d) s += std::exp(P(p[d * inner]) - m);
      if (log) {
        P ls = std::log(s) + m;
        for (int64_t d = 0; d < D; ++d) q[d * inner] = Y(P(p[d * inner]) - ls);
      } else {
        P inv = P(1) / s;
        for (int64_t d = 0; d < D; ++d) q[d * inner] = Y(std::exp(P(p[d * inner]) - m) * inv);
      }
    }
}

// g and y in Y, gx in X (the input's dtype), math in P.
template <class X, class Y, class P>
static void softmax_backward_t(const Y* g, const Y* y, X* gx, int64_t outer, int64_t D, int64_t inner, bool log) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * D * inner > 16384)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t base = o * D * inner + i;
      P s = 0;
      if (log) {
        for (int64_t d = 0; d < D; ++d) s += P(g[base + d * inner]);
        for (int64_t d = 0; d < D; ++d)
          gx[base + d * inner] = X(P(g[base + d * inner]) - std::exp(P(y[base + d * inner])) * s);
      } else {
        for (int64_t d = 0; d < D; ++d) s += P(g[base + d * inner]) * P(y[base + d * inner]);
        for (int64_t d = 0; d < D; ++d) gx[base + d * inner] = X(P(y[base + d * inner]) * (P(g[base + d * inner]) - s));
      }
    }
}

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log) {
  dispatch::storage_out_and_math_types(x.dtype(), y.dtype(), "softmax", "cpu", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    softmax_t<X, Y, decltype(pt)>(x.data_ptr<X>(), y.data_ptr<Y>(), outer, D, inner, log);
  });
}
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D, int64_t inner,
                      bool log) {
  dispatch::storage_out_and_math_types(gx.dtype(), y.dtype(), "softmax backward", "cpu",
                                       [&](auto xt, auto yt, auto pt) {
                                         using X = decltype(xt);
                                         using Y = decltype(yt);
                                         softmax_backward_t<X, Y, decltype(pt)>(g.data_ptr<Y>(), y.data_ptr<Y>(),
                                                                                gx.data_ptr<X>(), outer, D, inner, log);
                                       });
}

}  // namespace adnn::cpu
