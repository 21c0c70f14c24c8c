// Layers (include/adnn/nn/layers.hpp).
#include <adnn/nn/layers.hpp>

#include <cmath>

namespace adnn::nn {

Conv2d::Conv2d(Conv2dSpec s) : s_(s) {
  ADNN_CHECK(s.in > 0 && s.out > 0 && s.kernel > 0 && s.groups > 0 && s.in % s.groups == 0 && s.out % s.groups == 0,
             "Conv2d: bad spec in ", s.in, " out ", s.out, " kernel ", s.kernel, " groups ", s.groups);
  // Kaiming-uniform as torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) · sqrt(3)·sqrt(1/3)
  const double fan_in = double(s.in / s.groups * s.kernel * s.kernel), k = 1.0 / std::sqrt(fan_in);
  weight = register_parameter("weight", uniform({s.out, s.kernel, s.kernel, s.in / s.groups}, -k, k));
  if (s.bias) bias = register_parameter("bias", uniform({s.out}, -k, k));
}

Tensor Conv2d::forward(const Tensor& x) {
  Conv2dOptions o;
  o.stride = {s_.stride, s_.stride};
  o.dilation = {s_.dilation, s_.dilation};
  o.groups = s_.groups;
  o.same = s_.same;
  const int64_t p = (s_.kernel - 1) / 2 * s_.dilation;
  if (!s_.same) o.padding = {p, p, p, p};
  return conv2d(x, weight, bias, o);
}

BatchNorm2d::BatchNorm2d(int64_t c, double eps_, double momentum_) : eps(eps_), momentum(momentum_) {
  weight = register_parameter("weight", ones({c}));
  bias = register_parameter("bias", zeros({c}));
  running_mean = register_buffer("running_mean", zeros({c}));
  running_var = register_buffer("running_var", ones({c}));
  num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, DType::i64));
}

Tensor BatchNorm2d::forward_residual(const Tensor& x, const Tensor& residual, const Tensor& sample_scale) {
  if (training_) {
    NoGradGuard ng;
    num_batches_tracked.add_(ones({}, TensorOptions(DType::i64, num_batches_tracked.device())));
  }
  return batch_norm_residual(x, running_mean, running_var, weight, bias, training_, momentum, eps, residual,
                             sample_scale);
}

Tensor BatchNorm2d::forward_act(const Tensor& x, NormActivation act) {
  if (training_) {
    NoGradGuard ng;
    num_batches_tracked.add_(ones({}, TensorOptions(DType::i64, num_batches_tracked.device())));
  }
  return batch_norm(x, running_mean, running_var, weight, bias, training_, momentum, eps, act);
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
  conv_reduce = register_module("conv_reduce", std::make_shared<Conv2d>(Conv2dSpec{.in = c, .out = rd, .bias = true}));
  conv_expand = register_module("conv_expand", std::make_shared<Conv2d>(Conv2dSpec{.in = rd, .out = c, .bias = true}));
}

Tensor SqueezeExcite::forward(const Tensor& x) {  // (N, H, W, C)
  const int64_t R = conv_reduce->weight.size(0), C = conv_reduce->weight.size(3);
  return squeeze_excite(x, conv_reduce->weight.reshape({R, C}), conv_reduce->bias, conv_expand->weight.reshape({C, R}),
                        conv_expand->bias);
}

}  // namespace adnn::nn
