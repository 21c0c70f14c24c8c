// The conv family's launchers (kernels/conv.cuh): the path of common::conv_plan — one GEMM
// (pointwise), the direct depthwise kernels, or im2col + GEMM per chunk of images.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/conv.cuh"
#include "kernels/norm.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- convolution

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
  float_types(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
        const int64_t P = g.OH * g.OW;
    const common::ConvPlan plan = common::conv_plan(g);
    if (plan.path == common::ConvPath::depthwise) {
      ADNN_LAUNCH(k::depthwise_forward_kernel<T>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(w),
                  ptr<T>(bias), ptr<T>(y), g);
      return;
    }
    if (plan.path == common::ConvPath::pointwise) {
      gemm(false, true, g.N * P, g.O, g.C, T(1), ptr<T>(x), g.C, ptr<T>(w), g.C, T(0), ptr<T>(y), g.O);
    } else {
      const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg, nbmax = plan.chunk_images;
      Tensor col = empty({plan.col_elements}, TensorOptions(x.dtype(), kCUDA));
      for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
        const int64_t nb = std::min(nbmax, g.N - n0);
        for (int64_t gi = 0; gi < g.groups; ++gi) {
          ADNN_LAUNCH(k::im2col_kernel<T>, k::grid_for(nb * P * KK), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(col), g,
                      n0, nb, gi);
          gemm(false, true, nb * P, Og, KK, T(1), ptr<T>(col), KK, ptr<T>(w) + gi * Og * KK, KK, T(0),
               ptr<T>(y) + n0 * P * g.O + gi * Og, g.O);
        }
      }
    }
    if (bias.defined())
      ADNN_LAUNCH(k::bias_add_kernel<T>, k::grid_for(g.N * P * g.O), dim3(256), 0, stream(), ptr<T>(y), ptr<T>(bias),
                  g.N * P, g.O);
  });
}

void conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeom& g) {
  float_types(x.dtype(), "conv2d backward", [&](auto tag) {
    using T = decltype(tag);
        const int64_t P = g.OH * g.OW;
    const common::ConvPlan plan = common::conv_plan(g);
    if (gb.defined()) {  // column sums of gy (N·OH·OW, O)
      Tensor part = device_f64(2 * k::channel_sum_slices(g.N * P) * g.O);
      k::launch_channel_sums<T, T>(k::ch_sum, k::fin_sums, ptr<T>(gy), nullptr, nullptr, nullptr, nullptr, nullptr,
                                   NormActivation::none, ptr<double>(part), g.N * P, g.O, 0.0, ptr<T>(gb), nullptr,
                                   stream());
    }
    if (plan.path == common::ConvPath::depthwise) {
      if (gx.defined())
        ADNN_LAUNCH(k::depthwise_backward_input_kernel<T>, k::grid_for(gx.numel()), dim3(256), 0, stream(), ptr<T>(gy),
                    ptr<T>(w), ptr<T>(gx), g);
      if (gw.defined()) {
        // one block per weight element; as many threads as output positions, 32..256
        unsigned threads = 32;
        while (threads < 256 && int64_t(threads) < g.N * P) threads *= 2;
        ADNN_LAUNCH(k::depthwise_backward_weight_kernel<T>, dim3(unsigned(g.C * g.KH * g.KW)), dim3(threads), 0,
                    stream(), ptr<T>(gy), ptr<T>(x), ptr<T>(gw), g);
      }
      return;
    }
    if (plan.path == common::ConvPath::pointwise) {
      if (gx.defined()) gemm(false, false, g.N * P, g.C, g.O, T(1), ptr<T>(gy), g.O, ptr<T>(w), g.C, T(0), ptr<T>(gx), g.C);
      if (gw.defined()) gemm(true, false, g.O, g.C, g.N * P, T(1), ptr<T>(gy), g.O, ptr<T>(x), g.C, T(0), ptr<T>(gw), g.C);
      return;
    }
    const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg, nbmax = plan.chunk_images;
    Tensor col = empty({plan.col_elements}, TensorOptions(x.dtype(), kCUDA));
    if (gx.defined()) fill(gx, 0.0);
    if (gw.defined()) fill(gw, 0.0);
    for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
      const int64_t nb = std::min(nbmax, g.N - n0);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const T* gyg = ptr<T>(gy) + n0 * P * g.O + gi * Og;
        if (gw.defined()) {
          ADNN_LAUNCH(k::im2col_kernel<T>, k::grid_for(nb * P * KK), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(col), g,
                      n0, nb, gi);
          gemm(true, false, Og, KK, nb * P, T(1), gyg, g.O, ptr<T>(col), KK, T(1), ptr<T>(gw) + gi * Og * KK, KK);
        }
        if (gx.defined()) {
          gemm(false, false, nb * P, KK, Og, T(1), gyg, g.O, ptr<T>(w) + gi * Og * KK, KK, T(0), ptr<T>(col), KK);
          ADNN_LAUNCH(k::col2im_kernel<T>, k::grid_for(nb * g.H * g.W * Cg), dim3(256), 0, stream(), ptr<T>(col),
                      ptr<T>(gx), g, n0, nb, gi);
        }
      }
    }
  });
}

}  // namespace adnn::cuda
