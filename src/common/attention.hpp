#pragma once
// Attention geometry and the dropout mask, shared by the CPU twin (src/cpu/attention.cpp)
// and the kernels (kernels/attention.cuh, kernels/attention_mma.cuh).
// Layout: q (B·H, Lq, D), k and v (B·H, Lk, D), mask (B, Lk) bool (true = ignore the key).
#include "common/hd.hpp"
#include "common/random.hpp"

namespace adnn::common {

struct AttnGeom {
  int64_t B, H, Lq, Lk, D;
  double scale, dropout;  // dropout probability p in [0, 1)
  uint64_t seed;
  const uint64_t* salt = nullptr;  // a CUDA graph's replay salt (common::salted_seed), set by the launcher
  template <class F>
  void for_each_device_pointer(F&& f) const {
    f(salt);
  }
};

// Kernels call this first: the seed of this launch (salted inside a graph replay), read once.
ADNN_HD void attn_resolve_seed(AttnGeom& P) {
  P.seed = salted_seed(P.seed, P.salt);
  P.salt = nullptr;
}

// Counter-based keep decision for dropout element (bh, i, j): splitmix64 of the element's
// index mixed with the seed; keeps with probability 1 − p. Host and device, bit-identical.
ADNN_HD bool attention_keep(uint64_t seed, uint64_t bh, uint64_t i, uint64_t j, uint64_t Lq, uint64_t Lk, double p) {
  uint64_t z = seed + ((bh * Lq + i) * Lk + j + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const double u = double(z >> 11) * (1.0 / 9007199254740992.0);  // [0, 1), 53 bits
  return u >= p;
}

// Which attention kernel serves f16/bf16 on a device with tensor cores: the mma.sync path
// (kernels/attention_mma.cuh) for head dims up to 256. f32/f64 always take the SIMT path.
constexpr int kAttnMaxHeadDim = 256;

}  // namespace adnn::common
