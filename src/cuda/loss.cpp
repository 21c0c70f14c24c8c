// The loss family's launcher (kernels/loss.cuh): the fused compound loss.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/loss.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- losses
void compound_loss(const Tensor& logits, const Tensor& features, const Tensor& targets, const Tensor& labels,
                   const Tensor& centers, const Tensor& prior, const Tensor& weights, const Tensor& wsum,
                   const Tensor& grad_logits, const Tensor& grad_features, const Tensor& terms,
                   const CompoundParams& P) {
  if (P.B == 0) return;
  ADNN_LAUNCH(k::compound_loss_kernel<0>, dim3(unsigned(P.B)), dim3(32), 0, stream(), ptr<float>(logits),
              ptr<float>(features), ptr<float>(targets), ptr<int64_t>(labels), ptr<float>(centers), ptr<float>(prior),
              ptr<float>(weights), ptr<float>(wsum), ptr<float>(grad_logits), ptr<float>(grad_features),
              ptr<double>(terms), P);
}

}  // namespace adnn::cuda
