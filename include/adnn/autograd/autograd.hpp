#pragma once
// Define-by-run reverse-mode autograd.
//
// Every differentiable op that sees an input requiring grad records a Node holding its
// backward closure and edges to the nodes of its inputs. Leaves get an AccumulateGrad
// node. backward() walks the graph in reverse creation order (a topological order),
// sums incoming gradients per node, runs tensor hooks, and calls each node once. Unless
// retain_graph is set, each node drops its saved tensors after running; a second backward
// through it is an adnn::Error.
#include <adnn/core/tensor.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace adnn::autograd {

class Node;

struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

struct InputMeta {
  Shape shape;
  DType dtype;
  Device device;
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  explicit Node(std::string name);
  virtual ~Node() = default;
  // grads: one per output of the forward op (undefined = zero). Returns one per input.
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grads) = 0;
  virtual void release() { released_ = true; }
  const std::string& name() const { return name_; }
  uint64_t sequence_nr() const { return seq_; }
  bool released() const { return released_; }

  std::vector<Edge> next_edges;     // one per input
  std::vector<InputMeta> input_meta;  // shapes the gradients must have
  // Hooks on the gradient of output `output_nr` (tensor hooks of non-leaf tensors).
  std::map<uint32_t, std::vector<std::pair<int, TensorHook>>> pre_hooks;

 protected:
  std::string name_;
  uint64_t seq_;
  bool released_ = false;
};

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const std::vector<bool>& needs)>;

// The node of an ordinary op: the backward closure captures what it saved.
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, BackwardFn fn) : Node(std::move(name)), fn_(std::move(fn)) {}
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  void release() override;
  std::vector<bool> needs;  // which inputs need a gradient

 private:
  BackwardFn fn_;
};

// Sink of a leaf tensor: adds the incoming gradient into leaf.grad().
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : Node("AccumulateGrad"), leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override;
  void release() override {}  // nothing saved; may run again
  const std::shared_ptr<TensorImpl>& leaf() const { return leaf_; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

struct AutogradMeta {
  bool requires_grad = false;  // for leaves; non-leaves require grad iff grad_fn != null
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  uint32_t output_nr = 0;
  std::weak_ptr<Node> grad_accumulator;
  std::vector<std::pair<int, TensorHook>> leaf_hooks;
  std::vector<std::pair<int, std::function<void(const Tensor&)>>> post_accumulate_hooks;
  bool retains_grad = false;
};

// Thread-local switch: while disabled, ops record nothing.
class GradMode {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// RAII: disables gradient recording in scope (like torch::NoGradGuard).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(prev_); }

 private:
  bool prev_;
};

// Runs backward from `roots` with seed gradients `grads` (undefined = ones for scalars).
void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads = {},
              bool retain_graph = false, bool create_graph = false);

// During a backward pass: `fn` runs once the pass has processed its whole graph, before
// backward() returns (torch's Engine::queue_callback; DistributedDataParallel waits for its
// gradient all-reduces there). An adnn::Error outside a backward pass.
void queue_callback(std::function<void()> fn);
// Whether this thread is inside backward().
bool in_backward();
// A number that differs for every backward() call (0 outside one): tells a hook that a new
// pass began even when an earlier one ended with an exception (its callbacks never ran).
uint64_t backward_pass_id();

// ---- helpers for op implementations
// Whether recording is on and any input requires grad.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);
// Edge to the node that produces `t` (or its AccumulateGrad); invalid if t needs no grad.
Edge gradient_edge(const Tensor& t);
// Records `out = op(inputs)` with the backward closure `fn` when any input requires grad.
void record(const char* name, const std::vector<Tensor>& inputs, Tensor& out, BackwardFn fn);

}  // namespace adnn::autograd

namespace adnn {
using autograd::NoGradGuard;
}
