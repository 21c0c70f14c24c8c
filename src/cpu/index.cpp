// CPU twin of kernels/index.cuh: index_select / index_add along one dim, gather /
// scatter_add (torch semantics).
#include <omp.h>

#include <algorithm>
#include <vector>

#include "cpu/backend.hpp"
#include "cpu/loop.hpp"

namespace adnn::cpu {

void index_check(const Tensor& index, int64_t size, const Tensor& flag) {
  const int64_t* idx = index.data_ptr<int64_t>();
  int64_t* f = flag.data_ptr<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i)
    if ((idx[i] < 0 || idx[i] >= size) && f[0] == 0) f[0] = idx[i];  // the first bad one, as a kernel's first CAS
}

void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t D, int64_t inner) {
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n = index.numel();
  const size_t es = x.element_size();
  const char* xp = static_cast<const char*>(x.data_ptr());
  char* op = static_cast<char*>(out.data_ptr());
#pragma omp parallel for collapse(2) schedule(static) if (outer * n * inner > 32768)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(op + ((o * n + i) * inner) * es, xp + ((o * D + idx[i]) * inner) * es, size_t(inner) * es);
}

void index_add(const Tensor& g, const Tensor& index, const Tensor& gx, int64_t outer, int64_t D, int64_t inner) {
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n = index.numel();
  // gx: the accumulator acc_t<G> (f32 for a 16-bit g; the op rounds the sums once)
  storage_dispatch(g.dtype(), "index_select backward", [&](auto tag_) {
    using G = decltype(tag_);
    using A = common::acc_t<G>;
    dispatch::check_accumulator("index_select backward", "cpu", gx.dtype(), dtype_of<A>::value);
    const G* gp = g.data_ptr<G>();
    A* xp = gx.data_ptr<A>();
#pragma omp parallel for schedule(static) if (outer * n * inner > 32768 && outer > 1)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < n; ++i) {
        const G* s = gp + (o * n + i) * inner;
        A* d = xp + (o * D + idx[i]) * inner;
        for (int64_t k = 0; k < inner; ++k) d[k] += A(s[k]);
      }
  });
}

// offsets for gather/scatter: out/index contiguous; x contiguous
static void gather_scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& y, bool scatter) {
  const Shape& is = index.sizes();
  const Shape xs = contiguous_strides(x.sizes());
  const int64_t* idx = index.data_ptr<int64_t>();
  const int64_t n = index.numel();
  const int64_t R = int64_t(is.size());
  // y's storage type Y; x is Y for gather, the accumulator acc_t<Y> for scatter_add (f32 for a
  // 16-bit gradient, rounded once by the op)
  storage_dispatch(y.dtype(), scatter ? "scatter_add" : "gather", [&](auto tag_) {
    using Y = decltype(tag_);
    using X = common::acc_t<Y>;
    if (scatter) dispatch::check_accumulator("scatter_add", "cpu", x.dtype(), dtype_of<X>::value);
    if (!scatter) ADNN_CHECK(x.dtype() == y.dtype(), "gather (cpu): input ", x.desc(), " and output ", y.desc());
    X* xp = scatter ? x.data_ptr<X>() : nullptr;
    Y* sp = scatter ? nullptr : x.data_ptr<Y>();
    Y* yp = y.data_ptr<Y>();
    std::vector<int64_t> c(R, 0);
    for (int64_t k = 0; k < n; ++k) {
      int64_t off = 0;
      for (int64_t d = 0; d < R; ++d) off += (d == dim ? idx[k] : c[d]) * xs[d];
      if (scatter)
        xp[off] += X(yp[k]);
      else
        yp[k] = sp[off];
      for (int64_t d = R - 1; d >= 0; --d) {
        if (++c[d] < is[d]) break;
        c[d] = 0;
      }
    }
  });
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
  gather_scatter(x, dim, index, out, false);
}
void scatter_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx) {
  gather_scatter(gx, dim, index, g, true);
}

}  // namespace adnn::cpu
