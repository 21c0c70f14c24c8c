#pragma once
// Softmax / log-softmax along one dim, forward and backward.
//
// y = exp(x - m) / s along the dim (m the max, s the sum of exp(x - m)); log form
// y = x - m - log s. A row whose entries are all -inf keeps m = 0 (as the CPU twin), so it
// gives NaN only through 0/0, like torch. Backward: gx = y (g - sum(g y)), log form
// gx = g - exp(y) sum(g).
// Layout: contiguous (outer, D, inner).
// Threads: inner == 1 (the common case, softmax over the last dim) and D ≤ 8,192 (2,048 when
//   a row is not 16-byte aligned): softmax_cached — the row held in registers (kernels/rows.cuh:
//   vectors of V = 16 bytes along D, one warp a row and eight rows a block for D ≤ 32·N·V, else
//   up to 512 threads a row), read once, reduced twice there (warp shuffles; shared memory
//   only when a row has several warps), written once. Longer rows: softmax_rows, one block per
//   row, strided passes over D with block reductions between them. inner > 1: one thread per
//   (outer, inner) column walking D with stride inner, so consecutive threads read consecutive
//   addresses.
// Storage: x and gx in X, y and g in Y, math in P: f32/f64 alone, or f16/bf16 natively
//   (loaded widened, math in f32, stored rounded once) with y in the same 16 bits or in f32
//   (autocast's softmax, read from the 16-bit input itself: no widened copy).
// Cost: softmax_cached reads the row once and writes it once, 2·D·sizeof(T) per row (the
//   compulsory bytes), one exp per element (two for log-softmax); its backward reads g and y
//   once and writes gx once. softmax_rows (long rows) reads the row 3 times (max, sum, write):
//   4·D·sizeof(T) per row; its backward reads g and y twice.
// Before (2026-12-04, H200, docs/results/2026-12-04c-nvidia-h200.md): one block of 32–256
//   threads a row for every D, 4-byte loads: 12 % of the device copy at 25,088 rows of 49 (the
//   paper's attention scores), 41 % at 4096 × 4096. The cached kernels are not yet timed on a GPU.
#include "reduce.cuh"
#include "rows.cuh"

namespace adnn::kernels {

// inner == 1 and the row fits in registers (row_geom, kernels/rows.cuh): the row is read
// once into registers (vectors of V along D), reduced twice there (max, then the sum of
// exponentials, each a warp-shuffle or block reduction), and written once.
template <class X, class Y, class P, int V, int N>
__global__ void softmax_cached_kernel(const X* __restrict__ x, Y* __restrict__ y, int64_t rows, int64_t D, bool log_) {
  ADNN_SHARED(P, scratch, [8 * 32]);
  if (row_block_past_end(rows)) return;
  const int64_t r = cached_row(rows);
  const bool valid = r >= 0;
  const int64_t ro = valid ? r * D : 0;
  P v[N * V];  // the thread's values of the row; -inf where it holds none
  load_row<V, N>(x + ro, D, valid, P(-INFINITY), v);
  P m = -INFINITY;
ADNN_UNROLL
  for (int s = 0; s < N * V; ++s) m = v[s] > m ? v[s] : m;
  m = row_reduce<P>(ReduceOp::max, m, P(-INFINITY), &scratch[threadIdx.y * 32]);
  if (m == P(-INFINITY)) m = 0;
  P sum = 0;
  if (log_) {
ADNN_UNROLL
    for (int s = 0; s < N * V; ++s) sum += math::exp(v[s] - m);
  } else {
ADNN_UNROLL
    for (int s = 0; s < N * V; ++s) {
      v[s] = math::exp(v[s] - m);
      sum += v[s];
    }
  }
  sum = row_reduce<P>(ReduceOp::sum, sum, P(0), &scratch[threadIdx.y * 32]);
  const P ls = m + math::log(sum), inv = P(1) / sum;
  store_row<V, N>(y + ro, D, valid, [&](int s) { return log_ ? v[s] - ls : v[s] * inv; });
}

template <class X, class Y, class P, int V, int N>
__global__ void softmax_backward_cached_kernel(const Y* __restrict__ g, const Y* __restrict__ y, X* __restrict__ gx,
                                               int64_t rows, int64_t D, bool log_) {
  ADNN_SHARED(P, scratch, [8 * 32]);
  if (row_block_past_end(rows)) return;
  const int64_t r = cached_row(rows);
  const bool valid = r >= 0;
  const int64_t ro = valid ? r * D : 0;
  P gv[N * V], yv[N * V];  // 0 where the thread holds nothing
  load_row<V, N>(g + ro, D, valid, P(0), gv);
  load_row<V, N>(y + ro, D, valid, P(0), yv);
  P s = 0;
ADNN_UNROLL
  for (int k = 0; k < N * V; ++k) s += log_ ? gv[k] : gv[k] * yv[k];
  s = row_reduce<P>(ReduceOp::sum, s, P(0), &scratch[threadIdx.y * 32]);
  store_row<V, N>(gx + ro, D, valid,
                  [&](int k) { return log_ ? gv[k] - math::exp(yv[k]) * s : yv[k] * (gv[k] - s); });
}

template <class X, class Y, class P>
__global__ void softmax_rows_kernel(const X* __restrict__ x, Y* __restrict__ y, int64_t rows, int64_t D, bool log_) {
  ADNN_SHARED(P, scratch, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const X* xr = x + r * D;
  Y* yr = y + r * D;
  P m = -INFINITY;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    const P v = load_as<P>(xr[k]);
    m = v > m ? v : m;
  }
  m = block_max(m, scratch);
  if (m == P(-INFINITY)) m = 0;
  P s = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) s += math::exp(load_as<P>(xr[k]) - m);
  s = block_sum(s, scratch);
  if (log_) {
    const P ls = m + math::log(s);
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) yr[k] = store_as<Y>(load_as<P>(xr[k]) - ls);
  } else {
    const P inv = P(1) / s;
    for (int64_t k = threadIdx.x; k < D; k += blockDim.x) yr[k] = store_as<Y>(math::exp(load_as<P>(xr[k]) - m) * inv);
  }
}

template <class X, class Y, class P>
__global__ void softmax_backward_rows_kernel(const Y* __restrict__ g, const Y* __restrict__ y, X* __restrict__ gx,
                                             int64_t rows, int64_t D, bool log_) {
  ADNN_SHARED(P, scratch, [32]);
  const int64_t r = blockIdx.x + int64_t(blockIdx.y) * gridDim.x;
  if (r >= rows) return;
  const Y* gr = g + r * D;
  const Y* yr = y + r * D;
  P s = 0;
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x)
    s += log_ ? load_as<P>(gr[k]) : load_as<P>(gr[k]) * load_as<P>(yr[k]);
  s = block_sum(s, scratch);
  for (int64_t k = threadIdx.x; k < D; k += blockDim.x) {
    const P gv = load_as<P>(gr[k]), yv = load_as<P>(yr[k]);
    gx[r * D + k] = store_as<X>(log_ ? gv - math::exp(yv) * s : yv * (gv - s));
  }
}

// inner > 1: one thread per (outer, inner) column
template <class X, class Y, class P>
__global__ void softmax_cols_kernel(const X* __restrict__ x, Y* __restrict__ y, int64_t outer, int64_t D, int64_t inner,
                                    bool log_) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= outer * inner) return;
  const int64_t base = (c / inner) * D * inner + c % inner;
  P m = -INFINITY;
  for (int64_t d = 0; d < D; ++d) {
    const P v = load_as<P>(x[base + d * inner]);
    m = v > m ? v : m;
  }
  if (m == P(-INFINITY)) m = 0;
  P s = 0;
  for (int64_t d = 0; d < D; ++d) s += math::exp(load_as<P>(x[base + d * inner]) - m);
  const P ls = m + math::log(s), inv = P(1) / s;
  for (int64_t d = 0; d < D; ++d) {
    const P v = load_as<P>(x[base + d * inner]);
    y[base + d * inner] = store_as<Y>(log_ ? v - ls : math::exp(v - m) * inv);
  }
}

template <class X, class Y, class P>
__global__ void softmax_backward_cols_kernel(const Y* __restrict__ g, const Y* __restrict__ y, X* __restrict__ gx,
                                             int64_t outer, int64_t D, int64_t inner, bool log_) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= outer * inner) return;
  const int64_t base = (c / inner) * D * inner + c % inner;
  P s = 0;
  for (int64_t d = 0; d < D; ++d) {
    const P gv = load_as<P>(g[base + d * inner]);
    s += log_ ? gv : gv * load_as<P>(y[base + d * inner]);
  }
  for (int64_t d = 0; d < D; ++d) {
    const int64_t k = base + d * inner;
    const P gv = load_as<P>(g[k]), yv = load_as<P>(y[k]);
    gx[k] = store_as<X>(log_ ? gv - math::exp(yv) * s : yv * (gv - s));
  }
}

// x in X, y in Y (X, or f32 for an f16/bf16 X), math in P (acc_t<X>).
template <class X, class Y, class P>
void launch_softmax(const X* x, Y* y, int64_t outer, int64_t D, int64_t inner, bool log, Stream stream) {
  if (outer * inner == 0) return;
  constexpr int vmax = 16 / int(sizeof(X));
  const RowGeom rg = inner == 1 ? row_geom(outer, D, vmax, {{x, sizeof(X)}, {y, sizeof(Y)}}) : RowGeom{};
  if (rg.fits)
    with_row_geom<vmax>(rg, [&](auto vc, auto nc) {
      constexpr int V = decltype(vc)::value, N = decltype(nc)::value;
      ADNN_LAUNCH((softmax_cached_kernel<X, Y, P, V, N>), row_blocks(rg), dim3(rg.tx, rg.ty), 0, stream, x, y, outer, D,
                  log);
    });
  else if (inner == 1)
    ADNN_LAUNCH((softmax_rows_kernel<X, Y, P>), row_grid(outer), dim3(row_threads(D)), 0, stream, x, y, outer, D, log);
  else
    ADNN_LAUNCH((softmax_cols_kernel<X, Y, P>), dim3(ceil_div(outer * inner, 128)), dim3(128), 0, stream, x, y, outer,
                D, inner, log);
}

// g and y in Y, gx in X.
template <class X, class Y, class P>
void launch_softmax_backward(const Y* g, const Y* y, X* gx, int64_t outer, int64_t D, int64_t inner, bool log,
                             Stream stream) {
  if (outer * inner == 0) return;
  constexpr int vmax = 16 / int(sizeof(X));
  const RowGeom rg =
      inner == 1 ? row_geom(outer, D, vmax, {{g, sizeof(Y)}, {y, sizeof(Y)}, {gx, sizeof(X)}}) : RowGeom{};
  if (rg.fits)
    with_row_geom<vmax>(rg, [&](auto vc, auto nc) {
      constexpr int V = decltype(vc)::value, N = decltype(nc)::value;
      ADNN_LAUNCH((softmax_backward_cached_kernel<X, Y, P, V, N>), row_blocks(rg), dim3(rg.tx, rg.ty), 0, stream, g, y,
                  gx, outer, D, log);
    });
  else if (inner == 1)
    ADNN_LAUNCH((softmax_backward_rows_kernel<X, Y, P>), row_grid(outer), dim3(row_threads(D)), 0, stream, g, y, gx,
                outer, D, log);
  else
    ADNN_LAUNCH((softmax_backward_cols_kernel<X, Y, P>), dim3(ceil_div(outer * inner, 128)), dim3(128), 0, stream, g, y,
                gx, outer, D, inner, log);
}

}  // namespace adnn::kernels
