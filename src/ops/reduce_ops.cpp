// Reductions: sum, mean, amax/amin, max/argmax, var, sum_to.
#include <adnn/amp/amp.hpp>

#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

namespace {

struct ReducePlan {
  std::vector<int64_t> dims;  // sorted reduced dims
  Shape keep_shape;           // x's shape with 1 at reduced dims
  Shape out_shape;            // keepdim ? keep_shape : without reduced dims
  int64_t rows = 1, R = 1;
};

ReducePlan plan_reduce(const char* op, const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  ReducePlan p;
  p.dims = normalize_dims(op, std::move(dims), x.dim());
  std::vector<bool> red(size_t(std::max<int64_t>(x.dim(), 1)), false);
  for (auto d : p.dims) red[d] = true;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (red[i]) {
      p.R *= x.size(i);
      p.keep_shape.push_back(1);
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.rows *= x.size(i);
      p.keep_shape.push_back(x.size(i));
      p.out_shape.push_back(x.size(i));
    }
  }
  return p;
}

// (rows, R) contiguous arrangement of x: kept dims first, reduced dims last.
Tensor to_rows(const Tensor& x, const ReducePlan& p) {
  std::vector<int64_t> perm;
  std::vector<bool> red(size_t(std::max<int64_t>(x.dim(), 1)), false);
  for (auto d : p.dims) red[d] = true;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!red[i]) perm.push_back(i);
  for (auto d : p.dims) perm.push_back(d);
  return x.detach().permute(perm).contiguous();
}

Tensor reduce_raw(ReduceOp op, const char* name, const Tensor& x, const ReducePlan& p) {
  Tensor rows = to_rows(x, p);
  Tensor out = new_like(x, p.out_shape);
  ADNN_CHECK(op == ReduceOp::sum || p.R > 0, name, ": cannot reduce over an empty dimension of ", x.desc());
  backend::reduce_rows(op, rows, out, p.rows, p.R);
  return out;
}

Tensor extreme(ReduceOp op, const char* name, const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_defined(name, x, "input");
  check_devices(name, {&x});
  check_floating(name, x);
  if (is_reduced(x.dtype())) return extreme(op, name, x.to(DType::f32), dims, keepdim).to(x.dtype());
  ReducePlan p = plan_reduce(name, x, dims, keepdim);
  Tensor out = reduce_raw(op, name, x, p);
  Tensor od = out.detach();
  autograd::record(name, {x}, out, [=](const Tensor& g, const std::vector<bool>&) {
    // gradient split evenly among the positions that attain the extreme
    Tensor m = eq(x.detach(), od.reshape(p.keep_shape)).to(g.dtype());
    Tensor count = sum(m, p.dims, true);
    return std::vector<Tensor>{div(mul(m, g.reshape(p.keep_shape)), count)};
  });
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_defined("sum", x, "input");
  check_devices("sum", {&x});
  if (!is_floating(x.dtype())) return sum(x.to(DType::f64), dims, keepdim).to(DType::i64);
  if (is_reduced(x.dtype())) {
    Tensor s = sum(x.to(DType::f32), dims, keepdim);
    return amp::autocast_dtype() ? s : s.to(x.dtype());  // autocast: reductions return f32
  }
  ReducePlan p = plan_reduce("sum", x, std::move(dims), keepdim);
  Tensor out = reduce_raw(ReduceOp::sum, "sum", x, p);
  Shape xs = x.sizes();
  autograd::record("sum", {x}, out, [=](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.reshape(p.keep_shape).expand(xs)};
  });
  return out;
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_defined("mean", x, "input");
  check_floating("mean", x);
  ReducePlan p = plan_reduce("mean", x, dims, keepdim);
  return mul(sum(x, dims, keepdim), 1.0 / double(std::max<int64_t>(p.R, 1)));
}

Tensor amax(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return extreme(ReduceOp::max, "amax", x, std::move(dims), keepdim);
}
Tensor amin(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return extreme(ReduceOp::min, "amin", x, std::move(dims), keepdim);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_defined("argmax", x, "input");
  check_devices("argmax", {&x});
  if (x.dtype() != DType::f32 && x.dtype() != DType::f64 && x.dtype() != DType::i64 && x.dtype() != DType::i32)
    return argmax(x.to(DType::f32), dim, keepdim);
  int64_t d = detail::wrap_dim(dim, x.dim(), "argmax");
  ReducePlan p = plan_reduce("argmax", x, {d}, keepdim);
  ADNN_CHECK(p.R > 0, "argmax: empty dimension ", d, " in ", x.desc());
  Tensor rows = to_rows(x, p);
  Tensor out = empty(p.out_shape, TensorOptions(DType::i64, x.device()));
  backend::argmax_rows(rows, out, p.rows, p.R);
  return out;
}

std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  Tensor idx = argmax(x, dim, true);
  Tensor val = gather(x, detail::wrap_dim(dim, x.dim(), "max"), idx);
  if (!keepdim) {
    val = val.squeeze(dim);
    idx = idx.squeeze(dim);
  }
  return {val, idx};
}

Tensor var(const Tensor& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  check_defined("var", x, "input");
  check_floating("var", x);
  ReducePlan p = plan_reduce("var", x, dims, keepdim);
  Tensor mu = mean(x, dims, true);
  Tensor d = sub(x, mu);
  double denom = double(std::max<int64_t>(p.R - correction, 0));
  return mul(sum(mul(d, d), dims, keepdim), 1.0 / denom);
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.sizes() == shape) return x;
  ADNN_CHECK(int64_t(shape.size()) <= x.dim(), "sum_to: cannot reduce ", x.desc(), " to ", shape_str(shape));
  int64_t lead = x.dim() - int64_t(shape.size());
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < lead) {
      dims.push_back(i);
    } else if (shape[i - lead] == 1 && x.size(i) != 1) {
      dims.push_back(i);
    } else {
      ADNN_CHECK(shape[i - lead] == x.size(i), "sum_to: cannot reduce ", x.desc(), " to ", shape_str(shape));
    }
  }
  Tensor r = dims.empty() ? x : sum(x, dims, true);
  return r.reshape(shape);
}

}  // namespace adnn
