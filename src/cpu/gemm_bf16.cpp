// CPU bf16 GEMM (the gemm family's CPU side, src/cpu/gemm.hpp):
//   C (M, N) f32 = op(A) (M, K) · op(B) (K, N) + beta · C, A and B bf16, row-major.
// Precision: each product of two bf16 values is exact in f32 and is added to an f32
// accumulator with one rounding (VDPBF16PS; the denormal inputs and outputs of that instruction
// are flushed to zero) — the semantics of the widen-then-sgemm path it replaces and of
// cuBLAS's bf16 GEMM with f32 compute, with its own (unspecified) order of the sums.
//
// Where the CPU has AVX512-BF16 (Cooper Lake, Sapphire Rapids and later Xeons, AMD Zen 4 and
// later; checked at run time), the kernel is BLIS-shaped:
//   loop jc over column blocks of NC, pc over K blocks of KC: pack op(B)'s (KC, NC) block as
//     [tile of NR = 32 columns][pair of k][32 columns][2]: one 64-byte row per (k, k + 1) pair,
//     the layout VDPBF16PS multiplies;
//   loop ic over row blocks of MC: pack op(A)'s (MC, KC) block as [tile of MR = 12 rows][pair
//     of k][12 rows][2]; then per (NR tile, MR tile) the micro-kernel keeps 12 × 32 f32
//     accumulators in 24 zmm registers, and per pair of k does 2 loads of B, 12 broadcasts of
//     A and 24 VDPBF16PS (768 multiply-adds). Tails are zero-padded in the packs (both
//     operands, so no product reads past an edge) and stored with masks.
// Cost per call: 2·M·N·K flops; packing reads op(A) once per column block and op(B) once per
// row split, each writing the same number of bytes. Measured (2-core Zen 4): the instruction
// runs at 2× the f32 FMA's multiply-adds per cycle; the kernel's rate is in docs/training.md
// ("CPU bf16 GEMM").
// Elsewhere (or with ADNN_CPU_BF16_DOT=0, or set_bf16_dot(false)) A and B are widened to f32
// and multiplied by cpu::gemm — the same precision semantics, another order of the sums.
#include <omp.h>

#include <algorithm>
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
         __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

bool& bf16_dot_state() {
  static bool on = detect_bf16_dot();
  return on;
}

// X stored (sr, sc) with leading dimension ld, widened to a packed f32 (sr, sc) array: the
// fallback's operands.
void widen_stored(const bfloat16* x, int64_t sr, int64_t sc, int64_t ld, std::vector<float>& out) {
  out.resize(size_t(sr * sc));
  if (ld == sc) return convert::widen_parallel(x, out.data(), sr * sc);
#pragma omp parallel for schedule(static) if (sr * sc > 65536)
  for (int64_t r = 0; r < sr; ++r) convert::widen(x + r * ld, out.data() + r * sc, sc);
}

#ifdef ADNN_HAVE_BF16_DOT
constexpr int kMR = 12, kNR = 32;
constexpr int64_t kKC = 256, kMC = 12 * kMR, kNC = 512;  // KC even: a block holds whole pairs

// op(A)'s rows [i0, i0 + mc) × k [k0, k0 + kc) → [tile][pair][kMR][2], zeros past the edges
void pack_a(const uint16_t* a, bool ta, int64_t lda, int64_t i0, int64_t mc, int64_t k0, int64_t kc, uint16_t* out) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t t0 = 0; t0 < mc; t0 += kMR) {
    uint16_t* dst = out + t0 * kp * 2;  // tile t0 / kMR: kp · kMR · 2 values
    const int64_t mr = std::min<int64_t>(kMR, mc - t0);
    if (!ta) {
      for (int64_t r = 0; r < kMR; ++r) {
        if (r >= mr) {
          for (int64_t p = 0; p < kp; ++p) dst[(p * kMR + r) * 2] = dst[(p * kMR + r) * 2 + 1] = 0;
          continue;
        }
        const uint16_t* src = a + (i0 + t0 + r) * lda + k0;
        for (int64_t p = 0; p < kc / 2; ++p) {
          dst[(p * kMR + r) * 2] = src[2 * p];
          dst[(p * kMR + r) * 2 + 1] = src[2 * p + 1];
        }
        if (kc & 1) {
          dst[((kp - 1) * kMR + r) * 2] = src[kc - 1];
          dst[((kp - 1) * kMR + r) * 2 + 1] = 0;
        }
      }
    } else {  // A stored (K, M): rows k and k + 1 of A interleaved
      for (int64_t p = 0; p < kp; ++p) {
        const uint16_t* s0 = a + (k0 + 2 * p) * lda + i0 + t0;
        const uint16_t* s1 = 2 * p + 1 < kc ? s0 + lda : nullptr;
        uint16_t* d = dst + p * kMR * 2;
        for (int64_t r = 0; r < kMR; ++r) {
          d[2 * r] = r < mr ? s0[r] : 0;
          d[2 * r + 1] = r < mr && s1 ? s1[r] : 0;
        }
      }
    }
  }
}

// op(B)'s k [k0, k0 + kc) × columns [j0, j0 + nc) → [tile][pair][kNR][2], zeros past the edges
void pack_b(const uint16_t* b, bool tb, int64_t ldb, int64_t k0, int64_t kc, int64_t j0, int64_t nc, uint16_t* out) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t t0 = 0; t0 < nc; t0 += kNR) {
    uint16_t* dst = out + t0 * kp * 2;
    const int64_t nr = std::min<int64_t>(kNR, nc - t0);
    if (!tb) {  // B stored (K, N): rows k and k + 1 interleaved
      for (int64_t p = 0; p < kp; ++p) {
        const uint16_t* s0 = b + (k0 + 2 * p) * ldb + j0 + t0;
        const bool two = 2 * p + 1 < kc;
        const uint16_t* s1 = s0 + (two ? ldb : 0);
        uint16_t* d = dst + p * kNR * 2;
        if (nr == kNR && two) {
#pragma GCC unroll 4
          for (int64_t j = 0; j < kNR; ++j) {
            d[2 * j] = s0[j];
            d[2 * j + 1] = s1[j];
          }
          continue;
        }
        for (int64_t j = 0; j < kNR; ++j) {
          d[2 * j] = j < nr ? s0[j] : 0;
          d[2 * j + 1] = j < nr && two ? s1[j] : 0;
        }
      }
    } else {  // B stored (N, K): each column's pairs are adjacent
      for (int64_t j = 0; j < kNR; ++j) {
        if (j >= nr) {
          for (int64_t p = 0; p < kp; ++p) dst[(p * kNR + j) * 2] = dst[(p * kNR + j) * 2 + 1] = 0;
          continue;
        }
        const uint16_t* src = b + (j0 + t0 + j) * ldb + k0;
        for (int64_t p = 0; p < kc / 2; ++p) {
          dst[(p * kNR + j) * 2] = src[2 * p];
          dst[(p * kNR + j) * 2 + 1] = src[2 * p + 1];
        }
        if (kc & 1) {
          dst[((kp - 1) * kNR + j) * 2] = src[kc - 1];
          dst[((kp - 1) * kNR + j) * 2 + 1] = 0;
        }
      }
    }
  }
}

// C[r][j] (r < mr, j < nr) = acc + (first ? beta · C : C); kp pairs of packed A (kMR rows)
// and packed B (kNR columns)
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void micro_kernel(int64_t kp, const uint16_t* a,
                                                                                  const uint16_t* b, float* c,
                                                                                  int64_t ldc, int64_t mr, int64_t nr,
                                                                                  bool first, float beta) {
  __m512 acc[kMR][2];
#pragma GCC unroll 12
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const uint32_t* ap = reinterpret_cast<const uint32_t*>(a);
  for (int64_t p = 0; p < kp; ++p, ap += kMR, b += 2 * kNR) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + kNR);
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(ap[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, b1);
    }
  }
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
  const bool read_c = !first || beta != 0.0f;
  const __m512 vb = _mm512_set1_ps(first ? beta : 1.0f);
#pragma GCC unroll 12
  for (int r = 0; r < kMR; ++r) {
    if (r >= mr) break;
    float* cr = c + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (read_c) {  // acc + beta · C (beta 1 after the first K block: no product, the same bits)
      const __m512 c0 = _mm512_maskz_loadu_ps(m0, cr), c1 = _mm512_maskz_loadu_ps(m1, cr + 16);
      v0 = _mm512_add_ps(v0, (first && beta != 1.0f) ? _mm512_mul_ps(vb, c0) : c0);
      v1 = _mm512_add_ps(v1, (first && beta != 1.0f) ? _mm512_mul_ps(vb, c1) : c1);
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
  }
}

// One thread's GEMM (all of C (M, N) given)
void gemm_bf16_dot(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t lda, const uint16_t* B,
                   int64_t ldb, float beta, float* C, int64_t ldc) {
  if (K == 0) {  // no products: C = beta · C (beta 0: zeros, C's old values never read)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  const int64_t nc_max = std::min(kNC, (N + kNR - 1) / kNR * kNR), mc_max = std::min(kMC, (M + kMR - 1) / kMR * kMR);
  const int64_t kc_max = std::min(kKC, (K + 1) / 2 * 2);
  thread_local std::vector<uint16_t> bp, ap;
  bp.resize(size_t(nc_max * kc_max));
  ap.resize(size_t(mc_max * kc_max));
  for (int64_t j0 = 0; j0 < N; j0 += kNC) {
    const int64_t nc = std::min(kNC, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += kKC) {
      const int64_t kc = std::min(kKC, K - k0), kp = (kc + 1) / 2;
      pack_b(B, tb, ldb, k0, kc, j0, nc, bp.data());
      for (int64_t i0 = 0; i0 < M; i0 += kMC) {
        const int64_t mc = std::min(kMC, M - i0);
        pack_a(A, ta, lda, i0, mc, k0, kc, ap.data());
        for (int64_t jt = 0; jt < nc; jt += kNR)
          for (int64_t it = 0; it < mc; it += kMR)
            micro_kernel(kp, ap.data() + it * kp * 2, bp.data() + jt * kp * 2, C + (i0 + it) * ldc + j0 + jt, ldc,
                         std::min<int64_t>(kMR, mc - it), std::min<int64_t>(kNR, nc - jt), k0 == 0, beta);
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
  widen_stored(A, ta ? K : M, ac, lda, pa);
  widen_stored(B, tb ? N : K, bc, ldb, pb);
  gemm(ta, tb, M, N, K, 1.0f, pa.data(), ac, pb.data(), bc, beta, C, ldc);
}

}  // namespace adnn::cpu
