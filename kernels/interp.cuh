#pragma once
// Separable resampling (nearest, bilinear, bicubic), NHWC, forward and backward; and the
// affine warp (warp_affine) with the same interpolation modes.
//
// Each output row oy has taps_y (index, weight) pairs into the input rows, each output column
// likewise: common::interp_axis_taps computes them in the thread (1, 2 or 4 per axis; the
// CPU twin calls the same function), so no tap table exists or travels to the device and
// the taps equal the CPU's bit for bit (no fused multiply-add in them: common::mul_rn;
// scripts/check-contraction.sh); the sums over them may fuse, so outputs agree up to rounding;
// y[n, oy, ox, c] = Σ_i Σ_j wy_i · wx_j · x[n, iy_i, ix_j, c].
// Layout: x (N, H, W, C), y (N, OH, OW, C), contiguous.
// Threads: forward, one thread per output element (c fastest); backward, one thread per
//   output element scattering its taps with atomicAdd (taps of neighbouring outputs overlap).
// Cost: forward reads taps_y·taps_x input values per output (cached), writes |y|; backward
//   the same number of atomic adds; the taps cost ~20 flops per axis and thread.
// Dtypes: T = f32, f64, or f16/bf16 read and written natively with the sums in f32 (acc_t;
//   the warp sums in f64 for every dtype, rounded to f32 and then to the 16-bit type);
//   the backward passes read gy in G and add into a gx of A = acc_t<G> (f32 for a 16-bit gy:
//   the op layer rounds the accumulated gradient once — a 16-bit atomic sum would round at
//   every add).
// warp_affine (common::WarpGeom): x (N, H, W, C), y (B, OH, OW, C), m (B, 6) f64, contiguous.
//   Forward, one thread per output element (c fastest): the source point from m, then up to
//   4×4 taps of common::warp_axis_taps (outside taps read 0), both in common::warp_taps,
//   which the CPU twin calls too; reads 16 values per output.
//   Backward, one thread per output element scattering its taps with atomicAdd (outputs of
//   several crops of one image, and neighbouring outputs, share input pixels).
//   sm_90 (docs/results/kernel-resources-sm90.md): the tap loops have constant trip counts
//   (unrolled; the 136-byte WarpTaps went to the stack when the 32-bit index path doubled
//   the loop body); forward 64 registers under __launch_bounds__(256, 4), 50 % theoretical
//   occupancy; backward 64–66 registers, 38–50 % (bounding it to 64 spilled 4 bytes).
#include "common.cuh"
#include "loops.cuh"
#include "common/interp.hpp"

namespace adnn::kernels {

template <class T>
__global__ void interp_forward_kernel(const T* __restrict__ x, T* __restrict__ y, InterpGeom g, NhwcIndex ix) {
  using A = acc_t<T>;
  const int64_t H = g.y.in, W = g.x.in;
  for_each_nhwc(ix, [&](int64_t i, int64_t n, int64_t oy, int64_t ox, int64_t c) {
    A s = 0;
    common::for_each_interp_tap(
        g, oy, ox, [&](int64_t h, int64_t w, double wt) { s += A(wt) * A(x[((n * H + h) * W + w) * g.C + c]); });
    y[i] = T(s);
  });
}

template <class G, class A>
__global__ void interp_backward_kernel(const G* __restrict__ gy, A* __restrict__ gx, InterpGeom g, NhwcIndex ix) {
  const int64_t H = g.y.in, W = g.x.in;
  for_each_nhwc(ix, [&](int64_t i, int64_t n, int64_t oy, int64_t ox, int64_t c) {
    const A go = A(gy[i]);
    common::for_each_interp_tap(g, oy, ox, [&](int64_t h, int64_t w, double wt) {
      atomicAdd(gx + ((n * H + h) * W + w) * g.C + c, A(wt) * go);
    });
  });
}

// Calls f(offset into x, weight) for each in-image tap of output (b, oy, ox, c) of image n.
template <class F>
__device__ __forceinline__ void for_each_warp_tap(const double* m, int64_t b, int64_t n, int64_t ox, int64_t oy,
                                                  int64_t c, const WarpGeom& g, F&& f) {
  const common::WarpTaps t = common::warp_taps(m, b, ox, oy, g);
  // constant trip counts, fully unrolled: the taps stay in registers (with loops to ny/nx the
  // arrays are indexed at run time and ptxas puts the 136-byte WarpTaps on the stack)
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    if (a >= t.ny || t.iy[a] < 0) continue;
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (k < t.nx && t.ix[k] >= 0) f(((n * g.H + t.iy[a]) * g.W + t.ix[k]) * g.C + c, t.wy[a] * t.wx[k]);
  }
}

template <class T>
__global__ void __launch_bounds__(256, 4)
    warp_affine_forward_kernel(const T* __restrict__ x, const double* __restrict__ m, T* __restrict__ y, WarpGeom g,
                               NhwcIndex ix) {
  for_each_nhwc(ix, [&](int64_t i, int64_t b, int64_t oy, int64_t ox, int64_t c) {
    double s = 0;
    for_each_warp_tap(m, b, g.N == 1 ? 0 : b, ox, oy, c, g,
                      [&](int64_t off, double w) { s += w * double(acc_t<T>(x[off])); });
    y[i] = T(acc_t<T>(s));
  });
}

template <class G, class A>
__global__ void warp_affine_backward_kernel(const G* __restrict__ gy, const double* __restrict__ m, A* __restrict__ gx,
                                            WarpGeom g, NhwcIndex ix) {
  for_each_nhwc(ix, [&](int64_t i, int64_t b, int64_t oy, int64_t ox, int64_t c) {
    const double gv = double(A(gy[i]));
    for_each_warp_tap(m, b, g.N == 1 ? 0 : b, ox, oy, c, g,
                      [&](int64_t off, double w) { atomicAdd(gx + off, A(w * gv)); });
  });
}

}  // namespace adnn::kernels
