// CPU GEMM (the gemm family's CPU side; kernels/ has no GEMM: cuBLAS serves the device): OpenBLAS when built with it, else a cache-blocked kernel with OpenMP.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "common/activation.hpp"
#include "common/gemm.hpp"
#include "cpu/backend.hpp"
#include "cpu/convert.hpp"
#include "cpu/gemm.hpp"

#include <type_traits>

#ifdef ADNN_WITH_OPENBLAS
#include <cblas.h>
#endif

namespace adnn::cpu {

// Blocked GEMM: C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C.
// Panels of op(A) (MB x KB) and op(B) (KB x NB) are packed contiguous so the inner
// loop is a unit-stride axpy over N that the compiler vectorises; rows of C are split
// across threads.
template <class T>
void gemm_builtin(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                  int64_t ldb, T beta, T* C, int64_t ldc) {
  constexpr int64_t MB = 64, NB = 256, KB = 128;
#pragma omp parallel for schedule(static) if (M * N * K > 32768)
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    if (beta == T(0))
      std::fill(c, c + N, T(0));
    else if (beta != T(1))
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
  }
  if (K == 0 || alpha == T(0)) return;
#pragma omp parallel
  {
    std::vector<T> bp(size_t(KB * NB));
    std::vector<T> ap(size_t(MB * KB));
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      int64_t nb = std::min(NB, N - n0);
      for (int64_t k0 = 0; k0 < K; k0 += KB) {
        int64_t kb = std::min(KB, K - k0);
        // every thread packs the B panel it needs (cheap next to the FMAs)
        for (int64_t k = 0; k < kb; ++k)
          for (int64_t j = 0; j < nb; ++j)
            bp[k * nb + j] = tb ? B[(n0 + j) * ldb + (k0 + k)] : B[(k0 + k) * ldb + (n0 + j)];
#pragma omp for schedule(static)
        for (int64_t m0 = 0; m0 < M; m0 += MB) {
          int64_t mb = std::min(MB, M - m0);
          for (int64_t i = 0; i < mb; ++i)
            for (int64_t k = 0; k < kb; ++k)
              ap[i * kb + k] = alpha * (ta ? A[(k0 + k) * lda + (m0 + i)] : A[(m0 + i) * lda + (k0 + k)]);
          for (int64_t i = 0; i < mb; ++i) {
            T* c = C + (m0 + i) * ldc + n0;
            for (int64_t k = 0; k < kb; ++k) {
              const T a = ap[i * kb + k];
              const T* b = bp.data() + k * nb;
              for (int64_t j = 0; j < nb; ++j) c[j] += a * b[j];
            }
          }
        }
      }
    }
  }
}

#ifdef ADNN_WITH_OPENBLAS
namespace {
// OpenBLAS runs single-threaded: its own pthreads would compete with adnn's OpenMP threads
// for the same cores (measured: EfficientNet-B0 training on 2 cores went from 34 to 55
// img/s). Large GEMMs are split instead into one block of rows (or columns) per OpenMP
// thread, each a single-threaded OpenBLAS call (split_gemm, src/cpu/gemm.hpp).
void single_threaded_blas() {
  static const bool once = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)once;
}

}  // namespace
#endif

template <class T>
void widen_panel(const T* x, int64_t rows, int64_t cols, int64_t ld, bool tf32, std::vector<float>& out) {
  out.resize(size_t(rows * cols));
  if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, half>) {
    if (ld == cols) return convert::widen_parallel(x, out.data(), rows * cols);
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; ++r) convert::widen(x + r * ld, out.data() + r * cols, cols);
    return;
  }
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const float v = float(x[r * ld + c]);
      out[size_t(r * cols + c)] = tf32 ? round_to_tf32(v) : v;
    }
}
template void widen_panel<float>(const float*, int64_t, int64_t, int64_t, bool, std::vector<float>&);
template void widen_panel<bfloat16>(const bfloat16*, int64_t, int64_t, int64_t, bool, std::vector<float>&);
template void widen_panel<half>(const half*, int64_t, int64_t, int64_t, bool, std::vector<float>&);

template void gemm_builtin<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                  int64_t, float, float*, int64_t);
template void gemm_builtin<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                   const double*, int64_t, double, double*, int64_t);

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#ifdef ADNN_WITH_OPENBLAS
  if (K > 0) {
    single_threaded_blas();
    split_gemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc, [&](int64_t m, int64_t n, const float* a, const float* b, float* c) {
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(K),
                  alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
    });
    return;
  }
#endif
  gemm_builtin<float>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#ifdef ADNN_WITH_OPENBLAS
  if (K > 0) {
    single_threaded_blas();
    split_gemm(ta, tb, M, N, K, A, lda, B, ldb, C, ldc,
               [&](int64_t m, int64_t n, const double* a, const double* b, double* c) {
                 cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(m),
                             int(n), int(K), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
               });
    return;
  }
#endif
  gemm_builtin<double>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}


namespace {
// Epilogue over one (M, N) tile of accumulators in A (f32 or f64): z = acc + bias; pre = z; out = act(z).
// One loop per epilogue (no per-element switch); for 16-bit T (f32 accumulators) z is formed
// in an f32 row and rounded by the multiversioned conversion (src/cpu/convert.hpp).
template <class A, class T>
void gemm_epilogue(const GemmDesc& d, const A* acc, int64_t ld_acc, T* c, T* pre) {
  const T* bias = static_cast<const T*>(d.bias);
  const bool has_bias = d.epilogue != GemmEpilogue::none && bias;
  auto rows = [&](auto&& f) {
#pragma omp parallel for schedule(static) if (d.M * d.N > 65536)
    for (int64_t i = 0; i < d.M; ++i) f(acc + i * ld_acc, c + i * d.ldc, pre ? pre + i * d.ldc : nullptr);
  };
  auto z_at = [&](const A* a, int64_t j) { return has_bias ? a[j] + A(bias[j]) : a[j]; };
  if constexpr (std::is_same_v<A, float> && (std::is_same_v<T, bfloat16> || std::is_same_v<T, half>)) {
    if (d.epilogue != GemmEpilogue::bias_gelu) {  // z = acc + bias in an f32 row, then rounded once
      std::vector<float> bw(has_bias ? size_t(d.N) : 0);
      if (has_bias) convert::widen(bias, bw.data(), d.N);
      const bool relu = d.epilogue == GemmEpilogue::bias_relu;
      rows([&](const A* a, T* out, T* p) {
        thread_local std::vector<float> z;
        z.resize(size_t(d.N));
        if (has_bias)
          for (int64_t j = 0; j < d.N; ++j) z[size_t(j)] = a[j] + bw[size_t(j)];
        else
          std::copy(a, a + d.N, z.begin());
        if (p) convert::narrow(z.data(), p, d.N);
        if (relu)
          for (int64_t j = 0; j < d.N; ++j) z[size_t(j)] = common::relu(z[size_t(j)]);
        convert::narrow(z.data(), out, d.N);
      });
      return;
    }
  }
  switch (d.epilogue) {
    case GemmEpilogue::bias_relu:
      rows([&](const A* a, T* out, T* p) {
        for (int64_t j = 0; j < d.N; ++j) {
          const A z = z_at(a, j);
          if (p) p[j] = z;
          out[j] = common::relu(z);
        }
      });
      break;
    case GemmEpilogue::bias_gelu:
      rows([&](const A* a, T* out, T* p) {
        for (int64_t j = 0; j < d.N; ++j) {
          const A z = z_at(a, j);
          if (p) p[j] = z;
          out[j] = common::gelu(A(T(z)));  // z stored, as on the device
        }
      });
      break;
    default:
      if (has_bias)
        rows([&](const A* a, T* out, T* p) {
          if (p)  // before out: acc may be c itself
            for (int64_t j = 0; j < d.N; ++j) p[j] = a[j] + A(bias[j]);
          for (int64_t j = 0; j < d.N; ++j) out[j] = a[j] + A(bias[j]);
        });
      else
        rows([&](const A* a, T* out, T* p) {
          if (p)
            for (int64_t j = 0; j < d.N; ++j) p[j] = a[j];
          for (int64_t j = 0; j < d.N; ++j) out[j] = a[j];
        });
  }
}

// bias_grad[m] = Σ_k op(A)[m, k] for one batch item: f64 sums rounded to f32, then to T (as a
// GPU's f32 sums rounded once to T, with a more accurate sum). A transposed
// (the weight gradient's dZ, stored (K, M)) is read row by row, each row added to M sums.
template <class T>
void gemm_bias_grad(const GemmDesc& d) {
  const T* A = static_cast<const T*>(d.A);
  std::vector<double> s(size_t(d.M), 0.0);
  if (d.ta) {
    for (int64_t k = 0; k < d.K; ++k) {
      const T* row = A + k * d.lda;  // (M) values of op(A)'s column k
      for (int64_t m = 0; m < d.M; ++m) s[size_t(m)] += double(row[m]);
    }
  } else {
#pragma omp parallel for schedule(static) if (d.M * d.K > 65536)
    for (int64_t m = 0; m < d.M; ++m) {
      double acc = 0;
      for (int64_t k = 0; k < d.K; ++k) acc += double(A[m * d.lda + k]);
      s[size_t(m)] = acc;
    }
  }
  T* out = static_cast<T*>(d.bias_grad);
  for (int64_t m = 0; m < d.M; ++m) {
    if constexpr (std::is_same_v<T, double>)
      out[m] = s[size_t(m)];
    else
      out[m] = T(float(s[size_t(m)]));
  }
}

// An f32 or f64 C from accumulators: C = acc (+ C when accumulating), no epilogue.
template <class A, class C>
void gemm_store(const GemmDesc& d, const A* acc, int64_t ld_acc, C* c) {
#pragma omp parallel for schedule(static) if (d.M * d.N > 65536)
  for (int64_t i = 0; i < d.M; ++i) {
    const A* a = acc + i * ld_acc;
    C* o = c + i * d.ldc;
    if (d.accumulate)
      for (int64_t j = 0; j < d.N; ++j) o[j] = C(o[j] + C(a[j]));
    else
      for (int64_t j = 0; j < d.N; ++j) o[j] = C(a[j]);
  }
}

template <class T>
void gemm_ex_typed(const GemmDesc& d) {
  if (d.bias_grad) gemm_bias_grad<T>(d);  // before C is written: C may not alias A, but be safe
  if (d.N == 0) return;                    // no product (the bias gradient may still sum A)
  constexpr bool wide = std::is_same_v<T, double> || std::is_same_v<T, float>;
  const T* A = static_cast<const T*>(d.A);
  const T* B = static_cast<const T*>(d.B);
  T* C = static_cast<T*>(d.C);
  float* Cf = static_cast<float*>(d.C);  // c_f32
  T* P = static_cast<T*>(d.pre);
  const bool plain = d.epilogue == GemmEpilogue::none && !P;
  for (int64_t i = 0; i < d.batch; ++i) {
    const T* a = A + i * d.stride_a;
    const T* b = B + i * d.stride_b;
    T* c = C + i * d.stride_c;
    T* pre = P ? P + i * d.stride_c : nullptr;
    if constexpr (wide) {
      if (std::is_same_v<T, double> || d.math == GemmMath::exact) {  // straight into C
        gemm(d.ta, d.tb, d.M, d.N, d.K, T(1), a, d.lda, b, d.ldb, T(d.accumulate ? 1 : 0), c, d.ldc);
        if (!plain) gemm_epilogue<T, T>(d, c, d.ldc, c, pre);
        continue;
      }
    }
    thread_local std::vector<float> pa, pb, acc;
    // the f32 accumulators of a 16-bit or TF32 product into C: the epilogue, or an f32 store
    auto finish = [&](const float* ac) {
      if constexpr (wide)
        if (d.accumulate) return gemm_store<float, T>(d, ac, d.N, c);
      if (d.c_f32) return gemm_store<float, float>(d, ac, d.N, Cf + i * d.stride_c);
      gemm_epilogue<float, T>(d, ac, d.N, c, pre);
    };
    if constexpr (std::is_same_v<T, bfloat16>) {  // bf16 products, f32 accumulate (gemm_bf16), one rounding
      acc.resize(size_t(d.M * d.N));
      gemm_bf16(d.ta, d.tb, d.M, d.N, d.K, a, d.lda, b, d.ldb, 0.0f, acc.data(), d.N);
      finish(acc.data());
      continue;
    }
    // f16 / TF32: packed f32 panels, f32 accumulate, one rounding on store
    const bool tf32 = std::is_same_v<T, float> && d.math == GemmMath::tf32;
    const int64_t ar = d.ta ? d.K : d.M, ac = d.ta ? d.M : d.K, br = d.tb ? d.N : d.K, bc = d.tb ? d.K : d.N;
    widen_panel(a, ar, ac, d.lda, tf32, pa);
    widen_panel(b, br, bc, d.ldb, tf32, pb);
    acc.resize(size_t(d.M * d.N));
    gemm(d.ta, d.tb, d.M, d.N, d.K, 1.0f, pa.data(), ac, pb.data(), bc, 0.0f, acc.data(), d.N);
    finish(acc.data());
  }
}
}  // namespace

void gemm_ex(const GemmDesc& d) {
  if (d.bias_grad)
    ADNN_CHECK(d.batch == 1 && d.epilogue == GemmEpilogue::none && !d.pre,
               "gemm: a bias gradient is computed for one product without an epilogue (batch ", d.batch, ")");
  const bool half_inputs = d.dtype == DType::f16 || d.dtype == DType::bf16;
  if (d.c_f32 || d.accumulate)
    ADNN_CHECK(d.epilogue == GemmEpilogue::none && !d.pre && !d.bias_grad && (!d.c_f32 || half_inputs) &&
                   (!d.accumulate || !half_inputs || d.c_f32),
               "gemm: an f32 C (f16/bf16 inputs) or an accumulated C (f32/f64 C) takes no epilogue; got ",
               dtype_name(d.dtype), d.c_f32 ? " with an f32 C" : "", d.accumulate ? ", accumulating" : "");
  if (d.M == 0 || d.batch == 0) return;
  switch (d.dtype) {
    case DType::f32: return gemm_ex_typed<float>(d);
    case DType::f64: return gemm_ex_typed<double>(d);
    case DType::f16: return gemm_ex_typed<half>(d);
    case DType::bf16: return gemm_ex_typed<bfloat16>(d);
    default: ADNN_FAIL("gemm: unsupported dtype ", dtype_name(d.dtype));
  }
}

void bmm(const Tensor& a, const Tensor& b, const Tensor& c, const BmmEpilogue& e) {
  gemm_ex(common::bmm_desc(common::bmm_plan(a, b), c, e, GemmMath::exact));  // no TF32 on the CPU
}

}  // namespace adnn::cpu
