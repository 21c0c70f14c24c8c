// Layers (include/adnn/nn/layers.hpp).
#include <adnn/nn/layers.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace adnn::nn {

const char* padding_mode_name(PaddingMode m) {
  switch (m) {
    case PaddingMode::zeros:
      return "zeros";
    case PaddingMode::reflect:
      return "reflect";
    case PaddingMode::replicate:
      return "replicate";
    case PaddingMode::circular:
      return "circular";
  }
  return "?";
}

namespace {
// The source row (or column) of each of the n + before + after padded positions, for a
// padding_mode other than zeros: (n + before + after) int64 indices into [0, n).
Tensor pad_index(int64_t n, int64_t before, int64_t after, PaddingMode mode, const char* axis) {
  ADNN_CHECK(mode != PaddingMode::reflect || (before < n && after < n),
             "Conv2d: padding_mode 'reflect' needs padding < ", axis, " size (padding ", std::max(before, after), ", ",
             axis, " ", n, ")");
  ADNN_CHECK(mode != PaddingMode::circular || (before <= n && after <= n),
             "Conv2d: padding_mode 'circular' needs padding <= ", axis, " size (padding ", std::max(before, after),
             ", ", axis, " ", n, ")");
  Tensor idx = empty({n + before + after}, DType::i64);
  int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = -before; i < n + after; ++i) {
    int64_t j = i;
    if (mode == PaddingMode::replicate)
      j = std::clamp<int64_t>(i, 0, n - 1);
    else if (mode == PaddingMode::reflect)
      j = i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i);
    else
      j = ((i % n) + n) % n;  // circular
    p[i + before] = j;
  }
  return idx;
}
}  // namespace

Conv2d::Conv2d(Conv2dOptions o) : o_(o) {
  const int64_t in = o.in_channels(), out = o.out_channels(), g = o.groups();
  const Size2 k = o.kernel_size(), st = o.stride(), d = o.dilation(), p = o.padding();
  ADNN_CHECK(in > 0 && out > 0 && g > 0 && in % g == 0 && out % g == 0, "Conv2d: in_channels ", in,
             " and out_channels ", out, " must be positive multiples of groups ", g);
  ADNN_CHECK(k.h > 0 && k.w > 0 && st.h > 0 && st.w > 0 && d.h > 0 && d.w > 0 && p.h >= 0 && p.w >= 0,
             "Conv2d: kernel_size (", k.h, ", ", k.w, "), stride (", st.h, ", ", st.w, ") and dilation (", d.h, ", ",
             d.w, ") must be positive and padding (", p.h, ", ", p.w, ") not negative");
  ADNN_CHECK(!o.padding_same() || o.padding_mode() == PaddingMode::zeros, "Conv2d: padding 'same' with padding_mode '",
             padding_mode_name(o.padding_mode()), "' is not supported (only zeros)");
  // torch's default: kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias the same
  const double fan_in = double(in / g * k.h * k.w), b = 1.0 / std::sqrt(fan_in);
  weight = register_parameter("weight", uniform({out, k.h, k.w, in / g}, -b, b));  // (O, KH, KW, C/groups)
  if (o.bias()) bias = register_parameter("bias", uniform({out}, -b, b));          // (O)
}

adnn::Conv2dOptions Conv2d::conv_options() const {
  adnn::Conv2dOptions c;
  c.stride = o_.stride().array();
  c.dilation = o_.dilation().array();
  c.groups = o_.groups();
  c.same = o_.padding_same();
  if (o_.padding_mode() == PaddingMode::zeros)
    c.padding = {o_.padding().h, o_.padding().h, o_.padding().w, o_.padding().w};
  return c;
}

Tensor Conv2d::forward(const Tensor& x) {  // (N, H, W, in)
  ADNN_CHECK(x.dim() == 4 && x.size(3) == o_.in_channels(), "Conv2d: expected (N, H, W, ", o_.in_channels(),
             ") NHWC input, got ", x.desc());
  Tensor in = x;
  const Size2 p = o_.padding();
  if (o_.padding_mode() != PaddingMode::zeros && (p.h > 0 || p.w > 0)) {
    // (N, H + 2·ph, W + 2·pw, C): gathered rows then columns (differentiable)
    const Device dev = x.device();
    in = index_select(in, 1, pad_index(x.size(1), p.h, p.h, o_.padding_mode(), "height").to(dev));
    in = index_select(in, 2, pad_index(x.size(2), p.w, p.w, o_.padding_mode(), "width").to(dev));
  }
  return conv2d(in, weight, bias, conv_options());  // (N, OH, OW, out)
}

Dropout::Dropout(double p) : p_(p) {
  ADNN_CHECK(p >= 0 && p <= 1, "Dropout: p must be in [0, 1], got ", p);
}

Tensor MaxPool2d::forward(const Tensor& x) {  // (N, H, W, C) -> (N, OH, OW, C)
  Pool2dOptions p;
  p.kernel = o_.kernel_size().array();
  p.stride = o_.stride().array();
  p.padding = o_.padding().array();
  return max_pool2d(x, p);
}

Tensor AvgPool2d::forward(const Tensor& x) {  // (N, H, W, C) -> (N, OH, OW, C)
  Pool2dOptions p;
  p.kernel = o_.kernel_size().array();
  p.stride = o_.stride().array();
  p.padding = o_.padding().array();
  p.count_include_pad = o_.count_include_pad();
  return avg_pool2d(x, p);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {  // (N, H, W, C) -> (N, oh, ow, C)
  ADNN_CHECK(x.dim() == 4, "AdaptiveAvgPool2d: expected (N, H, W, C), got ", x.desc());
  ADNN_CHECK(out_.h > 0 && out_.w > 0, "AdaptiveAvgPool2d: output_size (", out_.h, ", ", out_.w, ") must be positive");
  const int64_t H = x.size(1), W = x.size(2), oh = out_.h, ow = out_.w;
  if (oh == 1 && ow == 1) return global_avg_pool2d(x, true);  // (N, 1, 1, C)
  if (H % oh == 0 && W % ow == 0) {                           // equal bins: one pooling pass
    Pool2dOptions p;
    p.kernel = {H / oh, W / ow};
    p.stride = p.kernel;
    return avg_pool2d(x, p);
  }
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < oh; ++i) {
    const int64_t r0 = i * H / oh, r1 = ((i + 1) * H + oh - 1) / oh;
    std::vector<Tensor> cells;
    for (int64_t j = 0; j < ow; ++j) {
      const int64_t c0 = j * W / ow, c1 = ((j + 1) * W + ow - 1) / ow;
      cells.push_back(mean(x.narrow(1, r0, r1 - r0).narrow(2, c0, c1 - c0), {1, 2}));  // (N, C)
    }
    rows.push_back(stack(cells, 1));  // (N, ow, C)
  }
  return stack(rows, 1);  // (N, oh, ow, C)
}

BatchNorm2d::BatchNorm2d(int64_t c, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", ones({c}));
  bias = register_parameter("bias", zeros({c}));
  running_mean = register_buffer("running_mean", zeros({c}));
  running_var = register_buffer("running_var", ones({c}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::i64));
}

// SyncBatchNorm's forward from differentiable ops: the statistics are all-reduced by
// sync_stats (whose backward all-reduces their gradients), so autograd gives the exact
// gradient of the global normalisation. Variance as E[x²] − mean² in f32.
Tensor BatchNorm2d::sync_normalize(const Tensor& x) {  // (..., C)
  const int64_t C = x.size(-1);
  Tensor xf = x.dtype() == DType::f32 ? x : x.to(DType::f32);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d + 1 < xf.dim(); ++d) dims.push_back(d);
  Tensor s1 = sum(xf, dims), s2 = sum(mul(xf, xf), dims);  // (C) each
  Tensor count = full({1}, double(xf.numel() / std::max<int64_t>(C, 1)), TensorOptions(DType::f32, xf.device()));
  Tensor st = sync_stats(cat({s1, s2, count}, 0));  // (2C + 1), summed over the ranks
  Tensor n = st.narrow(0, 2 * C, 1).detach();      // (1) the global element count per channel
  Tensor mean_ = div(st.narrow(0, 0, C), n);
  // E[x²] − mean² can come out slightly negative in f32 when |mean| >> std: clamped at 0
  Tensor var = clamp(sub(div(st.narrow(0, C, C), n), mul(mean_, mean_)), 0.0, std::nullopt);
  {
    NoGradGuard ng;  // running statistics with the unbiased variance, as torch; the batch count
    num_batches_tracked.add_(ones({}, TensorOptions(DType::i64, num_batches_tracked.device())));
    running_mean.mul_(1.0 - momentum);
    running_mean.add_(mean_.detach().to(running_mean.dtype()), momentum);
    Tensor unbiased = div(mul(var.detach(), n), clamp(add(n, -1.0), 1.0, std::nullopt));  // n = 1: the biased one
    running_var.mul_(1.0 - momentum);
    running_var.add_(unbiased.to(running_var.dtype()), momentum);
  }
  Tensor y = add(mul(sub(xf, mean_), mul(rsqrt(add(var, eps)), weight)), bias);
  return y.dtype() == x.dtype() ? y : y.to(x.dtype());
}

Tensor BatchNorm2d::forward_residual(const Tensor& x, const Tensor& residual, const Tensor& sample_scale) {
  if (training_ && sync_stats) {
    Tensor y = sync_normalize(x);
    if (sample_scale.defined()) {
      Shape s(size_t(y.dim()), 1);
      s[0] = y.size(0);
      y = mul(y, sample_scale.reshape(s));
    }
    return add(residual, y);
  }
  return batch_norm_residual(x, running_mean, running_var, weight, bias, training_, momentum, eps, residual,
                             sample_scale, num_batches_tracked);
}

Tensor BatchNorm2d::forward_act(const Tensor& x, NormActivation act) {
  if (training_ && sync_stats) {
    Tensor y = sync_normalize(x);
    return act == NormActivation::relu ? relu(y) : act == NormActivation::silu ? silu(y) : y;
  }
  return batch_norm(x, running_mean, running_var, weight, bias, training_, momentum, eps, act, num_batches_tracked);
}

Tensor DropPath::sample_scale(int64_t n, TensorOptions opts) const {
  if (!training_ || p_ == 0) return {};
  return bernoulli({n}, 1.0 - p_, opts, 1.0 / (1.0 - p_));
}

Tensor DropPath::forward(const Tensor& x) {
  Tensor s = sample_scale(x.size(0), TensorOptions(x.dtype(), x.device()));
  if (!s.defined()) return x;
  Shape shape(size_t(x.dim()), 1);
  shape[0] = x.size(0);
  return mul(x, s.reshape(shape));
}

SqueezeExcite::SqueezeExcite(int64_t c, int64_t rd) {
  conv_reduce = register_module("conv_reduce", std::make_shared<Conv2d>(Conv2dOptions(c, rd, 1)));
  conv_expand = register_module("conv_expand", std::make_shared<Conv2d>(Conv2dOptions(rd, c, 1)));
}

Tensor SqueezeExcite::forward(const Tensor& x) {  // (N, H, W, C)
  const int64_t R = conv_reduce->weight.size(0), C = conv_reduce->weight.size(3);
  return squeeze_excite(x, conv_reduce->weight.reshape({R, C}), conv_reduce->bias, conv_expand->weight.reshape({C, R}),
                        conv_expand->bias);
}

}  // namespace adnn::nn
