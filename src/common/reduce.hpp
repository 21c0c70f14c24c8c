#pragma once
// Reduction helpers shared by the CPU twins and the kernels (kernels/reduce.cuh, cbam.cuh).
#include "common/hd.hpp"

#include <adnn/ops/enums.hpp>
#include <limits>

namespace adnn::common {

// a ⊕ b for ReduceOp op: the sum, or the larger/smaller value with NaN propagating (the
// first NaN seen wins). One definition for the kernels and their CPU twins.
template <class A>
ADNN_HD A reduce_combine(ReduceOp op, A a, A b) {
  if (op == ReduceOp::sum) return a + b;
  if (a != a) return a;
  if (b != b) return b;
  return op == ReduceOp::max ? (a > b ? a : b) : (a < b ? a : b);
}

// The identity of op: 0; for max −∞ (the lowest value of an integer type), for min +∞ (the
// highest).
template <class A>
ADNN_HD A reduce_identity(ReduceOp op) {
  if (op == ReduceOp::sum) return A(0);
  if constexpr (std::is_integral_v<A>)
    return op == ReduceOp::max ? std::numeric_limits<A>::lowest() : std::numeric_limits<A>::max();
  else
    return A(op == ReduceOp::max ? -INFINITY : INFINITY);
}

// Keeps (value, index) of the larger value, the smaller index on ties; NaN is larger than
// every number and two NaNs tie, so the first NaN wins as in torch.argmax. Commutative, so
// merges in any order (a shuffle butterfly, lanes then rows) agree with the sequential scan.
// Index −1 means "nothing seen yet".
template <class A>
ADNN_HD void argmax_merge(A& best, int64_t& bi, A v, int64_t vi) {
  if (vi < 0) return;
  const bool v_nan = v != v, best_nan = best != best;
  const bool take =
      bi < 0 || (v_nan && !best_nan) || (v_nan == best_nan && (v > best || ((v == best || v_nan) && vi < bi)));
  if (take) {
    best = v;
    bi = vi;
  }
}

}  // namespace adnn::common
