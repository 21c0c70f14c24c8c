// The gemm family on the device: batched products through cuBLAS (the CPU BLAS under the
// emulator), operands laid out by common::bmm_plan.
#include "cuda/backend.hpp"
#include "common/gemm.hpp"
#include "cuda/launch.hpp"


namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- GEMM
// One strided-batched cuBLASLt call (the CPU reference with the same precision semantics under
// the emulator), TF32 for f32 when allow_tf32().
// cuBLASLt fuses bias and bias+ReLU; its GELU is the tanh form, so bias+GELU (erf, torch's
// default) runs as a bias epilogue into z (`pre`, or c) and one elementwise pass z -> c.
// A bias gradient (the sums of a's rows) rides on cuBLASLt's BGRADB epilogue; where cuBLASLt
// has no such algorithm for the problem, the product runs plain and a reduction sums a.
void bmm(const Tensor& a, const Tensor& b, const Tensor& c, const BmmEpilogue& e) {
  const common::BmmPlan p = common::bmm_plan(a, b);
  const GemmMath math = allow_tf32() ? GemmMath::tf32 : GemmMath::exact;
  if (e.bias_grad.defined()) {
    GemmDesc d = common::bmm_desc(p, c, e, math);  // checks the bias gradient's shape
    if (gemm_ex(d)) return;
    d.bias_grad = nullptr;
    gemm_ex(d);
    // Σ_k a[0, m, k]: the columns of a stored (K, M) (transposed a), else the rows of (M, K)
    const bool half_type = a.dtype() == DType::f16 || a.dtype() == DType::bf16;
    const Tensor out = half_type ? empty({p.M}, TensorOptions(DType::f32, kCUDA)) : e.bias_grad;  // (M)
    const Tensor a2 = p.a.squeeze(0);                                                             // (M, K)
    if (p.K == 0)
      fill(out, 0.0);
    else if (p.ta)
      reduce_cols(ReduceOp::sum, a2.transpose(0, 1).contiguous(), out, 1, p.K, p.M);  // (K, M)
    else
      reduce_rows(ReduceOp::sum, a2.contiguous(), out, p.M, p.K);
    if (half_type) copy(out, e.bias_grad);  // reductions of 16-bit tensors write f32
    return;
  }
  const bool split = e.kind == GemmEpilogue::bias_gelu || (e.pre.defined() && e.kind != GemmEpilogue::none);
  if (!split) {
    gemm_ex(common::bmm_desc(p, c, e, math));
    return;
  }
  ADNN_CHECK(e.kind != GemmEpilogue::bias_relu, "matmul (cuda): the pre-activation of bias+ReLU is not kept (backward "
             "reads the output)");
  const Tensor z = e.pre.defined() ? e.pre : c;  // (B, M, N)
  BmmEpilogue eb{GemmEpilogue::bias, e.bias, Tensor(), Tensor()};
  gemm_ex(common::bmm_desc(p, z, eb, math));
  if (e.kind == GemmEpilogue::bias_gelu) unary(UnaryOp::gelu, z, c, 0, 0);
}

}  // namespace adnn::cuda
