// Neural-network ops: conv2d, batch/layer norm, softmax, dropout, pooling, resampling, losses.
#include <cmath>

#include <adnn/amp/amp.hpp>

#include "common/conv.hpp"
#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

// ---------------------------------------------------------------- conv2d
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Conv2dOptions o) {
  check_defined("conv2d", x, "input");
  check_defined("conv2d", w, "weight");
  if (amp::autocast_dtype() && (x.dtype() == DType::f32 || w.dtype() == DType::f32))  // autocast: lower dtype
    return conv2d(amp::autocast_lower(x), amp::autocast_lower(w), amp::autocast_lower(bias), o);
  check_devices("conv2d", {&x, &w, &bias});
  check_same_dtype("conv2d", {&x, &w, &bias});
  check_floating("conv2d", x);
  ADNN_CHECK(x.dim() == 4, "conv2d: input must be (N, H, W, C), got ", x.desc());
  ADNN_CHECK(w.dim() == 4, "conv2d: weight must be (O, KH, KW, C/groups), got ", w.desc());
  const int64_t N = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t O = w.size(0), KH = w.size(1), KW = w.size(2);
  ADNN_CHECK(o.groups >= 1 && C % o.groups == 0 && O % o.groups == 0, "conv2d: groups ", o.groups,
             " must divide input channels ", C, " and output channels ", O);
  ADNN_CHECK(w.size(3) == C / o.groups, "conv2d: weight ", w.desc(), " expects ", w.size(3) * o.groups,
             " input channels but input ", x.desc(), " has ", C, " (groups ", o.groups, ")");
  ADNN_CHECK(o.stride[0] > 0 && o.stride[1] > 0 && o.dilation[0] > 0 && o.dilation[1] > 0,
             "conv2d: stride and dilation must be positive");
  if (bias.defined())
    ADNN_CHECK(bias.dim() == 1 && bias.size(0) == O, "conv2d: bias ", bias.desc(), " must be (", O, ")");
  ConvGeom g{N, H, W, C, O, KH, KW, 0, 0, o.stride[0], o.stride[1], 0, 0, o.dilation[0], o.dilation[1], o.groups};
  int64_t pt = o.padding[0], pb = o.padding[1], pl = o.padding[2], pr = o.padding[3];
  if (o.same) {
    auto same = [](int64_t in, int64_t k, int64_t s, int64_t d, int64_t& lo, int64_t& hi) {
      int64_t out = (in + s - 1) / s;
      int64_t total = std::max<int64_t>((out - 1) * s + (k - 1) * d + 1 - in, 0);
      lo = total / 2;
      hi = total - lo;
    };
    same(H, KH, g.sh, g.dh, pt, pb);
    same(W, KW, g.sw, g.dw, pl, pr);
  }
  ADNN_CHECK(pt >= 0 && pb >= 0 && pl >= 0 && pr >= 0, "conv2d: negative padding");
  g.pt = pt;
  g.pl = pl;
  g.OH = (H + pt + pb - g.dh * (KH - 1) - 1) / g.sh + 1;
  g.OW = (W + pl + pr - g.dw * (KW - 1) - 1) / g.sw + 1;
  ADNN_CHECK(g.OH > 0 && g.OW > 0, "conv2d: kernel ", KH, "x", KW, " (dilation ", g.dh, ") is larger than the padded input ",
             x.desc());
  const common::ConvPath path = common::conv_plan(g).path;
  if (is_reduced(x.dtype()) && path == common::ConvPath::pointwise) {
    // f16/bf16 natively: the pointwise convolution is linear over the N·H·W rows — one GEMM
    // with bf16/f16 inputs, f32 accumulation and the bias in its epilogue (tensor cores on a
    // GPU), its backward two such GEMMs; autograd keeps x in its 16-bit storage.
    return linear(x.reshape({N * H * W, C}), w.reshape({O, C}), bias).reshape({N, H, W, O});  // (N, H, W, O)
  }
  // depthwise and im2col: f16/bf16 natively in the backends (16-bit storage, f32 math, each
  // output rounded once; kernels/conv.cuh)
  Tensor xc = x.detach().contiguous(), wc = w.detach().contiguous();
  Tensor y = new_like(x, {N, g.OH, g.OW, O});  // (N, OH, OW, O)
  add_macs(N * g.OH * g.OW * O * KH * KW * (C / o.groups));
  backend::conv2d_forward(xc, wc, bias.defined() ? bias.detach().contiguous() : Tensor(), y, g);
  autograd::record("conv2d", {x, w, bias}, y, [=](const Tensor& gy, const std::vector<bool>& need) {
    Tensor gx = need[0] ? new_like(xc, xc.sizes()) : Tensor();
    Tensor gw = need[1] ? new_like(wc, wc.sizes()) : Tensor();
    Tensor gb = need[2] ? new_like(wc, {O}) : Tensor();
    backend::conv2d_backward(gy.contiguous(), xc, wc, gx, gw, gb, g);
    return std::vector<Tensor>{gx, gw, gb};
  });
  return y;
}

// ---------------------------------------------------------------- normalisation
namespace {
// y = act(bn(x)), or residual + scale[n] · act(bn(x)) when residual is defined.
Tensor batch_norm_impl(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                       const Tensor& bias, bool training, double momentum, double eps, NormActivation act,
                       const Tensor& residual, const Tensor& sample_scale, const Tensor& num_batches_tracked) {
  check_defined("batch_norm", x, "input");
  check_devices("batch_norm",
                {&x, &running_mean, &running_var, &weight, &bias, &residual, &sample_scale, &num_batches_tracked});
  if (num_batches_tracked.defined())
    ADNN_CHECK(num_batches_tracked.dtype() == DType::i64 && num_batches_tracked.numel() == 1 &&
                   num_batches_tracked.is_contiguous(),
               "batch_norm: num_batches_tracked must be one contiguous i64 value, got ", num_batches_tracked.desc());
  if (is_reduced(x.dtype())) {  // f16/bf16 input with f32 or same-dtype affine parameters (as cuDNN)
    check_same_dtype("batch_norm", {&x, &residual});
    for (const Tensor* t : {&weight, &bias})
      ADNN_CHECK(!t->defined() || t->dtype() == x.dtype() || t->dtype() == DType::f32, "batch_norm: parameter ",
                 t->desc(), " must be ", dtype_name(x.dtype()), " or f32 for input ", x.desc());
  } else {
    check_same_dtype("batch_norm", {&x, &weight, &bias, &residual});
  }
  if (residual.defined())
    ADNN_CHECK(residual.sizes() == x.sizes(), "batch_norm_residual: residual ", residual.desc(), " must match input ",
               x.desc());
  if (sample_scale.defined())
    ADNN_CHECK(residual.defined() && sample_scale.dim() == 1 && sample_scale.size(0) == x.size(0),
               "batch_norm_residual: sample_scale ", sample_scale.desc(), " must be (", x.size(0), ") for input ",
               x.desc());
  check_floating("batch_norm", x);
  ADNN_CHECK(x.dim() >= 2, "batch_norm: input must be (..., C) with a batch dim, got ", x.desc());
  const int64_t C = x.size(-1), M = x.numel() / std::max<int64_t>(C, 1);
  for (const Tensor* t : {&running_mean, &running_var, &weight, &bias})
    if (t->defined())
      ADNN_CHECK(t->dim() == 1 && t->size(0) == C, "batch_norm: parameter ", t->desc(), " must be (", C,
                 ") for input ", x.desc());
  if (!training)
    ADNN_CHECK(running_mean.defined() && running_var.defined(),
               "batch_norm: eval mode needs running_mean and running_var");
  // pt: the parameters', statistics' and math's dtype — x's, or f32 for f16/bf16 input, whose
  // activations (x, y, the residual, their gradients) the backend reads and writes in 16 bits
  const DType pt = acc_dtype(x.dtype());
  const TensorOptions popt(pt, x.device());
  Tensor xc = x.detach().contiguous();
  Tensor mean_t, invstd;
  if (training) {
    ADNN_CHECK(M > 1, "batch_norm: training needs more than one value per channel, got input ", x.desc());
    mean_t = empty({C}, popt);
    invstd = empty({C}, popt);
  } else {
    NoGradGuard ng;
    mean_t = running_mean.to(pt).contiguous();
    invstd = rsqrt(add(running_var.to(pt), eps)).contiguous();
  }
  // Training: the batch statistics and the running-statistics update in one backend call
  // (batch_norm_stats) when the running statistics are contiguous and of x's dtype; otherwise
  // the statistics alone and the update below from separate ops.
  const bool track = training && running_mean.defined() && running_var.defined();
  const bool fused_update = track && running_mean.dtype() == pt && running_var.dtype() == pt &&
                            running_mean.is_contiguous() && running_var.is_contiguous();
  if (training)
    backend::batch_norm_stats(xc, mean_t, invstd, fused_update ? running_mean : Tensor(),
                              fused_update ? running_var : Tensor(), track ? num_batches_tracked : Tensor(), M, C, eps,
                              momentum);  // torch counts only while tracking running statistics
  Tensor y = new_like(x, x.sizes());
  Tensor wd = weight.defined() ? weight.detach().to(pt).contiguous() : Tensor();
  Tensor bd = bias.defined() ? bias.detach().to(pt).contiguous() : Tensor();
  Tensor sd = sample_scale.defined() ? sample_scale.detach().to(pt).contiguous() : Tensor();
  const int64_t rows_per_sample = M / std::max<int64_t>(x.size(0), 1);
  backend::batch_norm_forward(xc, wd, bd, mean_t, invstd, y, M, C, false, eps, act,
                              residual.defined() ? residual.detach().contiguous() : Tensor(), sd, rows_per_sample);
  if (track && !fused_update) {
    NoGradGuard ng;
    Tensor var_b = sub(div(ones_like(invstd), mul(invstd, invstd)), scalar_tensor(eps, TensorOptions(invstd.dtype(), invstd.device())));
    Tensor var_u = mul(var_b, double(M) / double(M - 1));
    Tensor& rm = const_cast<Tensor&>(running_mean);
    Tensor& rv = const_cast<Tensor&>(running_var);
    rm.copy_(add(mul(rm, 1.0 - momentum), mul(mean_t.to(rm.dtype()), momentum)));
    rv.copy_(add(mul(rv, 1.0 - momentum), mul(var_u.to(rv.dtype()), momentum)));
  }
  const char* name = residual.defined()            ? "batch_norm_residual"
                     : act == NormActivation::silu ? "batch_norm_silu"
                     : act == NormActivation::relu ? "batch_norm_relu"
                                                   : "batch_norm";
  Shape xs = x.sizes();
  autograd::record(name, {x, weight, bias, residual}, y, [=](const Tensor& g, const std::vector<bool>& need) {
    Tensor gx = need[0] ? new_like(xc, xc.sizes()) : Tensor();
    Tensor gw = need[1] ? empty({C}, popt) : Tensor();
    Tensor gb = need[2] ? empty({C}, popt) : Tensor();
    Tensor gbn = g.contiguous();  // the gradient reaching the (activated) norm output
    if (sd.defined()) {
      NoGradGuard ng;
      Shape ss(xs.size(), 1);
      ss[0] = xs[0];
      gbn = mul(gbn, sd.reshape(ss)).to(g.dtype()).contiguous();  // 16-bit g: the product in f32, rounded once
    }
    backend::batch_norm_backward(gbn, xc, wd, bd, mean_t, invstd, gx, gw, gb, M, C, training, act);
    // parameters given in 16 bits get their gradients in 16 bits
    if (gw.defined() && gw.dtype() != weight.dtype()) gw = gw.to(weight.dtype());
    if (gb.defined() && gb.dtype() != bias.dtype()) gb = gb.to(bias.dtype());
    return std::vector<Tensor>{gx, gw, gb, need.size() > 3 && need[3] ? g : Tensor()};
  });
  return y;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps, NormActivation act,
                  const Tensor& num_batches_tracked) {
  return batch_norm_impl(x, running_mean, running_var, weight, bias, training, momentum, eps, act, {}, {},
                         num_batches_tracked);
}

Tensor batch_norm_residual(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                           const Tensor& bias, bool training, double momentum, double eps, const Tensor& residual,
                           const Tensor& sample_scale, const Tensor& num_batches_tracked) {
  check_defined("batch_norm_residual", residual, "residual");
  return batch_norm_impl(x, running_mean, running_var, weight, bias, training, momentum, eps, NormActivation::none,
                         residual, sample_scale, num_batches_tracked);
}

Tensor layer_norm(const Tensor& x, const Shape& ns, const Tensor& weight, const Tensor& bias, double eps) {
  check_defined("layer_norm", x, "input");
  check_devices("layer_norm", {&x, &weight, &bias});
  check_floating("layer_norm", x);
  // An f16/bf16 input is read natively (kernels/norm.cuh): statistics, parameters and math in
  // f32, the output in x's dtype — or in f32 under autocast (as torch's autocast runs layer_norm
  // in f32), read from the 16-bit x itself: no widened copy is made or kept for backward.
  const bool reduced = is_reduced(x.dtype());
  const DType pt = acc_dtype(x.dtype());
  const DType yt = reduced && amp::autocast_dtype() ? DType::f32 : x.dtype();
  if (reduced) {
    for (const Tensor* t : {&weight, &bias})
      ADNN_CHECK(!t->defined() || t->dtype() == x.dtype() || t->dtype() == DType::f32, "layer_norm: parameter ",
                 t->desc(), " must be ", dtype_name(x.dtype()), " or f32 for input ", x.desc());
  } else {
    check_same_dtype("layer_norm", {&x, &weight, &bias});
  }
  ADNN_CHECK(!ns.empty() && int64_t(ns.size()) <= x.dim(), "layer_norm: normalized_shape ", shape_str(ns),
             " does not fit input ", x.desc());
  for (size_t i = 0; i < ns.size(); ++i)
    ADNN_CHECK(x.size(x.dim() - int64_t(ns.size()) + int64_t(i)) == ns[i], "layer_norm: normalized_shape ",
               shape_str(ns), " does not match the trailing dims of input ", x.desc());
  for (const Tensor* t : {&weight, &bias})
    if (t->defined())
      ADNN_CHECK(t->sizes() == ns, "layer_norm: parameter ", t->desc(), " must have shape ", shape_str(ns));
  // the (D) parameters in the math dtype (a no-op for f32 parameters)
  const Tensor w = weight.defined() ? weight.to(pt) : Tensor(), b = bias.defined() ? bias.to(pt) : Tensor();
  const int64_t D = shape_numel(ns), M = x.numel() / std::max<int64_t>(D, 1);
  Tensor xc = x.detach().contiguous();                           // (M, D) in x's dtype
  Tensor wd = w.defined() ? w.detach().contiguous() : Tensor();  // (D) in pt
  Tensor y = empty(x.sizes(), TensorOptions(yt, x.device()));    // x's shape in yt
  Tensor mu = empty({M}, TensorOptions(pt, x.device())), rstd = empty({M}, TensorOptions(pt, x.device()));
  backend::layer_norm_forward(xc, wd, b.defined() ? b.detach().contiguous() : Tensor(), y, mu, rstd, M, D, eps);
  autograd::record("layer_norm", {x, w, b}, y, [=](const Tensor& g, const std::vector<bool>& need) {
    Tensor gx = need[0] ? new_like(xc, xc.sizes()) : Tensor();
    Tensor gw = need[1] ? new_like(mu, ns) : Tensor();
    Tensor gb = need[2] ? new_like(mu, ns) : Tensor();
    backend::layer_norm_backward(g.to(yt).contiguous(), xc, wd, mu, rstd, gx, gw, gb, M, D);  // g in y's dtype
    return std::vector<Tensor>{gx, gw, gb};
  });
  return y;
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias, double eps) {
  check_defined("group_norm", x, "input");
  check_devices("group_norm", {&x, &weight, &bias});
  check_same_dtype("group_norm", {&x, &weight, &bias});
  check_floating("group_norm", x);
  ADNN_CHECK(x.dim() >= 2, "group_norm: input ", x.desc(), " must be (N, ..., C) channels last");
  const int64_t N = x.size(0), C = x.size(-1), P = x.numel() / std::max<int64_t>(N * C, 1);
  ADNN_CHECK(num_groups > 0 && C % num_groups == 0, "group_norm: ", C, " channels of input ", x.desc(),
             " do not split into num_groups = ", num_groups);
  for (const Tensor* t : {&weight, &bias})
    if (t->defined())
      ADNN_CHECK(t->dim() == 1 && t->size(0) == C, "group_norm: parameter ", t->desc(), " must be (", C, ")");
  // f16/bf16 x (and parameters) natively: statistics and math in f32, mean and rstd kept in
  // f32, every output rounded once
  const int64_t G = num_groups;
  Tensor xc = x.detach().contiguous();
  Tensor wd = weight.defined() ? weight.detach().contiguous() : Tensor();
  const TensorOptions stats(acc_dtype(x.dtype()), x.device());
  Tensor y = new_like(x, x.sizes()), mu = empty({N, G}, stats), rstd = empty({N, G}, stats);
  backend::group_norm_forward(xc, wd, bias.defined() ? bias.detach().contiguous() : Tensor(), y, mu, rstd, N, P, C, G,
                              eps);
  autograd::record("group_norm", {x, weight, bias}, y, [=](const Tensor& g, const std::vector<bool>& need) {
    Tensor gx = need[0] ? new_like(xc, xc.sizes()) : Tensor();
    Tensor gw = need[1] ? new_like(xc, {C}) : Tensor();
    Tensor gb = need[2] ? new_like(xc, {C}) : Tensor();
    backend::group_norm_backward(g.contiguous(), xc, wd, mu, rstd, gx, gw, gb, N, P, C, G);
    return std::vector<Tensor>{gx, gw, gb};
  });
  return y;
}

// ---------------------------------------------------------------- softmax
namespace {
// f32_out: an f16/bf16 input gives an f32 output (as under autocast) whatever the scope.
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log, bool f32_out = false) {
  const char* name = log ? "log_softmax" : "softmax";
  check_defined(name, x, "input");
  check_devices(name, {&x});
  check_floating(name, x);
  // An f16/bf16 input is read natively (kernels/softmax.cuh, math in f32); the output is in x's
  // dtype, or in f32 under autocast (torch's rule for softmax), with no widened copy of x.
  const DType yt = (f32_out || amp::autocast_dtype()) && is_reduced(x.dtype()) ? DType::f32 : x.dtype();
  int64_t d = detail::wrap_dim(dim, x.dim(), name);
  int64_t outer = 1, D = x.dim() ? x.size(d) : 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  Tensor y = empty(x.sizes(), TensorOptions(yt, x.device()));  // x's shape in yt
  backend::softmax(x.detach().contiguous(), y, outer, D, inner, log);
  Tensor yd = y.detach();
  const DType xt = x.dtype();
  autograd::record(name, {x}, y, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = empty(yd.sizes(), TensorOptions(xt, yd.device()));  // in x's dtype
    // the kernels read g in y's dtype (a gradient in another dtype would be misread)
    backend::softmax_backward(g.to(yd.dtype()).contiguous(), yd, gx, outer, D, inner, log);
    return std::vector<Tensor>{gx};
  });
  return y;
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor dropout(const Tensor& x, double p, bool training) {
  check_defined("dropout", x, "input");
  ADNN_CHECK(p >= 0 && p <= 1, "dropout: probability ", p, " outside [0, 1]");
  if (!training || p == 0) return x;
  check_floating("dropout", x);
  if (p == 1) return mul(x, zeros({}, TensorOptions(x.dtype(), x.device())));
  // the mask holds 0 or 1 / (1 − p), drawn on x's device
  return mul(x, bernoulli(x.sizes(), 1.0 - p, TensorOptions(x.dtype(), x.device()), 1.0 / (1.0 - p)));
}

// ---------------------------------------------------------------- pooling
namespace {
PoolGeom pool_geom(const char* op, const Tensor& x, const Pool2dOptions& o) {
  check_defined(op, x, "input");
  check_devices(op, {&x});
  check_floating(op, x);
  ADNN_CHECK(x.dim() == 4, op, ": input must be (N, H, W, C), got ", x.desc());
  PoolGeom g{};
  g.N = x.size(0);
  g.H = x.size(1);
  g.W = x.size(2);
  g.C = x.size(3);
  g.kh = o.kernel[0];
  g.kw = o.kernel[1];
  g.sh = o.stride[0] ? o.stride[0] : g.kh;
  g.sw = o.stride[1] ? o.stride[1] : g.kw;
  g.ph = o.padding[0];
  g.pw = o.padding[1];
  g.count_include_pad = o.count_include_pad;
  ADNN_CHECK(g.kh > 0 && g.kw > 0 && g.sh > 0 && g.sw > 0, op, ": kernel and stride must be positive");
  ADNN_CHECK(g.ph >= 0 && g.pw >= 0 && 2 * g.ph <= g.kh && 2 * g.pw <= g.kw, op,
             ": padding must be at most half the kernel");
  g.OH = (g.H + 2 * g.ph - g.kh) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.kw) / g.sw + 1;
  ADNN_CHECK(g.H + 2 * g.ph >= g.kh && g.W + 2 * g.pw >= g.kw && g.OH > 0 && g.OW > 0, op, ": kernel ", g.kh, "x",
             g.kw, " is larger than the padded input ", x.desc());
  return g;
}
}  // namespace

Tensor max_pool2d(const Tensor& x, Pool2dOptions o) {
  PoolGeom g = pool_geom("max_pool2d", x, o);
  // (f16/bf16 natively)
  Tensor y = new_like(x, {g.N, g.OH, g.OW, g.C});
  // the winners' window offsets, kept for backward: 1 byte each for windows of up to 256 pixels
  const DType index_dtype = common::max_pool_index_is_u8(g) ? DType::u8 : DType::i32;
  ADNN_CHECK((g.H + g.ph) * g.kw + g.W + g.pw < (int64_t(1) << 31), "max_pool2d: input ", x.desc(), " with a ", g.kh,
             "x", g.kw, " window is too large for 32-bit window offsets");
  Tensor am = empty({g.N, g.OH, g.OW, g.C}, TensorOptions(index_dtype, x.device()));
  backend::max_pool2d_forward(x.detach().contiguous(), y, am, g);
  Shape xs = x.sizes();
  autograd::record("max_pool2d", {x}, y, [=](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = empty(xs, TensorOptions(gy.dtype(), gy.device()));
    backend::max_pool2d_backward(gy.contiguous(), am, gx, g);
    return std::vector<Tensor>{gx};
  });
  return y;
}

Tensor avg_pool2d(const Tensor& x, Pool2dOptions o) {
  PoolGeom g = pool_geom("avg_pool2d", x, o);
  Tensor y = new_like(x, {g.N, g.OH, g.OW, g.C});
  backend::avg_pool2d_forward(x.detach().contiguous(), y, g);
  Shape xs = x.sizes();
  autograd::record("avg_pool2d", {x}, y, [=](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = empty(xs, TensorOptions(gy.dtype(), gy.device()));
    backend::avg_pool2d_backward(gy.contiguous(), gx, g);
    return std::vector<Tensor>{gx};
  });
  return y;
}

Tensor global_avg_pool2d(const Tensor& x, bool keepdim) {
  check_defined("global_avg_pool2d", x, "input");
  ADNN_CHECK(x.dim() == 4, "global_avg_pool2d: input must be (N, H, W, C), got ", x.desc());
  return mean(x, {1, 2}, keepdim);
}

// ---------------------------------------------------------------- interpolation
Tensor interpolate(const Tensor& x, int64_t out_h, int64_t out_w, InterpMode mode, bool align_corners) {
  check_defined("interpolate", x, "input");
  check_devices("interpolate", {&x});
  check_floating("interpolate", x);
  ADNN_CHECK(x.dim() == 4, "interpolate: input must be (N, H, W, C), got ", x.desc());
  ADNN_CHECK(out_h > 0 && out_w > 0, "interpolate: output size ", out_h, "x", out_w, " must be positive");
  ADNN_CHECK(x.size(1) > 0 && x.size(2) > 0, "interpolate: empty input ", x.desc());
  // f16/bf16 read and written natively (f32 sums, one rounding); the backward's atomic sums
  // run in an f32 accumulator, rounded once
  const InterpGeom g{x.size(0), x.size(3), {x.size(1), out_h, mode, align_corners}, {x.size(2), out_w, mode, align_corners}};
  Tensor y = new_like(x, {x.size(0), out_h, out_w, x.size(3)});
  backend::interpolate_forward(x.detach().contiguous(), y, g);
  Shape xs = x.sizes();
  autograd::record("interpolate", {x}, y, [=](const Tensor& gy, const std::vector<bool>&) {
    Tensor gx = zeros(xs, TensorOptions(acc_dtype(gy.dtype()), gy.device()));
    backend::interpolate_backward(gy.contiguous(), gx, g);
    return std::vector<Tensor>{gx.to(gy.dtype())};
  });
  return y;
}

// ---------------------------------------------------------------- losses
Tensor cross_entropy(const Tensor& logits, const Tensor& target) {
  check_defined("cross_entropy", logits, "logits");
  check_defined("cross_entropy", target, "target");
  ADNN_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, K), got ", logits.desc());
  ADNN_CHECK(target.dim() == 1 && target.size(0) == logits.size(0) && target.dtype() == DType::i64,
             "cross_entropy: target must be i64 (", logits.size(0), "), got ", target.desc());
  // f16/bf16 logits: log_softmax reads them natively into f32 and the loss is computed in f32;
  // it is returned in f32 under autocast (torch's rule for losses), else rounded to the logits'
  // dtype (a scalar)
  const bool reduced = is_reduced(logits.dtype());
  Tensor picked = gather(softmax_impl(logits, 1, true, reduced), 1, target.unsqueeze(1));  // (N, 1)
  Tensor loss = neg(mean(picked));
  return reduced && !amp::autocast_dtype() ? loss.to(logits.dtype()) : loss;
}

Tensor mse_loss(const Tensor& input, const Tensor& target) {
  check_defined("mse_loss", input, "input");
  check_defined("mse_loss", target, "target");
  ADNN_CHECK(input.sizes() == target.sizes(), "mse_loss: input ", input.desc(), " and target ", target.desc(),
             " differ in shape");
  Tensor d = sub(input, target);
  return mean(mul(d, d));
}

}  // namespace adnn
