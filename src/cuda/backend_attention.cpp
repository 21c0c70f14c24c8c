// The CUDA backend's attention family, in its own translation unit (so that a change to one
// kernel family recompiles only its launches): fused attention (kernels/attention.cuh), the
// CBAM pools and sigmoid gate (kernels/cbam.cuh), squeeze-excite (kernels/se.cuh).
#include "cuda/backend.hpp"
#include "cuda/backend_common.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_mma.cuh"
#include "kernels/cbam.cuh"
#include "kernels/se.cuh"

namespace adnn::cuda {

using namespace backend_detail;

// ---------------------------------------------------------------- attention and CBAM
namespace {
k::AttnDims attn_dims(const cpu::AttnGeom& g) { return {g.B, g.H, g.Lq, g.Lk, g.D, g.scale, g.dropout, g.seed}; }
}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                       const Tensor& lse, const cpu::AttnGeom& g) {
  if (q.dtype() == DType::f16 || q.dtype() == DType::bf16) {  // tensor cores; lse in f32
    ADNN_CHECK(has_tensor_cores() && lse.dtype() == DType::f32, "scaled_dot_product_attention (cuda): ",
               dtype_name(q.dtype()), " needs tensor cores (sm_80+) and an f32 lse");
    if (q.dtype() == DType::f16)
      k::launch_attention_forward_mma(ptr<half>(q), ptr<half>(k), ptr<half>(v), ptr<bool>(mask), ptr<half>(o),
                                      ptr<float>(lse), attn_dims(g), stream());
    else
      k::launch_attention_forward_mma(ptr<bfloat16>(q), ptr<bfloat16>(k), ptr<bfloat16>(v), ptr<bool>(mask),
                                      ptr<bfloat16>(o), ptr<float>(lse), attn_dims(g), stream());
    return;
  }
  float_types(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using T = decltype(tag);
    k::launch_attention_forward<T>(ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<bool>(mask), ptr<T>(o), ptr<T>(lse),
                                   attn_dims(g), stream());
  });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                        const Tensor& go, const Tensor& lse, const Tensor& gq, const Tensor& gk, const Tensor& gv,
                        const cpu::AttnGeom& g) {
  if (q.dtype() == DType::f16 || q.dtype() == DType::bf16) {  // tensor cores, from the f32 lse
    ADNN_CHECK(has_tensor_cores() && lse.dtype() == DType::f32, "scaled_dot_product_attention backward (cuda): ",
               dtype_name(q.dtype()), " needs tensor cores (sm_80+) and an f32 lse");
    Tensor dlt = empty({g.B * g.H * g.Lq}, TensorOptions(DType::f32, kCUDA));
    if (q.dtype() == DType::f16)
      k::launch_attention_backward_mma(ptr<half>(q), ptr<half>(k), ptr<half>(v), ptr<bool>(mask), ptr<half>(o),
                                       ptr<half>(go), ptr<float>(lse), ptr<float>(dlt), ptr<half>(gq), ptr<half>(gk),
                                       ptr<half>(gv), attn_dims(g), stream());
    else
      k::launch_attention_backward_mma(ptr<bfloat16>(q), ptr<bfloat16>(k), ptr<bfloat16>(v), ptr<bool>(mask),
                                       ptr<bfloat16>(o), ptr<bfloat16>(go), ptr<float>(lse), ptr<float>(dlt),
                                       ptr<bfloat16>(gq), ptr<bfloat16>(gk), ptr<bfloat16>(gv), attn_dims(g),
                                       stream());
    return;
  }
  float_types(q.dtype(), "scaled_dot_product_attention backward", [&](auto tag) {
    using T = decltype(tag);
    Tensor dlt = empty({g.B * g.H * g.Lq}, TensorOptions(q.dtype(), kCUDA));
    k::launch_attention_backward<T>(ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<bool>(mask), ptr<T>(o), ptr<T>(go),
                                    ptr<T>(lse), ptr<T>(dlt), ptr<T>(gq), ptr<T>(gk), ptr<T>(gv), attn_dims(g),
                                    stream());
  });
}

void channel_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t N, int64_t P, int64_t C) {
  float_types(x.dtype(), "channel_pool2d", [&](auto tag) {
    using T = decltype(tag);
    k::launch_channel_pool<T>(ptr<T>(x), ptr<T>(out), ptr<int64_t>(argmax), N, P, C, stream());
  });
}
void channel_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t N, int64_t P, int64_t C) {
  float_types(g.dtype(), "channel_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    k::launch_channel_pool_backward<T>(ptr<T>(g), ptr<int64_t>(argmax), ptr<T>(gx), N, P, C, stream());
  });
}
void spatial_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t M, int64_t C) {
  float_types(x.dtype(), "spatial_pool2d", [&](auto tag) {
    using T = decltype(tag);
    k::launch_spatial_pool<T>(ptr<T>(x), ptr<T>(out), ptr<int64_t>(argmax), M, C, stream());
  });
}
void spatial_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t M, int64_t C) {
  float_types(g.dtype(), "spatial_pool2d backward", [&](auto tag) {
    using T = decltype(tag);
    k::launch_spatial_pool_backward<T>(ptr<T>(g), ptr<int64_t>(argmax), ptr<T>(gx), M, C, stream());
  });
}
void sigmoid_gate(const Tensor& x, const Tensor& a, const Tensor& y, int64_t N, int64_t P, int64_t C, bool channel) {
  float_types(x.dtype(), "sigmoid_gate", [&](auto tag) {
    using T = decltype(tag);
    k::launch_sigmoid_gate<T>(ptr<T>(x), ptr<T>(a), ptr<T>(y), N, P, C, channel ? k::gate_channel : k::gate_spatial,
                              stream());
  });
}
void sigmoid_gate_backward(const Tensor& g, const Tensor& x, const Tensor& a, const Tensor& gx, const Tensor& ga,
                           int64_t N, int64_t P, int64_t C, bool channel) {
  float_types(x.dtype(), "sigmoid_gate backward", [&](auto tag) {
    using T = decltype(tag);
    k::launch_sigmoid_gate_backward<T>(ptr<T>(g), ptr<T>(x), ptr<T>(a), ptr<T>(gx), ptr<T>(ga), N, P, C,
                                       channel ? k::gate_channel : k::gate_spatial, stream());
  });
}

void squeeze_excite_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& pooled, const Tensor& logits, const Tensor& y, int64_t N, int64_t P, int64_t C, int64_t R) {
  float_types(x.dtype(), "squeeze_excite", [&](auto tag) {
    using T = decltype(tag);
    k::launch_squeeze_excite<T>(ptr<T>(x), ptr<T>(w1), ptr<T>(b1), ptr<T>(w2), ptr<T>(b2), ptr<T>(pooled),
                                ptr<T>(logits), ptr<T>(y), N, P, C, R, stream());
  });
}

}  // namespace adnn::cuda
