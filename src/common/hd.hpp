#pragma once
// The bottom layer: what host code (the CPU backend) and device code (kernels/, built by
// nvcc or under the SIMT emulator) both compile. No tensors, no CUDA runtime: plain structs,
// enums and inline math marked ADNN_HD.
//
// ADNN_HD marks a function callable from both sides: `__host__ __device__ __forceinline__`
// under nvcc, `inline` everywhere else (the CPU backend and the emulated kernels).
#include <cmath>
#include <cstdint>
#include <math.h>

#include <type_traits>

#if defined(__CUDACC__)
#define ADNN_HD __host__ __device__ __forceinline__
#else
#define ADNN_HD inline
#endif

namespace adnn::common {

// The type arithmetic runs in for storage type T: double for f64, the integer itself for
// integers and bool, float for everything else (f32, and the 16-bit float types on both
// sides: adnn::half / bfloat16 on the host, __half / __nv_bfloat16 under nvcc).
template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, std::conditional_t<std::is_integral_v<T>, T, float>>;

// Math resolved explicitly by type (f32 forms for float, f64 forms for double), so adnn's
// tensor ops (adnn::exp, ...) never shadow them and float math never widens to double.
namespace math {
ADNN_HD float exp(float v) { return ::expf(v); }
ADNN_HD double exp(double v) { return ::exp(v); }
ADNN_HD float log(float v) { return ::logf(v); }
ADNN_HD double log(double v) { return ::log(v); }
ADNN_HD float sqrt(float v) { return ::sqrtf(v); }
ADNN_HD double sqrt(double v) { return ::sqrt(v); }
ADNN_HD float tanh(float v) { return ::tanhf(v); }
ADNN_HD double tanh(double v) { return ::tanh(v); }
ADNN_HD float erf(float v) { return ::erff(v); }
ADNN_HD double erf(double v) { return ::erf(v); }
ADNN_HD float pow(float a, float b) { return ::powf(a, b); }
ADNN_HD double pow(double a, double b) { return ::pow(a, b); }

// exp as a function object: the default for the activation templates (activation.hpp);
// the CPU backend passes its vectorisable exp instead (src/cpu/vmath.hpp).
struct libm_exp {
  template <class A>
  ADNN_HD A operator()(A v) const {
    return math::exp(v);
  }
};
}  // namespace math

}  // namespace adnn::common
