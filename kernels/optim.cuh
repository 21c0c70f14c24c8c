#pragma once
// Fused multi-tensor AdamW: one launch updates every parameter of a model.
//
// For each element: p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
// p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)   (torch.optim.AdamW, amsgrad off),
// bc1 = 1 - β1^t, bc2 = 1 - β2^t.
// Layout: up to 24 tensors per launch (p, g, m, v pointers, element count, lr and wd of the
//   tensor's group) passed by value in the kernel's arguments (common::AdamWBatch, a
//   common::MultiTensorBatch), with the running chunk counts; nothing is copied to the device
//   for a step. A capturable step reads t
//   and the base rate from device scalars (common::adamw_resolve, once per thread), so a CUDA
//   graph replaying it advances t and follows the schedule.
// Threads: one block per chunk of kAdamWChunk elements (MultiTensorBatch::locate: a linear
//   scan of ≤ 24 chunk ends finds the block's tensor); threads stride over the chunk.
// Cost: reads p, g, m, v and writes p, m, v: 28 bytes per f32 parameter; ~12 flops and one
//   sqrt per element. One launch instead of one per tensor (a model has hundreds).
// Measured (emulator trace, paper step): 100.0 % coalesced, 28 bytes fetched per parameter
//   (40 before common::adamw_element kept p, m, v in registers: p was stored twice and p and m
//   re-read after the stores through possibly aliasing pointers).
//
// Gradient clipping (optim::clip_grad_norm_), the same multi-tensor layout (common::NormBatch,
// 48 tensors a launch, chunks of kNormChunk elements, a block per chunk, threads striding):
//   grad_sq_partials_kernel: part[first_chunk + b] = Σ x² over chunk b, f64 (a block tree);
//   grad_norm_finish_kernel: one block sums the partials in a fixed order (+ extra), writes
//     norm = sqrt(total) and coef = min(1, max_norm / (norm + 1e-6));
//   scale_multi_tensor_kernel: x *= f32(coef) unless coef is 1 (the usual unclipped step:
//     no traffic).
// The weights' moving average (optim::ModelEma, torch's _foreach_lerp_): lerp_multi_tensor_kernel,
//   x += w·(end − x), 32 pairs a launch (common::LerpBatch), a block per 64 Ki-element chunk,
//   threads striding: 12 bytes per element (read x and end, write x), 3 flops. Measured: loads
//   and stores ≥ 95 % coalesced, 12 bytes per element, 4 launches for 100 tensors
//   (tests/test_trace.cpp); sm_90: 32 registers, 100 % theoretical occupancy
//   (docs/results/kernel-resources-sm90.md). It and the scale keep four elements' loads in
//   flight before their stores (for_each_strided_batched: a chunk is 256 elements a thread;
//   one at a time, in place through pointers without __restrict__, nvcc cannot overlap them).
// Measured (paper step, docs/results/2026-12-01-kernel-report-adnn_fer_paper.md): partials
//   and scale 100.0 % coalesced (the scale's stores counted since the trace sees them);
//   sm_90: 24–32 registers, 100 % theoretical occupancy.
// Cost: 4 bytes read per element for the norm, 8 (read + write) for a scale that clips; two
//   launches per 48 tensors + one, where the per-tensor ops took ~6 launches per tensor and
//   28 bytes per element (a squared copy, its sum, a cast, the scaled copy and its copy back).
#include "common.cuh"
#include "common/optim.hpp"
#include "loops.cuh"
#include "reduce.cuh"

namespace adnn::kernels {

template <int Dummy = 0>
__global__ void adamw_multi_tensor_kernel(AdamWBatch batch, AdamWStep step) {
  int64_t start, end;
  const AdamWSlot& s = batch.locate(blockIdx.x, start, end);
  float lr_factor;
  const AdamWStep st = adamw_resolve(step, lr_factor);
  const float lr = s.lr * lr_factor;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) adamw_element(s.p[i], s.g[i], s.m[i], s.v[i], lr, s.wd, st);
}

template <int Dummy = 0>
__global__ void grad_sq_partials_kernel(NormBatch batch, double* __restrict__ part) {
  ADNN_SHARED(double, scratch, [32]);
  int64_t start, end;
  const NormSlot& s = batch.locate(blockIdx.x, start, end);
  double acc = 0;
  for (int64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
    const double v = s.x[i];
    acc += v * v;
  }
  acc = block_sum<double>(acc, scratch);
  if (threadIdx.x == 0) part[batch.first_chunk + blockIdx.x] = acc;
}

// One block: norm = sqrt(Σ part + extra), coef (or null) = min(1, max_norm / (norm + 1e-6)).
template <int Dummy = 0>
__global__ void grad_norm_finish_kernel(const double* __restrict__ part, int64_t n, const double* __restrict__ extra,
                                        double* __restrict__ norm, double* __restrict__ coef, double max_norm) {
  ADNN_SHARED(double, scratch, [32]);
  double acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += part[i];
  acc = block_sum<double>(acc, scratch);
  if (threadIdx.x == 0) {
    const double total = extra ? acc + *extra : acc;
    *norm = math::sqrt(total);
    if (coef) *coef = clip_coefficient(*norm, max_norm);
  }
}

// The weights' moving average (optim::ModelEma): x += w · (end − x) over the batch's pairs.
template <int Dummy = 0>
__global__ void lerp_multi_tensor_kernel(LerpBatch batch, float w) {
  int64_t start, end;
  const LerpSlot& s = batch.locate(blockIdx.x, start, end);
  struct Pair {
    float x, end;
  };
  for_each_strided_batched<4>(  // four elements' loads in flight before their stores (loops.cuh)
      start + int64_t(threadIdx.x), end, int64_t(blockDim.x), [&](int64_t i) { return Pair{s.x[i], s.end[i]}; },
      [&](int64_t i, const Pair& v) { s.x[i] = lerp_element(v.x, v.end, w); });
}

template <int Dummy = 0>
__global__ void scale_multi_tensor_kernel(NormBatch batch, const double* __restrict__ coef) {
  const double c = *coef;
  if (c == 1.0) return;  // x · 1 = x: an unclipped step writes nothing
  const float cf = float(c);
  int64_t start, end;
  const NormSlot& s = batch.locate(blockIdx.x, start, end);
  for_each_strided_batched<4>(  // four elements' loads in flight before their stores (loops.cuh)
      start + int64_t(threadIdx.x), end, int64_t(blockDim.x), [&](int64_t i) { return s.x[i]; },
      [&](int64_t i, float v) { s.x[i] = v * cf; });
}

}  // namespace adnn::kernels
