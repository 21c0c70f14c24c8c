// CPU twin of kernels/reduce.cuh: row reductions (sum, max, min) and argmax.
#include <cmath>
#include <limits>

#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

template <class T>
static void reduce_rows_t(ReduceOp op, const T* x, T* out, int64_t rows, int64_t R) {
#pragma omp parallel for schedule(static) if (rows * R > 32768 && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * R;
    if (op == ReduceOp::sum) {
      // pairwise-ish: 8 accumulators, in double for f32 rows that are long
      double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 8 <= R; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += double(p[i + k]);
      double s = 0;
      for (; i < R; ++i) s += double(p[i]);
      for (int k = 0; k < 8; ++k) s += acc[k];
      out[r] = T(s);
    } else {
      T m = R ? p[0] : (op == ReduceOp::max ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity());
      for (int64_t i = 1; i < R; ++i) {
        T v = p[i];
        if (v != v) { m = v; break; }
        m = op == ReduceOp::max ? (v > m ? v : m) : (v < m ? v : m);
      }
      out[r] = m;
    }
  }
}

void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  switch (x.dtype()) {
    case DType::f32: return reduce_rows_t(op, x.data_ptr<float>(), out.data_ptr<float>(), rows, R);
    case DType::f64: return reduce_rows_t(op, x.data_ptr<double>(), out.data_ptr<double>(), rows, R);
    default: ADNN_FAIL("reduce: unsupported dtype ", x.desc());
  }
}

void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
  int64_t* o = out.data_ptr<int64_t>();
  auto run = [&](auto* p) {
#pragma omp parallel for schedule(static) if (rows * R > 32768)
    for (int64_t r = 0; r < rows; ++r) {
      auto* q = p + r * R;
      int64_t best = 0;
      for (int64_t i = 1; i < R; ++i)
        if (q[i] > q[best] || (q[i] != q[i] && q[best] == q[best])) best = i;
      o[r] = best;
    }
  };
  switch (x.dtype()) {
    case DType::f32: return run(x.data_ptr<float>());
    case DType::f64: return run(x.data_ptr<double>());
    case DType::i64: return run(x.data_ptr<int64_t>());
    case DType::i32: return run(x.data_ptr<int32_t>());
    default: ADNN_FAIL("argmax: unsupported dtype ", x.desc());
  }
}

}  // namespace adnn::cpu
