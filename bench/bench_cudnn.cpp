// adnn's hand-written kernels against cuDNN / cuBLAS baselines on a real GPU, timed with
// CUDA events; each row reports GB/s of compulsory traffic (inputs read once, outputs
// written once) or TFLOP/s, and the baseline runs in the same process:
//   depthwise conv (EfficientNet-B5 shapes, batch 32): adnn NHWC vs cudnnConvolutionForward
//     with groups = channels in NHWC and in NCHW (best algorithm by cudnnFind…);
//   MBConv (EfficientNet-B5 blocks, inference): adnn nn::MBConv vs the block from cuDNN
//     convolutions, batch-norm inference, activations, reduction + cuBLAS and op-tensor calls;
//   squeeze-excite: adnn SqueezeExcite vs cudnnReduceTensor + cuBLAS GEMMs + cuDNN
//     activation + cudnnOpTensor (the unfused composition);
//   CBAM pooling: adnn channel_pool2d / spatial_pool2d vs two cudnnReduceTensor calls
//     (average and maximum);
//   attention: adnn's fused kernel vs the unfused composition (cuBLAS GEMM, softmax
//     kernel, cuBLAS GEMM), forward and forward + backward, at the paper's shape
//     (batch 64, 8 heads, 49 tokens, head dim 256) and longer sequences; in f16, the
//     tensor-core kernel vs cuBLAS tensor-core GEMMs around a softmax. cuDNN's fused
//     attention needs the cudnn-frontend graph API, which is not packaged here: not run.
// Built only with real CUDA and cuDNN; on a host without a GPU it prints a message, exits 0.
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <vector>

#include "cuda_timing.hpp"

using namespace adnn;

#define CUDNN_CHECK(call)                                                                                   \
  do {                                                                                                      \
    cudnnStatus_t s_ = (call);                                                                              \
    if (s_ != CUDNN_STATUS_SUCCESS) {                                                                       \
      std::fprintf(stderr, "%s failed: %s [%s:%d]\n", #call, cudnnGetErrorString(s_), __FILE__, __LINE__); \
      std::abort();                                                                                         \
    }                                                                                                       \
  } while (0)

namespace {

cudnnHandle_t handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t x;
    CUDNN_CHECK(cudnnCreate(&x));
    CUDNN_CHECK(cudnnSetStream(x, reinterpret_cast<cudaStream_t>(cuda::current_stream().handle)));
    return x;
  }();
  return h;
}

TensorOptions dev() { return TensorOptions(DType::f32, kCUDA); }

void rate(benchmark::State& st, double bytes, double flops = 0) {
  st.counters["GB/s"] = benchmark::Counter(bytes * double(st.iterations()) / 1e9, benchmark::Counter::kIsRate);
  if (flops > 0)
    st.counters["TFLOP/s"] = benchmark::Counter(flops * double(st.iterations()) / 1e12, benchmark::Counter::kIsRate);
}

cudnnTensorDescriptor_t tensor4(cudnnTensorFormat_t f, int n, int c, int h, int w) {
  cudnnTensorDescriptor_t d;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, f, CUDNN_DATA_FLOAT, n, c, h, w));
  return d;
}

// ---------------------------------------------------------------- depthwise conv
// args: N, H, W, C, k, stride
void BM_depthwise_adnn(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t N = st.range(0), H = st.range(1), W = st.range(2), C = st.range(3), k = st.range(4), s = st.range(5);
  Tensor x = randn({N, H, W, C}, dev()), w = randn({C, k, k, 1}, dev());
  Conv2dOptions o;
  o.stride = {s, s};
  o.padding = {k / 2, k / 2, k / 2, k / 2};
  o.groups = C;
  Tensor y = conv2d(x, w, {}, o);
  bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(conv2d(x, w, {}, o).data_ptr()); });
  rate(st, double(x.numel() + y.numel() + w.numel()) * 4);
}

void depthwise_cudnn(benchmark::State& st, cudnnTensorFormat_t fmt) {
  const int N = int(st.range(0)), H = int(st.range(1)), W = int(st.range(2)), C = int(st.range(3)),
            k = int(st.range(4)), s = int(st.range(5));
  const int OH = (H + 2 * (k / 2) - k) / s + 1, OW = (W + 2 * (k / 2) - k) / s + 1;
  Tensor x = randn({int64_t(N) * H * W * C}, dev()), w = randn({int64_t(C) * k * k}, dev());
  Tensor y = empty({int64_t(N) * OH * OW * C}, dev());
  cudnnTensorDescriptor_t xd = tensor4(fmt, N, C, H, W), yd = tensor4(fmt, N, C, OH, OW);
  cudnnFilterDescriptor_t wd;
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, fmt, C, 1, k, k));
  cudnnConvolutionDescriptor_t cd;
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, k / 2, k / 2, s, s, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionGroupCount(cd, C));
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int found = 0;
  CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle(), xd, wd, cd, yd, 8, &found, perf));
  const cudnnConvolutionFwdAlgo_t algo = perf[0].algo;
  size_t ws_bytes = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle(), xd, wd, cd, yd, algo, &ws_bytes));
  Tensor ws = empty({int64_t(ws_bytes / 4 + 1)}, dev());
  const float one = 1, zero = 0;
  bench::time_with_cuda_events(st, [&] {
    CUDNN_CHECK(cudnnConvolutionForward(handle(), &one, xd, x.data_ptr(), wd, w.data_ptr(), cd, algo, ws.data_ptr(),
                                        ws_bytes, &zero, yd, y.data_ptr()));
  });
  rate(st, double(x.numel() + y.numel() + w.numel()) * 4);
  st.SetLabel("algo " + std::to_string(int(algo)));
  cudnnDestroyTensorDescriptor(xd);
  cudnnDestroyTensorDescriptor(yd);
  cudnnDestroyFilterDescriptor(wd);
  cudnnDestroyConvolutionDescriptor(cd);
}
void BM_depthwise_cudnn_nhwc(benchmark::State& st) { depthwise_cudnn(st, CUDNN_TENSOR_NHWC); }
void BM_depthwise_cudnn_nchw(benchmark::State& st) { depthwise_cudnn(st, CUDNN_TENSOR_NCHW); }

// ---------------------------------------------------------------- squeeze-excite
// args: N, H, W, C, reduced
void BM_se_adnn(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t N = st.range(0), H = st.range(1), W = st.range(2), C = st.range(3), R = st.range(4);
  nn::SqueezeExcite se(C, R);
  se.to(kCUDA);
  Tensor x = randn({N, H, W, C}, dev());
  bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(se(x).data_ptr()); });
  rate(st, 2.0 * double(x.numel()) * 4);
}

// The unfused squeeze-excite from cuDNN and cuBLAS, shared by the SE and MBConv baselines:
// pooled (N, C) = mean over (H, W) of x (N, H, W, C); h (N, R) = swish(pooled · w1ᵀ);
// g (N, C) = sigmoid(h · w2ᵀ); y = x · g. Also holds the swish descriptor the MBConv uses.
struct CudnnSqueezeExcite {
  int N, C, R;
  cudnnTensorDescriptor_t xd, pd, hd;
  cudnnReduceTensorDescriptor_t rd;
  cudnnActivationDescriptor_t swish, sig;
  cudnnOpTensorDescriptor_t mul;
  cublasHandle_t cb;
  size_t ws_bytes = 0;
  Tensor ws, pooled, h, g, w1, w2;
  CudnnSqueezeExcite(int n, int height, int width, int c, int r) : N(n), C(c), R(r) {
    xd = tensor4(CUDNN_TENSOR_NHWC, N, C, height, width);
    pd = tensor4(CUDNN_TENSOR_NHWC, N, C, 1, 1);
    hd = tensor4(CUDNN_TENSOR_NCHW, N, R, 1, 1);
    CUDNN_CHECK(cudnnCreateReduceTensorDescriptor(&rd));
    CUDNN_CHECK(cudnnSetReduceTensorDescriptor(rd, CUDNN_REDUCE_TENSOR_AVG, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN,
                                               CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES));
    CUDNN_CHECK(cudnnGetReductionWorkspaceSize(handle(), rd, xd, pd, &ws_bytes));
    ws = empty({int64_t(ws_bytes / 4 + 1)}, dev());
    CUDNN_CHECK(cudnnCreateActivationDescriptor(&swish));
    CUDNN_CHECK(cudnnSetActivationDescriptor(swish, CUDNN_ACTIVATION_SWISH, CUDNN_PROPAGATE_NAN, 0.0));
    CUDNN_CHECK(cudnnCreateActivationDescriptor(&sig));
    CUDNN_CHECK(cudnnSetActivationDescriptor(sig, CUDNN_ACTIVATION_SIGMOID, CUDNN_PROPAGATE_NAN, 0.0));
    CUDNN_CHECK(cudnnCreateOpTensorDescriptor(&mul));
    CUDNN_CHECK(cudnnSetOpTensorDescriptor(mul, CUDNN_OP_TENSOR_MUL, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN));
    cublasCreate(&cb);
    cublasSetStream(cb, reinterpret_cast<cudaStream_t>(cuda::current_stream().handle));
    pooled = empty({int64_t(N) * C}, dev());
    h = empty({int64_t(N) * R}, dev());
    g = empty({int64_t(N) * C}, dev());
    w1 = randn({int64_t(R) * C}, dev());
    w2 = randn({int64_t(C) * R}, dev());
  }
  CudnnSqueezeExcite(const CudnnSqueezeExcite&) = delete;
  CudnnSqueezeExcite& operator=(const CudnnSqueezeExcite&) = delete;
  ~CudnnSqueezeExcite() {
    cublasDestroy(cb);
    cudnnDestroyOpTensorDescriptor(mul);
    cudnnDestroyActivationDescriptor(sig);
    cudnnDestroyActivationDescriptor(swish);
    cudnnDestroyReduceTensorDescriptor(rd);
    for (auto d : {xd, pd, hd}) cudnnDestroyTensorDescriptor(d);
  }
  // in place of the activation: d holds x's layout
  void activate(cudnnTensorDescriptor_t d, Tensor& t) const {
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnActivationForward(handle(), swish, &one, d, t.data_ptr(), &zero, d, t.data_ptr()));
  }
  void run(const Tensor& x, Tensor& y) {
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnReduceTensor(handle(), rd, nullptr, 0, ws.data_ptr(), ws_bytes, &one, xd, x.data_ptr(), &zero, pd,
                                  pooled.data_ptr()));
    // h (N, R) = pooled (N, C) · w1ᵀ; column-major: hᵀ (R, N) = w1 (R, C) · pooledᵀ (C, N)
    cublasSgemm(cb, CUBLAS_OP_T, CUBLAS_OP_N, R, N, C, &one, static_cast<float*>(w1.data_ptr()), C,
                static_cast<float*>(pooled.data_ptr()), C, &zero, static_cast<float*>(h.data_ptr()), R);
    activate(hd, h);
    cublasSgemm(cb, CUBLAS_OP_T, CUBLAS_OP_N, C, N, R, &one, static_cast<float*>(w2.data_ptr()), R,
                static_cast<float*>(h.data_ptr()), R, &zero, static_cast<float*>(g.data_ptr()), C);
    CUDNN_CHECK(cudnnActivationForward(handle(), sig, &one, pd, g.data_ptr(), &zero, pd, g.data_ptr()));
    CUDNN_CHECK(cudnnOpTensor(handle(), mul, &one, xd, x.data_ptr(), &one, pd, g.data_ptr(), &zero, xd, y.data_ptr()));
  }
};

void BM_se_cudnn(benchmark::State& st) {
  const int N = int(st.range(0)), H = int(st.range(1)), W = int(st.range(2)), C = int(st.range(3)),
            R = int(st.range(4));
  Tensor x = randn({int64_t(N) * H * W * C}, dev()), y = empty({int64_t(N) * H * W * C}, dev());
  CudnnSqueezeExcite se(N, H, W, C, R);
  bench::time_with_cuda_events(st, [&] { se.run(x, y); });
  rate(st, 2.0 * double(x.numel()) * 4);
}

// ---------------------------------------------------------------- CBAM pooling
// args: N, H, W, C
void BM_cbam_pools_adnn(benchmark::State& st) {
  NoGradGuard ng;
  Tensor x = randn({st.range(0), st.range(1), st.range(2), st.range(3)}, dev());
  bench::time_with_cuda_events(st, [&] {
    benchmark::DoNotOptimize(channel_pool2d(x).data_ptr());
    benchmark::DoNotOptimize(spatial_pool2d(x).data_ptr());
  });
  rate(st, 2.0 * double(x.numel()) * 4);  // each pass reads x once
}

void BM_cbam_pools_cudnn(benchmark::State& st) {
  const int N = int(st.range(0)), H = int(st.range(1)), W = int(st.range(2)), C = int(st.range(3));
  Tensor x = randn({int64_t(N) * H * W * C}, dev());
  Tensor cp = empty({int64_t(N) * C}, dev()), sp = empty({int64_t(N) * H * W}, dev());
  cudnnTensorDescriptor_t xd = tensor4(CUDNN_TENSOR_NHWC, N, C, H, W), cd = tensor4(CUDNN_TENSOR_NHWC, N, C, 1, 1),
                          sd = tensor4(CUDNN_TENSOR_NHWC, N, 1, H, W);
  cudnnReduceTensorDescriptor_t avg, mx;
  for (auto [d, op] : {std::pair{&avg, CUDNN_REDUCE_TENSOR_AVG}, std::pair{&mx, CUDNN_REDUCE_TENSOR_MAX}}) {
    CUDNN_CHECK(cudnnCreateReduceTensorDescriptor(d));
    CUDNN_CHECK(cudnnSetReduceTensorDescriptor(*d, op, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN,
                                               CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES));
  }
  size_t a = 0, b = 0;
  CUDNN_CHECK(cudnnGetReductionWorkspaceSize(handle(), avg, xd, cd, &a));
  CUDNN_CHECK(cudnnGetReductionWorkspaceSize(handle(), avg, xd, sd, &b));
  Tensor ws = empty({int64_t(std::max(a, b) / 4 + 1)}, dev());
  const size_t wsb = size_t(ws.numel()) * 4;
  const float one = 1, zero = 0;
  bench::time_with_cuda_events(st, [&] {
    for (auto* r : {&avg, &mx}) {
      CUDNN_CHECK(cudnnReduceTensor(handle(), *r, nullptr, 0, ws.data_ptr(), wsb, &one, xd, x.data_ptr(), &zero, cd,
                                    cp.data_ptr()));
      CUDNN_CHECK(cudnnReduceTensor(handle(), *r, nullptr, 0, ws.data_ptr(), wsb, &one, xd, x.data_ptr(), &zero, sd,
                                    sp.data_ptr()));
    }
  });
  rate(st, 4.0 * double(x.numel()) * 4);  // four passes over x
}

// ---------------------------------------------------------------- attention
// args: B, H, L, D, backward?
Tensor attention_unfused(const Tensor& q, const Tensor& k, const Tensor& v) {
  return matmul(softmax(matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(double(q.size(-1)))), -1), v);
}
void attention(benchmark::State& st, bool fused) {
  const int64_t B = st.range(0), H = st.range(1), L = st.range(2), D = st.range(3);
  const bool bwd = st.range(4) != 0;
  Tensor q = randn({B, H, L, D}, dev()), k = randn({B, H, L, D}, dev()), v = randn({B, H, L, D}, dev());
  if (bwd)
    for (Tensor* t : {&q, &k, &v}) t->requires_grad_(true);
  auto run = [&] {
    Tensor o = fused ? scaled_dot_product_attention(q, k, v) : attention_unfused(q, k, v);
    if (bwd) sum(o).backward();
    benchmark::DoNotOptimize(o.data_ptr());
  };
  std::optional<NoGradGuard> ng;
  if (!bwd) ng.emplace();
  bench::time_with_cuda_events(st, run);
  const double flops = 4.0 * double(B * H) * double(L) * double(L) * double(D) * (bwd ? 3.5 : 1.0);
  rate(st, double(4 * B * H * L * D) * 4 * (bwd ? 2.5 : 1.0), flops);
}
void BM_attention_fused(benchmark::State& st) { attention(st, true); }
void BM_attention_unfused(benchmark::State& st) { attention(st, false); }

// f16, args B, H, L, D, backward?: adnn's tensor-core kernels (kernels/attention_mma.cuh) vs
// the composition on tensor cores: cublasGemmStridedBatchedEx (f16 in, f32 out) for S = Q·Kᵀ,
// adnn's softmax on S (scaled), P rounded to f16, cublasGemmStridedBatchedEx for O = P·V.
void BM_attention_fused_f16(benchmark::State& st) {
  const int64_t B = st.range(0), H = st.range(1), L = st.range(2), D = st.range(3);
  const bool bwd = st.range(4) != 0;
  Tensor q = randn({B, H, L, D}, dev()).to(DType::f16), k = randn({B, H, L, D}, dev()).to(DType::f16),
         v = randn({B, H, L, D}, dev()).to(DType::f16);
  if (bwd)
    for (Tensor* t : {&q, &k, &v}) t->requires_grad_(true);
  std::optional<NoGradGuard> ng;
  if (!bwd) ng.emplace();
  bench::time_with_cuda_events(st, [&] {
    Tensor o = scaled_dot_product_attention(q, k, v);
    if (bwd) sum(o).backward();
    benchmark::DoNotOptimize(o.data_ptr());
  });
  const double flops = 4.0 * double(B * H) * double(L) * double(L) * double(D) * (bwd ? 3.5 : 1.0);
  rate(st, double(4 * B * H * L * D) * 2 * (bwd ? 2.5 : 1.0), flops);
}
void BM_attention_unfused_f16(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t B = st.range(0), H = st.range(1), L = st.range(2), D = st.range(3), BH = B * H;
  if (st.range(4) != 0) {
    st.SkipWithError("the f16 composition is timed forward only");
    return;
  }
  Tensor q = randn({B, H, L, D}, dev()).to(DType::f16), k = randn({B, H, L, D}, dev()).to(DType::f16),
         v = randn({B, H, L, D}, dev()).to(DType::f16);
  Tensor s = empty({B, H, L, L}, dev());
  Tensor o = empty({B, H, L, D}, dev());
  cublasHandle_t cb;
  cublasCreate(&cb);
  cublasSetStream(cb, reinterpret_cast<cudaStream_t>(cuda::current_stream().handle));
  const float one = 1.f, zero = 0.f, scale = float(1.0 / std::sqrt(double(D)));
  const int n = int(L), d = int(D);
  bench::time_with_cuda_events(st, [&] {
    // row-major S = Q·Kᵀ  ⇔  column-major Sᵀ = K·Qᵀ (K and Q are column-major D×L)
    cublasGemmStridedBatchedEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, &scale, k.data_ptr(), CUDA_R_16F, d,
                               int64_t(L) * D, q.data_ptr(), CUDA_R_16F, d, int64_t(L) * D, &zero, s.data_ptr(),
                               CUDA_R_32F, n, int64_t(L) * L, int(BH), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    Tensor p = softmax(s, -1).to(DType::f16);
    // O (row-major L×D) = P·V  ⇔  column-major Oᵀ = Vᵀ·Pᵀ
    cublasGemmStridedBatchedEx(cb, CUBLAS_OP_N, CUBLAS_OP_N, d, n, n, &one, v.data_ptr(), CUDA_R_16F, d,
                               int64_t(L) * D, p.data_ptr(), CUDA_R_16F, n, int64_t(L) * L, &zero, o.data_ptr(),
                               CUDA_R_32F, d, int64_t(L) * D, int(BH), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    benchmark::DoNotOptimize(o.data_ptr());
  });
  cublasDestroy(cb);
  rate(st, double(4 * B * H * L * D) * 2, 4.0 * double(BH) * double(L) * double(L) * double(D));
}


// ---------------------------------------------------------------- a whole MBConv block (inference)
// args: N, H, W, C (in = out), expand, k. adnn: nn::MBConv in eval mode (GEMM 1×1 convs,
// fused BN + SiLU, depthwise kernel, fused SE, fused BN + residual epilogue). Baseline: the
// same block from cuDNN calls: convolutions (1×1 and grouped k×k, best algorithm),
// cudnnBatchNormalizationForwardInference, swish/sigmoid activations, reduction + cuBLAS
// for SE, cudnnOpTensor for the gate and cudnnAddTensor for the skip.
void BM_mbconv_adnn(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t N = st.range(0), H = st.range(1), W = st.range(2), C = st.range(3), e = st.range(4), k = st.range(5);
  nn::MBConv block(C, C, k, 1, e, 0.25, false, 0.0);
  block.eval();
  block.to(kCUDA);
  Tensor x = randn({N, H, W, C}, dev());
  bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(block(x).data_ptr()); });
  rate(st, 2.0 * double(x.numel()) * 4 * (1 + 2 * double(e)));  // each activation written and read once
}

struct CudnnConv {
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnConvolutionFwdAlgo_t algo;
  size_t ws = 0;
  Tensor w;
  CudnnConv(int N, int H, int W, int Cin, int Cout, int k, int groups) {
    xd = tensor4(CUDNN_TENSOR_NHWC, N, Cin, H, W);
    yd = tensor4(CUDNN_TENSOR_NHWC, N, Cout, H, W);
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, Cout, Cin / groups, k, k));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, k / 2, k / 2, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(cd, groups));
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    int found = 0;
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle(), xd, wd, cd, yd, 8, &found, perf));
    algo = perf[0].algo;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle(), xd, wd, cd, yd, algo, &ws));
    w = randn({int64_t(Cout) * (Cin / groups) * k * k}, dev()) * 0.1;
  }
  void run(const Tensor& x, Tensor& y, Tensor& workspace) const {
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnConvolutionForward(handle(), &one, xd, x.data_ptr(), wd, w.data_ptr(), cd, algo,
                                        workspace.data_ptr(), ws, &zero, yd, y.data_ptr()));
  }
};

void BM_mbconv_cudnn(benchmark::State& st) {
  const int N = int(st.range(0)), H = int(st.range(1)), W = int(st.range(2)), C = int(st.range(3)),
            e = int(st.range(4)), k = int(st.range(5)), M = C * e, R = std::max(1, C / 4);
  CudnnConv expand(N, H, W, C, M, 1, 1), dw(N, H, W, M, M, k, M), project(N, H, W, M, C, 1, 1);
  CudnnSqueezeExcite se(N, H, W, M, R);
  Tensor ws = empty({int64_t(std::max({expand.ws, dw.ws, project.ws}) / 4 + 1)}, dev());
  Tensor x = randn({int64_t(N) * H * W * C}, dev()), y = empty({int64_t(N) * H * W * C}, dev());
  Tensor a = empty({int64_t(N) * H * W * M}, dev()), b = empty({int64_t(N) * H * W * M}, dev());
  // BN parameters (scale, bias, mean, var) per width
  auto bn_params = [](int c) { return std::vector<Tensor>{ones({c}, dev()), zeros({c}, dev()), zeros({c}, dev()), ones({c}, dev())}; };
  auto bm = bn_params(M), bc = bn_params(C);
  cudnnTensorDescriptor_t md = tensor4(CUDNN_TENSOR_NHWC, N, M, H, W), cdsc = tensor4(CUDNN_TENSOR_NHWC, N, C, H, W),
                          bnm = tensor4(CUDNN_TENSOR_NCHW, 1, M, 1, 1), bnc = tensor4(CUDNN_TENSOR_NCHW, 1, C, 1, 1);
  const float one = 1, zero = 0;
  auto bn = [&](cudnnTensorDescriptor_t d, cudnnTensorDescriptor_t pd, std::vector<Tensor>& p, Tensor& t) {
    CUDNN_CHECK(cudnnBatchNormalizationForwardInference(handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, d, t.data_ptr(), d,
                                                        t.data_ptr(), pd, p[0].data_ptr(), p[1].data_ptr(),
                                                        p[2].data_ptr(), p[3].data_ptr(), 1e-5));
  };
  bench::time_with_cuda_events(st, [&] {
    expand.run(x, a, ws);
    bn(md, bnm, bm, a);
    se.activate(md, a);
    dw.run(a, b, ws);
    bn(md, bnm, bm, b);
    se.activate(md, b);
    se.run(b, a);
    project.run(a, y, ws);
    bn(cdsc, bnc, bc, y);
    CUDNN_CHECK(cudnnAddTensor(handle(), &one, cdsc, x.data_ptr(), &one, cdsc, y.data_ptr()));
  });
  rate(st, 2.0 * double(x.numel()) * 4 * (1 + 2 * double(e)));
  for (auto d : {md, cdsc, bnm, bnc}) cudnnDestroyTensorDescriptor(d);
}

// EfficientNet-B5 depthwise layers at 224x224, batch 32: (N, H, W, C, k, stride)
void dw_shapes(benchmark::internal::Benchmark* b) {
  for (auto s : std::vector<std::vector<int64_t>>{{32, 112, 112, 144, 3, 2},
                                                  {32, 56, 56, 240, 5, 2},
                                                  {32, 28, 28, 384, 3, 2},
                                                  {32, 14, 14, 1056, 5, 1},
                                                  {32, 14, 14, 1056, 5, 2},
                                                  {32, 7, 7, 3072, 3, 1}})
    b->Args(s);
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void se_shapes(benchmark::internal::Benchmark* b) {
  for (auto s : std::vector<std::vector<int64_t>>{{32, 56, 56, 240, 10}, {32, 14, 14, 1056, 44}, {32, 7, 7, 3072, 128}})
    b->Args(s);
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void pool_shapes(benchmark::internal::Benchmark* b) {
  for (auto s : std::vector<std::vector<int64_t>>{{64, 14, 14, 176}, {64, 7, 7, 2048}, {64, 56, 56, 64}}) b->Args(s);
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void attn_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t bwd : {0, 1})
    for (auto s : std::vector<std::vector<int64_t>>{{64, 8, 49, 256}, {16, 8, 196, 64}, {4, 8, 1024, 64}}) {
      auto a = s;
      a.push_back(bwd);
      b->Args(a);
    }
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK(BM_depthwise_adnn)->Apply(dw_shapes);
BENCHMARK(BM_depthwise_cudnn_nhwc)->Apply(dw_shapes);
BENCHMARK(BM_depthwise_cudnn_nchw)->Apply(dw_shapes);
BENCHMARK(BM_se_adnn)->Apply(se_shapes);
BENCHMARK(BM_se_cudnn)->Apply(se_shapes);
BENCHMARK(BM_cbam_pools_adnn)->Apply(pool_shapes);
BENCHMARK(BM_cbam_pools_cudnn)->Apply(pool_shapes);
// EfficientNet-B5 MBConv blocks at 224x224, batch 32: (N, H, W, C, expand, k)
void mbconv_shapes(benchmark::internal::Benchmark* b) {
  for (auto s : std::vector<std::vector<int64_t>>{{32, 56, 56, 40, 6, 5}, {32, 14, 14, 176, 6, 5}, {32, 7, 7, 512, 6, 3}})
    b->Args(s);
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_mbconv_adnn)->Apply(mbconv_shapes);
BENCHMARK(BM_mbconv_cudnn)->Apply(mbconv_shapes);
BENCHMARK(BM_attention_fused)->Apply(attn_shapes);
BENCHMARK(BM_attention_unfused)->Apply(attn_shapes);
void attn_f16_fwd_shapes(benchmark::internal::Benchmark* b) {
  for (auto s : std::vector<std::vector<int64_t>>{{64, 8, 49, 256, 0}, {16, 8, 196, 64, 0}, {4, 8, 1024, 64, 0}})
    b->Args(s);
  b->UseManualTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_attention_fused_f16)->Apply(attn_shapes);  // forward, and forward + backward
BENCHMARK(BM_attention_unfused_f16)->Apply(attn_f16_fwd_shapes);

int main(int argc, char** argv) {
  if (cuda_device_count() == 0 || cuda::is_emulated()) {
    std::printf("bench_cudnn: no GPU on this host; cuDNN comparisons skipped\n");
    return 0;
  }
  std::printf("bench_cudnn on %s, cuDNN %zu\n", cuda::device_name(), cudnnGetVersion());
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
