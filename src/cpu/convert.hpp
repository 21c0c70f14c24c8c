#pragma once
// Array conversions between f32 and the 16-bit storage types for the CPU twins' hot loops:
// the 16-bit im2col gathers, the 16-bit convolution and GEMM staging buffers, dtype copies.
// bf16 conversions are compiled three times — AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the
// baseline (SSE2) — and the loader picks the widest the CPU runs (GCC target_clones, an
// ifunc), as OpenBLAS picks its kernels: a binary built anywhere stays portable. They are
// integer bit operations (bfloat16's round-to-nearest-even of src/core/dtype.hpp), so every
// path gives the same bits. Measured (2-core Sapphire Rapids dev machine, 1 M elements,
// f32 -> bf16): 0.213 ms AVX-512 vs 0.499 ms baseline. f16 uses the scalar conversions.
#include <adnn/core/dtype.hpp>

#include <cstdint>

// Compiles a function for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the baseline, the loader
// picking the widest the CPU runs (GCC function multiversioning on x86-64; elsewhere, and for
// clang, whose target_clones spelling differs, one baseline version). The library is built
// with -ffp-contract=off, so a wider clone computes the same bits as the baseline (no FMA
// contraction; IEEE add, multiply, divide and sqrt are exact per element at any width).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ADNN_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ADNN_CPU_CLONES
#endif

namespace adnn::cpu::convert {

// y[i] = x[i] for i < n, on the calling thread (for loops that are already parallel)
void widen(const bfloat16* x, float* y, int64_t n);
void widen(const half* x, float* y, int64_t n);
void narrow(const float* x, bfloat16* y, int64_t n);  // rounded to nearest even, once
void narrow(const float* x, half* y, int64_t n);

// The same over the OpenMP threads (blocks of 16 Ki elements; serial below 64 Ki)
void widen_parallel(const bfloat16* x, float* y, int64_t n);
void widen_parallel(const half* x, float* y, int64_t n);
void narrow_parallel(const float* x, bfloat16* y, int64_t n);
void narrow_parallel(const float* x, half* y, int64_t n);

}  // namespace adnn::cpu::convert
