#pragma once
// Exponential moving average of a model's weights (timm's ModelEmaV2, torch.optim.swa_utils.
// AveragedModel with an EMA function): a second module of the same structure whose every
// floating parameter and buffer follows
//     ema ← d·ema + (1 − d)·w,   d = min(decay, (1 + n) / (10 + n))   (n: updates so far)
// after each optimizer step; integer buffers (BatchNorm's num_batches_tracked) are copied.
// The warm-up term (tf.train.ExponentialMovingAverage's num_updates form; timm's ModelEmaV3
// with use_warmup) lets the average leave the initial weights quickly instead of carrying
// them for ~1/(1 − d) steps. Batch-norm running statistics are averaged like the weights (timm).
// Validate and export the average (module()); keep training the model.
//
// Cost per update: per floating tensor one scale and one axpy through the elementwise ops.
#include <adnn/core/error.hpp>
#include <adnn/nn/module.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace adnn::optim {

class ModelEma {
 public:
  // `average`: a module with the same state_dict names and shapes as `model` (another
  // instance of its class, on the same device); it starts as a copy of `model` and is put in
  // eval mode. decay in [0, 1).
  ModelEma(std::shared_ptr<nn::Module> average, const nn::Module& model, double decay)
      : avg_(std::move(average)), decay_(decay) {
    ADNN_CHECK(avg_ != nullptr, "ModelEma: no module given for the average");
    ADNN_CHECK(decay >= 0 && decay < 1, "ModelEma: decay ", decay, " is out of range [0, 1)");
    NoGradGuard ng;
    for (auto& [n, t] : avg_->named_parameters()) t.requires_grad_(false);
    avg_->load_state_dict(model.state_dict(), true);
    avg_->eval();
    pairs(model);  // names and shapes checked
  }

  // The weight of the average at the next update (the warm-up form above).
  double decay_now() const { return std::min(decay_, (1.0 + double(updates_)) / (10.0 + double(updates_))); }
  // Moves the average towards `model` (after an optimizer step).
  void update(const nn::Module& model) {
    const double d = decay_now();
    NoGradGuard ng;
    for (auto& [e, w] : pairs(model)) {
      if (!is_floating(e.dtype())) {
        e.copy_(w);
      } else {
        e.mul_(d);
        e.add_(w.detach(), 1.0 - d);
      }
    }
    ++updates_;
  }

  nn::Module& module() { return *avg_; }
  const nn::Module& module() const { return *avg_; }
  double decay() const { return decay_; }
  int64_t updates() const { return updates_; }
  // Resuming: the update count (the average's tensors come back through module()'s state_dict).
  void set_updates(int64_t n) {
    ADNN_CHECK(n >= 0, "ModelEma: update count ", n, " is negative");
    updates_ = n;
  }

 private:
  // (average's tensor, model's tensor) by name; an adnn::Error names the first mismatch.
  std::vector<std::pair<Tensor, Tensor>> pairs(const nn::Module& model) const {
    auto a = avg_->state_dict(), m = model.state_dict();
    ADNN_CHECK(a.size() == m.size(), "ModelEma: the average has ", a.size(), " tensors, the model ", m.size());
    std::vector<std::pair<Tensor, Tensor>> out;
    out.reserve(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ADNN_CHECK(a[i].first == m[i].first && a[i].second.sizes() == m[i].second.sizes() &&
                     a[i].second.dtype() == m[i].second.dtype(),
                 "ModelEma: the average's '", a[i].first, "' does not match the model's '", m[i].first, "'");
      out.emplace_back(a[i].second, m[i].second);
    }
    return out;
  }

  std::shared_ptr<nn::Module> avg_;
  double decay_;
  int64_t updates_ = 0;
};

}  // namespace adnn::optim
