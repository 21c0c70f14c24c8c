// The loss family's launcher (kernels/loss.cuh): the fused compound loss.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/loss.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- losses
void compound_loss(const Tensor& logits, const Tensor& features, const Tensor& targets, const Tensor& labels,
                   const Tensor& centers, const Tensor& prior, const Tensor& weights, const Tensor& wsum,
                   const Tensor& grad_logits, const Tensor& grad_features, const Tensor& terms, const Tensor& bad_label,
                   const CompoundParams& P) {
  if (P.B == 0) return;
  dispatch::compound_types(logits.dtype(), features.dtype(), "cuda", [&](auto zt, auto ft, auto tag) {
    using SZ = decltype(zt);
    using SF = decltype(ft);
    using T = decltype(tag);
    ADNN_LAUNCH((k::compound_loss_kernel<kt<SZ>, kt<SF>, T>), dim3(unsigned(P.B)), dim3(32), 0, stream(),
                ptr<SZ>(logits), ptr<SF>(features), ptr<T>(targets), ptr<int64_t>(labels), ptr<T>(centers),
                ptr<T>(prior), ptr<T>(weights), ptr<T>(wsum), ptr<T>(grad_logits), ptr<T>(grad_features),
                ptr<double>(terms), ptr<int64_t>(bad_label), P);
  });
}

}  // namespace adnn::cuda
