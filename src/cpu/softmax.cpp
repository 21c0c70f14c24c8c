// CPU twin of kernels/softmax.cuh: softmax and log-softmax along the middle dim of
// (outer, D, inner), forward and backward.
#include <cmath>
#include <limits>

#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

template <class T>
static void softmax_t(const T* x, T* y, int64_t outer, int64_t D, int64_t inner, bool log) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * D * inner > 16384)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T* p = x + o * D * inner + i;
      T* q = y + o * D * inner + i;
      T m = -std::numeric_limits<T>::infinity();
      for (int64_t d = 0; d < D; ++d) m = std::max(m, p[d * inner]);
      if (m == -std::numeric_limits<T>::infinity()) m = 0;  // all -inf row: keep it finite
      T s = 0;
      for (int64_t d = 0; d < D; ++d) s += std::exp(p[d * inner] - m);
      if (log) {
        T ls = std::log(s) + m;
        for (int64_t d = 0; d < D; ++d) q[d * inner] = p[d * inner] - ls;
      } else {
        T inv = T(1) / s;
        for (int64_t d = 0; d < D; ++d) q[d * inner] = std::exp(p[d * inner] - m) * inv;
      }
    }
}

template <class T>
static void softmax_backward_t(const T* g, const T* y, T* gx, int64_t outer, int64_t D, int64_t inner, bool log) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * D * inner > 16384)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      int64_t base = o * D * inner + i;
      T s = 0;
      if (log) {
        for (int64_t d = 0; d < D; ++d) s += g[base + d * inner];
        for (int64_t d = 0; d < D; ++d)
          gx[base + d * inner] = g[base + d * inner] - std::exp(y[base + d * inner]) * s;
      } else {
        for (int64_t d = 0; d < D; ++d) s += g[base + d * inner] * y[base + d * inner];
        for (int64_t d = 0; d < D; ++d) gx[base + d * inner] = y[base + d * inner] * (g[base + d * inner] - s);
      }
    }
}

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log) {
  if (x.dtype() == DType::f32)
    return softmax_t(x.data_ptr<float>(), y.data_ptr<float>(), outer, D, inner, log);
  if (x.dtype() == DType::f64)
    return softmax_t(x.data_ptr<double>(), y.data_ptr<double>(), outer, D, inner, log);
  ADNN_FAIL("softmax: unsupported dtype ", x.desc());
}
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D, int64_t inner,
                      bool log) {
  if (y.dtype() == DType::f32)
    return softmax_backward_t(g.data_ptr<float>(), y.data_ptr<float>(), gx.data_ptr<float>(), outer, D, inner, log);
  if (y.dtype() == DType::f64)
    return softmax_backward_t(g.data_ptr<double>(), y.data_ptr<double>(), gx.data_ptr<double>(), outer, D, inner,
                              log);
  ADNN_FAIL("softmax backward: unsupported dtype ", y.desc());
}

}  // namespace adnn::cpu
