// The index family's launchers (kernels/index.cuh).
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/index.cuh"

namespace adnn::cuda {

using namespace launch_detail;

// ---------------------------------------------------------------- indexing
void index_check(const Tensor& index, int64_t size, const Tensor& flag) {
  const int64_t n = index.numel();
  if (n == 0) return;
  ADNN_LAUNCH(k::index_check_kernel, k::grid_for(n), dim3(256), 0, stream(), ptr<int64_t>(index), n, size,
              ptr<int64_t>(flag));
}
void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t D, int64_t inner) {
  const int64_t n = index.numel();
  if (out.numel() == 0) return;
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = kt<decltype(tag)>;
    ADNN_LAUNCH(k::index_select_kernel<T>, k::grid_for(outer * n * inner), dim3(256), 0, stream(),
                ptr<decltype(tag)>(x), ptr<int64_t>(index), ptr<decltype(tag)>(out), D, inner,
                k::index_3d(outer, n, inner));
  });
}
void index_add(const Tensor& g, const Tensor& index, const Tensor& gx, int64_t outer, int64_t D, int64_t inner) {
  const int64_t n = index.numel();
  if (g.numel() == 0) return;
  storage_types(g.dtype(), "index_select backward", [&](auto tag) {  // gx: f32 for a 16-bit g
    using G = decltype(tag);
    using A = common::acc_t<G>;
    dispatch::check_accumulator("index_select backward", "cuda", gx.dtype(), dtype_of<A>::value);
    ADNN_LAUNCH((k::index_add_kernel<kt<G>, A>), k::grid_for(outer * n * inner), dim3(256), 0, stream(), ptr<G>(g),
                ptr<int64_t>(index), ptr<A>(gx), D, inner, k::index_3d(outer, n, inner));
  });
}

namespace {
void gather_scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& y, bool scatter) {
  const int64_t n = index.numel();
  if (n == 0) return;
  k::GatherGeom g{};
  ADNN_CHECK(index.dim() <= 8, "gather (cuda): at most 8 dims");
  g.ndim = int(index.dim());
  g.dim = int(dim);
  Shape xs = contiguous_strides(x.sizes());
  for (int d = 0; d < g.ndim; ++d) {
    g.size[d] = index.size(d);
    g.xstride[d] = xs[d];
  }
  g.xsize_dim = x.size(dim);
  storage_types(y.dtype(), scatter ? "scatter_add" : "gather", [&](auto tag) {
    using Y = decltype(tag);
    if (scatter) {  // x: the accumulated gradient, f32 for a 16-bit y
      using A = common::acc_t<Y>;
      dispatch::check_accumulator("scatter_add", "cuda", x.dtype(), dtype_of<A>::value);
      ADNN_LAUNCH((k::scatter_add_kernel<kt<Y>, A>), k::grid_for(n), dim3(256), 0, stream(), ptr<Y>(y),
                  ptr<int64_t>(index), ptr<A>(x), n, g);
    } else {
      ADNN_CHECK(x.dtype() == y.dtype(), "gather (cuda): input ", x.desc(), " and output ", y.desc());
      ADNN_LAUNCH(k::gather_kernel<kt<Y>>, k::grid_for(n), dim3(256), 0, stream(), ptr<Y>(x), ptr<int64_t>(index),
                  ptr<Y>(y), n, g);
    }
  });
}
}  // namespace

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  gather_scatter(x, dim, index, out, false);
}
void scatter_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx) {
  gather_scatter(gx, dim, index, g, true);
}

}  // namespace adnn::cuda
