#pragma once
// Squeeze-and-excite, fused into two kernels (forward):
//   se_pool:       pooled (N, C) = mean over P = H·W of x (N, P, C).
//                  Block (32, 8): 32 channels × 8 row lanes, grid (⌈C/32⌉, N) (as CBAM's
//                  channel pool). Reads N·P·C, writes N·C.
//   se_gate_scale: per sample n, h = SiLU(W1 pooled_n + b1) (R), a = W2 h + b2 (C), and
//                  y[n, p, c] = x[n, p, c] · σ(a_c) for a chunk of pixels. Grid (chunks, N),
//                  block 256; every block of a sample recomputes the two small FCs (2·R·C
//                  MACs) into shared memory (R + C floats, dynamic), chunk 0 also writes the
//                  gate logits a (N, C) that backward uses. Reads N·P·C + chunks·(2·R·C)
//                  weights (L2-resident), writes N·P·C.
// Weights: W1 (R, C), b1 (R), W2 (C, R), b2 (C), contiguous; x, y (N, P, C) contiguous.
// Backward (ops layer) reuses the sigmoid-gate backward kernel (gx from the gate, dL/da
// from Σ_p g·x) and small GEMMs for the two FCs.
#include "common.cuh"

#include <type_traits>

namespace adnn::kernels {

template <class T>
__global__ void se_pool_kernel(const T* __restrict__ x, T* __restrict__ pooled, int64_t P, int64_t C) {
  using A = acc_t<T>;
  ADNN_SHARED(A, part, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * 32 + tx;
  A s = 0;
  if (c < C)
    for (int64_t p = ty; p < P; p += 8) s += A(x[(n * P + p) * C + c]);
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int r = 1; r < 8; ++r) s += part[r][tx];
    pooled[n * C + c] = T(s / A(P));
  }
}

template <class T>
__global__ void se_gate_scale_kernel(const T* __restrict__ x, const T* __restrict__ pooled, const T* __restrict__ w1,
                                     const T* __restrict__ b1, const T* __restrict__ w2, const T* __restrict__ b2,
                                     T* __restrict__ y, T* __restrict__ logits, int64_t P, int64_t C, int64_t R,
                                     int64_t pixels_per_block) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, smem);
  ADNN_SHARED_PTR(A) h = smem;      // (R)
  ADNN_SHARED_PTR(A) gate = h + R;  // (C)
  const int64_t n = blockIdx.y;
  const T* pn = pooled + n * C;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x) {
    A z = b1 ? A(b1[r]) : A(0);
    for (int64_t c = 0; c < C; ++c) z += A(w1[r * C + c]) * A(pn[c]);
    h[r] = silu(z);
  }
  __syncthreads();
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    A a = b2 ? A(b2[c]) : A(0);
    for (int64_t r = 0; r < R; ++r) a += A(w2[c * R + r]) * h[r];
    if (blockIdx.x == 0) logits[n * C + c] = T(a);
    gate[c] = sigmoid(a);
  }
  __syncthreads();
  const int64_t p0 = int64_t(blockIdx.x) * pixels_per_block;
  const int64_t p1 = p0 + pixels_per_block < P ? p0 + pixels_per_block : P;
  for (int64_t e = p0 * C + threadIdx.x; e < p1 * C; e += blockDim.x) {
    const int64_t idx = n * P * C + e;
    y[idx] = T(A(x[idx]) * gate[e % C]);
  }
}

// Pixels per block: enough blocks to fill the GPU, enough work per block to amortise the
// recomputed FCs (at least 4·R·C / C = 4·R pixels' worth of multiply-adds per element).
inline int64_t se_pixels_per_block(int64_t N, int64_t P, int64_t R) {
  int64_t per = (P + 7) / 8;  // at most 8 blocks per sample
  const int64_t floor_px = 4 * R > 16 ? 4 * R : 16;
  if (per < floor_px) per = floor_px;
  (void)N;
  return per < P ? per : (P > 0 ? P : 1);
}

template <class T>
void launch_squeeze_excite(const T* x, const T* w1, const T* b1, const T* w2, const T* b2, T* pooled, T* logits, T* y,
                           int64_t N, int64_t P, int64_t C, int64_t R, Stream stream) {
  if (N * C == 0) return;
  ADNN_LAUNCH(se_pool_kernel<T>, dim3(ceil_div(C, 32), unsigned(N)), dim3(32, 8), 0, stream, x, pooled, P, C);
  const int64_t per = se_pixels_per_block(N, P, R);
  ADNN_LAUNCH(se_gate_scale_kernel<T>, dim3(ceil_div(P, per), unsigned(N)), dim3(256),
              size_t(R + C) * sizeof(acc_t<T>), stream, x, pooled, w1, b1, w2, b2, y, logits, P, C, R, per);
}

}  // namespace adnn::kernels
