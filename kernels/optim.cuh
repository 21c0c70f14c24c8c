#pragma once
// Fused multi-tensor AdamW: one launch updates every parameter of a model.
//
// For each element: p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
// p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)   (torch.optim.AdamW, amsgrad off),
// bc1 = 1 - β1^t, bc2 = 1 - β2^t.
// Layout: up to 24 tensors per launch (p, g, m, v pointers, element count, lr and wd of the
//   tensor's group) passed by value in the kernel's arguments (common::AdamWBatch), with the
//   running chunk counts; nothing is copied to the device for a step. A capturable step reads t
//   and the base rate from device scalars (common::adamw_resolve, once per thread), so a CUDA
//   graph replaying it advances t and follows the schedule.
// Threads: one block per chunk of kAdamWChunk elements (a linear scan of ≤ 24 chunk ends
//   finds the block's tensor); threads stride over the chunk.
// Cost: reads p, g, m, v and writes p, m, v: 28 bytes per f32 parameter; ~12 flops and one
//   sqrt per element. One launch instead of one per tensor (a model has hundreds).
#include "common.cuh"
#include "common/optim.hpp"

namespace adnn::kernels {

template <int Dummy = 0>
__global__ void adamw_multi_tensor_kernel(AdamWBatch batch, AdamWStep step) {
  const int64_t b = blockIdx.x;
  int k = 0;
  while (k + 1 < batch.count && b >= batch.chunk_end[k]) ++k;
  const AdamWSlot& s = batch.slot[k];
  const int64_t start = (b - (k ? batch.chunk_end[k - 1] : 0)) * kAdamWChunk;
  const int64_t end = start + kAdamWChunk < s.n ? start + kAdamWChunk : s.n;
  float lr_factor;
  const AdamWStep st = adamw_resolve(step, lr_factor);
  const float lr = s.lr * lr_factor;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) adamw_element(s.p[i], s.g[i], s.m[i], s.v[i], lr, s.wd, st);
}

}  // namespace adnn::kernels
