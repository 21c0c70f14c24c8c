// RetinaFace MobileNet-0.25 (include/adnn/nn/retinaface.hpp).
#include <adnn/io/safetensors.hpp>
#include <adnn/nn/models.hpp>
#include <adnn/nn/retinaface.hpp>

#include <array>
#include <cmath>
#include <tuple>

namespace adnn::nn {

// ---------------------------------------------------------------- ConvBN
ConvBNAct::ConvBNAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, double slope_)
    : slope(slope_) {
  conv = std::make_shared<Conv2d>(
      Conv2dOptions(in, out, kernel).stride(stride).padding((kernel - 1) / 2).groups(groups).bias(false));
  bn = std::make_shared<BatchNorm2d>(out);
}

void ConvBNAct::fold() {
  NoGradGuard ng;
  // bn(conv(x)) = conv(x)·k + (β − μ·k), k = γ / sqrt(σ² + ε), per output channel
  Tensor k = div(bn->weight, sqrt(add(bn->running_var, bn->eps)));  // (O)
  folded_w = mul(conv->weight, k.reshape({-1, 1, 1, 1})).detach().contiguous();
  folded_b = sub(bn->bias, mul(bn->running_mean, k)).detach().contiguous();
}

Tensor ConvBNAct::run(const Tensor& x, bool training) {
  Tensor y;
  if (!training && folded_w.defined() && folded_w.device() == x.device()) {
    y = conv2d(x, folded_w, folded_b, conv->conv_options());
  } else {
    y = bn->forward((*conv)(x));
  }
  return slope >= 0 ? leaky_relu(y, slope) : y;
}

ConvBN::ConvBN(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, double slope)
    : c_(in, out, kernel, stride, groups, slope) {
  register_module("0", c_.conv);
  register_module("1", c_.bn);
}

MobileNetBlock::MobileNetBlock(int64_t in, int64_t out, int64_t stride)
    : dw_(in, in, 3, stride, in, 0.1), pw_(in, out, 1, 1, 1, 0.1) {
  register_module("0", dw_.conv);
  register_module("1", dw_.bn);
  register_module("3", pw_.conv);
  register_module("4", pw_.bn);
}

namespace {

class MobileNetV1 : public Module {
 public:
  MobileNetV1() {
    auto s1 = std::make_shared<Sequential>();
    stem = std::make_shared<ConvBN>(3, 8, 3, 2, 1, 0.1);
    s1->add(stem);
    auto block = [&](Sequential& seq, int64_t i, int64_t o, int64_t s) {
      blocks.push_back(std::make_shared<MobileNetBlock>(i, o, s));
      seq.add(blocks.back());
    };
    for (auto [i, o, s] : {std::tuple{8, 16, 1}, {16, 32, 2}, {32, 32, 1}, {32, 64, 2}, {64, 64, 1}}) block(*s1, i, o, s);
    auto s2 = std::make_shared<Sequential>();
    block(*s2, 64, 128, 2);
    for (int k = 0; k < 5; ++k) block(*s2, 128, 128, 1);
    auto s3 = std::make_shared<Sequential>();
    block(*s3, 128, 256, 2);
    block(*s3, 256, 256, 1);
    stage1 = register_module("stage1", s1);
    stage2 = register_module("stage2", s2);
    stage3 = register_module("stage3", s3);
  }
  Tensor forward(const Tensor&) override { ADNN_FAIL("MobileNetV1: call forward3"); }
  // (N, H, W, 3) -> strides 8, 16, 32 with 64, 128, 256 channels
  std::array<Tensor, 3> forward3(const Tensor& x) {
    Tensor a = (*stage1)(x);
    Tensor b = (*stage2)(a);
    return {a, b, (*stage3)(b)};
  }
  void fold_batch_norm() {
    stem->fold_batch_norm();
    for (auto& b : blocks) b->fold_batch_norm();
  }
  std::shared_ptr<ConvBN> stem;
  std::vector<std::shared_ptr<MobileNetBlock>> blocks;
  std::shared_ptr<Sequential> stage1, stage2, stage3;
};

class FPN : public Module {
 public:
  FPN() {
    output1 = register_module("output1", std::make_shared<ConvBN>(64, 64, 1, 1, 1, 0.1));
    output2 = register_module("output2", std::make_shared<ConvBN>(128, 64, 1, 1, 1, 0.1));
    output3 = register_module("output3", std::make_shared<ConvBN>(256, 64, 1, 1, 1, 0.1));
    merge1 = register_module("merge1", std::make_shared<ConvBN>(64, 64, 3, 1, 1, 0.1));
    merge2 = register_module("merge2", std::make_shared<ConvBN>(64, 64, 3, 1, 1, 0.1));
  }
  Tensor forward(const Tensor&) override { ADNN_FAIL("FPN: call forward3"); }
  std::array<Tensor, 3> forward3(const std::array<Tensor, 3>& in) {
    Tensor o1 = (*output1)(in[0]), o2 = (*output2)(in[1]), o3 = (*output3)(in[2]);  // (N, Hi, Wi, 64)
    o2 = (*merge2)(add(o2, interpolate(o3, o2.size(1), o2.size(2), InterpMode::nearest)));
    o1 = (*merge1)(add(o1, interpolate(o2, o1.size(1), o1.size(2), InterpMode::nearest)));
    return {o1, o2, o3};
  }
  void fold_batch_norm() {
    for (auto& c : {output1, output2, output3, merge1, merge2}) c->fold_batch_norm();
  }
  std::shared_ptr<ConvBN> output1, output2, output3, merge1, merge2;
};

// A 1×1 conv with bias named conv1x1 (ClassHead / BboxHead / LandmarkHead entries).
class Head : public Module {
 public:
  Head(int64_t in, int64_t per_anchor) : k_(per_anchor) {
    conv1x1 = register_module("conv1x1", std::make_shared<Conv2d>(Conv2dOptions(in, 2 * per_anchor, 1)));
  }
  // (N, H, W, in) -> (N, H·W·2, k): NHWC already has torch's permute(0, 2, 3, 1) order
  Tensor forward(const Tensor& x) override { return (*conv1x1)(x).reshape({x.size(0), -1, k_}); }
  std::shared_ptr<Conv2d> conv1x1;

 private:
  int64_t k_;
};

}  // namespace

// ---------------------------------------------------------------- SSH
SSH::SSH(int64_t in, int64_t out) {
  ADNN_CHECK(out % 4 == 0, "SSH: output channels ", out, " must be a multiple of 4");
  const double slope = out <= 64 ? 0.1 : 0.0;
  conv3X3 = register_module("conv3X3", std::make_shared<ConvBN>(in, out / 2, 3, 1, 1, -1));
  conv5X5_1 = register_module("conv5X5_1", std::make_shared<ConvBN>(in, out / 4, 3, 1, 1, slope));
  conv5X5_2 = register_module("conv5X5_2", std::make_shared<ConvBN>(out / 4, out / 4, 3, 1, 1, -1));
  conv7X7_2 = register_module("conv7X7_2", std::make_shared<ConvBN>(out / 4, out / 4, 3, 1, 1, slope));
  conv7x7_3 = register_module("conv7x7_3", std::make_shared<ConvBN>(out / 4, out / 4, 3, 1, 1, -1));
}

Tensor SSH::forward(const Tensor& x) {
  Tensor t = (*conv5X5_1)(x);
  return relu(cat({(*conv3X3)(x), (*conv5X5_2)(t), (*conv7x7_3)((*conv7X7_2)(t))}, 3));
}

// ---------------------------------------------------------------- RetinaFace
RetinaFace::RetinaFace() {
  body = register_module("body", std::make_shared<MobileNetV1>());
  fpn = register_module("fpn", std::make_shared<FPN>());
  ssh1 = register_module("ssh1", std::make_shared<SSH>(64, 64));
  ssh2 = register_module("ssh2", std::make_shared<SSH>(64, 64));
  ssh3 = register_module("ssh3", std::make_shared<SSH>(64, 64));
  ClassHead = register_module("ClassHead", std::make_shared<ModuleList>());
  BboxHead = register_module("BboxHead", std::make_shared<ModuleList>());
  LandmarkHead = register_module("LandmarkHead", std::make_shared<ModuleList>());
  for (int i = 0; i < 3; ++i) {
    class_heads_.push_back(ClassHead->add(std::make_shared<Head>(64, 2)));
    bbox_heads_.push_back(BboxHead->add(std::make_shared<Head>(64, 4)));
    landmark_heads_.push_back(LandmarkHead->add(std::make_shared<Head>(64, 10)));
  }
}

RetinaFaceOutput RetinaFace::forward_heads(const Tensor& x) {
  ADNN_CHECK(x.dim() == 4 && x.size(3) == 3, "RetinaFace: input must be (N, H, W, 3) BGR, got ", x.desc());
  auto levels = static_cast<FPN&>(*fpn).forward3(static_cast<MobileNetV1&>(*body).forward3(x));
  const std::array<Tensor, 3> feats{(*ssh1)(levels[0]), (*ssh2)(levels[1]), (*ssh3)(levels[2])};
  std::vector<Tensor> loc, conf, landm;
  for (size_t i = 0; i < 3; ++i) {
    loc.push_back((*bbox_heads_[i])(feats[i]));
    conf.push_back((*class_heads_[i])(feats[i]));
    landm.push_back((*landmark_heads_[i])(feats[i]));
  }
  return {cat(loc, 1), softmax(cat(conf, 1), 2), cat(landm, 1)};
}

Tensor RetinaFace::forward(const Tensor& x) {
  RetinaFaceOutput o = forward_heads(x);
  return cat({o.loc, o.conf, o.landm}, 2);
}

void RetinaFace::fold_batch_norm() {
  static_cast<MobileNetV1&>(*body).fold_batch_norm();
  static_cast<FPN&>(*fpn).fold_batch_norm();
  for (auto& s : {ssh1, ssh2, ssh3})
    for (auto& c : {s->conv3X3, s->conv5X5_1, s->conv5X5_2, s->conv7X7_2, s->conv7x7_3}) c->fold_batch_norm();
}

std::shared_ptr<RetinaFace> load_retinaface(const std::string& path, Device device) {
  auto m = std::make_shared<RetinaFace>();
  try {
    load_pytorch_safetensors(*m, path, true);
  } catch (const Error& e) {
    ADNN_FAIL("RetinaFace: loading ", path, ": ", e.what());
  }
  m->to(device);
  m->eval();
  m->fold_batch_norm();
  return m;
}

}  // namespace adnn::nn
