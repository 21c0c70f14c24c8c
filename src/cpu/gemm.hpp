#pragma once
// CPU GEMM (src/cpu/gemm.cpp): OpenBLAS when built with it (single-threaded, large products
// split across OpenMP threads), else the built-in blocked kernel. Row-major:
// C = alpha · op(A) · op(B) + beta · C.
#include <adnn/ops/gemm.hpp>

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace adnn::cpu {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);
// One GemmDesc (include/adnn/ops/gemm.hpp) with its precision semantics: f16/bf16 and TF32
// inputs widened (or rounded) to f32 panels, f32 BLAS, epilogue in f32, one rounding on store.
// The CPU backend's bmm and the emulated device's cuda::gemm_ex both run it.
void gemm_ex(const GemmDesc& d);
// X stored (rows, cols) with leading dimension ld, widened to a packed f32 (rows, cols) panel
// (f16/bf16 by the multiversioned conversion; f32 copied, or rounded to TF32 when tf32):
// the operands of the GEMMs that compute 16-bit or TF32 products in f32.
template <class T>
void widen_panel(const T* x, int64_t rows, int64_t cols, int64_t ld, bool tf32, std::vector<float>& out);
// The built-in blocked GEMM (used when OpenBLAS is absent; always built and tested).
template <class T>
void gemm_builtin(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// C (M, N) f32 = op(A) · op(B) + beta · C with A and B in bf16 (src/cpu/gemm_bf16.cpp): each
// bf16 product exact, f32 accumulation. AVX512-BF16 (VDPBF16PS) where the CPU has it and
// bf16_dot_available(); otherwise A and B widened to f32 and multiplied by gemm (above).
void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const bfloat16* A, int64_t lda,
               const bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Whether gemm_bf16 and the bf16 paths built on it (conv, gemm_ex) use the CPU's bf16 dot
// product: the CPU has AVX512-BF16 and ADNN_CPU_BF16_DOT is not 0 at start-up.
bool bf16_dot_available();
// Tests: turn the bf16 dot product off (or back on, where the CPU has it); returns the old state.
bool set_bf16_dot(bool on);

// A large GEMM split into one block of rows (or columns) of C per OpenMP thread, each a
// single-threaded call(m, n, a, b, c) on its block (small products: one call on this thread).
template <class TA, class TB, class TC, class F>
void split_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const TA* A, int64_t lda, const TB* B, int64_t ldb,
                TC* C, int64_t ldc, F&& call) {
  const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (nt <= 1 || M * N * K < (int64_t(1) << 20) || std::max(M, N) < 2 * nt) {
    call(M, N, A, B, C);
    return;
  }
  const bool by_rows = M >= N;
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    const int64_t len = by_rows ? M : N, lo = len * t / nt, hi = len * (t + 1) / nt;
    if (hi > lo) {
      if (by_rows)  // rows of C = rows of op(A)
        call(hi - lo, N, ta ? A + lo : A + lo * lda, B, C + lo * ldc);
      else  // columns of C = columns of op(B)
        call(M, hi - lo, A, tb ? B + lo * ldb : B + lo, C + lo);
    }
  }
}

}  // namespace adnn::cpu
