#pragma once
// The AdamW element update, the multi-tensor batch (one launch's table of tensors) and its
// entries, shared by the CPU twin (src/cpu/optim.cpp) and kernels/optim.cuh.
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
  template <class F>
  void for_each_device_pointer(F&& f) const {
    f(p);
    f(g);
    f(m);
    f(v);
  }
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
// p, m and v are read once into registers and each stored once: computed through the
// references, the code (GCC's and nvcc's alike: the slots' pointers may alias) stored p twice
// and re-read p and m after the stores of m and v — 40 bytes of requests per element for
// the 28 it needs (the emulator's trace, docs/kernels.md).
ADNN_HD void adamw_element(float& p_out, float g, float& m_out, float& v_out, float lr, float wd, const AdamWStep& s) {
  float p = p_out, m = m_out, v = v_out;
  p *= 1.f - lr * wd;
  m = s.beta1 * m + (1.f - s.beta1) * g;
  v = s.beta2 * v + (1.f - s.beta2) * g * g;
  const float denom = math::sqrt(v) / math::sqrt(s.bc2) + s.eps;
  p -= (lr / s.bc1) * m / denom;
  m_out = m;
  v_out = v;
  p_out = p;
}

// ---------------------------------------------------------------- multi-tensor batches
// Up to N tensors travel by value as one kernel argument (as PyTorch's multi_tensor_apply):
// no table is copied to the device, so a launch makes no host→device copy. Each tensor is
// split into chunks of Chunk elements, a block each: chunk_end[i] is the running total of
// chunks through slot i, and block b works on chunk b − chunk_end[i − 1] of the slot i with
// chunk_end[i − 1] ≤ b < chunk_end[i]. first_chunk counts the chunks of the call's earlier
// launches (the offset of per-chunk outputs). A Slot has its element count n and names its
// device pointers (for_each_device_pointer: the emulator checks kernel arguments with it).
// Kernel arguments may take 4 KiB: N·(sizeof(Slot) + 8) + 16 bytes must stay well inside.
template <class Slot, int N, int64_t Chunk>
struct MultiTensorBatch {
  static constexpr int kCapacity = N;
  static constexpr int64_t kChunk = Chunk;
  Slot slot[N];
  int64_t chunk_end[N];
  int count;
  int64_t first_chunk;
  // The slot of block b and its chunk's [start, end) (a linear scan of ≤ N chunk ends).
  ADNN_HD const Slot& locate(int64_t b, int64_t& start, int64_t& end) const {
    int k = 0;
    while (k + 1 < count && b >= chunk_end[k]) ++k;
    const Slot& s = slot[k];
    start = (b - (k ? chunk_end[k - 1] : 0)) * Chunk;
    end = start + Chunk < s.n ? start + Chunk : s.n;
    return s;
  }
  template <class F>
  void for_each_device_pointer(F&& f) const {
    for (int i = 0; i < count; ++i) slot[i].for_each_device_pointer(f);
  }
};

// AdamW: 24 slots (24·48 + 24·8 + 16 bytes ≈ 1.3 KiB), chunks of 64 Ki elements (also the
// CPU twin's OpenMP task size).
constexpr int kAdamWBatch = 24;
constexpr int64_t kAdamWChunk = 65536;
using AdamWBatch = MultiTensorBatch<AdamWSlot, kAdamWBatch, kAdamWChunk>;

// ---------------------------------------------------------------- gradient clipping
// The multi-tensor squared-norm and scale of clip_grad_norm_ (torch's _foreach_norm and
// _foreach_mul_): up to kNormBatch f32 tensors a launch (48·16 + 48·8 + 16 bytes ≈ 1.2 KiB),
// chunks of kNormChunk elements; the partial sums of a launch start at its first_chunk.
struct NormSlot {
  float* x;
  int64_t n;
  template <class F>
  void for_each_device_pointer(F&& f) const {
    f(x);
  }
};
constexpr int kNormBatch = 48;
constexpr int64_t kNormChunk = 65536;
using NormBatch = MultiTensorBatch<NormSlot, kNormBatch, kNormChunk>;

// ---------------------------------------------------------------- moving averages
// x += w · (end − x) (torch.lerp for a scalar weight; one rounding per operation on the CPU;
// on a GPU nvcc may fuse the multiply-add, so its EMA drifts from the CPU's by rounding) over many
// pairs of f32 tensors: 32 pairs a launch (32·24 + 32·8 + 16 bytes ≈ 1 KiB).
struct LerpSlot {
  float* x;
  const float* end;
  int64_t n;
  template <class F>
  void for_each_device_pointer(F&& f) const {
    f(x);
    f(end);
  }
};
constexpr int kLerpBatch = 32;
constexpr int64_t kLerpChunk = 65536;
using LerpBatch = MultiTensorBatch<LerpSlot, kLerpBatch, kLerpChunk>;
ADNN_HD float lerp_element(float x, float end, float w) {
  const float d = end - x;
  const float step = w * d;
  return x + step;
}

// torch's clip coefficient: min(1, max_norm / (norm + 1e-6)), NaN for a NaN norm (as
// torch.clamp: the gradients then become NaN, where a plain min would leave them unscaled).
ADNN_HD double clip_coefficient(double norm, double max_norm) {
  const double c = max_norm / (norm + 1e-6);
  return c < 1.0 || c != c ? c : 1.0;
}

}  // namespace adnn::common
