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

// cpu::gemm_bf16 (src/cpu/gemm_bf16.cpp): the AVX512-BF16 kernel where this CPU has one, and the
// widen-then-sgemm path it falls back to, against a double reference on the same bf16 inputs,
// over the kernel's tails (rows past a 12-row tile, columns past a 32-column tile, odd K, K
// over several 256-deep blocks, N over several 512-wide blocks, also with K over 256, rows
// over several 144-row blocks on one thread), transposes, beta 0 (C's old NaNs never read),
// 0.5 and 1, the threads' split by rows and by columns (the weight gradient's), on 1, 2 and 3
// threads; A read in place (even K and lda) and packed. The operands' row padding holds NaN:
// a read past an edge poisons the result.
// Where the kernel runs, its bits are also checked against a scalar model of its order of
// operations: per K block, per pair (k, k + 1), acc = fma(a[k+1], b[k+1], acc) then
// fma(a[k], b[k], acc) (VDPBF16PS: exact products, one rounding per add, odd element first),
// then C = acc + beta·C after the first block and C = acc + C after the others.
#include <omp.h>

#include <cmath>

namespace {
float bf16_model(bool ta, bool tb, int64_t K, const bfloat16* A, int64_t lda, const bfloat16* B, int64_t ldb, int64_t i,
                 int64_t j, float beta, float c) {
  auto a = [&](int64_t k) { return k < K ? float(ta ? A[k * lda + i] : A[i * lda + k]) : 0.f; };
  auto b = [&](int64_t k) { return k < K ? float(tb ? B[j * ldb + k] : B[k * ldb + j]) : 0.f; };
  if (K == 0) return beta == 0.f ? 0.f : beta * c;
  for (int64_t k0 = 0; k0 < K; k0 += 256) {
    float acc = 0.f;
    for (int64_t k = k0; k < std::min<int64_t>(K, k0 + 256); k += 2) {
      acc = std::fma(a(k + 1), b(k + 1), acc);
      acc = std::fma(a(k), b(k), acc);
    }
    c = k0 == 0 ? (beta == 0.f ? acc : (beta == 1.f ? acc + c : acc + beta * c)) : acc + c;
  }
  return c;
}
}  // namespace

TEST_SUITE("gemm") {
  TEST_CASE("gemm_bf16: the bf16 dot-product kernel and its fallback against a double reference") {
    Generator g(17);
    const bool native = cpu::bf16_dot_available();
    MESSAGE("AVX512-BF16 kernel on this CPU: " << std::string(native ? "yes" : "no (only the fallback is checked)"));
    const int threads = omp_get_max_threads();
    for (int nt : {1, 2, 3})
      for (bool dot : {true, false}) {
        if (dot && !native) continue;
        const bool before = cpu::set_bf16_dot(dot);
        omp_set_num_threads(nt);
        for (auto [M, N, K] : {std::tuple{1, 1, 1},
                               {13, 33, 5},
                               {12, 32, 256},
                               {25, 65, 513},
                               {150, 40, 300},
                               {7, 530, 64},
                               {300, 100, 700},
                               {3, 4, 0},
                               {40, 600, 301},
                               {160, 20, 301},
                               {5, 530, 301},
                               {33, 70, 600}})
          for (bool ta : {false, true})
            for (bool tb : {false, true})
              for (float beta : {0.f, 0.5f, 1.f}) {
                // an even lda with even K (M even) lets the kernel read A in place; odd: packed
                const int64_t lda = (ta ? M : K) + (M % 2 ? 3 : 2), ldb = (tb ? K : N) + 1, ldc = N + 2;
                std::vector<bfloat16> A(size_t((ta ? K : M) * lda + 1)), B(size_t((tb ? N : K) * ldb + 1));
                std::vector<float> C(size_t(M * ldc)), C0;
                const int64_t ac = ta ? M : K, bc = tb ? K : N;  // columns as stored; past them: NaN
                for (size_t e = 0; e < A.size(); ++e)
                  A[e] = int64_t(e) % lda < ac ? bfloat16(float(g.normal())) : bfloat16(NAN);
                for (size_t e = 0; e < B.size(); ++e)
                  B[e] = int64_t(e) % ldb < bc ? bfloat16(float(g.normal())) : bfloat16(NAN);
                for (auto& v : C) v = beta == 0.f ? NAN : float(g.normal());
                C0 = C;
                cpu::gemm_bf16(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
                double err = 0;
                int64_t model_bad = 0, outside = 0;
                for (int64_t i = 0; i < M; ++i) {
                  for (int64_t j = 0; j < N; ++j) {
                    double s = 0, mag = 0;
                    for (int64_t k = 0; k < K; ++k) {
                      const double p = double(float(ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)])) *
                                       double(float(tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)]));
                      s += p;
                      mag += std::fabs(p);
                    }
                    const double c0 = C0[size_t(i * ldc + j)];
                    if (beta != 0.f) {
                      s += double(beta) * c0;
                      mag += std::fabs(double(beta) * c0);
                    }
                    const float got = C[size_t(i * ldc + j)];
                    err = std::max(err, std::fabs(double(got) - s) / (mag + 1e-30));
                    if (dot) {
                      const float want = bf16_model(ta, tb, K, A.data(), lda, B.data(), ldb, i, j, beta, float(c0));
                      model_bad += std::memcmp(&got, &want, 4) != 0;
                    }
                  }
                  for (int64_t j = N; j < ldc; ++j)  // the padding of C's rows is not written
                    outside += std::memcmp(&C[size_t(i * ldc + j)], &C0[size_t(i * ldc + j)], 4) != 0;
                }
                INFO("threads=" << nt << " dot=" << dot << " M=" << M << " N=" << N << " K=" << K << " ta=" << ta
                                << " tb=" << tb << " beta=" << beta);
                CHECK(err <= 2e-7 * double(K + 2));  // f32 accumulation: relative to Σ|products|
                CHECK(model_bad == 0);
                CHECK(outside == 0);
              }
        cpu::set_bf16_dot(before);
        omp_set_num_threads(threads);
      }
  }
}
