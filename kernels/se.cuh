#pragma once
// Squeeze-and-excite forward in four kernels (five with the pool's slices):
//   se_pool:       pooled (N, C) = mean over P = H·W of x (N, P, C).
//                  Block (32, 8): 32 channels × 8 row lanes, grid (⌈C/32⌉, N, S) with CBAM's
//                  position slices (position_slices: S > 1 only when the ⌈C/32⌉·N blocks are
//                  fewer than 1024 and P > 256; then each block's slice sum goes to an N·S·C
//                  acc_t workspace and se_pool_finish adds the slices in order and divides by
//                  P). Reads N·P·C, writes N·C (+ 2·N·S·C with S > 1).
//   se_fc1:        hidden (N, R) = SiLU(W1 pooled_n + b1): grid (⌈R/8⌉, N), one warp per
//                  (sample, hidden unit), lanes along a row of W1 (C) with four loads in
//                  flight a lane, a shuffle tree. N·R·C MACs; reads W1 once per sample
//                  (L2-resident across samples) and pooled_n (L1-resident in the block).
//   se_fc2:        a = W2 h_n + b2 (C) for a slice of CB = se_fc2_channels(R) channels a block
//                  (grid (⌈C/CB⌉, N)): groups of se_fc2_width(R) lanes (a power of two
//                  ≥ min(R, 32)) per channel, lanes along a row of W2 (R), so a warp reads
//                  32 / width consecutive rows; then b2, the logits a (backward reads them)
//                  and the gate σ(a) (a workspace) in one coalesced pass. Shared (R + CB) A.
//                  Until 2026-12-05 one block per sample (grid N) computed both FCs: at
//                  B5's 7×7×3072 (R = 128, batch 32) that is 32 blocks on a 132-SM H200,
//                  each streaming 3 MB of weights through one SM; the H200 measured SE's
//                  f32 forward (bench_cudnn's BM_se) at 0.48× the cuDNN + cuBLAS
//                  composition there. The split gives N·⌈R/8⌉ + N·⌈C/CB⌉ blocks (512 +
//                  1,536 at that shape).
//   se_scale:      y[n, p, c] = x[n, p, c] · gate[n, c]: one thread per V consecutive
//                  channels of a pixel (a 16-byte vector of x and y when C and the pointers
//                  allow, else 2 or 1: vector_width), the gate read as 16-byte vectors of A
//                  (L1/L2-resident), the sample and channel of a flat index by precomputed
//                  divisors (DivIndex). Reads N·P·C (+ N·C gates, cached), writes N·P·C.
// sm_90 (docs/results/kernel-resources-sm90.md): se_fc1 30–32 registers (100 % theoretical
// occupancy by registers), 34 for f64 (75 %); se_fc2 30 for 16-bit T (100 %), 56 for f32/f64
// (50 %); se_scale 22–32 registers (100 %) except f32/f64 with V = 1 (38–40, 75 %). Emulated
// B5 training step (batch 1, 64²; `adnn-fer profile --model efficientnet_b5 --classes 7
// --train --batch 1 --image-size 64`): se_fc1 99.2 % coalesced, 11.7 MB fetched for 10.5
// compulsory; se_fc2 91.3 %, 12.0 for 10.8 (se_gate before: 95.4 %, 22.3 for 21.2).
// Weights: W1 (R, C), b1 (R), W2 (C, R), b2 (C), contiguous; x, y (N, P, C) contiguous.
// Types: x, y and the weights in T (f32, f64, or f16/bf16 natively: loaded widened, stored
// rounded once); the math, the pooled means and the gate logits in A = acc_t<T> (f32 for
// the 16-bit types: the statistics stay f32).
// Backward (ops layer) reuses the sigmoid-gate backward kernel (gx from the gate, dL/da
// from Σ_p g·x) and small GEMMs for the two FCs.
#include "cbam.cuh"
#include "common.cuh"
#include "loops.cuh"
#include "vector.cuh"

#include <type_traits>

namespace adnn::kernels {

// per: positions per slice (blockIdx.z); part: with S = gridDim.z > 1 the (N, S, C) slice
// sums, else null (the means go to pooled).
template <class T>
__global__ void se_pool_kernel(const T* __restrict__ x, acc_t<T>* __restrict__ pooled, acc_t<T>* __restrict__ part,
                               int64_t P, int64_t C, int64_t per) {
  using A = acc_t<T>;
  ADNN_SHARED(A, sums, [8][33]);
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t n = blockIdx.y, c = int64_t(blockIdx.x) * 32 + tx, z = blockIdx.z, S = gridDim.z;
  const int64_t p0 = z * per, p1 = p0 + per < P ? p0 + per : P;
  A s = 0;
  if (c < C)
    for (int64_t p = p0 + ty; p < p1; p += 8) s += load_as<A>(x[(n * P + p) * C + c]);
  sums[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int r = 1; r < 8; ++r) s += sums[r][tx];
    if (part)
      part[(n * S + z) * C + c] = s;
    else
      pooled[n * C + c] = s / A(P);
  }
}

// pooled[n, c] = the S slice sums of (n, c) added in order, / P; one thread per (n, c).
template <class A>
__global__ void se_pool_finish_kernel(const A* __restrict__ part, A* __restrict__ pooled, int64_t N, int64_t S,
                                      int64_t P, int64_t C) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < N * C; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = e / C, c = e % C;
    A s = 0;
    for (int64_t z = 0; z < S; ++z) s += part[(n * S + z) * C + c];
    pooled[e] = s / A(P);
  }
}

// FC1 of every sample: hidden[n, r] = SiLU(b1[r] + W1[r] · pooled[n]). Grid (⌈R/8⌉, N), block
// 256: warp w of block (i, n) computes hidden unit r = 8·i + w of sample n, its lanes along the
// row of W1 (C, contiguous) and of pooled[n] (staged in shared memory when C·sizeof(A) ≤ 48 KB,
// else read from global, where the block's 8 warps share it in L1), four columns a lane in
// flight (four accumulators merged in a fixed order), then a shuffle tree. Warps past R return
// after the staging barrier (none follows).
template <class T>
__global__ void se_fc1_kernel(const acc_t<T>* __restrict__ pooled, const T* __restrict__ w1,
                              const T* __restrict__ b1, acc_t<T>* __restrict__ hidden, int64_t C, int64_t R,
                              bool staged) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, smem);  // (C) pooled[n] when staged
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int64_t n = blockIdx.y, r = int64_t(blockIdx.x) * (blockDim.x / 32) + warp;
  if (staged) {  // one coalesced read of the sample's means for the block's warps
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) smem[c] = pooled[n * C + c];
    __syncthreads();
  }
  if (r >= R) return;
  const T* wr = w1 + r * C;
  // W1[r] · pn, pn the staged (shared) or the global row of means
  auto dot = [&](auto pn) {
    A z0 = 0, z1 = 0, z2 = 0, z3 = 0;
    int64_t c = lane;
    for (; c + 96 < C; c += 128) {
      z0 += load_as<A>(wr[c]) * A(pn[c]);
      z1 += load_as<A>(wr[c + 32]) * A(pn[c + 32]);
      z2 += load_as<A>(wr[c + 64]) * A(pn[c + 64]);
      z3 += load_as<A>(wr[c + 96]) * A(pn[c + 96]);
    }
    for (; c < C; c += 32) z0 += load_as<A>(wr[c]) * A(pn[c]);
    return (z0 + z1) + (z2 + z3);
  };
  ADNN_SHARED_PTR(A) ps = smem;
  A z = staged ? dot(ps) : dot(pooled + n * C);
  for (int off = 16; off > 0; off >>= 1) z += __shfl_xor_sync(0xffffffffu, z, off);
  if (lane == 0) hidden[n * R + r] = silu((b1 ? load_as<A>(b1[r]) : A(0)) + z);
}

// FC2, the logits and the gates: a[n, c] = b2[c] + W2[c] · hidden[n], logits[n, c] = a (backward
// reads them), gate[n, c] = σ(a). Grid (⌈C/CB⌉, N), block 256 with hidden[n] (R) in shared
// memory: groups of fc2_width lanes (a power of two ≥ min(R, 32)) per output channel, lanes
// along R, so a warp reads 32 / fc2_width consecutive rows of W2 (C, R), contiguous; the block's
// CB channels go through shared memory to one coalesced pass of b2, logits and σ. Dynamic
// shared (R + CB) A.
template <class T>
__global__ void se_fc2_kernel(const acc_t<T>* __restrict__ hidden, const T* __restrict__ w2,
                              const T* __restrict__ b2, acc_t<T>* __restrict__ logits, acc_t<T>* __restrict__ gate_out,
                              int64_t C, int64_t R, int fc2_width, int64_t CB) {
  using A = acc_t<T>;
  ADNN_DYNAMIC_SHARED(A, smem);
  ADNN_SHARED_PTR(A) h = smem;       // (R): the sample's hidden units
  ADNN_SHARED_PTR(A) acc = h + R;    // (CB): W2 h of the block's channels
  const int64_t n = blockIdx.y, c0 = int64_t(blockIdx.x) * CB, c1 = c0 + CB < C ? c0 + CB : C;
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, warps = int(blockDim.x) / 32;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x) h[r] = hidden[n * R + r];
  __syncthreads();
  const int per_warp = 32 / fc2_width, sub = lane % fc2_width;
  for (int64_t cb = c0 + int64_t(warp) * per_warp; cb < c1; cb += int64_t(warps) * per_warp) {
    const int64_t c = cb + lane / fc2_width;
    A a = 0;
    if (c < c1)
      for (int64_t r = sub; r < R; r += fc2_width) a += load_as<A>(w2[c * R + r]) * h[r];
    for (int off = fc2_width / 2; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off, fc2_width);
    if (sub == 0 && c < c1) acc[c - c0] = a;
  }
  __syncthreads();
  for (int64_t c = c0 + threadIdx.x; c < c1; c += blockDim.x) {
    const A a = b2 ? load_as<A>(b2[c]) + A(acc[c - c0]) : A(acc[c - c0]);
    logits[n * C + c] = a;
    gate_out[n * C + c] = sigmoid(a);
  }
}

// y[n, p, c + j] = x[n, p, c + j] · gate[n, c + j], j < V: one thread per V consecutive
// channels of one pixel (C % V == 0, so a vector never straddles two pixels), x and y as one
// 16-byte vector, the gate (N, C) in A (L1/L2-resident) as 16-byte vectors of A.
template <class T, int V>
__global__ void se_scale_kernel(const T* __restrict__ x, const acc_t<T>* __restrict__ gate, T* __restrict__ y,
                                int64_t vectors, int64_t C, DivIndex sample, DivIndex channel) {
  using A = acc_t<T>;
  constexpr int VG = V * int(sizeof(A)) <= 16 ? V : 16 / int(sizeof(A));  // the gate's vector
  grid_stride(vectors, [&](int64_t v) {
    const int64_t idx = v * V, n = sample.quot(idx), c = channel.rem(idx);
    const vec_t<T, V> xv = load_vec<V>(x + idx);
    const A* gn = gate + n * C + c;
    vec_t<T, V> yv;
    ADNN_UNROLL
    for (int j0 = 0; j0 < V; j0 += VG) {
      const vec_t<A, VG> gv = load_vec<VG>(gn + j0);
      ADNN_UNROLL
      for (int j = 0; j < VG; ++j) yv.v[j0 + j] = store_as<T>(load_as<A>(xv.v[j0 + j]) * gv.v[j]);
    }
    store_vec<V>(y + idx, yv);
  });
}

// FC2's lanes per output channel: the smallest power of two >= min(R, 32).
inline int se_fc2_width(int64_t R) {
  int w = 1;
  while (w < 32 && w < R) w *= 2;
  return w;
}

// FC2's output channels per block: 8 passes of the block's warps over their channels.
// The FC kernels' warps a block (256 threads).
constexpr int kSeWarps = 8;
inline int64_t se_fc2_channels(int64_t R) { return int64_t(kSeWarps) * (32 / se_fc2_width(R)) * 8; }

// part: N·S·C acc_t<T> when S = position_slices(N, P, C) > 1 (se_pool's slice sums); hidden:
// N·R acc_t<T> (FC1's output); gate: N·C acc_t<T> (σ of the logits, for the scale).
template <class T>
void launch_squeeze_excite(const T* x, const T* w1, const T* b1, const T* w2, const T* b2, acc_t<T>* pooled,
                           acc_t<T>* logits, acc_t<T>* part, acc_t<T>* hidden, acc_t<T>* gate, T* y, int64_t N,
                           int64_t P, int64_t C, int64_t R, Stream stream) {
  using A = acc_t<T>;
  if (N * C == 0) return;
  ADNN_CHECK(gate && (hidden || R == 0), "squeeze_excite: no workspace for the N·C gates or the N·R hidden units was given");
  const int64_t S = position_slices(N, P, C);
  ADNN_CHECK(N <= 65535, "squeeze_excite: grid (", ceil_div(C, 32), ", ", N, ", ", S, ") over the limits");
  ADNN_CHECK(S == 1 || part, "squeeze_excite: P = ", P, " is split into ", S,
             " slices, and no workspace for their partials was given");
  ADNN_LAUNCH(se_pool_kernel<T>, dim3(ceil_div(C, 32), unsigned(N), unsigned(S)), dim3(32, 8), 0, stream, x, pooled,
              S > 1 ? part : static_cast<A*>(nullptr), P, C, positions_per_slice(P, S));
  if (S > 1)
    ADNN_LAUNCH(se_pool_finish_kernel<A>, grid_for(N * C), dim3(256), 0, stream, static_cast<const A*>(part), pooled, N,
                S, P, C);
  if (R > 0) {
    const bool staged = size_t(C) * sizeof(A) <= size_t(48) * 1024;
    ADNN_LAUNCH(se_fc1_kernel<T>, dim3(ceil_div(R, kSeWarps), unsigned(N)), dim3(32 * kSeWarps),
                staged ? size_t(C) * sizeof(A) : size_t(0), stream, static_cast<const A*>(pooled), w1, b1, hidden, C,
                R, staged);
  }
  const int64_t CB = se_fc2_channels(R);
  // sm_90 gives a block at most 227 KiB of shared memory (R ≤ 58,048 f32 hidden units)
  ADNN_CHECK(size_t(R + CB) * sizeof(A) <= size_t(227) * 1024, "squeeze_excite: ", R,
             " hidden units do not fit in one block's shared memory (", size_t(R + CB) * sizeof(A), " bytes)");
  ADNN_LAUNCH(se_fc2_kernel<T>, dim3(ceil_div(C, CB), unsigned(N)), dim3(32 * kSeWarps), size_t(R + CB) * sizeof(A), stream,
              static_cast<const A*>(hidden), w2, b2, logits, gate, C, R, se_fc2_width(R), CB);
  with_vector_width<T>(vector_width<T>(C, {x, y}), [&](auto vc) {
    constexpr int V = decltype(vc)::value;
    const int64_t total = N * P * C;
    ADNN_LAUNCH((se_scale_kernel<T, V>), grid_for(total / V), dim3(256), 0, stream, x,
                static_cast<const A*>(gate), y, total / V, C, div_index(total, P * C), div_index(total, C));
  });
}

}  // namespace adnn::kernels
