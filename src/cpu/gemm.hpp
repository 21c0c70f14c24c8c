#pragma once
// CPU GEMM (src/cpu/gemm.cpp): OpenBLAS when built with it (single-threaded, large products
// split across OpenMP threads), else the built-in blocked kernel. Row-major:
// C = alpha · op(A) · op(B) + beta · C.
#include <adnn/ops/gemm.hpp>

#include <cstdint>

namespace adnn::cpu {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);
// One GemmDesc (include/adnn/ops/gemm.hpp) with its precision semantics: f16/bf16 and TF32
// inputs widened (or rounded) to f32 panels, f32 BLAS, epilogue in f32, one rounding on store.
// The CPU backend's bmm and the emulated device's cuda::gemm_ex both run it.
void gemm_ex(const GemmDesc& d);
// The built-in blocked GEMM (used when OpenBLAS is absent; always built and tested).
template <class T>
void gemm_builtin(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                  const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace adnn::cpu
