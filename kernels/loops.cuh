#pragma once
// Grid-stride loops shared by the elementwise-shaped kernels (one thread per output element,
// launched with k::grid_for): the flat index and its coordinates, innermost dimension
// fastest, so consecutive threads touch consecutive addresses (coalesced; along C for NHWC).
// The coordinates come from an index object the launcher builds on the host (nhwc_index,
// index_3d): below 2^31 elements they are 32-bit, each division by a precomputed divisor
// (IntDivider: a multiply-high, an add and a shift, no divide instruction); larger tensors
// take the int64 division (a few integer divides per element).
#include "common.cuh"

namespace adnn::kernels {

// n / d for 0 ≤ n < 2^31 and 1 ≤ d ≤ 2^31 by the round-up method of Granlund and Montgomery
// (1994; PyTorch's IntDivider<unsigned int> is the same): s = ⌈log2 d⌉, m = ⌊2^32·(2^s − d)/d⌋ + 1,
// n / d = (umulhi(n, m) + n) >> s — the add cannot overflow since umulhi(n, m) ≤ n < 2^31.
// m and s are computed once on the host (the constructor); the device only multiplies.
struct IntDivider {
  uint32_t d = 1, m = 1;
  uint32_t s = 0;
  IntDivider() = default;
  explicit IntDivider(uint32_t divisor) : d(divisor) {
    // 2^31 at most: s ≤ 31, and m fits in 32 bits (a larger divisor would need s = 32)
    ADNN_CHECK(divisor >= 1 && divisor <= (uint32_t(1) << 31), "IntDivider: divisor ", divisor,
               " is outside [1, 2^31]");
    while (s < 32 && (uint64_t(1) << s) < divisor) ++s;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << s) - divisor)) / divisor + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};
inline constexpr int64_t kNarrowIndexLimit = int64_t(1) << 31;  // 32-bit coordinates below this

// i / d and i % d for the flat indices i < total of an elementwise kernel (the channel c = i % C
// of an (M, C) array, the sample of an (N, rows, C) one): by the precomputed divisor when total
// < 2^31, else int64 division.
struct DivIndex {
  int64_t d = 1;
  bool narrow = false;
  IntDivider div;
  __device__ __forceinline__ int64_t quot(int64_t i) const {
    return narrow ? int64_t(div.div(uint32_t(i))) : i / d;
  }
  __device__ __forceinline__ int64_t rem(int64_t i) const { return i - quot(i) * d; }
};
inline DivIndex div_index(int64_t total, int64_t d) {
  DivIndex ix;
  ix.d = d > 0 ? d : 1;  // (d 0: a divisor nobody uses, e.g. the sample of a BN without drop-path scale)
  ix.narrow = total > 0 && total < kNarrowIndexLimit && d > 0 && d <= kNarrowIndexLimit;
  if (ix.narrow) ix.div = IntDivider(uint32_t(d));
  return ix;
}

// f(i) for i in [0, total).
template <class F>
__device__ __forceinline__ void grid_stride(int64_t total, F&& f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    f(i);
}

// use(i, load(i)) for i = first, first + step, … below end, in that order, with the loads of
// U consecutive iterations issued before the first of their uses, so that they are in flight
// together. For the loops whose trip count is known only at run time and whose body is a load
// and its use (a thread's walk over rows or partial slices): nvcc neither unrolls nor overlaps
// them, and each load waited out the previous iteration's (one dependent global round trip an
// iteration). The uses keep the order of the plain loop: the same sums, the same bits.
template <int U, class I, class Load, class Use>
__device__ __forceinline__ void for_each_strided_batched(I first, I end, I step, Load&& load, Use&& use) {
  using Val = decltype(load(first));
  for (I i0 = first; i0 < end; i0 += U * step) {
    Val v[U] = {};
    ADNN_UNROLL
    for (int u = 0; u < U; ++u)
      if (i0 + u * step < end) v[u] = load(i0 + u * step);
    ADNN_UNROLL
    for (int u = 0; u < U; ++u)
      if (i0 + u * step < end) use(i0 + u * step, v[u]);
  }
}

// A row-major (B, H, W, C) array's flat indices and their coordinates.
struct NhwcIndex {
  int64_t B = 0, H = 0, W = 0, C = 0, total = 0;
  bool narrow = false;  // total < 2^31: 32-bit coordinates by dc, dw, dh
  IntDivider dc, dw, dh;
};
inline NhwcIndex nhwc_index(int64_t B, int64_t H, int64_t W, int64_t C) {
  NhwcIndex ix;
  ix.B = B, ix.H = H, ix.W = W, ix.C = C, ix.total = B * H * W * C;
  ix.narrow = ix.total > 0 && ix.total < kNarrowIndexLimit;
  if (ix.narrow) ix.dc = IntDivider(uint32_t(C)), ix.dw = IntDivider(uint32_t(W)), ix.dh = IntDivider(uint32_t(H));
  return ix;
}

// Over a row-major (B, H, W, C) array: f(i, b, h, w, c).
template <class F>
__device__ __forceinline__ void for_each_nhwc(const NhwcIndex& ix, F&& f) {
  if (ix.narrow) {
    grid_stride(ix.total, [&](int64_t i) {
      const uint32_t u = uint32_t(i), q = ix.dc.div(u), c = u - q * ix.dc.d, r = ix.dw.div(q), w = q - r * ix.dw.d,
                     b = ix.dh.div(r), h = r - b * ix.dh.d;
      f(i, int64_t(b), int64_t(h), int64_t(w), int64_t(c));
    });
    return;
  }
  const int64_t H = ix.H, W = ix.W, C = ix.C;
  grid_stride(ix.total, [&](int64_t i) { f(i, i / (C * W * H), (i / (C * W)) % H, (i / C) % W, i % C); });
}

// A row-major (outer, n, inner) array's flat indices and their coordinates.
struct Index3d {
  int64_t outer = 0, n = 0, inner = 0, total = 0;
  bool narrow = false;  // total < 2^31: 32-bit coordinates by dinner, dn
  IntDivider dinner, dn;
};
inline Index3d index_3d(int64_t outer, int64_t n, int64_t inner) {
  Index3d ix;
  ix.outer = outer, ix.n = n, ix.inner = inner, ix.total = outer * n * inner;
  ix.narrow = ix.total > 0 && ix.total < kNarrowIndexLimit;
  if (ix.narrow) ix.dinner = IntDivider(uint32_t(inner)), ix.dn = IntDivider(uint32_t(n));
  return ix;
}

// Over a row-major (outer, n, inner) array: f(i, o, j, k).
template <class F>
__device__ __forceinline__ void for_each_3d(const Index3d& ix, F&& f) {
  if (ix.narrow) {
    grid_stride(ix.total, [&](int64_t i) {
      const uint32_t u = uint32_t(i), q = ix.dinner.div(u), k = u - q * ix.dinner.d, o = ix.dn.div(q),
                     j = q - o * ix.dn.d;
      f(i, int64_t(o), int64_t(j), int64_t(k));
    });
    return;
  }
  const int64_t n = ix.n, inner = ix.inner;
  grid_stride(ix.total, [&](int64_t i) { f(i, i / (inner * n), (i / inner) % n, i % inner); });
}

}  // namespace adnn::kernels
