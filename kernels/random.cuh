#pragma once
// Random tensors generated on the device from a counter-based generator (Philox4x32-10,
// src/common/random.hpp), so a training step never draws masks on the host.
//
// bernoulli_fill: out[i] = value if uniform(seed, i) < p else 0, over a contiguous tensor; the
//   dropout and drop-path masks (value = 1 / keep probability).
// advance_salt: *salt += 1 — the last node of a CUDA graph whose launches read the graph's replay
//   salt (common::salted_seed), so the next replay draws new masks. One thread; 16 bytes.
// Threads: one thread per group of four elements (one Philox call gives four words),
//   grid-stride; consecutive threads write consecutive groups (coalesced).
// Cost: writes |out| elements; 10 Philox rounds (8 multiplies) per four elements.
#include "common.cuh"
#include "common/random.hpp"

namespace adnn::kernels {

template <class T>
__global__ void bernoulli_fill_kernel(T* __restrict__ out, int64_t n, float p, float value, uint64_t seed,
                                      const uint64_t* __restrict__ salt) {
  seed = salted_seed(seed, salt);
  const int64_t groups = (n + 3) / 4;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < groups; q += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32(seed, uint64_t(q));
    for (int j = 0; j < 4; ++j) {
      const int64_t i = 4 * q + j;
      if (i < n) out[i] = from_float<T>(uniform_from_bits(r.x[j]) < p ? value : 0.0f);
    }
  }
}

template <int Dummy = 0>
__global__ void advance_salt_kernel(uint64_t* salt) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *salt += 1;
}

}  // namespace adnn::kernels
