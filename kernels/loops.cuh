#pragma once
// Grid-stride loops shared by the elementwise-shaped kernels (one thread per output element,
// launched with k::grid_for): the flat index and its coordinates, innermost dimension
// fastest, so consecutive threads touch consecutive addresses (coalesced; along C for NHWC).
// Indices are int64 (tensors may exceed 2^31 elements); the divisions cost ~4 integer
// divides per element, negligible against the memory traffic of these kernels.
#include "common.cuh"

namespace adnn::kernels {

// f(i) for i in [0, total).
template <class F>
__device__ __forceinline__ void grid_stride(int64_t total, F&& f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    f(i);
}

// Over a row-major (B, H, W, C) array: f(i, b, h, w, c).
template <class F>
__device__ __forceinline__ void for_each_nhwc(int64_t B, int64_t H, int64_t W, int64_t C, F&& f) {
  grid_stride(B * H * W * C, [&](int64_t i) { f(i, i / (C * W * H), (i / (C * W)) % H, (i / C) % W, i % C); });
}

// Over a row-major (outer, n, inner) array: f(i, o, j, k).
template <class F>
__device__ __forceinline__ void for_each_3d(int64_t outer, int64_t n, int64_t inner, F&& f) {
  grid_stride(outer * n * inner, [&](int64_t i) { f(i, i / (inner * n), (i / inner) % n, i % inner); });
}

}  // namespace adnn::kernels
