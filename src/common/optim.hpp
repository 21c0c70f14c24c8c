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
// Capturable steps (torch's AdamW(capturable=True)) leave bc1/bc2 to the device: `step` points at
// the step count t and `lr` at the base learning rate, both 0-d f32 tensors on the parameters'
// device, so a CUDA graph that replays the step reads the current t and rate instead of the
// constants of the captured step. A slot's lr is then the group's multiplier.
struct AdamWStep {
  float beta1, beta2, eps, bc1, bc2;
  const float* step = nullptr;  // () device scalar t, or null: bc1/bc2 above
  const float* lr = nullptr;    // () device scalar base rate, or null: slots carry the rate
  template <class F>
  void for_each_device_pointer(F&& f) const {
    f(step);
    f(lr);
  }
};

// The step's bias corrections and the factor that multiplies each slot's lr, read once per
// thread (kernel) or per call (CPU twin): t and the base rate from the device scalars when given.
ADNN_HD AdamWStep adamw_resolve(AdamWStep s, float& lr_factor) {
  lr_factor = s.lr ? *s.lr : 1.f;
  if (s.step) {
    const float t = *s.step;
    s.bc1 = 1.f - math::pow(s.beta1, t);
    s.bc2 = 1.f - math::pow(s.beta2, t);
  }
  return s;
}

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

// ---------------------------------------------------------------- gradient clipping
// The multi-tensor squared-norm and scale of clip_grad_norm_ (torch's _foreach_norm and
// _foreach_mul_): up to kNormBatch f32 tensors a launch, by value in the kernel's arguments
// as AdamWBatch, split into chunks of kNormChunk elements (one block each).
struct NormSlot {
  float* x;
  int64_t n;
};
constexpr int kNormBatch = 48;  // 48·16 + 48·8 + 8 bytes ≈ 1.2 KiB of kernel arguments
constexpr int64_t kNormChunk = 65536;
struct NormBatch {
  NormSlot slot[kNormBatch];
  int64_t chunk_end[kNormBatch];  // running chunk counts, as AdamWBatch's
  int count;
  int64_t first_chunk;  // this launch's first chunk among all of the call's: its partials' offset
  template <class F>
  void for_each_device_pointer(F&& f) const {
    for (int i = 0; i < count; ++i) f(slot[i].x);
  }
};

// torch's clip coefficient: min(1, max_norm / (norm + 1e-6)), NaN for a NaN norm (as
// torch.clamp: the gradients then become NaN, where a plain min would leave them unscaled).
ADNN_HD double clip_coefficient(double norm, double max_norm) {
  const double c = max_norm / (norm + 1e-6);
  return c < 1.0 || c != c ? c : 1.0;
}

}  // namespace adnn::common
