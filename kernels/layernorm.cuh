#pragma once
// LayerNorm forward over the last dim.
//
// y[r, k] = (x[r, k] - mean_r) * rstd_r * w[k] + b[k], rstd_r = 1 / sqrt(var_r + eps), with
// the biased variance computed two-pass (mean first, then mean of squared deviations) for
// accuracy. mean and rstd (rows) are written for the backward pass.
// Layout: contiguous (rows, D); w, b (D) optional (nullptr).
// Threads: one block per row; two block reductions (warp shuffles + shared memory, the
//   same scratch reused, so block_sum's trailing barrier matters) then a strided write.
// Cost: reads 3·rows·D·sizeof(T) (2 passes + write pass), writes rows·D·sizeof(T) + 8·rows;
//   about 8 flops per element.
#include "reduce.cuh"

namespace adnn::kernels {

template <class T>
__global__ void layer_norm_rows_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                       T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd,
                                       int64_t rows, int64_t D, float eps) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const T* xr = x + r * D;
  float s = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += to_float(xr[k]);
  const float mu = block_sum(s, scratch) / float(D);
  float v = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    const float d = to_float(xr[k]) - mu;
    v += d * d;
  }
  const float rs = rsqrtf(block_sum(v, scratch) / float(D) + eps);
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    float o = (to_float(xr[k]) - mu) * rs;
    if (w) o *= to_float(w[k]);
    if (b) o += to_float(b[k]);
    y[r * D + k] = from_float<T>(o);
  }
  if (threadIdx.x == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}

template <class T>
void launch_layer_norm_rows(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows,
                            int64_t D, float eps, Stream stream) {
  if (rows == 0) return;
  const unsigned threads = D >= 1024 ? 256 : D >= 128 ? 128 : 32;
  const dim3 grid(unsigned(std::min<int64_t>(rows, 65535)), ceil_div(rows, 65535));
  ADNN_LAUNCH((layer_norm_rows_kernel<T>), grid, dim3(threads), 0, stream, x, w, b, y, mean, rstd, rows, D, eps);
}

// ---- CPU twin
template <class T>
void layer_norm_rows_reference(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd, int64_t rows,
                               int64_t D, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t k = 0; k < D; ++k) mu += double(to_float(x[r * D + k]));
    mu /= double(D);
    for (int64_t k = 0; k < D; ++k) var += (double(to_float(x[r * D + k])) - mu) * (double(to_float(x[r * D + k])) - mu);
    double rs = 1.0 / std::sqrt(var / double(D) + eps);
    for (int64_t k = 0; k < D; ++k) {
      double o = (double(to_float(x[r * D + k])) - mu) * rs;
      if (w) o *= double(to_float(w[k]));
      if (b) o += double(to_float(b[k]));
      y[r * D + k] = from_float<T>(float(o));
    }
    mean[r] = float(mu);
    rstd[r] = float(rs);
  }
}

}  // namespace adnn::kernels
