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
void bmm(const Tensor& a, const Tensor& b, const Tensor& c, const BmmEpilogue& e) {
  const common::BmmPlan p = common::bmm_plan(a, b);
  const GemmMath math = allow_tf32() ? GemmMath::tf32 : GemmMath::exact;
  const bool split = e.kind == GemmEpilogue::bias_gelu || (e.pre.defined() && e.kind != GemmEpilogue::none);
  if (!split) return gemm_ex(common::bmm_desc(p, c, e, math));
  ADNN_CHECK(e.kind != GemmEpilogue::bias_relu, "matmul (cuda): the pre-activation of bias+ReLU is not kept (backward "
             "reads the output)");
  const Tensor z = e.pre.defined() ? e.pre : c;  // (B, M, N)
  BmmEpilogue eb{GemmEpilogue::bias, e.bias, Tensor()};
  gemm_ex(common::bmm_desc(p, z, eb, math));
  if (e.kind == GemmEpilogue::bias_gelu) unary(UnaryOp::gelu, z, c, 0, 0);
}

}  // namespace adnn::cuda
