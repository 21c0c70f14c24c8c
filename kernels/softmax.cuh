#pragma once
// Softmax / log-softmax over the last dim.
//
// y[r, k] = exp(x[r, k] - m_r) / s_r, with m_r = max_k x[r, k], s_r = sum_k exp(x[r, k] - m_r);
// log form: y = x - m_r - log s_r. A row whose entries are all -inf gives NaN, as in torch.
// Layout: contiguous (rows, D).
// Threads: one block per row; three strided passes (max, sum of exp, write) with block
//   reductions (warp shuffles + shared memory) between them.
// Cost: reads 3·rows·D·sizeof(T) (rows are re-read from L2 at the sizes used), writes
//   rows·D·sizeof(T); about 3 flops and one exp per element.
#include "reduce.cuh"

namespace adnn::kernels {

template <class T, bool Log>
__global__ void softmax_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t D) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const T* xr = x + r * D;
  T* yr = y + r * D;
  float m = -INFINITY;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) m = fmaxf(m, to_float(xr[k]));
  m = block_max(m, scratch);
  float s = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += __expf(to_float(xr[k]) - m);
  s = block_sum(s, scratch);
  if (Log) {
    const float ls = m + logf(s);
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) yr[k] = from_float<T>(to_float(xr[k]) - ls);
  } else {
    const float inv = 1.0f / s;
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) yr[k] = from_float<T>(__expf(to_float(xr[k]) - m) * inv);
  }
}

template <class T>
void launch_softmax_rows(const T* x, T* y, int64_t rows, int64_t D, bool log, Stream stream) {
  if (rows == 0) return;
  const unsigned threads = D >= 1024 ? 256 : D >= 128 ? 128 : 32;
  const dim3 grid(unsigned(std::min<int64_t>(rows, 65535)), ceil_div(rows, 65535));
  if (log)
    ADNN_LAUNCH((softmax_rows_kernel<T, true>), grid, dim3(threads), 0, stream, x, y, rows, D);
  else
    ADNN_LAUNCH((softmax_rows_kernel<T, false>), grid, dim3(threads), 0, stream, x, y, rows, D);
}

// ---- CPU twin
template <class T>
void softmax_rows_reference(const T* x, T* y, int64_t rows, int64_t D, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < D; ++k) m = std::max(m, double(to_float(x[r * D + k])));
    for (int64_t k = 0; k < D; ++k) s += std::exp(double(to_float(x[r * D + k])) - m);
    for (int64_t k = 0; k < D; ++k) {
      double v = double(to_float(x[r * D + k])) - m;
      y[r * D + k] = from_float<T>(float(log ? v - std::log(s) : std::exp(v) / s));
    }
  }
}

}  // namespace adnn::kernels
