// CPU twin of kernels/se.cuh: squeeze-and-excite forward (pool, both FCs, sigmoid, scale).
#include <omp.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/kernels.hpp"

namespace adnn::cpu {

namespace {
template <class T>
void se_forward(const T* x, const T* w1, const T* b1, const T* w2, const T* b2, T* pooled, T* logits, T* y, int64_t N,
                int64_t P, int64_t C, int64_t R) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    std::vector<A> s(static_cast<size_t>(C), A(0)), h(static_cast<size_t>(R)), gate(static_cast<size_t>(C));
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < C; ++c) s[size_t(c)] += A(x[(n * P + p) * C + c]);
    for (int64_t c = 0; c < C; ++c) pooled[n * C + c] = T(s[size_t(c)] / A(P));
    for (int64_t r = 0; r < R; ++r) {
      A z = b1 ? A(b1[r]) : A(0);
      for (int64_t c = 0; c < C; ++c) z += A(w1[r * C + c]) * A(pooled[n * C + c]);
      h[size_t(r)] = z / (A(1) + std::exp(-z));
    }
    for (int64_t c = 0; c < C; ++c) {
      A a = b2 ? A(b2[c]) : A(0);
      for (int64_t r = 0; r < R; ++r) a += A(w2[c * R + r]) * h[size_t(r)];
      logits[n * C + c] = T(a);
      gate[size_t(c)] = A(1) / (A(1) + std::exp(-a));
    }
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < C; ++c) y[(n * P + p) * C + c] = T(A(x[(n * P + p) * C + c]) * gate[size_t(c)]);
  }
}
template <class T>
const T* opt(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}
}  // namespace

void squeeze_excite_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                            const Tensor& pooled, const Tensor& logits, const Tensor& y, int64_t N, int64_t P, int64_t C,
                            int64_t R) {
  if (x.dtype() == DType::f32)
    se_forward<float>(x.data_ptr<float>(), w1.data_ptr<float>(), opt<float>(b1), w2.data_ptr<float>(), opt<float>(b2),
                      pooled.data_ptr<float>(), logits.data_ptr<float>(), y.data_ptr<float>(), N, P, C, R);
  else if (x.dtype() == DType::f64)
    se_forward<double>(x.data_ptr<double>(), w1.data_ptr<double>(), opt<double>(b1), w2.data_ptr<double>(),
                       opt<double>(b2), pooled.data_ptr<double>(), logits.data_ptr<double>(), y.data_ptr<double>(), N, P,
                       C, R);
  else
    ADNN_FAIL("squeeze_excite: unsupported dtype ", dtype_name(x.dtype()));
}

}  // namespace adnn::cpu
