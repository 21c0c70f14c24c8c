#pragma once
// Reduction helpers shared by the CPU twins and the kernels (kernels/reduce.cuh, cbam.cuh).
#include "common/hd.hpp"

namespace adnn::common {

// Keeps (value, index) of the larger value, the smaller index on ties; NaN propagates.
// Index −1 means "nothing seen yet".
template <class A>
ADNN_HD void argmax_merge(A& best, int64_t& bi, A v, int64_t vi) {
  if (vi < 0) return;
  const bool take = bi < 0 || (best == best && (v != v || v > best || (v == best && vi < bi)));
  if (take) {
    best = v;
    bi = vi;
  }
}

}  // namespace adnn::common
