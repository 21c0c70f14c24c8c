#pragma once
// The enums the op API and both backends share (plain C++: the CUDA kernels include it too).
namespace adnn {

// The activation fused after a normalisation (batch_norm(..., act)).
enum class NormActivation { none = 0, silu = 1, relu = 2 };
// The epilogue fused into a GEMM (include/adnn/ops/gemm.hpp): z = acc + bias, then the activation.
enum class GemmEpilogue { none = 0, bias = 1, bias_relu = 2, bias_gelu = 3 };
// Resampling modes of interpolate / warp_affine.
enum class InterpMode { nearest, bilinear, bicubic };

// Backend codes of the elementwise and reduction ops (the op table's unary/binary/reduce
// entries take them).
// The *_scalar ops take their scalar in p0, kept in the compute type (f32 for 16-bit tensors,
// as torch's opmath): x + s, x · s, s − x, s / x, x^s.
// clang-format off
enum class UnaryOp {
  neg, exp, log, sqrt, rsqrt, abs, relu, leaky_relu, sigmoid, tanh, silu, gelu, clamp, pow_scalar,
  add_scalar, mul_scalar, rsub_scalar, rdiv_scalar
};
// clang-format on
enum class BinaryOp { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge };
enum class ReduceOp { sum, max, min };

const char* unary_name(UnaryOp op);
const char* binary_name(BinaryOp op);

}  // namespace adnn
