// matmul (batched, broadcasting) and linear (with its bias and activation fused into the GEMM's
// epilogue). f16/bf16 operands are multiplied natively (f32 accumulation); under amp::Autocast
// f32 operands are cast to the autocast dtype first.
#include <adnn/amp/amp.hpp>
#include <adnn/ops/gemm.hpp>

#include <atomic>

#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

namespace {
std::atomic<bool> g_allow_tf32{false};
thread_local int64_t t_macs = 0;  // mac_count()
}  // namespace

int64_t mac_count() { return t_macs; }
void add_macs(int64_t n) { t_macs += n; }

namespace {
// a (B, M, K) x b (B, K, N) -> (B, M, N); the one GEMM primitive.
Tensor bmm3(const Tensor& a, const Tensor& b) {
  Tensor c = empty({a.size(0), a.size(1), b.size(2)}, TensorOptions(a.dtype(), a.device()));
  backend::bmm(a.detach(), b.detach(), c, {});
  autograd::record("matmul", {a, b}, c, [a, b](const Tensor& g, const std::vector<bool>& need) {
    return std::vector<Tensor>{need[0] ? bmm3(g, b.transpose(1, 2)) : Tensor(),
                               need[1] ? bmm3(a.transpose(1, 2), g) : Tensor()};
  });
  return c;
}
}  // namespace

void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_defined("matmul", a_in, "first operand");
  check_defined("matmul", b_in, "second operand");
  const Tensor a = amp::autocast_lower(a_in), b = amp::autocast_lower(b_in);
  check_devices("matmul", {&a, &b});
  check_same_dtype("matmul", {&a, &b});
  check_floating("matmul", a);
  ADNN_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ", a.desc(), " and ",
             b.desc());
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  ADNN_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: ", a.desc(), " x ", b.desc());
  if (b.dim() == 2) {
    // (..., M, K) x (K, N): one GEMM over all rows
    Shape out = a.sizes();
    out.back() = N;
    Tensor a2 = a.reshape({shape_numel(Shape(a.sizes().begin(), a.sizes().end() - 1)), K});  // (rows, K); K may be 0
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
  return bmm3(a3, b3).reshape(so);  // one strided-batched GEMM
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return linear(x, weight, bias, bias.defined() ? GemmEpilogue::bias : GemmEpilogue::none);
}

// y = act(x · weightᵀ + bias) in one GEMM: (..., K) x (N, K) -> (..., N). Backward: dz from the
// output (ReLU) or the kept pre-activation (GELU) in one elementwise pass, then two GEMMs and a
// column sum for the bias.
Tensor linear(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, GemmEpilogue epilogue) {
  check_defined("linear", x_in, "input");
  check_defined("linear", weight_in, "weight");
  const Tensor x = amp::autocast_lower(x_in), weight = amp::autocast_lower(weight_in),
               bias = amp::autocast_lower(bias_in);
  ADNN_CHECK(weight.dim() == 2, "linear: weight must be (out, in), got ", weight.desc());
  ADNN_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", x.desc(), " does not match weight ",
             weight.desc(), " (in_features ", weight.size(1), ")");
  if (bias.defined())
    ADNN_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear: bias ", bias.desc(),
               " does not match weight ", weight.desc());
  if (bias.defined()) {
    check_devices("linear", {&x, &weight, &bias});
    check_same_dtype("linear", {&x, &weight, &bias});
  } else {
    check_devices("linear", {&x, &weight});
    check_same_dtype("linear", {&x, &weight});
  }
  check_floating("linear", x);
  const GemmEpilogue kind = epilogue == GemmEpilogue::none ? GemmEpilogue::bias : epilogue;  // bias may be absent
  const int64_t K = weight.size(1), N = weight.size(0);
  Shape out_shape = x.sizes();
  out_shape.back() = N;
  Tensor x3 = x.reshape({1, shape_numel(Shape(x.sizes().begin(), x.sizes().end() - 1)), K});  // (1, R, K); K may be 0
  const int64_t R = x3.size(1);
  Tensor wt = weight.t().unsqueeze(0);  // (1, K, N), column-major
  Tensor y = empty({1, R, N}, TensorOptions(x.dtype(), x.device()));
  std::vector<Tensor> inputs{x3, weight};
  if (bias.defined()) inputs.push_back(bias);
  const bool grad = autograd::needs_grad(inputs);
  Tensor pre = grad && kind == GemmEpilogue::bias_gelu ? empty({1, R, N}, TensorOptions(x.dtype(), x.device()))
                                                       : Tensor();  // (1, R, N)
  add_macs(R * K * N);
  const BmmEpilogue epi{kind, bias.defined() ? bias.detach().contiguous() : Tensor(), pre, Tensor()};
  backend::bmm(x3.detach(), wt.detach(), y, epi);
  if (grad) {
    Tensor yd = y.detach();
    const bool has_bias = bias.defined();
    Tensor xd = x3.detach(), wd = weight.detach();
    autograd::record("linear", inputs, y, [=](const Tensor& g, const std::vector<bool>& need) {
      Tensor dz = g;  // (1, R, N)
      if (kind != GemmEpilogue::bias) {
        dz = new_like(g, g.sizes());
        const UnaryOp op = kind == GemmEpilogue::bias_relu ? UnaryOp::relu : UnaryOp::gelu;
        backend::unary_backward(op, g.contiguous(), kind == GemmEpilogue::bias_relu ? yd : pre, yd, dz, 0, 0);
      }
      std::vector<Tensor> out(has_bias ? 3 : 2);
      if (need[0]) out[0] = bmm3(dz, wd.unsqueeze(0));  // (1, R, K)
      if (need[1] && has_bias && need[2] && !autograd::needs_grad({&dz, &xd})) {
        // dW = dzᵀ · x with db = Σ_r dz[r] in the same GEMM (cuBLASLt's bias-gradient epilogue);
        // not when this backward is itself recorded (create_graph), which needs bmm3's graph
        Tensor gw = empty({1, N, K}, TensorOptions(dz.dtype(), dz.device()));  // (1, N, K)
        Tensor gb = empty({N}, TensorOptions(dz.dtype(), dz.device()));         // (N)
        backend::bmm(dz.transpose(1, 2), xd, gw, {GemmEpilogue::none, Tensor(), Tensor(), gb});
        out[1] = gw.reshape({N, K});
        out[2] = gb;
        return out;
      }
      if (need[1]) out[1] = bmm3(dz.transpose(1, 2), xd).reshape({N, K});  // (N, K)
      if (has_bias && need[2]) out[2] = sum(dz.reshape({R, N}), {0});      // (N)
      return out;
    });
  }
  return y.reshape(out_shape);
}

}  // namespace adnn
