#pragma once
// Layers: Conv2d, BatchNorm2d, Dropout, DropPath, SiLU, SqueezeExcite. NHWC activations;
// conv weights (O, KH, KW, C/groups). Parameter and buffer names follow torch / timm
// (weight, bias, running_mean, running_var, num_batches_tracked).
#include <adnn/nn/module.hpp>

namespace adnn::nn {

struct Conv2dSpec {
  int64_t in = 0, out = 0, kernel = 1, stride = 1, groups = 1, dilation = 1;
  bool bias = false;
  bool same = false;  // TF "SAME" padding; otherwise symmetric padding (kernel-1)/2·dilation
};

class Conv2d : public Module {
 public:
  explicit Conv2d(Conv2dSpec s);
  Tensor forward(const Tensor& x) override;  // (N, H, W, in) -> (N, OH, OW, out)
  const Conv2dSpec& spec() const { return s_; }
  Tensor weight, bias;

 private:
  Conv2dSpec s_;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x) override { return forward_act(x, NormActivation::none); }  // (..., C)
  // act(bn(x)) in one fused pass (kernels/norm.cuh); module forward hooks are not run.
  Tensor forward_act(const Tensor& x, NormActivation act);
  // residual + sample_scale[n] · bn(x) in one pass (the MBConv epilogue); sample_scale may
  // be undefined. Module forward hooks are not run.
  Tensor forward_residual(const Tensor& x, const Tensor& residual, const Tensor& sample_scale);
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p) : p_(p) {}
  Tensor forward(const Tensor& x) override { return dropout(x, p_, training_); }

 private:
  double p_;
};

// Stochastic depth: drops the whole residual branch per sample with probability p.
class DropPath : public Module {
 public:
  explicit DropPath(double p) : p_(p) {}
  Tensor forward(const Tensor& x) override;
  // The per-sample factors (N): 0 (dropped) or 1/(1-p) (kept); undefined in eval or p = 0.
  Tensor sample_scale(int64_t n, TensorOptions opts) const;

 private:
  double p_;
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return silu(x); }
};

// Squeeze-and-excite as timm's: global average pool, conv_reduce (1×1 with bias) → SiLU →
// conv_expand (1×1 with bias) → sigmoid, channel scale.
class SqueezeExcite : public Module {
 public:
  SqueezeExcite(int64_t channels, int64_t reduced);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv_reduce, conv_expand;
};

}  // namespace adnn::nn
