#pragma once
// Layers with PyTorch's options and defaults (torch.nn / libtorch): Conv2d, BatchNorm2d,
// MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout, Identity, DropPath, SiLU,
// SqueezeExcite. Activations are NHWC (N, H, W, C) — the one difference from torch, whose
// images are NCHW; conv weights are (O, KH, KW, C/groups) (torch: (O, C/groups, KH, KW);
// nn::save_pytorch_safetensors converts). Parameter and buffer names follow torch / timm
// (weight, bias, running_mean, running_var, num_batches_tracked).
//
// Options are libtorch's chainable structs:
//   nn::Conv2d conv(nn::Conv2dOptions(1, 16, 3).stride(2).padding(1));
//   conv.options().stride()  // {2, 2}
#include <adnn/nn/module.hpp>

#include <array>
#include <string>

namespace adnn::nn {

// A chainable option: `name(v)` sets it and returns the options, `name()` reads it (libtorch's
// TORCH_ARG). The default value follows the macro: ADNN_ARG(int64_t, groups) = 1;
#define ADNN_ARG(T, name)           \
 public:                            \
  auto& name(const T& new_##name) { \
    this->name##_ = new_##name;     \
    return *this;                   \
  }                                 \
  const T& name() const {           \
    return name##_;                 \
  }                                 \
                                    \
 private:                           \
  T name##_

// (height, width) from one number or two, like libtorch's ExpandingArray<2>: 3 or {3, 5}.
struct Size2 {
  int64_t h = 0, w = 0;
  Size2(int64_t v) : h(v), w(v) {}  // NOLINT(google-explicit-constructor): 3 means {3, 3}
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  std::array<int64_t, 2> array() const { return {h, w}; }
  bool operator==(const Size2&) const = default;
};

// padding(nn::kSame): the output keeps ceil(input / stride) — torch's padding="same" for
// stride 1 (the odd pixel of an even kernel goes bottom/right, as torch), TensorFlow's "SAME"
// for larger strides (the tf_ EfficientNets).
struct SamePadding {};
inline constexpr SamePadding kSame{};

// torch's padding_mode: what the padded border reads.
enum class PaddingMode { zeros, reflect, replicate, circular };
const char* padding_mode_name(PaddingMode m);

struct Conv2dOptions {
  Conv2dOptions(int64_t in_channels, int64_t out_channels, Size2 kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  // explicit padding (top = bottom = h, left = right = w); torch's default 0
  Conv2dOptions& padding(Size2 p) {
    padding_ = p;
    same_ = false;
    return *this;
  }
  Conv2dOptions& padding(SamePadding) {
    padding_ = 0;
    same_ = true;
    return *this;
  }
  const Size2& padding() const { return padding_; }
  bool padding_same() const { return same_; }

  ADNN_ARG(int64_t, in_channels);
  ADNN_ARG(int64_t, out_channels);
  ADNN_ARG(Size2, kernel_size);
  ADNN_ARG(Size2, stride) = 1;
  ADNN_ARG(Size2, dilation) = 1;
  ADNN_ARG(int64_t, groups) = 1;
  ADNN_ARG(bool, bias) = true;
  ADNN_ARG(PaddingMode, padding_mode) = PaddingMode::zeros;

 private:
  Size2 padding_ = 0;
  bool same_ = false;
};

// torch.nn.Conv2d on NHWC: (N, H, W, in_channels) -> (N, OH, OW, out_channels); weight
// (O, KH, KW, in/groups) and bias (O) initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as
// torch's default (kaiming_uniform with a = sqrt(5)).
class Conv2d : public Module {
 public:
  explicit Conv2d(Conv2dOptions o);
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size)
      : Conv2d(Conv2dOptions(in_channels, out_channels, kernel_size)) {}
  Tensor forward(const Tensor& x) override;  // (N, H, W, in) -> (N, OH, OW, out)
  const Conv2dOptions& options() const { return o_; }
  // The op-level options (adnn::conv2d) this layer runs with (zero padding; a padding_mode
  // other than zeros pads the input first).
  adnn::Conv2dOptions conv_options() const;
  Tensor weight, bias;

 private:
  Conv2dOptions o_;
};

struct BatchNorm2dOptions {
  explicit BatchNorm2dOptions(int64_t num_features) : num_features_(num_features) {}
  ADNN_ARG(int64_t, num_features);
  ADNN_ARG(double, eps) = 1e-5;
  ADNN_ARG(double, momentum) = 0.1;
};

// torch.nn.BatchNorm2d over the channels of (N, H, W, C) (affine, running statistics).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  explicit BatchNorm2d(const BatchNorm2dOptions& o) : BatchNorm2d(o.num_features(), o.eps(), o.momentum()) {}
  Tensor forward(const Tensor& x) override { return forward_act(x, NormActivation::none); }  // (..., C)
  // act(bn(x)) in one fused pass (kernels/norm.cuh); module forward hooks are not run.
  Tensor forward_act(const Tensor& x, NormActivation act);
  // residual + sample_scale[n] · bn(x) in one pass (the MBConv epilogue); sample_scale may
  // be undefined. Module forward hooks are not run.
  Tensor forward_residual(const Tensor& x, const Tensor& residual, const Tensor& sample_scale);
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
  // Set by distributed::convert_sync_batchnorm: all-reduces (differentiably) the (2C + 1)
  // per-channel sums, sums of squares and element count of a training batch, so the batch
  // statistics are those of every rank's batch (SyncBatchNorm). Unset: this process's batch.
  std::function<Tensor(const Tensor&)> sync_stats;

 private:
  Tensor sync_normalize(const Tensor& x);  // the training-mode BN with sync_stats, (..., C)
};

struct MaxPool2dOptions {
  MaxPool2dOptions(Size2 kernel_size) : kernel_size_(kernel_size), stride_(kernel_size) {}  // NOLINT
  ADNN_ARG(Size2, kernel_size);
  ADNN_ARG(Size2, stride);  // torch's default: kernel_size
  ADNN_ARG(Size2, padding) = 0;
};
// torch.nn.MaxPool2d on NHWC: (N, H, W, C) -> (N, OH, OW, C); the padding reads -inf.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(MaxPool2dOptions o) : o_(o) {}
  Tensor forward(const Tensor& x) override;
  const MaxPool2dOptions& options() const { return o_; }

 private:
  MaxPool2dOptions o_;
};

struct AvgPool2dOptions {
  AvgPool2dOptions(Size2 kernel_size) : kernel_size_(kernel_size), stride_(kernel_size) {}  // NOLINT
  ADNN_ARG(Size2, kernel_size);
  ADNN_ARG(Size2, stride);  // torch's default: kernel_size
  ADNN_ARG(Size2, padding) = 0;
  ADNN_ARG(bool, count_include_pad) = true;
};
// torch.nn.AvgPool2d on NHWC: (N, H, W, C) -> (N, OH, OW, C).
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(AvgPool2dOptions o) : o_(o) {}
  Tensor forward(const Tensor& x) override;
  const AvgPool2dOptions& options() const { return o_; }

 private:
  AvgPool2dOptions o_;
};

// torch.nn.AdaptiveAvgPool2d on NHWC: (N, H, W, C) -> (N, oh, ow, C), output cell (i, j)
// the mean of rows floor(i·H/oh) … ceil((i+1)·H/oh) - 1 and the same for columns.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size) : out_(output_size) {}
  Tensor forward(const Tensor& x) override;
  const Size2& output_size() const { return out_; }

 private:
  Size2 out_;
};

// torch.nn.Flatten(start_dim = 1, end_dim = -1). On an NHWC map (N, H, W, C) the features come
// in (H, W, C) order — torch's Flatten of NCHW gives (C, H, W): a Linear after it is not the
// same matrix as torch's (nn::save_pytorch_safetensors does not reorder it).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_(start_dim), end_(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_, end_); }

 private:
  int64_t start_, end_;
};

// torch.nn.Identity: returns its input.
class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
};

// torch.nn.Dropout: zeroes each element with probability p in training, scales the rest by
// 1/(1-p); the identity in eval. Any shape.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override { return dropout(x, p_, training_); }
  double p() const { return p_; }

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
