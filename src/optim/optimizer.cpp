// SGD, AdamW (CPU loop and fused multi-tensor CUDA kernel), gradient clipping, layer-wise
// learning-rate decay.
#include <adnn/config.hpp>
#include <adnn/core/parse.hpp>
#include <adnn/nn/module.hpp>
#include <adnn/optim/ema.hpp>
#include <adnn/optim/optimizer.hpp>

#include <cmath>
#include <iterator>
#include <limits>
#include <utility>
#include <vector>

#include "dispatch/dispatch.hpp"

namespace adnn::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
  ADNN_CHECK(lr >= 0, "optimizer: negative learning rate ", lr);
  for (auto& g : groups_)
    for (auto& p : g.params) {
      ADNN_CHECK(p.defined() && p.is_leaf() && p.requires_grad(), "optimizer: parameters must be leaf tensors that "
                 "require grad, got ", p.desc());
    }
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.set_grad(Tensor());
}

std::vector<Tensor> Optimizer::parameters() const {
  std::vector<Tensor> out;
  for (auto& g : groups_) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

namespace {
// What each device's multi-tensor calls take (AdamW, clipping, the moving average): one
// bucket per device, in order of first appearance, so that every device's tensors are fused
// and no call mixes devices.
template <class Bucket>
class PerDevice {
 public:
  Bucket& operator[](const Device& d) {
    for (auto& [dev, b] : buckets_)
      if (dev == d) return b;
    return buckets_.emplace_back(d, Bucket{}).second;
  }
  bool empty() const { return buckets_.empty(); }
  auto begin() { return buckets_.begin(); }
  auto end() { return buckets_.end(); }

 private:
  std::vector<std::pair<Device, Bucket>> buckets_;
};

std::vector<ParamGroup> one_group(std::vector<Tensor> params, double wd) {
  ParamGroup g;
  g.params = std::move(params);
  g.weight_decay = wd;
  return {g};
}

void load_slot(const io::SafeTensors& st, const std::string& name, Tensor& slot, const Tensor& like) {
  const Tensor* t = st.find(name);
  ADNN_CHECK(t, "optimizer state: missing '", name, "'");
  ADNN_CHECK(t->sizes() == like.sizes(), "optimizer state: '", name, "' has shape ", shape_str(t->sizes()),
             " but the parameter is ", like.desc());
  ADNN_CHECK(is_floating(t->dtype()) && is_floating(like.dtype()), "optimizer state: '", name, "' is ", t->dtype(),
             ", expected a floating dtype like its parameter (", like.dtype(), ")");
  slot = t->to(like.device()).to(like.dtype()).clone();
}

int64_t read_steps(const io::SafeTensors& st) {
  auto it = st.metadata.find("optimizer.steps");
  ADNN_CHECK(it != st.metadata.end(), "optimizer state: missing 'optimizer.steps'");
  return parse_int64(it->second, "optimizer state: 'optimizer.steps'", 0, std::numeric_limits<int64_t>::max());
}
}  // namespace

// ---------------------------------------------------------------- SGD
SGD::SGD(std::vector<Tensor> params, SGDOptions o) : SGD(one_group(std::move(params), o.weight_decay), o) {}
SGD::SGD(std::vector<ParamGroup> groups, SGDOptions o) : Optimizer(std::move(groups), o.lr), o_(o) {
  ADNN_CHECK(!o.nesterov || o.momentum > 0, "SGD: nesterov needs momentum > 0");
  buf_.resize(parameters().size());
}

void SGD::step() {
  NoGradGuard ng;
  size_t k = 0;
  for (auto& grp : groups_)
    for (auto& p : grp.params) {
      Tensor& buf = buf_[k++];
      Tensor g = p.grad();
      if (!g.defined()) continue;
      if (buf.defined() && buf.device() != p.device()) buf = buf.to(p.device());  // the module moved (Module::to)
      if (grp.weight_decay != 0) g = add(g, mul(p, grp.weight_decay));
      if (o_.momentum != 0) {
        buf = buf.defined() ? add(mul(buf, o_.momentum), g) : g.clone();
        g = o_.nesterov ? add(g, mul(buf, o_.momentum)) : buf;
      }
      p.add_(g, -lr_ * grp.lr_scale);
    }
  ++steps_;
}

std::vector<std::pair<std::string, Tensor>> SGD::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < buf_.size(); ++i)
    if (buf_[i].defined()) out.push_back({"momentum." + std::to_string(i), buf_[i]});
  return out;
}

void SGD::load_state_tensors(const io::SafeTensors& st) {
  auto params = parameters();
  for (size_t i = 0; i < params.size(); ++i)
    if (st.find("momentum." + std::to_string(i))) load_slot(st, "momentum." + std::to_string(i), buf_[i], params[i]);
  steps_ = read_steps(st);
}

// ---------------------------------------------------------------- AdamW
AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o) : AdamW(one_group(std::move(params), o.weight_decay), o) {}
AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions o) : Optimizer(std::move(groups), o.lr), o_(o) {
  ADNN_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps > 0, "AdamW: bad betas/eps");
  for (auto& p : parameters()) {
    NoGradGuard ng;
    m_.push_back(zeros_like(p));
    v_.push_back(zeros_like(p));
  }
  if (o_.capturable) {
    const auto ps = parameters();
    ADNN_CHECK(!ps.empty(), "AdamW(capturable): no parameters");
    const Device dev = ps.front().device();
    for (const Tensor& p : ps)
      ADNN_CHECK(p.device() == dev, "AdamW(capturable): every parameter must be on one device; ", ps.front().desc(),
                 " and ", p.desc());
    NoGradGuard ng;
    step_t_ = zeros({}, TensorOptions(DType::f32, dev));
    one_ = full({}, 1.0, TensorOptions(DType::f32, dev));
    lr_t_ = full({}, lr_, TensorOptions(DType::f32, dev));
  }
}

void AdamW::set_lr(double lr) {
  Optimizer::set_lr(lr);
  if (lr_t_.defined()) lr_t_.fill_(lr);
}

int64_t AdamW::steps() const { return step_t_.defined() ? int64_t(step_t_.item<double>()) : steps_; }

void AdamW::step() {
  NoGradGuard ng;
  // The state follows its parameters: a module moved after its optimizer was made (Module::to
  // moves the parameters in place) takes its moments and, capturable, the step and the rate
  // along here, so that no kernel is handed memory of another device.
  if (o_.capturable) {
    const auto ps = parameters();
    if (!ps.empty() && step_t_.device() != ps.front().device()) {
      const Device dev = ps.front().device();
      for (const Tensor& p : ps)
        ADNN_CHECK(p.device() == dev, "AdamW(capturable): every parameter must be on one device; ", ps.front().desc(),
                   " and ", p.desc());
      step_t_ = step_t_.to(dev);
      one_ = one_.to(dev);
      lr_t_ = lr_t_.to(dev);
    }
  }
  ++steps_;
  AdamWStep step{float(o_.beta1), float(o_.beta2), float(o_.eps),
                 float(1.0 - std::pow(o_.beta1, double(steps_))), float(1.0 - std::pow(o_.beta2, double(steps_)))};
  if (o_.capturable) {  // t += 1 on the device; bias corrections and the rate read there
    step_t_.add_(one_);
    step.step = step_t_.data_ptr<float>();
    step.lr = lr_t_.data_ptr<float>();
  }
  // One multi-tensor call per device (fused), or one per tensor.
  PerDevice<std::vector<AdamWTensor>> fused;
  size_t k = 0;
  for (auto& grp : groups_) {
    const float lr = o_.capturable ? float(grp.lr_scale) : float(lr_ * grp.lr_scale), wd = float(grp.weight_decay);
    for (auto& p : grp.params) {
      Tensor& m = m_[k];
      Tensor& v = v_[k];
      ++k;
      ADNN_CHECK(!o_.capturable || p.device() == step_t_.device(),
                 "AdamW(capturable): every parameter must be on one "
                 "device; ",
                 p.desc(), " is not on ", step_t_.device().str());
      if (m.device() != p.device()) {  // the module moved (above)
        m = m.to(p.device());
        v = v.to(p.device());
      }
      Tensor g = p.grad();
      if (!g.defined()) continue;
      ADNN_CHECK(p.dtype() == DType::f32 && p.is_contiguous(), "AdamW: parameters must be contiguous f32, got ",
                 p.desc());
      g = g.to(p.dtype()).contiguous();
      AdamWTensor t{p, g, m, v, lr, wd};
      if (o_.fused)
        fused[p.device()].push_back(std::move(t));
      else
        backend::adamw_multi_tensor({t}, step);
    }
  }
  for (auto& [dev, ts] : fused) backend::adamw_multi_tensor(ts, step);
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (size_t i = 0; i < m_.size(); ++i) {
    out.push_back({"exp_avg." + std::to_string(i), m_[i]});
    out.push_back({"exp_avg_sq." + std::to_string(i), v_[i]});
  }
  return out;
}

void AdamW::load_state_tensors(const io::SafeTensors& st) {
  auto params = parameters();
  ADNN_CHECK(params.size() == m_.size(), "AdamW: parameter list changed");
  for (size_t i = 0; i < params.size(); ++i) {
    load_slot(st, "exp_avg." + std::to_string(i), m_[i], params[i]);
    load_slot(st, "exp_avg_sq." + std::to_string(i), v_[i], params[i]);
  }
  steps_ = read_steps(st);
  if (step_t_.defined()) step_t_.fill_(double(steps_));
}

// ---------------------------------------------------------------- clipping
// Per device, the contiguous f32 gradients (all of them, in a model trained with f32 master
// weights) go through the multi-tensor backend ops: one norm pass and one scale pass over
// them, a few launches in all (kernels/optim.cuh); any other gradient (16-bit, f64, strided)
// adds its Σ g² through the elementwise ops. Gradients on several devices (torch groups them
// the same way): each further device's norm² joins the first device's sum — the one transfer
// between devices, of a scalar — and the coefficient goes back to each device.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard ng;
  struct Bucket {
    std::vector<Tensor> fused, others;
    Tensor rest;  // Σ g² over `others`, f64
  };
  PerDevice<Bucket> by_device;
  for (auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Bucket& b = by_device[g.device()];
    if (g.dtype() == DType::f32 && g.is_contiguous()) {
      b.fused.push_back(g);
      continue;
    }
    b.others.push_back(g);
    Tensor s = sum(mul(g, g)).to(DType::f64);
    b.rest = b.rest.defined() ? add(b.rest, s) : s;
  }
  if (by_device.empty()) return zeros({}, DType::f64);
  auto first = by_device.begin();
  const Device dev = first->first;
  Tensor extra = first->second.rest;
  for (auto it = std::next(first); it != by_device.end(); ++it) {
    Tensor n = empty({}, TensorOptions(DType::f64, it->first));
    backend::grad_norm_multi_tensor(it->second.fused, it->second.rest, n, Tensor(), 0.0);
    Tensor sq = mul(n, n).to(dev);
    extra = extra.defined() ? add(extra, sq) : sq;
  }
  const TensorOptions o(DType::f64, dev);
  Tensor norm = empty({}, o), coef = max_norm > 0 ? empty({}, o) : Tensor();
  backend::grad_norm_multi_tensor(first->second.fused, extra, norm, coef, max_norm);
  if (max_norm > 0)
    for (auto& [d, b] : by_device) {
      const Tensor c = d == dev ? coef : coef.to(d);
      backend::scale_multi_tensor(b.fused, c);
      for (auto& g : b.others) g.mul_(c);
    }
  return norm;
}

// ---------------------------------------------------------------- moving averages
void foreach_lerp_(const std::vector<Tensor>& xs, const std::vector<Tensor>& ends, double weight) {
  ADNN_CHECK(xs.size() == ends.size(), "foreach_lerp_: ", xs.size(), " tensors but ", ends.size(), " ends");
  NoGradGuard ng;
  PerDevice<std::pair<std::vector<Tensor>, std::vector<Tensor>>> fused;  // each device's (xs, ends)
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor &x = xs[i], &e = ends[i];
    ADNN_CHECK(x.sizes() == e.sizes() && x.dtype() == e.dtype() && x.device() == e.device(), "foreach_lerp_: pair ", i,
               " is ", shape_str(x.sizes()), " ", x.dtype(), " on ", x.device().str(), " against ",
               shape_str(e.sizes()), " ", e.dtype(), " on ", e.device().str());
    ADNN_CHECK(is_floating(x.dtype()), "foreach_lerp_: pair ", i, " is ", x.dtype(), " (a floating dtype is needed)");
    if (x.dtype() == DType::f32 && x.is_contiguous() && e.is_contiguous()) {
      auto& [fx, fe] = fused[x.device()];
      fx.push_back(x);
      fe.push_back(e);
    } else {  // x += w·(end − x) through the elementwise ops
      Tensor x_ = x;
      x_.add_(sub(e, x), weight);
    }
  }
  for (auto& [dev, pairs] : fused) backend::lerp_multi_tensor(pairs.first, pairs.second, weight);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  return clip_grad_norm_(params, max_norm).item<double>();
}

// ---------------------------------------------------------------- layer-wise decay
namespace {
std::string layer_of(const std::string& name) {
  std::vector<std::string> parts;
  size_t s = 0;
  while (true) {
    size_t d = name.find('.', s);
    parts.push_back(name.substr(s, d == std::string::npos ? std::string::npos : d - s));
    if (d == std::string::npos) break;
    s = d + 1;
  }
  std::string key = parts[0];
  for (size_t i = 1; i + 1 < parts.size(); ++i) {
    if (parts[i].empty() || parts[i].find_first_not_of("0123456789") != std::string::npos) break;
    key += "." + parts[i];
  }
  return key;
}
}  // namespace

std::vector<ParamGroup> layer_decay_groups(const nn::Module& m, double weight_decay, double decay,
                                           const std::map<std::string, int>& overrides, bool decay_norms_and_biases) {
  auto named = m.named_parameters();
  std::vector<std::string> layers;
  for (auto& [n, p] : named) {
    std::string l = layer_of(n);
    if (std::find(layers.begin(), layers.end(), l) == layers.end()) layers.push_back(l);
  }
  // one group per (depth, decays?) pair, in order of appearance
  std::vector<ParamGroup> groups;
  std::map<std::pair<int, bool>, size_t> index;
  for (auto& [n, p] : named) {
    const std::string l = layer_of(n);
    int depth = int(layers.size()) - 1 - int(std::find(layers.begin(), layers.end(), l) - layers.begin());
    size_t best = 0;
    for (auto& [prefix, d] : overrides)
      if (n.rfind(prefix, 0) == 0 && prefix.size() >= best) {
        depth = d;
        best = prefix.size();
      }
    const bool decays = decay_norms_and_biases || p.dim() > 1;
    auto key = std::make_pair(depth, decays);
    auto it = index.find(key);
    if (it == index.end()) {
      ParamGroup g;
      g.depth = depth;
      g.lr_scale = std::pow(decay, depth);
      g.weight_decay = decays ? weight_decay : 0.0;
      index[key] = groups.size();
      groups.push_back(g);
      it = index.find(key);
    }
    groups[it->second].params.push_back(p);
    groups[it->second].names.push_back(n);
  }
  return groups;
}

}  // namespace adnn::optim
