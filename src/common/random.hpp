#pragma once
// Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11; the generator of cuRAND
// and PyTorch's CUDA RNG). The n-th group of four 32-bit outputs of stream `seed` is a pure
// function of (seed, n), so a kernel thread and the CPU twin compute the same values with no
// state to carry: masks drawn on `cuda` equal those drawn on `cpu` for the same seed.
#include "common/hd.hpp"

namespace adnn::common {

struct Philox4 {
  uint32_t x[4];
};

ADNN_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t& hi) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// Philox4x32 with 10 rounds: counter (n, 0) — n split into two words — and key = the seed.
ADNN_HD Philox4 philox4x32(uint64_t seed, uint64_t n) {
  uint32_t c0 = uint32_t(n), c1 = uint32_t(n >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(0xD2511F53u, c0, hi0);
    const uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// The seed a kernel uses: inside a CUDA graph, launches carry a pointer to the graph's replay
// salt (a device u64 that the graph's last node advances), so every replay draws new masks;
// the first replay (salt 0) draws those of the eager step with the same seed. Null elsewhere.
ADNN_HD uint64_t salted_seed(uint64_t seed, const uint64_t* salt) {
  return salt ? seed + *salt * 0xD1B54A32D192ED03ull : seed;
}

// A uniform float in [0, 1) from the top 24 bits of a word (exact in f32).
ADNN_HD float uniform_from_bits(uint32_t w) { return float(w >> 8) * (1.0f / 16777216.0f); }

// Where the words of a Bernoulli fill go: Philox call q (one device thread per call) gives
// four words, and word j of call q is element (q / 32)·128 + j·32 + q % 32 — calls are taken
// 32 at a time (a warp's lanes), and the j-th words of the 32 calls fill 32 consecutive
// elements, so each of a warp's four stores is contiguous (coalesced for every dtype).
// bernoulli_calls(n) calls cover n elements (elements at n and beyond are skipped).
ADNN_HD int64_t bernoulli_element_index(int64_t q, int j) { return (q / 32) * 128 + int64_t(j) * 32 + q % 32; }
ADNN_HD int64_t bernoulli_calls(int64_t n) { return (n + 127) / 128 * 32; }

// Element i of a Bernoulli(p) draw of stream `seed`, as {0, value}: the value where the
// uniform number is below p (the kept elements of a dropout mask scale by 1 / (1 − drop)).
// The inverse of bernoulli_element_index: call (i / 128)·32 + i % 32, word (i % 128) / 32.
ADNN_HD float bernoulli_element(uint64_t seed, int64_t i, float p, float value) {
  const Philox4 r = philox4x32(seed, uint64_t((i / 128) * 32 + i % 32));
  return uniform_from_bits(r.x[(i % 128) / 32]) < p ? value : 0.0f;
}

}  // namespace adnn::common
