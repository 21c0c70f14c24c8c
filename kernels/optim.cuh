#pragma once
// Fused multi-tensor AdamW: one launch updates every parameter of a model.
//
// For each element: p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
// p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)   (torch.optim.AdamW, amsgrad off),
// bc1 = 1 - β1^t, bc2 = 1 - β2^t.
// Layout: a table of tensors (p, g, m, v pointers, element count, lr and wd of the tensor's
//   group) and a table of chunks (tensor index, first element); both in device memory.
// Threads: one block per chunk of `chunk` elements; threads stride over the chunk.
// Cost: reads p, g, m, v and writes p, m, v: 28 bytes per f32 parameter; ~12 flops and one
//   sqrt per element. One launch instead of one per tensor (a model has hundreds).
#include "common.cuh"

namespace adnn::kernels {

struct AdamWSlot {
  float* p;
  const float* g;
  float* m;
  float* v;
  int64_t n;
  float lr, wd;
};

__host__ __device__ __forceinline__ void adamw_element(float& p, float g, float& m, float& v, float lr, float wd, float b1,
                                              float b2, float eps, float bc1, float bc2) {
  p *= 1.f - lr * wd;
  m = b1 * m + (1.f - b1) * g;
  v = b2 * v + (1.f - b2) * g * g;
  const float denom = math::sqrt(v) / math::sqrt(bc2) + eps;
  p -= (lr / bc1) * m / denom;
}

template <int Dummy = 0>
__global__ void adamw_multi_tensor_kernel(const AdamWSlot* __restrict__ slots, const int64_t* __restrict__ chunk_slot,
                                          const int64_t* __restrict__ chunk_start, int64_t chunk, float b1, float b2,
                                          float eps, float bc1, float bc2) {
  const AdamWSlot s = slots[chunk_slot[blockIdx.x]];
  const int64_t start = chunk_start[blockIdx.x];
  const int64_t end = start + chunk < s.n ? start + chunk : s.n;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x)
    adamw_element(s.p[i], s.g[i], s.m[i], s.v[i], s.lr, s.wd, b1, b2, eps, bc1, bc2);
}

// ---- CPU twin
inline void adamw_reference(float* p, const float* g, float* m, float* v, int64_t n, float lr, float wd, float b1,
                            float b2, float eps, float bc1, float bc2) {
  for (int64_t i = 0; i < n; ++i) adamw_element(p[i], g[i], m[i], v[i], lr, wd, b1, b2, eps, bc1, bc2);
}

}  // namespace adnn::kernels
