#pragma once
// The AdamW element update and the multi-tensor table entry, shared by the CPU twin
// (src/cpu/optim.cpp) and kernels/optim.cuh.
#include "common/hd.hpp"

namespace adnn::common {

// One tensor of the fused update: pointers (device memory on cuda), element count, and the
// learning rate and weight decay of its parameter group.
struct AdamWSlot {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  float lr, wd;
};
// Hyper-parameters shared by every tensor of one step; bc1 = 1 − β1^t, bc2 = 1 − β2^t.
struct AdamWStep {
  float beta1, beta2, eps, bc1, bc2;
};

// torch.optim.AdamW (amsgrad off): p *= 1 − lr·wd; m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
// p −= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps).
ADNN_HD void adamw_element(float& p, float g, float& m, float& v, float lr, float wd, const AdamWStep& s) {
  p *= 1.f - lr * wd;
  m = s.beta1 * m + (1.f - s.beta1) * g;
  v = s.beta2 * v + (1.f - s.beta2) * g * g;
  const float denom = math::sqrt(v) / math::sqrt(s.bc2) + s.eps;
  p -= (lr / s.bc1) * m / denom;
}

// Elements per block of the multi-tensor kernel (and per OpenMP task on the CPU).
constexpr int64_t kAdamWChunk = 65536;

// Up to kAdamWBatch tensors travel by value as one kernel argument (as PyTorch's
// multi_tensor_apply): no table is copied to the device, so a step makes no host→device copy.
// chunk_end[i] is the running total of chunks through tensor i; block b updates chunk
// b − chunk_end[i − 1] of the tensor i with chunk_end[i − 1] ≤ b < chunk_end[i].
// 24 slots: 24·48 + 24·8 + 8 bytes ≈ 1.3 KiB, inside the 4 KiB a kernel's arguments may take.
constexpr int kAdamWBatch = 24;
struct AdamWBatch {
  AdamWSlot slot[kAdamWBatch];
  int64_t chunk_end[kAdamWBatch];
  int count;
  // The device pointers the batch carries (the emulator checks kernel arguments with it).
  template <class F>
  void for_each_device_pointer(F&& f) const {
    for (int i = 0; i < count; ++i) {
      f(slot[i].p);
      f(slot[i].g);
      f(slot[i].m);
      f(slot[i].v);
    }
  }
};

}  // namespace adnn::common
