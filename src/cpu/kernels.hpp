#pragma once
// The CPU backend: kernels over raw strided tensors. Ops in src/ops validate, allocate
// outputs and record autograd; these functions only compute. The CUDA backend (kernels/)
// provides the same set. Unless stated otherwise, outputs are freshly allocated and
// contiguous, inputs may have any strides.
#include <adnn/core/tensor.hpp>
#include <adnn/ops/ops.hpp>

#include <algorithm>

namespace adnn {

enum class UnaryOp { neg, exp, log, sqrt, rsqrt, abs, relu, leaky_relu, sigmoid, tanh, silu, gelu, clamp, pow_scalar };
enum class BinaryOp { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge };
enum class ReduceOp { sum, max, min };
const char* unary_name(UnaryOp op);
const char* binary_name(BinaryOp op);

namespace cpu {

// dst = cast(src); same shape, any strides/dtypes.
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
// out = op(x; p0, p1). x and out same shape. leaky_relu: p0 = slope; clamp: [p0, p1]; pow: p0.
void unary(UnaryOp op, const Tensor& x, const Tensor& out, double p0, double p1);
// gx = g * op'(x) (y = op(x) is given for ops whose derivative is cheaper from it).
void unary_backward(UnaryOp op, const Tensor& g, const Tensor& x, const Tensor& y, const Tensor& gx,
                    double p0, double p1);
// out = a op b; a, b already broadcast (stride-0 views) to out's shape.
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out);

// x contiguous (rows, R) -> out (rows); float types.
void reduce_rows(ReduceOp op, const Tensor& x, const Tensor& out, int64_t rows, int64_t R);
// argmax over rows of a contiguous (rows, R) -> int64 (rows)
void argmax_rows(const Tensor& x, const Tensor& out, int64_t rows, int64_t R);

// Row-major GEMM: C = alpha * op(A) * op(B) + beta * C.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);
// The built-in blocked GEMM (used when OpenBLAS is absent; always built and tested).
template <class T>
void gemm_builtin(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);
// How a 3-D operand's last two dims (rows, cols) can be handed to a row-major GEMM:
// row-major gives (trans = false, ld), column-major (trans = true, ld); false when neither
// (the caller makes it contiguous). Shared by the CPU and CUDA bmm.
inline bool gemm_layout(const Tensor& t, bool& trans, int64_t& ld) {
  const int64_t rows = t.size(1), cols = t.size(2), sr = t.stride(1), sc = t.stride(2);
  if ((sc == 1 || cols == 1) && (sr >= std::max<int64_t>(cols, 1) || rows == 1)) {
    trans = false;
    ld = rows == 1 ? std::max<int64_t>(cols, 1) : sr;
    return true;
  }
  if ((sr == 1 || rows == 1) && (sc >= std::max<int64_t>(rows, 1) || cols == 1)) {
    trans = true;
    ld = cols == 1 ? std::max<int64_t>(rows, 1) : sc;
    return true;
  }
  return false;
}
// Batched: a (B, M, K), b (B, K, N) each with last two dims row- or column-major,
// any batch stride; c (B, M, N) contiguous.
void bmm(const Tensor& a, const Tensor& b, const Tensor& c);

// Softmax along the middle dim of a contiguous (outer, D, inner) view.
void softmax(const Tensor& x, const Tensor& y, int64_t outer, int64_t D, int64_t inner, bool log);
void softmax_backward(const Tensor& g, const Tensor& y, const Tensor& gx, int64_t outer, int64_t D,
                      int64_t inner, bool log);

// Channels-last batch norm over x contiguous (M, C), y = act(bn(x)); with residual (M, C)
// and scale (M / rows_per_sample) defined: y = residual + scale[sample] · act(bn(x)).
// Training: computes mean/invstd (C) from the batch; eval: from running stats.
void batch_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mean,
                        const Tensor& invstd, const Tensor& y, int64_t M, int64_t C, bool compute_stats,
                        double eps, int act, const Tensor& residual, const Tensor& scale, int64_t rows_per_sample);
// gx (M, C), gw/gb (C) may be undefined. training: full batch-stat backward. act
// (kernels::NormAct): the activation fused after the affine map; its derivative is
// recomputed from x, so g is the gradient of the activation's output.
void batch_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& bias,
                         const Tensor& mean, const Tensor& invstd, const Tensor& gx, const Tensor& gw, const Tensor& gb,
                         int64_t M, int64_t C, bool training, int act);
// Layer norm over rows of x contiguous (M, D); mean/rstd (M) are outputs.
void layer_norm_forward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& y,
                        const Tensor& mean, const Tensor& rstd, int64_t M, int64_t D, double eps);
void layer_norm_backward(const Tensor& g, const Tensor& x, const Tensor& weight, const Tensor& mean,
                         const Tensor& rstd, const Tensor& gx, const Tensor& gw, const Tensor& gb,
                         int64_t M, int64_t D);

struct ConvGeom {
  int64_t N, H, W, C, O, KH, KW, OH, OW, sh, sw, pt, pl, dh, dw, groups;
};
// x (N,H,W,C) contiguous, w (O,KH,KW,C/g) contiguous, y (N,OH,OW,O).
void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, const ConvGeom& g);
void conv2d_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& gx, const Tensor& gw,
                     const Tensor& gb, const ConvGeom& g);

struct PoolGeom {
  int64_t N, H, W, C, OH, OW, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};
void max_pool2d_forward(const Tensor& x, const Tensor& y, const Tensor& argmax, const PoolGeom& g);
void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Tensor& gx, const PoolGeom& g);
void avg_pool2d_forward(const Tensor& x, const Tensor& y, const PoolGeom& g);
void avg_pool2d_backward(const Tensor& gy, const Tensor& gx, const PoolGeom& g);

// x contiguous viewed (outer, D, inner); out (outer, n_idx, inner)
void index_select(const Tensor& x, const Tensor& index, const Tensor& out, int64_t outer, int64_t D,
                  int64_t inner);
// gx (outer, D, inner) += scatter of g (outer, n_idx, inner)
void index_add(const Tensor& g, const Tensor& index, const Tensor& gx, int64_t outer, int64_t D, int64_t inner);
// gather/scatter_add along `dim` of contiguous tensors; index has out's shape.
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& g, int64_t dim, const Tensor& index, const Tensor& gx);

// Separable resampling NHWC. For each output row/col: taps (index, weight).
struct InterpTaps {
  int64_t taps;                  // 1, 2 or 4
  std::vector<int64_t> index;    // out * taps
  std::vector<double> weight;    // out * taps
};
InterpTaps interp_taps(int64_t in, int64_t out, InterpMode mode, bool align_corners);
void interpolate_forward(const Tensor& x, const Tensor& y, const InterpTaps& ty, const InterpTaps& tx);
void interpolate_backward(const Tensor& gy, const Tensor& gx, const InterpTaps& ty, const InterpTaps& tx);

// Fused attention (kernels/attention.cuh). q (B·H, Lq, D), k and v (B·H, Lk, D), o like q,
// lse (B·H, Lq), mask (B, Lk) bool or undefined (true = ignore the key); all contiguous.
struct AttnGeom {
  int64_t B, H, Lq, Lk, D;
  double scale, dropout;
  uint64_t seed;
};
void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                       const Tensor& lse, const AttnGeom& g);
// gq, gk, gv are written in full (contiguous, like q, k, v).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& o,
                        const Tensor& go, const Tensor& lse, const Tensor& gq, const Tensor& gk, const Tensor& gv,
                        const AttnGeom& g);

// CBAM (kernels/cbam.cuh). x (N, P, C) contiguous. channel_pool: out (N, 2, C) [mean; max],
// argmax (N, C) int64. spatial_pool: out (N·P, 2), argmax (N·P) int64.
void channel_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t N, int64_t P, int64_t C);
void channel_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t N, int64_t P, int64_t C);
void spatial_pool(const Tensor& x, const Tensor& out, const Tensor& argmax, int64_t M, int64_t C);
void spatial_pool_backward(const Tensor& g, const Tensor& argmax, const Tensor& gx, int64_t M, int64_t C);
// y = x · σ(a); a (N, C) when channel, else (N, P). gx / ga may be undefined.
void sigmoid_gate(const Tensor& x, const Tensor& a, const Tensor& y, int64_t N, int64_t P, int64_t C, bool channel);
void sigmoid_gate_backward(const Tensor& g, const Tensor& x, const Tensor& a, const Tensor& gx, const Tensor& ga,
                           int64_t N, int64_t P, int64_t C, bool channel);

// Squeeze-and-excite forward (kernels/se.cuh): x (N, P, C); w1 (R, C), b1 (R), w2 (C, R),
// b2 (C) (biases may be undefined); writes pooled (N, C), the gate logits (N, C) and y.
void squeeze_excite_forward(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& pooled, const Tensor& logits, const Tensor& y, int64_t N, int64_t P, int64_t C, int64_t R);

}  // namespace cpu
}  // namespace adnn
