#pragma once
// One warp-wide tensor-core multiply-accumulate and the register helpers around it.
//
//   D (16×8, f32) += A (16×16) · B (16×8), A and B in f16 or bf16:
//   PTX mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 on sm_80 and later,
//   and the same operation in the same register layout on the SIMT emulator, so a kernel
//   that builds its fragments by hand is checked on the host exactly as it runs on a GPU.
//
// Fragment layout (lane ℓ, g = ℓ / 4, t = ℓ % 4), as the PTX ISA documents it; a "word" is
// two 16-bit values, the lower-indexed one in the low half:
//   A: words a[0..3], a[r] = row g + 8·(r % 2), columns k = 2t + 8·(r / 2) + {0, 1}
//   B: words b[0..1], b[r] = rows k = 2t + 8·r + {0, 1}, column n = g
//   C: floats c[0..3], c[r] = row g + 8·(r / 2), column 2t + r % 2
// So an m16n8 accumulator pair (columns 0–7 and 8–15 of a 16×16 tile) rounded to 16 bits is
// exactly an A fragment: the FlashAttention-2 trick of feeding P to P·V from registers.
//
// Cost: 2·16·8·16 = 4096 flops per call. The emulator gathers the warp's fragments (one warp
// barrier each way) and every lane computes its own four outputs in f32, summing k in order.
#include "common.cuh"

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace adnn::kernels {

#if defined(__CUDACC__)
__device__ __forceinline__ uint16_t bits_of(__half v) { return __half_as_ushort(v); }
__device__ __forceinline__ uint16_t bits_of(__nv_bfloat16 v) { return __bfloat16_as_ushort(v); }

// Two consecutive 16-bit values (4-byte aligned) as one word.
template <class T>
__device__ __forceinline__ uint32_t load_pair(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

template <class T>
__device__ __forceinline__ void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();  // the launch code only selects tensor-core kernels on sm_80+
#endif
}

#else  // ---------------------------------------------------------------- SIMT emulation

inline uint16_t bits_of(::adnn::half v) { return v.bits; }
inline uint16_t bits_of(::adnn::bfloat16 v) { return v.bits; }

template <class T>
inline uint32_t load_pair(const T* p) {
  uint32_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}
// The same from shared memory through the race checker's pointer: two recorded reads.
template <class T>
inline uint32_t load_pair(::adnn::sim::sptr<T> p) {
  return uint32_t(bits_of(p[0].get())) | (uint32_t(bits_of(p[1].get())) << 16);
}

namespace mma_detail {
template <class T>
inline float lo(uint32_t w) {
  T v;
  v.bits = uint16_t(w & 0xffffu);
  return float(v);
}
template <class T>
inline float hi(uint32_t w) {
  T v;
  v.bits = uint16_t(w >> 16);
  return float(v);
}
}  // namespace mma_detail

template <class T>
inline void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
  using namespace mma_detail;
  struct Frag {
    uint32_t a[4], b[2];
  };
  const Frag mine{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
  Frag all[32];
  ::adnn::sim::warp_all_gather(&mine, sizeof(Frag), all);
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    for (int r = 0; r < 4; ++r) {
      const int row = g + 8 * (r % 2), k = 2 * t + 8 * (r / 2);
      A[row][k] = lo<T>(all[l].a[r]);
      A[row][k + 1] = hi<T>(all[l].a[r]);
    }
    for (int r = 0; r < 2; ++r) {
      const int k = 2 * t + 8 * r;
      B[k][g] = lo<T>(all[l].b[r]);
      B[k + 1][g] = hi<T>(all[l].b[r]);
    }
  }
  const int lane = int(::adnn::sim::ctx().lane), g = lane / 4, t = lane % 4;
  for (int r = 0; r < 4; ++r) {
    const int row = g + 8 * (r / 2), col = 2 * t + r % 2;
    float s = d[r];
    for (int k = 0; k < 16; ++k) s += A[row][k] * B[k][col];
    d[r] = s;
  }
}

#endif

// Two values rounded to T and packed as one fragment word (lo in the low half).
template <class T>
__device__ __forceinline__ uint32_t pack_pair(float lo, float hi) {
  return uint32_t(bits_of(from_float<T>(lo))) | (uint32_t(bits_of(from_float<T>(hi))) << 16);
}
template <class T>
__device__ __forceinline__ uint32_t pack_pair(T lo, T hi) {
  return uint32_t(bits_of(lo)) | (uint32_t(bits_of(hi)) << 16);
}

}  // namespace adnn::kernels
