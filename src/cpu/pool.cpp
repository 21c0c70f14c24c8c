// CPU twin of kernels/pool.cuh: max and average pooling, NHWC, forward and backward. The
// window iteration and divisor are the kernels' (src/common/pool.hpp).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/pool.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

using common::for_each_window_pixel;
using common::pool_divisor;

template <class T>
static void maxpool_fwd(const T* x, T* y, int64_t* am, const PoolGeom& g) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        T* yp = y + ((n * g.OH + oh) * g.OW + ow) * g.C;
        int64_t* ap = am + ((n * g.OH + oh) * g.OW + ow) * g.C;
        for (int64_t c = 0; c < g.C; ++c) {
          yp[c] = -std::numeric_limits<T>::infinity();
          ap[c] = -1;
        }
        for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
          const T* xp = x + ((n * g.H + h) * g.W + w) * g.C;
          for (int64_t c = 0; c < g.C; ++c)
            if (xp[c] > yp[c] || ap[c] < 0 || xp[c] != xp[c]) {
              yp[c] = xp[c];
              ap[c] = h * g.W + w;
            }
        });
      }
}

void max_pool2d_forward(const Tensor& x, const Tensor& y, const Tensor& argmax, const PoolGeom& g) {
  ADNN_FLOAT_TYPES(x.dtype(), "max_pool2d", maxpool_fwd<T>(x.data_ptr<T>(), y.data_ptr<T>(), argmax.data_ptr<int64_t>(), g));
}

void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g) {
  float_dispatch(gy.dtype(), "max_pool2d backward", [&](auto tag_) {
    using T = decltype(tag_);
    const T* gp = gy.data_ptr<T>();
    const int64_t* ap = argmax.data_ptr<int64_t>();
    T* xp = gx.data_ptr<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t o = 0; o < g.OH * g.OW; ++o)
        for (int64_t c = 0; c < g.C; ++c) {
          int64_t k = (n * g.OH * g.OW + o) * g.C + c;
          if (ap[k] >= 0) xp[(n * g.H * g.W + ap[k]) * g.C + c] += gp[k];
        }
  });
}

void avg_pool2d_forward(const Tensor& x, const Tensor& y, const PoolGeom& g) {
  float_dispatch(x.dtype(), "avg_pool2d", [&](auto tag_) {
    using T = decltype(tag_);
    const T* xp = x.data_ptr<T>();
    T* yp = y.data_ptr<T>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          T* o = yp + ((n * g.OH + oh) * g.OW + ow) * g.C;
          for (int64_t c = 0; c < g.C; ++c) o[c] = 0;
          for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
            const T* p = xp + ((n * g.H + h) * g.W + w) * g.C;
            for (int64_t c = 0; c < g.C; ++c) o[c] += p[c];
          });
          T inv = T(1) / T(pool_divisor(g, oh, ow));
          for (int64_t c = 0; c < g.C; ++c) o[c] *= inv;
        }
  });
}

void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g) {
  float_dispatch(gy.dtype(), "avg_pool2d backward", [&](auto tag_) {
    using T = decltype(tag_);
    const T* gp = gy.data_ptr<T>();
    T* xp = gx.data_ptr<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const T* o = gp + ((n * g.OH + oh) * g.OW + ow) * g.C;
          T inv = T(1) / T(pool_divisor(g, oh, ow));
          for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
            T* p = xp + ((n * g.H + h) * g.W + w) * g.C;
            for (int64_t c = 0; c < g.C; ++c) p[c] += o[c] * inv;
          });
        }
  });
}

}  // namespace adnn::cpu
