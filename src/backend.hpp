#pragma once
// Device dispatch: each backend entry point runs on the CPU kernels (src/cpu) or the CUDA
// backend (src/cuda/backend.cpp) according to the device of its first tensor argument.
// Generated from the declarations in src/cpu/kernels.hpp; keep the two lists in step.
#include <adnn/config.hpp>

#include "cpu/kernels.hpp"
#if ADNN_WITH_CUDA_BACKEND
#include <adnn/cuda/runtime.hpp>

#include "cuda/backend.hpp"
#endif

namespace adnn::backend {

using cpu::ConvGeom;
using cpu::InterpTaps;
using cpu::PoolGeom;
using cpu::AttnGeom;

inline void copy(const Tensor& src, const Tensor& dst) {
#if ADNN_WITH_CUDA_BACKEND
  if (src.device().is_cuda()) return cuda::copy(src, dst);
#endif
  cpu::copy(src, dst);
}
inline void fill(const Tensor& dst, double value) {
#if ADNN_WITH_CUDA_BACKEND
  if (dst.device().is_cuda()) return cuda::fill(dst, value);
#endif
  cpu::fill(dst, value);
}
inline void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::unary(op, x, out, p0, p1);
#endif
  cpu::unary(op, x, out, p0, p1);
}
inline void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& gx, double p0, double p1) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::unary_backward(op, g, x, y, gx, p0, p1);
#endif
  cpu::unary_backward(op, g, x, y, gx, p0, p1);
}
inline void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
#if ADNN_WITH_CUDA_BACKEND
  if (a.device().is_cuda()) return cuda::binary(op, a, b, out);
#endif
  cpu::binary(op, a, b, out);
}
inline void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
#if ADNN_WITH_CUDA_BACKEND
  if (cond.device().is_cuda()) return cuda::where(cond, a, b, out);
#endif
  cpu::where(cond, a, b, out);
}
inline void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::reduce_rows(op, x, out, rows, R);
#endif
  cpu::reduce_rows(op, x, out, rows, R);
}
inline void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::argmax_rows(x, out, rows, R);
#endif
  cpu::argmax_rows(x, out, rows, R);
}
inline void bmm(const Tensor& a, const Tensor& b, const Tensor& c) {
#if ADNN_WITH_CUDA_BACKEND
  if (a.device().is_cuda()) return cuda::bmm(a, b, c);
#endif
  cpu::bmm(a, b, c);
}
inline void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::softmax(x, y, outer, D, inner, log);
#endif
  cpu::softmax(x, y, outer, D, inner, log);
}
inline void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D, int64_t inner, bool log) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::softmax_backward(g, y, gx, outer, D, inner, log);
#endif
  cpu::softmax_backward(g, y, gx, outer, D, inner, log);
}
inline void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean, const Tensor& invstd, const Tensor& y, int64_t M, int64_t C, bool compute_stats, double eps, int act, const Tensor& residual, const Tensor& scale, int64_t rows_per_sample) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::batch_norm_forward(x, weight, bias, mean, invstd, y, M, C, compute_stats, eps, act, residual, scale, rows_per_sample);
#endif
  cpu::batch_norm_forward(x, weight, bias, mean, invstd, y, M, C, compute_stats, eps, act, residual, scale, rows_per_sample);
}
inline void batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean, const Tensor& invstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M, int64_t C, bool training, int act) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::batch_norm_backward(g, x, weight, bias, mean, invstd, gx, gw, gb, M, C, training, act);
#endif
  cpu::batch_norm_backward(g, x, weight, bias, mean, invstd, gx, gw, gb, M, C, training, act);
}
inline void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, const Tensor& mean, const Tensor& rstd, int64_t M, int64_t D, double eps) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::layer_norm_forward(x, weight, bias, y, mean, rstd, M, D, eps);
#endif
  cpu::layer_norm_forward(x, weight, bias, y, mean, rstd, M, D, eps);
}
inline void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M, int64_t D) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::layer_norm_backward(g, x, weight, mean, rstd, gx, gw, gb, M, D);
#endif
  cpu::layer_norm_backward(g, x, weight, mean, rstd, gx, gw, gb, M, D);
}
inline void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::conv2d_forward(x, w, bias, y, g);
#endif
  cpu::conv2d_forward(x, w, bias, y, g);
}
inline void conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb, const ConvGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (gy.device().is_cuda()) return cuda::conv2d_backward(gy, x, w, gx, gw, gb, g);
#endif
  cpu::conv2d_backward(gy, x, w, gx, gw, gb, g);
}
inline void max_pool2d_forward(const Tensor& x, const Tensor& y, const Tensor& argmax, const PoolGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::max_pool2d_forward(x, y, argmax, g);
#endif
  cpu::max_pool2d_forward(x, y, argmax, g);
}
inline void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (gy.device().is_cuda()) return cuda::max_pool2d_backward(gy, argmax, gx, g);
#endif
  cpu::max_pool2d_backward(gy, argmax, gx, g);
}
inline void avg_pool2d_forward(const Tensor& x, const Tensor& y, const PoolGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::avg_pool2d_forward(x, y, g);
#endif
  cpu::avg_pool2d_forward(x, y, g);
}
inline void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (gy.device().is_cuda()) return cuda::avg_pool2d_backward(gy, gx, g);
#endif
  cpu::avg_pool2d_backward(gy, gx, g);
}
inline void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t D, int64_t inner) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::index_select(x, index, out, outer, D, inner);
#endif
  cpu::index_select(x, index, out, outer, D, inner);
}
inline void index_add(const Tensor& g, const Tensor& index, const Tensor& gx, int64_t outer, int64_t D, int64_t inner) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::index_add(g, index, gx, outer, D, inner);
#endif
  cpu::index_add(g, index, gx, outer, D, inner);
}
inline void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::gather(x, dim, index, out);
#endif
  cpu::gather(x, dim, index, out);
}
inline void scatter_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::scatter_add(g, dim, index, gx);
#endif
  cpu::scatter_add(g, dim, index, gx);
}
inline void interpolate_forward(const Tensor& x, const Tensor& y, const InterpTaps& ty, const InterpTaps& tx) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::interpolate_forward(x, y, ty, tx);
#endif
  cpu::interpolate_forward(x, y, ty, tx);
}
inline void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpTaps& ty, const InterpTaps& tx) {
#if ADNN_WITH_CUDA_BACKEND
  if (gy.device().is_cuda()) return cuda::interpolate_backward(gy, gx, ty, tx);
#endif
  cpu::interpolate_backward(gy, gx, ty, tx);
}

// Whether f16/bf16 attention on q's device runs the tensor-core kernel (kernels/attention_mma.cuh).
inline bool attention_tensor_cores(const Tensor& q) {
#if ADNN_WITH_CUDA_BACKEND
  return q.device().is_cuda() && cuda::has_tensor_cores();
#else
  (void)q;
  return false;
#endif
}
inline void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o, const Tensor& lse, const AttnGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (q.device().is_cuda()) return cuda::attention_forward(q, k, v, mask, o, lse, g);
#endif
  cpu::attention_forward(q, k, v, mask, o, lse, g);
}
inline void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o, const Tensor& go, const Tensor& lse, const Tensor& gq, const Tensor& gk, const Tensor& gv, const AttnGeom& g) {
#if ADNN_WITH_CUDA_BACKEND
  if (q.device().is_cuda()) return cuda::attention_backward(q, k, v, mask, o, go, lse, gq, gk, gv, g);
#endif
  cpu::attention_backward(q, k, v, mask, o, go, lse, gq, gk, gv, g);
}
inline void channel_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t N, int64_t P, int64_t C) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::channel_pool(x, out, argmax, N, P, C);
#endif
  cpu::channel_pool(x, out, argmax, N, P, C);
}
inline void channel_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t N, int64_t P, int64_t C) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::channel_pool_backward(g, argmax, gx, N, P, C);
#endif
  cpu::channel_pool_backward(g, argmax, gx, N, P, C);
}
inline void spatial_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t M, int64_t C) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::spatial_pool(x, out, argmax, M, C);
#endif
  cpu::spatial_pool(x, out, argmax, M, C);
}
inline void spatial_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t M, int64_t C) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::spatial_pool_backward(g, argmax, gx, M, C);
#endif
  cpu::spatial_pool_backward(g, argmax, gx, M, C);
}
inline void sigmoid_gate(const Tensor& x, const Tensor& a, const Tensor& y, int64_t N, int64_t P, int64_t C, bool channel) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::sigmoid_gate(x, a, y, N, P, C, channel);
#endif
  cpu::sigmoid_gate(x, a, y, N, P, C, channel);
}
inline void sigmoid_gate_backward(const Tensor& g, const Tensor& x, const Tensor& a, const Tensor& gx, const Tensor& ga, int64_t N, int64_t P, int64_t C, bool channel) {
#if ADNN_WITH_CUDA_BACKEND
  if (g.device().is_cuda()) return cuda::sigmoid_gate_backward(g, x, a, gx, ga, N, P, C, channel);
#endif
  cpu::sigmoid_gate_backward(g, x, a, gx, ga, N, P, C, channel);
}

inline void squeeze_excite_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& pooled, const Tensor& logits, const Tensor& y, int64_t N, int64_t P, int64_t C, int64_t R) {
#if ADNN_WITH_CUDA_BACKEND
  if (x.device().is_cuda()) return cuda::squeeze_excite_forward(x, w1, b1, w2, b2, pooled, logits, y, N, P, C, R);
#endif
  cpu::squeeze_excite_forward(x, w1, b1, w2, b2, pooled, logits, y, N, P, C, R);
}

}  // namespace adnn::backend
