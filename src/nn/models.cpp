// EfficientNet and ResNet (include/adnn/nn/models.hpp).
#include <adnn/nn/models.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace adnn::nn {

int64_t round_channels(double channels, double multiplier) {
  const double v = channels * multiplier;
  const int64_t divisor = 8;
  int64_t n = std::max<int64_t>(divisor, int64_t(v + divisor / 2.0) / divisor * divisor);
  if (double(n) < 0.9 * v) n += divisor;
  return n;
}

namespace {
std::shared_ptr<Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t groups, bool tf,
                             bool bias = false) {
  // timm's padding: symmetric (k-1)/2 (tf_: TensorFlow's "SAME"); no bias before a BN
  Conv2dOptions o = Conv2dOptions(in, out, k).stride(stride).groups(groups).bias(bias);
  if (tf) o.padding(kSame);
  else o.padding((k - 1) / 2);
  return std::make_shared<Conv2d>(o);
}
std::shared_ptr<BatchNorm2d> bn(int64_t c, bool tf) { return std::make_shared<BatchNorm2d>(c, tf ? 1e-3 : 1e-5); }
}  // namespace

DepthwiseSeparable::DepthwiseSeparable(int64_t in, int64_t out, int64_t k, int64_t stride, double se_ratio, bool tf,
                                       double dp) {
  conv_dw = register_module("conv_dw", conv(in, in, k, stride, in, tf));
  bn1 = register_module("bn1", bn(in, tf));
  if (se_ratio > 0)
    se = register_module("se", std::make_shared<SqueezeExcite>(in, std::max<int64_t>(1, std::llround(in * se_ratio))));
  conv_pw = register_module("conv_pw", conv(in, out, 1, 1, 1, tf));
  bn2 = register_module("bn2", bn(out, tf));
  drop_path = register_module("drop_path", std::make_shared<DropPath>(dp));
  has_skip = stride == 1 && in == out;
}

Tensor DepthwiseSeparable::forward(const Tensor& x) {
  Tensor y = bn1->forward_act((*conv_dw)(x), NormActivation::silu);
  if (se) y = (*se)(y);
  y = (*bn2)((*conv_pw)(y));
  return has_skip ? add((*drop_path)(y), x) : y;
}

MBConv::MBConv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t expand, double se_ratio, bool tf,
               double dp) {
  const int64_t mid = in * expand;
  conv_pw = register_module("conv_pw", conv(in, mid, 1, 1, 1, tf));
  bn1 = register_module("bn1", bn(mid, tf));
  conv_dw = register_module("conv_dw", conv(mid, mid, k, stride, mid, tf));
  bn2 = register_module("bn2", bn(mid, tf));
  // timm: SE width from the block input, rd = round(mid · se_ratio / expand)
  if (se_ratio > 0)
    se = register_module("se", std::make_shared<SqueezeExcite>(
                                   mid, std::max<int64_t>(1, std::llround(double(mid) * se_ratio / double(expand)))));
  conv_pwl = register_module("conv_pwl", conv(mid, out, 1, 1, 1, tf));
  bn3 = register_module("bn3", bn(out, tf));
  drop_path = register_module("drop_path", std::make_shared<DropPath>(dp));
  has_skip = stride == 1 && in == out;
}

Tensor MBConv::forward(const Tensor& x) {
  Tensor y = bn1->forward_act((*conv_pw)(x), NormActivation::silu);
  y = bn2->forward_act((*conv_dw)(y), NormActivation::silu);
  if (se) y = (*se)(y);
  y = (*conv_pwl)(y);  // (N, H, W, out)
  if (!has_skip) return (*bn3)(y);
  // the epilogue in one pass: x + drop_path(bn3(y))
  return bn3->forward_residual(y, x, drop_path->sample_scale(x.size(0), TensorOptions(y.dtype(), y.device())));
}

EfficientNetConfig efficientnet_config(const std::string& name) {
  struct Row {
    const char* n;
    double w, d;
    int64_t res;
    double drop;
  };
  static const Row rows[] = {{"b0", 1.0, 1.0, 224, 0.2}, {"b1", 1.0, 1.1, 240, 0.2}, {"b2", 1.1, 1.2, 260, 0.3},
                             {"b3", 1.2, 1.4, 300, 0.3}, {"b4", 1.4, 1.8, 380, 0.4}, {"b5", 1.6, 2.2, 456, 0.4},
                             {"b6", 1.8, 2.6, 528, 0.5}, {"b7", 2.0, 3.1, 600, 0.5}};
  bool tf = name.rfind("tf_", 0) == 0;
  const std::string base = tf ? name.substr(3) : name;
  for (auto& r : rows)
    if (base == std::string("efficientnet_") + r.n) {
      EfficientNetConfig c;
      c.width = r.w;
      c.depth = r.d;
      c.default_size = r.res;
      c.drop_rate = r.drop;
      c.tf = tf;
      return c;
    }
  ADNN_FAIL("efficientnet_config: unknown model '", name, "' (efficientnet_b0 … b7, tf_efficientnet_b0 … b7)");
}

EfficientNet::EfficientNet(EfficientNetConfig c) : c_(c) {
  // (block type, repeats, kernel, stride, expand, channels); SE ratio 0.25 everywhere
  struct Stage {
    bool ds;
    int r, k, s, e, ch;
  };
  static const Stage arch[] = {{true, 1, 3, 1, 1, 16},   {false, 2, 3, 2, 6, 24},  {false, 2, 5, 2, 6, 40},
                               {false, 3, 3, 2, 6, 80},  {false, 3, 5, 1, 6, 112}, {false, 4, 5, 2, 6, 192},
                               {false, 1, 3, 1, 6, 320}};
  const int64_t stem = round_channels(32, c.width);
  conv_stem = register_module("conv_stem", conv(c.in_chans, stem, 3, c.stem_stride, 1, c.tf));
  bn1 = register_module("bn1", bn(stem, c.tf));
  int total = 0;
  for (auto& s : arch) total += int(std::ceil(s.r * c.depth));
  blocks = register_module("blocks", std::make_shared<Sequential>());
  int64_t in = stem;
  int idx = 0;
  ADNN_CHECK(c.stage_strides.empty() || c.stage_strides.size() == 7, "EfficientNet: stage_strides needs 7 entries, got ",
             c.stage_strides.size());
  for (size_t si = 0; si < std::size(arch); ++si) {
    const Stage& s = arch[si];
    const int64_t first_stride = c.stage_strides.empty() ? s.s : c.stage_strides[si];
    auto stage = std::make_shared<Sequential>();
    const int64_t out = round_channels(s.ch, c.width);
    const int reps = int(std::ceil(s.r * c.depth));
    for (int b = 0; b < reps; ++b) {
      const double dp = c.drop_path_rate * idx++ / total;
      const int64_t stride = b == 0 ? first_stride : 1;
      if (s.ds)
        stage->add(std::make_shared<DepthwiseSeparable>(in, out, s.k, stride, 0.25, c.tf, dp));
      else
        stage->add(std::make_shared<MBConv>(in, out, s.k, stride, s.e, 0.25, c.tf, dp));
      in = out;
    }
    stage_channels_.push_back(out);
    blocks->add(stage);
  }
  num_features_ = c.head_channels > 0 ? c.head_channels : round_channels(1280, c.width);
  conv_head = register_module("conv_head", conv(in, num_features_, 1, 1, 1, c.tf));
  bn2 = register_module("bn2", bn(num_features_, c.tf));
  classifier = register_module("classifier", std::make_shared<Linear>(num_features_, c.num_classes));
}

std::vector<Tensor> EfficientNet::forward_features(const Tensor& x) {
  ADNN_CHECK(x.dim() == 4 && x.size(3) == c_.in_chans, "EfficientNet: input must be (N, H, W, ", c_.in_chans,
             "), got ", x.desc());
  std::vector<Tensor> taps;
  Tensor y = bn1->forward_act((*conv_stem)(x), NormActivation::silu);
  taps.push_back(y);
  for (size_t s = 0; s < stage_channels_.size(); ++s) {
    y = (*blocks)[s](y);
    taps.push_back(y);
  }
  taps.push_back(bn2->forward_act((*conv_head)(y), NormActivation::silu));
  return taps;
}

Tensor EfficientNet::forward_head(const Tensor& f) {
  Tensor p = global_avg_pool2d(f);
  p = dropout(p, c_.drop_rate, training_);
  return (*classifier)(p);
}

Tensor EfficientNet::forward(const Tensor& x) { return forward_head(forward_features(x).back()); }

Bottleneck::Bottleneck(int64_t in, int64_t planes, int64_t stride, bool ds) {
  conv1 = register_module("conv1", conv(in, planes, 1, 1, 1, false));
  bn1 = register_module("bn1", bn(planes, false));
  conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1, false));
  bn2 = register_module("bn2", bn(planes, false));
  conv3 = register_module("conv3", conv(planes, planes * 4, 1, 1, 1, false));
  bn3 = register_module("bn3", bn(planes * 4, false));
  if (ds) {
    downsample = register_module("downsample", std::make_shared<Sequential>());
    downsample->add(conv(in, planes * 4, 1, stride, 1, false)).add(bn(planes * 4, false));
  }
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor y = bn1->forward_act((*conv1)(x), NormActivation::relu);
  y = bn2->forward_act((*conv2)(y), NormActivation::relu);
  y = (*bn3)((*conv3)(y));
  return relu(add(y, downsample ? (*downsample)(x) : x));
}

ResNet::ResNet(std::vector<int64_t> layers, int64_t num_classes, int64_t in_chans) {
  conv1 = register_module("conv1", conv(in_chans, 64, 7, 2, 1, false));
  bn1 = register_module("bn1", bn(64, false));
  int64_t in = 64;
  std::shared_ptr<Sequential>* stages[] = {&layer1, &layer2, &layer3, &layer4};
  for (int i = 0; i < 4; ++i) {
    auto seq = std::make_shared<Sequential>();
    const int64_t planes = 64 << i, stride = i == 0 ? 1 : 2;
    for (int64_t b = 0; b < layers[size_t(i)]; ++b) {
      seq->add(std::make_shared<Bottleneck>(in, planes, b == 0 ? stride : 1, b == 0));
      in = planes * 4;
    }
    *stages[i] = register_module("layer" + std::to_string(i + 1), seq);
  }
  fc = register_module("fc", std::make_shared<Linear>(in, num_classes));
}

std::vector<Tensor> ResNet::forward_features(const Tensor& x) {
  Pool2dOptions mp;
  mp.kernel = {3, 3};
  mp.stride = {2, 2};
  mp.padding = {1, 1};
  Tensor y = max_pool2d(bn1->forward_act((*conv1)(x), NormActivation::relu), mp);
  std::vector<Tensor> taps;
  for (auto* l : {&layer1, &layer2, &layer3, &layer4}) {
    y = (**l)(y);
    taps.push_back(y);
  }
  return taps;
}

Tensor ResNet::forward(const Tensor& x) { return (*fc)(global_avg_pool2d(forward_features(x).back())); }

std::vector<std::string> model_names() {
  std::vector<std::string> n;
  for (const char* p : {"", "tf_"})
    for (int b = 0; b < 8; ++b) n.push_back(std::string(p) + "efficientnet_b" + std::to_string(b));
  n.push_back("resnet50");
  return n;
}

std::shared_ptr<Module> create_model(const std::string& name, int64_t num_classes, int64_t in_chans) {
  if (name == "resnet50") return std::make_shared<ResNet>(std::vector<int64_t>{3, 4, 6, 3}, num_classes, in_chans);
  EfficientNetConfig c = efficientnet_config(name);
  c.num_classes = num_classes;
  c.in_chans = in_chans;
  return std::make_shared<EfficientNet>(c);
}

void load_pytorch_state_dict(Module& m, const std::vector<std::pair<std::string, Tensor>>& sd, bool strict) {
  std::map<std::string, Shape> mine;
  for (auto& [n, t] : m.state_dict()) mine[n] = t.sizes();
  std::vector<std::pair<std::string, Tensor>> converted;
  for (auto& [n, t] : sd) {
    auto it = mine.find(n);
    if (it != mine.end() && t.dim() == 4 && it->second.size() == 4) {
      // torch (O, I, KH, KW) -> adnn (O, KH, KW, I)
      ADNN_CHECK(t.size(0) == it->second[0] && t.size(1) == it->second[3] && t.size(2) == it->second[1] &&
                     t.size(3) == it->second[2],
                 "load_pytorch_state_dict: '", n, "' has torch shape ", shape_str(t.sizes()), " but the module expects ",
                 shape_str(it->second), " in (O, KH, KW, I)");
      converted.push_back({n, t.permute({0, 2, 3, 1}).contiguous()});
    } else {
      converted.push_back({n, t});
    }
  }
  m.load_state_dict(converted, strict);
}

void load_pytorch_safetensors(Module& m, const std::string& path, bool strict) {
  load_pytorch_state_dict(m, io::load_safetensors(path).tensors, strict);
}

std::vector<std::pair<std::string, Tensor>> pytorch_state_dict(const Module& m) {
  std::set<std::string> conv_weights;  // every Conv2d's weight, by dotted name
  for (auto& [name, mod] : const_cast<Module&>(m).named_modules())
    if (dynamic_cast<const Conv2d*>(mod)) conv_weights.insert(name.empty() ? "weight" : name + ".weight");
  NoGradGuard ng;
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : m.state_dict()) {
    Tensor c = t.detach().to(kCPU);
    if (conv_weights.count(n)) c = c.permute({0, 3, 1, 2});  // (O, KH, KW, C/g) -> (O, C/g, KH, KW)
    out.push_back({n, c.contiguous()});
  }
  return out;
}

void save_pytorch_safetensors(const Module& m, const std::string& path,
                              const std::map<std::string, std::string>& metadata) {
  auto meta = metadata;
  meta.emplace("format", "pt");  // what safetensors.torch.save_file writes
  io::save_safetensors(path, pytorch_state_dict(m), meta);
}

std::vector<std::pair<std::string, Tensor>> torchvision_efficientnet_names(
    const std::vector<std::pair<std::string, Tensor>>& sd) {
  // the stage count: conv_head's torchvision index is features.(stages + 1)
  int64_t stages = 0;
  for (auto& [n, t] : sd)
    if (n.rfind("blocks.", 0) == 0) stages = std::max<int64_t>(stages, std::stoll(n.substr(7)) + 1);
  auto fail = [](const std::string& n) -> std::string {
    ADNN_FAIL("torchvision_efficientnet_names: '", n,
              "' is not a timm EfficientNet name (conv_stem, bn1, blocks.S.B.*, conv_head, bn2, classifier)");
  };
  auto leaf = [](const std::string& n) { return n.substr(n.rfind('.') + 1); };
  std::vector<std::pair<std::string, Tensor>> out;
  for (auto& [n, t] : sd) {
    std::string r;
    if (n.rfind("conv_stem.", 0) == 0) r = "features.0.0." + leaf(n);
    else if (n.rfind("bn1.", 0) == 0) r = "features.0.1." + leaf(n);
    else if (n.rfind("conv_head.", 0) == 0) r = "features." + std::to_string(stages + 1) + ".0." + leaf(n);
    else if (n.rfind("bn2.", 0) == 0) r = "features." + std::to_string(stages + 1) + ".1." + leaf(n);
    else if (n.rfind("classifier.", 0) == 0) r = "classifier.1." + leaf(n);
    else if (n.rfind("blocks.", 0) == 0) {
      // blocks.S.B.<part>.<leaf>: stage S (0: depthwise-separable blocks), block B
      const size_t p1 = n.find('.', 7), p2 = p1 == std::string::npos ? p1 : n.find('.', p1 + 1);
      if (p2 == std::string::npos) r = fail(n);
      const int64_t s = std::stoll(n.substr(7, p1 - 7));
      const std::string b = n.substr(p1 + 1, p2 - p1 - 1), part = n.substr(p2 + 1, n.rfind('.') - p2 - 1);
      // expand ratio 1 (stage 0): conv_dw/bn1 (0), se (1), conv_pw/bn2 (2)
      // MBConv: conv_pw/bn1 (0), conv_dw/bn2 (1), se (2), conv_pwl/bn3 (3)
      static const std::map<std::string, std::string> ds = {{"conv_dw", "0.0"}, {"bn1", "0.1"},
                                                            {"se.conv_reduce", "1.fc1"}, {"se.conv_expand", "1.fc2"},
                                                            {"conv_pw", "2.0"}, {"bn2", "2.1"}};
      static const std::map<std::string, std::string> mb = {
          {"conv_pw", "0.0"},  {"bn1", "0.1"},         {"conv_dw", "1.0"},         {"bn2", "1.1"},
          {"se.conv_reduce", "2.fc1"}, {"se.conv_expand", "2.fc2"}, {"conv_pwl", "3.0"}, {"bn3", "3.1"}};
      const auto& table = s == 0 ? ds : mb;
      auto it = table.find(part);
      if (it == table.end()) r = fail(n);
      else r = "features." + std::to_string(s + 1) + "." + b + ".block." + it->second + "." + leaf(n);
    } else {
      r = fail(n);
    }
    out.push_back({r, t});
  }
  return out;
}

}  // namespace adnn::nn
