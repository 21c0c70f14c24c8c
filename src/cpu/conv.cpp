// CPU twin of kernels/conv.cuh: conv2d, NHWC activations, weights (O, KH, KW, C/groups).
//  - 1x1, stride 1, no padding, groups 1: one GEMM over all pixels.
//  - depthwise (groups == C == O): direct loops, vectorised over channels.
//  - otherwise: im2col per chunk of images and group, then GEMM; backward uses a
//    race-free gather form of col2im (each input pixel sums its own taps).
#include <omp.h>

#include <algorithm>
#include <vector>

#include "common/conv.hpp"
#include "cpu/backend.hpp"
#include "cpu/gemm.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

namespace {

// col (rows = nb*OH*OW, KK = KH*KW*Cg) for images [n0, n0+nb), group gi
template <class T>
void im2col(const T* x, T* col, const ConvGeom& g, int64_t n0, int64_t nb, int64_t gi) {
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg, rows = nb * g.OH * g.OW;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t n = n0 + r / (g.OH * g.OW), oh = (r / g.OW) % g.OH, ow = r % g.OW;
    T* dst = col + r * KK;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      int64_t ih = oh * g.sh - g.pt + kh * g.dh;
      for (int64_t kw = 0; kw < g.KW; ++kw, dst += Cg) {
        int64_t iw = ow * g.sw - g.pl + kw * g.dw;
        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) {
          std::fill(dst, dst + Cg, T(0));
        } else {
          const T* src = x + ((n * g.H + ih) * g.W + iw) * g.C + gi * Cg;
          std::copy(src, src + Cg, dst);
        }
      }
    }
  }
}

// gx[n, ih, iw, group channels] += sum of dcol taps that read it
template <class T>
void col2im(const T* dcol, T* gx, const ConvGeom& g, int64_t n0, int64_t nb, int64_t gi) {
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < nb; ++n)
    for (int64_t ih = 0; ih < g.H; ++ih)
      for (int64_t iw = 0; iw < g.W; ++iw) {
        T* dst = gx + (((n0 + n) * g.H + ih) * g.W + iw) * g.C + gi * Cg;
        common::for_each_tap_reading(g, ih, iw, [&](int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
        const T* src = dcol + ((n * g.OH + oh) * g.OW + ow) * KK + (kh * g.KW + kw) * Cg;
        for (int64_t c = 0; c < Cg; ++c) dst[c] += src[c];
        });
      }
}

template <class T>
void add_bias(T* y, const T* b, int64_t rows, int64_t O) {
#pragma omp parallel for schedule(static) if (rows * O > 16384)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < O; ++o) y[r * O + o] += b[o];
}

// ---------------------------------------------------------------- depthwise
template <class T>
void dw_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  const int64_t C = g.C;
  std::vector<T> wt(size_t(g.KH * g.KW * C));  // (KH, KW, C)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < g.KH * g.KW; ++k) wt[k * C + c] = w[c * g.KH * g.KW + k];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        T* o = y + ((n * g.OH + oh) * g.OW + ow) * C;
        for (int64_t c = 0; c < C; ++c) o[c] = b ? b[c] : T(0);
        common::for_each_input_tap(g, oh, ow, [&](int64_t ih, int64_t iw, int64_t kh, int64_t kw) {
          const T* p = x + ((n * g.H + ih) * g.W + iw) * C;
          const T* q = wt.data() + (kh * g.KW + kw) * C;
          for (int64_t c = 0; c < C; ++c) o[c] += p[c] * q[c];
        });
      }
}

template <class T>
void dw_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const ConvGeom& g) {
  const int64_t C = g.C, KK = g.KH * g.KW;
  if (gx) {
    std::vector<T> wt(size_t(KK * C));
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < KK; ++k) wt[k * C + c] = w[c * KK + k];
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t ih = 0; ih < g.H; ++ih)
        for (int64_t iw = 0; iw < g.W; ++iw) {
          T* dst = gx + ((n * g.H + ih) * g.W + iw) * C;
          for (int64_t c = 0; c < C; ++c) dst[c] = 0;
          common::for_each_tap_reading(g, ih, iw, [&](int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
            const T* src = gy + ((n * g.OH + oh) * g.OW + ow) * C;
            const T* q = wt.data() + (kh * g.KW + kw) * C;
            for (int64_t c = 0; c < C; ++c) dst[c] += src[c] * q[c];
          });
        }
  }
  if (gw || gb) {
    int nt = omp_get_max_threads();
    std::vector<double> aw(gw ? size_t(nt) * KK * C : 0, 0.0), ab(gb ? size_t(nt) * C : 0, 0.0);
#pragma omp parallel
    {
      int t = omp_get_thread_num();
      double* pw = gw ? aw.data() + size_t(t) * KK * C : nullptr;
      double* pb = gb ? ab.data() + size_t(t) * C : nullptr;
#pragma omp for collapse(2) schedule(static)
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t oh = 0; oh < g.OH; ++oh)
          for (int64_t ow = 0; ow < g.OW; ++ow) {
            const T* go = gy + ((n * g.OH + oh) * g.OW + ow) * C;
            if (pb)
              for (int64_t c = 0; c < C; ++c) pb[c] += double(go[c]);
            if (!pw) continue;
            common::for_each_input_tap(g, oh, ow, [&](int64_t ih, int64_t iw, int64_t kh, int64_t kw) {
              const T* p = x + ((n * g.H + ih) * g.W + iw) * C;
              double* q = pw + (kh * g.KW + kw) * C;
              for (int64_t c = 0; c < C; ++c) q[c] += double(p[c] * go[c]);
            });
          }
    }
    if (gw)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t k = 0; k < KK; ++k) {
          double s = 0;
          for (int t = 0; t < nt; ++t) s += aw[size_t(t) * KK * C + k * C + c];
          gw[c * KK + k] = T(s);
        }
    if (gb)
      for (int64_t c = 0; c < C; ++c) {
        double s = 0;
        for (int t = 0; t < nt; ++t) s += ab[size_t(t) * C + c];
        gb[c] = T(s);
      }
  }
}

// ---------------------------------------------------------------- general
template <class T>
void conv_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  const int64_t P = g.OH * g.OW;
  const common::ConvPlan plan = common::conv_plan(g);
  if (plan.path == common::ConvPath::pointwise) {
    gemm(false, true, g.N * P, g.O, g.C, T(1), x, g.C, w, g.C, T(0), y, g.O);
  } else if (plan.path == common::ConvPath::depthwise) {
    dw_forward<T>(x, w, nullptr, y, g);
  } else {
    const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
    const int64_t nbmax = plan.chunk_images;
    std::vector<T> col(size_t(plan.col_elements));
    for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
      int64_t nb = std::min(nbmax, g.N - n0);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        im2col(x, col.data(), g, n0, nb, gi);
        gemm(false, true, nb * P, Og, KK, T(1), col.data(), KK, w + gi * Og * KK, KK, T(0),
             y + n0 * P * g.O + gi * Og, g.O);
      }
    }
  }
  if (b) add_bias(y, b, g.N * P, g.O);
}

template <class T>
void conv_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const ConvGeom& g) {
  const int64_t P = g.OH * g.OW;
  if (gb) {
    std::vector<double> acc(size_t(g.O), 0.0);
    for (int64_t r = 0; r < g.N * P; ++r)
      for (int64_t o = 0; o < g.O; ++o) acc[o] += double(gy[r * g.O + o]);
    for (int64_t o = 0; o < g.O; ++o) gb[o] = T(acc[o]);
  }
  const common::ConvPlan plan = common::conv_plan(g);
  if (plan.path == common::ConvPath::pointwise) {
    if (gx) gemm(false, false, g.N * P, g.C, g.O, T(1), gy, g.O, w, g.C, T(0), gx, g.C);
    if (gw) gemm(true, false, g.O, g.C, g.N * P, T(1), gy, g.O, x, g.C, T(0), gw, g.C);
    return;
  }
  if (plan.path == common::ConvPath::depthwise) {
    dw_backward<T>(gy, x, w, gx, gw, nullptr, g);
    return;
  }
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
  const int64_t nbmax = plan.chunk_images;
  std::vector<T> col(size_t(plan.col_elements));
  if (gx) std::fill(gx, gx + g.N * g.H * g.W * g.C, T(0));
  if (gw) std::fill(gw, gw + g.O * KK, T(0));
  for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
    int64_t nb = std::min(nbmax, g.N - n0);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const T* gyg = gy + n0 * P * g.O + gi * Og;
      if (gw) {
        im2col(x, col.data(), g, n0, nb, gi);
        gemm(true, false, Og, KK, nb * P, T(1), gyg, g.O, col.data(), KK, T(1), gw + gi * Og * KK, KK);
      }
      if (gx) {
        gemm(false, false, nb * P, KK, Og, T(1), gyg, g.O, w + gi * Og * KK, KK, T(0), col.data(), KK);
        col2im(col.data(), gx, g, n0, nb, gi);
      }
    }
  }
}


}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
  if (x.dtype() == DType::f32)
    conv_forward<float>(x.data_ptr<float>(), w.data_ptr<float>(), opt_out<float>(bias), y.data_ptr<float>(), g);
  else if (x.dtype() == DType::f64)
    conv_forward<double>(x.data_ptr<double>(), w.data_ptr<double>(), opt_out<double>(bias), y.data_ptr<double>(), g);
  else
    ADNN_FAIL("conv2d: unsupported dtype ", x.desc());
}

void conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeom& g) {
  if (x.dtype() == DType::f32)
    conv_backward<float>(gy.data_ptr<float>(), x.data_ptr<float>(), w.data_ptr<float>(), opt_out<float>(gx),
                         opt_out<float>(gw), opt_out<float>(gb), g);
  else if (x.dtype() == DType::f64)
    conv_backward<double>(gy.data_ptr<double>(), x.data_ptr<double>(), w.data_ptr<double>(), opt_out<double>(gx),
                          opt_out<double>(gw), opt_out<double>(gb), g);
  else
    ADNN_FAIL("conv2d backward: unsupported dtype ", x.desc());
}

}  // namespace adnn::cpu
