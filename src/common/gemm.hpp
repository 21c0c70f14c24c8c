#pragma once
// The gemm family's plan (host side): how the operands of a batched product are handed to a
// row-major GEMM, shared by the CPU bmm (src/cpu/gemm.cpp) and the CUDA bmm (src/cuda/gemm.cpp).
#include <adnn/core/tensor.hpp>
#include <adnn/ops/gemm.hpp>

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

// The epilogue of a bmm entry: bias (N) in c's dtype (undefined: none), the activation, and
// `pre` (like c) to keep the activation's input for backward (undefined: not kept); or, with
// kind none and B == 1, `bias_grad` (M) in c's dtype: the sums of a's rows, Σ_k a[0, m, k]
// (GemmDesc::bias_grad; undefined: not computed).
struct BmmEpilogue {
  GemmEpilogue kind = GemmEpilogue::none;
  Tensor bias, pre, bias_grad;
};

// The plan as one strided-batched GemmDesc writing c (B, M, N) contiguous.
inline GemmDesc bmm_desc(const BmmPlan& p, const Tensor& c, const BmmEpilogue& e, GemmMath math) {
  if (e.bias_grad.defined())
    ADNN_CHECK(e.kind == GemmEpilogue::none && !e.pre.defined() && p.B == 1 && e.bias_grad.numel() == p.M &&
                   e.bias_grad.dtype() == c.dtype() && e.bias_grad.is_contiguous(),
               "matmul: a bias gradient needs one product without an epilogue and a contiguous ", p.M, "-element ",
               dtype_name(c.dtype()), " tensor, got ", e.bias_grad.desc(), " for a batch of ", p.B);
  GemmDesc d;
  d.dtype = c.dtype();
  d.ta = p.ta;
  d.tb = p.tb;
  d.M = p.M;
  d.N = p.N;
  d.K = p.K;
  d.lda = p.lda;
  d.ldb = p.ldb;
  d.ldc = p.N;
  d.batch = p.B;
  d.stride_a = p.B > 1 ? p.a.stride(0) : 0;
  d.stride_b = p.B > 1 ? p.b.stride(0) : 0;
  d.stride_c = p.M * p.N;
  d.A = p.a.data_ptr();
  d.B = p.b.data_ptr();
  d.C = c.data_ptr();
  d.epilogue = e.kind;
  d.bias = e.bias.defined() ? e.bias.data_ptr() : nullptr;
  d.pre = e.pre.defined() ? e.pre.data_ptr() : nullptr;
  d.bias_grad = e.bias_grad.defined() ? e.bias_grad.data_ptr() : nullptr;
  d.math = math;
  return d;
}

}  // namespace adnn::common
