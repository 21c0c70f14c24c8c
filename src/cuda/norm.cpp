// The norm family's launchers (kernels/norm.cuh): batch norm (+ fused activation, MBConv
// epilogue) and layer norm, forward and backward.
#include <algorithm>

#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/norm.cuh"

namespace adnn::cuda {

using namespace launch_detail;

namespace {
// per-channel sums over M rows into `sums` (2, C) doubles or finalised into out0/out1;
// x and g in T, mean, invstd, w and b in P
template <class T, class P, class O>
void channel_sums(int mode, int fin, const Tensor& x, const Tensor& g, const Tensor& mean, const Tensor& invstd,
                  int64_t M, int64_t C, double eps, O* out0, O* out1, const Tensor& w = {}, const Tensor& b = {},
                  NormActivation act = NormActivation::none) {
  Tensor part = device_acc<double>(2 * k::channel_sum_slices(M) * C);
  k::launch_channel_sums<kt<T>, O, P>(mode, fin, ptr<T>(x), ptr<T>(g), ptr<P>(mean), ptr<P>(invstd), ptr<P>(w),
                                      ptr<P>(b), act, ptr<double>(part), M, C, eps, out0, out1, stream());
}
// Batch norm's storage and parameter types: (T, T) for f32/f64; (f16/bf16, f32) — the
// activations in 16 bits, the parameters and statistics in f32 (as cuDNN).
template <class F>
void bn_types(DType t, const char* op, F&& f) {
  dispatch::storage_and_math_types(t, op, "cuda", f);
}
// x in X, y/g in Y (X, or f32 for a 16-bit X), parameters and statistics in P
// (dispatch::storage_out_and_math_types).
template <class F>
void ln_types(DType x, DType y, const char* op, F&& f) {
  dispatch::storage_out_and_math_types(x, y, op, "cuda", f);
}
}  // namespace

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean,
                        const Tensor& invstd, const Tensor& y, int64_t M, int64_t C, bool compute_stats, double eps,
                        NormActivation act, const Tensor& residual, const Tensor& scale, int64_t rows_per_sample) {
  bn_types(x.dtype(), "batch_norm", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    if (compute_stats) {
      channel_sums<T, P, P>(k::ch_sum, k::fin_mean, x, {}, {}, {}, M, C, eps, ptr<P>(mean), nullptr);
      channel_sums<T, P, P>(k::ch_sqdev, k::fin_invstd, x, {}, mean, {}, M, C, eps, ptr<P>(invstd), nullptr);
    }
    // V channels a thread a step where C and every pointer allow it (the same bits either way):
    // 16 bytes of the wider of x and the parameters (bf16 x with f32 parameters: 4 channels, 8
    // bytes of x; 8 took 72–84 registers on sm_90, 25–38 % occupancy)
    constexpr int vmax = 16 / int(std::max(sizeof(T), sizeof(P)));
    const int v = k::vector_width_of(vmax, C,
                                     {{ptr<T>(x), sizeof(T)}, {ptr<T>(y), sizeof(T)}, {ptr<T>(residual), sizeof(T)},
                                      {ptr<P>(mean), sizeof(P)}, {ptr<P>(invstd), sizeof(P)},
                                      {ptr<P>(weight), sizeof(P)}, {ptr<P>(bias), sizeof(P)}});
    auto apply = [&](auto vc) {
      constexpr int V = decltype(vc)::value;
      ADNN_LAUNCH((k::bn_apply_kernel<kt<T>, P, V>), k::grid_for(M * C / V), dim3(256), 0, stream(), ptr<T>(x),
                  ptr<P>(mean), ptr<P>(invstd), ptr<P>(weight), ptr<P>(bias), ptr<T>(y), M, C, act, ptr<T>(residual),
                  ptr<P>(scale), k::div_index(M * C, C), k::div_index(M * C, scale.defined() ? rows_per_sample * C : 0));
    };
    k::with_full_width_or_scalar<vmax>(v, apply);
  });
}

void batch_norm_stats(const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& running_mean,
                      const Tensor& running_var, const Tensor& num_batches, int64_t M, int64_t C, double eps,
                      double momentum) {
  if (C == 0) return;  // (unreachable from batch_norm: training needs M > 1, so C > 0)
  bn_types(x.dtype(), "batch_norm_stats", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    Tensor part = device_acc<double>(3 * k::bn_stats_slices(M, C) * C);
    k::launch_bn_stats(ptr<T>(x), ptr<double>(part), M, C, eps, momentum, ptr<P>(mean), ptr<P>(invstd),
                       ptr<P>(running_mean), ptr<P>(running_var), ptr<int64_t>(num_batches), stream());
  });
}

void batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& bias,
                         const Tensor& mean, const Tensor& invstd, const Tensor& gx, const Tensor& gw, const Tensor& gb,
                         int64_t M, int64_t C, bool training, NormActivation act) {
  bn_types(x.dtype(), "batch_norm backward", [&](auto tag, auto ptag) {
    using T = decltype(tag);
    using P = decltype(ptag);
    Tensor sums = device_acc<double>(2 * C);
    channel_sums<T, P, double>(k::ch_grad, k::fin_sums, x, g, mean, invstd, M, C, 0.0, ptr<double>(sums),
                               ptr<double>(sums) + C, weight, bias, act);
    if (gx.defined() && M > 0) {  // gx, and gb/gw from its first row's threads
      constexpr int vmax = 16 / int(std::max(sizeof(T), sizeof(P)));  // as batch_norm_forward's
      const int v = k::vector_width_of(vmax, C,
                                       {{ptr<T>(g), sizeof(T)}, {ptr<T>(x), sizeof(T)}, {ptr<T>(gx), sizeof(T)},
                                        {ptr<double>(sums), sizeof(double)}, {ptr<P>(gb), sizeof(P)},
                                        {ptr<P>(gw), sizeof(P)},
                                        {ptr<P>(mean), sizeof(P)}, {ptr<P>(invstd), sizeof(P)},
                                        {ptr<P>(weight), sizeof(P)}, {ptr<P>(bias), sizeof(P)}});
      auto apply = [&](auto vc) {
        constexpr int V = decltype(vc)::value;
        ADNN_LAUNCH((k::bn_backward_apply_kernel<kt<T>, P, V>), k::grid_for(M * C / V), dim3(256), 0, stream(),
                    ptr<T>(g), ptr<T>(x), ptr<P>(weight), ptr<P>(bias), ptr<P>(mean), ptr<P>(invstd),
                    ptr<double>(sums), ptr<T>(gx), M, C, training, act, ptr<P>(gb), ptr<P>(gw), k::div_index(M * C, C));
      };
      k::with_full_width_or_scalar<vmax>(v, apply);
      return;
    }
    if (gb.defined()) copy(sums.narrow(0, 0, C), gb);
    if (gw.defined()) copy(sums.narrow(0, C, C), gw);
  });
}

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, const Tensor& mean,
                        const Tensor& rstd, int64_t M, int64_t D, double eps) {
  if (M == 0) return;
  ln_types(x.dtype(), y.dtype(), "layer_norm", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    using P = decltype(pt);
    constexpr int vmax = 16 / int(sizeof(X));
    const k::RowGeom rg = k::row_geom(
        M, D, vmax, {{ptr<X>(x), sizeof(X)}, {ptr<Y>(y), sizeof(Y)}, {ptr<P>(weight), sizeof(P)}, {ptr<P>(bias), sizeof(P)}});
    if (rg.fits)  // the row read once, from registers (kernels/rows.cuh)
      k::with_row_geom<vmax>(rg, [&](auto vc, auto nc) {
        constexpr int V = decltype(vc)::value, N = decltype(nc)::value;
        ADNN_LAUNCH((k::layer_norm_cached_kernel<kt<X>, kt<Y>, P, V, N>), k::row_blocks(rg), dim3(rg.tx, rg.ty), 0,
                    stream(), ptr<X>(x), ptr<P>(weight), ptr<P>(bias), ptr<Y>(y), ptr<P>(mean), ptr<P>(rstd), M, D, eps);
      });
    else
      ADNN_LAUNCH((k::layer_norm_rows_kernel<kt<X>, kt<Y>, P>), k::row_grid(M), dim3(k::row_threads(D)), 0, stream(),
                  ptr<X>(x), ptr<P>(weight), ptr<P>(bias), ptr<Y>(y), ptr<P>(mean), ptr<P>(rstd), M, D, eps);
  });
}

void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M,
                         int64_t D) {
  if (M == 0) return;
  ln_types(x.dtype(), g.dtype(), "layer_norm backward", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    using P = decltype(pt);
    if (gx.defined()) {
      constexpr int vmax = 16 / int(sizeof(X));
      const k::RowGeom rg = k::row_geom(
          M, D, vmax, {{ptr<Y>(g), sizeof(Y)}, {ptr<X>(x), sizeof(X)}, {ptr<X>(gx), sizeof(X)}, {ptr<P>(weight), sizeof(P)}});
      if (rg.fits)  // g and x read once, from registers (kernels/rows.cuh)
        k::with_row_geom<vmax>(rg, [&](auto vc, auto nc) {
          constexpr int V = decltype(vc)::value, N = decltype(nc)::value;
          ADNN_LAUNCH((k::layer_norm_backward_cached_kernel<kt<X>, kt<Y>, P, V, N>), k::row_blocks(rg),
                      dim3(rg.tx, rg.ty), 0, stream(), ptr<Y>(g), ptr<X>(x), ptr<P>(weight), ptr<P>(mean),
                      ptr<P>(rstd), ptr<X>(gx), M, D);
        });
      else
        ADNN_LAUNCH((k::layer_norm_backward_rows_kernel<kt<X>, kt<Y>, P>), k::row_grid(M), dim3(k::row_threads(D)), 0,
                    stream(), ptr<Y>(g), ptr<X>(x), ptr<P>(weight), ptr<P>(mean), ptr<P>(rstd), ptr<X>(gx), M, D);
    }
    if (gw.defined() || gb.defined()) {
      // two stages when M exceeds one slice (kernels/norm.cuh: deterministic, no atomics)
      // grid (slices, column tiles): the slices on x, whose limit is 2^31 − 1, not 65535
      const int64_t slices = k::ceil_div(M, k::kLnSliceRows);
      ADNN_CHECK(k::ceil_div(D, 32) <= 65535, "layer_norm backward (cuda): ", D,
                 " columns exceed the grid (65535 tiles of 32)");
      Tensor part = device_acc<double>(slices > 1 ? slices * 2 * D : 0);
      ADNN_LAUNCH((k::layer_norm_param_partials_kernel<kt<X>, kt<Y>, P>), dim3(unsigned(slices), k::ceil_div(D, 32)),
                  dim3(32, 8), 0, stream(), ptr<Y>(g), ptr<X>(x), ptr<P>(mean), ptr<P>(rstd), ptr<P>(gw), ptr<P>(gb),
                  slices > 1 ? ptr<double>(part) : nullptr, M, D);
      if (slices > 1)
        ADNN_LAUNCH(k::layer_norm_param_sum_kernel<P>, dim3(k::ceil_div(D, 256)), dim3(256), 0, stream(),
                    ptr<double>(part), ptr<P>(gw), ptr<P>(gb), slices, D);
    }
  });
}

void group_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, const Tensor& mean,
                        const Tensor& rstd, int64_t N, int64_t P, int64_t C, int64_t G, double eps) {
  if (N * G == 0) return;
  ADNN_CHECK(N * G < (int64_t(1) << 31), "group_norm (cuda): N·G = ", N * G, " exceeds the grid");
  storage_types(x.dtype(), "group_norm", [&](auto tag) {
    using T = decltype(tag);
    using A = common::acc_t<T>;  // mean, rstd
    ADNN_LAUNCH(k::group_norm_forward_kernel<kt<T>>, dim3(unsigned(N * G)), dim3(k::row_threads(P * C / G)), 0,
                stream(), ptr<T>(x), ptr<T>(weight), ptr<T>(bias), ptr<T>(y), ptr<A>(mean), ptr<A>(rstd), P, C, G, eps);
  });
}

void group_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd,
                         const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t N, int64_t P, int64_t C,
                         int64_t G) {
  if (N * G == 0) return;
  storage_types(x.dtype(), "group_norm backward", [&](auto tag) {
    using T = decltype(tag);
    using A = common::acc_t<T>;  // mean, rstd
    if (gx.defined())
      ADNN_LAUNCH(k::group_norm_backward_kernel<kt<T>>, dim3(unsigned(N * G)), dim3(k::row_threads(P * C / G)), 0,
                  stream(), ptr<T>(g), ptr<T>(x), ptr<T>(weight), ptr<A>(mean), ptr<A>(rstd), ptr<T>(gx), P, C, G);
    if (gw.defined() || gb.defined()) {  // the two stages of layer_norm_param_grads over the N·P rows
      const int64_t rows = N * P, slices = std::max<int64_t>(1, k::ceil_div(rows, k::kLnSliceRows));  // P = 0: zeros
      ADNN_CHECK(k::ceil_div(C, 32) <= 65535, "group_norm backward (cuda): ", C,
                 " channels exceed the grid (65535 tiles of 32)");
      Tensor part = device_acc<double>(slices > 1 ? slices * 2 * C : 0);
      ADNN_LAUNCH(k::group_norm_param_partials_kernel<kt<T>>, dim3(unsigned(slices), k::ceil_div(C, 32)), dim3(32, 8),
                  0, stream(), ptr<T>(g), ptr<T>(x), ptr<A>(mean), ptr<A>(rstd), ptr<T>(gw), ptr<T>(gb),
                  ptr<double>(part), rows, P, C, G);
      if (slices > 1)
        ADNN_LAUNCH(k::layer_norm_param_sum_kernel<kt<T>>, dim3(k::ceil_div(C, 256)), dim3(256), 0, stream(),
                    ptr<double>(part), ptr<T>(gw), ptr<T>(gb), slices, C);
    }
  });
}

}  // namespace adnn::cuda
