#pragma once
// The gemm family's plan (host side): how the operands of a batched product are handed to a
// row-major GEMM, shared by the CPU bmm (src/cpu/gemm.cpp) and the CUDA bmm (src/cuda/gemm.cpp).
#include <adnn/core/tensor.hpp>

#include <algorithm>

namespace adnn::common {

// How a 3-D operand's last two dims (rows, cols) can be handed to a row-major GEMM:
// row-major gives (trans = false, ld), column-major (trans = true, ld); false when neither.
inline bool gemm_layout(const Tensor& t, bool& trans, int64_t& ld) {
  const int64_t rows = t.size(1), cols = t.size(2), sr = t.stride(1), sc = t.stride(2);
  if ((sc == 1 || cols == 1) && (sr >= std::max<int64_t>(cols, 1) || rows == 1)) {
    trans = false;
    ld = rows == 1 ? std::max<int64_t>(cols, 1) : sr;
    return true;
  }
  if ((sr == 1 || rows == 1) && (sc >= std::max<int64_t>(rows, 1) || cols == 1)) {
    trans = true;
    ld = cols == 1 ? std::max<int64_t>(rows, 1) : sc;
    return true;
  }
  return false;
}

// a (B, M, K) · b (B, K, N): each operand as GEMM sees it (made contiguous only when its last
// two dims are neither row- nor column-major).
struct BmmPlan {
  Tensor a, b;
  bool ta = false, tb = false;
  int64_t lda = 0, ldb = 0;
  int64_t B = 0, M = 0, N = 0, K = 0;
};
inline BmmPlan bmm_plan(const Tensor& a, const Tensor& b) {
  BmmPlan p;
  p.a = a;
  p.b = b;
  if (!gemm_layout(p.a, p.ta, p.lda)) {
    p.a = a.contiguous();
    gemm_layout(p.a, p.ta, p.lda);
  }
  if (!gemm_layout(p.b, p.tb, p.ldb)) {
    p.b = b.contiguous();
    gemm_layout(p.b, p.tb, p.ldb);
  }
  p.B = p.a.size(0);
  p.M = p.a.size(1);
  p.K = p.a.size(2);
  p.N = p.b.size(2);
  return p;
}

}  // namespace adnn::common
