// CPU bf16 GEMM (the gemm family's CPU side, src/cpu/gemm.hpp):
//   C (M, N) f32 = op(A) (M, K) · op(B) (K, N) + beta · C, A and B bf16, row-major.
// Precision: each product of two bf16 values is exact in f32 (unless it overflows or
// underflows) and is added to an f32 accumulator with one rounding to nearest even
// (VDPBF16PS, as the Intel SDM defines it: per f32 lane, the odd element's product is added
// first, then the even one's; the instruction treats denormal inputs as zero, flushes denormal
// results and ignores MXCSR). Apart from denormals, these are the semantics of the
// widen-then-sgemm path it replaces (f32 FMAs), with a fixed order of the sums; cuBLAS's bf16
// GEMM with f32 compute is comparable (f32 accumulation, its own order and rounding).
//
// Where the CPU has AVX512-BF16 (Cooper Lake, Sapphire Rapids and later Xeons, AMD Zen 4 and
// later; checked at run time; compiled with GCC on x86-64 — other compilers get the fallback),
// the kernel is BLIS-shaped:
//   loop jc over column blocks of NC, pc over K blocks of KC: pack op(B)'s (KC, NC) block as
//     [tile of NR = 32 columns][pair of k][32 columns][2]: one 64-byte row per (k, k + 1) pair,
//     the layout VDPBF16PS multiplies;
//   loop ic over row blocks of MC: op(A)'s (MC, KC) block is read in place when A is stored
//     (M, K) with K and lda even (each row's pairs already adjacent and 4-byte aligned: the
//     convolutions' columns but for a 1-channel input's 9 taps), else packed as [tile of
//     MR = 12 rows][pair of k][12 rows][2]; then per (NR tile, MR tile) the micro-kernel keeps
//     12 × 32 f32 accumulators in 24 zmm registers, and per pair of k does 2 loads of B, 12
//     broadcasts of A and 24 VDPBF16PS (768 multiply-adds). Tails are zero-padded in the packs
//     (both operands, so no product reads past an edge; in-place rows past the tail repeat
//     the last row and are not stored) and stored with masks.
// Cost per call: 2·M·N·K flops; op(B) is packed once per K block and row split (reads and
// writes K·N·2 bytes), a packed op(A) once per column block. Measured (2-core Zen 4): the
// instruction runs at 2× the f32 FMA's multiply-adds per cycle; the main job's convolution
// GEMMs run at 270–405 GFLOP/s against OpenBLAS sgemm's 150–197 (docs/results.md, "The main
// job in bf16 on the CPU's bf16 dot product").
// Elsewhere (or with ADNN_CPU_BF16_DOT=0, or set_bf16_dot(false)) A and B are widened to f32
// and multiplied by cpu::gemm: f32 FMAs in OpenBLAS's order, denormals kept.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "cpu/backend.hpp"
#include "cpu/convert.hpp"
#include "cpu/gemm.hpp"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define ADNN_HAVE_BF16_DOT 1
#endif

namespace adnn::cpu {

namespace {

bool detect_bf16_dot() {
#ifdef ADNN_HAVE_BF16_DOT
  const char* env = std::getenv("ADNN_CPU_BF16_DOT");
  if (env && std::strcmp(env, "0") == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool& bf16_dot_state() {
  static bool on = detect_bf16_dot();
  return on;
}

#ifdef ADNN_HAVE_BF16_DOT
constexpr int kMR = 12, kNR = 32;
constexpr int64_t kKC = 256, kMC = 12 * kMR, kNC = 512;  // KC even: a block holds whole pairs

// VPERMT2W's index for 32 outputs interleaving two rows x, y of 32 values from value v0:
// x[v0], y[v0], x[v0 + 1], y[v0 + 1], … (y's values are 32 + their index)
__attribute__((target("avx512f,avx512bw"))) __m512i interleave_index(int v0) {
  alignas(64) uint16_t idx[32];
  for (int e = 0; e < 32; ++e) idx[e] = uint16_t(v0 + e / 2 + (e % 2) * 32);
  return _mm512_load_si512(idx);
}

// The packs: W lanes (A's rows, W = kMR, or B's columns, W = kNR) per tile, each lane's
// (k, k + 1) pairs side by side: [tile][pair][W][2], zeros past the edges (lanes ≥ n, and the
// second element of an odd kc's last pair).

// X stored (lanes, K) — a lane's pairs adjacent: x at lane 0, k 0; w ≤ W lanes
template <int W>
void pack_lanes_major(const uint16_t* x, int64_t ld, int64_t w, int64_t kc, uint16_t* dst) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t l = 0; l < W; ++l) {
    uint16_t* d = dst + 2 * l;
    if (l >= w) {
      for (int64_t p = 0; p < kp; ++p) d[p * W * 2] = d[p * W * 2 + 1] = 0;
      continue;
    }
    const uint16_t* src = x + l * ld;
    for (int64_t p = 0; p < kc / 2; ++p) {
      d[p * W * 2] = src[2 * p];
      d[p * W * 2 + 1] = src[2 * p + 1];
    }
    if (kc & 1) {
      d[(kp - 1) * W * 2] = src[kc - 1];
      d[(kp - 1) * W * 2 + 1] = 0;
    }
  }
}

// X stored (K, lanes) — rows k and k + 1 interleaved by VPERMT2W (masked loads zero the lanes
// past w; scalar copies took 30 % of the kernel's time on the weight gradient's columns)
template <int W>
__attribute__((target("avx512f,avx512bw"))) void pack_k_major(const uint16_t* x, int64_t ld, int64_t w, int64_t kc,
                                                              uint16_t* dst) {
  const int64_t kp = (kc + 1) / 2;
  const __m512i lo = interleave_index(0), hi = interleave_index(16);
  const __mmask32 m = w >= 32 ? ~__mmask32(0) : __mmask32((1u << w) - 1);
  static_assert(W == 32 || W == 12);
  // plain stores of the pair rows (each lies inside the pack: no mask needed)
  for (int64_t p = 0; p < kp; ++p) {
    const uint16_t* s0 = x + 2 * p * ld;
    const __m512i r0 = _mm512_maskz_loadu_epi16(m, s0);
    const __m512i r1 = 2 * p + 1 < kc ? _mm512_maskz_loadu_epi16(m, s0 + ld) : _mm512_setzero_si512();
    const __m512i v = _mm512_permutex2var_epi16(r0, lo, r1);
    uint16_t* d = dst + p * 2 * W;
    if constexpr (W == 32) {
      _mm512_storeu_si512(d, v);
      _mm512_storeu_si512(d + 32, _mm512_permutex2var_epi16(r0, hi, r1));
    } else {  // 24 values: 32 + 16 bytes
      // (the zero-masked extracts: GCC 12 warns about the undefined upper lanes of the plain ones)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm512_maskz_extracti64x4_epi64(0xF, v, 0));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16), _mm512_maskz_extracti32x4_epi32(0xF, v, 2));
    }
  }
}

// Lanes [l0, l0 + n) × k [k0, k0 + kc) of op(X) → tiles of W lanes. lanes_major: X stored
// (lanes, K) (A untransposed, B transposed), else (K, lanes) (A transposed, B untransposed).
template <int W>
void pack(const uint16_t* x, bool lanes_major, int64_t ld, int64_t l0, int64_t n, int64_t k0, int64_t kc,
          uint16_t* out) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t t0 = 0; t0 < n; t0 += W) {
    const int64_t w = std::min<int64_t>(W, n - t0);
    uint16_t* const dst = out + t0 * kp * 2;
    if (lanes_major)
      pack_lanes_major<W>(x + (l0 + t0) * ld + k0, ld, w, kc, dst);
    else
      pack_k_major<W>(x + k0 * ld + l0 + t0, ld, w, kc, dst);
  }
}

// C[r][j] (r < mr, j < nr) = acc + (first ? beta · C : C); kp pairs of A (kMR rows) and of
// packed B (kNR columns). A packed (Direct false): [pair][kMR][2]. A in place (Direct true):
// row r at a + r·lda, its pair p at element 2p (lda and a's pairs 4-byte aligned); rows past
// mr repeat row mr − 1 (read, never stored), so no pointer leaves A.
using pair_t = uint32_t __attribute__((may_alias));  // a (k, k + 1) pair of A's bf16 bits
template <bool Direct>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void micro_kernel(int64_t kp, const uint16_t* a,
                                                                                  int64_t lda, const uint16_t* b,
                                                                                  float* c, int64_t ldc, int64_t mr,
                                                                                  int64_t nr, bool first, float beta) {
  __m512 acc[kMR][2];
#pragma GCC unroll 12
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  if constexpr (Direct) {
    const pair_t* rows[kMR];
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) rows[r] = reinterpret_cast<const pair_t*>(a + std::min<int64_t>(r, mr - 1) * lda);
    for (int64_t p = 0; p < kp; ++p, b += 2 * kNR) {
      const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
      const __m512bh b1 = (__m512bh)_mm512_load_si512(b + kNR);
#pragma GCC unroll 12
      for (int r = 0; r < kMR; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(int(rows[r][p]));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
      }
    }
  } else {
    const pair_t* ap = reinterpret_cast<const pair_t*>(a);
    for (int64_t p = 0; p < kp; ++p, ap += kMR, b += 2 * kNR) {
      const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
      const __m512bh b1 = (__m512bh)_mm512_load_si512(b + kNR);
#pragma GCC unroll 12
      for (int r = 0; r < kMR; ++r) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(int(ap[r]));
        acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
        acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
      }
    }
  }
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
  const bool read_c = !first || beta != 0.0f, full = nr == kNR;
  const __m512 vb = _mm512_set1_ps(first ? beta : 1.0f);
  // a whole tile's rows with plain loads and stores (masks only on a tail tile)
#pragma GCC unroll 12
  for (int r = 0; r < kMR; ++r) {
    if (r >= mr) break;
    float* cr = c + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (read_c) {  // acc + beta · C (beta 1 after the first K block: no product, the same bits)
      const __m512 c0 = full ? _mm512_loadu_ps(cr) : _mm512_maskz_loadu_ps(m0, cr);
      const __m512 c1 = full ? _mm512_loadu_ps(cr + 16) : _mm512_maskz_loadu_ps(m1, cr + 16);
      v0 = _mm512_add_ps(v0, (first && beta != 1.0f) ? _mm512_mul_ps(vb, c0) : c0);
      v1 = _mm512_add_ps(v1, (first && beta != 1.0f) ? _mm512_mul_ps(vb, c1) : c1);
    }
    if (full) {
      _mm512_storeu_ps(cr, v0);
      _mm512_storeu_ps(cr + 16, v1);
    } else {
      _mm512_mask_storeu_ps(cr, m0, v0);
      _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
  }
}

// One thread's GEMM (all of C (M, N) given)
void gemm_bf16_dot(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
                   int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t nc_max = std::min(kNC, (N + kNR - 1) / kNR * kNR), mc_max = std::min(kMC, (M + kMR - 1) / kMR * kMR);
  const int64_t kc_max = std::min(kKC, (K + 1) / 2 * 2);
  // the packs start on a 64-byte line, so each 64-byte row of B is one cache line
  thread_local std::vector<uint16_t> bp_store, ap_store;
  auto aligned = [](std::vector<uint16_t>& v, int64_t n) {
    v.resize(size_t(n + 32));
    return v.data() + (32 - (reinterpret_cast<uintptr_t>(v.data()) % 64) / 2) % 32;
  };
  uint16_t* const bp = aligned(bp_store, nc_max * kc_max);
  uint16_t* const ap = aligned(ap_store, mc_max * kc_max);
  // A (M, K) stored as is, with whole 4-byte-aligned pairs in every row (K and lda even: the
  // convolutions' columns but for a 1-channel input's 9 taps), is read in place: packing it
  // would copy every element once per column block to save nothing (measured: packing A
  // took 28 % of the kernel's time in the main job's training step)
  const bool direct = !ta && K % 2 == 0 && lda % 2 == 0 && reinterpret_cast<uintptr_t>(A) % 4 == 0;
  for (int64_t j0 = 0; j0 < N; j0 += kNC) {
    const int64_t nc = std::min(kNC, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t kc = std::min(kKC, K - k0), kp = (kc + 1) / 2;
      pack<kNR>(B, tb, ldb, j0, nc, k0, kc, bp);
      for (int64_t i0 = 0; i0 < M; i0 += kMC) {
        const int64_t mc = std::min(kMC, M - i0);
        if (!direct) pack<kMR>(A, !ta, lda, i0, mc, k0, kc, ap);
        for (int64_t jt = 0; jt < nc; jt += kNR)
          for (int64_t it = 0; it < mc; it += kMR) {
            const int64_t mr = std::min<int64_t>(kMR, mc - it), nr = std::min<int64_t>(kNR, nc - jt);
            float* const c = C + (i0 + it) * ldc + j0 + jt;
            if (direct)
              micro_kernel<true>(kp, A + (i0 + it) * lda + k0, lda, bp + jt * kp * 2, c, ldc, mr, nr, k0 == 0, beta);
            else
              micro_kernel<false>(kp, ap + it * kp * 2, 0, bp + jt * kp * 2, c, ldc, mr, nr, k0 == 0, beta);
          }
      }
    }
  }
}
#endif

}  // namespace

bool bf16_dot_available() {
  return bf16_dot_state();
}

bool set_bf16_dot(bool on) {
  const bool before = bf16_dot_state();
  bf16_dot_state() = on && detect_bf16_dot();
  return before;
}

void gemm_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const bfloat16* A, int64_t lda, const bfloat16* B,
               int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0)  // no products: C = beta · C (beta 0: zeros, C's old values never read)
    return gemm(ta, tb, M, N, K, 1.0f, static_cast<const float*>(nullptr), lda, nullptr, ldb, beta, C, ldc);
#ifdef ADNN_HAVE_BF16_DOT
  if (bf16_dot_state()) {
    const auto* a = reinterpret_cast<const uint16_t*>(A);
    const auto* b = reinterpret_cast<const uint16_t*>(B);
    split_gemm(ta, tb, M, N, K, a, lda, b, ldb, C, ldc,
               [&](int64_t m, int64_t n, const uint16_t* as, const uint16_t* bs, float* cs) {
                 gemm_bf16_dot(ta, tb, m, n, K, as, lda, bs, ldb, beta, cs, ldc);
               });
    return;
  }
#endif
  thread_local std::vector<float> pa, pb;
  const int64_t ac = ta ? M : K, bc = tb ? K : N;  // columns of A and B as stored
  widen_panel(A, ta ? K : M, ac, lda, false, pa);
  widen_panel(B, tb ? N : K, bc, ldb, false, pb);
  gemm(ta, tb, M, N, K, 1.0f, pa.data(), ac, pb.data(), bc, beta, C, ldc);
}

}  // namespace adnn::cpu
