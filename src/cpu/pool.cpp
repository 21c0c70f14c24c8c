// CPU twin of kernels/pool.cuh: max and average pooling, NHWC, forward and backward. The
// window iteration and divisor are the kernels' (src/common/pool.hpp). Storage T is f32, f64
// or f16/bf16 natively (sums in A = acc_t<T>, each output rounded once).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/pool.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"
#include "dispatch/dtypes.hpp"

namespace adnn::cpu {

using common::for_each_covering_output;
using common::for_each_window_pixel;
using common::pool_divisor;
using common::window_offset;

// The window's first real pixel seeds each channel's winner; a later pixel wins where it is
// larger or NaN (so a NaN propagates, as torch). Written as selects over an int32 offset row so
// the channel loop vectorises; the same winners as a branch per element.
template <class T, class I>
static void maxpool_fwd(const T* x, T* y, I* am, const PoolGeom& g) {
  using A = acc_t<T>;
#pragma omp parallel
  {
    std::vector<A> best(size_t(g.C));
    std::vector<int32_t> arg(size_t(g.C));  // the winners' window offsets (common::window_offset)
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          T* yp = y + ((n * g.OH + oh) * g.OW + ow) * g.C;
          I* ap = am + ((n * g.OH + oh) * g.OW + ow) * g.C;
          A* bp = best.data();
          int32_t* rp = arg.data();
          bool seeded = false;
          for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
            const T* xp = x + ((n * g.H + h) * g.W + w) * g.C;
            const int32_t off = int32_t(window_offset(g, oh, ow, h, w));
            if (!seeded) {
              for (int64_t c = 0; c < g.C; ++c) {
                bp[c] = A(xp[c]);
                rp[c] = off;
              }
              seeded = true;
              return;
            }
            for (int64_t c = 0; c < g.C; ++c) {
              const A v = A(xp[c]);
              const bool take = v > bp[c] || v != v;
              bp[c] = take ? v : bp[c];
              rp[c] = take ? off : rp[c];
            }
          });
          if (!seeded)  // a window wholly in the padding (max_pool2d's 2p <= k rules it out): -inf, no winner
            for (int64_t c = 0; c < g.C; ++c) {
              bp[c] = -std::numeric_limits<A>::infinity();
              rp[c] = -1;
            }
          for (int64_t c = 0; c < g.C; ++c) {
            yp[c] = bp[c];  // a value of x: exact in T
            ap[c] = I(rp[c]);
          }
        }
  }
}

void max_pool2d_forward(const Tensor& x, const Tensor& y, const Tensor& argmax, const PoolGeom& g) {
  storage_dispatch(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    dispatch::pool_index_types(argmax.dtype(), "max_pool2d", "cpu", [&](auto itag) {
      using I = decltype(itag);
      maxpool_fwd<T>(x.data_ptr<T>(), y.data_ptr<T>(), argmax.data_ptr<I>(), g);
    });
  });
}

// The backward passes gather, as the kernels: for every input pixel (n, h, w) its row of C
// gradients (an A buffer, zeroed here) gets f(n, h, w, row, oh, ow) for each output whose
// window covers it, in the kernels' order (the same bits), then is stored into gx (rounded
// once for 16-bit T); every gx element is written (no zero fill).
template <class T, class F>
void gather_pool_gradient(T* gx, const PoolGeom& g, F&& f) {
  using A = acc_t<T>;
#pragma omp parallel
  {
    std::vector<A> buf(size_t(g.C));
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t h = 0; h < g.H; ++h)
        for (int64_t w = 0; w < g.W; ++w) {
          A* row = buf.data();  // (C)
          for (int64_t c = 0; c < g.C; ++c) row[c] = 0;
          for_each_covering_output(g, h, w, [&](int64_t oh, int64_t ow) { f(n, h, w, row, oh, ow); });
          T* out = gx + ((n * g.H + h) * g.W + w) * g.C;
          for (int64_t c = 0; c < g.C; ++c) out[c] = row[c];
        }
  }
}

// gx[n, h, w, c] = Σ gy[o, c] over the outputs o covering (h, w) whose argmax is (h, w)
void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g) {
  storage_dispatch(gy.dtype(), "max_pool2d backward", [&](auto tag_) {
    using T = decltype(tag_);
    using A = acc_t<T>;
    const T* gp = gy.data_ptr<T>();
    dispatch::pool_index_types(argmax.dtype(), "max_pool2d backward", "cpu", [&](auto itag) {
      using I = decltype(itag);
      const I* ap = argmax.data_ptr<I>();
      gather_pool_gradient(gx.data_ptr<T>(), g, [&](int64_t n, int64_t h, int64_t w, A* row, int64_t oh, int64_t ow) {
        const int64_t o = ((n * g.OH + oh) * g.OW + ow) * g.C;
        // 0 … kh·kw − 1: fits I (uint8 up to 256 pixels, else int32: max_pool2d checks kh·kw < 2^31)
        const I me = I(window_offset(g, oh, ow, h, w));
        const T* gq = gp + o;
        const I* aq = ap + o;
        // a select, not a branch, compared in I, so the loop vectorises (a NaN of a lost window
        // stays out)
        for (int64_t c = 0; c < g.C; ++c) {
          const A v = A(gq[c]);
          row[c] += aq[c] == me ? v : A(0);
        }
      });
    });
  });
}

void avg_pool2d_forward(const Tensor& x, const Tensor& y, const PoolGeom& g) {
  storage_dispatch(x.dtype(), "avg_pool2d", [&](auto tag_) {
    using T = decltype(tag_);
    using A = acc_t<T>;
    const T* xp = x.data_ptr<T>();
    T* yp = y.data_ptr<T>();
#pragma omp parallel
    {
      std::vector<A> buf(size_t(g.C));
#pragma omp for collapse(2) schedule(static)
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            A* o = buf.data();
            for (int64_t c = 0; c < g.C; ++c) o[c] = 0;
            for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
              const T* p = xp + ((n * g.H + h) * g.W + w) * g.C;
              for (int64_t c = 0; c < g.C; ++c) o[c] += A(p[c]);
            });
            const A inv = A(1) / A(pool_divisor(g, oh, ow));
            T* out = yp + ((n * g.OH + oh) * g.OW + ow) * g.C;
            for (int64_t c = 0; c < g.C; ++c) out[c] = o[c] * inv;
          }
    }
  });
}

// gx[n, h, w, c] = Σ gy[o, c] / divisor(o) over the outputs o covering (h, w)
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g) {
  storage_dispatch(gy.dtype(), "avg_pool2d backward", [&](auto tag_) {
    using T = decltype(tag_);
    using A = acc_t<T>;
    const T* gp = gy.data_ptr<T>();
    gather_pool_gradient(gx.data_ptr<T>(), g, [&](int64_t n, int64_t, int64_t, A* row, int64_t oh, int64_t ow) {
      const T* o = gp + ((n * g.OH + oh) * g.OW + ow) * g.C;
      const A div = A(pool_divisor(g, oh, ow));
      for (int64_t c = 0; c < g.C; ++c) row[c] += A(o[c]) / div;
    });
  });
}

}  // namespace adnn::cpu
