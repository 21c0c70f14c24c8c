// The softmax family's launchers (kernels/softmax.cuh).
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/softmax.cuh"

namespace adnn::cuda {

using namespace launch_detail;

void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log) {
  dispatch::storage_out_and_math_types(x.dtype(), y.dtype(), "softmax", "cuda", [&](auto xt, auto yt, auto pt) {
    using X = decltype(xt);
    using Y = decltype(yt);
    k::launch_softmax<kt<X>, kt<Y>, decltype(pt)>(ptr<X>(x), ptr<Y>(y), outer, D, inner, log, stream());
  });
}
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D, int64_t inner,
                      bool log) {
  dispatch::storage_out_and_math_types(gx.dtype(), y.dtype(), "softmax backward", "cuda",
                                       [&](auto xt, auto yt, auto pt) {
                                         using X = decltype(xt);
                                         using Y = decltype(yt);
                                         k::launch_softmax_backward<kt<X>, kt<Y>, decltype(pt)>(
                                             ptr<Y>(g), ptr<Y>(y), ptr<X>(gx), outer, D, inner, log, stream());
                                       });
}

}  // namespace adnn::cuda
