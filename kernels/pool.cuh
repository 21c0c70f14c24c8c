#pragma once
// 2-D pooling, NHWC, forward and backward.
//
// max_pool: y[n, oh, ow, c] = max over the window of x (padding never wins); the argmax holds
//   the winner's offset inside its window (common::window_offset) for the backward pass, in
//   uint8 for windows of up to 256 pixels, else int32 (I). avg_pool: mean over the window, divisor as
//   torch (count_include_pad clips the window to the padded extent; otherwise only real
//   pixels count).
// Layout: x (N, H, W, C), y (N, OH, OW, C), contiguous. Storage T: f32, f64 or f16/bf16
//   natively (compared and summed in A = acc_t<T>, each output rounded once).
// Threads: forward, one thread per output element (c fastest: coalesced); backward (max and
//   avg), one thread per input element gathering the outputs whose window covers it (c
//   fastest; no atomics, deterministic). The max backward scattered with atomicAdd before:
//   a warp's 32 channels went to up to kh·kw different input pixels, 61 % coalescing on the
//   VGG nano step; the gather reads ⌈kh/sh⌉·⌈kw/sw⌉ outputs per input element (one for the
//   2×2/2 pools of vgg_nano), each load and store along c. Measured on the emulated nano step while
//   it still ran the 2×2/2 pools (since taken by the tiled kernel below): 83.6 % coalescing (61 %
//   with the scatter): the argmax and gx requests are full; gy is loaded only by the lanes whose pixel
//   won (about one in four for 2×2 windows), which uses a quarter of its sectors — the same
//   sectors a full load would fetch (a load by every lane, or a select, compiles back to this
//   one or would let a NaN of another window in).
// Cost: forward reads kh·kw·|y| elements (mostly cached), writes |y| (+ |y| 1-byte window
//   offsets for max: an eighth of torch's int64 indices); backward reads |gy| (+ offsets) once
//   per covering window, writes |gx|.
//   Tiled windows (stride = kernel): the max backward is max_pool_backward_tiled_kernel, one
//   thread per output writing its window: 100 % coalescing, 1.355 MB fetched on the nano step
//   (docs/results/2026-11-30-kernel-report-adnn_fer_nano.md; the gather fetched 4.0 MB for the
//   same 1.355 MB compulsory).
// Registers (ptxas, sm_90, scripts/kernel-report.sh): max backward gather 56 with uint8
//   offsets (64 with int32; 50% theoretical occupancy at 256 threads), tiled 62, forward 62-64.
#include "common.cuh"
#include "loops.cuh"
#include "common/pool.hpp"

namespace adnn::kernels {

template <class T, class I>
__global__ void max_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, I* __restrict__ am, PoolGeom g, NhwcIndex ix) {
  using A = acc_t<T>;
  for_each_nhwc(ix, [&](int64_t i, int64_t n, int64_t oh, int64_t ow, int64_t c) {
    A best = -INFINITY;
    int64_t arg = -1;  // the winner's window offset (common::window_offset)
    for_each_window_pixel(g, oh, ow, [&](int64_t h, int64_t w) {
      const A v = load_as<A>(x[((n * g.H + h) * g.W + w) * g.C + c]);
      if (v > best || arg < 0 || v != v) {
        best = v;
        arg = window_offset(g, oh, ow, h, w);
      }
    });
    y[i] = store_as<T>(best);  // a value of x: exact in T
    am[i] = I(arg);
  });
}

// Gather: one thread per input element (n, h, w, c) sums gy over the outputs whose window
// covers (h, w) and whose argmax is (h, w), in output order (the CPU twin's order: the same
// bits). Every gx element is written once, so no atomics and no reliance on a zero fill.
template <class T, class I>
__global__ void max_pool_backward_kernel(const T* __restrict__ gy, const I* __restrict__ am, T* __restrict__ gx,
                                         PoolGeom g, NhwcIndex ix) {
  using A = acc_t<T>;
  for_each_nhwc(ix, [&](int64_t i, int64_t n, int64_t h, int64_t w, int64_t c) {
    A s = 0;
    // (h, w)'s window offset in output (oh, ow)'s window, in 32 bits (< kh·kw)
    const int hk = int((h + g.ph) * g.kw + w + g.pw), shk = int(g.sh * g.kw), sw = int(g.sw);
    const I* amn = am + n * g.OH * g.OW * g.C + c;
    const T* gyn = gy + n * g.OH * g.OW * g.C + c;
    for_each_covering_output(g, h, w, [&](int64_t oh, int64_t ow) {
      const int64_t o = (oh * g.OW + ow) * g.C;
      if (int(amn[o]) == hk - int(oh) * shk - int(ow) * sw) s += load_as<A>(gyn[o]);
    });
    gx[i] = store_as<T>(s);
  });
}

// Tiled windows (stride == kernel, the 2×2/2 pools of vgg_nano): one thread per output
// element (n, oh, ow, c) writes its whole window of gx — A(0) + gy (the gather's sum, the same
// bits) at the winner, 0 elsewhere — and the last output row and column also clear the input
// rows and columns the floor leaves out of every window. Every gx element is written once (no
// atomics, no zero fill) and every request is a full warp along c: the gather above loads gy
// only in the lanes whose pixel won (a quarter of its sectors for 2×2 windows).
template <class T, class I>
__global__ void max_pool_backward_tiled_kernel(const T* __restrict__ gy, const I* __restrict__ am, T* __restrict__ gx,
                                               PoolGeom g, NhwcIndex ix) {
  using A = acc_t<T>;
  for_each_nhwc(ix, [&](int64_t i, int64_t n, int64_t oh, int64_t ow, int64_t c) {
    const int win = int(am[i]);
    const T v = store_as<T>(A(0) + load_as<A>(gy[i])), zero = store_as<T>(A(0));
    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;  // the window's corner (may be padding)
    const int64_t he = h0 + g.kh < g.H ? h0 + g.kh : g.H, we = w0 + g.kw < g.W ? w0 + g.kw : g.W;
    const int64_t h1 = oh == g.OH - 1 ? g.H : he, w1 = ow == g.OW - 1 ? g.W : we;
    T* gxn = gx + n * g.H * g.W * g.C + c;
    for (int64_t h = h0 > 0 ? h0 : 0; h < h1; ++h)
      for (int64_t w = w0 > 0 ? w0 : 0; w < w1; ++w) {
        const bool mine = h < h0 + g.kh && w < w0 + g.kw && int((h - h0) * g.kw + (w - w0)) == win;
        gxn[(h * g.W + w) * g.C] = mine ? v : zero;
      }
  });
}
inline bool max_pool_backward_is_tiled(const PoolGeom& g) {
  return g.sh == g.kh && g.sw == g.kw;
}

template <class T>
__global__ void avg_pool_forward_kernel(const T* __restrict__ x, T* __restrict__ y, PoolGeom g, NhwcIndex ix) {
  using A = acc_t<T>;
  for_each_nhwc(ix, [&](int64_t i, int64_t n, int64_t oh, int64_t ow, int64_t c) {
    A s = 0;
    for_each_window_pixel(g, oh, ow,
                          [&](int64_t h, int64_t w) { s += load_as<A>(x[((n * g.H + h) * g.W + w) * g.C + c]); });
    y[i] = store_as<T>(s * (A(1) / A(pool_divisor(g, oh, ow))));
  });
}

template <class T>
__global__ void avg_pool_backward_kernel(const T* __restrict__ gy, T* __restrict__ gx, PoolGeom g, NhwcIndex ix) {
  using A = acc_t<T>;
  for_each_nhwc(ix, [&](int64_t i, int64_t n, int64_t h, int64_t w, int64_t c) {
    A s = 0;
    for_each_covering_output(g, h, w, [&](int64_t oh, int64_t ow) {
      s += load_as<A>(gy[((n * g.OH + oh) * g.OW + ow) * g.C + c]) / A(pool_divisor(g, oh, ow));
    });
    gx[i] = store_as<T>(s);
  });
}

}  // namespace adnn::kernels
