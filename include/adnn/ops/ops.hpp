#pragma once
// Differentiable tensor ops. Each checks its inputs (shape, dtype, device; errors name the
// op), runs the backend kernel for the inputs' device, and records its backward rule.
// Image activations are NHWC: (N, H, W, C).
#include <adnn/autograd/autograd.hpp>
#include <adnn/core/tensor.hpp>
#include <adnn/ops/enums.hpp>

#include <array>
#include <optional>
#include <vector>

namespace adnn {

// ---------------------------------------------------------------- elementwise (broadcasting)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor pow(const Tensor& a, double p);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Comparisons give bool tensors and are not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact: x * Phi(x), Phi via erf

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---------------------------------------------------------------- reductions
// dims empty = all dims. Negative dims count from the end.
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
// Values and (int64) indices of the maximum along one dim.
std::pair<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance with Bessel-style `correction` (1 = unbiased, like torch.var).
Tensor var(const Tensor& x, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
// Sums `x` down to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---------------------------------------------------------------- multiply-accumulate count
// The multiply-accumulates (MACs) of the ops called on this thread, counted by the ops from
// their shapes as fvcore / torchinfo count them (bias adds, elementwise ops, norms and
// pooling count none):
//   conv2d                        N·OH·OW·O·KH·KW·(C / groups)
//   matmul, linear                B·M·K·N (batch × rows × inner × columns)
//   scaled_dot_product_attention  2·B·H·Lq·Lk·D (q·kᵀ and p·v)
//   squeeze_excite                2·N·C·R (its two FCs)
// A running total (backward kernels are not counted; a backward rule that calls one of these
// ops is): read it around a forward pass, or use MacCounter.
int64_t mac_count();
void add_macs(int64_t n);  // what the ops call
// The MACs counted on this thread since it was made.
class MacCounter {
 public:
  MacCounter() : start_(mac_count()) {}
  int64_t macs() const { return mac_count() - start_; }

 private:
  int64_t start_;
};

// ---------------------------------------------------------------- linear algebra
// (..., M, K) x (..., K, N) -> (..., M, N); batch dims broadcast; 1-D operands as in torch.
Tensor matmul(const Tensor& a, const Tensor& b);
// x (..., in) · weightᵀ (out, in) + bias (out)
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
// y = act(x · weightᵀ + bias) with the bias and activation fused into the GEMM's epilogue
// (GemmEpilogue::bias, bias_relu, bias_gelu (erf GELU); bias may be undefined).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, GemmEpilogue epilogue);

// ---------------------------------------------------------------- neural-network ops
struct Conv2dOptions {
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 4> padding{0, 0, 0, 0};  // top, bottom, left, right
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool same = false;  // TF "SAME": pad so that out = ceil(in / stride), extra on bottom/right
  Conv2dOptions& with_stride(int64_t s) { stride = {s, s}; return *this; }
  Conv2dOptions& with_padding(int64_t p) { padding = {p, p, p, p}; return *this; }
  Conv2dOptions& with_dilation(int64_t d) { dilation = {d, d}; return *this; }
  Conv2dOptions& with_groups(int64_t g) { groups = g; return *this; }
  Conv2dOptions& with_same(bool s = true) { same = s; return *this; }
};
// x (N, H, W, C), weight (O, KH, KW, C / groups), bias (O) -> (N, OH, OW, O).
// Grouped convs with O == C == groups take the direct depthwise path.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {}, Conv2dOptions opts = {});

// x (..., C) channels last. Training: batch statistics over all but the last dim, and the
// running buffers (C) are updated in place with `momentum` (unbiased variance), as in torch.
// `act` fuses the following activation (act(bn(x)) in one pass forward and one backward; the
// pre-activation is recomputed, never stored): the BN + SiLU of EfficientNet, BN + ReLU.
// num_batches_tracked (one i64, or undefined): a module's counter, incremented by one in
// place in training, while the running statistics are tracked (as torch), by the statistics
// kernel itself (no launch of its own).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum = 0.1, double eps = 1e-5,
                  NormActivation act = NormActivation::none, const Tensor& num_batches_tracked = {});
// The MBConv epilogue in one pass: residual + sample_scale[n] · batch_norm(x) (BN of the
// projection conv's output, the per-sample drop-path factor, the skip connection).
// sample_scale (N) or undefined (= 1); residual has x's shape.
Tensor batch_norm_residual(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                           const Tensor& bias, bool training, double momentum, double eps, const Tensor& residual,
                           const Tensor& sample_scale = {}, const Tensor& num_batches_tracked = {});
// Normalises over the trailing dims `normalized_shape`.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
// Group norm (Wu & He) over channels-last x (N, ..., C): C split into num_groups groups,
// each normalised over its spatial positions and channels; weight/bias (C) or undefined.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor dropout(const Tensor& x, double p, bool training);

struct Pool2dOptions {
  std::array<int64_t, 2> kernel{2, 2};
  std::array<int64_t, 2> stride{0, 0};  // 0 = kernel
  std::array<int64_t, 2> padding{0, 0};
  bool count_include_pad = true;  // avg pool only
};
Tensor max_pool2d(const Tensor& x, Pool2dOptions opts);  // (N, H, W, C)
Tensor avg_pool2d(const Tensor& x, Pool2dOptions opts);  // (N, H, W, C)
Tensor global_avg_pool2d(const Tensor& x, bool keepdim = false);  // (N,H,W,C) -> (N,C)

Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
// index (int64, 1-D): out = x.index_select(dim, index)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// torch.gather: out[i][j] = x[i][index[i][j]] along `dim`; index has x's rank.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// weight (V, D), index (...) int64 -> (..., D)
Tensor embedding(const Tensor& weight, const Tensor& index);

// (N, H, W, C) -> (N, out_h, out_w, C). Bicubic uses A = -0.75 (as torch / OpenCV).
Tensor interpolate(const Tensor& x, int64_t out_h, int64_t out_w, InterpMode mode,
                   bool align_corners = false);

// Affine warp with an inverse map (OpenCV's warpAffine with WARP_INVERSE_MAP): x (N, H, W, C),
// matrices (B, 2, 3) (any float dtype, any device; used in f64) with N == B, or N == 1 for B
// crops of one image -> (B, out_h, out_w, C), where output pixel (ox, oy) samples x at
// (m00·ox + m01·oy + m02, m10·ox + m11·oy + m12), pixel centres at integer coordinates.
// Bicubic (A = -0.75), bilinear or nearest (round half up) taps; taps outside the image read 0.
// Differentiable with respect to x (not the matrices).
Tensor warp_affine(const Tensor& x, const Tensor& matrices, int64_t out_h, int64_t out_w,
                   InterpMode mode = InterpMode::bicubic);

// Greedy non-maximum suppression: boxes (N, 4) as (x1, y1, x2, y2), scores (N) -> the i64
// indices (on boxes' device) of the kept boxes in descending score order (equal scores keep
// their index order). A box is dropped when a kept box of higher rank overlaps it with
// IoU > iou_threshold; `offset` is added to widths and heights (1: the pixel-inclusive
// convention of Pytorch_Retinaface, 0: torchvision's). Not differentiable.
Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold, double offset = 0.0);

// ---------------------------------------------------------------- attention
// Fused attention (kernels/attention.cuh): softmax(scale · q kᵀ) v without materialising the
// scores. q (B, H, Lq, D), k and v (B, H, Lk, D) -> (B, H, Lq, D); D ≤ 256. key_padding_mask
// (B, Lk) bool, true = ignore that key (a row with every key masked gives zeros). Dropout on
// the attention probabilities with probability dropout_p (applied whenever > 0, as torch's
// scaled_dot_product_attention); scale defaults to 1/√D. f16/bf16 inputs compute in f32.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& key_padding_mask = {}, double dropout_p = 0.0,
                                    std::optional<double> scale = std::nullopt);
// Which implementation scaled_dot_product_attention runs (torch.nn.attention.sdpa_kernel's
// choice, process-wide):
//   fused: the fused kernels above (on the CPU its twin);
//   math: the composition matmul(q·scale, kᵀ) → softmax → dropout → matmul(·, v) (cuBLAS(Lt)
//     strided-batched GEMMs on `cuda`; autograd through the ops), as PyTorch's math backend;
//     a call with a key padding mask runs fused;
//   automatic (default): math on a real GPU where it measured faster — f32/f64, and f16/bf16
//     with a head dim over 128 (docs/results/2026-12-04b-nvidia-h200.md: the fused f32 kernel
//     at 0.06–0.16× of the composition at the paper's and two other shapes, the f16 tensor-core
//     one 0.25× at head dim 256, 1.03–1.08× at 64) — without a mask and with at most 2^27
//     scores per call (the composition keeps them for backward); fused everywhere else, the
//     emulator included (its tests are the fused kernels' checks; tests force math).
//   The composition's precision is its GEMMs': 16-bit inputs give 16-bit scores before the
//   softmax (PyTorch's math backend under autocast alike; the fused kernels keep f32 scores),
//   and with set_allow_tf32(true) f32 attention runs its GEMMs in TF32.
//   Dropout: the fused kernels draw their mask as a function of the seed and the position (the
//   same mask on the CPU and the GPU); the math backend uses the dropout op's (the same
//   distribution, other bits — as PyTorch's math and flash backends differ).
enum class SdpaBackend { automatic, fused, math };
void set_sdpa_backend(SdpaBackend b);
SdpaBackend sdpa_backend();
// The backend for a scope, the previous one restored after (torch.nn.attention.sdpa_kernel).
struct SdpaBackendScope {
  explicit SdpaBackendScope(SdpaBackend b) : prev(sdpa_backend()) { set_sdpa_backend(b); }
  ~SdpaBackendScope() { set_sdpa_backend(prev); }
  SdpaBackendScope(const SdpaBackendScope&) = delete;
  SdpaBackendScope& operator=(const SdpaBackendScope&) = delete;
  SdpaBackend prev;
};

// ---------------------------------------------------------------- CBAM
// (N, H, W, C) -> (N, 2, C): [mean over H·W; max over H·W], in one pass (kernels/cbam.cuh).
Tensor channel_pool2d(const Tensor& x);
// (N, H, W, C) -> (N, H, W, 2): [mean over C, max over C], in one pass.
Tensor spatial_pool2d(const Tensor& x);
// x · sigmoid(gate), gate (N, 1, 1, C) (channel attention) or (N, H, W, 1) (spatial).
Tensor sigmoid_gate(const Tensor& x, const Tensor& gate);

// Squeeze-and-excite in two kernels (kernels/se.cuh): x · σ(W2 SiLU(W1 mean_hw(x) + b1) + b2)
// per sample and channel. x (N, H, W, C), w1 (R, C), b1 (R), w2 (C, R), b2 (C); biases may
// be undefined.
Tensor squeeze_excite(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2);

// ---------------------------------------------------------------- losses
// logits (N, K), target int64 (N) -> mean negative log-likelihood.
Tensor cross_entropy(const Tensor& logits, const Tensor& target);
Tensor mse_loss(const Tensor& input, const Tensor& target);

}  // namespace adnn
