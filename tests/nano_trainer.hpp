#pragma once
// A nano training step on the (emulated) cuda device, shared by tests/test_cuda_ops.cpp and
// tests/test_cuda_stream.cpp.
#include <adnn/adnn.hpp>

#include <memory>
#include <string>
#include <vector>

namespace adnn::testing {

// One ADNN-FER nano training step with everything on the device: forward, compound loss,
// backward, clip_grad_norm_, AdamW, centers (the host-round-trip, CUDA-graph and allocator
// tests of the cuda suite).
struct NanoTrainer {
  std::shared_ptr<nn::AdnnFer> model;
  std::unique_ptr<optim::AdamW> opt;
  Tensor x, soft, labels, centers, prior, loss;
  struct Options {
    bool capturable = false;  // AdamW reads t and the rate from the device (graph replays)
    bool dropout = true;      // false: the nano config's dropout, head dropout and drop-path set to 0
    std::string backbone;     // another backbone than the nano config's (vgg_nano_wide)
  };
  explicit NanoTrainer(int64_t B = 2) : NanoTrainer(B, Options{}) {}
  NanoTrainer(int64_t B, Options o) {
    manual_seed(12);
    nn::FerConfig c = nn::fer_config("adnn_fer_nano");
    if (!o.backbone.empty()) c.backbone = o.backbone;
    if (!o.dropout) c.dropout = c.head_dropout = c.drop_path = 0;
    model = std::make_shared<nn::AdnnFer>(c);
    model->to(kCUDA);
    model->train();
    optim::AdamWOptions ao;
    ao.capturable = o.capturable;
    opt = std::make_unique<optim::AdamW>(model->parameters(), ao);
    const int64_t K = c.num_classes, S = c.image_size;
    x = randn({B, S, S, c.in_chans}).to(kCUDA);
    std::vector<int64_t> y(static_cast<size_t>(B));
    for (int64_t i = 0; i < B; ++i) y[size_t(i)] = (i * 5 + 1) % K;
    labels = from_vector(y, {B}, TensorOptions(DType::i64, kCUDA));
    soft = nn::one_hot(labels, K, DType::f32);
    centers = zeros({K, model->feature_dim()}, TensorOptions(DType::f32, kCUDA));
    prior = full({K}, 1.0 / double(K), TensorOptions(DType::f32, kCUDA));
  }
  Tensor step() {  // the step's loss, () on the device
    auto [logits, feats] = model->forward_with_features(x);
    nn::CompoundLoss cl = nn::compound_loss(logits, feats, soft, labels, centers, prior, {});
    opt->zero_grad();
    cl.total.backward();
    optim::clip_grad_norm_(opt->parameters(), 5.0);
    opt->step();
    nn::update_centers(centers, feats.detach(), labels, 0.5);
    loss = cl.total.detach();
    return cl.total;
  }
};

}  // namespace adnn::testing
