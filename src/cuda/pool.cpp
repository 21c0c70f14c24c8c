// The pool family's launchers (kernels/pool.cuh): f32, f64 and f16/bf16 storage.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/pool.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- pooling

void max_pool2d_forward(const Tensor& x, const Tensor& y, const Tensor& argmax, const PoolGeom& g) {
  storage_types(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    dispatch::pool_index_types(argmax.dtype(), "max_pool2d", "cuda", [&](auto itag) {
      using I = decltype(itag);
      ADNN_LAUNCH((k::max_pool_forward_kernel<kt<T>, I>), k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x),
                  ptr<T>(y), ptr<I>(argmax), g, k::nhwc_index(g.N, g.OH, g.OW, g.C));
    });
  });
}
void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g) {
  storage_types(gy.dtype(), "max_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    dispatch::pool_index_types(argmax.dtype(), "max_pool2d backward", "cuda", [&](auto itag) {
      using I = decltype(itag);
      if (k::max_pool_backward_is_tiled(g))  // one thread per output: full requests
        ADNN_LAUNCH((k::max_pool_backward_tiled_kernel<kt<T>, I>), k::grid_for(gy.numel()), dim3(256), 0, stream(),
                    ptr<T>(gy), ptr<I>(argmax), ptr<T>(gx), g, k::nhwc_index(g.N, g.OH, g.OW, g.C));
      else
        ADNN_LAUNCH((k::max_pool_backward_kernel<kt<T>, I>), k::grid_for(gx.numel()), dim3(256), 0, stream(),
                    ptr<T>(gy), ptr<I>(argmax), ptr<T>(gx), g, k::nhwc_index(g.N, g.H, g.W, g.C));
    });
  });
}
void avg_pool2d_forward(const Tensor& x, const Tensor& y, const PoolGeom& g) {
  storage_types(x.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::avg_pool_forward_kernel<kt<T>>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(y),
                g, k::nhwc_index(g.N, g.OH, g.OW, g.C));
  });
}
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g) {
  storage_types(gy.dtype(), "avg_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::avg_pool_backward_kernel<kt<T>>, k::grid_for(gx.numel()), dim3(256), 0, stream(), ptr<T>(gy),
                ptr<T>(gx), g, k::nhwc_index(g.N, g.H, g.W, g.C));
  });
}

}  // namespace adnn::cuda
