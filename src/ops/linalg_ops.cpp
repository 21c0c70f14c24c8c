// matmul (batched, broadcasting) and linear.
#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

namespace {
thread_local int64_t t_macs = 0;  // mac_count()
}  // namespace

int64_t mac_count() { return t_macs; }
void add_macs(int64_t n) { t_macs += n; }

namespace {
// a (B, M, K) x b (B, K, N) -> (B, M, N); the one GEMM primitive.
Tensor bmm3(const Tensor& a, const Tensor& b) {
  Tensor c = empty({a.size(0), a.size(1), b.size(2)}, TensorOptions(a.dtype(), a.device()));
  backend::bmm(a.detach(), b.detach(), c);
  autograd::record("matmul", {a, b}, c, [a, b](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? bmm3(g, b.transpose(1, 2)) : Tensor(),
                               need[1] ? bmm3(a.transpose(1, 2), g) : Tensor()};
  });
  return c;
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined("matmul", a, "first operand");
  check_defined("matmul", b, "second operand");
  check_devices("matmul", {&a, &b});
  check_same_dtype("matmul", {&a, &b});
  check_floating("matmul", a);
  ADNN_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ", a.desc(), " and ",
             b.desc());
  if (is_reduced(a.dtype())) return matmul(a.to(DType::f32), b.to(DType::f32)).to(a.dtype());
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  ADNN_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: ", a.desc(), " x ", b.desc());
  if (b.dim() == 2) {
    // (..., M, K) x (K, N): one GEMM over all rows
    Shape out = a.sizes();
    out.back() = N;
    Tensor a2 = a.reshape({-1, K});  // (rows, K)
    add_macs(a2.size(0) * K * N);
    return bmm3(a2.unsqueeze(0), b.unsqueeze(0)).reshape(out);
  }
  Shape ba(a.sizes().begin(), a.sizes().end() - 2), bb(b.sizes().begin(), b.sizes().end() - 2);
  Shape batch = broadcast_shapes("matmul", ba, bb);
  int64_t B = shape_numel(batch);
  Shape sa = batch, sb = batch, so = batch;
  sa.insert(sa.end(), {M, K});
  sb.insert(sb.end(), {K, N});
  so.insert(so.end(), {M, N});
  Tensor a3 = a.expand(sa).reshape({B, M, K});
  Tensor b3 = b.expand(sb).reshape({B, K, N});
  add_macs(B * M * K * N);
  return bmm3(a3, b3).reshape(so);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined("linear", x, "input");
  check_defined("linear", weight, "weight");
  ADNN_CHECK(weight.dim() == 2, "linear: weight must be (out, in), got ", weight.desc());
  ADNN_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", x.desc(), " does not match weight ",
             weight.desc(), " (in_features ", weight.size(1), ")");
  if (bias.defined())
    ADNN_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias ", bias.desc(),
               " does not match weight ", weight.desc());
  Tensor y = matmul(x, weight.t());
  return bias.defined() ? add(y, bias) : y;
}

}  // namespace adnn
