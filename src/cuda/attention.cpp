// The attention family's launchers: the SIMT kernels (kernels/attention.cuh) for f32/f64, the
// tensor-core kernels (kernels/attention_mma.cuh) for f16/bf16.
#include "cuda/backend.hpp"
#include "cuda/launch.hpp"
#include "kernels/attention.cuh"
#include "kernels/attention_mma.cuh"

namespace adnn::cuda {

using namespace launch_detail;

namespace {
// Inside a graph capture the kernels read the graph's replay salt, so replays draw new masks.
AttnGeom with_graph_salt(AttnGeom g) {
  if (g.dropout > 0) g.salt = capture_rng_salt(current_stream());
  return g;
}
}  // namespace

void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                       const Tensor& lse, const AttnGeom& g0) {
  const AttnGeom g = with_graph_salt(g0);
  if (q.dtype() == DType::f16 || q.dtype() == DType::bf16) {  // tensor cores; lse in f32
    ADNN_CHECK(has_tensor_cores() && lse.dtype() == DType::f32, "scaled_dot_product_attention (cuda): ",
               dtype_name(q.dtype()), " needs tensor cores (sm_80+) and an f32 lse");
    if (q.dtype() == DType::f16)
      k::launch_attention_forward_mma(ptr<half>(q), ptr<half>(k), ptr<half>(v), ptr<bool>(mask), ptr<half>(o),
                                      ptr<float>(lse), g, stream());
    else
      k::launch_attention_forward_mma(ptr<bfloat16>(q), ptr<bfloat16>(k), ptr<bfloat16>(v), ptr<bool>(mask),
                                      ptr<bfloat16>(o), ptr<float>(lse), g, stream());
    return;
  }
  float_types(q.dtype(), "scaled_dot_product_attention", [&](auto tag) {
    using T = decltype(tag);
    k::launch_attention_forward<T>(ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<bool>(mask), ptr<T>(o), ptr<T>(lse),
                                   g, stream());
  });
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                        const Tensor& go, const Tensor& lse, const Tensor& gq, const Tensor& gk, const Tensor& gv,
                        const AttnGeom& g0) {
  const AttnGeom g = with_graph_salt(g0);
  if (q.dtype() == DType::f16 || q.dtype() == DType::bf16) {  // tensor cores, from the f32 lse
    ADNN_CHECK(has_tensor_cores() && lse.dtype() == DType::f32, "scaled_dot_product_attention backward (cuda): ",
               dtype_name(q.dtype()), " needs tensor cores (sm_80+) and an f32 lse");
    Tensor dlt = empty({g.B * g.H * g.Lq}, TensorOptions(DType::f32, kCUDA));
    if (q.dtype() == DType::f16)
      k::launch_attention_backward_mma(ptr<half>(q), ptr<half>(k), ptr<half>(v), ptr<bool>(mask), ptr<half>(o),
                                       ptr<half>(go), ptr<float>(lse), ptr<float>(dlt), ptr<half>(gq), ptr<half>(gk),
                                       ptr<half>(gv), g, stream());
    else
      k::launch_attention_backward_mma(ptr<bfloat16>(q), ptr<bfloat16>(k), ptr<bfloat16>(v), ptr<bool>(mask),
                                       ptr<bfloat16>(o), ptr<bfloat16>(go), ptr<float>(lse), ptr<float>(dlt),
                                       ptr<bfloat16>(gq), ptr<bfloat16>(gk), ptr<bfloat16>(gv), g,
                                       stream());
    return;
  }
  float_types(q.dtype(), "scaled_dot_product_attention backward", [&](auto tag) {
    using T = decltype(tag);
    Tensor dlt = empty({g.B * g.H * g.Lq}, TensorOptions(q.dtype(), kCUDA));
    k::launch_attention_backward<T>(ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<bool>(mask), ptr<T>(o), ptr<T>(go),
                                    ptr<T>(lse), ptr<T>(dlt), ptr<T>(gq), ptr<T>(gk), ptr<T>(gv), g,
                                    stream());
  });
}

}  // namespace adnn::cuda
