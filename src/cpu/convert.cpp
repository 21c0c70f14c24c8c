// f32 <-> bf16/f16 array conversions (src/cpu/convert.hpp).
#include "cpu/convert.hpp"

#include <omp.h>

#include <algorithm>

namespace adnn::cpu::convert {

namespace {
// on raw bits, so the loops vectorise in each clone (the same expressions as bfloat16's)
ADNN_CPU_CLONES void widen_bf16(const uint16_t* __restrict x, float* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_bits_to_float(x[i]);
}
ADNN_CPU_CLONES void narrow_bf16(const float* __restrict x, uint16_t* __restrict y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = float_to_bf16_bits(x[i]);
}

constexpr int64_t kBlock = int64_t(1) << 14, kSerial = int64_t(1) << 16;
template <class F>
void blocks(int64_t n, F&& f) {
  if (n <= kSerial) return f(int64_t(0), n);
  const int64_t nb = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) f(b * kBlock, std::min(kBlock, n - b * kBlock));
}
}  // namespace

void widen(const bfloat16* x, float* y, int64_t n) {
  static_assert(sizeof(bfloat16) == sizeof(uint16_t));
  widen_bf16(reinterpret_cast<const uint16_t*>(x), y, n);
}
void narrow(const float* x, bfloat16* y, int64_t n) { narrow_bf16(x, reinterpret_cast<uint16_t*>(y), n); }
void widen(const half* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = float(x[i]);
}
void narrow(const float* x, half* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i];
}

void widen_parallel(const bfloat16* x, float* y, int64_t n) {
  blocks(n, [&](int64_t i, int64_t m) { widen(x + i, y + i, m); });
}
void widen_parallel(const half* x, float* y, int64_t n) {
  blocks(n, [&](int64_t i, int64_t m) { widen(x + i, y + i, m); });
}
void narrow_parallel(const float* x, bfloat16* y, int64_t n) {
  blocks(n, [&](int64_t i, int64_t m) { narrow(x + i, y + i, m); });
}
void narrow_parallel(const float* x, half* y, int64_t n) {
  blocks(n, [&](int64_t i, int64_t m) { narrow(x + i, y + i, m); });
}

}  // namespace adnn::cpu::convert
