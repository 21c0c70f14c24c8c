// The optim family's launchers (kernels/optim.cuh): multi-tensor AdamW, 24 tensors a launch;
// the gradient norm and scale of clip_grad_norm_, 48 tensors a launch; the lerp of
// the weights' moving average, 32 pairs a launch; one batching loop (for_each_batch over
// common::MultiTensorBatch) for all four.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/optim.cuh"

namespace adnn::cuda {

using namespace launch_detail;

namespace {
// A pair (x, end) of lerp_multi_tensor.
struct LerpPair {
  const Tensor *x, *end;
};

// The element counts of a multi-tensor op's items.
int64_t elements(const AdamWTensor& t) {
  return t.p.numel();
}
int64_t elements(const Tensor& t) {
  return t.numel();
}
int64_t elements(const LerpPair& p) {
  return p.x->numel();
}

// f(batch, chunks) per Batch::kCapacity non-empty items, slot_of(item) the item's slot
// (batch.first_chunk: the chunks of the batches before); returns the call's chunk count.
template <class Batch, class Item, class SlotOf, class F>
int64_t for_each_batch(const std::vector<Item>& items, SlotOf&& slot_of, F&& f) {
  Batch batch{};
  int64_t chunks = 0, total = 0;
  auto flush = [&] {
    if (batch.count > 0 && chunks > 0) f(batch, chunks);
    total += chunks;
    batch = Batch{};
    batch.first_chunk = total;
    chunks = 0;
  };
  for (const Item& item : items) {
    const int64_t n = elements(item);
    if (n == 0) continue;
    chunks += (n + Batch::kChunk - 1) / Batch::kChunk;
    batch.slot[batch.count] = slot_of(item, n);
    batch.chunk_end[batch.count] = chunks;
    if (++batch.count == Batch::kCapacity) flush();
  }
  flush();
  return total;
}

k::NormSlot norm_slot(const Tensor& t, int64_t n) {
  return {ptr<float>(t), n};
}
}  // namespace

// One launch per kAdamWBatch tensors, the tensors' pointers in the kernel's arguments.
void adamw_multi_tensor(const std::vector<AdamWTensor>& ts, const AdamWStep& step) {
  for_each_batch<k::AdamWBatch>(
      ts,
      [](const AdamWTensor& t, int64_t n) {
        return k::AdamWSlot{ptr<float>(t.p), ptr<float>(t.g), ptr<float>(t.m), ptr<float>(t.v), n, t.lr, t.wd};
      },
      [&](const k::AdamWBatch& b, int64_t chunks) {
        ADNN_LAUNCH(k::adamw_multi_tensor_kernel<0>, dim3(unsigned(chunks)), dim3(256), 0, stream(), b, step);
      });
}

// The partials' launches wait until the chunks are counted (their buffer's size).
void grad_norm_multi_tensor(const std::vector<Tensor>& ts, const Tensor& extra, const Tensor& norm, const Tensor& coef,
                            double max_norm) {
  std::vector<std::pair<k::NormBatch, int64_t>> batches;
  const int64_t chunks = for_each_batch<k::NormBatch>(
      ts, norm_slot, [&](const k::NormBatch& b, int64_t n) { batches.emplace_back(b, n); });
  Tensor part = device_acc<double>(std::max<int64_t>(chunks, 1));
  for (const auto& [b, n] : batches)
    ADNN_LAUNCH(k::grad_sq_partials_kernel<0>, dim3(unsigned(n)), dim3(256), 0, stream(), b, ptr<double>(part));
  ADNN_LAUNCH(k::grad_norm_finish_kernel<0>, dim3(1), dim3(256), 0, stream(), ptr<double>(part), chunks,
              ptr<double>(extra), ptr<double>(norm), ptr<double>(coef), max_norm);
}

void lerp_multi_tensor(const std::vector<Tensor>& xs, const std::vector<Tensor>& ends, double weight) {
  std::vector<LerpPair> pairs;
  pairs.reserve(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) pairs.push_back({&xs[i], &ends[i]});
  for_each_batch<k::LerpBatch>(
      pairs,
      [](const LerpPair& p, int64_t n) {
        return k::LerpSlot{ptr<float>(*p.x), ptr<float>(*p.end), n};
      },
      [&](const k::LerpBatch& b, int64_t n) {
        ADNN_LAUNCH(k::lerp_multi_tensor_kernel<0>, dim3(unsigned(n)), dim3(256), 0, stream(), b, float(weight));
      });
}

void scale_multi_tensor(const std::vector<Tensor>& ts, const Tensor& coef) {
  for_each_batch<k::NormBatch>(ts, norm_slot, [&](const k::NormBatch& b, int64_t n) {
    ADNN_LAUNCH(k::scale_multi_tensor_kernel<0>, dim3(unsigned(n)), dim3(256), 0, stream(), b, ptr<double>(coef));
  });
}

}  // namespace adnn::cuda
