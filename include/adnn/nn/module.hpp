#pragma once
// nn::Module: named parameters, buffers and submodules (dotted names), train/eval, and
// forward hooks. Header-only; the EfficientNet issue grows it (state_dict, to(device)).
#include <adnn/ops/ops.hpp>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace adnn::nn {

class Module : public std::enable_shared_from_this<Module> {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;

  // Runs forward, then every forward hook (module, input, output) -> replacement or {}.
  Tensor operator()(const Tensor& x) {
    Tensor y = forward(x);
    for (auto& [id, h] : forward_hooks_) {
      Tensor r = h(*this, x, y);
      if (r.defined()) y = r;
    }
    return y;
  }

  using ForwardHook = std::function<Tensor(Module&, const Tensor& input, const Tensor& output)>;
  int register_forward_hook(ForwardHook h) {
    forward_hooks_.push_back({++hook_id_, std::move(h)});
    return hook_id_;
  }
  // Gradient w.r.t. this module's output, as seen during backward (Grad-CAM).
  using BackwardHook = std::function<void(Module&, const Tensor& grad_output)>;
  int register_backward_hook(BackwardHook h) {
    return register_forward_hook([h](Module& m, const Tensor&, const Tensor& y) {
      if (y.requires_grad()) {
        Module* mp = &m;
        y.register_hook([h, mp](const Tensor& g) {
          h(*mp, g);
          return Tensor();
        });
      }
      return Tensor();
    });
  }
  void remove_hook(int id) {
    std::erase_if(forward_hooks_, [id](auto& p) { return p.first == id; });
  }

  std::vector<std::pair<std::string, Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, Tensor>> out;
    collect(out, "", true);
    return out;
  }
  std::vector<std::pair<std::string, Tensor>> named_buffers() const {
    std::vector<std::pair<std::string, Tensor>> out;
    collect(out, "", false);
    return out;
  }
  std::vector<Tensor> parameters() const {
    std::vector<Tensor> out;
    for (auto& [n, t] : named_parameters()) out.push_back(t);
    return out;
  }
  int64_t num_parameters() const {
    int64_t n = 0;
    for (auto& p : parameters()) n += p.numel();
    return n;
  }
  void train(bool on = true) {
    training_ = on;
    for (auto& [n, m] : children_) m->train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad() {
    for (auto& p : parameters()) p.set_grad(Tensor());
  }

  // Moves every parameter and buffer to `device` in place: the tensors keep their identity
  // (optimizers and hooks holding them stay valid); gradients are dropped.
  void to(Device device) {
    NoGradGuard ng;
    for (auto& [n, t] : state_dict()) {
      if (t.device() == device) continue;
      Tensor moved = t.contiguous().to(device);
      TensorImpl& impl = t.impl();
      impl.storage = moved.impl().storage;
      impl.offset = moved.storage_offset();
      impl.strides = moved.strides();
      t.set_grad(Tensor());
    }
  }

  // Parameters and buffers by dotted name (the tensors themselves, not copies).
  std::vector<std::pair<std::string, Tensor>> state_dict() const {
    auto out = named_parameters();
    for (auto& b : named_buffers()) out.push_back(b);
    return out;
  }
  // Copies values in by name. strict: every entry of the module must be present and no
  // extra entry may be given. Shapes must match; the error names the parameter.
  void load_state_dict(const std::vector<std::pair<std::string, Tensor>>& sd, bool strict = true) {
    std::map<std::string, const Tensor*> given;
    for (auto& [n, t] : sd) given[n] = &t;
    NoGradGuard ng;
    std::vector<std::string> missing;
    for (auto& [name, mine] : state_dict()) {
      auto it = given.find(name);
      if (it == given.end()) {
        missing.push_back(name);
        continue;
      }
      const Tensor& src = *it->second;
      ADNN_CHECK(src.sizes() == mine.sizes(), "load_state_dict: '", name, "' has shape ", shape_str(src.sizes()),
                 " in the state dict but ", shape_str(mine.sizes()), " in the module");
      // floating values convert (f16/bf16/f64 into f32 and back); integers into floats or the
      // reverse would turn the bytes of a mislabelled tensor into garbage weights
      ADNN_CHECK(is_floating(src.dtype()) == is_floating(mine.dtype()), "load_state_dict: '", name, "' is ",
                 src.dtype(), " in the state dict but ", mine.dtype(), " in the module");
      Tensor dst = mine;
      dst.copy_(src.to(mine.device()).to(mine.dtype()));
      given.erase(it);
    }
    if (strict) {
      ADNN_CHECK(missing.empty(), "load_state_dict: missing '", missing.empty() ? "" : missing.front(), "' (",
                 missing.size(), " entries missing)");
      ADNN_CHECK(given.empty(), "load_state_dict: unexpected '", given.empty() ? "" : given.begin()->first, "' (",
                 given.size(), " unexpected entries)");
    }
  }

 protected:
  Tensor& register_parameter(const std::string& name, Tensor t) {
    if (!t.requires_grad()) t.requires_grad_(true);
    params_.push_back({name, t});
    return params_.back().second;
  }
  Tensor& register_buffer(const std::string& name, Tensor t) {
    buffers_.push_back({name, t});
    return buffers_.back().second;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.push_back({name, m});
    return m;
  }
  bool training_ = true;

 private:
  void collect(std::vector<std::pair<std::string, Tensor>>& out, const std::string& prefix, bool params) const {
    for (auto& [n, t] : params ? params_ : buffers_) out.push_back({prefix + n, t});
    for (auto& [n, m] : children_) m->collect(out, prefix + n + ".", params);
  }
  std::vector<std::pair<std::string, Tensor>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::pair<int, ForwardHook>> forward_hooks_;
  int hook_id_ = 0;
};

// y = x Wᵀ + b, W (out, in) initialised U(-1/sqrt(in), 1/sqrt(in)) like torch.
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true, DType dtype = DType::f32) {
    double k = 1.0 / std::sqrt(double(in));
    weight = register_parameter("weight", uniform({out, in}, -k, k, dtype));
    if (bias) this->bias = register_parameter("bias", uniform({out}, -k, k, dtype));
  }
  Tensor forward(const Tensor& x) override { return linear(x, weight, bias); }
  Tensor weight, bias;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
};

class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential& add(std::shared_ptr<Module> m) {
    register_module(std::to_string(layers_.size()), m);
    layers_.push_back(std::move(m));
    return *this;
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (auto& m : layers_) y = (*m)(y);
    return y;
  }
  Module& operator[](size_t i) { return *layers_.at(i); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

// Children registered as "0", "1", … without a forward of their own (torch.nn.ModuleList).
class ModuleList : public Module {
 public:
  template <class M>
  std::shared_ptr<M> add(std::shared_ptr<M> m) {
    return register_module(std::to_string(count_++), std::move(m));
  }
  Tensor forward(const Tensor&) override { ADNN_FAIL("ModuleList has no forward: call its entries"); }
  size_t size() const { return size_t(count_); }

 private:
  int64_t count_ = 0;
};

}  // namespace adnn::nn
