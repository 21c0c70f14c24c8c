// CPU twin of kernels/reduce.cuh: row and column reductions (sum, max, min) and argmax.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "common/reduce.hpp"
#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

// x in X, out in Y (X, or f32 for a 16-bit x); sums in f64, max/min in P.
template <class X, class Y, class P>
static void reduce_rows_t(ReduceOp op, const X* x, Y* out, int64_t rows, int64_t R) {
#pragma omp parallel for schedule(static) if (rows * R > 32768 && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const X* p = x + r * R;
    if (op == ReduceOp::sum) {
      // pairwise-ish: 8 accumulators, in double for f32 rows that are long
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 8 <= R; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += double(p[i + k]);
      double s = 0;
      for (; i < R; ++i) s += double(p[i]);
      for (int k = 0; k < 8; ++k) s += acc[k];
      out[r] = Y(P(s));
    } else {
      P m = R ? P(p[0]) : common::reduce_identity<P>(op);
      for (int64_t i = 1; i < R && m == m; ++i) m = common::reduce_combine(op, m, P(p[i]));
      out[r] = Y(m);
    }
  }
}

// out[o, i] = reduce_r x[o, r, i] over x contiguous (outer, R, inner), read in place (twin of
// reduce_cols_kernel). Tasks of (o, a chunk of 512 columns, a block of rows), OpenMP over them;
// each walks its rows in order, vectorised along i, sums in f64 (extremes in f64 too: exact).
// R is split into blocks only when the (o, chunk) tasks are few and R is long — a function of
// the shape alone, so the summation order never depends on the thread count — and the block
// partials are then combined in block order.
template <class X, class Y, class P>
static void reduce_cols_t(ReduceOp op, const X* x, Y* out, int64_t outer, int64_t R, int64_t inner) {
  constexpr int64_t kChunk = 512;
  const bool is_sum = op == ReduceOp::sum;
  const int64_t nc = (inner + kChunk - 1) / kChunk;
  const int64_t nb = outer * nc >= 16 || R < 2048 ? 1 : std::min<int64_t>((R + 1023) / 1024, 64);
  const int64_t rb = (R + nb - 1) / nb;
  std::vector<double> part(nb > 1 ? size_t(outer * nb * inner) : 0);  // (outer, nb, inner)
  const double init = is_sum ? 0.0 : double(common::reduce_identity<P>(op));
#pragma omp parallel for collapse(3) schedule(static) if (outer * R * inner > 32768)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t c = 0; c < nc; ++c) {
        const int64_t i0 = c * kChunk, n = std::min(kChunk, inner - i0), r1 = std::min(R, (b + 1) * rb);
        double acc[kChunk];
        for (int64_t i = 0; i < n; ++i) acc[i] = init;
        for (int64_t r = b * rb; r < r1; ++r) {
          const X* row = x + (o * R + r) * inner + i0;
          if (is_sum) {
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) acc[i] += double(row[i]);
          } else {
            for (int64_t i = 0; i < n; ++i) acc[i] = common::reduce_combine<double>(op, acc[i], double(row[i]));
          }
        }
        if (nb == 1)
          for (int64_t i = 0; i < n; ++i) out[o * inner + i0 + i] = Y(P(acc[i]));
        else
          std::copy(acc, acc + n, part.data() + (o * nb + b) * inner + i0);
      }
  if (nb == 1) return;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double a = part[size_t(o * nb * inner + i)];
      for (int64_t b = 1; b < nb; ++b) {
        a = common::reduce_combine<double>(op, a, part[size_t((o * nb + b) * inner + i)]);
      }
      out[o * inner + i] = Y(P(a));
    }
}

void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  dispatch::storage_out_and_math_types(x.dtype(), out.dtype(), "reduce", "cpu", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    reduce_rows_t<X, Y, decltype(pt)>(op, x.data_ptr<X>(), out.data_ptr<Y>(), rows, R);
  });
}

void reduce_cols(ReduceOp op, const Tensor& x, const Tensor& out, int64_t outer, int64_t R, int64_t inner) {
  dispatch::storage_out_and_math_types(x.dtype(), out.dtype(), "reduce", "cpu", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    reduce_cols_t<X, Y, decltype(pt)>(op, x.data_ptr<X>(), out.data_ptr<Y>(), outer, R, inner);
  });
}

void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  int64_t* o = out.data_ptr<int64_t>();
  auto run = [&](auto* p) {
#pragma omp parallel for schedule(static) if (rows * R > 32768)
    for (int64_t r = 0; r < rows; ++r) {
      using V = common::acc_t<std::remove_cv_t<std::remove_pointer_t<decltype(p)>>>;  // f16/bf16: widened
      auto* q = p + r * R;
      int64_t best = 0;
      V bv = V(q[0]);
      for (int64_t i = 1; i < R; ++i) {
        const V c = V(q[i]);
        if (c > bv || (c != c && bv == bv)) best = i, bv = c;
      }
      o[r] = best;
    }
  };
  switch (x.dtype()) {
    case DType::f32: return run(x.data_ptr<float>());
    case DType::f64: return run(x.data_ptr<double>());
    case DType::f16:
      return run(x.data_ptr<half>());
    case DType::bf16:
      return run(x.data_ptr<bfloat16>());
    case DType::i64: return run(x.data_ptr<int64_t>());
    case DType::i32: return run(x.data_ptr<int32_t>());
    default: ADNN_FAIL("argmax: unsupported dtype ", x.desc());
  }
}

}  // namespace adnn::cpu
