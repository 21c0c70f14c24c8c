// Every differentiable op: finite-difference gradients (contiguous and non-contiguous
// inputs, f64), f32 forward against f64, and exact forward values.
#include <adnn/optim/ema.hpp>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
using V = std::vector<Tensor>;

namespace {

InputSpec index_in(std::vector<int64_t> v, Shape s) {
  return InputSpec{s, Domain::any, false, [v, s] { return from_vector(v, s, DType::i64); }};
}
// a buffer made fresh for each call (e.g. running statistics)
InputSpec fixed_in(std::function<Tensor()> f) { return InputSpec{{}, Domain::any, false, std::move(f)}; }

Conv2dOptions conv(int64_t s, int64_t p, int64_t d = 1, int64_t g = 1, bool same = false) {
  Conv2dOptions o;
  o.stride = {s, s};
  o.padding = {p, p, p, p};
  o.dilation = {d, d};
  o.groups = g;
  o.same = same;
  return o;
}
Pool2dOptions pool(int64_t k, int64_t s, int64_t p, bool include_pad = true) {
  Pool2dOptions o;
  o.kernel = {k, k};
  o.stride = {s, s};
  o.padding = {p, p};
  o.count_include_pad = include_pad;
  return o;
}

Register elementwise_cases({
    {"add", {in({2, 3}), in({2, 3})}, [](const V& x) { return add(x[0], x[1]); }},
    {"add_broadcast", {in({2, 1, 3}), in({4, 1})}, [](const V& x) { return add(x[0], x[1]); }},
    {"sub_broadcast", {in({3}), in({2, 3})}, [](const V& x) { return sub(x[0], x[1]); }},
    {"mul_broadcast", {in({2, 3, 1}), in({1, 4})}, [](const V& x) { return mul(x[0], x[1]); }},
    {"div_broadcast", {in({2, 3}), in({3}, Domain::positive)}, [](const V& x) { return div(x[0], x[1]); }},
    {"pow_tensor", {in({2, 3}, Domain::positive), in({2, 1})}, [](const V& x) { return pow(x[0], x[1]); }},
    {"pow_scalar", {in({2, 3}, Domain::positive)}, [](const V& x) { return pow(x[0], 2.5); }},
    {"add_scalar", {in({2, 3})}, [](const V& x) { return add(x[0], 0.7); }},
    {"mul_scalar", {in({2, 3})}, [](const V& x) { return mul(x[0], -1.3); }},
    {"rsub_scalar", {in({2, 3})}, [](const V& x) { return 2.0 - x[0]; }},
    {"rdiv_scalar", {in({2, 3}, Domain::positive)}, [](const V& x) { return 1.5 / x[0]; }},
    {"maximum", {in({3, 4}), in({4})}, [](const V& x) { return maximum(x[0], x[1]); }},
    {"minimum", {in({3, 4}), in({3, 1})}, [](const V& x) { return minimum(x[0], x[1]); }},
    {"neg", {in({2, 3})}, [](const V& x) { return neg(x[0]); }},
    {"exp", {in({2, 3})}, [](const V& x) { return exp(x[0]); }},
    {"log", {in({2, 3}, Domain::positive)}, [](const V& x) { return log(x[0]); }},
    {"sqrt", {in({2, 3}, Domain::positive)}, [](const V& x) { return sqrt(x[0]); }},
    {"rsqrt", {in({2, 3}, Domain::positive)}, [](const V& x) { return rsqrt(x[0]); }},
    {"abs", {in({2, 3})}, [](const V& x) { return abs(x[0]); }},
    {"clamp", {in({3, 4})}, [](const V& x) { return clamp(x[0], -0.5, 0.7); }},
    {"clamp_lo", {in({3, 4})}, [](const V& x) { return clamp(x[0], 0.1, std::nullopt); }},
    {"where", {bool_in({1, 0, 1, 0, 0, 1}, {2, 3}), in({2, 3}), in({3})},
     [](const V& x) { return where(x[0], x[1], x[2]); }},
    {"relu", {in({3, 4})}, [](const V& x) { return relu(x[0]); }},
    {"leaky_relu", {in({3, 4})}, [](const V& x) { return leaky_relu(x[0], 0.2); }},
    {"sigmoid", {in({3, 4})}, [](const V& x) { return sigmoid(x[0]); }},
    {"tanh", {in({3, 4})}, [](const V& x) { return tanh(x[0]); }},
    {"silu", {in({3, 4})}, [](const V& x) { return silu(x[0]); }},
    {"gelu", {in({3, 4})}, [](const V& x) { return gelu(x[0]); }},
    // arange on the input's device (the elementwise family's arange_fill entry)
    {"arange_scale", {in({2, 5})},
     [](const V& x) { return mul(x[0], arange(-1.0, 1.5, 0.5, TensorOptions(x[0].dtype(), x[0].device()))); }},
    {"operators", {in({2, 3}), in({2, 3}, Domain::positive)},
     [](const V& x) { return (x[0] * 2.0 + 1.0 - x[1]) / x[1] + 3.0 / x[1] - (-x[0]); }},
});

Register reduction_cases({
    {"sum_all", {in({2, 3, 4})}, [](const V& x) { return sum(x[0]); }},
    {"sum_dims", {in({2, 3, 4})}, [](const V& x) { return sum(x[0], {0, 2}); }},
    {"sum_keepdim", {in({2, 3, 4})}, [](const V& x) { return sum(x[0], {-1}, true); }},
    {"mean_dims", {in({2, 3, 4})}, [](const V& x) { return mean(x[0], {1}); }},
    // reduced dims at the front or in the middle of a contiguous input: read in place as
    // (outer, R, inner) columns (reduce_cols); the non-contiguous variants take the rows path
    {"sum_leading_dims", {in({3, 4, 5})}, [](const V& x) { return sum(x[0], {0, 1}); }},
    {"sum_batch_wide", {in({2, 40})}, [](const V& x) { return sum(x[0], {0}); }},
    {"amax_middle", {in({2, 5, 3}, Domain::distinct)}, [](const V& x) { return amax(x[0], {1}); }},
    {"amin_leading", {in({4, 3}, Domain::distinct)}, [](const V& x) { return amin(x[0], {0}); }},
    {"amax", {in({3, 4}, Domain::distinct)}, [](const V& x) { return amax(x[0], {1}); }},
    {"amin_all", {in({3, 4}, Domain::distinct)}, [](const V& x) { return amin(x[0]); }},
    {"max_dim", {in({3, 5}, Domain::distinct)}, [](const V& x) { return max(x[0], 0).first; }},
    {"var", {in({3, 5})}, [](const V& x) { return var(x[0], {1}); }},
    {"var_biased_keep", {in({2, 3, 4})}, [](const V& x) { return var(x[0], {0, 2}, 0, true); }},
});

Register linalg_cases({
    {"matmul_2d", {in({3, 4}), in({4, 5})}, [](const V& x) { return matmul(x[0], x[1]); }},
    {"matmul_batched_broadcast", {in({2, 1, 3, 4}), in({3, 4, 2})}, [](const V& x) { return matmul(x[0], x[1]); }},
    {"matmul_nd_2d", {in({2, 3, 4}), in({4, 2})}, [](const V& x) { return matmul(x[0], x[1]); }},
    {"matmul_vec", {in({4}), in({4, 3})}, [](const V& x) { return matmul(x[0], x[1]); }},
    {"matmul_mat_vec", {in({3, 4}), in({4})}, [](const V& x) { return matmul(x[0], x[1]); }},
    {"matmul_transposed", {in({4, 3}), in({5, 4})}, [](const V& x) { return matmul(x[0].t(), x[1].t()); }},
    {"linear", {in({2, 3, 4}), in({5, 4}), in({5})}, [](const V& x) { return linear(x[0], x[1], x[2]); }},
});

Register conv_cases({
    {"conv2d_3x3", {in({2, 5, 5, 3}), in({4, 3, 3, 3}), in({4})},
     [](const V& x) { return conv2d(x[0], x[1], x[2], conv(1, 1)); }},
    {"conv2d_stride2_nopad", {in({1, 6, 7, 2}), in({3, 3, 3, 2})},
     [](const V& x) { return conv2d(x[0], x[1], {}, conv(2, 0)); }},
    {"conv2d_same_stride2", {in({1, 6, 5, 2}), in({3, 3, 3, 2})},
     [](const V& x) { return conv2d(x[0], x[1], {}, conv(2, 0, 1, 1, true)); }},
    {"conv2d_same_k5", {in({1, 5, 6, 2}), in({2, 5, 5, 2})},
     [](const V& x) { return conv2d(x[0], x[1], {}, conv(1, 0, 1, 1, true)); }},
    // 32 channels: runs of 128 bytes and more in f32/f64, the direct im2col kernel on cuda
    // (narrower ones stage rows in shared memory: kernels/conv.cuh, im2col_tiling)
    {"conv2d_wide_channels", {in({1, 4, 5, 32}), in({3, 3, 3, 32}), in({3})},
     [](const V& x) { return conv2d(x[0], x[1], x[2], conv(1, 1)); }},
    {"conv2d_dilation", {in({1, 7, 7, 2}), in({2, 3, 3, 2})},
     [](const V& x) { return conv2d(x[0], x[1], {}, conv(1, 2, 2)); }},
    {"conv2d_groups", {in({1, 5, 5, 4}), in({6, 3, 3, 2}), in({6})},
     [](const V& x) { return conv2d(x[0], x[1], x[2], conv(1, 1, 1, 2)); }},
    {"conv2d_depthwise_k3", {in({2, 5, 5, 3}), in({3, 3, 3, 1}), in({3})},
     [](const V& x) { return conv2d(x[0], x[1], x[2], conv(1, 1, 1, 3)); }},
    {"conv2d_depthwise_k5_s2", {in({1, 7, 6, 4}), in({4, 5, 5, 1})},
     [](const V& x) { return conv2d(x[0], x[1], {}, conv(2, 2, 1, 4)); }},
    {"conv2d_depthwise_same_s2", {in({1, 6, 6, 3}), in({3, 3, 3, 1})},
     [](const V& x) { return conv2d(x[0], x[1], {}, conv(2, 0, 1, 3, true)); }},
    {"conv2d_pointwise", {in({2, 3, 3, 4}), in({5, 1, 1, 4}), in({5})},
     [](const V& x) { return conv2d(x[0], x[1], x[2], conv(1, 0)); }},
    {"conv2d_asymmetric_pad", {in({1, 4, 4, 2}), in({2, 2, 3, 2})},
     [](const V& x) {
       Conv2dOptions o;
       o.padding = {0, 1, 2, 0};
       return conv2d(x[0], x[1], {}, o);
     }},
    // padding beyond the kernel's reach ((K − 1)·d − p < 0): the CPU's transposed input
    // gradient (common::transposed_geom) then has negative padding
    {"conv2d_1x1_pad1", {in({1, 3, 4, 2}), in({3, 1, 1, 2}), in({3})},
     [](const V& x) { return conv2d(x[0], x[1], x[2], conv(1, 1)); }},
    {"conv2d_3x3_pad3", {in({1, 3, 4, 2}), in({2, 3, 3, 2})},
     [](const V& x) { return conv2d(x[0], x[1], {}, conv(1, 3)); }},
});

Register norm_cases({
    {"batch_norm_train",
     {in({4, 2, 2, 3}), in({3}), in({3}), fixed_in([] { return zeros({3}, DType::f64); }),
      fixed_in([] { return ones({3}, DType::f64); })},
     [](const V& x) { return batch_norm(x[0], x[3], x[4], x[1], x[2], true, 0.1, 1e-5); }, 1e-4},
    {"batch_norm_eval",
     {in({3, 2, 4}), in({4}), in({4}), fixed_in([] { return from_vector(std::vector<double>{0.1, -0.2, 0.3, 0}, {4}, DType::f64); }),
      fixed_in([] { return from_vector(std::vector<double>{1.5, 0.5, 2.0, 1.0}, {4}, DType::f64); })},
     [](const V& x) { return batch_norm(x[0], x[3], x[4], x[1], x[2], false, 0.1, 1e-5); }},
    {"batch_norm_no_affine", {in({5, 3})}, [](const V& x) { return batch_norm(x[0], {}, {}, {}, {}, true); }, 1e-4},
    // the MBConv epilogue: residual + per-sample scale · BN(x), train and eval
    {"batch_norm_residual_train",
     {in({3, 2, 2, 4}), in({4}), in({4}), fixed_in([] { return zeros({4}, DType::f64); }),
      fixed_in([] { return ones({4}, DType::f64); }), in({3, 2, 2, 4}),
      fixed_in([] { return from_vector(std::vector<double>{0.0, 1.25, 1.25}, {3}, DType::f64); })},
     [](const V& x) { return batch_norm_residual(x[0], x[3], x[4], x[1], x[2], true, 0.1, 1e-5, x[5], x[6]); }, 1e-4},
    {"batch_norm_residual_eval",
     {in({2, 3, 4}), in({4}), in({4}), fixed_in([] { return from_vector(std::vector<double>{0.1, -0.2, 0.3, 0}, {4}, DType::f64); }),
      fixed_in([] { return from_vector(std::vector<double>{1.5, 0.5, 2.0, 1.0}, {4}, DType::f64); }), in({2, 3, 4})},
     [](const V& x) { return batch_norm_residual(x[0], x[3], x[4], x[1], x[2], false, 0.1, 1e-5, x[5]); }},
    // the fused activation (EfficientNet's BN + SiLU, ResNet's BN + ReLU), train and eval
    {"batch_norm_silu_train",
     {in({4, 2, 2, 3}), in({3}), in({3}), fixed_in([] { return zeros({3}, DType::f64); }),
      fixed_in([] { return ones({3}, DType::f64); })},
     [](const V& x) { return batch_norm(x[0], x[3], x[4], x[1], x[2], true, 0.1, 1e-5, NormActivation::silu); }, 1e-4},
    {"batch_norm_silu_eval",
     {in({3, 2, 4}), in({4}), in({4}), fixed_in([] { return from_vector(std::vector<double>{0.1, -0.2, 0.3, 0}, {4}, DType::f64); }),
      fixed_in([] { return from_vector(std::vector<double>{1.5, 0.5, 2.0, 1.0}, {4}, DType::f64); })},
     [](const V& x) { return batch_norm(x[0], x[3], x[4], x[1], x[2], false, 0.1, 1e-5, NormActivation::silu); }},
    {"batch_norm_relu_train",
     {in({6, 5}), in({5}), in({5}), fixed_in([] { return zeros({5}, DType::f64); }),
      fixed_in([] { return ones({5}, DType::f64); })},
     [](const V& x) { return batch_norm(x[0], x[3], x[4], x[1], x[2], true, 0.1, 1e-5, NormActivation::relu); }, 1e-4},
    {"layer_norm", {in({2, 3, 5}), in({5}), in({5})},
     [](const V& x) { return layer_norm(x[0], {5}, x[1], x[2]); }, 1e-4},
    {"layer_norm_2d_shape", {in({2, 3, 4})}, [](const V& x) { return layer_norm(x[0], {3, 4}); }, 1e-4},
    {"group_norm", {in({2, 3, 2, 6}), in({6}), in({6})},
     [](const V& x) { return group_norm(x[0], 3, x[1], x[2]); }, 1e-4},
    {"group_norm_no_affine_1d", {in({3, 5, 4})}, [](const V& x) { return group_norm(x[0], 2); }, 1e-4},
    {"softmax", {in({3, 5})}, [](const V& x) { return softmax(x[0], 1); }},
    {"softmax_dim0", {in({4, 3, 2})}, [](const V& x) { return softmax(x[0], 1); }},
    {"log_softmax", {in({3, 5})}, [](const V& x) { return log_softmax(x[0], -1); }},
    {"dropout", {in({4, 6})},
     [](const V& x) {
       manual_seed(7);  // the same mask on every call
       return dropout(x[0], 0.3, true);
     }},
    {"cross_entropy", {in({4, 5}), index_in({0, 4, 2, 2}, {4})},
     [](const V& x) { return cross_entropy(x[0], x[1]); }},
    {"mse_loss", {in({3, 4}), in({3, 4})}, [](const V& x) { return mse_loss(x[0], x[1]); }},
    // the fused compound loss (loss family): logits, features; soft targets, labels, centers,
    // prior and class weights fixed
    {"compound_loss",
     {in({4, 5}), in({4, 3}), fixed_in([] { return softmax(mul(randn({4, 5}, DType::f64), 2.0), 1); }),
      index_in({0, 4, 2, 2}, {4}), fixed_in([] { return randn({5, 3}, DType::f64); }),
      fixed_in([] { return tensor({0.1, 0.3, 0.2, 0.25, 0.15}, {5}); }),
      fixed_in([] { return tensor({1.0, 0.5, 2.0, 1.5, 0.8}, {5}); })},
     [](const V& x) { return nn::compound_loss(x[0], x[1], x[2], x[3], x[4], x[5], x[6]).total; }},
});

// The optimizer family: two AdamW steps (layer-wise lr and decay per group) on a copy of
// the parameters, the updated parameters as the output (nothing differentiable).
Register optim_cases({
    {"adamw_multi_tensor",
     {fixed_in([] { return randn({3, 4}, DType::f64); }), fixed_in([] { return randn({3, 4}, DType::f64); }),
      fixed_in([] { return randn({70000}, DType::f64); }), fixed_in([] { return randn({70000}, DType::f64); })},
     [](const V& x) {
       Tensor p0 = x[0].to(DType::f32).clone().requires_grad_(), p1 = x[2].to(DType::f32).clone().requires_grad_();
       p0.set_grad(x[1].to(DType::f32).contiguous());
       p1.set_grad(x[3].to(DType::f32).contiguous());
       optim::AdamWOptions o;
       o.lr = 0.01;
       optim::ParamGroup g0, g1;
       g0.params = {p0};
       g0.weight_decay = 0.01;
       g1.params = {p1};
       g1.lr_scale = 0.5;
       optim::AdamW opt(std::vector<optim::ParamGroup>{g0, g1}, o);
       opt.step();
       opt.step();
       return cat({p0.reshape({-1}), p1.reshape({-1})}, 0);
     },
     1e-5, 1e-4, false, false},
    // clip_grad_norm_: two f32 gradients through the multi-tensor norm and scale (one of two
    // chunks), a strided one through the elementwise ops; clipped (the norm is ~265), then
    // again unclipped (coefficient 1: the scale kernel writes nothing); the gradients and both
    // norms as the output
    {"clip_grad_norm_multi_tensor",
     {fixed_in([] { return randn({3, 4}, DType::f64); }), fixed_in([] { return randn({70000}, DType::f64); }),
      fixed_in([] { return randn({4, 3}, DType::f64); })},
     [](const V& x) {
       Tensor p0 = x[0].to(DType::f32).clone().requires_grad_(), p1 = x[1].to(DType::f32).clone().requires_grad_(),
              p2 = x[0].to(DType::f32).clone().requires_grad_();
       p0.set_grad(x[0].to(DType::f32).clone());  // copies: clipping scales the gradients in place
       p1.set_grad(x[1].to(DType::f32).clone());
       p2.set_grad(x[2].to(DType::f32).clone().transpose(0, 1));  // (3, 4), strided
       const Tensor n1 = optim::clip_grad_norm_({p0, p1, p2}, 50.0), n2 = optim::clip_grad_norm_({p0, p1, p2}, 1e6);
       return cat({p0.grad().reshape({-1}), p1.grad().reshape({-1}), p2.grad().reshape({-1}),
                   n1.to(DType::f32).reshape({1}), n2.to(DType::f32).reshape({1})},
                  0);
     },
     1e-5, 1e-4, false, false},
    // the weights' moving average (optim::ModelEma): 40 row pairs (two launches of 32 on
    // cuda), one of 70,000 elements (two chunks), a strided pair through the elementwise ops;
    // lerped twice, at weights 0.25 and 0.9
    {"lerp_multi_tensor",
     {fixed_in([] { return randn({40, 5}, DType::f64); }), fixed_in([] { return randn({70000}, DType::f64); }),
      fixed_in([] { return randn({3, 4}, DType::f64); })},
     [](const V& x) {
       Tensor a = x[0].to(DType::f32).clone(), ea = (x[0] * -0.5 + 1.0).to(DType::f32);  // (40, 5)
       Tensor b = x[1].to(DType::f32).clone(), eb = (x[1] * 3.0).to(DType::f32);         // (70000)
       Tensor c = x[2].to(DType::f32).clone(), ec = (x[2] - 2.0).to(DType::f32).transpose(0, 1).contiguous();
       std::vector<Tensor> xs{b, c.transpose(0, 1)}, es{eb, ec};  // (4, 3) strided, its end contiguous
       for (int64_t i = 0; i < 40; ++i) {
         xs.push_back(a.narrow(0, i, 1));
         es.push_back(ea.narrow(0, i, 1));
       }
       optim::foreach_lerp_(xs, es, 0.25);
       optim::foreach_lerp_(xs, es, 0.9);
       return cat({a.reshape({-1}), b, c.reshape({-1})}, 0);
     },
     1e-5, 1e-4, false, false},
});

Register pool_cases({
    {"max_pool2d", {in({2, 4, 4, 3}, Domain::distinct)}, [](const V& x) { return max_pool2d(x[0], pool(2, 2, 0)); }},
    {"max_pool2d_overlap_pad",
     {in({1, 5, 5, 2}, Domain::distinct)},
     [](const V& x) { return max_pool2d(x[0], pool(3, 2, 1)); }},
    // floor: the last row and column are in no window (their gradient is 0); stride 1 overlaps
    {"max_pool2d_odd_floor",
     {in({1, 5, 7, 3}, Domain::distinct)},
     [](const V& x) { return max_pool2d(x[0], pool(2, 2, 0)); }},
    {"max_pool2d_stride1",
     {in({2, 4, 5, 2}, Domain::distinct)},
     [](const V& x) { return max_pool2d(x[0], pool(2, 1, 0)); }},
    // tiled 2×2/2 windows starting in the padding (the tiled backward kernel's padded corner)
    {"max_pool2d_tiled_pad",
     {in({1, 5, 6, 2}, Domain::distinct)},
     [](const V& x) { return max_pool2d(x[0], pool(2, 2, 1)); }},
    // a window of 289 pixels: its argmax offsets no longer fit a byte (int32 instead of uint8)
    {"max_pool2d_window_i32",
     {in({2, 17, 19, 3}, Domain::distinct)},
     [](const V& x) { return max_pool2d(x[0], pool(17, 2, 0)); }},
    {"avg_pool2d", {in({2, 4, 4, 3})}, [](const V& x) { return avg_pool2d(x[0], pool(2, 2, 0)); }},
    {"avg_pool2d_pad_include", {in({1, 5, 5, 2})}, [](const V& x) { return avg_pool2d(x[0], pool(3, 2, 1, true)); }},
    {"avg_pool2d_pad_exclude", {in({1, 5, 5, 2})}, [](const V& x) { return avg_pool2d(x[0], pool(3, 2, 1, false)); }},
    {"global_avg_pool2d", {in({2, 3, 4, 5})}, [](const V& x) { return global_avg_pool2d(x[0]); }},
    {"interp_nearest", {in({1, 3, 4, 2})}, [](const V& x) { return interpolate(x[0], 5, 7, InterpMode::nearest); }},
    {"interp_bilinear", {in({2, 3, 4, 2})}, [](const V& x) { return interpolate(x[0], 5, 7, InterpMode::bilinear); }},
    {"interp_bilinear_align",
     {in({1, 3, 4, 2})},
     [](const V& x) { return interpolate(x[0], 6, 3, InterpMode::bilinear, true); }},
    {"interp_bicubic", {in({1, 4, 4, 2})}, [](const V& x) { return interpolate(x[0], 7, 5, InterpMode::bicubic); }},
    {"interp_bicubic_align_down",
     {in({1, 6, 5, 1})},
     [](const V& x) { return interpolate(x[0], 3, 4, InterpMode::bicubic, true); }},
});

Register shape_cases({
    {"cat", {in({2, 3}), in({2, 1}), in({2, 2})}, [](const V& x) { return cat({x[0], x[1], x[2]}, 1); }},
    {"stack", {in({2, 3}), in({2, 3})}, [](const V& x) { return stack({x[0], x[1]}, 0); }},
    {"index_select", {in({4, 3}), index_in({3, 0, 3}, {3})}, [](const V& x) { return index_select(x[0], 0, x[1]); }},
    {"index_select_dim1", {in({2, 4, 3}), index_in({1, 1, 2}, {3})},
     [](const V& x) { return index_select(x[0], 1, x[1]); }},
    {"gather", {in({3, 4}), index_in({0, 3, 1, 1, 2, 2}, {3, 2})}, [](const V& x) { return gather(x[0], 1, x[1]); }},
    {"embedding", {in({5, 3}), index_in({4, 0, 4, 1}, {2, 2})}, [](const V& x) { return embedding(x[0], x[1]); }},
    {"reshape", {in({2, 3, 4})}, [](const V& x) { return x[0].reshape({4, -1}); }},
    {"permute", {in({2, 3, 4})}, [](const V& x) { return x[0].permute({2, 0, 1}); }},
    {"transpose", {in({2, 3})}, [](const V& x) { return x[0].transpose(0, 1); }},
    {"slice_step", {in({6, 3})}, [](const V& x) { return x[0].slice(0, 1, 6, 2); }},
    {"narrow", {in({3, 5})}, [](const V& x) { return x[0].narrow(1, 1, 3); }},
    {"select", {in({3, 5})}, [](const V& x) { return x[0].select(0, -1); }},
    {"expand", {in({3, 1})}, [](const V& x) { return x[0].expand({2, 3, 4}); }},
    {"squeeze_unsqueeze", {in({3, 1, 2})}, [](const V& x) { return x[0].squeeze(1).unsqueeze(0); }},
    {"flatten", {in({2, 3, 4})}, [](const V& x) { return x[0].flatten(1); }},
    {"to_f32_and_back", {in({2, 3})}, [](const V& x) { return x[0].to(DType::f32).to(DType::f64); }, 0.1, 1e-4,
     false},
});

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("registry: finite-difference gradients, contiguous and non-contiguous") {
    manual_seed(1234);
    REQUIRE(registry().size() > 80);
    for (auto& c : registry()) {
      for (bool nc : {false, true}) {
        if (nc && !c.noncontig) continue;
        INFO("op " << c.name << std::string(nc ? " (non-contiguous inputs)" : ""));
        auto xs = make_inputs(c, nc);
        if (nc) {
          bool any = false;
          for (size_t i = 0; i < xs.size(); ++i)
            if (!c.inputs[i].make && xs[i].numel() > 1) any = any || !xs[i].is_contiguous();
          CHECK(any);
        }
        gradcheck(c, xs);
      }
    }
  }

  TEST_CASE("registry: f32 forward matches f64") {
    manual_seed(99);
    for (auto& c : registry()) {
      if (!c.check_f32) continue;
      INFO("op " << c.name);
      auto xs = make_inputs(c, false);
      std::vector<Tensor> xf;
      for (auto& x : xs) xf.push_back(x.dtype() == DType::f64 ? x.to(DType::f32) : x);
      Tensor ref = c.fn(xs), got = c.fn(xf);
      REQUIRE(got.dtype() == DType::f32);
      double scale = 1.0;
      for (double v : ref.to_vector()) scale = std::max(scale, std::fabs(v));
      CHECK(max_abs_diff(got, ref) <= c.f32_tol * scale);
    }
  }

  TEST_CASE("exact forward values: elementwise") {
    Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
    Tensor b = tensor({10, 20, 30}, {3});
    check_values(add(a, b), {11, 22, 33, 14, 25, 36});
    check_values(sub(a, b), {-9, -18, -27, -6, -15, -24});
    check_values(mul(a, b), {10, 40, 90, 40, 100, 180});
    check_values(div(b, tensor({2}, {1})), {5, 10, 15});
    check_values(pow(a, 2.0), {1, 4, 9, 16, 25, 36});
    check_values(maximum(a, tensor({3}, {1})), {3, 3, 3, 4, 5, 6});
    check_values(minimum(a, tensor({3}, {1})), {1, 2, 3, 3, 3, 3});
    Tensor x = tensor({-2, -0.5, 0, 0.5, 2}, {5});
    check_values(relu(x), {0, 0, 0, 0.5, 2});
    check_values(leaky_relu(x, 0.1), {-0.2, -0.05, 0, 0.5, 2});
    check_values(abs(x), {2, 0.5, 0, 0.5, 2});
    check_values(neg(x), {2, 0.5, 0, -0.5, -2});
    check_values(clamp(x, -1.0, 1.0), {-1, -0.5, 0, 0.5, 1});
    check_values(sigmoid(tensor({0}, {1})), {0.5});
    check_values(tanh(tensor({0}, {1})), {0});
    check_values(exp(tensor({0, 1}, {2})), {1, 2.718281828459045});
    check_values(log(tensor({1, 2.718281828459045}, {2})), {0, 1});
    check_values(sqrt(tensor({4, 9}, {2})), {2, 3});
    check_values(rsqrt(tensor({4, 0.25}, {2})), {0.5, 2});
    // silu(1) = 1/(1+e^-1); gelu(1) = 0.5 (1 + erf(1/sqrt 2)) = Phi(1)
    check_values(silu(tensor({1}, {1})), {0.7310585786300049});
    check_values(gelu(tensor({1, -1}, {2})), {0.8413447460685429, -0.15865525393145707});
    Tensor c = from_vector(std::vector<double>{1, 0, 1}, {3}, DType::boolean);
    check_values(where(c, tensor({1, 2, 3}, {3}), tensor({-1}, {1})), {1, -1, 3});
    check_values(gt(a, tensor({3}, {1})), {0, 0, 0, 1, 1, 1});
    CHECK(gt(a, tensor({3}, {1})).dtype() == DType::boolean);
  }

  TEST_CASE("group_norm equals its composition from mean and var") {
    manual_seed(21);
    Tensor x = randn({2, 3, 4, 6}, DType::f64), w = randn({6}, DType::f64), b = randn({6}, DType::f64);
    Tensor xr = x.reshape({2, 12, 2, 3}).permute({0, 2, 1, 3});  // (N, G, P, Cg)
    Tensor z = div(sub(xr, mean(xr, {2, 3}, true)), sqrt(add(var(xr, {2, 3}, 0, true), 1e-5)));
    Tensor ref = add(mul(z.permute({0, 2, 1, 3}).reshape({2, 3, 4, 6}), w), b);
    CHECK(max_abs_diff(group_norm(x, 2, w, b), ref) < 1e-12);
    CHECK_THROWS_WITH_AS(group_norm(x, 4), doctest::Contains("6 channels of input f64[2, 3, 4, 6] cpu do not split"),
                         Error);
  }

  TEST_CASE("exact forward values: reductions and linear algebra") {
    Tensor a = tensor({1, 2, 3, 4, 5, 6}, {2, 3});
    check_values(sum(a), {21});
    check_values(sum(a, {0}), {5, 7, 9});
    check_values(sum(a, {1}, true), {6, 15});
    CHECK(sum(a, {1}, true).sizes() == Shape{2, 1});
    check_values(mean(a, {1}), {2, 5});
    check_values(amax(a, {0}), {4, 5, 6});
    check_values(amin(a), {1});
    check_values(argmax(tensor({1, 9, 3, 7, 2, 8}, {2, 3}), 1), {1, 2});
    auto [v, i] = max(tensor({1, 9, 3, 7, 2, 8}, {2, 3}), 0);
    check_values(v, {7, 9, 8});
    check_values(i, {1, 0, 1});
    check_values(var(tensor({1, 2, 3, 4}, {4})), {1.6666666666666667});
    check_values(var(tensor({1, 2, 3, 4}, {4}), {}, 0), {1.25});
    check_values(matmul(a, tensor({1, 0, 0, 1, 1, 1}, {3, 2})), {4, 5, 10, 11});
    check_values(linear(a, tensor({1, 1, 1, 0, 0, 1}, {2, 3}), tensor({1, -1}, {2})), {7, 2, 16, 5});
    check_values(sum(from_vector(std::vector<double>{1, 0, 1, 1}, {4}, DType::boolean)), {3});
  }

  TEST_CASE("exact forward values: nn ops") {
    // conv: 3x3 input of 1..9, one 2x2 all-ones filter, no padding -> window sums
    Tensor x = arange(1, 10, 1, DType::f64).reshape({1, 3, 3, 1});
    Tensor w = ones({1, 2, 2, 1}, DType::f64);
    check_values(conv2d(x, w), {12, 16, 24, 28});
    // padding 1, stride 2 with a 3x3 ones filter
    check_values(conv2d(x, ones({1, 3, 3, 1}, DType::f64), {}, conv(2, 1)), {12, 16, 24, 28});
    // TF same, stride 2 on 3x3 with k=3: total pad 2 -> 1 each side -> same as above
    check_values(conv2d(x, ones({1, 3, 3, 1}, DType::f64), {}, conv(2, 0, 1, 1, true)), {12, 16, 24, 28});
    // TF same, stride 2, k=2 on 3x3: out 2, total pad 1 -> bottom/right only
    check_values(conv2d(x, ones({1, 2, 2, 1}, DType::f64), {}, conv(2, 0, 1, 1, true)), {12, 9, 15, 9});
    // depthwise: channel 0 weight 1, channel 1 weight 2 (1x1)
    Tensor x2 = tensor({1, 10, 2, 20}, {1, 1, 2, 2});
    check_values(conv2d(x2, tensor({1, 2}, {2, 1, 1, 1}), tensor({0.5, 0}, {2}), conv(1, 0, 1, 2)), {1.5, 20, 2.5, 40});
    check_values(softmax(tensor({0, 0.6931471805599453}, {1, 2}), 1), {1.0 / 3, 2.0 / 3});
    check_values(log_softmax(tensor({0, 0}, {1, 2}), 1), {-0.6931471805599453, -0.6931471805599453});
    // softmax with a -inf entry and large logits stays finite
    check_values(softmax(tensor({1000, 1000, -INFINITY}, {3}), 0), {0.5, 0.5, 0});
    check_values(max_pool2d(x, pool(2, 1, 0)), {5, 6, 8, 9});
    check_values(avg_pool2d(x, pool(2, 1, 0)), {3, 4, 6, 7});
    check_values(avg_pool2d(x, pool(3, 3, 1, false)), {3});
    check_values(avg_pool2d(x, pool(3, 3, 1, true)), {12.0 / 9});
    check_values(global_avg_pool2d(x), {5});
    check_values(layer_norm(tensor({1, 3}, {1, 2}), {2}, {}, {}, 0.0), {-1, 1});
    // batch norm (train, no eps): channel values {1, 3} -> {-1, 1}; running stats move by momentum
    Tensor rm = zeros({1}, DType::f64), rv = ones({1}, DType::f64);
    check_values(batch_norm(tensor({1, 3}, {2, 1}), rm, rv, {}, {}, true, 0.5, 0.0), {-1, 1});
    check_values(rm, {1.0});         // 0.5 * 0 + 0.5 * 2
    check_values(rv, {0.5 + 1.0});   // 0.5 * 1 + 0.5 * unbiased var 2
    // eval uses running stats
    check_values(batch_norm(tensor({2.5}, {1, 1}), rm, rv, {}, {}, false, 0.1, 0.0), {1.5 / std::sqrt(1.5)});
    // interpolation: 1-D ramp [0, 1] upsampled to 4 (half-pixel) -> 0, .25, .75, 1
    Tensor r = tensor({0, 1}, {1, 1, 2, 1});
    check_values(interpolate(r, 1, 4, InterpMode::bilinear), {0, 0.25, 0.75, 1});
    check_values(interpolate(r, 1, 3, InterpMode::bilinear, true), {0, 0.5, 1});
    check_values(interpolate(r, 1, 4, InterpMode::nearest), {0, 0, 1, 1});
    // bicubic, A = -0.75: upsampling the ramp 0..7 by 2; output 4 sits at source 1.75, taps
    // w(1.75) = -0.03515625, w(0.75) = 0.26171875, w(0.25) = 0.87890625, w(1.25) = -0.10546875
    Tensor ramp = arange(0, 8, 1, DType::f64).reshape({1, 1, 8, 1});
    auto bc = interpolate(ramp, 1, 16, InterpMode::bicubic).to_vector();
    CHECK(bc[4] == doctest::Approx(1.703125));
    CHECK(bc[5] == doctest::Approx(2.296875));
    check_values(interpolate(full({1, 3, 4, 2}, 2.5, DType::f64), 7, 5, InterpMode::bicubic), std::vector<double>(70, 2.5));
    check_values(cat({tensor({1, 2}, {1, 2}), tensor({3, 4}, {1, 2})}, 0), {1, 2, 3, 4});
    check_values(stack({tensor({1, 2}, {2}), tensor({3, 4}, {2})}, 1), {1, 3, 2, 4});
    Tensor idx = from_vector(std::vector<int64_t>{2, 0}, {2});
    check_values(index_select(tensor({1, 2, 3, 4, 5, 6}, {3, 2}), 0, idx), {5, 6, 1, 2});
    check_values(embedding(tensor({1, 2, 3, 4, 5, 6}, {3, 2}), idx), {5, 6, 1, 2});
    check_values(gather(tensor({1, 2, 3, 4}, {2, 2}), 1, from_vector(std::vector<int64_t>{1, 1, 0, 1}, {2, 2})),
                 {2, 2, 3, 4});
    check_values(cross_entropy(tensor({0, 0}, {1, 2}), from_vector(std::vector<int64_t>{1}, {1})),
                 {0.6931471805599453});
    // dropout: eval is identity; train keeps E[x] and zeroes about p
    Tensor big = ones({10000});
    CHECK(dropout(big, 0.3, false).is_same(big));
    auto d = dropout(big, 0.3, true).to_vector();
    int zeros_n = 0;
    for (double v : d) {
      if (v == 0) ++zeros_n;
      else CHECK(v == doctest::Approx(1 / 0.7));
    }
    CHECK(zeros_n > 2700);
    CHECK(zeros_n < 3300);
  }

  TEST_CASE("max_pool2d: the first of tied maxima wins, a NaN wins and propagates (torch), its gradient follows") {
    const double nan = std::nan(""), inf = INFINITY;
    // x (1, 2, 4, 4), listed by pixel (h, w) with its channels c0 … c3; two 2×2 windows (w 0–1, 2–3)
    const std::vector<double> v = {
        5, 5,   -inf, -inf,  // (0, 0)
        5, nan, -inf, -inf,  // (0, 1)
        1, nan, -2,   nan,   // (0, 2)
        2, 8,   -1,   1,     // (0, 3)
        5, 9,   3,    -inf,  // (1, 0)
        5, 1,   -inf, -inf,  // (1, 1)
        7, 9,   -4,   nan,   // (1, 2)
        7, 9,   -3,   2,     // (1, 3)
    };
    // window 0: c0 four tied 5s (the first, (0,0), wins); c1 5 NaN 9 1 (the NaN wins, a later 9
    // does not displace it); c2 -inf -inf 3 -inf; c3 all -inf (the first pixel's: a winner, so
    // its gradient is not lost). window 1: c0 1 2 7 7 (the first 7, (1,2)); c1 NaN 8 9 9 (the
    // leading NaN stays); c2 -2 -1 -4 -3; c3 NaN 1 NaN 2 (the last NaN, (1,2), as torch's CPU).
    const std::vector<double> y_want = {5, nan, 3, -inf, 7, nan, -1, nan};
    // gy = 1 … 8 lands on each winner: flat indices (h·4 + w)·4 + c
    std::vector<double> gx_want(32, 0.0);
    for (auto [i, g] : {std::pair{0, 1}, {5, 2}, {18, 3}, {3, 4}, {24, 5}, {9, 6}, {14, 7}, {27, 8}})
      gx_want[size_t(i)] = g;
    for (Device dev : {kCPU, kCUDA}) {
      if (dev.is_cuda() && !cuda_is_available()) continue;
      for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
        CAPTURE(dev.str());
        CAPTURE(dtype_name(t));
        Tensor x = from_vector(v, {1, 2, 4, 4}).to(t).to(dev).requires_grad_();
        Tensor y = max_pool2d(x, pool(2, 2, 0));  // (1, 1, 2, 4)
        const auto got = y.to(DType::f64).to(kCPU).to_vector();
        REQUIRE(got.size() == y_want.size());
        for (size_t i = 0; i < got.size(); ++i) {
          CAPTURE(i);
          if (std::isnan(y_want[i]))
            CHECK(std::isnan(got[i]));
          else
            CHECK(got[i] == y_want[i]);
        }
        Tensor gy = tensor({1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4}).to(t).to(dev);  // (1, 1, 2, 4)
        y.backward(gy);
        check_values(x.grad().to(DType::f64).to(kCPU), gx_want);
      }
    }
  }

  TEST_CASE("reduced-precision inputs compute in f32") {
    for (DType t : {DType::f16, DType::bf16}) {
      Tensor a = tensor({1, 2, 3, 4}, {2, 2}, t);
      Tensor y = matmul(relu(a), a);
      CHECK(y.dtype() == t);
      check_values(y, {7, 10, 15, 22});
      check_values(softmax(tensor({0, 0}, {2}, t), 0), {0.5, 0.5});
      check_values(sum(a, {0}), {4, 6});
    }
  }

  TEST_CASE("16-bit reductions: f32 sums (no f16 overflow in mean/var), exact tie counts in amax/amin backward") {
    for (Device dev : {kCPU, kCUDA}) {
      if (dev.is_cuda() && !cuda_is_available()) continue;
      CAPTURE(dev.str());
      // 70,000 f16 ones: the sum is beyond f16's 65,504, the mean is 1 (scaled before rounding)
      Tensor ones16 = ones({70000, 2}, TensorOptions(DType::f16, dev));
      CHECK(mean(ones16, {0}).dtype() == DType::f16);
      check_values(mean(ones16, {0}), {1, 1});
      check_values(var(ones16, {0}), {0, 0});
      CHECK(std::isinf(sum(ones16, {0}).to(DType::f32).to(kCPU).to_vector<float>()[0]));  // as torch: f16 overflows
      {
        amp::Autocast ac(DType::f16);
        CHECK(sum(ones16, {0}).dtype() == DType::f32);  // autocast: reductions return f32
        check_values(sum(ones16, {0}), {70000, 70000});
      }
      // 257 tied maxima in bf16 (257 is not a bf16 number): each gets 1/257 of the gradient
      for (bool leading : {true, false}) {
        CAPTURE(leading);
        Tensor x = zeros(leading ? Shape{257, 3} : Shape{3, 257}, TensorOptions(DType::bf16, dev)).requires_grad_();
        sum(amax(x, {leading ? 0 : 1})).backward();
        CHECK(x.grad().dtype() == DType::bf16);
        const double want = double(float(bfloat16(1.0f / 257)));
        for (double v : x.grad().to(DType::f64).to(kCPU).to_vector()) CHECK(v == want);
      }
      // an empty outer extent with a long reduced dim (the column path's slice count)
      Tensor e = zeros({0, 1000, 4}, TensorOptions(DType::f32, dev));
      CHECK(sum(e, {1}).sizes() == Shape{0, 4});
      CHECK(amax(zeros({2, 1000, 4}, TensorOptions(DType::f32, dev)), {1}).sizes() == Shape{2, 4});
    }
  }
}
