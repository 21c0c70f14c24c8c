// The optim family's launchers (kernels/optim.cuh): multi-tensor AdamW, 24 tensors a launch;
// the gradient norm and scale of clip_grad_norm_, 48 tensors a launch.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/optim.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// One launch per kAdamWBatch tensors, the tensors' pointers in the kernel's arguments.
void adamw_multi_tensor(const std::vector<AdamWTensor>& ts, const AdamWStep& step) {
  k::AdamWBatch batch{};
  int64_t chunks = 0;
  auto flush = [&] {
    if (batch.count > 0 && chunks > 0)
      ADNN_LAUNCH(k::adamw_multi_tensor_kernel<0>, dim3(unsigned(chunks)), dim3(256), 0, stream(), batch, step);
    batch = k::AdamWBatch{};
    chunks = 0;
  };
  for (const AdamWTensor& t : ts) {
    const int64_t n = t.p.numel();
    if (n == 0) continue;
    chunks += (n + common::kAdamWChunk - 1) / common::kAdamWChunk;
    batch.slot[batch.count] = {ptr<float>(t.p), ptr<float>(t.g), ptr<float>(t.m), ptr<float>(t.v), n, t.lr, t.wd};
    batch.chunk_end[batch.count] = chunks;
    if (++batch.count == common::kAdamWBatch) flush();
  }
  flush();
}

namespace {
// f(batch, chunks) per kNormBatch tensors (batch.first_chunk: the chunks before it); returns
// the call's chunk count.
template <class F>
int64_t for_each_norm_batch(const std::vector<Tensor>& ts, F&& f) {
  k::NormBatch batch{};
  int64_t chunks = 0, total = 0;
  auto flush = [&] {
    if (batch.count > 0 && chunks > 0) f(batch, chunks);
    total += chunks;
    batch = k::NormBatch{};
    batch.first_chunk = total;
    chunks = 0;
  };
  for (const Tensor& t : ts) {
    const int64_t n = t.numel();
    if (n == 0) continue;
    chunks += (n + common::kNormChunk - 1) / common::kNormChunk;
    batch.slot[batch.count] = {ptr<float>(t), n};
    batch.chunk_end[batch.count] = chunks;
    if (++batch.count == common::kNormBatch) flush();
  }
  flush();
  return total;
}
}  // namespace

void grad_norm_multi_tensor(const std::vector<Tensor>& ts, const Tensor& extra, const Tensor& norm, const Tensor& coef,
                            double max_norm) {
  int64_t chunks = 0;
  for (const Tensor& t : ts) chunks += (t.numel() + common::kNormChunk - 1) / common::kNormChunk;
  Tensor part = device_f64(std::max<int64_t>(chunks, 1));
  for_each_norm_batch(ts, [&](const k::NormBatch& b, int64_t n) {
    ADNN_LAUNCH(k::grad_sq_partials_kernel<0>, dim3(unsigned(n)), dim3(256), 0, stream(), b, ptr<double>(part));
  });
  ADNN_LAUNCH(k::grad_norm_finish_kernel<0>, dim3(1), dim3(256), 0, stream(), ptr<double>(part), chunks,
              ptr<double>(extra), ptr<double>(norm), ptr<double>(coef), max_norm);
}

void scale_multi_tensor(const std::vector<Tensor>& ts, const Tensor& coef) {
  for_each_norm_batch(ts, [&](const k::NormBatch& b, int64_t n) {
    ADNN_LAUNCH(k::scale_multi_tensor_kernel<0>, dim3(unsigned(n)), dim3(256), 0, stream(), b, ptr<double>(coef));
  });
}

}  // namespace adnn::cuda
