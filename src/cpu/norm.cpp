// CPU twin of kernels/norm.cuh: batch norm (channels last, x (M, C)) with the fused
// activation and MBConv epilogue, and layer norm over rows (M, D). Batch norm takes f16/bf16
// activations natively (bn_types: 16-bit x, y, residual and gradients; f32 parameters,
// statistics and math).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/activation.hpp"
#include "cpu/backend.hpp"
#include "cpu/convert.hpp"
#include "cpu/loop.hpp"
#include "cpu/vmath.hpp"

namespace adnn::cpu {

// ---------------------------------------------------------------- batch norm, x (M, C)
// Per-channel sums run over blocks of bn_block rows with accumulators in T along C (so the
// inner loops vectorise), flushed into f64 per thread; the activation is a template
// parameter (src/cpu/vmath.hpp), so no branch is left inside the loops. The loops are compiled
// for AVX-512, AVX2 and the baseline (ADNN_CPU_CLONES, src/cpu/convert.hpp): the same bits.
constexpr int64_t bn_block = 64;

// Batch norm's storage and math types: (T, T) for f32/f64; (f16/bf16, f32) — the activations
// in 16 bits, widened on load and rounded once on store; parameters and statistics in f32.
template <class F>
static void bn_types(DType t, const char* op, F&& f) {
  dispatch::storage_and_math_types(t, op, "cpu", f);
}

// Two per-channel sums over the rows of an (M, C) matrix: row(m, b1, b2) adds row m's terms to
// the accumulators b1, b2 (C values of T each, so the inner loops vectorise); every bn_block rows
// they are flushed into f64 partials per thread, which are then added up into s1, s2 (C each).
template <class T, class Row>
ADNN_CPU_CLONES static void channel_sums(int64_t M, int64_t C, const Row& row, std::vector<double>& s1,
                                         std::vector<double>& s2) {
  const int nt = omp_get_max_threads();
  std::vector<double> p1(size_t(nt) * size_t(C), 0.0), p2(size_t(nt) * size_t(C), 0.0);
#pragma omp parallel
  {
    const int t = omp_get_thread_num();
    std::vector<T> b1(static_cast<size_t>(C)), b2(static_cast<size_t>(C));
    double* d1 = p1.data() + size_t(t) * size_t(C);
    double* d2 = p2.data() + size_t(t) * size_t(C);
#pragma omp for schedule(static)
    for (int64_t m0 = 0; m0 < M; m0 += bn_block) {
      std::fill(b1.begin(), b1.end(), T(0));
      std::fill(b2.begin(), b2.end(), T(0));
      for (int64_t m = m0; m < std::min(M, m0 + bn_block); ++m) row(m, b1.data(), b2.data());
      for (int64_t c = 0; c < C; ++c) {
        d1[c] += double(b1[size_t(c)]);
        d2[c] += double(b2[size_t(c)]);
      }
    }
  }
  s1.assign(size_t(C), 0.0);
  s2.assign(size_t(C), 0.0);
  for (int t = 0; t < nt; ++t)
    for (int64_t c = 0; c < C; ++c) {
      s1[size_t(c)] += p1[size_t(t) * size_t(C) + size_t(c)];
      s2[size_t(c)] += p2[size_t(t) * size_t(C) + size_t(c)];
    }
}

// mean and 1/sqrt(var + eps) per channel in one pass, shifted by the first row against
// cancellation: var = E[(x − x₀)²] − E[x − x₀]².
// var_out (C, optional): the biased variance in f64.
// x in S (T, or f16/bf16 widened on load), the statistics in T.
template <class S, class T>
static void bn_stats(const S* x, int64_t M, int64_t C, double eps, T* mean, T* invstd, double* var_out = nullptr) {
  const S* x0 = x;
  std::vector<double> s1, s2;
  channel_sums<T>(
      M, C,
      [&](int64_t m, T* b1, T* b2) {
        const S* xr = x + m * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const T v = T(xr[c]) - T(x0[c]);
          b1[c] += v;
          b2[c] += v * v;
        }
      },
      s1, s2);
  for (int64_t c = 0; c < C; ++c) {
    const double mu = s1[size_t(c)] / double(M), var = std::max(0.0, s2[size_t(c)] / double(M) - mu * mu);
    mean[c] = T(double(T(x0[c])) + mu);
    invstd[c] = T(1.0 / std::sqrt(var + eps));
    if (var_out) var_out[c] = var;
  }
}

// Training statistics and the running-statistics update (twin of bn_stats_partials /
// bn_stats_merge in kernels/norm.cuh).
template <class S, class T>
static void bn_stats_update(const S* x, int64_t M, int64_t C, double eps, double momentum, T* mean, T* invstd, T* rm,
                            T* rv) {
  std::vector<double> var(static_cast<size_t>(C));
  bn_stats(x, M, C, eps, mean, invstd, var.data());
  for (int64_t c = 0; c < C; ++c) {
    if (rm) rm[c] = T((1.0 - momentum) * double(rm[c]) + momentum * double(mean[c]));
    if (rv)
      rv[c] = T((1.0 - momentum) * double(rv[c]) + momentum * var[size_t(c)] * double(M) / double(M > 1 ? M - 1 : 1));
  }
}

void batch_norm_stats(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& running_mean,
                      const Tensor& running_var, const Tensor& num_batches, int64_t M, int64_t C, double eps,
                      double momentum) {
  bn_types(x.dtype(), "batch_norm_stats", [&](auto stag, auto tag) {
    using S = decltype(stag);
    using T = decltype(tag);
    bn_stats_update<S, T>(x.data_ptr<S>(), M, C, eps, momentum, mean.data_ptr<T>(), invstd.data_ptr<T>(),
                          opt_out<T>(running_mean), opt_out<T>(running_var));
  });
  if (num_batches.defined() && C > 0) *num_batches.data_ptr<int64_t>() += 1;  // as the cuda twin's merge kernel
}

// x, y, res in S; w, b, mean, invstd, scale in T (the math). Stores assign a T to the S
// element (for f16/bf16 one rounding, and a loop that vectorises: include/adnn/core/dtype.hpp).
template <class S, class T>
ADNN_CPU_CLONES static void bn_forward(const S* x, const T* w, const T* b, T* mean, T* invstd, S* y, int64_t M,
                                       int64_t C, bool stats, double eps, NormActivation act, const S* res,
                                       const T* scale, int64_t rows_per_sample) {
  if (stats) bn_stats(x, M, C, eps, mean, invstd);
  std::vector<T> av(static_cast<size_t>(C)), bv(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    av[size_t(c)] = invstd[c] * (w ? w[c] : T(1));
    bv[size_t(c)] = b ? b[c] : T(0);
  }
  const T* a = av.data();
  const T* bias = bv.data();
  common::norm_act_dispatch(act, [&](auto tag) {
    constexpr NormActivation Act = decltype(tag)::value;
#pragma omp parallel for schedule(static) if (M * C > 16384)
    for (int64_t m = 0; m < M; ++m) {
      const T s = scale ? scale[m / rows_per_sample] : T(1);
      const S* xr = x + m * C;
      S* yr = y + m * C;
      if (res) {
        const S* rr = res + m * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c)
          yr[c] = common::norm_act<Act>((T(xr[c]) - mean[c]) * a[c] + bias[c], vexp_fn{}) * s + T(rr[c]);
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c)
          yr[c] = common::norm_act<Act>((T(xr[c]) - mean[c]) * a[c] + bias[c], vexp_fn{}) * s;
      }
    }
  });
}

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean,
                        const Tensor& invstd, const Tensor& y, int64_t M, int64_t C, bool compute_stats, double eps,
                        NormActivation act, const Tensor& residual, const Tensor& scale, int64_t rows_per_sample) {
  bn_types(x.dtype(), "batch_norm", [&](auto stag, auto tag) {
    using S = decltype(stag);
    using T = decltype(tag);
    bn_forward<S, T>(x.data_ptr<S>(), opt_ptr<T>(weight), opt_ptr<T>(bias), mean.data_ptr<T>(), invstd.data_ptr<T>(),
                     y.data_ptr<S>(), M, C, compute_stats, eps, act, opt_ptr<S>(residual), opt_ptr<T>(scale),
                     rows_per_sample);
  });
}

// g_z = g · act'(z), z = x̂·w + b recomputed (the activation's input is never stored); the
// first pass writes g_z into gx and sums Σg_z, Σg_z·x̂, the second finishes gx in place.
// g, x, gx in S; w, b, mean, invstd, gw, gb in T (the math).
template <class S, class T>
ADNN_CPU_CLONES static void bn_backward(const S* g, const S* x, const T* w, const T* b, const T* mean, const T* invstd,
                                        S* gx, T* gw, T* gb, int64_t M, int64_t C, bool training, NormActivation act) {
  std::vector<T> wv(static_cast<size_t>(C)), bv(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    wv[size_t(c)] = w ? w[c] : T(1);
    bv[size_t(c)] = b ? b[c] : T(0);
  }
  const T* wc = wv.data();
  const T* bc = bv.data();
  // g_z between the passes: in gx itself when S is T, else in an f32 scratch (M, C) — keeping
  // it unrounded, and cheaper than recomputing the activation's gradient
  std::unique_ptr<T[]> scratch;
  if (gx && !std::is_same_v<S, T>) scratch.reset(new T[size_t(M * C)]);
  T* z = !gx ? nullptr : scratch ? scratch.get() : reinterpret_cast<T*>(gx);
  std::vector<double> sum_g, sum_gxhat;
  common::norm_act_dispatch(act, [&](auto tag) {
    constexpr NormActivation Act = decltype(tag)::value;
    channel_sums<T>(
        M, C,
        [&](int64_t m, T* b1, T* b2) {
          const S* gr = g + m * C;
          const S* xr = x + m * C;
          if (z) {  // g_z kept for the second pass
            T* zr = z + m * C;
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const T xhat = (T(xr[c]) - mean[c]) * invstd[c];
              const T v = T(gr[c]) * common::norm_act_grad<Act>(xhat * wc[c] + bc[c], vexp_fn{});
              zr[c] = v;
              b1[c] += v;
              b2[c] += v * xhat;
            }
          } else {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) {
              const T xhat = (T(xr[c]) - mean[c]) * invstd[c];
              const T v = T(gr[c]) * common::norm_act_grad<Act>(xhat * wc[c] + bc[c], vexp_fn{});
              b1[c] += v;
              b2[c] += v * xhat;
            }
          }
        },
        sum_g, sum_gxhat);
  });
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
    const S* xr = x + m * C;
    const T* zr = z + m * C;
    S* gr = gx + m * C;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) gr[c] = sc[c] * (zr[c] - mg[c] - (T(xr[c]) - mean[c]) * invstd[c] * mx[c]);
  }
}

void batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& bias,
                         const Tensor& mean, const Tensor& invstd, const Tensor& gx, const Tensor& gw, const Tensor& gb,
                         int64_t M, int64_t C, bool training, NormActivation act) {
  bn_types(x.dtype(), "batch_norm backward", [&](auto stag, auto tag) {
    using S = decltype(stag);
    using T = decltype(tag);
    bn_backward<S, T>(g.data_ptr<S>(), x.data_ptr<S>(), opt_ptr<T>(weight), opt_ptr<T>(bias), mean.data_ptr<T>(),
                      invstd.data_ptr<T>(), opt_out<S>(gx), opt_out<T>(gw), opt_out<T>(gb), M, C, training, act);
  });
}

// ---------------------------------------------------------------- layer norm, x (M, D)
// x in X, y (and its gradient g) in Y — X, or f32 for a 16-bit X (autocast) — parameters,
// statistics and the per-element math in P (X's, f32 for 16-bit); the row statistics in f64.
// Twin of kernels/norm.cuh's layer_norm kernels.
template <class X, class Y, class P>
static void ln_forward(const X* x, const P* w, const P* b, Y* y, P* mean, P* rstd, int64_t M, int64_t D, double eps) {
#pragma omp parallel for schedule(static) if (M * D > 16384)
  for (int64_t m = 0; m < M; ++m) {
    const X* p = x + m * D;
    double mu = 0, v = 0;
    for (int64_t d = 0; d < D; ++d) mu += double(p[d]);
    mu /= double(D);
    for (int64_t d = 0; d < D; ++d) v += (double(p[d]) - mu) * (double(p[d]) - mu);
    v /= double(D);
    double r = 1.0 / std::sqrt(v + eps);
    mean[m] = P(mu);
    rstd[m] = P(r);
    Y* q = y + m * D;
    for (int64_t d = 0; d < D; ++d) {
      P val = P((double(p[d]) - mu) * r);
      if (w) val = val * w[d];
      if (b) val = val + b[d];
      q[d] = Y(val);
    }
  }
}

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                        const Tensor& mean, const Tensor& rstd, int64_t M, int64_t D, double eps) {
  dispatch::storage_out_and_math_types(x.dtype(), y.dtype(), "layer_norm", "cpu", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    using P = decltype(pt);
    ln_forward<X, Y, P>(x.data_ptr<X>(), opt_ptr<P>(weight), opt_ptr<P>(bias), y.data_ptr<Y>(), mean.data_ptr<P>(),
                        rstd.data_ptr<P>(), M, D, eps);
  });
}

template <class X, class Y, class P>
static void ln_backward(const Y* g, const X* x, const P* w, const P* mean, const P* rstd, X* gx, P* gw, P* gb,
                        int64_t M, int64_t D) {
  int nt = omp_get_max_threads();
  std::vector<double> aw(gw ? size_t(nt) * D : 0, 0.0), ab(gb ? size_t(nt) * D : 0, 0.0);
#pragma omp parallel
  {
    int t = omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t m = 0; m < M; ++m) {
      const Y* gp = g + m * D;
      const X* xp = x + m * D;
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
          gx[m * D + d] = X(P(r * (gh - s1 - xhat * s2)));
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
    if (gw) gw[d] = P(a);
    if (gb) gb[d] = P(b);
  }
}

// g in y's dtype, gx in x's, gw/gb in the parameters' (f32 for a 16-bit x).
void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M,
                         int64_t D) {
  dispatch::storage_out_and_math_types(
      x.dtype(), g.dtype(), "layer_norm backward", "cpu", [&](auto xt, auto yt, auto pt) {
        using X = decltype(xt);
        using Y = decltype(yt);
        using P = decltype(pt);
        ln_backward<X, Y, P>(g.data_ptr<Y>(), x.data_ptr<X>(), opt_ptr<P>(weight), mean.data_ptr<P>(),
                             rstd.data_ptr<P>(), opt_out<X>(gx), opt_out<P>(gw), opt_out<P>(gb), M, D);
      });
}

// ---------------------------------------------------------------- group norm, x (N, P, C)
// Per (n, g) in f64 over the group's P·Cg values, OpenMP over (n, g); parameter gradients
// per channel over the N·P rows.
template <class T>
static void gn_forward(const T* x, const T* w, const T* b, T* y, common::acc_t<T>* mean, common::acc_t<T>* rstd,
                       int64_t N, int64_t P, int64_t C, int64_t G, double eps) {
  const int64_t Cg = C / G, K = P * Cg;
#pragma omp parallel for schedule(static) if (N * P * C > 32768)
  for (int64_t ng = 0; ng < N * G; ++ng) {
    const T* xb = x + (ng / G) * P * C + (ng % G) * Cg;
    T* yb = y + (ng / G) * P * C + (ng % G) * Cg;
    double s = 0, q = 0;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < Cg; ++c) s += double(xb[p * C + c]);
    const double mu = s / double(K);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < Cg; ++c) q += (double(xb[p * C + c]) - mu) * (double(xb[p * C + c]) - mu);
    const double rs = 1.0 / std::sqrt(q / double(K) + eps);
    mean[ng] = common::acc_t<T>(mu);  // f32 for a 16-bit x
    rstd[ng] = common::acc_t<T>(rs);
    const int64_t c0 = (ng % G) * Cg;
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < Cg; ++c)
        yb[p * C + c] = T(common::acc_t<T>((double(xb[p * C + c]) - mu) * rs * (w ? double(w[c0 + c]) : 1.0) +
                                           (b ? double(b[c0 + c]) : 0.0)));
  }
}

template <class T>
static void gn_backward(const T* g, const T* x, const T* w, const common::acc_t<T>* mean, const common::acc_t<T>* rstd,
                        T* gx, T* gw, T* gb, int64_t N, int64_t P, int64_t C, int64_t G) {
  const int64_t Cg = C / G, K = P * Cg;
  if (gx) {
#pragma omp parallel for schedule(static) if (N * P * C > 32768)
    for (int64_t ng = 0; ng < N * G; ++ng) {
      const int64_t base = (ng / G) * P * C + (ng % G) * Cg, c0 = (ng % G) * Cg;
      const double mu = double(mean[ng]), rs = double(rstd[ng]);
      double s1 = 0, s2 = 0;
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < Cg; ++c) {
          const double gh = double(g[base + p * C + c]) * (w ? double(w[c0 + c]) : 1.0);
          s1 += gh;
          s2 += gh * (double(x[base + p * C + c]) - mu) * rs;
        }
      s1 /= double(K);
      s2 /= double(K);
      for (int64_t p = 0; p < P; ++p)
        for (int64_t c = 0; c < Cg; ++c) {
          const int64_t off = base + p * C + c;
          const double gh = double(g[off]) * (w ? double(w[c0 + c]) : 1.0);
          gx[off] = T(common::acc_t<T>(rs * (gh - s1 - (double(x[off]) - mu) * rs * s2)));
        }
    }
  }
  if (!gw && !gb) return;
#pragma omp parallel for schedule(static) if (N * P * C > 32768)
  for (int64_t c = 0; c < C; ++c) {
    double aw = 0, ab = 0;
    for (int64_t n = 0; n < N; ++n) {
      const double mu = double(mean[n * G + c / Cg]), rs = double(rstd[n * G + c / Cg]);
      for (int64_t p = 0; p < P; ++p) {
        const int64_t off = (n * P + p) * C + c;
        aw += double(g[off]) * (double(x[off]) - mu) * rs;
        ab += double(g[off]);
      }
    }
    if (gw) gw[c] = T(common::acc_t<T>(aw));
    if (gb) gb[c] = T(common::acc_t<T>(ab));
  }
}

void group_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, const Tensor& mean,
                        const Tensor& rstd, int64_t N, int64_t P, int64_t C, int64_t G, double eps) {
  storage_dispatch(x.dtype(), "group_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = common::acc_t<T>;  // mean, rstd: f32 for a 16-bit x
    gn_forward<T>(x.data_ptr<T>(), opt_ptr<T>(weight), opt_ptr<T>(bias), y.data_ptr<T>(), mean.data_ptr<A>(),
                  rstd.data_ptr<A>(), N, P, C, G, eps);
  });
}

void group_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t N, int64_t P, int64_t C,
                         int64_t G) {
  storage_dispatch(x.dtype(), "group_norm backward", [&](auto tag) {
    using T = decltype(tag);
    using A = common::acc_t<T>;
    gn_backward<T>(g.data_ptr<T>(), x.data_ptr<T>(), opt_ptr<T>(weight), mean.data_ptr<A>(), rstd.data_ptr<A>(),
                   opt_out<T>(gx), opt_out<T>(gw), opt_out<T>(gb), N, P, C, G);
  });
}

}  // namespace adnn::cpu
