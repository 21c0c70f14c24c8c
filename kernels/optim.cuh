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
#include "common/optim.hpp"

namespace adnn::kernels {

template <int Dummy = 0>
__global__ void adamw_multi_tensor_kernel(const AdamWSlot* __restrict__ slots, const int64_t* __restrict__ chunk_slot,
                                          const int64_t* __restrict__ chunk_start, int64_t chunk, AdamWStep step) {
  const AdamWSlot s = slots[chunk_slot[blockIdx.x]];
  const int64_t start = chunk_start[blockIdx.x];
  const int64_t end = start + chunk < s.n ? start + chunk : s.n;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x)
    adamw_element(s.p[i], s.g[i], s.m[i], s.v[i], s.lr, s.wd, step);
}

}  // namespace adnn::kernels
