#pragma once
// Elementwise kernels over strided tensors: copy/cast, fill, unary ops and their
// derivatives, binary ops with broadcasting, where.
//
// Layout: any strides. Each launch gets a Geom: the output's sizes (up to 8 dims) and, per
//   operand, its element strides (0 on broadcast dims). The output index i is the row-major
//   linear index over `size`; operand k lives at sum_d coord_d(i) * stride[k][d].
// Threads: grid-stride loop, one element per thread per iteration, 256 threads per block;
//   consecutive threads take consecutive output elements, so writes to a contiguous output
//   and reads of unit-stride operands are coalesced. Unary, its backward and binary ops take
//   V = 16 / sizeof(T) elements per thread with 16-byte loads where the layout allows
//   (*_vec_kernel, vector_geom below; measured on an H200: gelu 36 → 67 % of the device copy,
//   broadcast add 34 → 95 %). Exception: a copy whose destination and
//   source are contiguous along different dimensions goes through 32 × 32 shared-memory tiles
//   (copy_transpose_kernel, below), so that both sides are read and written along their
//   contiguous dimension.
// Cost: memory bound. Per element: reads of each operand (sizeof(T) each; broadcast operands
//   mostly hit cache) + one write; a few flops (exp/erf/tanh for the transcendental ops) and,
//   for the index, nothing where the operands are contiguous (coalesce leaves one dimension),
//   else one div/mod per remaining dimension, 32-bit below 2^31 elements.
// Arithmetic runs in f32 for f32/f16/bf16 (f64 for double, native for integers).
#include "common.cuh"
#include "loops.cuh"
#include "vector.cuh"
#include "common/mul_rn.hpp"

namespace adnn::kernels {

constexpr int kMaxDims = 8;
constexpr int kMaxOperands = 4;

struct Geom {
  int ndim = 0;
  bool index32 = false;  // every linear index below 2^31: 32-bit coordinates by div (coalesce sets it)
  int64_t size[kMaxDims] = {};
  IntDivider div[kMaxDims];  // index32: size[d]'s precomputed divisor
  int64_t stride[kMaxOperands][kMaxDims] = {};
};

// The launcher's geometry made as small as the layouts allow, as ATen's TensorIterator
// coalesces dimensions: size-1 dimensions dropped, and a dimension merged into the one
// outside it wherever every operand steps through the pair as through one (outer stride =
// inner stride · inner size; unused operands have stride 0 and never object). Contiguous
// operands leave one dimension, whose offsets need no division; a transposing copy's two
// unit-stride dimensions are never merged with each other. index32 where the element count fits 31 bits: a
// 64-bit div/mod is a long software sequence on a GPU; there each dimension's division is a
// multiply-high and a shift by its precomputed divisor (IntDivider, kernels/loops.cuh).
// g.index32 = on, with the dimensions' divisors (every linear index of g below 2^31 when on).
inline void set_index32(Geom& g, bool on) {
  g.index32 = on;
  for (int d = 0; d < g.ndim; ++d) g.div[d] = on && g.size[d] > 0 ? IntDivider(uint32_t(g.size[d])) : IntDivider();
}

inline void coalesce(Geom& g) {
  Geom c;
  int64_t n = 1;
  for (int d = 0; d < g.ndim; ++d) {
    n *= g.size[d];
    if (g.size[d] == 1) continue;
    bool merge = c.ndim > 0;
    for (int k = 0; k < kMaxOperands && merge; ++k) merge = g.stride[k][d] * g.size[d] == c.stride[k][c.ndim - 1];
    if (merge) {
      c.size[c.ndim - 1] *= g.size[d];
      for (int k = 0; k < kMaxOperands; ++k) c.stride[k][c.ndim - 1] = g.stride[k][d];
    } else {
      c.size[c.ndim] = g.size[d];
      for (int k = 0; k < kMaxOperands; ++k) c.stride[k][c.ndim] = g.stride[k][d];
      ++c.ndim;
    }
  }
  if (c.ndim == 0 || n == 0) {  // one element (or none): one dimension of size n, offsets 0
    c = Geom{};
    c.ndim = 1;
    c.size[0] = n;
  }
  set_index32(c, n <= int64_t(INT32_MAX));
  g = c;
}

template <int N>
__device__ __forceinline__ void geom_offsets(const Geom& g, int64_t i, int64_t (&off)[N]) {
  if (g.ndim == 1) {  // contiguous (after coalesce) or one strided run: no division
    for (int k = 0; k < N; ++k) off[k] = i * g.stride[k][0];
    return;
  }
  for (int k = 0; k < N; ++k) off[k] = 0;
  if (g.index32) {
    uint32_t j = uint32_t(i);
    for (int d = g.ndim - 1; d >= 0; --d) {
      const uint32_t q = g.div[d].div(j), c = j - q * g.div[d].d;
      j = q;
      for (int k = 0; k < N; ++k) off[k] += int64_t(c) * g.stride[k][d];
    }
    return;
  }
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t c = i % g.size[d];
    i /= g.size[d];
    for (int k = 0; k < N; ++k) off[k] += c * g.stride[k][d];
  }
}

// load_as / store_as: kernels/common.cuh

// ---------------------------------------------------------------- copy / cast, fill
template <class S, class D>
__global__ void copy_kernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n, Geom g) {
  using A = std::conditional_t<std::is_same_v<S, double> || std::is_same_v<D, double>, double,
                               std::conditional_t<std::is_integral_v<S> && std::is_integral_v<D>, int64_t, float>>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    geom_offsets<2>(g, i, off);  // operand 0: dst, operand 1: src
    if constexpr (std::is_same_v<D, bool>) dst[off[0]] = load_as<A>(src[off[1]]) != A(0);
    else dst[off[0]] = store_as<D, A>(load_as<A>(src[off[1]]));
  }
}

// A copy whose destination and source are contiguous along different dimensions (a permute
// made contiguous, or a contiguous tensor copied into a permuted view): dimension `da` has
// destination stride 1, `db` source stride 1. One block per 32 × 32 tile of (da, db) and
// index of the remaining dimensions (`outer`: operand 0 dst, 1 src; grid.x = outer count ·
// tiles of da · tiles of db, below 2^31; block: as many threads as a full tile has elements,
// a multiple of 32, at most 256). The block reads the tile's elements in source
// order (consecutive threads along db: contiguous), converts them, keeps them in shared
// memory (pitch 33, in the conversion type), and after one barrier writes them in destination order (consecutive
// threads along da). Tiles narrower than 32 in a dimension are read and written as one run
// of consecutive threads over the valid elements, so a dimension of 3 (RGB channels, say)
// still gives contiguous requests. Cost: reads and writes each element once; one barrier.
// Measured coalescing (emulator trace, adnn_fer_nano training step): copy_kernel 100 % and
// copy_transpose_kernel 99.3 % (14 launches; copy_kernel alone was 72.1 % before, with the
// transposes among its launches); the tile's shared accesses averaged 1.19 wavefronts per
// request, up to 4-way where a tile dimension is below 32, with the pitch of 33 alone; the
// pitch now depends on the tile's shape (transpose_tile_pitch: at most 2-way, tested in
// tests/test_trace.cpp).
// The row pitch of copy_transpose_kernel's na × nb tile (na, nb ≤ 32), in 32-bit words (an
// 8-byte element is kept as two 32-bit planes with this pitch each). A warp stores 32 consecutive elements in source order (b fastest:
// 32/nb rows of nb) and loads 32 in destination order (a fastest: 32/na columns of na);
// each access's bank is (al·P + bl) mod 32:
//   na·nb ≤ 32: P = nb, the whole tile in one warp at consecutive addresses, both ways;
//   nb = 32 > na: P = 32 + ⌈32/na⌉ spreads the loads' na rows ⌈32/na⌉ banks apart (the
//     stores are whole rows);
//   otherwise P = nb | 1 (33 for full tiles): odd, so the loads' up to 32 rows hit distinct
//     banks; the stores' 32/nb rows of nb overlap by at most a few banks where they wrap.
// At most 2-way in every case (the pitch 33 alone gave 4-way for 32 × 8 and 8 × 32 tiles).
__device__ __forceinline__ int transpose_tile_pitch(int na, int nb) {
  if (na * nb <= 32) return nb;
  if (nb == 32) return 32 + (32 + na - 1) / na;
  return nb | 1;
}

template <class S, class D>
__global__ void copy_transpose_kernel(const S* __restrict__ src, D* __restrict__ dst, Geom outer, int64_t size_a,
                                      int64_t size_b, int64_t src_stride_a, int64_t dst_stride_b) {
  using A = std::conditional_t<std::is_same_v<S, double> || std::is_same_v<D, double>, double,
                               std::conditional_t<std::is_integral_v<S> && std::is_integral_v<D>, int64_t, float>>;
  // [a][b] with pitch P (transpose_tile_pitch) in 32-bit words: a 4-byte conversion type in
  // plane 0; an 8-byte one (f64, int64) split into its low word (plane 0) and high word
  // (plane 1), so that every shared access is a 32-bit one and the pitch analysis holds
  // (one 8-byte plane had up to 3-way conflicts: its elements fall in 16 banks of 8 bytes).
  // 32·33 words per plane hold every pitch it picks.
  constexpr int kPlane = 32 * 33;
  constexpr bool wide = sizeof(A) == 8;
  ADNN_SHARED(uint32_t, tile, [wide ? 2 * kPlane : kPlane]);
  const int64_t tiles_a = (size_a + 31) / 32, tiles_b = (size_b + 31) / 32;
  int64_t t = blockIdx.x;
  const int64_t tb = t % tiles_b, ta = (t / tiles_b) % tiles_a, o = t / (tiles_b * tiles_a);
  int64_t off[2];
  geom_offsets<2>(outer, o, off);  // operand 0: dst, operand 1: src
  const int64_t a0 = ta * 32, b0 = tb * 32;
  const int na = int(size_a - a0 < 32 ? size_a - a0 : 32), nb = int(size_b - b0 < 32 ? size_b - b0 : 32);
  const int P = transpose_tile_pitch(na, nb);
  for (int e = threadIdx.x; e < na * nb; e += blockDim.x) {  // source order: b fastest
    const int al = e / nb, bl = e % nb;
    const A v = load_as<A>(src[off[1] + (a0 + al) * src_stride_a + b0 + bl]);
    if constexpr (wide) {
      uint64_t u;
      memcpy(&u, &v, 8);
      tile[al * P + bl] = uint32_t(u);
      tile[kPlane + al * P + bl] = uint32_t(u >> 32);
    } else {
      uint32_t u;
      memcpy(&u, &v, 4);
      tile[al * P + bl] = u;
    }
  }
  __syncthreads();
  for (int e = threadIdx.x; e < na * nb; e += blockDim.x) {  // destination order: a fastest
    const int al = e % na, bl = e / na;
    A v;
    if constexpr (wide) {
      const uint64_t u = uint64_t(tile[al * P + bl]) | (uint64_t(tile[kPlane + al * P + bl]) << 32);
      memcpy(&v, &u, 8);
    } else {
      const uint32_t u = tile[al * P + bl];
      memcpy(&v, &u, 4);
    }
    if constexpr (std::is_same_v<D, bool>) dst[off[0] + a0 + al + (b0 + bl) * dst_stride_b] = v != A(0);
    else dst[off[0] + a0 + al + (b0 + bl) * dst_stride_b] = store_as<D, A>(v);
  }
}

template <class T>
__global__ void fill_kernel(T* __restrict__ dst, T value, int64_t n, Geom g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[1];
    geom_offsets<1>(g, i, off);
    dst[off[0]] = value;
  }
}

// out[i] = start + i·step (contiguous); computed in double (the product rounded, never fused:
// common::arange_value), then cast.
template <class T>
__global__ void arange_kernel(T* __restrict__ out, int64_t n, double start, double step) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = store_as<T, double>(common::arange_value(start, step, i));
}

// ---------------------------------------------------------------- unary
// out (contiguous) = op(x); operand 0: out, 1: x
template <class T>
__global__ void unary_kernel(UnaryOp op, const T* __restrict__ x, T* __restrict__ out, int64_t n, Geom g, double p0,
                             double p1) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[2];
    geom_offsets<2>(g, i, off);
    out[off[0]] = store_as<T, A>(apply_unary<A>(op, load_as<A>(x[off[1]]), A(p0), A(p1)));
  }
}

// gx = op'(x) * g; operands 0: gx, 1: g, 2: x, 3: y
template <class T>
__global__ void unary_backward_kernel(UnaryOp op, const T* __restrict__ g, const T* __restrict__ x,
                                      const T* __restrict__ y, T* __restrict__ gx, int64_t n, Geom geo, double p0,
                                      double p1) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[4];
    geom_offsets<4>(geo, i, off);
    gx[off[0]] = store_as<T, A>(
        apply_unary_backward<A>(op, load_as<A>(g[off[1]]), load_as<A>(x[off[2]]), load_as<A>(y[off[3]]), A(p0), A(p1)));
  }
}

// ---------------------------------------------------------------- vectorized along the innermost dimension
// The same ops, V = 16 / sizeof(T) consecutive elements per thread (one 16-byte load per
// operand, one 16-byte store) where the launcher's vector_geom holds: every operand's
// innermost stride 1, the innermost size and every outer stride multiples of V, the pointers
// 16-byte aligned (contiguous tensors of a size divisible by V; a bias row broadcast over the
// rows of a matrix). Why: with one 4-byte element per thread an SM has at most 2048 × 4 bytes
// of loads in flight, under half of what an H200 needs in flight (≈ 4.2 TB/s × ~0.6 µs / 132
// SMs ≈ 19 KB) to reach its bandwidth: unary_kernel (gelu, 16 Mi f32) measured 36 % of the
// device copy on an H200 (docs/results/2026-12-04b-nvidia-h200.md). Each thread's elements are
// the scalar kernel's, in the same order, by the same apply_*: the same bits.
// Threads: grid-stride over the n / V vectors; vector j covers elements j·V … j·V + V − 1.
template <class T, int V>
__global__ void unary_vec_kernel(UnaryOp op, const T* __restrict__ x, T* __restrict__ out, int64_t nv, Geom g, double p0,
                                 double p1) {
  using A = acc_t<T>;
  grid_stride(nv, [&](int64_t j) {
    int64_t off[2];
    geom_offsets<2>(g, j * V, off);
    const vec_t<T, V> xv = load_vec<V>(x + off[1]);
    vec_t<T, V> o;
ADNN_UNROLL
    for (int e = 0; e < V; ++e) o.v[e] = store_as<T, A>(apply_unary<A>(op, load_as<A>(xv.v[e]), A(p0), A(p1)));
    store_vec<V>(out + off[0], o);
  });
}

template <class T, int V>
__global__ void unary_backward_vec_kernel(UnaryOp op, const T* __restrict__ g, const T* __restrict__ x,
                                          const T* __restrict__ y, T* __restrict__ gx, int64_t nv, Geom geo, double p0,
                                          double p1) {
  using A = acc_t<T>;
  grid_stride(nv, [&](int64_t j) {
    int64_t off[4];
    geom_offsets<4>(geo, j * V, off);
    const vec_t<T, V> gv = load_vec<V>(g + off[1]), xv = load_vec<V>(x + off[2]), yv = load_vec<V>(y + off[3]);
    vec_t<T, V> o;
ADNN_UNROLL
    for (int e = 0; e < V; ++e)
      o.v[e] = store_as<T, A>(apply_unary_backward<A>(op, load_as<A>(gv.v[e]), load_as<A>(xv.v[e]),
                                                      load_as<A>(yv.v[e]), A(p0), A(p1)));
    store_vec<V>(gx + off[0], o);
  });
}

template <class T, int V>
__global__ void binary_vec_kernel(BinaryOp op, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                                  int64_t nv, Geom g) {
  using A = acc_t<T>;
  grid_stride(nv, [&](int64_t j) {
    int64_t off[3];
    geom_offsets<3>(g, j * V, off);
    const vec_t<T, V> av = load_vec<V>(a + off[1]), bv = load_vec<V>(b + off[2]);
    vec_t<T, V> o;
ADNN_UNROLL
    for (int e = 0; e < V; ++e) o.v[e] = store_as<T, A>(apply_binary<A>(op, load_as<A>(av.v[e]), load_as<A>(bv.v[e])));
    store_vec<V>(out + off[0], o);
  });
}

// Whether g (coalesced) and the operands' pointers allow the V-wide kernels above: the
// innermost dimension unit-stride for every used operand and a multiple of V long, every
// outer stride a multiple of V (0, a broadcast, included), every pointer V·elem-aligned.
inline bool vector_geom(const Geom& g, int operands, int V, size_t elem, std::initializer_list<const void*> ptrs) {
  if (V <= 1 || g.ndim < 1 || g.size[g.ndim - 1] % V != 0) return false;
  for (int k = 0; k < operands; ++k) {
    if (g.stride[k][g.ndim - 1] != 1) return false;
    for (int d = 0; d < g.ndim - 1; ++d)
      if (g.stride[k][d] % V != 0) return false;
  }
  for (const void* p : ptrs)
    if (reinterpret_cast<uintptr_t>(p) % (uintptr_t(V) * elem) != 0) return false;
  return true;
}

// ---------------------------------------------------------------- binary, where
// out (contiguous) = a op b; operands 0: out, 1: a, 2: b. Out is bool for comparisons.
template <class T, class Out>
__global__ void binary_kernel(BinaryOp op, const T* __restrict__ a, const T* __restrict__ b, Out* __restrict__ out,
                              int64_t n, Geom g) {
  using A = acc_t<T>;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    geom_offsets<3>(g, i, off);
    const A x = load_as<A>(a[off[1]]), y = load_as<A>(b[off[2]]);
    if constexpr (std::is_same_v<Out, bool>) out[off[0]] = apply_compare<A>(op, x, y);
    else out[off[0]] = store_as<Out, A>(apply_binary<A>(op, x, y));
  }
}

// out = cond ? a : b; operands 0: out, 1: cond, 2: a, 3: b
template <class T>
__global__ void where_kernel(const bool* __restrict__ cond, const T* __restrict__ a, const T* __restrict__ b,
                             T* __restrict__ out, int64_t n, Geom g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[4];
    geom_offsets<4>(g, i, off);
    out[off[0]] = cond[off[1]] ? a[off[2]] : b[off[3]];
  }
}

}  // namespace adnn::kernels
