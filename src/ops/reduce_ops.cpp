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

// x as (outer, R, inner) in place when it is contiguous and its reduced dims are one block of
// consecutive dims with kept dims after them (a sum over the batch, a mean over H and W of
// NHWC): then no transposed copy is needed. Reduced dims that are last are rows already.
bool as_columns(const Tensor& x, const ReducePlan& p, int64_t& outer, int64_t& inner) {
  if (p.dims.empty() || !x.is_contiguous()) return false;
  for (size_t k = 1; k < p.dims.size(); ++k)
    if (p.dims[k] != p.dims[k - 1] + 1) return false;
  outer = inner = 1;
  for (int64_t i = 0; i < p.dims.front(); ++i) outer *= x.size(i);
  for (int64_t i = p.dims.back() + 1; i < x.dim(); ++i) inner *= x.size(i);
  return inner > 1;
}

// out_t: x's dtype, or f32 for a 16-bit x (read natively by the kernels, summed in f32).
Tensor reduce_raw(ReduceOp op, const char* name, const Tensor& x, const ReducePlan& p, DType out_t) {
  Tensor out = empty(p.out_shape, TensorOptions(out_t, x.device()));
  ADNN_CHECK(op == ReduceOp::sum || p.R > 0, name, ": cannot reduce over an empty dimension of ", x.desc());
  int64_t outer = 1, inner = 1;
  if (as_columns(x, p, outer, inner))
    backend::reduce_cols(op, x.detach(), out, outer, p.R, inner);
  else
    backend::reduce_rows(op, to_rows(x, p), out, p.rows, p.R);
  return out;
}

Tensor extreme(ReduceOp op, const char* name, const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_defined(name, x, "input");
  check_devices(name, {&x});
  check_floating(name, x);
  ReducePlan p = plan_reduce(name, x, dims, keepdim);
  Tensor out = reduce_raw(op, name, x, p, x.dtype());  // f16/bf16 natively: an extreme is exact
  Tensor od = out.detach();
  const DType xt = x.dtype(), ct = acc_dtype(xt);
  autograd::record(name, {x}, out, [=](const Tensor& g, const std::vector<bool>&) {
    // gradient split evenly among the positions that attain the extreme; the tie count and the
    // division in f32 for a 16-bit x (bf16 counts no further than 256 exactly), one rounding
    Tensor m = eq(x.detach(), od.reshape(p.keep_shape)).to(ct);
    Tensor count = sum(m, p.dims, true);
    return std::vector<Tensor>{div(mul(m, g.to(ct).reshape(p.keep_shape)), count).to(xt)};
  });
  return out;
}

}  // namespace

namespace {
// f32_out: an f16/bf16 x gives its f32 sum (as under autocast) whatever the scope.
Tensor sum_impl(const Tensor& x, std::vector<int64_t> dims, bool keepdim, bool f32_out) {
  check_defined("sum", x, "input");
  check_devices("sum", {&x});
  if (!is_floating(x.dtype())) return sum_impl(x.to(DType::f64), dims, keepdim, false).to(DType::i64);
  // f16/bf16: read natively and summed in f32 into an f32 result — returned as it is under
  // autocast (reductions stay f32), else rounded to x's dtype (the output's size only)
  const bool reduced = is_reduced(x.dtype());
  ReducePlan p = plan_reduce("sum", x, std::move(dims), keepdim);
  Tensor out = reduce_raw(ReduceOp::sum, "sum", x, p, acc_dtype(x.dtype()));
  Shape xs = x.sizes();
  const DType xt = x.dtype();
  autograd::record("sum", {x}, out, [=](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.to(xt).reshape(p.keep_shape).expand(xs)};  // a broadcast view
  });
  return reduced && !f32_out ? out.to(xt) : out;
}
}  // namespace

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return sum_impl(x, std::move(dims), keepdim, amp::autocast_dtype().has_value());
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  check_defined("mean", x, "input");
  check_floating("mean", x);
  ReducePlan p = plan_reduce("mean", x, dims, keepdim);
  // f16/bf16: the f32 sum is scaled before it is rounded (an f16 sum of many values overflows)
  const bool reduced = is_reduced(x.dtype());
  Tensor m = mul(sum_impl(x, dims, keepdim, reduced), 1.0 / double(std::max<int64_t>(p.R, 1)));
  return reduced && !amp::autocast_dtype() ? m.to(x.dtype()) : m;
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
  // f32, f64, f16/bf16 (read natively), i32, i64; other dtypes (u8, bool, ...) through i64
  if (!is_floating(x.dtype()) && x.dtype() != DType::i64 && x.dtype() != DType::i32)
    return argmax(x.to(DType::i64), dim, keepdim);
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
  // f16/bf16: the squares summed in f32 and scaled before the one rounding (as mean)
  const bool reduced = is_reduced(d.dtype());
  Tensor v = mul(sum_impl(mul(d, d), dims, keepdim, reduced), 1.0 / denom);
  return reduced && !amp::autocast_dtype() ? v.to(d.dtype()) : v;
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
