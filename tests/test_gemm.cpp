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

// The multiversioned f32 <-> bf16/f16 conversions (src/cpu/convert.hpp) against the scalar
// bfloat16/half conversions, on whichever clone this CPU runs: every bf16 bit pattern widened;
// rounding ties, NaN, infinities, subnormals and overflow narrowed; odd lengths (vector tails)
// and the parallel path (over 64 Ki elements).
#include <bit>
#include <cstring>
#include "cpu/convert.hpp"

TEST_SUITE("gemm") {
  TEST_CASE("f32 <-> bf16/f16 array conversions equal the scalar ones bit for bit") {
    std::vector<uint16_t> all(65536);
    for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);
    std::vector<float> wide(all.size());
    auto bits = [](float f) { return std::bit_cast<uint32_t>(f); };
    {
      std::vector<bfloat16> b(all.size());
      std::memcpy(b.data(), all.data(), all.size() * 2);
      for (int64_t n : {int64_t(65536), int64_t(37)}) {  // serial (a tail of 5 after 32)
        std::fill(wide.begin(), wide.end(), -1.f);
        cpu::convert::widen(b.data(), wide.data(), n);
        int64_t bad = 0;
        for (int64_t i = 0; i < n; ++i) bad += bits(wide[size_t(i)]) != bits(float(b[size_t(i)]));
        CHECK(bad == 0);
        CHECK(wide[size_t(n == 37 ? 37 : 0)] == (n == 37 ? -1.f : float(b[0])));  // nothing past n
      }
    }
    // floats: ties to even (both ways), values just around ties, NaN payloads, ±inf, subnormals,
    // the largest finite (rounds to inf in bf16), then random bit patterns; 3·2^16 + 7 in all
    std::vector<float> f;
    for (uint32_t hi : {0x3f80u, 0x3f81u, 0x7f7fu, 0x0001u, 0x8000u, 0x7f80u, 0xff80u})
      for (uint32_t lo : {0x0000u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu})
        f.push_back(std::bit_cast<float>((hi << 16) | lo));
    f.push_back(std::bit_cast<float>(0x7fc00001u));
    f.push_back(std::bit_cast<float>(0x7f800001u));  // a signalling NaN: quieted
    Generator g(3);
    while (f.size() < 3 * 65536 + 7) f.push_back(std::bit_cast<float>(uint32_t(g.next_u64())));
    const int64_t n = int64_t(f.size());
    std::vector<bfloat16> nb(f.size()), nb_ref(f.size());
    std::vector<half> nh(f.size()), nh_ref(f.size());
    for (size_t i = 0; i < f.size(); ++i) {
      nb_ref[i] = bfloat16(f[i]);
      nh_ref[i] = half(f[i]);
    }
    cpu::convert::narrow_parallel(f.data(), nb.data(), n);
    cpu::convert::narrow_parallel(f.data(), nh.data(), n);
    int64_t bad_b = 0, bad_h = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      bad_b += nb[i].bits != nb_ref[i].bits;
      bad_h += nh[i].bits != nh_ref[i].bits;
    }
    CHECK(bad_b == 0);
    CHECK(bad_h == 0);
    std::vector<float> back(f.size()), back_h(f.size());
    cpu::convert::widen_parallel(nb.data(), back.data(), n);
    cpu::convert::widen_parallel(nh.data(), back_h.data(), n);
    int64_t bad_w = 0;
    for (size_t i = 0; i < f.size(); ++i)
      bad_w += (bits(back[i]) != bits(float(nb[i]))) + (bits(back_h[i]) != bits(float(nh[i])));
    CHECK(bad_w == 0);
  }
}
