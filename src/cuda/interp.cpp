// The interp family's launchers (kernels/interp.cuh); the taps of common::interp_taps go
// to the device with each call.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/interp.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- interpolation
namespace {
struct DeviceTaps {
  Tensor iy, wy, ix, wx;
};
DeviceTaps upload(const InterpTaps& ty, const InterpTaps& tx) {
  auto up_i = [](const std::vector<int64_t>& v) {
    return from_vector(v, {int64_t(v.size())}, TensorOptions(DType::i64, kCUDA));
  };
  auto up_w = [](const std::vector<double>& v) {
    return from_vector(v, {int64_t(v.size())}, TensorOptions(DType::f64, kCUDA));
  };
  return {up_i(ty.index), up_w(ty.weight), up_i(tx.index), up_w(tx.weight)};
}
}  // namespace

void interpolate_forward(const Tensor& x, const Tensor& y, const InterpTaps& ty, const InterpTaps& tx) {
  DeviceTaps t = upload(ty, tx);
  k::InterpGeom d{x.size(0), x.size(1), x.size(2), x.size(3), y.size(1), y.size(2), ty.taps, tx.taps};
  float_types(x.dtype(), "interpolate", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::interp_forward_kernel<T>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x), ptr<T>(y),
                ptr<int64_t>(t.iy), ptr<double>(t.wy), ptr<int64_t>(t.ix), ptr<double>(t.wx), d);
  });
}
void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpTaps& ty, const InterpTaps& tx) {
  DeviceTaps t = upload(ty, tx);
  k::InterpGeom d{gx.size(0), gx.size(1), gx.size(2), gx.size(3), gy.size(1), gy.size(2), ty.taps, tx.taps};
  float_types(gy.dtype(), "interpolate backward", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::interp_backward_kernel<T>, k::grid_for(gy.numel()), dim3(256), 0, stream(), ptr<T>(gy), ptr<T>(gx),
                ptr<int64_t>(t.iy), ptr<double>(t.wy), ptr<int64_t>(t.ix), ptr<double>(t.wx), d);
  });
}

// ---------------------------------------------------------------- warp_affine
void warp_affine_forward(const Tensor& x, const Tensor& m, const Tensor& y, const WarpGeom& g) {
  float_types(x.dtype(), "warp_affine", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::warp_affine_forward_kernel<T>, k::grid_for(y.numel()), dim3(256), 0, stream(), ptr<T>(x),
                ptr<double>(m), ptr<T>(y), g);
  });
}
void warp_affine_backward(const Tensor& gy, const Tensor& m, const Tensor& gx, const WarpGeom& g) {
  float_types(gy.dtype(), "warp_affine backward", [&](auto tag) {
    using T = decltype(tag);
    ADNN_LAUNCH(k::warp_affine_backward_kernel<T>, k::grid_for(gy.numel()), dim3(256), 0, stream(), ptr<T>(gy),
                ptr<double>(m), ptr<T>(gx), g);
  });
}

}  // namespace adnn::cuda
