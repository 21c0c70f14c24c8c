// The se family's launcher (kernels/se.cuh): squeeze-excite forward (pool, FC1 and FC2 over
// (sample, slice) grids, one wide scale).
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/se.cuh"

namespace adnn::cuda {

using namespace launch_detail;

void squeeze_excite_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& pooled, const Tensor& logits, const Tensor& y, int64_t N, int64_t P, int64_t C, int64_t R) {
  // x, y and the weights in T (f16/bf16 natively); pooled and logits in acc_t<T>
  storage_types(x.dtype(), "squeeze_excite", [&](auto tag) {
    using T = decltype(tag);
    using A = k::acc_t<kt<T>>;
    const int64_t S = k::position_slices(N, P, C);
    Tensor part = device_acc<A>(S > 1 ? N * S * C : 0);  // se_pool's slice sums when P is split
    Tensor hidden = device_acc<A>(N * R);               // FC1's output, SiLU applied
    Tensor gate = device_acc<A>(N * C);                 // σ of the logits, for the scale
    k::launch_squeeze_excite(ptr<T>(x), ptr<T>(w1), ptr<T>(b1), ptr<T>(w2), ptr<T>(b2), ptr<A>(pooled), ptr<A>(logits),
                             ptr<A>(part), ptr<A>(hidden), ptr<A>(gate), ptr<T>(y), N, P, C, R, stream());
  });
}

}  // namespace adnn::cuda
