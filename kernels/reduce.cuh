#pragma once
// Row reductions and the block/warp reduction helpers the other kernels share.
//
// reduce_rows: out[r] = reduce_k x[r, k] (sum, max or min) over a contiguous (rows, R)
//   matrix (the reduced dims last); max/min propagate NaN.
// reduce_cols: out[o, i] = reduce_r x[o, r, i] over a contiguous (outer, R, inner) tensor —
//   the reduced dims one block of consecutive dims at the front or in the middle (a bias
//   gradient summed over the batch, a mean over H and W of NHWC) — read in place, with no
//   transposed copy into rows.
// Storage: x in X (f32, f64, or f16/bf16 read natively), out in Y (X, or f32 for a 16-bit X:
//   a sum in f32), accumulation in A = acc_t<X> (f32; f64 for f64).
// argmax_rows: index of the first maximum of each row (int64); f16/bf16 rows read natively.
//   One block per row as reduce_rows, and split the same way (reduce_rows_slices) when few
//   rows are long: the slices' (value, index) partials, then a second launch over them
//   (before, the argmax of a whole tensor was one block of 256 threads).
// Threads: reduce_rows: block (tx, ty): one warp a row and eight rows a block for rows of at
//   most 256 loads, else 256 threads a row (grid.y folds blocks beyond 65535); the threads
//   stride over the row — 16 bytes a load (V = 16 / sizeof(X) values) when the rows are
//   16-byte aligned and R a multiple of V, two loads in flight a lane into two accumulators —
//   reduce in registers, then a warp-shuffle tree (5 steps), and with several warps a row one
//   value per warp through shared memory and a final warp reduce. Before (2026-12-04, H200):
//   one block of 32–256 threads a row, 4-byte loads: 42 % of the device copy at 4096 × 1024,
//   52 % at 64 × 1 Mi; the vector loads are not yet timed on a GPU. Few long rows (a
//   full reduction is one row) are split into S slices, grid (rows, 1, S) (reduce_rows_slices:
//   fewer than 1024 rows of more than 16,384 values; slices of at most about 8,192 values
//   unless the 2,048-block cap makes them longer), whose (rows, S) partials a second
//   reduce_rows launch combines (a fixed tree for the shape: deterministic);
//   before, one block of 256 threads read the whole tensor of a full reduction.
//   reduce_cols: block (32, 8) — 32 consecutive i, so a warp reads 32 consecutive values of
//   one row (coalesced, whatever R), × 8 row lanes, each striding over the rows of its slice
//   by 8; the 8 lane results meet in shared memory in lane order. Grid (⌈inner/32⌉, outer
//   (launched in chunks of 65,535), S): S slices of R (reduce_cols_slices: more than one only
//   when the (i, o) blocks are too few to fill an H200 and R is long), whose partials
//   (outer, S, inner) in A go to a workspace that reduce_cols_finish adds in slice order:
//   deterministic, no atomics.
// Cost: both read the input once (rows·R or outer·R·inner values) and write the outputs;
//   R−1 ops per output; with S > 1 both write and read rows·S or outer·S·inner partials.
//   reduce_rows on a permuted copy (what reduce_cols replaces) also wrote and read the copy.
// Measured (docs/results/2026-12-01-kernel-report-efficientnet_b5.md, emulated B5 training step
//   at batch 1): reduce_cols 80 launches, 99.8 % coalesced, 0.364 MB fetched = compulsory
//   (reduce_rows on the transposed copies: 13.4 %, 2.712 MB); shared 1.00 wavefronts per request,
//   no conflicts. sm_90 (scripts/kernel-report.sh): reduce_cols 26 registers (f32; 30 f64,
//   32 f16/bf16), 100 % theoretical occupancy at 256 threads; reduce_rows 16 registers.
//
// sum_all_atomic: one float accumulated with atomicAdd from a grid-stride loop.
#include "common.cuh"
#include "common/reduce.hpp"
#include "vector.cuh"

namespace adnn::kernels {


template <class A>
__device__ __forceinline__ A combine(ReduceOp op, A a, A b) {
  return common::reduce_combine(op, a, b);
}

template <class A>
__device__ __forceinline__ A warp_reduce(ReduceOp op, A v) {
  for (int off = 16; off > 0; off >>= 1) v = combine(op, v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Reduction of `v` over the block; every thread gets the result. blockDim.x is a multiple
// of 32 (<= 1024). `scratch` is shared memory for 32 values; it may be reused as soon as
// this returns (hence the trailing barrier).
template <class A>
__device__ __forceinline__ A block_reduce(ReduceOp op, A v, A identity, ADNN_SHARED_PTR(A) scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_reduce(op, v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A t = lane < nwarps ? scratch[lane] : identity;
  t = warp_reduce(op, t);
  __syncthreads();
  return t;
}
template <class A>
__device__ __forceinline__ A block_sum(A v, ADNN_SHARED_PTR(A) scratch) {
  return block_reduce<A>(ReduceOp::sum, v, A(0), scratch);
}
template <class A>
__device__ __forceinline__ A block_max(A v, ADNN_SHARED_PTR(A) scratch) {
  return block_reduce<A>(ReduceOp::max, v, A(-INFINITY), scratch);
}

// The reduction of v over the tx = blockDim.x threads of this block row (threadIdx.y), for
// blocks of ty rows (scratch: this row's own 32 values). One warp a row reduces by shuffles
// alone: no shared memory, no barrier; blockDim.x is uniform over the block, so is the branch.
template <class A>
__device__ __forceinline__ A row_reduce(ReduceOp op, A v, A identity, ADNN_SHARED_PTR(A) scratch) {
  if (blockDim.x == 32) return warp_reduce(op, v);
  return block_reduce<A>(op, v, identity, scratch);
}

// True for every thread of a block of ty = blockDim.y rows whose first row is past the end
// (grid.y folding rounds the grid up): uniform over the block, so it may return at once.
__device__ __forceinline__ bool row_block_past_end(int64_t rows) {
  return (int64_t(blockIdx.x) + int64_t(blockIdx.y) * gridDim.x) * blockDim.y >= rows;
}

using common::reduce_identity;

// A read-only load: __ldg for the types it takes, a plain load for f16/bf16.
template <class X>
__device__ __forceinline__ X load_ro(const X* p) {
  if constexpr (std::is_same_v<X, f16> || std::is_same_v<X, bf16>)
    return *p;
  else
    return __ldg(p);
}

// per: the elements of a row each blockIdx.z reduces (a multiple of V); part: with S =
// gridDim.z > 1 the (rows, S) partials, else null (the result goes to out). Block (tx, ty): ty
// rows a block, each reduced by its tx threads (one warp for rows of up to 1,024 vectors); V > 1:
// every row and slice starts on a V-element boundary of an aligned x (the launcher checks), and a
// thread loads V consecutive values at a time.
template <class X, class Y, class A, int V = 1>
__global__ void reduce_rows_kernel(ReduceOp op, const X* __restrict__ x, Y* __restrict__ out, A* __restrict__ part,
                                   int64_t rows, int64_t R, int64_t per) {
  ADNN_SHARED(A, scratch, [8 * 32]);
  if (row_block_past_end(rows)) return;
  const int64_t r = (int64_t(blockIdx.x) + int64_t(blockIdx.y) * gridDim.x) * blockDim.y + threadIdx.y,
                z = blockIdx.z;
  const int64_t k1 = z * per + per < R ? z * per + per : R;
  A acc = reduce_identity<A>(op);
  if (r < rows) {  // rows past the end still reach row_reduce's barriers
    const X* row = x + r * R;
    if constexpr (V == 1) {
      for (int64_t k = z * per + threadIdx.x; k < k1; k += blockDim.x)
        acc = combine(op, acc, load_as<A>(load_ro(row + k)));
    } else {
      // two loads in flight a lane (two accumulators, combined in a fixed order)
      const int64_t je = k1 / V, step = blockDim.x;
      int64_t j = z * per / V + threadIdx.x;
      A acc2 = reduce_identity<A>(op);
      for (; j + step < je; j += 2 * step) {
        const vec_t<X, V> t0 = load_vec<V>(row + j * V), t1 = load_vec<V>(row + (j + step) * V);
        ADNN_UNROLL
        for (int e = 0; e < V; ++e) {
          acc = combine(op, acc, load_as<A>(t0.v[e]));
          acc2 = combine(op, acc2, load_as<A>(t1.v[e]));
        }
      }
      if (j < je) {
        const vec_t<X, V> t = load_vec<V>(row + j * V);
        ADNN_UNROLL
        for (int e = 0; e < V; ++e) acc = combine(op, acc, load_as<A>(t.v[e]));
      }
      acc = combine(op, acc, acc2);
    }
  }
  acc = row_reduce<A>(op, acc, reduce_identity<A>(op), &scratch[threadIdx.y * 32]);
  if (r < rows && threadIdx.x == 0) {
    if (part)
      part[r * int64_t(gridDim.z) + z] = acc;
    else
      out[r] = store_as<Y>(acc);
  }
}

inline constexpr int kColLanes = 8;  // row lanes of a reduce_cols block (blockDim.y)

// o0: the first outer index of this launch (grid.y covers at most 65,535); rows_per_slice:
// the rows of R each blockIdx.z reduces; part: (outer, S, inner) partials when S > 1, else
// null and the result goes to out (outer, inner).
template <class X, class Y, class A>
__global__ void reduce_cols_kernel(ReduceOp op, const X* __restrict__ x, Y* __restrict__ out, A* __restrict__ part,
                                   int64_t o0, int64_t R, int64_t inner, int64_t rows_per_slice) {
  ADNN_SHARED(A, lanes, [kColLanes][32]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i = int64_t(blockIdx.x) * 32 + tx, o = o0 + blockIdx.y, s = blockIdx.z;
  const int64_t r0 = s * rows_per_slice, r1 = r0 + rows_per_slice < R ? r0 + rows_per_slice : R;
  A acc = reduce_identity<A>(op);
  if (i < inner) {
    const X* col = x + o * R * inner + i;
    for (int64_t r = r0 + ty; r < r1; r += kColLanes) acc = combine(op, acc, load_as<A>(load_ro(col + r * inner)));
  }
  lanes[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && i < inner) {
    for (int k = 1; k < kColLanes; ++k) acc = combine<A>(op, acc, lanes[k][tx]);
    if (part)
      part[(o * int64_t(gridDim.z) + s) * inner + i] = acc;
    else
      out[o * inner + i] = store_as<Y>(acc);
  }
}

// out[o, i] = the S partials of (o, i) combined in slice order; one thread per output.
template <class Y, class A>
__global__ void reduce_cols_finish_kernel(ReduceOp op, const A* __restrict__ part, Y* __restrict__ out, int64_t outer,
                                          int64_t S, int64_t inner) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < outer * inner;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = e / inner, i = e % inner;
    A acc = reduce_identity<A>(op);
    for (int64_t s = 0; s < S; ++s) acc = combine(op, acc, part[(o * S + s) * inner + i]);
    out[e] = store_as<Y>(acc);
  }
}

// Slices of R for reduce_cols: 1 unless the ⌈inner/32⌉·outer blocks are fewer than 1024 (about
// what an H200's 132 SMs hold resident at 256 threads) and R holds more than 256 rows; then
// enough slices of at least 128 rows for about 2048 blocks (at most 1024 slices: grid.z).
// A function of the shape only, so the summation order is too.
inline int64_t reduce_cols_slices(int64_t outer, int64_t R, int64_t inner) {
  const int64_t blocks = (inner + 31) / 32 * outer;
  if (blocks == 0 || blocks >= 1024 || R <= 256) return 1;
  const int64_t by_rows = (R + 127) / 128, by_blocks = (2048 + blocks - 1) / blocks;
  return std::max<int64_t>(1, std::min<int64_t>(std::min(by_rows, by_blocks), 1024));
}

// Whether candidate (av, ai) beats (bv, bi) for argmax: larger, or a NaN over a number, or a
// tie (equal, or both NaN) at a smaller index — so the first maximum wins, as torch.argmax.
template <class V>
__device__ __forceinline__ bool argmax_beats(V av, int64_t ai, V bv, int64_t bi) {
  return av > bv || (av != av && bv == bv) || ((av == bv || (av != av && bv != bv)) && ai < bi);
}

// One block per (row, slice): the first maximum of x[r, k0 .. k1) with k1 = min(R, k0 + per),
// k0 = slice · per (slice = blockIdx.z). A candidate's index is k, or xi[r·R + k] when xi is
// given (the second pass over the slices' partials). With part_v null the result goes to
// out[r]; else the slice's (value, index) to part_v/part_i[r·S + slice], S = gridDim.z.
// (f16/bf16 values are compared widened to f32: exact, every 16-bit value is an f32 one)
template <class T>
__global__ void argmax_rows_kernel(const T* __restrict__ x, const int64_t* __restrict__ xi, int64_t* __restrict__ out,
                                   acc_t<T>* __restrict__ part_v, int64_t* __restrict__ part_i, int64_t rows, int64_t R,
                                   int64_t per) {
  using V = acc_t<T>;
  ADNN_SHARED(V, best_v, [32]);
  ADNN_SHARED(int64_t, best_i, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const int64_t k0 = int64_t(blockIdx.z) * per, k1 = k0 + per < R ? k0 + per : R;
  const T* row = x + r * R;
  const int64_t* row_i = xi ? xi + r * R : nullptr;
  V v = V(row[k0]);
  int64_t idx = row_i ? row_i[k0] : k0;
  for (int64_t k = k0 + threadIdx.x; k < k1; k += blockDim.x) {
    const V c = V(row[k]);
    const int64_t ci = row_i ? row_i[k] : k;
    if (argmax_beats(c, ci, v, idx)) {
      v = c;
      idx = ci;
    }
  }
  // warp then block, by the same rule
  for (int off = 16; off > 0; off >>= 1) {
    const V ov = __shfl_xor_sync(0xffffffffu, v, off);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, idx, off);
    if (argmax_beats(ov, oi, v, idx)) {
      v = ov;
      idx = oi;
    }
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  if (lane == 0) {
    best_v[warp] = v;
    best_i[warp] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < nwarps; ++w)
      if (argmax_beats(V(best_v[w]), int64_t(best_i[w]), v, idx)) {
        v = best_v[w];
        idx = best_i[w];
      }
    if (part_v) {
      part_v[r * gridDim.z + blockIdx.z] = v;
      part_i[r * gridDim.z + blockIdx.z] = idx;
    } else {
      out[r] = idx;
    }
  }
}

inline unsigned row_threads(int64_t R) { return R >= 1024 ? 256 : R >= 128 ? 128 : 32; }
inline dim3 row_grid(int64_t rows) { return dim3(unsigned(std::min<int64_t>(rows, 65535)), ceil_div(rows, 65535)); }

// Slices of each row for reduce_rows: 1 unless there are fewer than 1024 rows (blocks) and a
// row holds more than 16,384 values (a full reduction is one row: one block of 256 threads
// would read all of it, a few percent of an H200's bandwidth); then about min(⌈R/8192⌉,
// ⌈2048/rows⌉, 1024) slices: at most about 8,192 values each (32 per thread), longer only where
// the cap of about 2048 blocks binds. The values per slice are a multiple of 256 (the block), so
// a slice starts where a row's warps read whole 32-byte sectors (7,693 values a slice for
// R = 100,000 gave 82 % coalescing in the emulator's trace; now 7,936). A function of the shape
// only, so the summation order is too.
inline int64_t reduce_rows_per_slice(int64_t rows, int64_t R) {
  if (rows == 0 || rows >= 1024 || R <= 16384) return R;
  const int64_t by_values = (R + 8191) / 8192, by_blocks = (2048 + rows - 1) / rows;
  const int64_t S = std::max<int64_t>(1, std::min<int64_t>(std::min(by_values, by_blocks), 1024));
  return ((R + S - 1) / S + 255) / 256 * 256;
}
inline int64_t reduce_rows_slices(int64_t rows, int64_t R) {
  const int64_t per = reduce_rows_per_slice(rows, R);
  return per > 0 ? (R + per - 1) / per : 1;
}

// part: rows·S values of acc_t<X> when S = reduce_rows_slices(rows, R) > 1: the slices'
// partials, which a second reduce_rows launch over the (rows, S) matrix combines in order.
template <class X, class Y>
void launch_reduce_rows(ReduceOp op, const X* x, Y* out, acc_t<X>* part, int64_t rows, int64_t R, Stream stream) {
  using A = acc_t<X>;
  if (rows == 0) return;
  const int64_t S = reduce_rows_slices(rows, R);
  constexpr int vmax = sizeof(X) >= 16 ? 1 : int(16 / sizeof(X));
  const bool vec = vmax > 1 && vector_width<X>(R, {x}) == vmax;  // slices are multiples of 256 values
  if (S == 1) {
    // one warp a row (eight rows a block) for rows of up to 256 loads when there are enough rows
    // to give an H200's 132 SMs a few blocks each; else a block a row, as wide as the row needs
    const bool warp_rows = R / (vec ? vmax : 1) <= 256 && rows >= 8 * 132 * 4;
    const unsigned tx = warp_rows ? 32u : row_threads(R / (vec ? vmax : 1)), ty = warp_rows ? 8u : 1u;
    const dim3 grid = row_grid(ceil_div(rows, ty));
    with_full_width_or_scalar<vmax>(vec ? vmax : 1, [&](auto vc) {
      constexpr int V = decltype(vc)::value;
      ADNN_LAUNCH((reduce_rows_kernel<X, Y, A, V>), grid, dim3(tx, ty), 0, stream, int(op), x, out,
                  static_cast<A*>(nullptr), rows, R, R);
    });
    return;
  }
  ADNN_CHECK(part, "reduce_rows: ", rows, " rows of ", R, " values are reduced in ", S,
             " slices, and no workspace for their partials was given");
  const dim3 sliced(unsigned(rows), 1, unsigned(S));
  with_full_width_or_scalar<vmax>(vec ? vmax : 1, [&](auto vc) {
    constexpr int V = decltype(vc)::value;
    ADNN_LAUNCH((reduce_rows_kernel<X, Y, A, V>), sliced, dim3(256), 0, stream, int(op), x, out, part, rows, R,
                reduce_rows_per_slice(rows, R));
  });
  ADNN_LAUNCH((reduce_rows_kernel<A, Y, A>), row_grid(rows), dim3(row_threads(S)), 0, stream, int(op),
              static_cast<const A*>(part), out, static_cast<A*>(nullptr), rows, S, S);
}

// part: outer·S·inner values of acc_t<X> when S = reduce_cols_slices(outer, R, inner) > 1.
template <class X, class Y>
void launch_reduce_cols(ReduceOp op, const X* x, Y* out, acc_t<X>* part, int64_t outer, int64_t R, int64_t inner,
                        Stream stream) {
  using A = acc_t<X>;
  if (outer * inner == 0) return;
  const int64_t S = reduce_cols_slices(outer, R, inner), per = S > 1 ? (R + S - 1) / S : R;
  for (int64_t o0 = 0; o0 < outer; o0 += 65535)
    ADNN_LAUNCH((reduce_cols_kernel<X, Y, A>),
                dim3(ceil_div(inner, 32), unsigned(std::min<int64_t>(outer - o0, 65535)), unsigned(S)),
                dim3(32, kColLanes), 0, stream, int(op), x, out, S > 1 ? part : static_cast<A*>(nullptr), o0, R, inner,
                per);
  if (S > 1)
    ADNN_LAUNCH((reduce_cols_finish_kernel<Y, A>), grid_for(outer * inner), dim3(256), 0, stream, int(op),
                static_cast<const A*>(part), out, outer, S, inner);
}

// part_v, part_i: rows·S values each when S = reduce_rows_slices(rows, R) > 1 (the slices of
// reduce_rows: few long rows, such as the argmax of a whole tensor, are split, and a second
// launch takes the first maximum of each row's S partials — their indices are global, so the
// tie rule carries over).
template <class T>
void launch_argmax_rows(const T* x, int64_t* out, acc_t<T>* part_v, int64_t* part_i, int64_t rows, int64_t R,
                        Stream stream) {
  using V = acc_t<T>;
  if (rows == 0) return;
  const int64_t S = reduce_rows_slices(rows, R);
  if (S == 1) {
    ADNN_LAUNCH(argmax_rows_kernel<T>, row_grid(rows), dim3(row_threads(R)), 0, stream, x,
                static_cast<const int64_t*>(nullptr), out, static_cast<V*>(nullptr), static_cast<int64_t*>(nullptr),
                rows, R, R);
    return;
  }
  ADNN_CHECK(part_v && part_i, "argmax_rows: ", rows, " rows of ", R, " values are split in ", S,
             " slices, and no workspace for their partials was given");
  ADNN_LAUNCH(argmax_rows_kernel<T>, dim3(unsigned(rows), 1, unsigned(S)), dim3(256), 0, stream, x,
              static_cast<const int64_t*>(nullptr), out, part_v, part_i, rows, R, reduce_rows_per_slice(rows, R));
  ADNN_LAUNCH(argmax_rows_kernel<V>, row_grid(rows), dim3(row_threads(S)), 0, stream, static_cast<const V*>(part_v),
              static_cast<const int64_t*>(part_i), out, static_cast<V*>(nullptr), static_cast<int64_t*>(nullptr), rows,
              S, S);
}

template <class T>
__global__ void sum_all_atomic_kernel(const T* __restrict__ x, float* __restrict__ out, int64_t n) {
  float acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc += to_float(x[i]);
  acc = warp_reduce<float>(ReduceOp::sum, acc);
  if (threadIdx.x % 32 == 0) atomicAdd(out, acc);
}

inline void launch_sum_all_atomic(const float* x, float* out, int64_t n, Stream stream) {
  ADNN_LAUNCH(sum_all_atomic_kernel<float>, dim3(std::min<unsigned>(ceil_div(n, 256), 1024)), dim3(256), 0, stream,
              x, out, n);
}

}  // namespace adnn::kernels
