#pragma once
// Element types. f16 and bf16 are storage types with exact IEEE conversions
// (round-to-nearest-even); arithmetic on them runs in f32.
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>

namespace adnn {

enum class DType : uint8_t { f32, f64, f16, bf16, i32, i64, u8, boolean };

constexpr DType kFloat32 = DType::f32;
constexpr DType kFloat64 = DType::f64;
constexpr DType kFloat16 = DType::f16;
constexpr DType kBFloat16 = DType::bf16;
constexpr DType kInt32 = DType::i32;
constexpr DType kInt64 = DType::i64;
constexpr DType kUInt8 = DType::u8;
constexpr DType kBool = DType::boolean;

size_t dtype_size(DType t);
const char* dtype_name(DType t);
DType dtype_from_name(const std::string& name);
inline bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::f16 || t == DType::bf16;
}
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

float half_bits_to_float(uint16_t h);
uint16_t float_to_half_bits(float f);
inline float bf16_bits_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Branch-free (a select), so that loops converting arrays vectorise.
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

// IEEE binary16 storage type.
struct half {
  uint16_t bits = 0;
  half() = default;
  half(float f) : bits(float_to_half_bits(f)) {}
  half& operator=(float f) {
    bits = float_to_half_bits(f);
    return *this;
  }
  operator float() const { return half_bits_to_float(bits); }
};
// bfloat16 storage type.
struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  bfloat16(float f) : bits(float_to_bf16_bits(f)) {}
  // `y[i] = f` stores the rounded bits directly: a loop of such stores vectorises (GCC does
  // not vectorise the copy of a converted temporary, y[i] = bfloat16(f)).
  bfloat16& operator=(float f) {
    bits = float_to_bf16_bits(f);
    return *this;
  }
  operator float() const { return bf16_bits_to_float(bits); }
};

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::f32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::f64; };
template <> struct dtype_of<half> { static constexpr DType value = DType::f16; };
template <> struct dtype_of<bfloat16> { static constexpr DType value = DType::bf16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::i32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::i64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::boolean; };

// Calls f(T{}) with T the C++ type of `t`.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f64: return f(double{});
    case DType::f16: return f(half{});
    case DType::bf16: return f(bfloat16{});
    case DType::i32: return f(int32_t{});
    case DType::i64: return f(int64_t{});
    case DType::u8: return f(uint8_t{});
    case DType::boolean: return f(bool{});
  }
  return f(float{});
}

// Calls f(T{}) for the floating dtypes (f32, f64, f16, bf16); false for the others.
template <class F>
bool visit_floating(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return true;
    case DType::f64: f(double{}); return true;
    case DType::f16: f(half{}); return true;
    case DType::bf16: f(bfloat16{}); return true;
    default: return false;
  }
}

}  // namespace adnn
