// CPU twin of kernels/conv.cuh: conv2d, NHWC activations, weights (O, KH, KW, C/groups).
//  - 1x1, stride 1, no padding, groups 1: one GEMM over all pixels.
//  - depthwise (groups == C == O): direct loops, vectorised over channels.
//  - otherwise: im2col per chunk of images and group, then GEMM. The input gradient of most
//    stride-1 convolutions (common::use_transposed_backward) is the forward of the transposed
//    convolution (common::transposed_geom: im2col of gy, one GEMM writing gx once); the rest
//    use a race-free gather form of col2im (each input pixel sums its own taps).
//  f16/bf16 storage: depthwise and im2col natively (f32 math, each output rounded once:
//  conv_forward_16 / conv_backward_16; bf16 columns and bf16 products with f32 accumulation in
//  cpu::gemm_bf16 where the CPU has AVX512-BF16); pointwise ones run as linear in the op layer.
#include <omp.h>

#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "common/conv.hpp"
#include "cpu/backend.hpp"
#include "cpu/convert.hpp"
#include "cpu/gemm.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

namespace {

// col (rows = nb*OH*OW, KK = KH*KW*Cg) for images [n0, n0+nb), group gi; TC: the column
// type (T, or f32 for 16-bit x: the widening fused into the copy)
template <class T, class TC = T>
void im2col(const T* x, TC* col, const ConvGeom& g, int64_t n0, int64_t nb, int64_t gi) {
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg, rows = nb * g.OH * g.OW;
  const bool whole_rows = g.groups == 1 && g.dw == 1;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t n = n0 + r / (g.OH * g.OW), oh = (r / g.OW) % g.OH, ow = r % g.OW;
    TC* dst = col + r * KK;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      int64_t ih = oh * g.sh - g.pt + kh * g.dh;
      if (whole_rows && ih >= 0 && ih < g.H) {
        // groups 1, dilation 1: the row's taps inside the image are one contiguous run of x
        const int64_t iw0 = ow * g.sw - g.pl, lo = std::clamp<int64_t>(-iw0, 0, g.KW),
                      hi = std::clamp<int64_t>(g.W - iw0, lo, g.KW);
        std::fill(dst, dst + lo * Cg, TC(0));
        if (hi > lo) {  // (with no tap inside, iw0 + lo may lie outside the row: no pointer to it)
          const T* src = x + ((n * g.H + ih) * g.W + iw0 + lo) * g.C;
          if constexpr (std::is_same_v<T, TC>)
            std::copy(src, src + (hi - lo) * Cg, dst + lo * Cg);
          else
            convert::widen(src, dst + lo * Cg, (hi - lo) * Cg);
        }
        std::fill(dst + hi * Cg, dst + g.KW * Cg, TC(0));
        dst += g.KW * Cg;
        continue;
      }
      for (int64_t kw = 0; kw < g.KW; ++kw, dst += Cg) {
        int64_t iw = ow * g.sw - g.pl + kw * g.dw;
        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) {
          std::fill(dst, dst + Cg, TC(0));
        } else {
          const T* src = x + ((n * g.H + ih) * g.W + iw) * g.C + gi * Cg;
          if constexpr (std::is_same_v<T, TC>) {
            std::copy(src, src + Cg, dst);
          } else if (Cg >= 16) {  // the multiversioned conversion (one call per tap)
            convert::widen(src, dst, Cg);
          } else {
#pragma omp simd
            for (int64_t c = 0; c < Cg; ++c) dst[c] = TC(src[c]);
          }
        }
      }
    }
  }
}

// gx[n, ih, iw, group channels] += sum of dcol taps that read it, for the chunk's images
// n0 … n0 + nb − 1; gx points at image n0
template <class T>
void col2im(const T* dcol, T* gx, const ConvGeom& g, int64_t nb, int64_t gi) {
  const int64_t Cg = g.C / g.groups, KK = g.KH * g.KW * Cg;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < nb; ++n)
    for (int64_t ih = 0; ih < g.H; ++ih)
      for (int64_t iw = 0; iw < g.W; ++iw) {
        T* dst = gx + ((n * g.H + ih) * g.W + iw) * g.C + gi * Cg;
        common::for_each_tap_reading(g, ih, iw, [&](int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
        const T* src = dcol + ((n * g.OH + oh) * g.OW + ow) * KK + (kh * g.KW + kw) * Cg;
        for (int64_t c = 0; c < Cg; ++c) dst[c] += src[c];
        });
      }
}

// acc[o] += Σ_r y[r, o] in double, rows in order (the bias gradient; chunks of rows in turn
// give the same sums as one pass)
template <class T>
void add_column_sums(const T* y, int64_t rows, int64_t O, double* acc) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < O; ++o) acc[o] += double(y[r * O + o]);
}

template <class T>
void add_bias(T* y, const T* b, int64_t rows, int64_t O) {
#pragma omp parallel for schedule(static) if (rows * O > 16384)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < O; ++o) y[r * O + o] += b[o];
}

// ---------------------------------------------------------------- depthwise
// Storage T: f32, f64, or f16/bf16 natively; the math in A = acc_t<T> (f32 for the 16-bit
// types: widened on load, accumulated in f32, rounded once on store), as kernels/conv.cuh.

// The accumulators of one pixel: the output row itself when T is A, else a per-thread
// buffer of C values of A rounded into the output row by store().
template <class T>
struct PixelAcc {
  using A = common::acc_t<T>;
  std::vector<A> buf;
  explicit PixelAcc(int64_t C) : buf(std::is_same_v<T, A> ? 0 : size_t(C)) {}
  A* row(T* out) {
    if constexpr (std::is_same_v<T, A>)
      return out;
    else
      return buf.data();
  }
  void store(T* out, int64_t C) {
    if constexpr (!std::is_same_v<T, A>)
      for (int64_t c = 0; c < C; ++c) out[c] = buf[size_t(c)];  // rounded once (operator=(float))
  }
};

template <class T>
void dw_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  using A = common::acc_t<T>;
  const int64_t C = g.C;
  std::vector<A> wt(size_t(g.KH * g.KW * C));  // (KH, KW, C)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < g.KH * g.KW; ++k) wt[k * C + c] = A(w[c * g.KH * g.KW + k]);
#pragma omp parallel
  {
    PixelAcc<T> acc(C);
#pragma omp for collapse(2) schedule(static)
    for (int64_t n = 0; n < g.N; ++n)
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          T* out = y + ((n * g.OH + oh) * g.OW + ow) * C;
          A* o = acc.row(out);
          for (int64_t c = 0; c < C; ++c) o[c] = b ? A(b[c]) : A(0);
          common::for_each_input_tap(g, oh, ow, [&](int64_t ih, int64_t iw, int64_t kh, int64_t kw) {
            const T* p = x + ((n * g.H + ih) * g.W + iw) * C;
            const A* q = wt.data() + (kh * g.KW + kw) * C;
            for (int64_t c = 0; c < C; ++c) o[c] += A(p[c]) * q[c];
          });
          acc.store(out, C);
        }
  }
}

template <class T>
void dw_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const ConvGeom& g) {
  using A = common::acc_t<T>;
  const int64_t C = g.C, KK = g.KH * g.KW;
  if (gx) {
    std::vector<A> wt(size_t(KK * C));
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < KK; ++k) wt[k * C + c] = A(w[c * KK + k]);
#pragma omp parallel
    {
      PixelAcc<T> acc(C);
#pragma omp for collapse(2) schedule(static)
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t ih = 0; ih < g.H; ++ih)
          for (int64_t iw = 0; iw < g.W; ++iw) {
            T* out = gx + ((n * g.H + ih) * g.W + iw) * C;
            A* dst = acc.row(out);
            for (int64_t c = 0; c < C; ++c) dst[c] = 0;
            common::for_each_tap_reading(g, ih, iw, [&](int64_t oh, int64_t ow, int64_t kh, int64_t kw) {
              const T* src = gy + ((n * g.OH + oh) * g.OW + ow) * C;
              const A* q = wt.data() + (kh * g.KW + kw) * C;
              for (int64_t c = 0; c < C; ++c) dst[c] += A(src[c]) * q[c];
            });
            acc.store(out, C);
          }
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
              for (int64_t c = 0; c < C; ++c) q[c] += double(A(p[c]) * A(go[c]));
            });
          }
    }
    if (gw)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t k = 0; k < KK; ++k) {
          double s = 0;
          for (int t = 0; t < nt; ++t) s += aw[size_t(t) * KK * C + k * C + c];
          gw[c * KK + k] = T(A(s));
        }
    if (gb)
      for (int64_t c = 0; c < C; ++c) {
        double s = 0;
        for (int t = 0; t < nt; ++t) s += ab[size_t(t) * C + c];
        gb[c] = T(A(s));
      }
  }
}

// ---------------------------------------------------------------- general
// The plan with the CPU's column bound (common::kConvColElementsCpu)
inline common::ConvPlan cpu_plan(const ConvGeom& g) {
  return common::conv_plan(g, common::kConvColElementsCpu);
}

// A scratch buffer that starts uninitialised: std::vector would zero it — a memset of up to
// 2 MiB of f32 columns (or one image's, where larger) per call that im2col and the beta = 0
// GEMMs overwrite anyway.
template <class T>
std::unique_ptr<T[]> scratch(int64_t n) {
  static_assert(std::is_trivially_default_constructible_v<T>);
  return std::unique_ptr<T[]>(new T[size_t(std::max<int64_t>(n, 1))]);
}

template <class T>
void conv_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  const int64_t P = g.OH * g.OW;
  const common::ConvPlan plan = cpu_plan(g);
  if (plan.path == common::ConvPath::pointwise) {
    gemm(false, true, g.N * P, g.O, g.C, T(1), x, g.C, w, g.C, T(0), y, g.O);
  } else if (plan.path == common::ConvPath::depthwise) {
    dw_forward<T>(x, w, nullptr, y, g);
  } else {
    const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
    const int64_t nbmax = plan.chunk_images;
    const std::unique_ptr<T[]> col = scratch<T>(plan.col_elements);
    for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
      int64_t nb = std::min(nbmax, g.N - n0);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        im2col(x, col.get(), g, n0, nb, gi);
        gemm(false, true, nb * P, Og, KK, T(1), col.get(), KK, w + gi * Og * KK, KK, T(0), y + n0 * P * g.O + gi * Og,
             g.O);
      }
    }
  }
  if (b) add_bias(y, b, g.N * P, g.O);
}

// w (O, KH, KW, Cg) → wt (C, KH, KW, Og): per group, turned 180° with the in and out channels
// swapped — the weights of the transposed convolution (common::transposed_geom)
template <class T>
std::vector<T> transposed_weights(const T* w, const ConvGeom& g) {
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KHW = g.KH * g.KW;
  std::vector<T> wt(size_t(g.O * KHW * Cg));
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t o = 0; o < Og; ++o)
      for (int64_t t = 0; t < KHW; ++t)  // tap t = kh·KW + kw of w is tap KHW−1−t of wt
        for (int64_t c = 0; c < Cg; ++c)
          wt[size_t(((gi * Cg + c) * KHW + (KHW - 1 - t)) * Og + o)] = w[((gi * Og + o) * KHW + t) * Cg + c];
  return wt;
}

template <class T>
void conv_backward(const T* gy, const T* x, const T* w, T* gx, T* gw, T* gb, const ConvGeom& g) {
  const int64_t P = g.OH * g.OW;
  if (gx && common::use_transposed_backward(g)) {
    conv_forward<T>(gy, transposed_weights(w, g).data(), nullptr, gx, common::transposed_geom(g));
    gx = nullptr;  // done: what follows computes gb and gw only
  }
  if (gb) {
    std::vector<double> acc(size_t(g.O), 0.0);
    add_column_sums(gy, g.N * P, g.O, acc.data());
    for (int64_t o = 0; o < g.O; ++o) gb[o] = T(acc[size_t(o)]);
  }
  const common::ConvPlan plan = cpu_plan(g);
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
  if (!gx && !gw) return;
  const std::unique_ptr<T[]> col = scratch<T>(plan.col_elements);
  if (gx) std::fill(gx, gx + g.N * g.H * g.W * g.C, T(0));
  if (gw) std::fill(gw, gw + g.O * KK, T(0));
  for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
    int64_t nb = std::min(nbmax, g.N - n0);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const T* gyg = gy + n0 * P * g.O + gi * Og;
      if (gw) {
        im2col(x, col.get(), g, n0, nb, gi);
        gemm(true, false, Og, KK, nb * P, T(1), gyg, g.O, col.get(), KK, T(1), gw + gi * Og * KK, KK);
      }
      if (gx) {
        gemm(false, false, nb * P, KK, Og, T(1), gyg, g.O, w + gi * Og * KK, KK, T(0), col.get(), KK);
        col2im(col.get(), gx + n0 * g.H * g.W * g.C, g, nb, gi);
      }
    }
  }
}

// 16-bit storage S on the im2col path: x, w, b, y (and gy, gx, gw, gb) in S, everything in
// between in f32 — the columns widened as they are gathered, f32 GEMMs and accumulation, each
// output rounded once (kernels/conv.cuh's 16-bit path keeps the same semantics).
template <class S>
std::vector<float> widen(const S* p, int64_t n) {
  std::vector<float> out(size_t(n > 0 ? n : 0));
  convert::widen_parallel(p, out.data(), n);
  return out;
}
template <class S>
void narrow(const float* p, S* out, int64_t n) {
  convert::narrow_parallel(p, out, n);  // rounded once
}

// bf16 columns and operands go straight into gemm_bf16 where the CPU has the bf16 dot product
// (cpu::bf16_dot_available); f16, and bf16 elsewhere, gather f32 columns for the f32 GEMM.
inline bool bf16_dot(bfloat16) {
  return bf16_dot_available();
}
inline bool bf16_dot(half) {
  return false;
}

// The f32 intermediates are per chunk of images (the chunk's outputs, gy and gx), widened and
// rounded while they are in cache, not whole tensors.
template <class S>
void conv_forward_16(const S* x, const S* w, const S* b, S* y, const ConvGeom& g) {
  const int64_t P = g.OH * g.OW;
  const common::ConvPlan plan = cpu_plan(g);
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
  const bool dot = bf16_dot(S{});  // bf16 columns and weights straight into gemm_bf16
  const std::vector<float> wf = dot ? std::vector<float>() : widen(w, g.O * KK),
                           bf = b ? widen(b, g.O) : std::vector<float>();
  const std::unique_ptr<float[]> col = scratch<float>(dot ? 0 : plan.col_elements),
                                 yf = scratch<float>(std::min(plan.chunk_images, g.N) * P * g.O);
  const std::unique_ptr<uint16_t[]> col16_bits = scratch<uint16_t>(dot ? plan.col_elements : 0);
  S* const col16 = reinterpret_cast<S*>(col16_bits.get());  // S's default constructor would zero it
  for (int64_t n0 = 0; n0 < g.N; n0 += plan.chunk_images) {
    const int64_t nb = std::min(plan.chunk_images, g.N - n0);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      if constexpr (std::is_same_v<S, bfloat16>)
        if (dot) {
          im2col<S, S>(x, col16, g, n0, nb, gi);
          gemm_bf16(false, true, nb * P, Og, KK, col16, KK, w + gi * Og * KK, KK, 0.0f, yf.get() + gi * Og, g.O);
          continue;
        }
      im2col<S, float>(x, col.get(), g, n0, nb, gi);
      gemm(false, true, nb * P, Og, KK, 1.0f, col.get(), KK, wf.data() + gi * Og * KK, KK, 0.0f, yf.get() + gi * Og,
           g.O);
    }
    if (b) add_bias(yf.get(), bf.data(), nb * P, g.O);
    narrow(yf.get(), y + n0 * P * g.O, nb * P * g.O);
  }
}

template <class S>
void conv_backward_16(const S* gy, const S* x, const S* w, S* gx, S* gw, S* gb, const ConvGeom& g) {
  if (gx && common::use_transposed_backward(g)) {  // as conv_backward: the transposed forward
    conv_forward_16<S>(gy, transposed_weights(w, g).data(), nullptr, gx, common::transposed_geom(g));
    gx = nullptr;
    if (!gw && !gb) return;
  }
  const int64_t P = g.OH * g.OW, HWC = g.H * g.W * g.C;
  const common::ConvPlan plan = cpu_plan(g);
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
  const int64_t nbmax = std::min(plan.chunk_images, g.N);
  // bf16 with the dot product: the weight gradient is gemm_bf16 of gy and bf16 columns as
  // stored; gy is widened only for the col2im input gradient
  const bool dot = bf16_dot(S{}), wide_gy = gx || !dot;
  const std::vector<float> wf = (gx || (gw && !dot)) ? widen(w, g.O * KK) : std::vector<float>();
  const std::unique_ptr<float[]> col = scratch<float>(gx || (gw && !dot) ? plan.col_elements : 0),
                                 gyf = scratch<float>(wide_gy ? nbmax * P * g.O : 0),
                                 gxf = scratch<float>(gx ? nbmax * HWC : 0);
  const std::unique_ptr<uint16_t[]> col16_bits = scratch<uint16_t>(gw && dot ? plan.col_elements : 0);
  S* const col16 = reinterpret_cast<S*>(col16_bits.get());  // S's default constructor would zero it
  std::vector<float> gwf(gw ? size_t(g.O * KK) : 0);  // accumulated over the chunks: zeroed
  std::vector<double> acc(gb ? size_t(g.O) : 0, 0.0);
  for (int64_t n0 = 0; n0 < g.N; n0 += plan.chunk_images) {
    const int64_t nb = std::min(plan.chunk_images, g.N - n0);
    const S* gyc = gy + n0 * P * g.O;
    if (wide_gy) convert::widen_parallel(gyc, gyf.get(), nb * P * g.O);
    if (gb) {
      if (wide_gy)
        add_column_sums(gyf.get(), nb * P, g.O, acc.data());
      else
        add_column_sums(gyc, nb * P, g.O, acc.data());
    }
    if (gx) std::fill(gxf.get(), gxf.get() + nb * HWC, 0.0f);
    for (int64_t gi = 0; gi < g.groups; ++gi) {
      const float* gyg = wide_gy ? gyf.get() + gi * Og : nullptr;
      if (gw && dot) {
        if constexpr (std::is_same_v<S, bfloat16>) {
          im2col<S, S>(x, col16, g, n0, nb, gi);
          gemm_bf16(true, false, Og, KK, nb * P, gyc + gi * Og, g.O, col16, KK, 1.0f, gwf.data() + gi * Og * KK, KK);
        }
      } else if (gw) {
        im2col<S, float>(x, col.get(), g, n0, nb, gi);
        gemm(true, false, Og, KK, nb * P, 1.0f, gyg, g.O, col.get(), KK, 1.0f, gwf.data() + gi * Og * KK, KK);
      }
      if (gx) {
        gemm(false, false, nb * P, KK, Og, 1.0f, gyg, g.O, wf.data() + gi * Og * KK, KK, 0.0f, col.get(), KK);
        col2im(col.get(), gxf.get(), g, nb, gi);
      }
    }
    if (gx) narrow(gxf.get(), gx + n0 * HWC, nb * HWC);
  }
  if (gb)
    for (int64_t o = 0; o < g.O; ++o) gb[o] = float(acc[size_t(o)]);
  if (gw) narrow(gwf.data(), gw, int64_t(gwf.size()));
}

}  // namespace

// f16/bf16: the depthwise kernels in 16-bit storage, and the im2col path with f32 columns
// (the op layer runs pointwise convolutions in 16 bits as one GEMM).
template <class F>
void reduced(const Tensor& x, const ConvGeom& g, const char* op, F&& f) {
  ADNN_CHECK(common::conv_plan(g).path != common::ConvPath::pointwise, op, ": ", dtype_name(x.dtype()),
             " pointwise convolutions run as linear (src/ops/nn_ops.cpp), got input ", x.desc());
  if (x.dtype() == DType::f16)
    f(half{});
  else
    f(bfloat16{});
}

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
  if (x.dtype() == DType::f16 || x.dtype() == DType::bf16)
    reduced(x, g, "conv2d", [&](auto tag) {
      using T = decltype(tag);
      if (common::conv_plan(g).path == common::ConvPath::depthwise)
        dw_forward<T>(x.data_ptr<T>(), w.data_ptr<T>(), opt_out<T>(bias), y.data_ptr<T>(), g);
      else
        conv_forward_16<T>(x.data_ptr<T>(), w.data_ptr<T>(), opt_out<T>(bias), y.data_ptr<T>(), g);
    });
  else if (x.dtype() == DType::f32)
    conv_forward<float>(x.data_ptr<float>(), w.data_ptr<float>(), opt_out<float>(bias), y.data_ptr<float>(), g);
  else if (x.dtype() == DType::f64)
    conv_forward<double>(x.data_ptr<double>(), w.data_ptr<double>(), opt_out<double>(bias), y.data_ptr<double>(), g);
  else
    ADNN_FAIL("conv2d: unsupported dtype ", x.desc());
}

void conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeom& g) {
  if (x.dtype() == DType::f16 || x.dtype() == DType::bf16)
    reduced(x, g, "conv2d backward", [&](auto tag) {
      using T = decltype(tag);
      if (common::conv_plan(g).path == common::ConvPath::depthwise)
        dw_backward<T>(gy.data_ptr<T>(), x.data_ptr<T>(), w.data_ptr<T>(), opt_out<T>(gx), opt_out<T>(gw),
                       opt_out<T>(gb), g);
      else
        conv_backward_16<T>(gy.data_ptr<T>(), x.data_ptr<T>(), w.data_ptr<T>(), opt_out<T>(gx), opt_out<T>(gw),
                            opt_out<T>(gb), g);
    });
  else if (x.dtype() == DType::f32)
    conv_backward<float>(gy.data_ptr<float>(), x.data_ptr<float>(), w.data_ptr<float>(), opt_out<float>(gx),
                         opt_out<float>(gw), opt_out<float>(gb), g);
  else if (x.dtype() == DType::f64)
    conv_backward<double>(gy.data_ptr<double>(), x.data_ptr<double>(), w.data_ptr<double>(), opt_out<double>(gx),
                          opt_out<double>(gw), opt_out<double>(gb), g);
  else
    ADNN_FAIL("conv2d backward: unsupported dtype ", x.desc());
}

}  // namespace adnn::cpu
