// The elementwise family's launchers (kernels/elementwise.cuh): copy/cast, fill, unary
// (+ backward), binary, where.
#include <algorithm>

#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/elementwise.cuh"

namespace adnn::cuda {

using namespace launch_detail;

namespace {
// Sizes of `shape`, strides of each operand (already broadcast to `shape`), coalesced
// (k::coalesce: size-1 dimensions dropped, mergeable neighbours merged).
k::Geom make_geom(const char* op, const Shape& shape, std::initializer_list<const Tensor*> ts) {
  k::Geom g;
  ADNN_CHECK(shape.size() <= size_t(k::kMaxDims), op, ": CUDA kernels handle up to ", k::kMaxDims, " dims, got ",
             shape_str(shape));
  g.ndim = int(shape.size());
  for (int d = 0; d < g.ndim; ++d) g.size[d] = shape[d];
  int j = 0;
  for (const Tensor* t : ts) {
    for (int d = 0; d < g.ndim; ++d) g.stride[j][d] = t->strides()[d];
    ++j;
  }
  k::coalesce(g);
  return g;
}
}  // namespace

// ---------------------------------------------------------------- elementwise
void copy(const Tensor& src, const Tensor& dst) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  k::Geom g = make_geom("copy", dst.sizes(), {&dst, &src});
  // A dimension of unit destination stride and another of unit source stride: the tiled
  // transpose (both sides contiguous); otherwise one thread per element in destination order.
  int da = -1, db = -1;
  for (int d = 0; d < g.ndim; ++d) {
    if (g.size[d] > 1 && g.stride[0][d] == 1 && da < 0) da = d;
    if (g.size[d] > 1 && g.stride[1][d] == 1 && db < 0) db = d;
  }
  k::Geom outer;
  int64_t tiles = 0;
  if (da >= 0 && db >= 0 && da != db) {
    for (int d = 0; d < g.ndim; ++d) {
      if (d == da || d == db) continue;
      outer.size[outer.ndim] = g.size[d];
      outer.stride[0][outer.ndim] = g.stride[0][d];
      outer.stride[1][outer.ndim] = g.stride[1][d];
      ++outer.ndim;
    }
    k::set_index32(outer, g.index32);  // (outer's indices count tiles' outer positions: fewer than n)
    tiles = n / (g.size[da] * g.size[db]) * ((g.size[da] + 31) / 32) * ((g.size[db] + 31) / 32);
  }
  // as many threads as the largest tile has elements (a multiple of 32, at most 256)
  const int64_t tile_elems = std::min<int64_t>(g.size[std::max(da, 0)], 32) * std::min<int64_t>(g.size[std::max(db, 0)], 32);
  const unsigned tile_threads = unsigned(std::min<int64_t>(256, (tile_elems + 31) / 32 * 32));
  visit_dtype(src.dtype(), [&](auto s) {
    using S = kt<decltype(s)>;
    visit_dtype(dst.dtype(), [&](auto d) {
      using D = kt<decltype(d)>;
      if (tiles > 0 && tiles < (int64_t(1) << 31))
        ADNN_LAUNCH((k::copy_transpose_kernel<S, D>), dim3(unsigned(tiles)), dim3(tile_threads), 0, stream(),
                    reinterpret_cast<const S*>(src.data_ptr()), reinterpret_cast<D*>(dst.data_ptr()), outer,
                    g.size[da], g.size[db], g.stride[1][da], g.stride[0][db]);
      else
        ADNN_LAUNCH((k::copy_kernel<S, D>), k::grid_for(n), dim3(256), 0, stream(),
                    reinterpret_cast<const S*>(src.data_ptr()), reinterpret_cast<D*>(dst.data_ptr()), n, g);
    });
  });
}

void fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  k::Geom g = make_geom("fill", dst.sizes(), {&dst});
  visit_dtype(dst.dtype(), [&](auto d) {
    using T = decltype(d);
    T v;
    if constexpr (std::is_same_v<T, bool>)
      v = value != 0;
    else
      v = T(static_cast<std::conditional_t<std::is_same_v<T, half> || std::is_same_v<T, bfloat16>, float, T>>(value));
    kt<T> kv;
    std::memcpy(&kv, &v, sizeof v);
    ADNN_LAUNCH(k::fill_kernel<kt<T>>, k::grid_for(n), dim3(256), 0, stream(), reinterpret_cast<kt<T>*>(dst.data_ptr()),
                kv, n, g);
  });
}

void arange_fill(const Tensor& out, double start, double step) {
  const int64_t n = out.numel();
  if (n == 0) return;
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = kt<decltype(tag)>;
    ADNN_LAUNCH(k::arange_kernel<T>, k::grid_for(n), dim3(256), 0, stream(), reinterpret_cast<T*>(out.data_ptr()), n,
                start, step);
  });
}

void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
  const int64_t n = out.numel();
  if (n == 0) return;
  k::Geom g = make_geom(unary_name(op), out.sizes(), {&out, &x});
  auto run = [&](auto tag) {
    using T = kt<decltype(tag)>;
    constexpr int V = int(16 / sizeof(T));
    const T* px = reinterpret_cast<const T*>(x.data_ptr());
    T* po = reinterpret_cast<T*>(out.data_ptr());
    if (k::vector_geom(g, 2, V, sizeof(T), {px, po}))
      ADNN_LAUNCH((k::unary_vec_kernel<T, V>), k::grid_for(n / V), dim3(256), 0, stream(), op, px, po, n / V, g, p0, p1);
    else
      ADNN_LAUNCH(k::unary_kernel<T>, k::grid_for(n), dim3(256), 0, stream(), int(op), px, po, n, g, p0, p1);
  };
  if (!visit_floating(x.dtype(), run))
    ADNN_FAIL(unary_name(op), " (cuda): needs a floating tensor, got ", x.desc());
}

void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& gx, double p0,
                    double p1) {
  const int64_t n = gx.numel();
  if (n == 0) return;
  k::Geom geo = make_geom(unary_name(op), gx.sizes(), {&gx, &g, &x, &y});
  auto run = [&](auto tag) {
    using T = kt<decltype(tag)>;
    constexpr int V = int(16 / sizeof(T));
    const T* pg = reinterpret_cast<const T*>(g.data_ptr());
    const T* px = reinterpret_cast<const T*>(x.data_ptr());
    const T* py = reinterpret_cast<const T*>(y.data_ptr());
    T* pgx = reinterpret_cast<T*>(gx.data_ptr());
    // an operand the op does not read may be undefined (null: stride 0 in the geometry); the
    // vector kernel reads all three, so it runs only with every one defined
    if (pg && px && py && k::vector_geom(geo, 4, V, sizeof(T), {pg, px, py, pgx}))
      ADNN_LAUNCH((k::unary_backward_vec_kernel<T, V>), k::grid_for(n / V), dim3(256), 0, stream(), op, pg, px, py, pgx,
                  n / V, geo, p0, p1);
    else
      ADNN_LAUNCH(k::unary_backward_kernel<T>, k::grid_for(n), dim3(256), 0, stream(), int(op), pg, px, py, pgx, n, geo,
                  p0, p1);
  };
  if (!visit_floating(x.dtype(), run))
    ADNN_FAIL(unary_name(op), " backward (cuda): needs a floating tensor, got ", x.desc());
}

void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  k::Geom g = make_geom(binary_name(op), out.sizes(), {&out, &a, &b});
  const bool cmp = common::is_comparison(op);
  if (a.dtype() == DType::boolean)
    ADNN_CHECK(op == BinaryOp::eq || op == BinaryOp::ne, binary_name(op), ": not defined for bool tensors");
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = kt<decltype(tag)>;
    const T* pa = reinterpret_cast<const T*>(a.data_ptr());
    const T* pb = reinterpret_cast<const T*>(b.data_ptr());
    if (cmp) {
      ADNN_LAUNCH((k::binary_kernel<T, bool>), k::grid_for(n), dim3(256), 0, stream(), op, pa, pb,
                  reinterpret_cast<bool*>(out.data_ptr()), n, g);
    } else if constexpr (!std::is_same_v<T, bool>) {
      constexpr int V = int(16 / sizeof(T));
      T* po = reinterpret_cast<T*>(out.data_ptr());
      if constexpr (std::is_floating_point_v<T> || std::is_same_v<T, k::f16> || std::is_same_v<T, k::bf16>) {
        if (k::vector_geom(g, 3, V, sizeof(T), {pa, pb, po})) {
          ADNN_LAUNCH((k::binary_vec_kernel<T, V>), k::grid_for(n / V), dim3(256), 0, stream(), op, pa, pb, po, n / V, g);
          return;
        }
      }
      ADNN_LAUNCH((k::binary_kernel<T, T>), k::grid_for(n), dim3(256), 0, stream(), op, pa, pb, po, n, g);
    }
  });
}

void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = out.numel();
  if (n == 0) return;
  k::Geom g = make_geom("where", out.sizes(), {&out, &cond, &a, &b});
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = kt<decltype(tag)>;
    ADNN_LAUNCH(k::where_kernel<T>, k::grid_for(n), dim3(256), 0, stream(),
                reinterpret_cast<const bool*>(cond.data_ptr()), reinterpret_cast<const T*>(a.data_ptr()),
                reinterpret_cast<const T*>(b.data_ptr()), reinterpret_cast<T*>(out.data_ptr()), n, g);
  });
}

}  // namespace adnn::cuda
