#pragma once
// Random tensors generated on the device from a counter-based generator (Philox4x32-10,
// src/common/random.hpp), so a training step never draws masks on the host.
//
// bernoulli_fill: out[i] = value if uniform(seed, i) < p else 0, over a contiguous tensor; the
//   dropout and drop-path masks (value = 1 / keep probability).
// advance_salt: *salt += 1 — the last node of a CUDA graph whose launches read the graph's replay
//   salt (common::salted_seed), so the next replay draws new masks. One thread; 16 bytes.
// Threads: one thread per Philox call (four words), grid-stride, blockDim a multiple of 32.
//   Word j of call q is element (q / 32)·128 + j·32 + q % 32 (common::bernoulli_element_index,
//   the CPU twin's mapping too): a warp's 32 lanes write 32 consecutive elements per word, so
//   each of its four stores is contiguous. Measured coalescing (emulator trace): 100 % in the
//   adnn_fer_nano training step (25 % before, when a thread stored its four consecutive
//   elements); 90.3 % in the efficientnet_b5 step at batch 1, whose drop-path masks have one
//   element (4 bytes of a 32-byte sector).
// Cost: writes |out| elements; 10 Philox rounds (8 multiplies) per four elements.
#include "common.cuh"
#include "common/random.hpp"

namespace adnn::kernels {

template <class T>
__global__ void bernoulli_fill_kernel(T* __restrict__ out, int64_t n, float p, double value, uint64_t seed,
                                      const uint64_t* __restrict__ salt) {
  using A = acc_t<T>;  // the kept value in f64 for f64 (1 / keep probability, unrounded), f32 otherwise
  const A v = A(value);
  seed = salted_seed(seed, salt);
  const int64_t calls = bernoulli_calls(n);
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < calls; q += int64_t(gridDim.x) * blockDim.x) {
    if (bernoulli_element_index(q, 0) >= n) continue;  // nothing of this call is in range
    const Philox4 r = philox4x32(seed, uint64_t(q));
    ADNN_UNROLL
    for (int j = 0; j < 4; ++j) {
      const int64_t i = bernoulli_element_index(q, j);
      if (i < n) out[i] = store_as<T>(uniform_from_bits(r.x[j]) < p ? v : A(0));
    }
  }
}

template <int Dummy = 0>
__global__ void advance_salt_kernel(uint64_t* salt) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *salt += 1;
}

}  // namespace adnn::kernels
