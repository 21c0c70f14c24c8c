// The interp family's launchers (kernels/interp.cuh): the geometry travels by value, the
// kernels compute their taps (common::interp_axis_taps).
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/interp.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- interpolation
void interpolate_forward(const Tensor& x, const Tensor& y, const InterpGeom& g) {
  ADNN_CHECK(x.dtype() == y.dtype(), "interpolate (cuda): input ", x.desc(), " and output ", y.desc());
  storage_types(x.dtype(), "interpolate", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::interp_forward_kernel<kt<T>>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(y),
                g, k::nhwc_index(g.N, g.y.out, g.x.out, g.C));
  });
}
void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpGeom& g) {
  storage_types(gy.dtype(), "interpolate backward", [&](auto tag) {
    using G = decltype(tag);
    using A = common::acc_t<G>;
    dispatch::check_accumulator("interpolate backward", "cuda", gx.dtype(), dtype_of<A>::value);
    ADNN_LAUNCH((k::interp_backward_kernel<kt<G>, A>), k::grid_for(gy.numel()), dim3(256), 0, stream(), ptr<G>(gy),
                ptr<A>(gx), g, k::nhwc_index(g.N, g.y.out, g.x.out, g.C));
  });
}

// ---------------------------------------------------------------- warp_affine
void warp_affine_forward(const Tensor& x, const Tensor& m, const Tensor& y, const WarpGeom& g) {
  ADNN_CHECK(x.dtype() == y.dtype(), "warp_affine (cuda): input ", x.desc(), " and output ", y.desc());
  storage_types(x.dtype(), "warp_affine", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::warp_affine_forward_kernel<kt<T>>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x),
                ptr<double>(m), ptr<T>(y), g, k::nhwc_index(g.B, g.OH, g.OW, g.C));
  });
}
void warp_affine_backward(const Tensor& gy, const Tensor& m, const Tensor& gx, const WarpGeom& g) {
  storage_types(gy.dtype(), "warp_affine backward", [&](auto tag) {
    using G = decltype(tag);
    using A = common::acc_t<G>;
    dispatch::check_accumulator("warp_affine backward", "cuda", gx.dtype(), dtype_of<A>::value);
    ADNN_LAUNCH((k::warp_affine_backward_kernel<kt<G>, A>), k::grid_for(gy.numel()), dim3(256), 0, stream(), ptr<G>(gy),
                ptr<double>(m), ptr<A>(gx), g, k::nhwc_index(g.B, g.OH, g.OW, g.C));
  });
}

}  // namespace adnn::cuda
