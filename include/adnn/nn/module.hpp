#pragma once
// nn::Module: named parameters, buffers and submodules (dotted names), train/eval, and
// forward hooks. Header-only; the EfficientNet issue grows it (state_dict, to(device)).
#include <adnn/ops/ops.hpp>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace adnn::nn {

class Module : public std::enable_shared_from_this<Module> {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;

  // Runs every forward pre-hook (module, input, {}) -> replacement input or {}, then forward,
  // then every forward hook (module, input, output) -> replacement or {}.
  // The hooks run in registration order on a copy of the list, so a hook may remove itself.
  Tensor operator()(const Tensor& input) {
    Tensor x = input;
    if (!forward_pre_hooks_->empty()) {
      const auto pre = *forward_pre_hooks_;
      for (auto& [id, h] : pre) {
        Tensor r = h(*this, x, Tensor());
        if (r.defined()) x = r;
      }
    }
    Tensor y = forward(x);
    if (forward_hooks_->empty()) return y;
    const auto hooks = *forward_hooks_;
    for (auto& [id, h] : hooks) {
      Tensor r = h(*this, x, y);
      if (r.defined()) y = r;
    }
    return y;
  }

  using ForwardHook = std::function<Tensor(Module&, const Tensor& input, const Tensor& output)>;
  // PyTorch's torch.utils.hooks.RemovableHandle: remove() unregisters the hook (once; later
  // calls, or a call after the module is gone, do nothing). Dropping the handle keeps the
  // hook; HookGuard removes it at the end of a scope.
  class RemovableHandle {
   public:
    RemovableHandle() = default;
    RemovableHandle(std::weak_ptr<std::vector<std::pair<int, ForwardHook>>> list, int id)
        : list_(std::move(list)), id_(id) {}
    void remove() {
      if (auto l = list_.lock()) std::erase_if(*l, [this](auto& p) { return p.first == id_; });
      list_.reset();
    }
    int id() const { return id_; }

   private:
    std::weak_ptr<std::vector<std::pair<int, ForwardHook>>> list_;
    int id_ = 0;
  };
  // Removes the hooks it holds when it goes out of scope.
  class HookGuard {
   public:
    HookGuard() = default;
    HookGuard(const HookGuard&) = delete;
    HookGuard& operator=(const HookGuard&) = delete;
    ~HookGuard() {
      for (auto& h : handles_) h.remove();
    }
    void add(RemovableHandle h) { handles_.push_back(std::move(h)); }

   private:
    std::vector<RemovableHandle> handles_;
  };

  // Like torch's register_forward_hook: hook(module, input, output) runs after forward; a
  // defined return value replaces the output.
  RemovableHandle register_forward_hook(ForwardHook h) {
    forward_hooks_->push_back({++hook_id_, std::move(h)});
    return RemovableHandle(forward_hooks_, hook_id_);
  }
  // Like torch's register_forward_pre_hook: hook(module, input, {}) runs before forward; a
  // defined return value replaces the input.
  RemovableHandle register_forward_pre_hook(ForwardHook h) {
    forward_pre_hooks_->push_back({++hook_id_, std::move(h)});
    return RemovableHandle(forward_pre_hooks_, hook_id_);
  }
  // Gradient w.r.t. this module's output, as seen during backward (Grad-CAM): a forward hook
  // that puts a tensor hook (Tensor::register_hook) on each output that requires grad.
  using BackwardHook = std::function<void(Module&, const Tensor& grad_output)>;
  RemovableHandle register_backward_hook(BackwardHook h) {
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
    std::erase_if(*forward_hooks_, [id](auto& p) { return p.first == id; });
    std::erase_if(*forward_pre_hooks_, [id](auto& p) { return p.first == id; });
  }

  // Every module below this one (and this one as ""), by dotted name, depth first in
  // registration order (torch's named_modules).
  std::vector<std::pair<std::string, Module*>> named_modules() {
    std::vector<std::pair<std::string, Module*>> out;
    collect_modules(out, "");
    return out;
  }
  // The submodule with this dotted name ("cbam_stage5", "encoder.layers.0"); an adnn::Error
  // listing the top-level names when there is none.
  Module& get_submodule(const std::string& name) {
    for (auto& [n, m] : named_modules())
      if (n == name) return *m;
    std::string names;
    for (auto& [n, m] : children_) names += (names.empty() ? "" : ", ") + n;
    ADNN_FAIL("get_submodule: no module named '", name, "' (top-level modules: ", names, ")");
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
  // (optimizers and hooks holding them stay valid; AdamW and SGD move their state along at
  // the next step); gradients are dropped.
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
  void collect_modules(std::vector<std::pair<std::string, Module*>>& out, const std::string& name) {
    out.push_back({name, this});
    for (auto& [n, m] : children_) m->collect_modules(out, name.empty() ? n : name + "." + n);
  }
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::shared_ptr<std::vector<std::pair<int, ForwardHook>>> forward_hooks_ =
      std::make_shared<std::vector<std::pair<int, ForwardHook>>>();
  std::shared_ptr<std::vector<std::pair<int, ForwardHook>>> forward_pre_hooks_ =
      std::make_shared<std::vector<std::pair<int, ForwardHook>>>();
  int hook_id_ = 0;
};

// y = x Wᵀ + b, W (out, in) initialised U(-1/sqrt(in), 1/sqrt(in)) like torch. `epilogue`
// (default: bias only) may fuse an activation into the GEMM — y = relu(x Wᵀ + b) or gelu(…) — in
// one pass (GemmEpilogue::bias_relu / bias_gelu); the Transformer's feed-forward layer uses it.
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true, DType dtype = DType::f32) {
    double k = 1.0 / std::sqrt(double(in));
    weight = register_parameter("weight", uniform({out, in}, -k, k, dtype));
    if (bias) this->bias = register_parameter("bias", uniform({out}, -k, k, dtype));
  }
  Tensor forward(const Tensor& x) override { return linear(x, weight, bias, epilogue); }
  Tensor weight, bias;
  GemmEpilogue epilogue = GemmEpilogue::bias;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return relu(x); }
};

// torch.nn.Sequential: runs its modules in order; children named "0", "1", … or by the
// names given. Built with add(), from a list, or from the modules themselves:
//   nn::Sequential net{std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 16, 3).padding(1)),
//                      std::make_shared<nn::ReLU>(), std::make_shared<nn::Flatten>()};
//   auto net2 = std::make_shared<nn::Sequential>(conv, relu);
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
    for (auto& m : modules) add(m);
  }
  // named children, in this order (an OrderedDict in torch)
  Sequential(std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> modules) {
    for (auto& [n, m] : modules) add(n, m);
  }
  template <class... M>
    requires(sizeof...(M) > 0 && (std::is_base_of_v<Module, M> && ...))
  explicit Sequential(std::shared_ptr<M>... modules) {
    (add(std::shared_ptr<Module>(std::move(modules))), ...);
  }
  Sequential& add(std::shared_ptr<Module> m) { return add(std::to_string(layers_.size()), std::move(m)); }
  Sequential& add(const std::string& name, std::shared_ptr<Module> m) {
    ADNN_CHECK(m, "Sequential::add: module '", name, "' is null");
    register_module(name, m);
    layers_.push_back(std::move(m));
    return *this;
  }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (auto& m : layers_) y = (*m)(y);
    return y;
  }
  Module& operator[](size_t i) { return *layers_.at(i); }
  std::shared_ptr<Module> ptr(size_t i) const { return layers_.at(i); }
  size_t size() const { return layers_.size(); }
  auto begin() const { return layers_.begin(); }
  auto end() const { return layers_.end(); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

// Children registered as "0", "1", … without a forward of their own (torch.nn.ModuleList).
class ModuleList : public Module {
 public:
  ModuleList() = default;
  ModuleList(std::initializer_list<std::shared_ptr<Module>> modules) {
    for (auto& m : modules) add(m);
  }
  template <class M>
  std::shared_ptr<M> add(std::shared_ptr<M> m) {
    ADNN_CHECK(m, "ModuleList::add: module ", count_, " is null");
    items_.push_back(m);
    return register_module(std::to_string(count_++), std::move(m));
  }
  Tensor forward(const Tensor&) override { ADNN_FAIL("ModuleList has no forward: call its entries"); }
  size_t size() const { return size_t(count_); }
  Module& operator[](size_t i) { return *items_.at(i); }
  std::shared_ptr<Module> ptr(size_t i) const { return items_.at(i); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  int64_t count_ = 0;
  std::vector<std::shared_ptr<Module>> items_;
};

// Named children in insertion order, without a forward of their own (torch.nn.ModuleDict).
class ModuleDict : public Module {
 public:
  ModuleDict() = default;
  ModuleDict(std::initializer_list<std::pair<std::string, std::shared_ptr<Module>>> modules) {
    for (auto& [n, m] : modules) insert(n, m);
  }
  template <class M>
  std::shared_ptr<M> insert(const std::string& name, std::shared_ptr<M> m) {
    ADNN_CHECK(m, "ModuleDict::insert: module '", name, "' is null");
    ADNN_CHECK(!name.empty() && name.find('.') == std::string::npos, "ModuleDict::insert: bad name '", name,
               "' (empty or with a '.')");
    ADNN_CHECK(!contains(name), "ModuleDict::insert: '", name, "' is already there");
    items_.push_back({name, m});
    return register_module(name, std::move(m));
  }
  Tensor forward(const Tensor&) override { ADNN_FAIL("ModuleDict has no forward: call its entries"); }
  bool contains(const std::string& name) const {
    for (auto& [n, m] : items_)
      if (n == name) return true;
    return false;
  }
  Module& operator[](const std::string& name) { return *ptr(name); }
  std::shared_ptr<Module> ptr(const std::string& name) const {
    std::string names;
    for (auto& [n, m] : items_) {
      if (n == name) return m;
      names += (names.empty() ? "" : ", ") + n;
    }
    ADNN_FAIL("ModuleDict: no module named '", name, "' (modules: ", names, ")");
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (auto& [n, m] : items_) out.push_back(n);
    return out;
  }
  size_t size() const { return items_.size(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> items_;
};

}  // namespace adnn::nn
