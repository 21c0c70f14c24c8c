#pragma once
// A forward pass replayed from a CUDA graph (include/adnn/cuda/runtime.hpp): captured once per
// input shape after one eager warm-up run, then each call copies the input into the graph's
// static input buffer and replays. cuda only; inference (call under NoGradGuard).
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>

#include <functional>
#include <map>
#include <memory>

namespace adnn_fer {

class GraphedForward {
 public:
  explicit GraphedForward(std::function<adnn::Tensor(const adnn::Tensor&)> f) : f_(std::move(f)) {}
  // x: a cuda tensor (or a cpu one, copied in); the result is the graph's static output
  // buffer, overwritten by the next call with the same shape: copy what must be kept.
  adnn::Tensor operator()(const adnn::Tensor& x) {
    Entry& e = entries_[x.sizes()];
    if (!e.graph) {
      e.input = adnn::empty(x.sizes(), adnn::TensorOptions(x.dtype(), adnn::kCUDA));
      e.input.copy_(x.to(adnn::kCUDA));
      f_(e.input);  // warm-up: the caching allocator holds the buffers the capture will take
      e.graph = std::make_unique<adnn::cuda::Graph>();
      e.graph->capture_begin();
      e.output = f_(e.input);
      e.graph->capture_end();
    } else {
      e.input.copy_(x.to(adnn::kCUDA));
    }
    e.graph->replay();
    return e.output;
  }
  size_t graphs() const { return entries_.size(); }

 private:
  struct Entry {
    adnn::Tensor input, output;
    std::unique_ptr<adnn::cuda::Graph> graph;
  };
  std::function<adnn::Tensor(const adnn::Tensor&)> f_;
  std::map<adnn::Shape, Entry> entries_;
};

}  // namespace adnn_fer
