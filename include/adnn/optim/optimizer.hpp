#pragma once
// Optimizers over parameter groups (torch.optim semantics): each group has its own learning
// rate multiplier (layer-wise decay) and weight decay. Schedules set the base rate; a group
// uses base_lr * lr_scale.
#include <adnn/io/safetensors.hpp>
#include <adnn/ops/ops.hpp>

#include <map>
#include <string>
#include <vector>

namespace adnn::nn {
class Module;
}

namespace adnn::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  std::vector<std::string> names;  // optional, for reports
  double lr_scale = 1.0;           // layer-wise multiplier
  double weight_decay = 0.0;
  int depth = 0;                   // layer depth from the top (classifier 0), for reports
};

class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup> groups, double lr);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  virtual void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  virtual int64_t steps() const { return steps_; }
  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  std::vector<Tensor> parameters() const;
  // Optimizer state for checkpoints: tensors named "<slot>.<param index>" and the step count.
  virtual std::vector<std::pair<std::string, Tensor>> state_tensors() const = 0;
  virtual void load_state_tensors(const io::SafeTensors& st) = 0;

 protected:
  std::vector<ParamGroup> groups_;
  double lr_;
  int64_t steps_ = 0;
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;  // L2 added to the gradient (torch.optim.SGD)
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions o);
  SGD(std::vector<ParamGroup> groups, SGDOptions o);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state_tensors() const override;
  void load_state_tensors(const io::SafeTensors& st) override;

 private:
  SGDOptions o_;
  std::vector<Tensor> buf_;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // used by the single-group constructor
  bool fused = true;           // one multi-tensor kernel launch per step on cuda
  // torch's capturable=True: the step count and the base learning rate live in 0-d f32 tensors on
  // the parameters' device and the kernel reads them, so a CUDA graph that captured step() advances
  // t on every replay and follows set_lr() made between replays (set_lr fills the device scalar: a
  // launch, no copy). Call set_lr outside the captured region. steps() then reads the device (one
  // synchronisation: for checkpoints, not for the hot path).
  bool capturable = false;
};

// AdamW (Loshchilov & Hutter): decoupled weight decay p *= 1 - lr·wd, then the Adam step
// with bias correction (amsgrad off), exactly as torch.optim.AdamW.
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions o);
  AdamW(std::vector<ParamGroup> groups, AdamWOptions o);
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state_tensors() const override;
  void load_state_tensors(const io::SafeTensors& st) override;
  const AdamWOptions& options() const { return o_; }
  void set_lr(double lr) override;
  int64_t steps() const override;

 private:
  AdamWOptions o_;
  std::vector<Tensor> m_, v_;
  Tensor step_t_, lr_t_, one_;  // () f32 on the parameters' device (capturable only)
};

// Scales all gradients so that their global L2 norm is at most max_norm (torch's
// clip_grad_norm_: coefficient min(1, max_norm / (norm + 1e-6))); returns the norm before
// clipping as a 0-d f64 tensor on the first gradient's device — computed there, with no
// synchronisation (read it with .item() only when needed). Gradients on several devices are
// clipped together, as torch does: one scalar per further device crosses to the first and the
// coefficient back (copies that synchronise, and cannot be captured in a CUDA graph).
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);
// The same, returning the norm as a number (one synchronisation on `cuda`).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// Layer-wise learning-rate decay. Parameters are grouped into layers by name: the first
// dotted component, extended by the numeric components right after it ("blocks.3.1" for
// "blocks.3.1.conv_dw.weight", "conv_stem", "classifier"). Layers are ordered as the module
// registers them; depth = (number of layers - 1 - position), so the stem is deepest and the
// classifier has depth 0; each parameter gets lr_scale = decay^depth. `depth_overrides`
// maps a name prefix to a depth. No weight decay on 1-D parameters (biases, norm scales)
// unless decay_norms_and_biases.
std::vector<ParamGroup> layer_decay_groups(const nn::Module& m, double weight_decay, double decay,
                                           const std::map<std::string, int>& depth_overrides = {},
                                           bool decay_norms_and_biases = false);

}  // namespace adnn::optim
