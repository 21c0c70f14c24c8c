// The softmax family's launchers (kernels/softmax.cuh).
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/softmax.cuh"

namespace adnn::cuda {

using namespace launch_detail;

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log) {
  float_types(x.dtype(), "softmax", [&](auto tag) {
    using T = decltype(tag);
    k::launch_softmax<T>(ptr<T>(x), ptr<T>(y), outer, D, inner, log, stream());
  });
}
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D, int64_t inner,
                      bool log) {
  float_types(y.dtype(), "softmax backward", [&](auto tag) {
    using T = decltype(tag);
    k::launch_softmax_backward<T>(ptr<T>(g), ptr<T>(y), ptr<T>(gx), outer, D, inner, log, stream());
  });
}

}  // namespace adnn::cuda
