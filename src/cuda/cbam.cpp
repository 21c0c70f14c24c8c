// The cbam family's launchers (kernels/cbam.cuh): channel and spatial pools, sigmoid gate.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/cbam.cuh"

namespace adnn::cuda {

using namespace launch_detail;

void channel_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t N, int64_t P, int64_t C) {
  storage_types(x.dtype(), "channel_pool2d", [&](auto tag) {
    using T = decltype(tag);
    using A = k::acc_t<kt<T>>;
    // the slices' (sum, max) and argmax partials when P is split (kernels/cbam.cuh)
    const int64_t S = k::position_slices(N, P, C), np = S > 1 ? N * S * C : 0;
    Tensor part = device_acc<A>(2 * np), part_idx = np ? empty({np}, TensorOptions(DType::i64, kCUDA)) : Tensor();
    k::launch_channel_pool(ptr<T>(x), ptr<T>(out), ptr<int64_t>(argmax), ptr<A>(part), ptr<int64_t>(part_idx), N, P, C,
                           stream());
  });
}
void channel_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t N, int64_t P, int64_t C) {
  storage_types(g.dtype(), "channel_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    k::launch_channel_pool_backward(ptr<T>(g), ptr<int64_t>(argmax), ptr<T>(gx), N, P, C, stream());
  });
}
void spatial_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t M, int64_t C) {
  storage_types(x.dtype(), "spatial_pool2d", [&](auto tag) {
    using T = decltype(tag);
    k::launch_spatial_pool(ptr<T>(x), ptr<T>(out), ptr<int64_t>(argmax), M, C, stream());
  });
}
void spatial_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t M, int64_t C) {
  storage_types(g.dtype(), "spatial_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    k::launch_spatial_pool_backward(ptr<T>(g), ptr<int64_t>(argmax), ptr<T>(gx), M, C, stream());
  });
}
void sigmoid_gate(const Tensor& x, const Tensor& a, const Tensor& y, int64_t N, int64_t P, int64_t C, bool channel) {
  // x, y in T (f16/bf16 natively); the logits a in acc_t<T>
  storage_types(x.dtype(), "sigmoid_gate", [&](auto tag) {
    using T = decltype(tag);
    using A = k::acc_t<kt<T>>;
    k::launch_sigmoid_gate(ptr<T>(x), ptr<A>(a), ptr<T>(y), N, P, C, channel ? k::gate_channel : k::gate_spatial,
                           stream());
  });
}
void sigmoid_gate_backward(const Tensor& g, const Tensor& x, const Tensor& a, const Tensor& gx, const Tensor& ga,
                           int64_t N, int64_t P, int64_t C, bool channel) {
  // g, x, gx in T (f16/bf16 natively); the logits a and their gradient ga in acc_t<T>
  storage_types(x.dtype(), "sigmoid_gate backward", [&](auto tag) {
    using T = decltype(tag);
    using A = k::acc_t<kt<T>>;
    // channel mode: the slices' partial sums of g·x when P is split (kernels/cbam.cuh)
    const int64_t S = channel && ga.defined() ? k::position_slices(N, P, C) : 1;
    Tensor part = device_acc<A>(S > 1 ? N * S * C : 0);
    k::launch_sigmoid_gate_backward(ptr<T>(g), ptr<T>(x), ptr<A>(a), ptr<T>(gx), ptr<A>(ga), ptr<A>(part), N, P, C,
                                    channel ? k::gate_channel : k::gate_spatial, stream());
  });
}

}  // namespace adnn::cuda
