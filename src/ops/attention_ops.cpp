// Attention and CBAM ops: fused scaled-dot-product attention, the two CBAM poolings and the
// sigmoid gate. Kernels in kernels/attention.cuh and kernels/cbam.cuh, CPU twins in
// src/cpu/attention.cpp.
#include <atomic>
#include <cmath>

#include <adnn/amp/amp.hpp>

#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

// ---------------------------------------------------------------- attention
namespace {
std::atomic<int> g_sdpa_backend{int(SdpaBackend::automatic)};
}
void set_sdpa_backend(SdpaBackend b) { g_sdpa_backend = int(b); }
SdpaBackend sdpa_backend() { return SdpaBackend(g_sdpa_backend.load()); }

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_padding_mask,
                                    double dropout_p, std::optional<double> scale) {
  const char* op = "scaled_dot_product_attention";
  check_defined(op, q, "query");
  check_defined(op, k, "key");
  check_defined(op, v, "value");
  if (amp::autocast_dtype() && (q.dtype() == DType::f32 || k.dtype() == DType::f32 || v.dtype() == DType::f32))
    return scaled_dot_product_attention(amp::autocast_lower(q), amp::autocast_lower(k), amp::autocast_lower(v),
                                        key_padding_mask, dropout_p, scale);
  check_devices(op, {&q, &k, &v, &key_padding_mask});
  check_same_dtype(op, {&q, &k, &v});
  check_floating(op, q);
  ADNN_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, ": expected q (B, H, Lq, D), k and v (B, H, Lk, D), got ",
             describe({&q, &k, &v}));
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), D = q.size(3), Lk = k.size(2);
  ADNN_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == D && v.sizes() == k.sizes(), op,
             ": shapes do not agree: ", describe({&q, &k, &v}));
  ADNN_CHECK(D >= 1 && D <= 256, op, ": head dim ", D, " not supported (1 to 256)");
  ADNN_CHECK(B * H <= 65535, op, ": batch × heads = ", B * H, " exceeds 65,535 (one grid row of blocks each)");
  ADNN_CHECK(dropout_p >= 0 && dropout_p < 1, op, ": dropout probability ", dropout_p, " must be in [0, 1)");
  if (key_padding_mask.defined())
    ADNN_CHECK(key_padding_mask.dtype() == DType::boolean && key_padding_mask.dim() == 2 &&
                   key_padding_mask.size(0) == B && key_padding_mask.size(1) == Lk,
               op, ": key_padding_mask must be bool (", B, ", ", Lk, "), got ", key_padding_mask.desc());
  const bool reduced = is_reduced(q.dtype());
  const double sc = scale ? *scale : 1.0 / std::sqrt(double(D));
  const SdpaBackend choice = sdpa_backend();
  // automatic: math where the scores (kept with the probabilities for backward) stay under
  // 2^27 elements a tensor (512 MiB in f32); the fused kernels never materialise them
  const bool small_scores = B * H * Lq * Lk <= (int64_t(1) << 27);
  const bool math = !key_padding_mask.defined() &&
                    (choice == SdpaBackend::math ||
                     (choice == SdpaBackend::automatic && backend::on_real_gpu(q) && (!reduced || D > 128) &&
                      small_scores));
  if (math) {  // (B, H, Lq, D) · (B, H, D, Lk) -> scores (B, H, Lq, Lk) -> probabilities -> (B, H, Lq, D)
    Tensor p = softmax(matmul(q * sc, k.transpose(2, 3)), -1);
    if (dropout_p > 0) p = dropout(p, dropout_p, true);
    // under autocast softmax answers f32 for 16-bit scores: back to v's dtype (f16 inputs under
    // a bf16 autocast would otherwise meet a bf16-lowered p)
    if (p.dtype() != v.dtype()) p = p.to(v.dtype());
    const Tensor o = matmul(p, v);
    return o.dtype() == q.dtype() ? o : o.to(q.dtype());  // the fused kernels' dtype: q's
  }
  // f16 / bf16: on a GPU with tensor cores (and the emulator) forward and backward run the
  // mma.sync kernels (lse in f32); elsewhere the op computes in f32 and rounds once.
  if (reduced && !backend::attention_tensor_cores(q)) {
    amp::Autocast f32_inside(std::nullopt);
    return scaled_dot_product_attention(q.to(DType::f32), k.to(DType::f32), v.to(DType::f32), key_padding_mask,
                                        dropout_p, scale)
        .to(q.dtype());
  }
  AttnGeom g{B, H, Lq, Lk, D, sc, dropout_p,
             dropout_p > 0 ? default_generator().next_u64() : 0};
  Tensor qc = q.detach().contiguous(), kc = k.detach().contiguous(), vc = v.detach().contiguous();
  Tensor mask = key_padding_mask.defined() ? key_padding_mask.contiguous() : Tensor();
  Tensor o = new_like(q, {B, H, Lq, D});
  Tensor lse = reduced ? empty({B, H, Lq}, TensorOptions(DType::f32, q.device())) : new_like(q, {B, H, Lq});
  backend::attention_forward(qc, kc, vc, mask, o, lse, g);
  add_macs(2 * B * H * Lq * Lk * D);  // q·kᵀ and p·v
  Tensor od = o.detach();
  autograd::record(op, {q, k, v}, o, [=](const Tensor& go, const std::vector<bool>&) {
    Tensor gq = new_like(qc, qc.sizes()), gk = new_like(kc, kc.sizes()), gv = new_like(vc, vc.sizes());
    backend::attention_backward(qc, kc, vc, mask, od, go.contiguous(), lse, gq, gk, gv, g);
    return std::vector<Tensor>{gq, gk, gv};
  });
  return o;
}

// ---------------------------------------------------------------- CBAM pools and gate
Tensor channel_pool2d(const Tensor& x) {
  const char* op = "channel_pool2d";
  check_defined(op, x, "input");
  check_devices(op, {&x});
  check_floating(op, x);
  ADNN_CHECK(x.dim() == 4 && x.size(1) * x.size(2) > 0, op, ": input must be (N, H, W, C) with H·W > 0, got ",
             x.desc());
  const int64_t N = x.size(0), P = x.size(1) * x.size(2), C = x.size(3);
  Tensor xc = x.detach().contiguous();
  Tensor out = new_like(x, {N, 2, C});
  Tensor am = empty({N, C}, TensorOptions(DType::i64, x.device()));
  backend::channel_pool(xc, out, am, N, P, C);
  Shape xs = x.sizes();
  autograd::record(op, {x}, out, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = empty(xs, TensorOptions(g.dtype(), g.device()));
    backend::channel_pool_backward(g.contiguous(), am, gx, N, P, C);
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor spatial_pool2d(const Tensor& x) {
  const char* op = "spatial_pool2d";
  check_defined(op, x, "input");
  check_devices(op, {&x});
  check_floating(op, x);
  ADNN_CHECK(x.dim() == 4 && x.size(3) > 0, op, ": input must be (N, H, W, C) with C > 0, got ", x.desc());
  const int64_t M = x.size(0) * x.size(1) * x.size(2), C = x.size(3);
  Tensor xc = x.detach().contiguous();
  Tensor out = new_like(x, {x.size(0), x.size(1), x.size(2), 2});
  Tensor am = empty({M}, TensorOptions(DType::i64, x.device()));
  backend::spatial_pool(xc, out, am, M, C);
  Shape xs = x.sizes();
  autograd::record(op, {x}, out, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = empty(xs, TensorOptions(g.dtype(), g.device()));
    backend::spatial_pool_backward(g.contiguous(), am, gx, M, C);
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor sigmoid_gate(const Tensor& x, const Tensor& a) {
  const char* op = "sigmoid_gate";
  check_defined(op, x, "input");
  check_defined(op, a, "gate");
  check_devices(op, {&x, &a});
  // f16/bf16 x natively with f32 logits (a 16-bit gate is widened: it is small); f32/f64 x
  // with logits of its dtype (under autocast an f32 x takes its gate in f32)
  const DType at = acc_dtype(x.dtype());
  check_floating(op, x);
  if (is_floating(a.dtype()) && a.dtype() != at && (is_reduced(x.dtype()) || amp::autocast_dtype()))
    return sigmoid_gate(x, a.to(at));
  ADNN_CHECK(a.dtype() == at, op, ": gate ", a.desc(), " must be ", dtype_name(at), " for input ", x.desc());
  ADNN_CHECK(x.dim() == 4 && a.dim() == 4 && a.size(0) == x.size(0), op,
             ": expected x (N, H, W, C) and gate (N, 1, 1, C) or (N, H, W, 1), got ", describe({&x, &a}));
  const int64_t N = x.size(0), P = x.size(1) * x.size(2), C = x.size(3);
  const bool channel = a.size(1) == 1 && a.size(2) == 1 && a.size(3) == C;
  const bool spatial = a.size(1) == x.size(1) && a.size(2) == x.size(2) && a.size(3) == 1;
  ADNN_CHECK(channel || spatial, op, ": gate must be (N, 1, 1, C) or (N, H, W, 1) for x ", x.desc(), ", got ",
             a.desc());
  const bool ch = channel;  // when both match (H = W = C = 1) the two readings agree
  Tensor xc = x.detach().contiguous(), ac = a.detach().contiguous();
  Tensor y = new_like(x, x.sizes());
  backend::sigmoid_gate(xc, ac, y, N, P, C, ch);
  Shape as = a.sizes();
  autograd::record(op, {x, a}, y, [=](const Tensor& g, const std::vector<bool>& need) {
    Tensor gx = need[0] ? new_like(xc, xc.sizes()) : Tensor();
    Tensor ga = need[1] ? new_like(ac, as) : Tensor();
    backend::sigmoid_gate_backward(g.contiguous(), xc, ac, gx, ga, N, P, C, ch);
    return std::vector<Tensor>{gx, ga};
  });
  return y;
}

// ---------------------------------------------------------------- squeeze-excite
Tensor squeeze_excite(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2) {
  const char* op = "squeeze_excite";
  check_defined(op, x, "input");
  check_defined(op, w1, "reduce weight");
  check_defined(op, w2, "expand weight");
  if (amp::autocast_dtype() &&
      (x.dtype() == DType::f32 || w1.dtype() == DType::f32))  // autocast: the FCs in the lower dtype
    return squeeze_excite(amp::autocast_lower(x), amp::autocast_lower(w1), amp::autocast_lower(b1),
                          amp::autocast_lower(w2), amp::autocast_lower(b2));
  check_devices(op, {&x, &w1, &b1, &w2, &b2});
  check_same_dtype(op, {&x, &w1, &b1, &w2, &b2});
  check_floating(op, x);
  ADNN_CHECK(x.dim() == 4 && x.size(1) * x.size(2) > 0, op, ": input must be (N, H, W, C) with H·W > 0, got ",
             x.desc());
  const int64_t N = x.size(0), P = x.size(1) * x.size(2), C = x.size(3), R = w1.dim() == 2 ? w1.size(0) : -1;
  ADNN_CHECK(w1.dim() == 2 && w1.size(1) == C && w2.dim() == 2 && w2.size(0) == C && w2.size(1) == R, op,
             ": weights must be (R, C) and (C, R) for input ", x.desc(), ", got ", describe({&w1, &w2}));
  ADNN_CHECK(!b1.defined() || (b1.dim() == 1 && b1.size(0) == R), op, ": bias ", b1.desc(), " must be (", R, ")");
  ADNN_CHECK(!b2.defined() || (b2.dim() == 1 && b2.size(0) == C), op, ": bias ", b2.desc(), " must be (", C, ")");
  // f16/bf16 natively: x, y and the weights in 16 bits; the pooled means and the gate logits,
  // the math, and the backward's small FCs in f32 (at = the statistics' dtype)
  const DType at = acc_dtype(x.dtype());
  Tensor xc = x.detach().contiguous(), w1c = w1.detach().contiguous(), w2c = w2.detach().contiguous();
  Tensor b1c = b1.defined() ? b1.detach().contiguous() : Tensor(), b2c = b2.defined() ? b2.detach().contiguous() : Tensor();
  const TensorOptions aopt(at, x.device());
  Tensor pooled = empty({N, C}, aopt), logits = empty({N, C}, aopt), y = new_like(x, x.sizes());
  backend::squeeze_excite_forward(xc, w1c, b1c, w2c, b2c, pooled, logits, y, N, P, C, R);
  add_macs(2 * N * C * R);
  Shape xs = x.sizes();
  autograd::record(op, {x, w1, b1, w2, b2}, y, [=](const Tensor& g, const std::vector<bool>& need) {
    NoGradGuard ng;
    amp::Autocast off(std::nullopt);
    // gate: gx = g·σ(a), dL/da = σ'(a)·Σ_p g·x (the sigmoid-gate backward kernel; ga in at)
    Tensor gx = new_like(xc, xs), ga = empty({N, C}, aopt);
    backend::sigmoid_gate_backward(g.contiguous(), xc, logits, gx, ga, N, P, C, true);
    // the two FCs in at (small: N·R and R·C values), recomputed from the pooled means
    const Tensor w1a = w1c.to(at), w2a = w2c.to(at), b1a = b1c.defined() ? b1c.to(at) : Tensor();
    Tensor z1 = linear(pooled, w1a, b1a);  // (N, R)
    Tensor h = silu(z1);                    // (N, R)
    Tensor dh = matmul(ga, w2a);            // (N, R)
    // dz1 = dh · SiLU'(z1): the unary backward kernel, one launch (five composed ops before)
    Tensor dz1 = new_like(z1, z1.sizes());
    backend::unary_backward(UnaryOp::silu, dh, z1, h, dz1, 0, 0);
    Tensor dpooled = matmul(dz1, w1a);  // (N, C)
    // the mean pool's gradient (N, 1, 1, C), broadcast-added in gx's dtype (one pass over gx)
    gx = add(gx, mul(dpooled, 1.0 / double(P)).to(xc.dtype()).reshape({N, 1, 1, C}));
    auto param_grad = [](const Tensor& grad, const Tensor& param) { return grad.to(param.dtype()); };
    return std::vector<Tensor>{gx, need[1] ? param_grad(matmul(dz1.t(), pooled), w1c) : Tensor(),
                               need[2] ? param_grad(sum(dz1, {0}), b1c) : Tensor(),
                               need[3] ? param_grad(matmul(ga.t(), h), w2c) : Tensor(),
                               need[4] ? param_grad(sum(ga, {0}), b2c) : Tensor()};
  });
  return y;
}

}  // namespace adnn
