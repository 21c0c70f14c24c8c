#pragma once
// Exponential moving average of a model's weights (timm's ModelEmaV2, torch.optim.swa_utils.
// AveragedModel with an EMA function): a second module of the same structure whose every
// floating parameter and buffer follows
//     ema ← d·ema + (1 − d)·w,   d = min(decay, (1 + n) / (10 + n))   (n: updates so far)
// after each optimizer step; integer buffers (BatchNorm's num_batches_tracked) are copied,
// when the average is next read through module() rather than at every update (on cuda each is
// its own small copy launch: one per batch-norm layer per step otherwise).
// The warm-up term (tf.train.ExponentialMovingAverage's num_updates form) lets the average
// leave the initial weights quickly instead of carrying them for ~1/(1 − d) steps. Batch-norm running statistics are
// averaged like the weights (timm). Validate and export the average (module()); keep training the model.
//
// Cost per update: the floating tensors go through foreach_lerp_ (below): on cuda one launch
// per 32 contiguous f32 tensors, 12 bytes per element (read both, write the average).
#include <adnn/core/error.hpp>
#include <adnn/core/random.hpp>
#include <adnn/nn/module.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace adnn::optim {

// In place, x += weight · (end − x) for each pair (torch._foreach_lerp_ with a scalar weight).
// Each device's contiguous f32 pairs go through one multi-tensor op (kernels/optim.cuh: 32 pairs
// a launch on cuda), any other floating pair through the elementwise ops. An adnn::Error
// names the first pair whose sizes, dtypes or devices differ.
void foreach_lerp_(const std::vector<Tensor>& xs, const std::vector<Tensor>& ends, double weight);

class ModelEma {
 public:
  // `average`: a module with the same state_dict names, shapes and dtypes as `model` (another
  // instance of its class, on the same device); it starts as a copy of `model` and is put in
  // eval mode, its parameters without gradients. decay in [0, 1). The pairs of tensors are
  // matched once, here (Module::to keeps the tensors' identity, so moving both modules later is fine).
  ModelEma(std::shared_ptr<nn::Module> average, const nn::Module& model, double decay)
      : avg_(std::move(average)), decay_(decay) {
    ADNN_CHECK(avg_ != nullptr, "ModelEma: no module given for the average");
    ADNN_CHECK(decay >= 0 && decay < 1, "ModelEma: decay ", decay, " is out of range [0, 1)");
    NoGradGuard ng;
    for (auto& [n, t] : avg_->named_parameters()) t.requires_grad_(false);
    avg_->load_state_dict(model.state_dict(), true);
    avg_->eval();
    auto a = avg_->state_dict(), m = model.state_dict();
    ADNN_CHECK(a.size() == m.size(), "ModelEma: the average has ", a.size(), " tensors, the model ", m.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ADNN_CHECK(a[i].first == m[i].first && a[i].second.sizes() == m[i].second.sizes() &&
                     a[i].second.dtype() == m[i].second.dtype(),
                 "ModelEma: the average's '", a[i].first, "' does not match the model's '", m[i].first, "'");
      const bool fl = is_floating(a[i].second.dtype());
      (fl ? avg_floats_ : avg_ints_).push_back(a[i].second);
      (fl ? model_floats_ : model_ints_).push_back(m[i].second);
    }
    model_ = &model;
  }

  // The same, the average built by `make` (e.g. `[&] { return std::make_shared<Net>(cfg); }`):
  // the random draws of its initialisation, which the copy overwrites, are given back to the
  // global generator, so that the model trains exactly as it would without an average (timm
  // deep-copies the model instead; adnn modules are built, not copied).
  ModelEma(const std::function<std::shared_ptr<nn::Module>()>& make, const nn::Module& model, double decay)
      : ModelEma(built_keeping_rng(make), model, decay) {}

  // The weight of the average at the next update (the warm-up form above).
  double decay_now() const { return std::min(decay_, (1.0 + double(updates_)) / (10.0 + double(updates_))); }
  // Moves the average towards the model given at construction (call after each optimizer step).
  void update() {
    NoGradGuard ng;
    foreach_lerp_(avg_floats_, model_floats_, 1.0 - decay_now());
    ints_behind_ = !avg_ints_.empty();
    ++updates_;
  }
  // The same, naming the model: it must be the one given at construction.
  void update(const nn::Module& model) {
    ADNN_CHECK(&model == model_, "ModelEma::update: not the model this average was made for");
    update();
  }

  // The average, its integer buffers brought up to the model's when an update came since the
  // last read (the model's counters at the time of this read; a reference kept from before
  // shows the counters of that time). Not thread-safe: the copy is a write (a launch on cuda).
  nn::Module& module() {
    copy_ints();
    return *avg_;
  }
  const nn::Module& module() const {
    copy_ints();
    return *avg_;
  }
  double decay() const { return decay_; }
  int64_t updates() const { return updates_; }
  // Resuming: the update count (the average's tensors come back through module()'s state_dict).
  void set_updates(int64_t n) {
    ADNN_CHECK(n >= 0, "ModelEma: update count ", n, " is negative");
    updates_ = n;
  }

 private:
  static std::shared_ptr<nn::Module> built_keeping_rng(const std::function<std::shared_ptr<nn::Module>()>& make) {
    ADNN_CHECK(make != nullptr, "ModelEma: no function given to build the average");
    struct GiveBack {  // also when make() throws
      RngState rng = get_rng_state();
      ~GiveBack() { set_rng_state(rng); }
    } give_back;
    return make();
  }
  std::shared_ptr<nn::Module> avg_;
  const nn::Module* model_ = nullptr;
  void copy_ints() const {
    if (!ints_behind_) return;
    NoGradGuard ng;
    for (size_t i = 0; i < avg_ints_.size(); ++i) {
      Tensor a = avg_ints_[i];  // (a handle: the average's own buffer)
      a.copy_(model_ints_[i]);
    }
    ints_behind_ = false;
  }

  std::vector<Tensor> avg_floats_, model_floats_, avg_ints_, model_ints_;  // matched by position
  mutable bool ints_behind_ = false;  // updates since the integer buffers were last copied
  double decay_;
  int64_t updates_ = 0;
};

}  // namespace adnn::optim
