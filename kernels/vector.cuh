#pragma once
// Aligned vectors of V elements for loads and stores along a contiguous dimension (C in
// NHWC): with V · sizeof(T) = 16 bytes a lane moves 16 bytes in one instruction (LDG.128 /
// STG.128 on the device; one 16-byte access in the emulator's trace). The caller checks
// that the pointer and every offset it adds are multiples of V elements (vector_width).
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <type_traits>

#include "common.cuh"

namespace adnn::kernels {

template <class T, int V>
struct alignas(sizeof(T) * V) vec_t {
  T v[V];
};

#if defined(__CUDACC__)
template <int V, class T>
__device__ __forceinline__ vec_t<T, V> load_vec(const T* p) {
  return *reinterpret_cast<const vec_t<T, V>*>(p);
}
template <int V, class T>
__device__ __forceinline__ void store_vec(T* p, const vec_t<T, V>& v) {
  *reinterpret_cast<vec_t<T, V>*>(p) = v;
}
#else
// Emulation: GCC splits a struct copy into scalar moves, so the access trace would see V
// narrow accesses per lane; a GCC vector type makes it one V·sizeof(T)-byte access, as the
// device's LDG.128 / STG.128. The emulator's f16/bf16 are classes, not arithmetic types: their
// vectors are moved as vectors of same-size unsigned integers (may_alias), or the trace would
// see eight 2-byte accesses per lane and report 12.5 % coalescing for a 16-byte load.
template <class T>
using host_lane_t = std::conditional_t<
    std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, T,
    std::conditional_t<sizeof(T) == 1, uint8_t,
                       std::conditional_t<sizeof(T) == 2, uint16_t,
                                          std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>>>;
template <class T, int V>
struct host_vec {
  using type __attribute__((vector_size(sizeof(T) * V), __may_alias__)) = host_lane_t<T>;
};
template <class T>
inline constexpr bool host_vec_ok =
    std::is_trivially_copyable_v<T> && (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8);
template <int V, class T>
inline vec_t<T, V> load_vec(const T* p) {
  vec_t<T, V> r;
  if constexpr (V > 1 && host_vec_ok<T>) {
    using H = typename host_vec<T, V>::type;
    const H h = *reinterpret_cast<const H*>(p);
    __builtin_memcpy(static_cast<void*>(&r), &h, sizeof r);  // f16/bf16: a class, trivially copyable
  } else {
    r = *reinterpret_cast<const vec_t<T, V>*>(p);
  }
  return r;
}
template <int V, class T>
inline void store_vec(T* p, const vec_t<T, V>& v) {
  if constexpr (V > 1 && host_vec_ok<T>) {
    using H = typename host_vec<T, V>::type;
    H h;
    __builtin_memcpy(&h, &v, sizeof h);
    *reinterpret_cast<H*>(p) = h;
  } else {
    *reinterpret_cast<vec_t<T, V>*>(p) = v;
  }
}
#endif

// The widest V (16 bytes at most) such that every pointer is V·sizeof(T)-aligned and the
// contiguous extent C is a multiple of V; 1 otherwise (the scalar fallback).
template <class T>
inline int vector_width(int64_t C, std::initializer_list<const void*> ptrs) {
  int v = int(16 / sizeof(T));
  if (v < 1) v = 1;
  for (; v > 1; v /= 2) {
    bool ok = C % v == 0;
    for (const void* p : ptrs)
      if (p && reinterpret_cast<uintptr_t>(p) % (uintptr_t(v) * sizeof(T)) != 0) ok = false;
    if (ok) break;
  }
  return v;
}

// The widest v ≤ vmax (a power of two) such that C is a multiple of v and every (pointer,
// element size) pair is v·size-aligned (null pointers are skipped): operands of different sizes
// moved v elements at a time (a bf16 row with f32 parameters: 16-byte and 32-byte vectors).
inline int vector_width_of(int vmax, int64_t C, std::initializer_list<std::pair<const void*, size_t>> ptrs) {
  int v = vmax < 1 ? 1 : vmax;
  for (; v > 1; v /= 2) {
    bool ok = C % v == 0;
    for (const auto& [p, size] : ptrs)
      if (p && reinterpret_cast<uintptr_t>(p) % (uintptr_t(v) * size) != 0) ok = false;
    if (ok) break;
  }
  return v;
}

}  // namespace adnn::kernels

namespace adnn::kernels {

// Calls f(std::integral_constant<int, V>{}) for the width v returned by vector_width<T>, so a
// launcher instantiates one kernel per width (16 / sizeof(T), ..., 2, 1).
template <class T, class F>
inline void with_vector_width(int v, F&& f) {
  constexpr int vmax = sizeof(T) >= 16 ? 1 : int(16 / sizeof(T));
  if constexpr (vmax >= 8)
    if (v == 8) return f(std::integral_constant<int, 8>{});
  if constexpr (vmax >= 4)
    if (v == 4) return f(std::integral_constant<int, 4>{});
  if constexpr (vmax >= 2)
    if (v == 2) return f(std::integral_constant<int, 2>{});
  f(std::integral_constant<int, 1>{});
}

// Calls f(std::integral_constant<int, vmax>{}) when v == vmax, else f(integral_constant<1>): two
// instantiations a kernel (16-byte vectors or scalars), for launchers whose other widths are not
// worth their compile time (reduce_rows, batch norm, the row kernels of rows.cuh).
template <int vmax, class F>
inline void with_full_width_or_scalar(int v, F&& f) {
  if constexpr (vmax > 1)
    if (v == vmax) return f(std::integral_constant<int, vmax>{});
  f(std::integral_constant<int, 1>{});
}

// Calls f(int32_t{}) when `narrow` (every index of the launch fits in 32 bits), else
// f(int64_t{}): the index type of a kernel's pixel and element offsets.
template <class F>
inline void with_index_type(bool narrow, F&& f) {
  if (narrow) f(int32_t{});
  else f(int64_t{});
}

}  // namespace adnn::kernels
