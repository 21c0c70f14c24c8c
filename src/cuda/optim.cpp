// The optim family's launcher (kernels/optim.cuh): one multi-tensor AdamW launch.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/optim.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- optimizers
void adamw_multi_tensor(const std::vector<AdamWTensor>& ts, const AdamWStep& step) {
  constexpr int64_t kChunk = common::kAdamWChunk;
  std::vector<k::AdamWSlot> slots;
  std::vector<int64_t> cslot, cstart;
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto& t = ts[i];
    slots.push_back({ptr<float>(t.p), ptr<float>(t.g), ptr<float>(t.m), ptr<float>(t.v), t.p.numel(), t.lr, t.wd});
    for (int64_t s0 = 0; s0 < t.p.numel(); s0 += kChunk) {
      cslot.push_back(int64_t(i));
      cstart.push_back(s0);
    }
  }
  if (cslot.empty()) return;
  // tables to the device: slots as raw bytes
  Tensor slot_dev = empty({int64_t(slots.size() * sizeof(k::AdamWSlot))}, TensorOptions(DType::u8, kCUDA));
  copy_to_device(slot_dev.data_ptr(), slots.data(), slots.size() * sizeof(k::AdamWSlot));
  Tensor cs = from_vector(cslot, {int64_t(cslot.size())}, TensorOptions(DType::i64, kCUDA));
  Tensor cb = from_vector(cstart, {int64_t(cstart.size())}, TensorOptions(DType::i64, kCUDA));
  ADNN_LAUNCH(k::adamw_multi_tensor_kernel<0>, dim3(unsigned(cslot.size())), dim3(256), 0, stream(),
              reinterpret_cast<const k::AdamWSlot*>(slot_dev.data_ptr()), ptr<int64_t>(cs), ptr<int64_t>(cb), kChunk,
              step);
}

}  // namespace adnn::cuda
