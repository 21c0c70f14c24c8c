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
  void* pre = nullptr;  // like C (ldc, stride_c): z before the activation, or null
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
