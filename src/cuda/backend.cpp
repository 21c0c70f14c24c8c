// The CUDA backend: validates nothing (the ops did), allocates scratch, and launches the
// kernels of kernels/ on the current stream. Built by nvcc for real GPUs, and by the host
// compiler against the SIMT emulator (ADNN_CUDA_EMULATION).
#include "cuda/backend.hpp"
#include "cuda/backend_common.hpp"

#include <adnn/cuda/runtime.hpp>

#include <algorithm>
#include <cstring>

#include "kernels/conv.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/index.cuh"
#include "kernels/interp.cuh"
#include "kernels/loss.cuh"
#include "kernels/norm.cuh"
#include "kernels/optim.cuh"
#include "kernels/pool.cuh"
#include "kernels/reduce.cuh"
#include "kernels/softmax.cuh"

#if defined(__CUDACC__)
namespace adnn::kernels {
void cuda_launch_failed(cudaError_t e, const char* kernel, const char* file, int line) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/') base = p + 1;
  throw Error(detail::cat("kernel launch ", kernel, " failed: ", cudaGetErrorString(e), " [", base, ":", line, "]"));
}
}  // namespace adnn::kernels
#endif

namespace adnn::cuda {

using namespace backend_detail;

namespace {


// Sizes of `shape`, strides of each operand (already broadcast to `shape`).
k::Geom make_geom(const char* op, const Shape& shape, std::initializer_list<const Tensor*> ts) {
  k::Geom g;
  ADNN_CHECK(shape.size() <= size_t(k::kMaxDims), op, ": CUDA kernels handle up to ", k::kMaxDims, " dims, got ",
             shape_str(shape));
  g.ndim = int(shape.size());
  for (int d = 0; d < g.ndim; ++d) g.size[d] = shape[d];
  int j = 0;
  for (const Tensor* t : ts) {
    for (int d = 0; d < g.ndim; ++d) g.stride[j][d] = t->strides()[d];
    ++j;
  }
  return g;
}


}  // namespace

// ---------------------------------------------------------------- elementwise
void copy(const Tensor& src, const Tensor& dst) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  k::Geom g = make_geom("copy", dst.sizes(), {&dst, &src});
  visit_dtype(src.dtype(), [&](auto s) {
    using S = kt<decltype(s)>;
    visit_dtype(dst.dtype(), [&](auto d) {
      using D = kt<decltype(d)>;
      ADNN_LAUNCH((k::copy_kernel<S, D>), k::grid_for(n), dim3(256), 0, stream(),
                  reinterpret_cast<const S*>(src.data_ptr()), reinterpret_cast<D*>(dst.data_ptr()), n, g);
    });
  });
}

void fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  k::Geom g = make_geom("fill", dst.sizes(), {&dst});
  visit_dtype(dst.dtype(), [&](auto d) {
    using T = decltype(d);
    T v;
    if constexpr (std::is_same_v<T, bool>)
      v = value != 0;
    else
      v = T(static_cast<std::conditional_t<std::is_same_v<T, half> || std::is_same_v<T, bfloat16>, float, T>>(value));
    kt<T> kv;
    std::memcpy(&kv, &v, sizeof v);
    ADNN_LAUNCH(k::fill_kernel<kt<T>>, k::grid_for(n), dim3(256), 0, stream(), reinterpret_cast<kt<T>*>(dst.data_ptr()),
                kv, n, g);
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  const int64_t n = out.numel();
  if (n == 0) return;
  k::Geom g = make_geom(unary_name(op), out.sizes(), {&out, &x});
  auto run = [&](auto tag) {
    using T = kt<decltype(tag)>;
    ADNN_LAUNCH(k::unary_kernel<T>, k::grid_for(n), dim3(256), 0, stream(), int(op),
                reinterpret_cast<const T*>(x.data_ptr()), reinterpret_cast<T*>(out.data_ptr()), n, g, p0, p1);
  };
  if (!visit_floating(x.dtype(), run))
    ADNN_FAIL(unary_name(op), " (cuda): needs a floating tensor, got ", x.desc());
}

void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& gx, double p0,
                    double p1) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  k::Geom geo = make_geom(unary_name(op), gx.sizes(), {&gx, &g, &x, &y});
  auto run = [&](auto tag) {
    using T = kt<decltype(tag)>;
    ADNN_LAUNCH(k::unary_backward_kernel<T>, k::grid_for(n), dim3(256), 0, stream(), int(op),
                reinterpret_cast<const T*>(g.data_ptr()), reinterpret_cast<const T*>(x.data_ptr()),
                reinterpret_cast<const T*>(y.data_ptr()), reinterpret_cast<T*>(gx.data_ptr()), n, geo, p0, p1);
  };
  if (!visit_floating(x.dtype(), run))
    ADNN_FAIL(unary_name(op), " backward (cuda): needs a floating tensor, got ", x.desc());
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  k::Geom g = make_geom(binary_name(op), out.sizes(), {&out, &a, &b});
  const bool cmp = int(op) >= int(BinaryOp::eq);
  if (a.dtype() == DType::boolean)
    ADNN_CHECK(op == BinaryOp::eq || op == BinaryOp::ne, binary_name(op), ": not defined for bool tensors");
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = kt<decltype(tag)>;
    const T* pa = reinterpret_cast<const T*>(a.data_ptr());
    const T* pb = reinterpret_cast<const T*>(b.data_ptr());
    if (cmp) {
      ADNN_LAUNCH((k::binary_kernel<T, bool>), k::grid_for(n), dim3(256), 0, stream(), int(op), pa, pb,
                  reinterpret_cast<bool*>(out.data_ptr()), n, g);
    } else if constexpr (!std::is_same_v<T, bool>) {
      ADNN_LAUNCH((k::binary_kernel<T, T>), k::grid_for(n), dim3(256), 0, stream(), int(op), pa, pb,
                  reinterpret_cast<T*>(out.data_ptr()), n, g);
    }
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  k::Geom g = make_geom("where", out.sizes(), {&out, &cond, &a, &b});
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = kt<decltype(tag)>;
    ADNN_LAUNCH(k::where_kernel<T>, k::grid_for(n), dim3(256), 0, stream(),
                reinterpret_cast<const bool*>(cond.data_ptr()), reinterpret_cast<const T*>(a.data_ptr()),
                reinterpret_cast<const T*>(b.data_ptr()), reinterpret_cast<T*>(out.data_ptr()), n, g);
  });
}

// ---------------------------------------------------------------- reductions, softmax
void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  float_types(x.dtype(), "reduce", [&](auto tag) {
    using T = decltype(tag);
    if (R == 0) {  // empty sum
      fill(out, 0.0);
      return;
    }
    k::launch_reduce_rows<T>(k::ReduceCode(int(op)), ptr<T>(x), ptr<T>(out), rows, R, stream());
  });
}

void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    k::launch_argmax_rows<T>(ptr<T>(x), ptr<int64_t>(out), rows, R, stream());
  };
  switch (x.dtype()) {
    case DType::f32: return run(float{});
    case DType::f64: return run(double{});
    case DType::i32: return run(int32_t{});
    case DType::i64: return run(int64_t{});
    default: ADNN_FAIL("argmax (cuda): unsupported dtype ", x.desc());
  }
}

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log) {
  float_types(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    k::launch_softmax<T>(ptr<T>(x), ptr<T>(y), outer, D, inner, log, stream());
  });
}
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D, int64_t inner,
                      bool log) {
  float_types(y.dtype(), "softmax backward", [&](auto tag) {
    using T = decltype(tag);
    k::launch_softmax_backward<T>(ptr<T>(g), ptr<T>(y), ptr<T>(gx), outer, D, inner, log, stream());
  });
}

// ---------------------------------------------------------------- GEMM
void bmm(const Tensor& a0, const Tensor& b0, const Tensor& c) {
  Tensor a = a0, b = b0;
  bool ta, tb;
  int64_t lda, ldb;
  if (!cpu::gemm_layout(a, ta, lda)) {
    a = a.contiguous();
    cpu::gemm_layout(a, ta, lda);
  }
  if (!cpu::gemm_layout(b, tb, ldb)) {
    b = b.contiguous();
    cpu::gemm_layout(b, tb, ldb);
  }
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  float_types(c.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = static_cast<const T*>(a.data_ptr());
    const T* pb = static_cast<const T*>(b.data_ptr());
    T* pc = static_cast<T*>(c.data_ptr());
    for (int64_t i = 0; i < B; ++i)
      gemm(ta, tb, M, N, K, T(1), pa + i * a.stride(0), lda, pb + i * b.stride(0), ldb, T(0), pc + i * M * N, N);
  });
}

// ---------------------------------------------------------------- normalisation
namespace {
// per-channel sums over M rows into `sums` (2, C) doubles or finalised into out0/out1
template <class T, class O>
void channel_sums(int mode, int fin, const Tensor& x, const Tensor& g, const Tensor& mean, const Tensor& invstd,
                  int64_t M, int64_t C, double eps, O* out0, O* out1, const Tensor& w = {}, const Tensor& b = {},
                  int act = k::act_none) {
  const int64_t P = std::clamp<int64_t>(M / 256, 1, 64);
  Tensor part = device_f64(2 * P * C);
  ADNN_LAUNCH(k::channel_partials_kernel<T>, dim3(k::ceil_div(C, 32), unsigned(P)), dim3(32, 8), 0, stream(), mode,
              ptr<T>(x), ptr<T>(g), ptr<T>(mean), ptr<T>(invstd), ptr<T>(w), ptr<T>(b), act, ptr<double>(part), M,
              C);
  ADNN_LAUNCH(k::channel_reduce_kernel<O>, dim3(k::ceil_div(C, 128)), dim3(128), 0, stream(), fin, ptr<double>(part),
              P, C, M, eps, out0, out1);
}
}  // namespace

void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean,
                        const Tensor& invstd, const Tensor& y, int64_t M, int64_t C, bool compute_stats, double eps,
                        int act, const Tensor& residual, const Tensor& scale, int64_t rows_per_sample) {
  float_types(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    if (compute_stats) {
      channel_sums<T, T>(k::ch_sum, k::fin_mean, x, {}, {}, {}, M, C, eps, ptr<T>(mean), nullptr);
      channel_sums<T, T>(k::ch_sqdev, k::fin_invstd, x, {}, mean, {}, M, C, eps, ptr<T>(invstd), nullptr);
    }
    ADNN_LAUNCH(k::bn_apply_kernel<T>, k::grid_for(M * C), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(mean),
                ptr<T>(invstd), ptr<T>(weight), ptr<T>(bias), ptr<T>(y), M, C, act, ptr<T>(residual), ptr<T>(scale),
                rows_per_sample);
  });
}

void batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& bias,
                         const Tensor& mean, const Tensor& invstd, const Tensor& gx, const Tensor& gw, const Tensor& gb,
                         int64_t M, int64_t C, bool training, int act) {
  float_types(x.dtype(), "batch_norm backward", [&](auto tag) {
    using T = decltype(tag);
    Tensor sums = device_f64(2 * C);
    channel_sums<T, double>(k::ch_grad, k::fin_sums, x, g, mean, invstd, M, C, 0.0, ptr<double>(sums),
                            ptr<double>(sums) + C, weight, bias, act);
    if (gb.defined()) copy(sums.narrow(0, 0, C), gb);
    if (gw.defined()) copy(sums.narrow(0, C, C), gw);
    if (gx.defined())
      ADNN_LAUNCH(k::bn_backward_apply_kernel<T>, k::grid_for(M * C), dim3(256), 0, stream(), ptr<T>(g), ptr<T>(x),
                  ptr<T>(weight), ptr<T>(bias), ptr<T>(mean), ptr<T>(invstd), ptr<double>(sums), ptr<T>(gx), M, C,
                  training, act);
  });
}

void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, const Tensor& mean,
                        const Tensor& rstd, int64_t M, int64_t D, double eps) {
  if (M == 0) return;
  float_types(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::layer_norm_rows_kernel<T>, k::row_grid(M), dim3(k::row_threads(D)), 0, stream(), ptr<T>(x),
                ptr<T>(weight), ptr<T>(bias), ptr<T>(y), ptr<T>(mean), ptr<T>(rstd), M, D, eps);
  });
}

void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M,
                         int64_t D) {
  if (M == 0) return;
  float_types(x.dtype(), "layer_norm backward", [&](auto tag) {
    using T = decltype(tag);
    if (gx.defined())
      ADNN_LAUNCH(k::layer_norm_backward_rows_kernel<T>, k::row_grid(M), dim3(k::row_threads(D)), 0, stream(),
                  ptr<T>(g), ptr<T>(x), ptr<T>(weight), ptr<T>(mean), ptr<T>(rstd), ptr<T>(gx), M, D);
    if (gw.defined() || gb.defined())
      ADNN_LAUNCH(k::layer_norm_param_grads_kernel<T>, dim3(k::ceil_div(D, 128)), dim3(128), 0, stream(), ptr<T>(g),
                  ptr<T>(x), ptr<T>(mean), ptr<T>(rstd), ptr<T>(gw), ptr<T>(gb), M, D);
  });
}

// ---------------------------------------------------------------- convolution
namespace {
k::ConvDims dims(const ConvGeom& g) {
  return {g.N, g.H, g.W, g.C, g.O, g.KH, g.KW, g.OH, g.OW, g.sh, g.sw, g.pt, g.pl, g.dh, g.dw, g.groups};
}
bool pointwise(const ConvGeom& g) {
  return g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.groups == 1 && g.OH == g.H &&
         g.OW == g.W;
}
bool depthwise(const ConvGeom& g) { return g.groups == g.C && g.O == g.C && g.groups > 1; }
int64_t chunk_images(const ConvGeom& g) {
  const int64_t per = g.OH * g.OW * g.KH * g.KW * (g.C / g.groups);
  return std::clamp<int64_t>((int64_t(1) << 24) / std::max<int64_t>(per, 1), 1, g.N);
}
}  // namespace

void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
  float_types(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    const k::ConvDims d = dims(g);
    const int64_t P = g.OH * g.OW;
    if (depthwise(g)) {
      ADNN_LAUNCH(k::depthwise_forward_kernel<T>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(w),
                  ptr<T>(bias), ptr<T>(y), d);
      return;
    }
    if (pointwise(g)) {
      gemm(false, true, g.N * P, g.O, g.C, T(1), ptr<T>(x), g.C, ptr<T>(w), g.C, T(0), ptr<T>(y), g.O);
    } else {
      const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg, nbmax = chunk_images(g);
      Tensor col = empty({nbmax * P * KK}, TensorOptions(x.dtype(), kCUDA));
      for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
        const int64_t nb = std::min(nbmax, g.N - n0);
        for (int64_t gi = 0; gi < g.groups; ++gi) {
          ADNN_LAUNCH(k::im2col_kernel<T>, k::grid_for(nb * P * KK), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(col), d,
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
    const k::ConvDims d = dims(g);
    const int64_t P = g.OH * g.OW;
    if (gb.defined()) channel_sums<T, T>(k::ch_sum, k::fin_sums, gy, {}, {}, {}, g.N * P, g.O, 0.0, ptr<T>(gb), nullptr);
    if (depthwise(g)) {
      if (gx.defined())
        ADNN_LAUNCH(k::depthwise_backward_input_kernel<T>, k::grid_for(gx.numel()), dim3(256), 0, stream(), ptr<T>(gy),
                    ptr<T>(w), ptr<T>(gx), d);
      if (gw.defined()) {
        // one block per weight element; as many threads as output positions, 32..256
        unsigned threads = 32;
        while (threads < 256 && int64_t(threads) < g.N * P) threads *= 2;
        ADNN_LAUNCH(k::depthwise_backward_weight_kernel<T>, dim3(unsigned(g.C * g.KH * g.KW)), dim3(threads), 0,
                    stream(), ptr<T>(gy), ptr<T>(x), ptr<T>(gw), d);
      }
      return;
    }
    if (pointwise(g)) {
      if (gx.defined()) gemm(false, false, g.N * P, g.C, g.O, T(1), ptr<T>(gy), g.O, ptr<T>(w), g.C, T(0), ptr<T>(gx), g.C);
      if (gw.defined()) gemm(true, false, g.O, g.C, g.N * P, T(1), ptr<T>(gy), g.O, ptr<T>(x), g.C, T(0), ptr<T>(gw), g.C);
      return;
    }
    const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, KK = g.KH * g.KW * Cg, nbmax = chunk_images(g);
    Tensor col = empty({nbmax * P * KK}, TensorOptions(x.dtype(), kCUDA));
    if (gx.defined()) fill(gx, 0.0);
    if (gw.defined()) fill(gw, 0.0);
    for (int64_t n0 = 0; n0 < g.N; n0 += nbmax) {
      const int64_t nb = std::min(nbmax, g.N - n0);
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        const T* gyg = ptr<T>(gy) + n0 * P * g.O + gi * Og;
        if (gw.defined()) {
          ADNN_LAUNCH(k::im2col_kernel<T>, k::grid_for(nb * P * KK), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(col), d,
                      n0, nb, gi);
          gemm(true, false, Og, KK, nb * P, T(1), gyg, g.O, ptr<T>(col), KK, T(1), ptr<T>(gw) + gi * Og * KK, KK);
        }
        if (gx.defined()) {
          gemm(false, false, nb * P, KK, Og, T(1), gyg, g.O, ptr<T>(w) + gi * Og * KK, KK, T(0), ptr<T>(col), KK);
          ADNN_LAUNCH(k::col2im_kernel<T>, k::grid_for(nb * g.H * g.W * Cg), dim3(256), 0, stream(), ptr<T>(col),
                      ptr<T>(gx), d, n0, nb, gi);
        }
      }
    }
  });
}

// ---------------------------------------------------------------- pooling
namespace {
k::PoolDims pdims(const PoolGeom& g) {
  return {g.N, g.H, g.W, g.C, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.count_include_pad};
}
}  // namespace

void max_pool2d_forward(const Tensor& x, const Tensor& y, const Tensor& argmax, const PoolGeom& g) {
  float_types(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::max_pool_forward_kernel<T>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(y),
                ptr<int64_t>(argmax), pdims(g));
  });
}
void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g) {
  float_types(gy.dtype(), "max_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::max_pool_backward_kernel<T>, k::grid_for(gy.numel()), dim3(256), 0, stream(), ptr<T>(gy),
                ptr<int64_t>(argmax), ptr<T>(gx), pdims(g));
  });
}
void avg_pool2d_forward(const Tensor& x, const Tensor& y, const PoolGeom& g) {
  float_types(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::avg_pool_forward_kernel<T>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(y),
                pdims(g));
  });
}
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g) {
  float_types(gy.dtype(), "avg_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::avg_pool_backward_kernel<T>, k::grid_for(gx.numel()), dim3(256), 0, stream(), ptr<T>(gy),
                ptr<T>(gx), pdims(g));
  });
}

// ---------------------------------------------------------------- indexing
void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t D, int64_t inner) {
  const int64_t n = index.numel();
  if (out.numel() == 0) return;
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = kt<decltype(tag)>;
    ADNN_LAUNCH(k::index_select_kernel<T>, k::grid_for(outer * n * inner), dim3(256), 0, stream(),
                reinterpret_cast<const T*>(x.data_ptr()), ptr<int64_t>(index), reinterpret_cast<T*>(out.data_ptr()),
                outer, D, inner, n);
  });
}
void index_add(const Tensor& g, const Tensor& index, const Tensor& gx, int64_t outer, int64_t D, int64_t inner) {
  const int64_t n = index.numel();
  if (g.numel() == 0) return;
  float_types(g.dtype(), "index_select backward", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::index_add_kernel<T>, k::grid_for(outer * n * inner), dim3(256), 0, stream(), ptr<T>(g),
                ptr<int64_t>(index), ptr<T>(gx), outer, D, inner, n);
  });
}

namespace {
void gather_scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& y, bool scatter) {
  const int64_t n = index.numel();
  if (n == 0) return;
  k::GatherDims g{};
  ADNN_CHECK(index.dim() <= 8, "gather (cuda): at most 8 dims");
  g.ndim = int(index.dim());
  g.dim = int(dim);
  Shape xs = contiguous_strides(x.sizes());
  for (int d = 0; d < g.ndim; ++d) {
    g.size[d] = index.size(d);
    g.xstride[d] = xs[d];
  }
  float_types(x.dtype(), scatter ? "scatter_add" : "gather", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::gather_kernel<T>, k::grid_for(n), dim3(256), 0, stream(), ptr<T>(x), ptr<int64_t>(index), ptr<T>(y),
                n, g, scatter);
  });
}
}  // namespace

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  gather_scatter(x, dim, index, out, false);
}
void scatter_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx) {
  gather_scatter(gx, dim, index, g, true);
}

// ---------------------------------------------------------------- interpolation
namespace {
struct DeviceTaps {
  Tensor iy, wy, ix, wx;
};
DeviceTaps upload(const InterpTaps& ty, const InterpTaps& tx) {
  auto up_i = [](const std::vector<int64_t>& v) {
    return from_vector(v, {int64_t(v.size())}, TensorOptions(DType::i64, kCUDA));
  };
  auto up_w = [](const std::vector<double>& v) {
    return from_vector(v, {int64_t(v.size())}, TensorOptions(DType::f64, kCUDA));
  };
  return {up_i(ty.index), up_w(ty.weight), up_i(tx.index), up_w(tx.weight)};
}
}  // namespace

void interpolate_forward(const Tensor& x, const Tensor& y, const InterpTaps& ty, const InterpTaps& tx) {
  DeviceTaps t = upload(ty, tx);
  k::InterpDims d{x.size(0), x.size(1), x.size(2), x.size(3), y.size(1), y.size(2), ty.taps, tx.taps};
  float_types(x.dtype(), "interpolate", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::interp_forward_kernel<T>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(y),
                ptr<int64_t>(t.iy), ptr<double>(t.wy), ptr<int64_t>(t.ix), ptr<double>(t.wx), d);
  });
}
void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpTaps& ty, const InterpTaps& tx) {
  DeviceTaps t = upload(ty, tx);
  k::InterpDims d{gx.size(0), gx.size(1), gx.size(2), gx.size(3), gy.size(1), gy.size(2), ty.taps, tx.taps};
  float_types(gy.dtype(), "interpolate backward", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::interp_backward_kernel<T>, k::grid_for(gy.numel()), dim3(256), 0, stream(), ptr<T>(gy), ptr<T>(gx),
                ptr<int64_t>(t.iy), ptr<double>(t.wy), ptr<int64_t>(t.ix), ptr<double>(t.wx), d);
  });
}

// ---------------------------------------------------------------- optimizers
void adamw_multi_tensor(const std::vector<AdamWTensor>& ts, float b1, float b2, float eps, float bc1, float bc2) {
  constexpr int64_t kChunk = 65536;
  std::vector<k::AdamWSlot> slots;
  std::vector<int64_t> cslot, cstart;
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    slots.push_back({ptr<float>(t.p), ptr<float>(t.g), ptr<float>(t.m), ptr<float>(t.v), t.p.numel(), t.lr, t.wd});
    for (int64_t s0 = 0; s0 < t.p.numel(); s0 += kChunk) {
      cslot.push_back(int64_t(i));
      cstart.push_back(s0);
    }
  }
  if (cslot.empty()) return;
  // tables to the device: slots as raw bytes
  Tensor slot_dev = empty({int64_t(slots.size() * sizeof(k::AdamWSlot))}, TensorOptions(DType::u8, kCUDA));
  copy_to_device(slot_dev.data_ptr(), slots.data(), slots.size() * sizeof(k::AdamWSlot));
  Tensor cs = from_vector(cslot, {int64_t(cslot.size())}, TensorOptions(DType::i64, kCUDA));
  Tensor cb = from_vector(cstart, {int64_t(cstart.size())}, TensorOptions(DType::i64, kCUDA));
  ADNN_LAUNCH(k::adamw_multi_tensor_kernel<0>, dim3(unsigned(cslot.size())), dim3(256), 0, stream(),
              reinterpret_cast<const k::AdamWSlot*>(slot_dev.data_ptr()), ptr<int64_t>(cs), ptr<int64_t>(cb), kChunk,
              b1, b2, eps, bc1, bc2);
}

// ---------------------------------------------------------------- losses
void compound_loss(const Tensor& logits, const Tensor& features, const Tensor& targets, const Tensor& labels,
                   const Tensor& centers, const Tensor& prior, const Tensor& weights, const Tensor& wsum,
                   const Tensor& grad_logits, const Tensor& grad_features, const Tensor& terms, float l_ce,
                   float l_center, float l_dls, float eps) {
  k::CompoundParams P{logits.size(0), logits.size(1), features.size(1), l_ce, l_center, l_dls, eps};
  if (P.B == 0) return;
  ADNN_LAUNCH(k::compound_loss_kernel<0>, dim3(unsigned(P.B)), dim3(32), 0, stream(), ptr<float>(logits),
              ptr<float>(features), ptr<float>(targets), ptr<int64_t>(labels), ptr<float>(centers), ptr<float>(prior),
              ptr<float>(weights), ptr<float>(wsum), ptr<float>(grad_logits), ptr<float>(grad_features),
              ptr<double>(terms), P);
}

}  // namespace adnn::cuda
