#pragma once
// The CUDA backend: the same entry points as src/cpu/kernels.hpp, for tensors on `cuda`.
// Each launches kernels from kernels/ (real GPU or SIMT emulator) on the current stream.
#include "cpu/kernels.hpp"

namespace adnn::cuda {
using cpu::ConvGeom;
using cpu::InterpTaps;
using cpu::PoolGeom;

void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1);
void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& gx, double p0, double p1);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);
void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R);
void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R);
void bmm(const Tensor& a, const Tensor& b, const Tensor& c);
void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log);
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D, int64_t inner, bool log);
void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean, const Tensor& invstd, const Tensor& y, int64_t M, int64_t C, bool compute_stats, double eps, int act, const Tensor& residual, const Tensor& scale, int64_t rows_per_sample);
void batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean, const Tensor& invstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M, int64_t C, bool training, int act);
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y, const Tensor& mean, const Tensor& rstd, int64_t M, int64_t D, double eps);
void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd, const Tensor& gx, const Tensor& gw, const Tensor& gb, int64_t M, int64_t D);
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g);
void conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw, const Tensor& gb, const ConvGeom& g);
void max_pool2d_forward(const Tensor& x, const Tensor& y, const Tensor& argmax, const PoolGeom& g);
void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g);
void avg_pool2d_forward(const Tensor& x, const Tensor& y, const PoolGeom& g);
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g);
void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t D, int64_t inner);
void index_add(const Tensor& g, const Tensor& index, const Tensor& gx, int64_t outer, int64_t D, int64_t inner);
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx);
void interpolate_forward(const Tensor& x, const Tensor& y, const InterpTaps& ty, const InterpTaps& tx);
void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpTaps& ty, const InterpTaps& tx);

// Fused AdamW over many f32 tensors on the device (kernels/optim.cuh): one launch.
struct AdamWTensor {
  Tensor p, g, m, v;
  float lr, wd;
};
void adamw_multi_tensor(const std::vector<AdamWTensor>& ts, float beta1, float beta2, float eps, float bc1, float bc2);

// Fused compound loss (kernels/loss.cuh); wsum is a device scalar, terms (3) f64 zeroed.
void compound_loss(const Tensor& logits, const Tensor& features, const Tensor& targets, const Tensor& labels,
                   const Tensor& centers, const Tensor& prior, const Tensor& weights, const Tensor& wsum,
                   const Tensor& grad_logits, const Tensor& grad_features, const Tensor& terms, float l_ce,
                   float l_center, float l_dls, float eps);

// Fused attention and CBAM (kernels/attention.cuh, kernels/cbam.cuh); as the CPU twins.
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                       const Tensor& lse, const cpu::AttnGeom& g);
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                        const Tensor& go, const Tensor& lse, const Tensor& gq, const Tensor& gk, const Tensor& gv,
                        const cpu::AttnGeom& g);
void channel_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t N, int64_t P, int64_t C);
void channel_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t N, int64_t P, int64_t C);
void spatial_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t M, int64_t C);
void spatial_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t M, int64_t C);
void sigmoid_gate(const Tensor& x, const Tensor& a, const Tensor& y, int64_t N, int64_t P, int64_t C, bool channel);
void sigmoid_gate_backward(const Tensor& g, const Tensor& x, const Tensor& a, const Tensor& gx, const Tensor& ga,
                           int64_t N, int64_t P, int64_t C, bool channel);
void squeeze_excite_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& pooled, const Tensor& logits, const Tensor& y, int64_t N, int64_t P, int64_t C, int64_t R);

}  // namespace adnn::cuda
