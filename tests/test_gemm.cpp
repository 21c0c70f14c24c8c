// The built-in blocked GEMM (the fallback without OpenBLAS) and the configured GEMM,
// against a naive triple loop, over transposes and awkward sizes.
#include "cpu/gemm.hpp"
#include "testing.hpp"

using namespace adnn;

namespace {
template <class T>
void naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
           int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += double(ta ? A[k * lda + i] : A[i * lda + k]) * double(tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = T(alpha * s + (beta == T(0) ? 0.0 : double(beta) * double(C[i * ldc + j])));
    }
}

template <class T, class F>
void check_gemm(F gemm_fn, double tol) {
  Generator g(11);
  for (auto [M, N, K] : {std::tuple{1, 1, 1}, {7, 5, 3}, {65, 257, 129}, {130, 33, 300}, {3, 4, 0}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (double beta : {0.0, 0.5}) {
          int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
          std::vector<T> A(size_t((ta ? K : M) * lda + 1)), B(size_t((tb ? N : K) * ldb + 1)), C(size_t(M * ldc)), R;
          for (auto& v : A) v = T(g.normal());
          for (auto& v : B) v = T(g.normal());
          for (auto& v : C) v = T(g.normal());
          R = C;
          gemm_fn(ta, tb, M, N, K, T(1.5), A.data(), lda, B.data(), ldb, T(beta), C.data(), ldc);
          naive<T>(ta, tb, M, N, K, T(1.5), A.data(), lda, B.data(), ldb, T(beta), R.data(), ldc);
          double err = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) err = std::max(err, std::fabs(double(C[i * ldc + j] - R[i * ldc + j])));
          INFO("M=" << M << " N=" << N << " K=" << K << " ta=" << ta << " tb=" << tb << " beta=" << beta);
          CHECK(err <= tol * std::sqrt(double(K) + 1));
        }
}
}  // namespace

TEST_SUITE("gemm") {
  TEST_CASE("built-in GEMM f32 / f64") {
    check_gemm<float>(cpu::gemm_builtin<float>, 1e-5);
    check_gemm<double>(cpu::gemm_builtin<double>, 1e-12);
  }
  TEST_CASE("configured GEMM f32 / f64") {
    check_gemm<float>([](auto... a) { cpu::gemm(a...); }, 1e-5);
    check_gemm<double>([](auto... a) { cpu::gemm(a...); }, 1e-12);
  }
  TEST_CASE("large matmul agrees with the built-in path") {
    manual_seed(2);
    Tensor a = randn({96, 200}), b = randn({200, 150});
    Tensor c = matmul(a, b);
    Tensor r = empty({96, 150});
    cpu::gemm_builtin<float>(false, false, 96, 150, 200, 1.f, a.data_ptr<float>(), 200, b.data_ptr<float>(), 150, 0.f,
                             r.data_ptr<float>(), 150);
    CHECK(testing::max_abs_diff(c, r) < 1e-3);
  }
}
