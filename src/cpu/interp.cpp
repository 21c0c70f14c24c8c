// CPU twin of kernels/interp.cuh: separable resampling (nearest, bilinear, bicubic), NHWC,
// with the taps of common::interp_taps.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

void interpolate_forward(const Tensor& x, const Tensor& y, const InterpTaps& ty, const InterpTaps& tx) {
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), OH = y.size(1), OW = y.size(2);
  float_dispatch(x.dtype(), "interpolate", [&](auto tag_) {
    using T = decltype(tag_);
    const T* xp = x.data_ptr<T>();
    T* yp = y.data_ptr<T>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          T* o = yp + ((n * OH + oh) * OW + ow) * C;
          for (int64_t c = 0; c < C; ++c) o[c] = 0;
          for (int64_t i = 0; i < ty.taps; ++i) {
            int64_t h = ty.index[oh * ty.taps + i];
            double wy = ty.weight[oh * ty.taps + i];
            for (int64_t j = 0; j < tx.taps; ++j) {
              int64_t w = tx.index[ow * tx.taps + j];
              T wt = T(wy * tx.weight[ow * tx.taps + j]);
              const T* p = xp + ((n * H + h) * W + w) * C;
              for (int64_t c = 0; c < C; ++c) o[c] += wt * p[c];
            }
          }
        }
  });
}

void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpTaps& ty, const InterpTaps& tx) {
  const int64_t N = gx.size(0), H = gx.size(1), W = gx.size(2), C = gx.size(3), OH = gy.size(1), OW = gy.size(2);
  float_dispatch(gy.dtype(), "interpolate backward", [&](auto tag_) {
    using T = decltype(tag_);
    const T* gp = gy.data_ptr<T>();
    T* xp = gx.data_ptr<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const T* o = gp + ((n * OH + oh) * OW + ow) * C;
          for (int64_t i = 0; i < ty.taps; ++i) {
            int64_t h = ty.index[oh * ty.taps + i];
            double wy = ty.weight[oh * ty.taps + i];
            for (int64_t j = 0; j < tx.taps; ++j) {
              int64_t w = tx.index[ow * tx.taps + j];
              T wt = T(wy * tx.weight[ow * tx.taps + j]);
              T* p = xp + ((n * H + h) * W + w) * C;
              for (int64_t c = 0; c < C; ++c) p[c] += wt * o[c];
            }
          }
        }
  });
}

}  // namespace adnn::cpu
