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

using common::for_each_covering_output;
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

// The backward passes gather, as the kernels: for every input pixel (n, h, w) its row of C
// gradients (zeroed here) gets f(n, h, w, row, oh, ow) for each output whose window covers
// it, in the kernels' order (the same bits); every gx element is written (no zero fill).
template <class T, class F>
void gather_pool_gradient(T* gx, const PoolGeom& g, F&& f) {
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t h = 0; h < g.H; ++h)
      for (int64_t w = 0; w < g.W; ++w) {
        T* row = gx + ((n * g.H + h) * g.W + w) * g.C;  // (C)
        for (int64_t c = 0; c < g.C; ++c) row[c] = 0;
        for_each_covering_output(g, h, w, [&](int64_t oh, int64_t ow) { f(n, h, w, row, oh, ow); });
      }
}

// gx[n, h, w, c] = Σ gy[o, c] over the outputs o covering (h, w) whose argmax is (h, w)
void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g) {
  float_dispatch(gy.dtype(), "max_pool2d backward", [&](auto tag_) {
    using T = decltype(tag_);
    const T* gp = gy.data_ptr<T>();
    const int64_t* ap = argmax.data_ptr<int64_t>();
    gather_pool_gradient(gx.data_ptr<T>(), g, [&](int64_t n, int64_t h, int64_t w, T* row, int64_t oh, int64_t ow) {
      const int64_t o = ((n * g.OH + oh) * g.OW + ow) * g.C, me = h * g.W + w;
      for (int64_t c = 0; c < g.C; ++c)
        if (ap[o + c] == me) row[c] += gp[o + c];
    });
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

// gx[n, h, w, c] = Σ gy[o, c] / divisor(o) over the outputs o covering (h, w)
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g) {
  float_dispatch(gy.dtype(), "avg_pool2d backward", [&](auto tag_) {
    using T = decltype(tag_);
    const T* gp = gy.data_ptr<T>();
    gather_pool_gradient(gx.data_ptr<T>(), g, [&](int64_t n, int64_t, int64_t, T* row, int64_t oh, int64_t ow) {
      const T* o = gp + ((n * g.OH + oh) * g.OW + ow) * g.C;
      const T div = T(pool_divisor(g, oh, ow));
      for (int64_t c = 0; c < g.C; ++c) row[c] += o[c] / div;
    });
  });
}

}  // namespace adnn::cpu
