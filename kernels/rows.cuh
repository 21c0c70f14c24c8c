#pragma once
// Rows held in registers: the geometry and helpers of the row kernels that read each row of a
// contiguous (rows, D) matrix from memory once (softmax, layer norm: kernels/softmax.cuh,
// kernels/norm.cuh), instead of once per reduction pass.
//
// Layout: a block is (tx, ty) threads; block row threadIdx.y owns matrix row
//   r = (blockIdx.x + blockIdx.y·gridDim.x)·ty + threadIdx.y, and its tx threads hold the row as
//   vectors of V elements: thread x holds vectors j = x + i·tx (i < N), elements [j·V, j·V + V).
//   Lanes of a warp read consecutive vectors, so a warp access is 32·V·sizeof(T) consecutive
//   bytes (16 per lane with V·sizeof(T) = 16: LDG.128 / STG.128).
// Geometry (row_geom): V = the widest vector every operand's pointer and D allow (vector_width),
//   at most 16 bytes of the row's storage type; N ≤ min(4, 16 / V) vectors a thread (at most 16
//   values of each cached operand in registers); tx = the fewest multiples of 32 threads with
//   tx·N·V ≥ D (one warp for D ≤ 32·N·V, up to 512 threads); ty = 256 / tx rows a block when
//   tx < 256 (eight rows of one warp each for short rows: no shared memory, no barrier in the
//   reductions), else 1. V is vmax or 1, nothing between (the instantiated widths). A row longer
//   than 512·N·V (8,192 values vectorised, 2,048 scalar) does not fit: the caller uses its
//   strided kernel.
// Rows past the end of the matrix (the last block's) load nothing and store nothing but take
//   part in the block's reductions, whose barriers every thread of the block must reach; a block
//   wholly past the end (grid.y folding rounds the grid up) returns at once (row_block_past_end).
#include <algorithm>
#include <initializer_list>
#include <utility>

#include "reduce.cuh"
#include "vector.cuh"

namespace adnn::kernels {

inline constexpr int kRowMaxValues = 16;  // values of one cached operand per thread (N·V)
// Threads a row at most: 512 leaves 128 registers a thread (65,536 a block on sm_80–sm_90), so
// every instantiation launches whatever its register count (ptxas: 20–71); a 1,024-thread block
// would refuse to launch above 64.
inline constexpr int kRowMaxThreads = 512;

struct RowGeom {
  bool fits = false;  // false: D = 0, or the row does not fit the registers of 512 threads
  int v = 1, n = 1;   // vector width, vectors a thread
  unsigned tx = 32, ty = 1;
  int64_t blocks = 0;
};

// ptrs: (pointer, element size) of every operand read or written along the row (null ones are
// skipped); vmax: 16 / sizeof(the row's storage type).
inline RowGeom row_geom(int64_t rows, int64_t D, int vmax, std::initializer_list<std::pair<const void*, size_t>> ptrs) {
  RowGeom g;
  if (D <= 0 || rows <= 0) return g;
  // vmax or 1: the widths with_row_geom instantiates (a width between, e.g. 2 floats for D = 50,
  // would launch the scalar kernel on a geometry sized for pairs)
  const int v = vector_width_of(vmax, D, ptrs) == vmax ? vmax : 1;
  const int nmax = std::min(4, kRowMaxValues / v);
  const int64_t nv = D / v;
  const int64_t tx = (nv + int64_t(nmax) * 32 - 1) / (int64_t(nmax) * 32) * 32;
  if (tx > kRowMaxThreads) return g;
  const int64_t need = (nv + tx - 1) / tx;  // vectors a thread, ≤ nmax
  g.fits = true;
  g.v = v;
  g.n = need <= 1 ? 1 : need <= 2 ? 2 : 4;
  g.tx = unsigned(tx);
  g.ty = tx < 256 ? unsigned(256 / tx) : 1u;
  g.blocks = (rows + g.ty - 1) / g.ty;
  return g;
}

inline dim3 row_blocks(const RowGeom& g) { return row_grid(g.blocks); }

// Calls f(integral_constant<V>, integral_constant<N>) for g's vector width (vmax or 1) and
// vectors per thread (1, 2 or 4; N·V ≤ 16): the instantiations a row kernel needs.
template <int vmax, class F>
inline void with_row_geom(const RowGeom& g, F&& f) {
  auto by_n = [&](auto vc) {
    constexpr int V = decltype(vc)::value;
    if (g.n == 1) return f(vc, std::integral_constant<int, 1>{});
    if constexpr (2 * V <= kRowMaxValues)
      if (g.n == 2) return f(vc, std::integral_constant<int, 2>{});
    if constexpr (4 * V <= kRowMaxValues)
      if (g.n == 4) return f(vc, std::integral_constant<int, 4>{});
    ADNN_CHECK(false, "row kernels: no instantiation for ", g.n, " vectors of ", V, " a thread");
  };
  ADNN_CHECK(g.fits && (g.v == vmax || g.v == 1), "row kernels: vector width ", g.v, " is neither ", vmax, " nor 1");
  with_full_width_or_scalar<vmax>(g.v, by_n);
}

// The matrix row of this block row, or -1 past the end.
__device__ __forceinline__ int64_t cached_row(int64_t rows) {
  const int64_t r = (int64_t(blockIdx.x) + int64_t(blockIdx.y) * gridDim.x) * blockDim.y + threadIdx.y;
  return r < rows ? r : -1;
}

// Loads this thread's N vectors of row p (elements beyond D, or a row past the end: `fill`)
// into out[i·V + e], widened to A.
template <int V, int N, class A, class T>
__device__ __forceinline__ void load_row(const T* __restrict__ p, int64_t D, bool valid, A fill, A (&out)[N * V]) {
  const int64_t nv = D / V;
ADNN_UNROLL
  for (int i = 0; i < N; ++i) {
    const int64_t j = threadIdx.x + int64_t(i) * blockDim.x;
    if (valid && j < nv) {
      const vec_t<T, V> t = load_vec<V>(p + j * V);
ADNN_UNROLL
      for (int e = 0; e < V; ++e) out[i * V + e] = load_as<A>(t.v[e]);
    } else {
ADNN_UNROLL
      for (int e = 0; e < V; ++e) out[i * V + e] = fill;
    }
  }
}

// v = v·w[k] + b[k] for every value this thread holds (w or b null: 1 or 0), w and b read as
// vectors of V (row_geom checked their alignment).
template <int V, int N, class A, class P>
__device__ __forceinline__ void apply_row_params(const P* __restrict__ w, const P* __restrict__ b, int64_t D,
                                                 bool valid, A (&v)[N * V]) {
  if (!valid || (!w && !b)) return;
  const int64_t nv = D / V;
ADNN_UNROLL
  for (int i = 0; i < N; ++i) {
    const int64_t j = threadIdx.x + int64_t(i) * blockDim.x;
    if (j < nv) {
      if (w) {
        const vec_t<P, V> t = load_vec<V>(w + j * V);
ADNN_UNROLL
        for (int e = 0; e < V; ++e) v[i * V + e] = v[i * V + e] * A(t.v[e]);
      }
      if (b) {
        const vec_t<P, V> t = load_vec<V>(b + j * V);
ADNN_UNROLL
        for (int e = 0; e < V; ++e) v[i * V + e] = v[i * V + e] + A(t.v[e]);
      }
    }
  }
}

// Stores f(slot s) for every value this thread holds (slot s = i·V + e is element
// (threadIdx.x + i·tx)·V + e of the row).
template <int V, int N, class T, class F>
__device__ __forceinline__ void store_row(T* __restrict__ p, int64_t D, bool valid, F&& f) {
  if (!valid) return;
  const int64_t nv = D / V;
ADNN_UNROLL
  for (int i = 0; i < N; ++i) {
    const int64_t j = threadIdx.x + int64_t(i) * blockDim.x;
    if (j < nv) {
      vec_t<T, V> t;
ADNN_UNROLL
      for (int e = 0; e < V; ++e) t.v[e] = store_as<T>(f(i * V + e));
      store_vec<V>(p + j * V, t);
    }
  }
}

}  // namespace adnn::kernels
