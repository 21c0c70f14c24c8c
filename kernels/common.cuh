#pragma once
// The portability layer every kernel file includes.
//
// With nvcc (__CUDACC__) this is plain CUDA. Otherwise (ADNN_CUDA_EMULATION) the same
// kernel source builds with the host compiler against the SIMT emulator (src/sim): CUDA's
// keywords, built-in variables, barriers, warp intrinsics, atomics and fast-math
// intrinsics are mapped onto it here. Kernels are launched through adnn::kernels::launch,
// never with <<<>>> in shared code.
//
// Rules the emulation enforces (src/sim/simt.hpp has them in full; docs/testing.md):
//  - Warp ops wait for exactly the non-exited lanes of their mask; the mask must hold the
//    calling lane; a shuffle from a lane outside the mask reads poison. A lane of the mask
//    waiting elsewhere is a deadlock, reported with the kernel and file:line of each wait.
//  - Shared memory is race-checked (ADNN_SIM_RACECHECK=0 turns it off): two threads that
//    touch one location, at least one writing, need a __syncthreads between them (or a
//    __syncwarp when they are lanes of one warp); shuffles are not fences, atomics are fine.
//    So shared memory is declared with ADNN_SHARED / ADNN_DYNAMIC_SHARED, pointers to it are
//    ADNN_SHARED_PTR(T) (T* on the device) and reinterpreted with ADNN_SHARED_CAST.
#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define ADNN_DEVICE_CODE 1
// Unrolls a loop with a compile-time trip count, so register arrays indexed by it stay in
// registers (nothing to do on the emulator).
#define ADNN_UNROLL _Pragma("unroll")
#define ADNN_DYNAMIC_SHARED(type, name) extern __shared__ __align__(16) unsigned char adnn_dyn_smem_[]; \
  type* name = reinterpret_cast<type*>(adnn_dyn_smem_)
// Static shared memory: ADNN_SHARED(float, s, [8][33]) declares `__shared__ float s[8][33]`.
#define ADNN_SHARED(type, name, dims) __shared__ type name dims
// The type of a pointer into shared memory that a helper takes or a kernel keeps: T* here, a
// checked pointer in emulation (see the race checker in src/sim/simt.hpp).
#define ADNN_SHARED_PTR(type) type*
// reinterpret_cast of a shared pointer (ADNN_SHARED_CAST(float, p) is reinterpret_cast<float*>(p)).
#define ADNN_SHARED_CAST(type, p) reinterpret_cast<type*>(p)

namespace adnn::kernels {
using f16 = __half;
using bf16 = __nv_bfloat16;
using Stream = cudaStream_t;
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(double v) { return float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_float(float v) { return T(v); }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

[[noreturn]] void cuda_launch_failed(cudaError_t e, const char* kernel, const char* file, int line);

// Launches kernel<<<grid, block, smem, stream>>>(args...) and checks the launch.
template <class... KArgs, class... Args>
void launch_impl(const char* name, const char* file, int line, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                 size_t smem, Stream stream, Args&&... args) {
  cudaError_t e = cudaSuccess;
  if (smem > 48 * 1024) {  // opt in to the larger dynamic shared memory of sm_80+
    e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) cuda_launch_failed(e, name, file, line);
  }
  kernel<<<grid, block, smem, stream>>>(static_cast<KArgs>(args)...);
  e = cudaGetLastError();
  if (e != cudaSuccess) cuda_launch_failed(e, name, file, line);
}
}  // namespace adnn::kernels

#else  // ---------------------------------------------------------------- SIMT emulation

#include <adnn/core/dtype.hpp>
#include <adnn/core/error.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "sim/simt.hpp"

#define ADNN_DEVICE_CODE 0
#define ADNN_UNROLL
#define __global__
#define __device__ inline
#define __host__
#define __forceinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// Static shared memory comes from the block's arena, poisoned at block start (0xFF bytes):
// kernels declare it with ADNN_SHARED, never __shared__ (which does not compile here).
// Shared memory is seen through checked types (adnn::sim::shared_array / sptr / sref) that
// feed the race checker: ADNN_SHARED declares a bounds-checked shared_array, ADNN_DYNAMIC_SHARED
// an sptr. Kernel code keeps shared pointers as `auto` or ADNN_SHARED_PTR(T), helpers take
// ADNN_SHARED_PTR(T), reinterpret_casts go through ADNN_SHARED_CAST, and `&s[i]` is an sptr
// (atomics accept it). The device build keeps plain arrays and T*.
#define ADNN_SHARED(type, name, dims)          \
  static const char adnn_shared_key_##name = 0; \
  const auto name =                            \
      ::adnn::sim::shared_array<type dims>(*::adnn::sim::block_shared<type dims>(&adnn_shared_key_##name))
#define __shared__ static_assert(false, "declare static shared memory with ADNN_SHARED(type, name, dims)");
#define ADNN_DYNAMIC_SHARED(type, name) \
  const ::adnn::sim::sptr<type> name(reinterpret_cast<type*>(::adnn::sim::dynamic_shared()))
// (a non-deduced context: helpers get T from another argument or <T>, and a shared_array or an
// sptr<T> converts to the parameter)
#define ADNN_SHARED_PTR(type) ::adnn::sim::shared_ptr_t<type>
#define ADNN_SHARED_CAST(type, p) ::adnn::sim::shared_cast<type>(p)

using dim3 = ::adnn::sim::dim3;
#define threadIdx (::adnn::sim::ctx().thread_idx)
#define blockIdx (::adnn::sim::ctx().block_idx)
#define blockDim (::adnn::sim::ctx().block_dim)
#define gridDim (::adnn::sim::ctx().grid_dim)
constexpr int warpSize = 32;

// Barriers and warp ops record where they are called (std::source_location) for the
// emulator's deadlock and race reports; masks are honoured as on sm_70+ (src/sim/simt.hpp).
using adnn_site = ::adnn::sim::site;
inline void __syncthreads(adnn_site at = adnn_site::current()) { ::adnn::sim::syncthreads(at); }
inline void __syncwarp(unsigned mask = 0xffffffffu, adnn_site at = adnn_site::current()) {
  ::adnn::sim::syncwarp(mask, at);
}

namespace adnn::sim::detail {
template <class T>
uint64_t pack(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffle of a type wider than 8 bytes");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <class T>
T unpack(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}
inline int lane() { return int(::adnn::sim::ctx().lane); }
}  // namespace adnn::sim::detail

// The value type of a shuffle: a shared-memory reference (sref) is read first.
template <class T>
struct adnn_shfl_type {
  using type = T;
};
template <class T>
struct adnn_shfl_type<::adnn::sim::sref<T>> {
  using type = std::remove_cv_t<T>;
};
template <class T>
using adnn_shfl_t = typename adnn_shfl_type<T>::type;

template <class T>
adnn_shfl_t<T> __shfl_sync(unsigned mask, T v, int src, int width = 32, adnn_site at = adnn_site::current()) {
  using namespace adnn::sim::detail;
  using V = adnn_shfl_t<T>;
  int l = lane(), base = l - l % width;
  return unpack<V>(::adnn::sim::warp_exchange(pack(V(v)), base + ((src % width) + width) % width, mask, at));
}
template <class T>
adnn_shfl_t<T> __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, adnn_site at = adnn_site::current()) {
  using namespace adnn::sim::detail;
  using V = adnn_shfl_t<T>;
  int l = lane(), src = l ^ lane_mask;
  if (src / width != l / width) src = l;
  return unpack<V>(::adnn::sim::warp_exchange(pack(V(v)), src, mask, at));
}
template <class T>
adnn_shfl_t<T> __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, adnn_site at = adnn_site::current()) {
  using namespace adnn::sim::detail;
  using V = adnn_shfl_t<T>;
  int l = lane(), src = l + int(delta);
  if (src / width != l / width) src = l;
  return unpack<V>(::adnn::sim::warp_exchange(pack(V(v)), src, mask, at));
}
template <class T>
adnn_shfl_t<T> __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, adnn_site at = adnn_site::current()) {
  using namespace adnn::sim::detail;
  using V = adnn_shfl_t<T>;
  int l = lane(), src = l - int(delta);
  if (src < 0 || src / width != l / width) src = l;
  return unpack<V>(::adnn::sim::warp_exchange(pack(V(v)), src, mask, at));
}
inline unsigned __ballot_sync(unsigned mask, int pred, adnn_site at = adnn_site::current()) {
  return ::adnn::sim::warp_ballot(pred != 0, mask, at);
}
inline int __all_sync(unsigned mask, int pred, adnn_site at = adnn_site::current()) {
  unsigned part = 0;
  const unsigned b = ::adnn::sim::warp_vote(pred != 0, mask, &part, at);
  return b == part;
}
inline int __any_sync(unsigned mask, int pred, adnn_site at = adnn_site::current()) {
  return ::adnn::sim::warp_ballot(pred != 0, mask, at) != 0;
}
inline unsigned __activemask() { return ::adnn::sim::warp_live_mask(); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
inline int __ffs(int v) { return __builtin_ffs(v); }

// Atomics: blocks run concurrently on OS threads, so these are real atomics.
template <class T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
template <class T>
T atomicSub(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_sub(v);
}
template <class T>
T atomicExch(T* p, T v) {
  return std::atomic_ref<T>(*p).exchange(v);
}
template <class T>
T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;
}
template <class T>
T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old > v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}

// Atomics on shared memory (`atomicAdd(&s[i], v)`, &s[i] being a checked pointer): not races,
// not recorded by the race checker.
template <class T, class V>
T atomicAdd(::adnn::sim::sptr<T> p, V v) { return atomicAdd(p.raw(), T(v)); }
template <class T, class V>
T atomicSub(::adnn::sim::sptr<T> p, V v) { return atomicSub(p.raw(), T(v)); }
template <class T, class V>
T atomicExch(::adnn::sim::sptr<T> p, V v) { return atomicExch(p.raw(), T(v)); }
template <class T, class V>
T atomicMax(::adnn::sim::sptr<T> p, V v) { return atomicMax(p.raw(), T(v)); }
template <class T, class V>
T atomicMin(::adnn::sim::sptr<T> p, V v) { return atomicMin(p.raw(), T(v)); }
template <class T, class V, class W>
T atomicCAS(::adnn::sim::sptr<T> p, V e, W d) { return atomicCAS(p.raw(), T(e), T(d)); }

template <class T>
T __ldg(const T* p) {
  return *p;
}
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return std::min(1.0f, std::max(0.0f, x)); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }

using __half = ::adnn::half;
using __nv_bfloat16 = ::adnn::bfloat16;
inline float __half2float(__half h) { return float(h); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }

namespace adnn::kernels {
using f16 = ::adnn::half;
using bf16 = ::adnn::bfloat16;
struct StreamTag;
using Stream = StreamTag*;  // the emulator runs every launch synchronously
inline float to_float(float v) { return v; }
inline float to_float(double v) { return float(v); }
inline float to_float(::adnn::half v) { return float(v); }
inline float to_float(::adnn::bfloat16 v) { return float(v); }
template <class T> inline T from_float(float v) { return T(v); }

// Every pointer argument must be device memory (or null), as a GPU would fault on a host
// pointer: the emulator shares the host's address space, so it checks what hardware would.
template <class T>
void check_device_arg(const T& v, size_t pos, const char* name, const char* file, int line) {
  if constexpr (requires { v.for_each_device_pointer([](const auto*) {}); }) {  // pointer tables by value
    v.for_each_device_pointer([&](const auto* p) { check_device_arg(p, pos, name, file, line); });
  } else if constexpr (std::is_pointer_v<T>) {
    if (v != nullptr && !::adnn::sim::is_device_memory(static_cast<const void*>(v))) {
      const char* base = file;
      for (const char* p = file; *p; ++p)
        if (*p == '/') base = p + 1;
      throw ::adnn::Error(::adnn::detail::cat("kernel launch ", name, ": argument ", pos, " (",
                                              static_cast<const void*>(v),
                                              ") is not device memory: a host pointer would fault on a GPU [", base,
                                              ":", line, "]"));
    }
  }
}

// cuda::Graph (src/cuda/runtime.cpp): while `stream` is capturing, a launch is recorded with
// copies of its arguments instead of run.
bool stream_capturing(Stream stream);
void capture_launch(Stream stream, std::function<void()> work);

template <class... KArgs, class... Args>
void launch_impl(const char* name, const char* file, int line, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                 size_t smem, Stream stream, Args&&... args) {
  std::tuple<std::decay_t<KArgs>...> packed(static_cast<KArgs>(args)...);
  std::apply([&](const auto&... a) {
    size_t pos = 0;
    (check_device_arg(a, pos++, name, file, line), ...);
  }, packed);
  if (stream_capturing(stream)) {
    capture_launch(stream, [=] { ::adnn::sim::launch(grid, block, smem, [&] { std::apply(kernel, packed); }, name); });
    return;
  }
  ::adnn::sim::launch(grid, block, smem, [&] { std::apply(kernel, packed); }, name);
}
}  // namespace adnn::kernels

#endif

// launch(kernel, grid, block, shared_bytes, stream, args...): the one way kernels start.
#define ADNN_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::adnn::kernels::launch_impl(#kernel, __FILE__, __LINE__, kernel, grid, block, smem, stream, __VA_ARGS__)

#include <type_traits>

#include "common/activation.hpp"
#include "common/hd.hpp"

namespace adnn::kernels {
// The shared layer (src/common): geometry structs, activations, math::exp/log/...
using namespace ::adnn::common;
inline unsigned ceil_div(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }
// Blocks for a grid-stride loop over n elements (at most 65,535).
inline dim3 grid_for(int64_t n, unsigned threads = 256) {
  const unsigned b = ceil_div(n, threads);
  return dim3(b < 1u ? 1u : (b > 65535u ? 65535u : b));
}

// A stored value in the compute type A (f16/bf16 widened exactly), and back (f16/bf16
// rounded to nearest even; bool as != 0).
template <class A, class T>
__device__ __forceinline__ A load_as(T v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>)
    return A(to_float(v));
  else
    return A(v);
}
template <class T, class A>
__device__ __forceinline__ T store_as(A v) {
  if constexpr (std::is_same_v<T, f16> || std::is_same_v<T, bf16>)
    return from_float<T>(float(v));
  else if constexpr (std::is_same_v<T, bool>)
    return v != A(0);
  else
    return T(v);
}

// v where keep, else +0, as a bit mask (A is float or double): no branch, so that
// `y[i] = a + value_or_zero(c, b)` stays one store instruction in the emulator's host code
// too (GCC may duplicate a store into both arms of a select, which splits a warp's request
// by lane condition in the access trace; nvcc emits a select and one store either way).
template <class A>
__device__ __forceinline__ A value_or_zero(bool keep, A v) {
  static_assert(sizeof(A) == 4 || sizeof(A) == 8, "value_or_zero: float or double");
  using U = std::conditional_t<sizeof(A) == 8, unsigned long long, unsigned>;
  U bits;
  __builtin_memcpy(&bits, &v, sizeof(A));
  bits &= U(0) - U(keep);
  __builtin_memcpy(&v, &bits, sizeof(A));
  return v;
}

}  // namespace adnn::kernels
