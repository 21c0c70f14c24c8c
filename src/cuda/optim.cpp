// The optim family's launcher (kernels/optim.cuh): multi-tensor AdamW, 24 tensors a launch.
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

}  // namespace adnn::cuda
