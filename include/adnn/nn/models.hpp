#pragma once
// Image models with timm's parameter names, NHWC: EfficientNet B0–B7 (and the tf_ variants:
// BN eps 1e-3, TF "same" padding) built from the compound-scaling rules, and ResNet-50 (the
// paper's ablation baseline).
#include <adnn/io/safetensors.hpp>
#include <adnn/nn/layers.hpp>

#include <map>
#include <string>
#include <vector>

namespace adnn::nn {

// Depthwise-separable block (timm DepthwiseSeparableConv): conv_dw k×k → bn1 → SiLU → se →
// conv_pw 1×1 → bn2, residual when stride 1 and channels match.
class DepthwiseSeparable : public Module {
 public:
  DepthwiseSeparable(int64_t in, int64_t out, int64_t k, int64_t stride, double se_ratio, bool tf, double drop_path);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv_dw, conv_pw;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<SqueezeExcite> se;
  std::shared_ptr<DropPath> drop_path;
  bool has_skip;
};

// MBConv (timm InvertedResidual): conv_pw 1×1 expand → bn1 → SiLU → conv_dw k×k → bn2 →
// SiLU → se → conv_pwl 1×1 project → bn3, residual (with stochastic depth) when stride 1 and
// channels match.
class MBConv : public Module {
 public:
  MBConv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t expand, double se_ratio, bool tf,
         double drop_path);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv_pw, conv_dw, conv_pwl;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<SqueezeExcite> se;
  std::shared_ptr<DropPath> drop_path;
  bool has_skip;
};

struct EfficientNetConfig {
  double width = 1.0, depth = 1.0;
  int64_t num_classes = 1000, in_chans = 3;
  bool tf = false;            // tf_ variant
  double drop_rate = 0.2;     // before the classifier
  double drop_path_rate = 0.2;
  int64_t stem_stride = 2;    // 1 keeps a larger token grid on small inputs
  std::vector<int64_t> stage_strides;  // the seven stages' first-block strides; empty = B0's (1,2,2,2,1,2,1)
  int64_t head_channels = 0;           // conv_head width; 0 = round_channels(1280, width)
  int64_t default_size = 224;
};
EfficientNetConfig efficientnet_config(const std::string& name);  // "efficientnet_b0" … "tf_efficientnet_b7"
// timm's round_channels: multiple of 8, never below 90% of the scaled width
int64_t round_channels(double channels, double multiplier);

class EfficientNet : public Module {
 public:
  explicit EfficientNet(EfficientNetConfig c);
  Tensor forward(const Tensor& x) override;                 // (N, H, W, in_chans) -> (N, classes)
  // Outputs of the stem, of every stage, and of the head conv (after bn2 + SiLU).
  std::vector<Tensor> forward_features(const Tensor& x);
  Tensor forward_head(const Tensor& head_features);         // pool, dropout, classifier
  int64_t num_features() const { return num_features_; }
  std::vector<int64_t> stage_channels() const { return stage_channels_; }
  const EfficientNetConfig& config() const { return c_; }
  std::shared_ptr<Conv2d> conv_stem, conv_head;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> blocks;
  std::shared_ptr<Linear> classifier;

 private:
  EfficientNetConfig c_;
  int64_t num_features_;
  std::vector<int64_t> stage_channels_;
};

// ResNet bottleneck (torchvision / timm naming: conv1, bn1, conv2, bn2, conv3, bn3,
// downsample.0 / downsample.1); stride on the 3×3 conv.
class Bottleneck : public Module {
 public:
  Bottleneck(int64_t in, int64_t planes, int64_t stride, bool downsample);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<Sequential> downsample;
};

class ResNet : public Module {
 public:
  ResNet(std::vector<int64_t> layers, int64_t num_classes = 1000, int64_t in_chans = 3);
  Tensor forward(const Tensor& x) override;
  std::vector<Tensor> forward_features(const Tensor& x);  // layer1 … layer4
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<Linear> fc;
};

// Loads a PyTorch / timm state dict (e.g. a .safetensors file exported from torch): 4-D
// convolution weights are converted from torch's (O, I, KH, KW) to adnn's (O, KH, KW, I);
// everything else is copied by name, with the shape checks of load_state_dict.
void load_pytorch_state_dict(Module& m, const std::vector<std::pair<std::string, Tensor>>& sd, bool strict = true);
void load_pytorch_safetensors(Module& m, const std::string& path, bool strict = true);

// The inverse: the module's state dict as PyTorch holds it, so that torch's
// `model.load_state_dict(safetensors.torch.load_file(path))` accepts it for a torch model
// with the same structure and names. Every Conv2d weight goes from adnn's (O, KH, KW, C/groups)
// to torch's (O, C/groups, KH, KW); everything else (Linear (out, in), BatchNorm, LayerNorm,
// attention, num_batches_tracked i64) is already in torch's layout. Tensors are copied to
// the CPU, contiguous, in their dtype; names are the module's (timm's for EfficientNet,
// torchvision's = timm's for ResNet; see torchvision_efficientnet_names).
std::vector<std::pair<std::string, Tensor>> pytorch_state_dict(const Module& m);
void save_pytorch_safetensors(const Module& m, const std::string& path,
                              const std::map<std::string, std::string>& metadata = {});
// Renames an EfficientNet state dict from timm's names (adnn's) to torchvision's
// efficientnet_b0 … b7 (features.S.B.block.I…; docs/export.md has the table). The tf_
// variants (TF "same" padding) have no torchvision twin: an adnn::Error for an unknown name.
std::vector<std::pair<std::string, Tensor>> torchvision_efficientnet_names(
    const std::vector<std::pair<std::string, Tensor>>& timm_state_dict);

// "efficientnet_b0" … "efficientnet_b7", "tf_efficientnet_b0" … "tf_efficientnet_b7", "resnet50".
std::shared_ptr<Module> create_model(const std::string& name, int64_t num_classes = 1000, int64_t in_chans = 3);
std::vector<std::string> model_names();

}  // namespace adnn::nn
