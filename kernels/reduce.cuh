#pragma once
// Row reductions and the block/warp reduction helpers the other kernels share.
//
// reduce_rows: out[r] = reduce_k x[r, k] (sum, max or min) over a contiguous (rows, R)
//   matrix; sums accumulate in f32 for f32 input, f64 for f64; max/min propagate NaN.
// argmax_rows: index of the first maximum of each row (int64).
// Layout: row-major, each row contiguous.
// Threads: one block per row (grid.y folds rows beyond 65535); the block's threads stride
//   over the row, reduce in registers, then a warp-shuffle tree (5 steps), then one value per
//   warp through shared memory and a final warp reduce.
// Cost: reads rows·R·sizeof(T) bytes once, writes rows values; R-1 ops per row.
//
// sum_all_atomic: one float accumulated with atomicAdd from a grid-stride loop.
#include "common.cuh"

namespace adnn::kernels {


template <class A>
__device__ __forceinline__ A combine(ReduceOp op, A a, A b) {
  if (op == ReduceOp::sum) return a + b;
  if (a != a) return a;  // NaN wins
  if (b != b) return b;
  return op == ReduceOp::max ? (a > b ? a : b) : (a < b ? a : b);
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

template <class A> __device__ __forceinline__ A reduce_identity(ReduceOp op) {
  return op == ReduceOp::sum ? A(0) : (op == ReduceOp::max ? A(-INFINITY) : A(INFINITY));
}

template <class T>
__global__ void reduce_rows_kernel(ReduceOp op, const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t R) {
  ADNN_SHARED(T, scratch, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const T* row = x + r * R;
  T acc = reduce_identity<T>(op);
  for (int64_t k = threadIdx.x; k < R; k += blockDim.x) acc = combine(op, acc, __ldg(row + k));
  acc = block_reduce<T>(op, acc, reduce_identity<T>(op), scratch);
  if (threadIdx.x == 0) out[r] = acc;
}

template <class T>
__global__ void argmax_rows_kernel(const T* __restrict__ x, int64_t* __restrict__ out, int64_t rows, int64_t R) {
  ADNN_SHARED(T, best_v, [32]);
  ADNN_SHARED(int64_t, best_i, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const T* row = x + r * R;
  T v = row[0];
  int64_t idx = 0;
  for (int64_t k = threadIdx.x; k < R; k += blockDim.x) {
    const T c = row[k];
    if (c > v || (c != c && v == v) || (c == v && k < idx)) {
      v = c;
      idx = k;
    }
  }
  // warp then block: keep the larger value, ties to the smaller index
  for (int off = 16; off > 0; off >>= 1) {
    const T ov = __shfl_xor_sync(0xffffffffu, v, off);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, idx, off);
    if (ov > v || (ov != ov && v == v) || ((ov == v || (ov != ov && v != v)) && oi < idx)) {
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
      if (best_v[w] > v || (best_v[w] != best_v[w] && v == v) || (best_v[w] == v && best_i[w] < idx)) {
        v = best_v[w];
        idx = best_i[w];
      }
    out[r] = idx;
  }
}

inline unsigned row_threads(int64_t R) { return R >= 1024 ? 256 : R >= 128 ? 128 : 32; }
inline dim3 row_grid(int64_t rows) { return dim3(unsigned(std::min<int64_t>(rows, 65535)), ceil_div(rows, 65535)); }

template <class T>
void launch_reduce_rows(ReduceOp op, const T* x, T* out, int64_t rows, int64_t R, Stream stream) {
  if (rows == 0) return;
  ADNN_LAUNCH(reduce_rows_kernel<T>, row_grid(rows), dim3(row_threads(R)), 0, stream, int(op), x, out, rows, R);
}
template <class T>
void launch_argmax_rows(const T* x, int64_t* out, int64_t rows, int64_t R, Stream stream) {
  if (rows == 0) return;
  ADNN_LAUNCH(argmax_rows_kernel<T>, row_grid(rows), dim3(row_threads(R)), 0, stream, x, out, rows, R);
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
