// CPU twin of kernels/se.cuh: squeeze-and-excite forward (pool, both FCs, sigmoid, scale);
// f16/bf16 x, y and weights natively, the pooled means and gate logits in f32.
#include <omp.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "common/activation.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

namespace {
// x, y and the weights in T (f16/bf16 natively); the math, pooled and logits in A.
template <class T, class A = acc_t<T>>
void se_forward(const T* x, const T* w1, const T* b1, const T* w2, const T* b2, A* pooled, A* logits, T* y, int64_t N,
                int64_t P, int64_t C, int64_t R) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    std::vector<A> s(static_cast<size_t>(C), A(0)), h(static_cast<size_t>(R)), gate(static_cast<size_t>(C));
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < C; ++c) s[size_t(c)] += A(x[(n * P + p) * C + c]);
    for (int64_t c = 0; c < C; ++c) pooled[n * C + c] = s[size_t(c)] / A(P);
    for (int64_t r = 0; r < R; ++r) {
      A z = b1 ? A(b1[r]) : A(0);
      for (int64_t c = 0; c < C; ++c) z += A(w1[r * C + c]) * A(pooled[n * C + c]);
      h[size_t(r)] = common::silu(z);
    }
    for (int64_t c = 0; c < C; ++c) {
      A a = b2 ? A(b2[c]) : A(0);
      for (int64_t r = 0; r < R; ++r) a += A(w2[c * R + r]) * h[size_t(r)];
      logits[n * C + c] = a;
      gate[size_t(c)] = common::sigmoid(a);
    }
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < C; ++c) y[(n * P + p) * C + c] = A(x[(n * P + p) * C + c]) * gate[size_t(c)];
  }
}
}  // namespace

void squeeze_excite_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                            const Tensor& pooled, const Tensor& logits, const Tensor& y, int64_t N, int64_t P, int64_t C,
                            int64_t R) {
  storage_dispatch(x.dtype(), "squeeze_excite", [&](auto tag) {
    using T = decltype(tag);
    using A = acc_t<T>;
    se_forward<T>(x.data_ptr<T>(), w1.data_ptr<T>(), opt_ptr<T>(b1), w2.data_ptr<T>(), opt_ptr<T>(b2),
                  pooled.data_ptr<A>(), logits.data_ptr<A>(), y.data_ptr<T>(), N, P, C, R);
  });
}

}  // namespace adnn::cpu
