#pragma once
// Row reductions.
//
// sum_rows: out[r] = sum_k x[r, k] for a contiguous (rows, R) matrix, accumulated in f32
//   (f64 for double inputs).
// Layout: row-major, each row contiguous.
// Threads: one block per row (grid.x = rows, grid.y folds rows beyond 65535... rows <= 2^31);
//   blockDim.x threads stride over the row, reduce in registers, then a warp-shuffle tree
//   (5 steps), then one value per warp through shared memory and a final warp reduce.
// Cost: reads rows·R·sizeof(T) bytes, writes rows·sizeof(Acc); rows·R adds.
//
// sum_all_atomic: one float accumulated with atomicAdd from a grid-stride loop (used to
//   test atomics; deterministic only up to float addition order).
#include "common.cuh"

namespace adnn::kernels {

template <class Acc>
__device__ __forceinline__ Acc warp_sum(Acc v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum of `v` over the block; every thread gets the result. blockDim.x multiple of 32, <= 1024.
template <class Acc>
__device__ __forceinline__ Acc block_sum(Acc v, Acc* warp_sums /* shared, >= 32 */) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  Acc t = lane < nwarps ? warp_sums[lane] : Acc(0);
  t = warp_sum(t);
  __syncthreads();  // warp_sums may be reused by the caller right away
  return t;
}

template <class Acc>
__device__ __forceinline__ Acc warp_max(Acc v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

template <class Acc>
__device__ __forceinline__ Acc block_max(Acc v, Acc* warp_vals) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_max(v);
  if (lane == 0) warp_vals[warp] = v;
  __syncthreads();
  Acc t = lane < nwarps ? warp_vals[lane] : Acc(-INFINITY);
  t = warp_max(t);
  __syncthreads();
  return t;
}

template <class T, class Acc>
__global__ void sum_rows_kernel(const T* __restrict__ x, Acc* __restrict__ out, int64_t rows, int64_t R) {
  __shared__ Acc warp_sums[32];
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const T* row = x + r * R;
  Acc acc = 0;
  for (int64_t k = threadIdx.x; k < R; k += blockDim.x) acc += Acc(to_float(__ldg(row + k)));
  acc = block_sum(acc, warp_sums);
  if (threadIdx.x == 0) out[r] = acc;
}

template <class T, class Acc>
void launch_sum_rows(const T* x, Acc* out, int64_t rows, int64_t R, Stream stream) {
  const unsigned threads = R >= 1024 ? 256 : R >= 128 ? 128 : 32;
  const dim3 grid(unsigned(std::min<int64_t>(rows, 65535)), ceil_div(rows, 65535));
  if (rows == 0) return;
  ADNN_LAUNCH((sum_rows_kernel<T, Acc>), grid, dim3(threads), 0, stream, x, out, rows, R);
}

template <class T>
__global__ void sum_all_atomic_kernel(const T* __restrict__ x, float* __restrict__ out, int64_t n) {
  float acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc += to_float(x[i]);
  acc = warp_sum(acc);
  if (threadIdx.x % 32 == 0) atomicAdd(out, acc);
}

inline void launch_sum_all_atomic(const float* x, float* out, int64_t n, Stream stream) {
  ADNN_LAUNCH(sum_all_atomic_kernel<float>, dim3(std::min<unsigned>(ceil_div(n, 256), 1024)), dim3(256), 0, stream, x, out,
              n);
}

// ---- CPU twins
template <class T, class Acc>
void sum_rows_reference(const T* x, Acc* out, int64_t rows, int64_t R) {
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t k = 0; k < R; ++k) s += double(to_float(x[r * R + k]));
    out[r] = Acc(s);
  }
}

}  // namespace adnn::kernels
