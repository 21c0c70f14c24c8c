#pragma once
// Softmax / log-softmax along one dim, forward and backward.
//
// y = exp(x - m) / s along the dim (m the max, s the sum of exp(x - m)); log form
// y = x - m - log s. A row whose entries are all -inf keeps m = 0 (as the CPU twin), so it
// gives NaN only through 0/0, like torch. Backward: gx = y (g - sum(g y)), log form
// gx = g - exp(y) sum(g).
// Layout: contiguous (outer, D, inner).
// Threads: inner == 1 (the common case, softmax over the last dim): one block per row,
//   strided passes over D with block reductions (warp shuffles + shared memory) between
//   them. inner > 1: one thread per (outer, inner) column walking D with stride inner, so
//   consecutive threads read consecutive addresses.
// Cost: forward reads the row 3 times (max, sum, write), writes it once: 4·D·sizeof(T) per
//   row; one exp per element per pass that needs it. Backward reads g and y twice, writes
//   gx once.
#include "reduce.cuh"

namespace adnn::kernels {

template <class T>
__global__ void softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t D, bool log_) {
  ADNN_SHARED(T, scratch, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const T* xr = x + r * D;
  T* yr = y + r * D;
  T m = -INFINITY;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) m = xr[k] > m ? xr[k] : m;
  m = block_max(m, scratch);
  if (m == T(-INFINITY)) m = 0;
  T s = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += math::exp(xr[k] - m);
  s = block_sum(s, scratch);
  if (log_) {
    const T ls = m + math::log(s);
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) yr[k] = xr[k] - ls;
  } else {
    const T inv = T(1) / s;
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) yr[k] = math::exp(xr[k] - m) * inv;
  }
}

template <class T>
__global__ void softmax_backward_rows_kernel(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ gx,
                                             int64_t rows, int64_t D, bool log_) {
  ADNN_SHARED(T, scratch, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const T* gr = g + r * D;
  const T* yr = y + r * D;
  T s = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += log_ ? gr[k] : gr[k] * yr[k];
  s = block_sum(s, scratch);
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x)
    gx[r * D + k] = log_ ? gr[k] - math::exp(yr[k]) * s : yr[k] * (gr[k] - s);
}

// inner > 1: one thread per (outer, inner) column
template <class T>
__global__ void softmax_cols_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t D,
                                    int64_t inner, bool log_) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= outer * inner) return;
  const int64_t base = (c / inner) * D * inner + c % inner;
  T m = -INFINITY;
  for (int64_t d = 0; d < D; ++d) m = x[base + d * inner] > m ? x[base + d * inner] : m;
  if (m == T(-INFINITY)) m = 0;
  T s = 0;
  for (int64_t d = 0; d < D; ++d) s += math::exp(x[base + d * inner] - m);
  const T ls = m + math::log(s), inv = T(1) / s;
  for (int64_t d = 0; d < D; ++d)
    y[base + d * inner] = log_ ? x[base + d * inner] - ls : math::exp(x[base + d * inner] - m) * inv;
}

template <class T>
__global__ void softmax_backward_cols_kernel(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ gx,
                                             int64_t outer, int64_t D, int64_t inner, bool log_) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= outer * inner) return;
  const int64_t base = (c / inner) * D * inner + c % inner;
  T s = 0;
  for (int64_t d = 0; d < D; ++d) s += log_ ? g[base + d * inner] : g[base + d * inner] * y[base + d * inner];
  for (int64_t d = 0; d < D; ++d) {
    const int64_t k = base + d * inner;
    gx[k] = log_ ? g[k] - math::exp(y[k]) * s : y[k] * (g[k] - s);
  }
}

template <class T>
void launch_softmax(const T* x, T* y, int64_t outer, int64_t D, int64_t inner, bool log, Stream stream) {
  if (outer * inner == 0) return;
  if (inner == 1)
    ADNN_LAUNCH(softmax_rows_kernel<T>, row_grid(outer), dim3(row_threads(D)), 0, stream, x, y, outer, D, log);
  else
    ADNN_LAUNCH(softmax_cols_kernel<T>, dim3(ceil_div(outer * inner, 128)), dim3(128), 0, stream, x, y, outer, D,
                inner, log);
}

template <class T>
void launch_softmax_backward(const T* g, const T* y, T* gx, int64_t outer, int64_t D, int64_t inner, bool log,
                             Stream stream) {
  if (outer * inner == 0) return;
  if (inner == 1)
    ADNN_LAUNCH(softmax_backward_rows_kernel<T>, row_grid(outer), dim3(row_threads(D)), 0, stream, g, y, gx, outer, D,
                log);
  else
    ADNN_LAUNCH(softmax_backward_cols_kernel<T>, dim3(ceil_div(outer * inner, 128)), dim3(128), 0, stream, g, y, gx,
                outer, D, inner, log);
}

}  // namespace adnn::kernels
