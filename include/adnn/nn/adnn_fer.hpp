#pragma once
// The ADNN-FER model (docs/adnn_fer.md): a CNN backbone (EfficientNet, ResNet-50 or a nano) → CBAM
// after stage 5 and after the head conv → the final map as tokens (+ learnable positional
// embedding) → pre-norm Transformer encoder → mean over tokens → LayerNorm → classifier.
// Configurations by name (adnn_fer_paper, adnn_fer_nano) with ablation switches. The
// adnn-fer command line (examples/adnn_fer/) trains, evaluates and serves it.
#include <adnn/core/device.hpp>
#include <adnn/nn/attention.hpp>
#include <adnn/nn/layers.hpp>
#include <adnn/nn/models.hpp>
#include <adnn/nn/module.hpp>

#include <array>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace adnn::nn {

struct FerConfig {
  std::string name = "adnn_fer_nano";
  // vgg_nano_wide (the default), vgg_nano, resnet_nano, efficientnet_nano, efficientnet_b0 … b7, resnet50
  std::string backbone = "vgg_nano_wide";
  int64_t image_size = 48, in_chans = 1, num_classes = 7;
  bool cbam = true;
  int64_t cbam_reduction = 16;
  bool transformer = true;
  int64_t layers = 2, d_model = 128, heads = 4, d_ff = 256;
  double dropout = 0.1;           // attention, FFN and residual dropout
  double head_dropout = 0.2;      // before the classifier
  double drop_path = 0.1;         // backbone stochastic depth
  std::string loss = "compound";  // ce | compound
  // the training recipe's defaults for this configuration
  int64_t epochs = 12, batch = 128, warmup_epochs = 1, patience = 6;
  double lr = 2e-3, weight_decay = 0.05, layer_decay = 0.95, dls_eps = 0.1;  // DLS smoothing mass (compound loss)
  bool mixup = false;
  // the per-image augmentation chain (data::AugmentOptions): "full" (flip, crop, jitter,
  // rotation, noise, cutout) or "light" (flip, crop, jitter, rotation)
  std::string augment = "light";

  // A flat key → value view (checkpoint metadata, config.json) and back. from_map reads
  // every number with adnn::parse_int64/parse_double (the whole text, finite) and checks
  // the configuration with validate(); an adnn::Error names the key and the bad text.
  std::map<std::string, std::string> to_map() const;
  static FerConfig from_map(const std::map<std::string, std::string>& m);
  // The limits below (docs/adnn_fer.md), so that a bad or hostile checkpoint cannot make
  // the model allocate without bound: an adnn::Error naming the field otherwise.
  void validate() const;
};

// Limits of a configuration (FerConfig::validate, the adnn-fer flags).
inline constexpr int64_t kFerMinImageSize = 8, kFerMaxImageSize = 512;  // S of the S×S input
inline constexpr int64_t kFerMaxChannels = 4;                            // input channels
inline constexpr int64_t kFerMaxClasses = 10000;
inline constexpr int64_t kFerMaxLayers = 64, kFerMaxWidth = 16384;  // encoder layers; d_model, d_ff
inline constexpr int64_t kFerMaxHeads = 1024, kFerMaxReduction = 1024;
inline constexpr int64_t kFerMaxEpochs = 100000, kFerMaxBatch = 65536;
inline constexpr double kFerMaxLr = 1000;  // lr in (0, kFerMaxLr]

// "adnn_fer_paper" or "adnn_fer_nano" (others: an adnn::Error listing the names).
FerConfig fer_config(const std::string& name);
std::vector<std::string> fer_config_names();

// The backbone's EfficientNet settings for a configuration (empty backbone name for ResNet).
EfficientNetConfig backbone_config(const FerConfig& c);

// ResNet basic block (torchvision names: conv1, bn1, conv2, bn2, downsample.0/1).
class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in, int64_t out, int64_t stride);
  Tensor forward(const Tensor& x) override;  // (N, H, W, in) -> (N, H/s, W/s, out)
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<Sequential> downsample;
};

// The ResNet nano backbone (`resnet_nano`, docs/adnn_fer.md): conv1 3×3 (stride 1) → bn1 → ReLU → layer1 … layer4,
// one basic block each (widths 48, 96, 192, 192; strides 2, 2, 2, 1) → conv_head 1×1 → bn2
// → ReLU. 48×48 input → 6×6 map; "stage 5" (CBAM) is the output of layer3.
class ResNetNano : public Module {
 public:
  ResNetNano(int64_t in_chans, int64_t head_channels);
  Tensor forward(const Tensor& x) override { ADNN_FAIL("ResNetNano: used through AdnnFer"); }
  std::shared_ptr<Conv2d> conv1, conv_head;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<BasicBlock> layer1, layer2, layer3, layer4;
};

// Where a VggBlock max-pools (2×2, stride 2, floor): not at all, after its second convolution
// (VGG), or between its two convolutions (conv1 → pool → bn1 → ReLU → conv2 → bn2 → ReLU, as
// the fast CIFAR-10 nets do), so that conv2 runs on a quarter of the positions.
enum class VggPool { none, after, between };

// VGG block (conv1, bn1, conv2, bn2): two 3×3 convolutions with batch norm and ReLU and a
// 2×2 max pool placed by `pool`.
class VggBlock : public Module {
 public:
  VggBlock(int64_t in, int64_t out, VggPool pool);
  Tensor forward(const Tensor& x) override;  // (N, H, W, in) -> (N, H/2, W/2, out) (pooled) or (N, H, W, out)
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  VggPool pool;
};

// One VGG backbone's shape: its four blocks' output widths and where each pools.
struct VggLayout {
  const char* name;
  std::array<int64_t, 4> widths;  // block1 … block4; widths[2] is stage 5 (CBAM), widths[3] the head
  std::array<VggPool, 4> pools;
};

// The VGG backbones (docs/adnn_fer.md), block1 … block4; 48×48 input → 6×6 token grid of 256
// channels; "stage 5" (CBAM) is the output of block3. Their layouts (vgg_layouts()):
// - vgg_nano: widths 32, 64, 128, 256; the first three blocks pool after their second conv.
// - vgg_nano_wide: widths 32, 96, 192, 256 at about the same multiply-adds (123 M against
//   117 M for a 48×48 image): blocks 2 and 3 pool between their convolutions, so the width costs
//   no more than vgg_nano's second convolutions at full resolution did.
class VggNano : public Module {
 public:
  VggNano(const std::string& backbone, int64_t in_chans);
  static std::span<const VggLayout> vgg_layouts();
  // the layout named `backbone`, or nullptr
  static const VggLayout* find_layout(const std::string& backbone);
  static bool known(const std::string& backbone) { return find_layout(backbone) != nullptr; }
  Tensor forward(const Tensor& x) override;  // (N, S, S, in) -> (N, S/8, S/8, widths[3]) without the stage-5 CBAM
  const VggLayout& layout;
  std::shared_ptr<VggBlock> block1, block2, block3, block4;
};

class AdnnFer : public Module {
 public:
  explicit AdnnFer(const FerConfig& c);
  Tensor forward(const Tensor& x) override;  // (N, S, S, in_chans) -> logits (N, classes)
  // logits and the pooled features (N, d) the center loss pulls together
  std::pair<Tensor, Tensor> forward_with_features(const Tensor& x);
  // the token grid (h, w) for the configured image size
  std::pair<int64_t, int64_t> token_grid() const { return grid_; }
  int64_t feature_dim() const { return feat_dim_; }
  const FerConfig& config() const { return c_; }

  std::shared_ptr<EfficientNet> effnet;
  std::shared_ptr<ResNet> resnet;
  std::shared_ptr<ResNetNano> rnano;
  std::shared_ptr<VggNano> vnano;
  std::shared_ptr<CBAM> cbam_stage5, cbam_head;
  std::shared_ptr<Linear> proj;  // head channels -> d_model when they differ
  std::shared_ptr<PositionalEmbedding> pos_embed;
  std::shared_ptr<TransformerEncoder> encoder;
  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> head;

 private:
  Tensor backbone_map(const Tensor& x);  // (N, h, w, C_head) after both CBAMs
  FerConfig c_;
  std::pair<int64_t, int64_t> grid_;
  int64_t head_channels_ = 0, feat_dim_ = 0;
};

// Loads a model written by `adnn-fer train` (weights with the FerConfig in the safetensors
// metadata), in eval mode, on `device`.
std::shared_ptr<AdnnFer> load_adnn_fer(const std::string& weights_path, Device device);

}  // namespace adnn::nn
