#pragma once
// The GEMM descriptor: one strided-batched product with a fused epilogue, as the gemm family
// hands it to cuBLASLt (src/cuda/runtime.cpp), to the emulated device, and to the CPU
// reference (src/cpu/gemm.cpp) that gives both of the latter their precision semantics.
//
// Row-major, per batch item i: C_i (M, N) = epilogue(op(A_i) (M, K) · op(B_i) (K, N)), with
// X_i = X + i · stride_x. A, B, C and bias share `dtype`:
//   f64: f64 throughout;  f32: f32 (GemmMath::tf32 rounds A and B to TF32 — a 10-bit mantissa,
//   round to nearest — first, as tensor cores read them);  f16/bf16: inputs exact in f32,
//   f32 accumulation and epilogue, one rounding on store (cuBLASLt's CUBLAS_COMPUTE_32F).
// Epilogue in the compute type: z = acc (+ bias[n]); pre = z when `pre` is given (the
// activation's input, kept for backward, same layout as C); C = act(z).
// Bias gradient (cuBLASLt's BGRAD epilogue, the backward of a bias): with `bias_grad` given
// (batch 1, no epilogue, no `pre`), bias_grad[m] = Σ_k op(A)[m, k] (M values in `dtype`):
// the column sums of dZ when C is a weight gradient dZᵀ · X (A = dZ, ta = true), in one call
// with the GEMM that reads dZ anyway. Summed in f64 on the CPU and in the emulator, rounded to
// f32 and then to dtype (f32 sums on a GPU, in cuBLASLt's order, rounded once), from A's values
// as stored (with TF32 on, a GPU may sum TF32-rounded values: the same within TF32's
// rounding). Fewer than two rows (K < 2) are summed by the caller on the device (cuda::gemm_ex
// answers false: cuBLASLt before 12.3.4 mishandles k = 1).
// Output in f32 (`c_f32`, f16/bf16 A and B only) and accumulation (`accumulate`: C += the product,
// β = 1; C in f32 or f64): a product kept in f32 for more work on it — the 16-bit im2col
// backward's columns and its weight gradient summed over chunks — with no epilogue.
#include <adnn/core/dtype.hpp>
#include <adnn/ops/enums.hpp>

#include <cstdint>

namespace adnn {

enum class GemmMath { exact, tf32 };

struct GemmDesc {
  DType dtype = DType::f32;
  bool ta = false, tb = false;
  int64_t M = 0, N = 0, K = 0, lda = 0, ldb = 0, ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;  // in elements
  const void* A = nullptr;
  const void* B = nullptr;
  void* C = nullptr;
  const void* bias = nullptr;  // (N) or null
  GemmEpilogue epilogue = GemmEpilogue::none;
  void* pre = nullptr;        // like C (ldc, stride_c): z before the activation, or null
  void* bias_grad = nullptr;  // (M): Σ_k op(A)[m, k], or null; batch 1, epilogue none, no pre
  bool c_f32 = false;         // C is f32 while A and B are f16/bf16 (epilogue none)
  bool accumulate = false;    // C = op(A)·op(B) + C, C in f32 or f64 (epilogue none)
  GemmMath math = GemmMath::exact;
};

// The math mode of f32 GEMMs on `cuda`: matmul, linear, attention's projections and the
// convolutions' GEMMs (pointwise and im2col, forward and backward). PyTorch has two switches
// (torch.backends.cuda.matmul.allow_tf32, off by default, and torch.backends.cudnn.allow_tf32
// for convolutions, on by default); adnn has this one, off by default: an f32 model computes
// in f32 unless asked. Depthwise convolutions and the attention kernels are not GEMMs and
// stay f32. The CPU ignores it. Process-wide.
void set_allow_tf32(bool on);
bool allow_tf32();

// A float rounded to TF32 (8-bit exponent, 10-bit mantissa; round to nearest, ties away from
// zero, as cvt.rna.tf32.f32). Non-finite values pass through.
float round_to_tf32(float x);

}  // namespace adnn
