#pragma once
// Separable resampling (nearest, bilinear, bicubic), NHWC, forward and backward.
//
// Each output row oy has `taps_y` (index, weight) pairs into the input rows, each output
// column likewise (computed on the host exactly as the CPU twin does, src/cpu/nn_kernels.cpp
// interp_taps); y[n, oy, ox, c] = Σ_i Σ_j wy_i · wx_j · x[n, iy_i, ix_j, c].
// Layout: x (N, H, W, C), y (N, OH, OW, C), contiguous; taps in device memory.
// Threads: forward, one thread per output element (c fastest); backward, one thread per
//   output element scattering its taps with atomicAdd (taps of neighbouring outputs overlap).
// Cost: forward reads taps_y·taps_x input values per output (cached), writes |y|; backward
//   the same number of atomic adds.
#include "common.cuh"
#include "common/interp.hpp"

namespace adnn::kernels {

template <class T>
__global__ void interp_forward_kernel(const T* __restrict__ x, T* __restrict__ y, const int64_t* __restrict__ iy,
                                      const double* __restrict__ wy, const int64_t* __restrict__ ix,
                                      const double* __restrict__ wx, InterpGeom g) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, ox = (i / g.C) % g.OW, oy = (i / (g.C * g.OW)) % g.OH, n = i / (g.C * g.OW * g.OH);
    T s = 0;
    for (int64_t a = 0; a < g.ty; ++a)
      for (int64_t b = 0; b < g.tx; ++b)
        s += T(wy[oy * g.ty + a] * wx[ox * g.tx + b]) *
             x[((n * g.H + iy[oy * g.ty + a]) * g.W + ix[ox * g.tx + b]) * g.C + c];
    y[i] = s;
  }
}

template <class T>
__global__ void interp_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, const int64_t* __restrict__ iy,
                                       const double* __restrict__ wy, const int64_t* __restrict__ ix,
                                       const double* __restrict__ wx, InterpGeom g) {
  const int64_t total = g.N * g.OH * g.OW * g.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.C, ox = (i / g.C) % g.OW, oy = (i / (g.C * g.OW)) % g.OH, n = i / (g.C * g.OW * g.OH);
    for (int64_t a = 0; a < g.ty; ++a)
      for (int64_t b = 0; b < g.tx; ++b)
        atomicAdd(gx + ((n * g.H + iy[oy * g.ty + a]) * g.W + ix[ox * g.tx + b]) * g.C + c,
                  T(wy[oy * g.ty + a] * wx[ox * g.tx + b]) * gy[i]);
  }
}

}  // namespace adnn::kernels
