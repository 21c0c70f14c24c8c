// CPU twin of kernels/interp.cuh: separable resampling (nearest, bilinear, bicubic), NHWC,
// with the taps of common::interp_axis_taps; the affine warp with common::warp_axis_taps.
#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common/interp.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

void interpolate_forward(const Tensor& x, const Tensor& y, const InterpGeom& g) {
  ADNN_CHECK(x.dtype() == y.dtype(), "interpolate (cpu): input ", x.desc(), " and output ", y.desc());
  storage_dispatch(x.dtype(), "interpolate", [&](auto tag_) {
    using T = decltype(tag_);
    using A = common::acc_t<T>;  // f32 sums for f16/bf16, rounded once on store
    // sizes as locals of this function: a lambda inside the OpenMP loop captures them (clang
    // rejects capturing the enclosing function's locals from there)
    const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), OH = y.size(1), OW = y.size(2);
    const T* xp = x.data_ptr<T>();
    T* yp = y.data_ptr<T>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < OH; ++oh) {
        std::vector<A> acc(std::is_same_v<T, A> ? 0 : size_t(C));
        for (int64_t ow = 0; ow < OW; ++ow) {
          T* o = yp + ((n * OH + oh) * OW + ow) * C;
          if constexpr (std::is_same_v<T, A>) {
            for (int64_t c = 0; c < C; ++c) o[c] = 0;
            common::for_each_interp_tap(g, oh, ow, [&](int64_t h, int64_t w, double wt) {
              const T* p = xp + ((n * H + h) * W + w) * C;
              for (int64_t c = 0; c < C; ++c) o[c] += T(wt) * p[c];
            });
          } else {  // 16-bit pixels: the sums in f32 (the kernel's order of taps), one rounding
            std::fill(acc.begin(), acc.end(), A(0));
            common::for_each_interp_tap(g, oh, ow, [&](int64_t h, int64_t w, double wt) {
              const T* p = xp + ((n * H + h) * W + w) * C;
              for (int64_t c = 0; c < C; ++c) acc[size_t(c)] += A(wt) * A(p[c]);
            });
            for (int64_t c = 0; c < C; ++c) o[c] = T(acc[size_t(c)]);
          }
        }
      }
  });
}

void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpGeom& g) {
  storage_dispatch(gy.dtype(), "interpolate backward", [&](auto tag_) {
    using G = decltype(tag_);
    using T = common::acc_t<G>;  // gx: f32 for a 16-bit gy
    dispatch::check_accumulator("interpolate backward", "cpu", gx.dtype(), dtype_of<T>::value);
    const int64_t N = gx.size(0), H = gx.size(1), W = gx.size(2), C = gx.size(3), OH = gy.size(1), OW = gy.size(2);
    const G* gp = gy.data_ptr<G>();
    T* xp = gx.data_ptr<T>();
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const G* o = gp + ((n * OH + oh) * OW + ow) * C;
          common::for_each_interp_tap(g, oh, ow, [&](int64_t h, int64_t w, double wt) {
            T* p = xp + ((n * H + h) * W + w) * C;
            for (int64_t c = 0; c < C; ++c) p[c] += T(wt) * T(o[c]);
          });
        }
  });
}

void warp_affine_forward(const Tensor& x, const Tensor& m, const Tensor& y, const WarpGeom& g) {
  ADNN_CHECK(x.dtype() == y.dtype(), "warp_affine (cpu): input ", x.desc(), " and output ", y.desc());
  storage_dispatch(x.dtype(), "warp_affine", [&](auto tag_) {
    using T = decltype(tag_);
    const T* xp = x.data_ptr<T>();
    const double* mp = m.data_ptr<double>();
    T* yp = y.data_ptr<T>();
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t oy = 0; oy < g.OH; ++oy) {
        const int64_t n = g.N == 1 ? 0 : b;
        std::vector<double> acc(size_t(g.C));
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          const common::WarpTaps t = common::warp_taps(mp, b, ox, oy, g);
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int a = 0; a < t.ny; ++a) {
            if (t.iy[a] < 0) continue;
            for (int k = 0; k < t.nx; ++k) {
              if (t.ix[k] < 0) continue;
              const double w = t.wy[a] * t.wx[k];
              const T* p = xp + ((n * g.H + t.iy[a]) * g.W + t.ix[k]) * g.C;
              for (int64_t c = 0; c < g.C; ++c) acc[size_t(c)] += w * double(common::acc_t<T>(p[c]));
            }
          }
          T* o = yp + ((b * g.OH + oy) * g.OW + ox) * g.C;
          for (int64_t c = 0; c < g.C; ++c) o[c] = T(common::acc_t<T>(acc[size_t(c)]));
        }
      }
  });
}

void warp_affine_backward(const Tensor& gy, const Tensor& m, const Tensor& gx, const WarpGeom& g) {
  storage_dispatch(gy.dtype(), "warp_affine backward", [&](auto tag_) {
    using G = decltype(tag_);
    using T = common::acc_t<G>;  // gx: f32 for a 16-bit gy
    dispatch::check_accumulator("warp_affine backward", "cpu", gx.dtype(), dtype_of<T>::value);
    const G* gp = gy.data_ptr<G>();
    const double* mp = m.data_ptr<double>();
    T* xp = gx.data_ptr<T>();
    // crops of one image scatter into the same pixels: one thread per input image
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t b = g.N == 1 ? 0 : n; b < (g.N == 1 ? g.B : n + 1); ++b)
        for (int64_t oy = 0; oy < g.OH; ++oy)
          for (int64_t ox = 0; ox < g.OW; ++ox) {
            const common::WarpTaps t = common::warp_taps(mp, b, ox, oy, g);
            const G* o = gp + ((b * g.OH + oy) * g.OW + ox) * g.C;
            for (int a = 0; a < t.ny; ++a) {
              if (t.iy[a] < 0) continue;
              for (int k = 0; k < t.nx; ++k) {
                if (t.ix[k] < 0) continue;
                const double w = t.wy[a] * t.wx[k];
                T* p = xp + ((n * g.H + t.iy[a]) * g.W + t.ix[k]) * g.C;
                for (int64_t c = 0; c < g.C; ++c) p[c] += T(w * double(T(o[c])));
              }
            }
          }
  });
}

}  // namespace adnn::cpu
