// The conv family's launchers (kernels/conv.cuh): the path of common::conv_plan — one GEMM
// (pointwise), the direct depthwise kernels, or im2col + GEMM per chunk of images.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/conv.cuh"
#include "kernels/norm.cuh"

#include <algorithm>
#include <type_traits>

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- convolution

namespace {
// col (nb·OH·OW, KH·KW·Cg) from images [n0, n0 + nb) of x, group gi: the tiled kernel for
// channel groups narrower than a line (k::im2col_tiling), the direct one otherwise.
template <class KT, class KC>
void launch_im2col(const KT* x, KC* col, const ConvGeom& g, int64_t n0, int64_t nb, int64_t gi) {
  const k::Im2colTiling t = k::im2col_tiling(g, sizeof(KT), sizeof(KC));
  if (!t.tiled) {
    ADNN_LAUNCH((k::im2col_kernel<KT, KC>), k::grid_for(nb * g.OH * g.OW * g.KH * g.KW * (g.C / g.groups)), dim3(256),
                0, stream(), x, col, g, n0, nb, gi);
    return;
  }
  const int64_t blocks = nb * g.OH * t.tiles_w;
  ADNN_CHECK(blocks < (int64_t(1) << 31), "conv2d (cuda): im2col of ", nb, " images of ", g.OH, "x", g.OW,
             " outputs needs ", blocks, " blocks, over the grid's 2^31 - 1");
  k::with_index_type(k::depthwise_index_fits(g), [&](auto it) {
    using I = decltype(it);
    ADNN_LAUNCH((k::im2col_tiled_kernel<KT, KC, I>), dim3(unsigned(blocks)), dim3(256), t.smem, stream(), x, col, g, n0,
                gi, t.tw, t.pitch, int(t.tiles_w));
  });
}

// gx (+=) of images [n0, n0 + nb), group gi, from gy_g (nb·OH·OW rows, ld O) and w_g (Og, KK):
// the GEMM writes dcol into col — transposed, (KK, nb·OH·OW), for the tiled gather of narrow
// channel groups (k::col2im_tiling), else (nb·OH·OW, KK) for the direct kernel — then col2im.
// S: the storage of gy and w — T itself, or f16/bf16 with f32 col and gx (the GEMM reads 16 bits,
// accumulates and writes f32: GemmDesc::c_f32).
template <class S, class T>
void col2im_from(const S* gyg, const S* wg, T* col, T* gx, const ConvGeom& g, int64_t n0, int64_t nb, int64_t gi) {
  const int64_t P = nb * g.OH * g.OW, Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
  const k::Col2imTiling t = k::col2im_tiling(g, nb, sizeof(T));
  auto product = [&](bool ta, bool tb, int64_t M, int64_t N, int64_t K, const S* a, int64_t lda, const S* b,
                     int64_t ldb, int64_t ldc) {  // col (M, N) = op(a) · op(b)
    if constexpr (std::is_same_v<S, T>) {
      gemm(ta, tb, M, N, K, T(1), a, lda, b, ldb, T(0), col, ldc);
    } else {
      GemmDesc d;
      d.dtype = dtype_of<S>::value;
      d.ta = ta, d.tb = tb, d.M = M, d.N = N, d.K = K, d.lda = lda, d.ldb = ldb, d.ldc = ldc;
      d.A = a, d.B = b, d.C = col, d.c_f32 = true;
      gemm_ex(d);
    }
  };
  if (!t.tiled) {
    product(false, false, P, KK, Og, gyg, g.O, wg, KK, KK);
    ADNN_LAUNCH(k::col2im_kernel<T>, k::grid_for(nb * g.H * g.W * Cg), dim3(256), 0, stream(), col, gx, g, n0, nb, gi);
    return;
  }
  product(true, true, KK, P, Og, wg, KK, gyg, g.O, P);
  ADNN_CHECK(t.tiles < (int64_t(1) << 31), "conv2d backward (cuda): col2im of ", nb, " images of ", g.H, "x", g.W,
             " needs ", t.tiles, " blocks, over the grid's 2^31 - 1");
  ADNN_LAUNCH(k::col2im_tiled_kernel<T>, dim3(unsigned(t.tiles)), dim3(256), t.smem, stream(), col, gx, g, n0, nb, gi,
              t.ti, t.th, t.tw, t.L, t.pitch);
}

}  // namespace

namespace {
template <class T>
void depthwise_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
  using KT = kt<T>;
  using A = k::acc_t<KT>;
  const int v = k::vector_width<T>(g.C, {ptr<T>(x), ptr<T>(bias), ptr<T>(y)});
  k::with_vector_width<T>(v, [&](auto vc) {
    constexpr int V = decltype(vc)::value;
    const k::DepthwiseTiling t = k::depthwise_tiling(g.C, V, g.KH * g.KW, sizeof(A));
    const dim3 block(unsigned(t.lanes * t.rows));
    const size_t smem = size_t(g.KH * g.KW * V * t.pitch) * sizeof(A);
    constexpr int TW = k::kDepthwiseRowTile;
    if (const int kw = k::depthwise_rows_kw(g); kw && k::depthwise_index_fits(g)) {
      // one item (TW output pixels of a row) per thread: each block's weight tile serves TW·rows
      // pixels; 32-bit indices only (tensors of 2^30 elements or more take the per-pixel kernel)
      const int64_t items = g.N * g.OH * ((g.OW + TW - 1) / TW);
      const unsigned blocks = unsigned(std::clamp<int64_t>((items + t.rows - 1) / t.rows, 1, 65535));
      {
        using I = int;
        // one ADNN_LAUNCH per instantiation: the launch is traced under the kernel's own name
        const dim3 grid(unsigned(t.tiles), blocks);
        if (kw == 3 && g.sw == 1)
          ADNN_LAUNCH((k::depthwise_forward_rows_kernel<KT, V, I, 3, 1, TW>), grid, block, smem, stream(), ptr<T>(x),
                      ptr<T>(w), ptr<T>(bias), ptr<T>(y), g, t.lanes, t.pitch);
        if (kw == 3 && g.sw == 2)
          ADNN_LAUNCH((k::depthwise_forward_rows_kernel<KT, V, I, 3, 2, TW>), grid, block, smem, stream(), ptr<T>(x),
                      ptr<T>(w), ptr<T>(bias), ptr<T>(y), g, t.lanes, t.pitch);
        if (kw == 5 && g.sw == 1)
          ADNN_LAUNCH((k::depthwise_forward_rows_kernel<KT, V, I, 5, 1, TW>), grid, block, smem, stream(), ptr<T>(x),
                      ptr<T>(w), ptr<T>(bias), ptr<T>(y), g, t.lanes, t.pitch);
        if (kw == 5 && g.sw == 2)
          ADNN_LAUNCH((k::depthwise_forward_rows_kernel<KT, V, I, 5, 2, TW>), grid, block, smem, stream(), ptr<T>(x),
                      ptr<T>(w), ptr<T>(bias), ptr<T>(y), g, t.lanes, t.pitch);
      }
      return;
    }
    // about 4 pixels per thread, so that each block's weight tile serves 4·rows pixels
    const int64_t px = g.N * g.OH * g.OW, blocks = std::min<int64_t>((px + 4 * t.rows - 1) / (4 * t.rows), 65535);
    k::with_index_type(k::depthwise_index_fits(g), [&](auto it) {
      using I = decltype(it);
      ADNN_LAUNCH((k::depthwise_forward_kernel<KT, V, I>), dim3(unsigned(t.tiles), unsigned(std::max<int64_t>(blocks, 1))),
                  block, smem, stream(), ptr<T>(x), ptr<T>(w), ptr<T>(bias), ptr<T>(y), g, t.lanes, t.pitch);
    });
  });
}
}  // namespace

namespace {
bool is_16bit(DType t) {
  return t == DType::f16 || t == DType::bf16;
}

// The im2col path with f16/bf16 x, w, b, y: 16-bit columns, one GemmDesc per chunk and group
// (f32 accumulation, bias epilogue, one rounding on store: tensor cores on a GPU).
void conv_forward_16(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
  const common::ConvPlan plan = common::conv_plan(g);
  const int64_t P = g.OH * g.OW, Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
  const size_t es = dtype_size(x.dtype());
  Tensor col = empty({plan.col_elements}, TensorOptions(x.dtype(), kCUDA));
  storage_types(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    for (int64_t n0 = 0; n0 < g.N; n0 += plan.chunk_images) {
      const int64_t nb = std::min(plan.chunk_images, g.N - n0);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        launch_im2col(ptr<T>(x), ptr<T>(col), g, n0, nb, gi);
        GemmDesc d;
        d.dtype = x.dtype();
        d.ta = false;
        d.tb = true;
        d.M = nb * P, d.N = Og, d.K = KK, d.lda = KK, d.ldb = KK, d.ldc = g.O;
        d.A = col.data_ptr();
        d.B = static_cast<const char*>(w.data_ptr()) + size_t(gi * Og * KK) * es;
        d.C = static_cast<char*>(y.data_ptr()) + size_t(n0 * P * g.O + gi * Og) * es;
        if (bias.defined()) {
          d.bias = static_cast<const char*>(bias.data_ptr()) + size_t(gi * Og) * es;
          d.epilogue = GemmEpilogue::bias;
        }
        gemm_ex(d);
      }
    }
  });
}

// Its backward: 16-bit gy, w and columns straight into GEMMs that accumulate and write f32
// (GemmDesc::c_f32: tensor cores on a GPU, no f32 copy of gy or w) — dcol = gy · w scattered by
// col2im into an f32 gx, and gw summed over the chunks in f32 (GemmDesc::accumulate) — then gx
// and gw rounded once.
void conv_backward_16(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                      const ConvGeom& g) {
  if (!gx.defined() && !gw.defined()) return;
  const common::ConvPlan plan = common::conv_plan(g);
  const int64_t P = g.OH * g.OW, Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg;
  const TensorOptions f32(DType::f32, kCUDA);
  Tensor gxf = gx.defined() ? empty(gx.sizes(), f32) : Tensor();  // (N, H, W, C)
  Tensor gwf = gw.defined() ? empty(gw.sizes(), f32) : Tensor();  // (O, KH, KW, Cg)
  // one buffer: x's 16-bit columns (gw), then the f32 dcol (gx) — the stream orders the weight
  // gradient's read of the first before the input gradient's GEMM writes the second
  Tensor col = empty({plan.col_elements}, gx.defined() ? f32 : TensorOptions(x.dtype(), kCUDA));
  if (gxf.defined()) fill(gxf, 0.0);               // col2im adds each chunk's taps
  if (gwf.defined() && g.N == 0) fill(gwf, 0.0);  // no chunk writes it
  storage_types(x.dtype(), "conv2d backward", [&](auto tag) {
    using T = decltype(tag);
    for (int64_t n0 = 0; n0 < g.N; n0 += plan.chunk_images) {
      const int64_t nb = std::min(plan.chunk_images, g.N - n0);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        // host types (T: half or bfloat16) for the GEMMs, which take untyped pointers
        const T* gyg = static_cast<const T*>(gy.data_ptr()) + n0 * P * g.O + gi * Og;  // (nb·P, Og), ld O
        const T* wg = static_cast<const T*>(w.data_ptr()) + gi * Og * KK;               // (Og, KK)
        if (gwf.defined()) {  // gw_g (Og, KK) (+)= gy_gᵀ · col
          launch_im2col(ptr<T>(x), static_cast<kt<T>*>(col.data_ptr()), g, n0, nb, gi);
          GemmDesc d;
          d.dtype = x.dtype();
          d.ta = true, d.tb = false, d.M = Og, d.N = KK, d.K = nb * P, d.lda = g.O, d.ldb = KK, d.ldc = KK;
          d.A = gyg, d.B = col.data_ptr(), d.C = ptr<float>(gwf) + gi * Og * KK;
          d.c_f32 = true;
          d.accumulate = n0 > 0;  // the first chunk writes
          gemm_ex(d);
        }
        if (gxf.defined()) col2im_from(gyg, wg, ptr<float>(col), ptr<float>(gxf), g, n0, nb, gi);
      }
    }
  });
  if (gx.defined()) copy(gxf, gx);
  if (gw.defined()) copy(gwf, gw);
}
}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
  const common::ConvPlan plan = common::conv_plan(g);
  if (plan.path == common::ConvPath::depthwise) {
    storage_types(x.dtype(), "conv2d", [&](auto tag) { depthwise_forward<decltype(tag)>(x, w, bias, y, g); });
    return;
  }
  if (is_16bit(x.dtype())) {
    ADNN_CHECK(plan.path == common::ConvPath::im2col, "conv2d (cuda): ", dtype_name(x.dtype()),
               " pointwise convolutions run as linear (src/ops/nn_ops.cpp), got input ", x.desc());
    conv_forward_16(x, w, bias, y, g);
    return;
  }
  float_types(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const int64_t P = g.OH * g.OW;
    if (plan.path == common::ConvPath::pointwise) {
      gemm(false, true, g.N * P, g.O, g.C, T(1), ptr<T>(x), g.C, ptr<T>(w), g.C, T(0), ptr<T>(y), g.O);
    } else {
      const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg, nbmax = plan.chunk_images;
      Tensor col = empty({plan.col_elements}, TensorOptions(x.dtype(), kCUDA));
      for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
        const int64_t nb = std::min(nbmax, g.N - n0);
        for (int64_t gi = 0; gi < g.groups; ++gi) {
          launch_im2col(ptr<T>(x), ptr<T>(col), g, n0, nb, gi);
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

namespace {
// column sums of gy (N·OH·OW, O) into gb (O), in f64; 16-bit gb through an f32 copy
template <class T>
void bias_grad(const Tensor& gy, const Tensor& gb, int64_t rows, int64_t O) {
  Tensor part = device_acc<double>(2 * k::channel_sum_slices(rows) * O);
  if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16>) {
    Tensor g32 = empty({O}, TensorOptions(DType::f32, kCUDA));
    k::launch_channel_sums<kt<T>, float, float>(k::ch_sum, k::fin_sums, ptr<T>(gy), nullptr, nullptr, nullptr, nullptr,
                                                nullptr, NormActivation::none, ptr<double>(part), rows, O, 0.0,
                                                ptr<float>(g32), nullptr, stream());
    copy(g32, gb);
  } else {
    k::launch_channel_sums<T, T, T>(k::ch_sum, k::fin_sums, ptr<T>(gy), nullptr, nullptr, nullptr, nullptr, nullptr,
                                    NormActivation::none, ptr<double>(part), rows, O, 0.0, ptr<T>(gb), nullptr,
                                    stream());
  }
}

template <class T>
void depthwise_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                        const ConvGeom& g) {
  using KT = kt<T>;
  using A = k::acc_t<KT>;
  const int64_t P = g.OH * g.OW;
  if (gx.defined()) {
    const int v = k::vector_width<T>(g.C, {ptr<T>(gy), ptr<T>(gx)});
    k::with_vector_width<T>(v, [&](auto vc) {
      constexpr int V = decltype(vc)::value;
      const k::DepthwiseTiling t = k::depthwise_tiling(g.C, V, g.KH * g.KW, sizeof(A));
      const dim3 block(unsigned(t.lanes * t.rows));
      const size_t smem = size_t(g.KH * g.KW * V * t.pitch) * sizeof(A);
      constexpr int TW = k::kDepthwiseRowTile;
      if (const int kw = k::depthwise_rows_kw(g); kw && k::depthwise_index_fits(g)) {
        const int64_t items = g.N * g.H * ((g.W + TW - 1) / TW);
        const unsigned blocks = unsigned(std::clamp<int64_t>((items + t.rows - 1) / t.rows, 1, 65535));
        {
          using I = int;
          const dim3 grid(unsigned(t.tiles), blocks);
          if (kw == 3 && g.sw == 1)
            ADNN_LAUNCH((k::depthwise_backward_input_rows_kernel<KT, V, I, 3, 1, TW>), grid, block, smem, stream(),
                        ptr<T>(gy), ptr<T>(w), ptr<T>(gx), g, t.lanes, t.pitch);
          if (kw == 3 && g.sw == 2)
            ADNN_LAUNCH((k::depthwise_backward_input_rows_kernel<KT, V, I, 3, 2, TW>), grid, block, smem, stream(),
                        ptr<T>(gy), ptr<T>(w), ptr<T>(gx), g, t.lanes, t.pitch);
          if (kw == 5 && g.sw == 1)
            ADNN_LAUNCH((k::depthwise_backward_input_rows_kernel<KT, V, I, 5, 1, TW>), grid, block, smem, stream(),
                        ptr<T>(gy), ptr<T>(w), ptr<T>(gx), g, t.lanes, t.pitch);
          if (kw == 5 && g.sw == 2)
            ADNN_LAUNCH((k::depthwise_backward_input_rows_kernel<KT, V, I, 5, 2, TW>), grid, block, smem, stream(),
                        ptr<T>(gy), ptr<T>(w), ptr<T>(gx), g, t.lanes, t.pitch);
        }
      } else {
        const int64_t px = g.N * g.H * g.W, blocks = std::min<int64_t>((px + 4 * t.rows - 1) / (4 * t.rows), 65535);
        k::with_index_type(k::depthwise_index_fits(g), [&](auto it) {
          using I = decltype(it);
          ADNN_LAUNCH((k::depthwise_backward_input_kernel<KT, V, I>),
                      dim3(unsigned(t.tiles), unsigned(std::max<int64_t>(blocks, 1))), block, smem, stream(),
                      ptr<T>(gy), ptr<T>(w), ptr<T>(gx), g, t.lanes, t.pitch);
        });
      }
    });
  }
  if (gw.defined()) {
    // two stages: per (channel tile, group of taps, pixel slice) partial sums in A, then a fixed-order
    // sum over the slices (deterministic, no atomics)
    const int v = k::vector_width<T>(g.C, {ptr<T>(gy), ptr<T>(x)});
    k::with_vector_width<T>(v, [&](auto vc) {
      constexpr int V = decltype(vc)::value;
      const k::DepthwiseTiling t = k::depthwise_tiling(g.C, V, g.KH * g.KW, sizeof(A));
      const int64_t pps = k::depthwise_pixels_per_slice(g.N * P, t.rows);
      const int64_t slices = std::max<int64_t>((g.N * P + pps - 1) / pps, 1), KK = g.KH * g.KW;
      Tensor part =
          empty({slices * g.C * KK}, TensorOptions(std::is_same_v<A, double> ? DType::f64 : DType::f32, kCUDA));
      k::with_index_type(k::depthwise_index_fits(g, slices * g.C * KK), [&](auto it) {
        using I = decltype(it);
        const int64_t groups = k::depthwise_wgrad_groups(KK, k::depthwise_wgrad_taps<V>);
        ADNN_LAUNCH((k::depthwise_backward_weight_kernel<KT, V, I>),
                    dim3(unsigned(t.tiles), unsigned(groups), unsigned(slices)), dim3(unsigned(t.lanes * t.rows)),
                    size_t(V) * t.lanes * t.rows * sizeof(A), stream(), ptr<T>(gy), ptr<T>(x), ptr<A>(part), g, t.lanes,
                    pps);
      });
      ADNN_LAUNCH(k::depthwise_weight_grad_sum_kernel<KT>, dim3(k::ceil_div(g.C, 32)), dim3(256),
                  size_t(32 * (KK | 1)) * sizeof(A), stream(), ptr<A>(part), ptr<T>(gw), slices, g.C, int(KK));
    });
  }
}
}  // namespace

void conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeom& g) {
  const common::ConvPlan plan = common::conv_plan(g);
  if (plan.path == common::ConvPath::depthwise) {
    storage_types(x.dtype(), "conv2d backward", [&](auto tag) {
      using T = decltype(tag);
      if (gb.defined()) bias_grad<T>(gy, gb, g.N * g.OH * g.OW, g.O);
      depthwise_backward<T>(gy, x, w, gx, gw, g);
    });
    return;
  }
  if (is_16bit(x.dtype())) {
    ADNN_CHECK(plan.path == common::ConvPath::im2col, "conv2d backward (cuda): ", dtype_name(x.dtype()),
               " pointwise convolutions run as linear (src/ops/nn_ops.cpp), got input ", x.desc());
    storage_types(x.dtype(), "conv2d backward", [&](auto tag) {
      if (gb.defined()) bias_grad<decltype(tag)>(gy, gb, g.N * g.OH * g.OW, g.O);
    });
    conv_backward_16(gy, x, w, gx, gw, g);
    return;
  }
  float_types(x.dtype(), "conv2d backward", [&](auto tag) {
    using T = decltype(tag);
    const int64_t P = g.OH * g.OW;
    if (gb.defined()) bias_grad<T>(gy, gb, g.N * P, g.O);
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
          launch_im2col(ptr<T>(x), ptr<T>(col), g, n0, nb, gi);
          gemm(true, false, Og, KK, nb * P, T(1), gyg, g.O, ptr<T>(col), KK, T(1), ptr<T>(gw) + gi * Og * KK, KK);
        }
        if (gx.defined()) {
          col2im_from(gyg, ptr<T>(w) + gi * Og * KK, ptr<T>(col), ptr<T>(gx), g, n0, nb, gi);
        }
      }
    }
  });
}

}  // namespace adnn::cuda
