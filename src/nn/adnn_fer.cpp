// ADNN-FER model and configurations (include/adnn/nn/adnn_fer.hpp, docs/adnn_fer.md).
#include <adnn/core/parse.hpp>
#include <adnn/io/safetensors.hpp>
#include <adnn/nn/adnn_fer.hpp>
#include <adnn/ops/ops.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace adnn::nn {

namespace {
std::string num(double v) {  // the shortest text that reads back as v
  char b[32];
  for (int prec = 6; prec <= 17; ++prec) {
    std::snprintf(b, sizeof b, "%.*g", prec, v);
    if (std::strtod(b, nullptr) == v) break;
  }
  return b;
}
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

namespace {
// Every serialised field once, as (key, member): to_map and from_map both walk this list.
template <class Config, class F>
void for_each_field(Config& c, F&& f) {
  f("model.name", c.name);
  f("model.backbone", c.backbone);
  f("model.image_size", c.image_size);
  f("model.in_chans", c.in_chans);
  f("model.num_classes", c.num_classes);
  f("model.cbam", c.cbam);
  f("model.cbam_reduction", c.cbam_reduction);
  f("model.transformer", c.transformer);
  f("model.layers", c.layers);
  f("model.d_model", c.d_model);
  f("model.heads", c.heads);
  f("model.d_ff", c.d_ff);
  f("model.dropout", c.dropout);
  f("model.head_dropout", c.head_dropout);
  f("model.drop_path", c.drop_path);
  f("recipe.loss", c.loss);
  f("recipe.epochs", c.epochs);
  f("recipe.batch", c.batch);
  f("recipe.warmup_epochs", c.warmup_epochs);
  f("recipe.patience", c.patience);
  f("recipe.lr", c.lr);
  f("recipe.weight_decay", c.weight_decay);
  f("recipe.layer_decay", c.layer_decay);
  f("recipe.dls_eps", c.dls_eps);
  f("recipe.mixup", c.mixup);
  f("recipe.augment", c.augment);
}
// Keys added after checkpoints were first written, with the value those checkpoints meant.
const std::map<std::string, std::string> kLaterKeys{{"recipe.augment", "full"}};
}  // namespace

std::map<std::string, std::string> FerConfig::to_map() const {
  std::map<std::string, std::string> m;
  for_each_field(*this, [&](const char* k, const auto& v) {
    using V = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<V, std::string>)
      m[k] = v;
    else if constexpr (std::is_same_v<V, bool>)
      m[k] = v ? "1" : "0";
    else if constexpr (std::is_same_v<V, double>)
      m[k] = num(v);
    else
      m[k] = std::to_string(v);
  });
  return m;
}

FerConfig FerConfig::from_map(const std::map<std::string, std::string>& m) {
  FerConfig c;
  // ranges here only keep the numbers representable; validate() checks the configuration
  for_each_field(c, [&](const char* k, auto& v) {
    auto it = m.find(k);
    auto later = kLaterKeys.find(k);
    ADNN_CHECK(it != m.end() || later != kLaterKeys.end(), "ADNN-FER config: missing '", k, "'");
    const std::string& text = it != m.end() ? it->second : later->second;
    using V = std::decay_t<decltype(v)>;
    if constexpr (std::is_same_v<V, std::string>) {
      v = text;
    } else if constexpr (std::is_same_v<V, bool>) {
      ADNN_CHECK(text == "0" || text == "1", k, ": expected 0 or 1, got '", text, "'");
      v = text == "1";
    } else if constexpr (std::is_same_v<V, double>) {
      v = parse_double(text, k);
    } else {
      v = parse_int64(text, k, 0);
    }
  });
  c.validate();
  return c;
}

void FerConfig::validate() const {
  auto in = [](const char* k, int64_t v, int64_t lo, int64_t hi) {
    ADNN_CHECK(v >= lo && v <= hi, k, ": ", v, " is out of range [", lo, ", ", hi, "]");
  };
  auto unit = [](const char* k, double v, bool open_low, bool open_high) {  // within [0, 1], ends as asked
    ADNN_CHECK(std::isfinite(v) && (open_low ? v > 0 : v >= 0) && (open_high ? v < 1 : v <= 1), k, ": ", v,
               " is out of range ", open_low ? "(" : "[", "0, 1", open_high ? ")" : "]");
  };
  ADNN_CHECK(!name.empty(), "model.name: empty");
  in("model.image_size", image_size, kFerMinImageSize, kFerMaxImageSize);
  in("model.in_chans", in_chans, 1, kFerMaxChannels);
  in("model.num_classes", num_classes, 2, kFerMaxClasses);
  in("model.cbam_reduction", cbam_reduction, 1, kFerMaxReduction);
  in("model.layers", layers, 0, kFerMaxLayers);
  in("model.d_model", d_model, 1, kFerMaxWidth);
  in("model.heads", heads, 1, kFerMaxHeads);
  in("model.d_ff", d_ff, 1, kFerMaxWidth);
  ADNN_CHECK(!transformer || d_model % heads == 0, "model.d_model: ", d_model, " is not a multiple of model.heads (",
             heads, ")");
  unit("model.dropout", dropout, false, true);
  unit("model.head_dropout", head_dropout, false, true);
  unit("model.drop_path", drop_path, false, true);
  ADNN_CHECK(augment == "full" || augment == "light", "recipe.augment: expected full or light, got '", augment, "'");
  ADNN_CHECK(loss == "ce" || loss == "compound", "recipe.loss: expected ce or compound, got '", loss, "'");
  in("recipe.epochs", epochs, 1, kFerMaxEpochs);
  in("recipe.batch", batch, 1, kFerMaxBatch);
  in("recipe.warmup_epochs", warmup_epochs, 0, kFerMaxEpochs);
  in("recipe.patience", patience, 1, kFerMaxEpochs);
  ADNN_CHECK(std::isfinite(lr) && lr > 0 && lr <= kFerMaxLr, "recipe.lr: ", lr, " is out of range (0, ", kFerMaxLr,
             "]");
  ADNN_CHECK(std::isfinite(weight_decay) && weight_decay >= 0 && weight_decay <= 10, "recipe.weight_decay: ",
             weight_decay, " is out of range [0, 10]");
  unit("recipe.layer_decay", layer_decay, true, false);
  unit("recipe.dls_eps", dls_eps, false, false);
}

std::vector<std::string> fer_config_names() { return {"adnn_fer_paper", "adnn_fer_nano"}; }

FerConfig fer_config(const std::string& name) {
  FerConfig c;
  if (name == "adnn_fer_paper")  // BRIEF §2 / the paper: B5, 224×224×3, 6 × (2048, 8 heads, 4096)
    return FerConfig{.name = name, .backbone = "efficientnet_b5", .image_size = 224, .in_chans = 3, .layers = 6,
                     .d_model = 2048, .heads = 8, .d_ff = 4096, .dropout = 0.1, .head_dropout = 0.3, .drop_path = 0.2,
                     .epochs = 100, .batch = 32, .warmup_epochs = 5, .patience = 15, .lr = 1e-4,
                     .weight_decay = 0.05, .layer_decay = 0.8, .mixup = true, .augment = "full"};
  if (name == "adnn_fer_nano") return FerConfig{};  // the defaults: see docs/adnn_fer.md
  std::string list;
  for (auto& n : fer_config_names()) list += " " + n;
  ADNN_FAIL("ADNN-FER: unknown configuration '", name, "' (known:", list, ")");
}

namespace {
// "vgg_nano, vgg_nano_wide": the VGG layouts' names, for messages.
std::string vgg_names() {
  std::string s;
  for (const VggLayout& l : VggNano::vgg_layouts()) s += (s.empty() ? "" : ", ") + std::string(l.name);
  return s;
}
}  // namespace

nn::EfficientNetConfig backbone_config(const FerConfig& c) {
  nn::EfficientNetConfig e;
  if (c.backbone == "efficientnet_nano") {
    // B0's stage layout at width 0.5, depth 0.5; stages 4 and 6 keep stride 1 so that 48×48
    // gives a 6×6 token grid (total stride 8); the head conv is d_model wide so the tokens
    // need no projection.
    e.width = 0.5;
    e.depth = 0.5;
    e.stem_stride = 2;
    e.stage_strides = {1, 2, 2, 1, 1, 1, 1};
    e.head_channels = c.d_model;
  } else if (c.backbone.rfind("efficientnet_b", 0) == 0 || c.backbone.rfind("tf_efficientnet_b", 0) == 0) {
    e = nn::efficientnet_config(c.backbone);
  } else {
    ADNN_CHECK(c.backbone == "resnet50" || c.backbone == "resnet_nano" || VggNano::known(c.backbone),
               "ADNN-FER: unknown backbone '", c.backbone, "' (resnet_nano, ", vgg_names(),
               ", efficientnet_nano, efficientnet_b0 … b7, tf_efficientnet_b0 … b7, resnet50)");
    return e;
  }
  e.in_chans = c.in_chans;
  e.num_classes = c.num_classes;  // the classifier is not used (ADNN-FER has its own head)
  e.drop_path_rate = c.drop_path;
  return e;
}

BasicBlock::BasicBlock(int64_t in, int64_t out, int64_t stride) {
  conv1 = register_module(
      "conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(out));
  conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(out));
  if (stride != 1 || in != out) {
    downsample = register_module("downsample", std::make_shared<nn::Sequential>());
    downsample->add(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)))
        .add(std::make_shared<nn::BatchNorm2d>(out));
  }
}
Tensor BasicBlock::forward(const Tensor& x) {
  Tensor y = (*bn2)((*conv2)(bn1->forward_act((*conv1)(x), NormActivation::relu)));
  return relu(y + (downsample ? (*downsample)(x) : x));
}

ResNetNano::ResNetNano(int64_t in_chans, int64_t head_channels) {
  conv1 = register_module("conv1",
                          std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in_chans, 32, 3).padding(1).bias(false)));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(32));
  layer1 = register_module("layer1", std::make_shared<BasicBlock>(32, 48, 2));
  layer2 = register_module("layer2", std::make_shared<BasicBlock>(48, 96, 2));
  layer3 = register_module("layer3", std::make_shared<BasicBlock>(96, 192, 2));
  layer4 = register_module("layer4", std::make_shared<BasicBlock>(192, 192, 1));
  conv_head = register_module("conv_head",
                              std::make_shared<nn::Conv2d>(nn::Conv2dOptions(192, head_channels, 1).bias(false)));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(head_channels));
}

VggBlock::VggBlock(int64_t in, int64_t out, VggPool pool_) : pool(pool_) {
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(in, out, 3).padding(1).bias(false)));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(out));
  conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)));
  bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(out));
}
Tensor VggBlock::forward(const Tensor& x) {
  Tensor y = (*conv1)(x);                                            // (N, H, W, out)
  if (pool == VggPool::between) y = max_pool2d(y, Pool2dOptions{});  // (N, H/2, W/2, out): 2×2, stride 2 (floor)
  y = bn1->forward_act(y, NormActivation::relu);
  y = bn2->forward_act((*conv2)(y), NormActivation::relu);
  return pool == VggPool::after ? max_pool2d(y, Pool2dOptions{}) : y;
}

namespace {
const VggLayout* checked_vgg_layout(const std::string& backbone) {
  const VggLayout* l = VggNano::find_layout(backbone);
  ADNN_CHECK(l, "VggNano: unknown backbone '", backbone, "' (", vgg_names(), ")");
  return l;
}
}  // namespace

std::span<const VggLayout> VggNano::vgg_layouts() {
  using enum VggPool;
  static constexpr std::array<VggLayout, 2> kLayouts{{
      {"vgg_nano", {32, 64, 128, 256}, {after, after, after, none}},
      {"vgg_nano_wide", {32, 96, 192, 256}, {after, between, between, none}},
  }};
  return kLayouts;
}
const VggLayout* VggNano::find_layout(const std::string& backbone) {
  for (const VggLayout& l : vgg_layouts())
    if (backbone == l.name) return &l;
  return nullptr;
}
VggNano::VggNano(const std::string& backbone, int64_t in_chans) : layout(*checked_vgg_layout(backbone)) {
  std::shared_ptr<VggBlock>* blocks[4] = {&block1, &block2, &block3, &block4};
  int64_t in = in_chans;
  for (int i = 0; i < 4; ++i) {
    *blocks[i] = register_module("block" + std::to_string(i + 1),
                                 std::make_shared<VggBlock>(in, layout.widths[i], layout.pools[i]));
    in = layout.widths[i];
  }
}
Tensor VggNano::forward(const Tensor& x) { return (*block4)((*block3)((*block2)((*block1)(x)))); }

AdnnFer::AdnnFer(const FerConfig& c) : c_(c) {
  ADNN_CHECK(c.image_size > 0 && c.in_chans > 0 && c.num_classes > 1, "ADNN-FER: bad config (image ", c.image_size,
             ", channels ", c.in_chans, ", classes ", c.num_classes, ")");
  int64_t stage5_channels = 0;
  // The head modules are registered first and the backbone after, so that layer-wise decay
  // (optim::layer_decay_groups: depth counts back from the last registered layer) gives the
  // top of the backbone depth 0 and the stem the largest depth; the trainer pins the
  // attention and head modules to depth 0.
  if (c.backbone == "resnet_nano") {
    rnano = std::make_shared<ResNetNano>(c.in_chans, c.transformer ? c.d_model : 192);
    head_channels_ = c.transformer ? c.d_model : 192;
    stage5_channels = 192;
    int64_t g = c.image_size;
    for (int i = 0; i < 3; ++i) g = ceil_div(g, 2);
    grid_ = {g, g};
  } else if (VggNano::known(c.backbone)) {
    vnano = std::make_shared<VggNano>(c.backbone, c.in_chans);
    head_channels_ = vnano->layout.widths[3];
    stage5_channels = vnano->layout.widths[2];
    int64_t g = c.image_size;
    for (VggPool p : vnano->layout.pools)
      if (p != VggPool::none) g /= 2;  // each pooling block halves it (floor, as max_pool2d)
    grid_ = {g, g};
  } else if (c.backbone == "resnet50") {
    resnet = std::make_shared<nn::ResNet>(std::vector<int64_t>{3, 4, 6, 3}, c.num_classes, c.in_chans);
    head_channels_ = 2048;
    stage5_channels = 1024;
    int64_t g = ceil_div(ceil_div(c.image_size, 2), 2);
    for (int i = 0; i < 3; ++i) g = ceil_div(g, 2);
    grid_ = {g, g};
  } else {
    nn::EfficientNetConfig e = backbone_config(c);
    effnet = std::make_shared<nn::EfficientNet>(e);
    head_channels_ = effnet->num_features();
    stage5_channels = effnet->stage_channels()[4];
    static const int64_t b0_strides[7] = {1, 2, 2, 2, 1, 2, 1};
    int64_t g = ceil_div(c.image_size, e.stem_stride);
    for (int s = 0; s < 7; ++s) g = ceil_div(g, e.stage_strides.empty() ? b0_strides[s] : e.stage_strides[size_t(s)]);
    grid_ = {g, g};
  }
  if (c.cbam) {
    cbam_stage5 = register_module("cbam_stage5", std::make_shared<nn::CBAM>(stage5_channels, c.cbam_reduction));
    cbam_head = register_module("cbam_head", std::make_shared<nn::CBAM>(head_channels_, c.cbam_reduction));
  }
  feat_dim_ = head_channels_;
  if (c.transformer) {
    if (head_channels_ != c.d_model)
      proj = register_module("proj", std::make_shared<nn::Linear>(head_channels_, c.d_model));
    feat_dim_ = c.d_model;
    pos_embed = register_module("pos_embed", std::make_shared<nn::PositionalEmbedding>(grid_.first * grid_.second,
                                                                                        c.d_model));
    nn::TransformerOptions o;
    o.d_model = c.d_model;
    o.nhead = c.heads;
    o.dim_feedforward = c.d_ff;
    o.dropout = c.dropout;
    encoder = register_module("encoder", std::make_shared<nn::TransformerEncoder>(o, c.layers));
  }
  norm = register_module("norm", std::make_shared<nn::LayerNorm>(feat_dim_));
  head = register_module("head", std::make_shared<nn::Linear>(feat_dim_, c.num_classes));
  // backbone last (see above); its own classifier is not registered (unused)
  if (effnet) {
    register_module("conv_stem", effnet->conv_stem);
    register_module("bn1", effnet->bn1);
    register_module("blocks", effnet->blocks);
    register_module("conv_head", effnet->conv_head);
    register_module("bn2", effnet->bn2);
  } else if (rnano) {
    register_module("conv1", rnano->conv1);
    register_module("bn1", rnano->bn1);
    register_module("layer1", rnano->layer1);
    register_module("layer2", rnano->layer2);
    register_module("layer3", rnano->layer3);
    register_module("layer4", rnano->layer4);
    register_module("conv_head", rnano->conv_head);
    register_module("bn2", rnano->bn2);
  } else if (vnano) {
    register_module("block1", vnano->block1);
    register_module("block2", vnano->block2);
    register_module("block3", vnano->block3);
    register_module("block4", vnano->block4);
  } else {
    register_module("conv1", resnet->conv1);
    register_module("bn1", resnet->bn1);
    register_module("layer1", resnet->layer1);
    register_module("layer2", resnet->layer2);
    register_module("layer3", resnet->layer3);
    register_module("layer4", resnet->layer4);
  }
}

Tensor AdnnFer::backbone_map(const Tensor& x) {
  ADNN_CHECK(x.dim() == 4 && x.size(3) == c_.in_chans && x.size(1) == c_.image_size && x.size(2) == c_.image_size,
             "ADNN-FER (", c_.name, "): expected input (N, ", c_.image_size, ", ", c_.image_size, ", ", c_.in_chans,
             "), got ", x.desc());
  Tensor y;
  if (effnet) {
    y = effnet->bn1->forward_act((*effnet->conv_stem)(x), NormActivation::silu);  // (N, H/s, W/s, C0)
    for (size_t s = 0; s < effnet->stage_channels().size(); ++s) {
      y = (*effnet->blocks)[s](y);
      if (s == 4 && cbam_stage5) y = (*cbam_stage5)(y);  // after stage 5
    }
    y = effnet->bn2->forward_act((*effnet->conv_head)(y), NormActivation::silu);  // (N, h, w, C_head)
  } else if (rnano) {
    y = rnano->bn1->forward_act((*rnano->conv1)(x), NormActivation::relu);                               // (N, S, S, 32)
    y = (*rnano->layer3)((*rnano->layer2)((*rnano->layer1)(y)));               // (N, S/8, S/8, 192)
    if (cbam_stage5) y = (*cbam_stage5)(y);
    y = rnano->bn2->forward_act((*rnano->conv_head)((*rnano->layer4)(y)), NormActivation::relu);        // (N, S/8, S/8, C_head)
  } else if (vnano) {
    y = (*vnano->block3)((*vnano->block2)((*vnano->block1)(x)));  // (N, S/8, S/8, 128 or 192)
    if (cbam_stage5) y = (*cbam_stage5)(y);
    y = (*vnano->block4)(y);  // (N, S/8, S/8, 256)
  } else {
    Pool2dOptions mp;
    mp.kernel = {3, 3};
    mp.stride = {2, 2};
    mp.padding = {1, 1};
    y = max_pool2d(resnet->bn1->forward_act((*resnet->conv1)(x), NormActivation::relu), mp);
    y = (*resnet->layer3)((*resnet->layer2)((*resnet->layer1)(y)));
    if (cbam_stage5) y = (*cbam_stage5)(y);
    y = (*resnet->layer4)(y);  // (N, h, w, 2048)
  }
  if (cbam_head) y = (*cbam_head)(y);
  return y;
}

std::pair<Tensor, Tensor> AdnnFer::forward_with_features(const Tensor& x) {
  Tensor f = backbone_map(x);  // (N, h, w, C)
  const int64_t N = f.size(0), L = f.size(1) * f.size(2), C = f.size(3);
  Tensor p;
  if (encoder) {
    Tensor t = f.reshape({N, L, C});  // (N, L, C) tokens in raster order
    if (proj) t = (*proj)(t);         // (N, L, d)
    t = (*encoder)((*pos_embed)(t));  // (N, L, d)
    p = mean(t, {1});                 // (N, d)
  } else {
    p = global_avg_pool2d(f);  // (N, C)
  }
  p = (*norm)(p);
  Tensor logits = (*head)(dropout(p, c_.head_dropout, training_));  // (N, classes)
  return {logits, p};
}

Tensor AdnnFer::forward(const Tensor& x) { return forward_with_features(x).first; }

std::shared_ptr<AdnnFer> load_adnn_fer(const std::string& path, Device device) {
  io::SafeTensors st = io::load_safetensors(path);
  ADNN_CHECK(st.metadata.count("model.name"), "load_adnn_fer: ", path,
             " has no ADNN-FER config in its metadata (was it written by adnn-fer train?)");
  auto model = std::make_shared<AdnnFer>(FerConfig::from_map(st.metadata));
  model->load_state_dict(st.tensors, true);
  model->eval();
  model->to(device);
  return model;
}

}  // namespace adnn::nn
