// The backward engine: dependency counting, then nodes in decreasing creation order.
#include <adnn/autograd/autograd.hpp>
#include <adnn/ops/ops.hpp>

#include <atomic>
#include <optional>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace adnn::autograd {

namespace {
thread_local bool grad_enabled = true;
// The callbacks queued by the backward pass running on this thread (null outside one).
thread_local std::vector<std::function<void()>>* final_callbacks = nullptr;
thread_local uint64_t current_pass = 0;
std::atomic<uint64_t> next_pass{0};
std::atomic<uint64_t> next_seq{0};
}  // namespace

bool GradMode::is_enabled() { return grad_enabled; }
void GradMode::set_enabled(bool e) { grad_enabled = e; }

Node::Node(std::string name) : name_(std::move(name)), seq_(next_seq++) {}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grads) {
  ADNN_CHECK(!released_ && fn_, "backward: trying to backward through the graph a second time (node '", name_,
             "' already freed its saved tensors); pass retain_graph=true to the first backward");
  Tensor g = std::move(grads.at(0));
  return fn_(g, needs);
}

void FunctionNode::release() {
  released_ = true;
  fn_ = nullptr;  // drops every saved tensor the closure captured
}

namespace {
// torch's AccumulateGrad rule: the first gradient of a step becomes .grad without a copy when
// nothing else can see it — this node holds the only reference to the tensor and to its
// storage, which it fills exactly from offset 0 (contiguous), and it has no autograd history.
// Otherwise a copy, so that an in-place update of .grad (clip_grad_norm_, the gradient
// scaler's unscale) can never reach another tensor. Saves one copy launch per parameter per
// step (docs/kernels.md).
bool can_adopt(const Tensor& g) {
  const auto& impl = g.impl_ptr();
  if (!impl || impl.use_count() != 1 || !impl->storage || impl->storage.use_count() != 1) return false;
  if (impl->autograd || g.storage_offset() != 0 || !g.is_contiguous()) return false;
  return impl->storage->nbytes == size_t(g.numel()) * dtype_size(g.dtype());
}
}  // namespace

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>&& grads) {
  Tensor g = std::move(grads.at(0));
  auto& m = *leaf_->autograd;
  for (auto& [id, hook] : m.leaf_hooks) {
    Tensor r = hook(g);
    if (r.defined()) g = r;
  }
  Tensor leaf(leaf_);
  Tensor old = leaf.grad();
  if (GradMode::is_enabled()) {
    // create_graph: keep the gradient differentiable
    leaf.set_grad(old.defined() ? add(old, g) : g);
  } else {
    leaf.set_grad(old.defined() ? add(old, g) : can_adopt(g) ? std::move(g) : g.clone());
  }
  if (!m.post_accumulate_hooks.empty()) {
    auto hooks = m.post_accumulate_hooks;  // a hook may remove itself
    for (auto& [id, hook] : hooks) hook(leaf);
  }
  return {};
}

void queue_callback(std::function<void()> fn) {
  ADNN_CHECK(final_callbacks, "autograd::queue_callback: called outside a backward pass");
  final_callbacks->push_back(std::move(fn));
}
bool in_backward() { return final_callbacks != nullptr; }
uint64_t backward_pass_id() { return current_pass; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (auto* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}
bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (auto& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return {};
  auto& m = *t.impl().autograd;
  if (m.grad_fn) return {m.grad_fn, m.output_nr};
  auto acc = m.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    m.grad_accumulator = acc;
  }
  return {acc, 0};
}

void record(const char* name, const std::vector<Tensor>& inputs, Tensor& out, BackwardFn fn) {
  if (!needs_grad(inputs)) return;
  auto node = std::make_shared<FunctionNode>(name, std::move(fn));
  node->next_edges.reserve(inputs.size());
  for (auto& t : inputs) {
    node->next_edges.push_back(gradient_edge(t));
    node->needs.push_back(node->next_edges.back().valid());
    if (t.defined())
      node->input_meta.push_back({t.sizes(), t.dtype(), t.device()});
    else
      node->input_meta.push_back({{}, DType::f32, kCPU});
  }
  auto& impl = out.impl();
  if (!impl.autograd) impl.autograd = std::make_unique<AutogradMeta>();
  impl.autograd->grad_fn = node;
  impl.autograd->output_nr = 0;
}

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph,
              bool create_graph) {
  ADNN_CHECK(grads.empty() || grads.size() == roots.size(), "backward: ", roots.size(), " roots but ",
             grads.size(), " gradients");
  std::optional<NoGradGuard> ng;
  std::optional<EnableGradGuard> eg;
  if (create_graph) eg.emplace(); else ng.emplace();
  // callbacks queued during this pass (a nested backward keeps its own list)
  std::vector<std::function<void()>> callbacks;
  struct CallbackScope {
    std::vector<std::function<void()>>* saved;
    uint64_t saved_pass;
    explicit CallbackScope(std::vector<std::function<void()>>* mine) : saved(final_callbacks), saved_pass(current_pass) {
      final_callbacks = mine;
      current_pass = ++next_pass;
    }
    ~CallbackScope() {
      final_callbacks = saved;
      current_pass = saved_pass;
    }
  } callback_scope(&callbacks);

  // seed gradients
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  std::vector<std::shared_ptr<Node>> starts;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    ADNN_CHECK(r.requires_grad(), "backward: tensor ", r.desc(),
               " does not require grad and has no grad_fn (did you call detach() or use NoGradGuard?)");
    Tensor g = grads.empty() ? Tensor() : grads[i];
    if (!g.defined()) {
      ADNN_CHECK(r.numel() == 1, "backward: a gradient must be given for non-scalar output ", r.desc());
      g = ones(r.sizes(), TensorOptions(r.dtype(), r.device()));
    }
    ADNN_CHECK(g.sizes() == r.sizes(), "backward: gradient ", g.desc(), " does not match output ", r.desc());
    Edge e = gradient_edge(r);
    auto& buf = buffers[e.fn.get()];
    if (buf.size() <= e.input_nr) buf.resize(e.input_nr + 1);
    buf[e.input_nr] = buf[e.input_nr].defined() ? add(buf[e.input_nr], g) : g;
    starts.push_back(e.fn);
  }

  // dependency counts over the reachable graph
  std::unordered_map<Node*, int> deps;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack;
  for (auto& s : starts)
    if (seen.insert(s.get()).second) stack.push_back(s.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& e : n->next_edges) {
      if (!e.fn) continue;
      deps[e.fn.get()]++;
      if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
    }
  }

  auto cmp = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr() < b->sequence_nr();
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(cmp)> ready(cmp);
  std::unordered_set<Node*> queued;
  for (auto& s : starts)
    if (deps[s.get()] == 0 && queued.insert(s.get()).second) ready.push(s);

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    std::vector<Tensor> in = std::move(buffers[node.get()]);
    buffers.erase(node.get());
    // tensor hooks on this node's outputs
    for (auto& [out_nr, hooks] : node->pre_hooks) {
      if (out_nr >= in.size() || !in[out_nr].defined()) continue;
      for (auto& [id, hook] : hooks) {
        Tensor r = hook(in[out_nr]);
        if (r.defined()) in[out_nr] = r;
      }
    }
    if (in.empty()) in.resize(1);
    std::vector<Tensor> out;
    if (in[0].defined()) out = node->apply(std::move(in));
    if (!retain_graph) node->release();
    for (size_t i = 0; i < node->next_edges.size(); ++i) {
      auto& e = node->next_edges[i];
      if (!e.fn) continue;
      if (i < out.size() && out[i].defined()) {
        const auto& im = node->input_meta[i];
        ADNN_CHECK(out[i].sizes() == im.shape, "backward of '", node->name(), "': gradient for input ", i, " is ",
                   out[i].desc(), " but the input was ", shape_str(im.shape));
        auto& buf = buffers[e.fn.get()];
        if (buf.size() <= e.input_nr) buf.resize(e.input_nr + 1);
        buf[e.input_nr] = buf[e.input_nr].defined() ? add(buf[e.input_nr], out[i]) : out[i];
      }
      if (--deps[e.fn.get()] == 0 && queued.insert(e.fn.get()).second) ready.push(e.fn);
    }
  }
  for (size_t i = 0; i < callbacks.size(); ++i) {  // a callback may queue another
    auto fn = std::move(callbacks[i]);
    fn();
  }
}

}  // namespace adnn::autograd
