// CPU kernels for normalisation, pooling, indexing and resampling. NHWC throughout.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/kernels.hpp"
#include "cpu/loop.hpp"
#include "cpu/vmath.hpp"
#include "kernels/norm.cuh"  // NormAct (the kernels own norm_act / norm_act_grad; vmath.hpp their CPU forms)
#include "kernels/pool.cuh"  // pool_divisor, for_each_window_pixel, shared with the kernels

namespace adnn::cpu {

#define ADNN_FLOAT_TYPES(dtype, op, ...)                                 \
  do {                                                                   \
    if ((dtype) == DType::f32) {                                         \
      using T = float;                                                   \
      __VA_ARGS__;                                                       \
    } else if ((dtype) == DType::f64) {                                  \
      using T = double;                                                  \
      __VA_ARGS__;                                                       \
    } else {                                                             \
      ADNN_FAIL(op, ": unsupported dtype ", dtype_name(dtype));          \
    }                                                                    \
  } while (0)



// ---------------------------------------------------------------- batch norm, x (M, C)
// Per-channel sums run over blocks of bn_block rows with accumulators in T along C (so the
// inner loops vectorise), flushed into f64 per thread; the activation is a template
// parameter (src/cpu/vmath.hpp), so no branch is left inside the loops.
constexpr int64_t bn_block = 64;

// mean and 1/sqrt(var + eps) per channel in one pass, shifted by the first row against
// cancellation: var = E[(x − x₀)²] − E[x − x₀]².
template <class T>
static void bn_stats(const T* x, int64_t M, int64_t C, double eps, T* mean, T* invstd) {
  const int nt = omp_get_max_threads();
  std::vector<double> s1(size_t(nt) * size_t(C), 0.0), s2(size_t(nt) * size_t(C), 0.0);
  const T* x0 = x;
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    std::vector<T> b1v(static_cast<size_t>(C)), b2v(static_cast<size_t>(C));
    T* b1 = b1v.data();
    T* b2 = b2v.data();
    double* d1 = s1.data() + size_t(t) * size_t(C);
    double* d2 = s2.data() + size_t(t) * size_t(C);
#pragma omp for schedule(static)
    for (int64_t m0 = 0; m0 < M; m0 += bn_block) {
      std::fill(b1, b1 + C, T(0));
      std::fill(b2, b2 + C, T(0));
      for (int64_t m = m0; m < std::min(M, m0 + bn_block); ++m) {
        const T* xr = x + m * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const T v = xr[c] - x0[c];
          b1[c] += v;
          b2[c] += v * v;
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        d1[c] += double(b1[c]);
        d2[c] += double(b2[c]);
      }
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    double a = 0, q = 0;
    for (int t = 0; t < nt; ++t) {
      a += s1[size_t(t) * size_t(C) + size_t(c)];
      q += s2[size_t(t) * size_t(C) + size_t(c)];
    }
    const double mu = a / double(M), var = std::max(0.0, q / double(M) - mu * mu);
    mean[c] = T(double(x0[c]) + mu);
    invstd[c] = T(1.0 / std::sqrt(var + eps));
  }
}

template <class T>
static void bn_forward(const T* x, const T* w, const T* b, T* mean, T* invstd, T* y, int64_t M, int64_t C,
                       bool stats, double eps, int act, const T* res, const T* scale, int64_t rows_per_sample) {
  if (stats) bn_stats(x, M, C, eps, mean, invstd);
  std::vector<T> av(static_cast<size_t>(C)), bv(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    av[size_t(c)] = invstd[c] * (w ? w[c] : T(1));
    bv[size_t(c)] = b ? b[c] : T(0);
  }
  const T* a = av.data();
  const T* bias = bv.data();
  act_dispatch(act, [&](auto tag) {
    constexpr int Act = decltype(tag)::value;
#pragma omp parallel for schedule(static) if (M * C > 16384)
    for (int64_t m = 0; m < M; ++m) {
      const T s = scale ? scale[m / rows_per_sample] : T(1);
      const T* xr = x + m * C;
      T* yr = y + m * C;
      if (res) {
        const T* rr = res + m * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] = act_fwd<Act>((xr[c] - mean[c]) * a[c] + bias[c]) * s + rr[c];
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] = act_fwd<Act>((xr[c] - mean[c]) * a[c] + bias[c]) * s;
      }
    }
  });
}

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean,
                        const Tensor& invstd, const Tensor& y, int64_t M, int64_t C, bool compute_stats, double eps,
                        int act, const Tensor& residual, const Tensor& scale, int64_t rows_per_sample) {
  ADNN_FLOAT_TYPES(x.dtype(), "batch_norm",
                   bn_forward<T>(x.data_ptr<T>(), opt_ptr<T>(weight), opt_ptr<T>(bias), mean.data_ptr<T>(),
                                 invstd.data_ptr<T>(), y.data_ptr<T>(), M, C, compute_stats, eps, act,
                                 opt_ptr<T>(residual), opt_ptr<T>(scale), rows_per_sample));
}

// g_z = g · act'(z), z = x̂·w + b recomputed (the activation's input is never stored); the
// first pass writes g_z into gx and sums Σg_z, Σg_z·x̂, the second finishes gx in place.
template <class T>
static void bn_backward(const T* g, const T* x, const T* w, const T* b, const T* mean, const T* invstd, T* gx, T* gw,
                        T* gb, int64_t M, int64_t C, bool training, int act) {
  std::vector<T> wv(static_cast<size_t>(C)), bv(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    wv[size_t(c)] = w ? w[c] : T(1);
    bv[size_t(c)] = b ? b[c] : T(0);
  }
  const T* wc = wv.data();
  const T* bc = bv.data();
  const int nt = omp_get_max_threads();
  std::vector<double> sg(size_t(nt) * size_t(C), 0.0), sgx(size_t(nt) * size_t(C), 0.0);
  act_dispatch(act, [&](auto tag) {
    constexpr int Act = decltype(tag)::value;
#pragma omp parallel
    {
      const int t = omp_get_thread_num();
      std::vector<T> b1v(static_cast<size_t>(C)), b2v(static_cast<size_t>(C));
      T* b1 = b1v.data();
      T* b2 = b2v.data();
      double* d1 = sg.data() + size_t(t) * size_t(C);
      double* d2 = sgx.data() + size_t(t) * size_t(C);
#pragma omp for schedule(static)
      for (int64_t m0 = 0; m0 < M; m0 += bn_block) {
        std::fill(b1, b1 + C, T(0));
        std::fill(b2, b2 + C, T(0));
        for (int64_t m = m0; m < std::min(M, m0 + bn_block); ++m) {
          const T* gr = g + m * C;
          const T* xr = x + m * C;
          if (gx) {
            T* zr = gx + m * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const T xhat = (xr[c] - mean[c]) * invstd[c];
              const T v = gr[c] * act_grad<Act>(xhat * wc[c] + bc[c]);
              zr[c] = v;
              b1[c] += v;
              b2[c] += v * xhat;
            }
          } else {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const T xhat = (xr[c] - mean[c]) * invstd[c];
              const T v = gr[c] * act_grad<Act>(xhat * wc[c] + bc[c]);
              b1[c] += v;
              b2[c] += v * xhat;
            }
          }
        }
        for (int64_t c = 0; c < C; ++c) {
          d1[c] += double(b1[c]);
          d2[c] += double(b2[c]);
        }
      }
    }
  });
  std::vector<double> sum_g(static_cast<size_t>(C), 0.0), sum_gxhat(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int t = 0; t < nt; ++t) {
      sum_g[size_t(c)] += sg[size_t(t) * size_t(C) + size_t(c)];
      sum_gxhat[size_t(c)] += sgx[size_t(t) * size_t(C) + size_t(c)];
    }
  if (gw)
    for (int64_t c = 0; c < C; ++c) gw[c] = T(sum_gxhat[size_t(c)]);
  if (gb)
    for (int64_t c = 0; c < C; ++c) gb[c] = T(sum_g[size_t(c)]);
  if (!gx) return;
  std::vector<T> sv(static_cast<size_t>(C)), mgv(static_cast<size_t>(C)), mxv(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    sv[size_t(c)] = invstd[c] * wc[c];
    mgv[size_t(c)] = training ? T(sum_g[size_t(c)] / double(M)) : T(0);
    mxv[size_t(c)] = training ? T(sum_gxhat[size_t(c)] / double(M)) : T(0);
  }
  const T* sc = sv.data();
  const T* mg = mgv.data();
  const T* mx = mxv.data();
#pragma omp parallel for schedule(static) if (M * C > 16384)
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * C;
    T* zr = gx + m * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) zr[c] = sc[c] * (zr[c] - mg[c] - (xr[c] - mean[c]) * invstd[c] * mx[c]);
  }
}

void batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& bias,
                         const Tensor& mean, const Tensor& invstd, const Tensor& gx, const Tensor& gw, const Tensor& gb,
                         int64_t M, int64_t C, bool training, int act) {
  ADNN_FLOAT_TYPES(x.dtype(), "batch_norm backward",
                   bn_backward<T>(g.data_ptr<T>(), x.data_ptr<T>(), opt_ptr<T>(weight), opt_ptr<T>(bias), mean.data_ptr<T>(),
                                  invstd.data_ptr<T>(), gx.defined() ? gx.data_ptr<T>() : nullptr,
                                  gw.defined() ? gw.data_ptr<T>() : nullptr, gb.defined() ? gb.data_ptr<T>() : nullptr,
                                  M, C, training, act));
}

// ---------------------------------------------------------------- layer norm, x (M, D)
template <class T>
static void ln_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t M, int64_t D, double eps) {
#pragma omp parallel for schedule(static) if (M * D > 16384)
  for (int64_t m = 0; m < M; ++m) {
    const T* p = x + m * D;
    double mu = 0, v = 0;
    for (int64_t d = 0; d < D; ++d) mu += double(p[d]);
    mu /= double(D);
    for (int64_t d = 0; d < D; ++d) v += (double(p[d]) - mu) * (double(p[d]) - mu);
    v /= double(D);
    double r = 1.0 / std::sqrt(v + eps);
    mean[m] = T(mu);
    rstd[m] = T(r);
    T* q = y + m * D;
    for (int64_t d = 0; d < D; ++d) {
      T val = T((double(p[d]) - mu) * r);
      if (w) val = val * w[d];
      if (b) val = val + b[d];
      q[d] = val;
    }
  }
}

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                        const Tensor& mean, const Tensor& rstd, int64_t M, int64_t D, double eps) {
  ADNN_FLOAT_TYPES(x.dtype(), "layer_norm",
                   ln_forward<T>(x.data_ptr<T>(), opt_ptr<T>(weight), opt_ptr<T>(bias), y.data_ptr<T>(),
                                 mean.data_ptr<T>(), rstd.data_ptr<T>(), M, D, eps));
}

template <class T>
static void ln_backward(const T* g, const T* x, const T* w, const T* mean, const T* rstd, T* gx, T* gw, T* gb,
                        int64_t M, int64_t D) {
  int nt = omp_get_max_threads();
  std::vector<double> aw(gw ? size_t(nt) * D : 0, 0.0), ab(gb ? size_t(nt) * D : 0, 0.0);
#pragma omp parallel
  {
    int t = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      const T* gp = g + m * D;
      const T* xp = x + m * D;
      double mu = double(mean[m]), r = double(rstd[m]);
      double s1 = 0, s2 = 0;
      for (int64_t d = 0; d < D; ++d) {
        double xhat = (double(xp[d]) - mu) * r;
        double gh = double(gp[d]) * (w ? double(w[d]) : 1.0);
        s1 += gh;
        s2 += gh * xhat;
        if (gw) aw[size_t(t) * D + d] += double(gp[d]) * xhat;
        if (gb) ab[size_t(t) * D + d] += double(gp[d]);
      }
      if (gx) {
        s1 /= double(D);
        s2 /= double(D);
        for (int64_t d = 0; d < D; ++d) {
          double xhat = (double(xp[d]) - mu) * r;
          double gh = double(gp[d]) * (w ? double(w[d]) : 1.0);
          gx[m * D + d] = T(r * (gh - s1 - xhat * s2));
        }
      }
    }
  }
  for (int64_t d = 0; d < D; ++d) {
    double a = 0, b = 0;
    for (int t = 0; t < nt; ++t) {
      if (gw) a += aw[size_t(t) * D + d];
      if (gb) b += ab[size_t(t) * D + d];
    }
    if (gw) gw[d] = T(a);
    if (gb) gb[d] = T(b);
  }
}

void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M,
                         int64_t D) {
  ADNN_FLOAT_TYPES(x.dtype(), "layer_norm backward",
                   ln_backward<T>(g.data_ptr<T>(), x.data_ptr<T>(), opt_ptr<T>(weight), mean.data_ptr<T>(),
                                  rstd.data_ptr<T>(), gx.defined() ? gx.data_ptr<T>() : nullptr,
                                  gw.defined() ? gw.data_ptr<T>() : nullptr, gb.defined() ? gb.data_ptr<T>() : nullptr,
                                  M, D));
}

// ---------------------------------------------------------------- pooling (N, H, W, C)
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
        kernels::for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
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
          kernels::for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
            const T* p = xp + ((n * g.H + h) * g.W + w) * g.C;
            for (int64_t c = 0; c < g.C; ++c) o[c] += p[c];
          });
          T inv = T(1) / T(kernels::pool_divisor(g, oh, ow));
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
          T inv = T(1) / T(kernels::pool_divisor(g, oh, ow));
          kernels::for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
            T* p = xp + ((n * g.H + h) * g.W + w) * g.C;
            for (int64_t c = 0; c < g.C; ++c) p[c] += o[c] * inv;
          });
        }
  });
}

// ---------------------------------------------------------------- indexing
void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t D, int64_t inner) {
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n = index.numel();
  const size_t es = x.element_size();
  const char* xp = static_cast<const char*>(x.data_ptr());
  char* op = static_cast<char*>(out.data_ptr());
#pragma omp parallel for collapse(2) schedule(static) if (outer * n * inner > 32768)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(op + ((o * n + i) * inner) * es, xp + ((o * D + idx[i]) * inner) * es, size_t(inner) * es);
}

void index_add(const Tensor& g, const Tensor& index, const Tensor& gx, int64_t outer, int64_t D, int64_t inner) {
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n = index.numel();
  float_dispatch(g.dtype(), "index_select backward", [&](auto tag_) {
    using T = decltype(tag_);
    const T* gp = g.data_ptr<T>();
    T* xp = gx.data_ptr<T>();
#pragma omp parallel for schedule(static) if (outer * n * inner > 32768 && outer > 1)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i) {
        const T* s = gp + (o * n + i) * inner;
        T* d = xp + (o * D + idx[i]) * inner;
        for (int64_t k = 0; k < inner; ++k) d[k] += s[k];
      }
  });
}

// offsets for gather/scatter: out/index contiguous; x contiguous
static void gather_scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& y, bool scatter) {
  const Shape& is = index.sizes();
  const Shape xs = contiguous_strides(x.sizes());
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n = index.numel();
  const int64_t R = int64_t(is.size());
  float_dispatch(x.dtype(), scatter ? "scatter_add" : "gather", [&](auto tag_) {
    using T = decltype(tag_);
    T* xp = x.data_ptr<T>();
    T* yp = y.data_ptr<T>();
    std::vector<int64_t> c(R, 0);
    for (int64_t k = 0; k < n; ++k) {
      int64_t off = 0;
      for (int64_t d = 0; d < R; ++d) off += (d == dim ? idx[k] : c[d]) * xs[d];
      if (scatter)
        xp[off] += yp[k];
      else
        yp[k] = xp[off];
      for (int64_t d = R - 1; d >= 0; --d) {
        if (++c[d] < is[d]) break;
        c[d] = 0;
      }
    }
  });
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  gather_scatter(x, dim, index, out, false);
}
void scatter_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx) {
  gather_scatter(gx, dim, index, g, true);
}

// ---------------------------------------------------------------- interpolation
static double cubic_w(double x) {
  const double A = -0.75;
  x = std::fabs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

InterpTaps interp_taps(int64_t in, int64_t out, InterpMode mode, bool align_corners) {
  InterpTaps t;
  t.taps = mode == InterpMode::nearest ? 1 : mode == InterpMode::bilinear ? 2 : 4;
  t.index.resize(size_t(out * t.taps));
  t.weight.resize(size_t(out * t.taps));
  const double scale_ac = out > 1 ? double(in - 1) / double(out - 1) : 0.0;
  const double scale = double(in) / double(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t* ix = t.index.data() + o * t.taps;
    double* w = t.weight.data() + o * t.taps;
    if (mode == InterpMode::nearest) {
      ix[0] = std::min<int64_t>(int64_t(std::floor(double(o) * scale)), in - 1);
      w[0] = 1;
      continue;
    }
    double src = align_corners ? double(o) * scale_ac : (double(o) + 0.5) * scale - 0.5;
    if (mode == InterpMode::bilinear) {
      if (src < 0) src = 0;
      int64_t i0 = std::min<int64_t>(int64_t(std::floor(src)), in - 1);
      int64_t i1 = std::min<int64_t>(i0 + 1, in - 1);
      double l = src - double(i0);
      ix[0] = i0;
      ix[1] = i1;
      w[0] = 1 - l;
      w[1] = l;
    } else {
      int64_t i0 = int64_t(std::floor(src));
      double l = src - double(i0);
      double ws[4] = {cubic_w(1 + l), cubic_w(l), cubic_w(1 - l), cubic_w(2 - l)};
      for (int k = 0; k < 4; ++k) {
        ix[k] = std::clamp<int64_t>(i0 - 1 + k, 0, in - 1);
        w[k] = ws[k];
      }
    }
  }
  return t;
}

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
