#pragma once
// Math the compiler can vectorise inside the CPU kernels' `#pragma omp simd` loops: an f32
// exp built from arithmetic and bit operations only (libm's expf is a call per element), passed
// to the shared activations of src/common/activation.hpp. f64 uses libm (the f64 path is the
// reference for tests, not a hot path).
#include <bit>
#include <cmath>
#include <cstdint>


namespace adnn::cpu {

// exp(x) for f32, |relative error| < 3e-7 on [-87, 88] (Cephes' expf: round-to-nearest range
// reduction x = n·ln2 + r, |r| ≤ ln2/2, degree-7 polynomial, 2ⁿ built in the exponent bits).
// Inputs are clamped to [-87, 88]: exp(-87) ≈ 1.6e-38 stands in for smaller values.
inline float vexp(float x) {
  x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
  const float magic = 12582912.f;  // 1.5·2²³: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + magic;
  const float n = t - magic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t e = (std::bit_cast<int32_t>(t) - std::bit_cast<int32_t>(magic) + 127) << 23;
  return p * std::bit_cast<float>(e);
}
inline double vexp(double x) { return std::exp(x); }

// vexp as the Exp argument of the shared activations (src/common/activation.hpp).
struct vexp_fn {
  template <class T>
  T operator()(T x) const {
    return vexp(x);
  }
};

}  // namespace adnn::cpu
