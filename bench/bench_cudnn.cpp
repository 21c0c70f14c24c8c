// adnn's hand-written kernels against cuDNN / cuBLAS baselines on a real GPU, timed with
// CUDA events; each row reports GB/s of compulsory traffic (inputs read once, outputs
// written once) or TFLOP/s, and the baseline runs in the same process. Every row first
// validates its output against the other side's on the same inputs (bench/cuda_timing.hpp:
// validate, then time; a mismatch fails the row), then times K calls between one pair of
// events (ADNN_BENCH_L2_FLUSH=1: each call alone after an L2 flush). cuDNN convolutions run
// with CUDNN_FMA_MATH, as adnn's f32 kernels (no TF32 on either side), and take the fastest
// algorithm cudnnFind… reports with a successful status in that math mode; cuBLAS runs in its
// default (FMA) math for f32.
//   depthwise conv (EfficientNet-B5 shapes at 224² and 456², batch 32), forward and forward +
//     backward (data and filter gradients): adnn NHWC vs cudnnConvolution{Forward,
//     BackwardData,BackwardFilter} with groups = channels in NHWC and in NCHW;
//   MBConv (EfficientNet-B5 blocks, inference): adnn nn::MBConv vs the block from cuDNN
//     convolutions, batch-norm inference, activations, reduction + cuBLAS and op-tensor calls,
//     with adnn's weights and batch-norm statistics;
//   squeeze-excite: adnn SqueezeExcite vs cudnnReduceTensor + cuBLAS GEMMs + bias adds + cuDNN
//     activations + cudnnOpTensor (the unfused composition), with adnn's weights;
//   CBAM pooling: adnn channel_pool2d / spatial_pool2d vs four cudnnReduceTensor calls;
//   attention: adnn's fused kernel vs the unfused composition (one cublasSgemmStridedBatched
//     per product, adnn's softmax between), forward and forward + backward, at the paper's
//     shape (batch 64, 8 heads, 49 tokens, head dim 256) and longer sequences; in f16, the
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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
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

#define CUBLAS_CHECK(call)                                                                      \
  do {                                                                                          \
    cublasStatus_t s_ = (call);                                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::fprintf(stderr, "%s failed: %s [%s:%d]\n", #call, cublasGetStatusString(s_), __FILE__, __LINE__); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)

// The baselines' cuBLAS handle, on adnn's stream, in the default math mode (f32 GEMMs in FMA,
// as adnn's without --precision tf32).
cublasHandle_t cublas() {
  static cublasHandle_t h = [] {
    cublasHandle_t x;
    CUBLAS_CHECK(cublasCreate(&x));
    CUBLAS_CHECK(cublasSetStream(x, reinterpret_cast<cudaStream_t>(cuda::current_stream().handle)));
    CUBLAS_CHECK(cublasSetMathMode(x, CUBLAS_DEFAULT_MATH));
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
// A depthwise convolution (groups = channels, padding k/2, stride s) in cuDNN, FMA math, in
// `fmt` (NHWC: x (N, H, W, C); NCHW: x (N, C, H, W)); filter (C, 1, k, k) = (C, k, k, 1) in
// memory. Each algorithm: the fastest cudnnFind… result with CUDNN_STATUS_SUCCESS in FMA math.
struct CudnnDepthwise {
  int N, H, W, C, k, s, OH, OW;
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnConvolutionFwdAlgo_t fwd;
  cudnnConvolutionBwdDataAlgo_t bwd_data;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter;
  size_t ws_bytes = 0;
  Tensor ws;
  std::string label;
  CudnnDepthwise(cudnnTensorFormat_t fmt, int n, int h, int w, int c, int kk, int ss, bool backward)
      : N(n), H(h), W(w), C(c), k(kk), s(ss) {
    OH = (H + 2 * (k / 2) - k) / s + 1;
    OW = (W + 2 * (k / 2) - k) / s + 1;
    xd = tensor4(fmt, N, C, H, W);
    yd = tensor4(fmt, N, C, OH, OW);
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, fmt, C, 1, k, k));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, k / 2, k / 2, s, s, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(cd, C));
    CUDNN_CHECK(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH));
    size_t b = 0;
    {
      cudnnConvolutionFwdAlgoPerf_t perf[8];
      int found = 0;
      CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle(), xd, wd, cd, yd, 8, &found, perf));
      const auto* f = pick(perf, found, "depthwise forward", error);
      if (!f) return;
      fwd = f->algo;
      CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle(), xd, wd, cd, yd, fwd, &b));
      ws_bytes = std::max(ws_bytes, b);
      label = "fwd algo " + std::to_string(int(fwd));
    }
    if (backward) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[8];
      int found = 0;
      CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(handle(), wd, yd, cd, xd, 8, &found, perf));
      const auto* d = pick(perf, found, "depthwise backward data", error);
      if (!d) return;
      bwd_data = d->algo;
      CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle(), wd, yd, cd, xd, bwd_data, &b));
      ws_bytes = std::max(ws_bytes, b);
      cudnnConvolutionBwdFilterAlgoPerf_t fperf[8];
      CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(handle(), xd, yd, cd, wd, 8, &found, fperf));
      const auto* fl = pick(fperf, found, "depthwise backward filter", error);
      if (!fl) return;
      bwd_filter = fl->algo;
      CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle(), xd, yd, cd, wd, bwd_filter, &b));
      ws_bytes = std::max(ws_bytes, b);
      label += ", data " + std::to_string(int(bwd_data)) + ", filter " + std::to_string(int(bwd_filter));
    }
    ws = empty({int64_t(ws_bytes / 4 + 1)}, dev());
  }
  CudnnDepthwise(const CudnnDepthwise&) = delete;
  CudnnDepthwise& operator=(const CudnnDepthwise&) = delete;
  ~CudnnDepthwise() {
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
  }
  // the fastest result that ran (perf is sorted by time) in FMA math, or null (the row then
  // fails with `error` naming the pass; the other rows go on)
  template <class Perf>
  static const Perf* pick(const Perf* perf, int found, const char* pass, std::string& error) {
    for (int i = 0; i < found; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].mathType == CUDNN_FMA_MATH) return &perf[i];
    if (error.empty())
      error = std::string("cuDNN found no ") + pass + " algorithm in FMA math (" + std::to_string(found) + " tried)";
    return nullptr;
  }
  std::string error;  // set when an algorithm is missing
  void forward(const Tensor& x, const Tensor& w, const Tensor& y) const {
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnConvolutionForward(handle(), &one, xd, x.data_ptr(), wd, w.data_ptr(), cd, fwd, ws.data_ptr(),
                                        ws_bytes, &zero, yd, y.data_ptr()));
  }
  void backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Tensor& gx, const Tensor& gw) const {
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnConvolutionBackwardData(handle(), &one, wd, w.data_ptr(), yd, gy.data_ptr(), cd, bwd_data,
                                             ws.data_ptr(), ws_bytes, &zero, xd, gx.data_ptr()));
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), &one, xd, x.data_ptr(), yd, gy.data_ptr(), cd, bwd_filter,
                                               ws.data_ptr(), ws_bytes, &zero, wd, gw.data_ptr()));
  }
};

// One depthwise problem, args N, H, W, C, k, stride, backward?: adnn's tensors (NHWC) and
// what cuDNN computes from them in the other layout when asked.
struct DepthwiseCase {
  int64_t N, H, W, C, k, s;
  bool bwd;
  Conv2dOptions o;
  Tensor x, w, gy;  // (N, H, W, C), (C, k, k, 1), (N, OH, OW, C)
  explicit DepthwiseCase(const benchmark::State& st)
      : N(st.range(0)), H(st.range(1)), W(st.range(2)), C(st.range(3)), k(st.range(4)), s(st.range(5)),
        bwd(st.range(6) != 0) {
    o.stride = {s, s};
    o.padding = {k / 2, k / 2, k / 2, k / 2};
    o.groups = C;
    const int64_t OH = (H + 2 * (k / 2) - k) / s + 1, OW = (W + 2 * (k / 2) - k) / s + 1;
    x = randn({N, H, W, C}, dev());
    w = randn({C, k, k, 1}, dev());
    gy = randn({N, OH, OW, C}, dev());
  }
  // adnn: y, and with bwd the gradients of x and w for gy
  std::vector<Tensor> adnn() const {
    if (!bwd) {
      NoGradGuard ng;
      return {conv2d(x, w, {}, o)};
    }
    Tensor xg = x.detach().requires_grad_(), wg = w.detach().requires_grad_();
    Tensor y = conv2d(xg, wg, {}, o);
    y.backward(gy);
    return {y.detach(), xg.grad(), wg.grad()};
  }
  std::string shape() const {
    char b[96];
    std::snprintf(b, sizeof b, "%lldx%lldx%lldx%lld k%lld s%lld%s", (long long)N, (long long)H, (long long)W,
                  (long long)C, (long long)k, (long long)s, bwd ? " fwd+bwd" : " fwd");
    return b;
  }
  // bytes: x and w read and y written (forward); backward adds gy read twice, x read, gx and gw written
  double bytes() const {
    const double y = double(gy.numel()), xs = double(x.numel()), ws = double(w.numel());
    return 4.0 * (xs + ws + y + (bwd ? 2 * y + xs + xs + ws : 0));
  }
};

// f32 tolerances: the forward sums k² products; the filter gradient sums N·OH·OW of them
bool validate_depthwise(benchmark::State& st, const DepthwiseCase& c, const std::vector<Tensor>& got,
                        const std::vector<Tensor>& want) {
  const double terms = double(c.gy.numel() / c.C);
  if (!bench::validate(st, "depthwise y", got[0], want[0], 1e-4, 1e-4 * c.k)) return false;
  if (!c.bwd) return true;
  return bench::validate(st, "depthwise dx", got[1], want[1], 1e-4, 1e-4 * c.k) &&
         bench::validate(st, "depthwise dw", got[2], want[2], 1e-3, 1e-4 * std::sqrt(terms));
}

// cuDNN's results for the case in `fmt`, as NHWC tensors: y, and with bwd dx and dw
std::vector<Tensor> cudnn_depthwise(const DepthwiseCase& c, const CudnnDepthwise& cd, cudnnTensorFormat_t fmt) {
  const bool nchw = fmt == CUDNN_TENSOR_NCHW;
  Tensor x = nchw ? c.x.permute({0, 3, 1, 2}).contiguous() : c.x;
  Tensor gy = nchw ? c.gy.permute({0, 3, 1, 2}).contiguous() : c.gy;
  Tensor y = empty(gy.sizes(), dev());
  cd.forward(x, c.w, y);
  auto nhwc = [&](const Tensor& t) { return nchw ? t.permute({0, 2, 3, 1}).contiguous() : t; };
  if (!c.bwd) return {nhwc(y)};
  Tensor gx = empty(x.sizes(), dev()), gw = empty(c.w.sizes(), dev());
  cd.backward(x, c.w, gy, gx, gw);
  return {nhwc(y), nhwc(gx), gw};
}

// cuDNN's descriptors and algorithms per (layout, shape, pass), found once per process (the
// runner calls a benchmark function several times while it sizes the iteration count)
const CudnnDepthwise& cudnn_depthwise_plan(cudnnTensorFormat_t fmt, const DepthwiseCase& c) {
  static std::map<std::vector<int64_t>, std::unique_ptr<CudnnDepthwise>> plans;
  std::unique_ptr<CudnnDepthwise>& p = plans[{int64_t(fmt), c.N, c.H, c.W, c.C, c.k, c.s, int64_t(c.bwd)}];
  if (!p) p = std::make_unique<CudnnDepthwise>(fmt, int(c.N), int(c.H), int(c.W), int(c.C), int(c.k), int(c.s), c.bwd);
  return *p;
}

// One case per shape for the whole process: the runner calls a benchmark function several
// times while it sizes the iteration count, and adnn's row and its baselines share the inputs.
const DepthwiseCase& depthwise_case(const benchmark::State& st) {
  static std::map<std::vector<int64_t>, std::unique_ptr<DepthwiseCase>> cases;
  std::vector<int64_t> key;
  for (int i = 0; i < 7; ++i) key.push_back(st.range(i));
  std::unique_ptr<DepthwiseCase>& c = cases[key];
  if (!c) c = std::make_unique<DepthwiseCase>(st);
  return *c;
}

void BM_depthwise_adnn(benchmark::State& st) {
  const DepthwiseCase& c = depthwise_case(st);
  if (bench::first_call(st)) {
    const bench::Stopwatch setup;
    const CudnnDepthwise& ref = cudnn_depthwise_plan(CUDNN_TENSOR_NHWC, c);
    if (!ref.error.empty()) return st.SkipWithError(("reference: " + ref.error).c_str());
    if (!validate_depthwise(st, c, c.adnn(), cudnn_depthwise(c, ref, CUDNN_TENSOR_NHWC))) return;
    setup.report("depthwise adnn " + c.shape());
  }
  st.SetLabel(bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(c.adnn()[0].data_ptr()); }));
  rate(st, c.bytes());
}

void depthwise_cudnn(benchmark::State& st, cudnnTensorFormat_t fmt) {
  const DepthwiseCase& c = depthwise_case(st);
  const bench::Stopwatch setup;
  const CudnnDepthwise& cd = cudnn_depthwise_plan(fmt, c);
  if (!cd.error.empty()) return st.SkipWithError(cd.error.c_str());
  if (bench::first_call(st)) {
    if (!validate_depthwise(st, c, cudnn_depthwise(c, cd, fmt), c.adnn())) return;
    setup.report(std::string(fmt == CUDNN_TENSOR_NCHW ? "depthwise cudnn nchw " : "depthwise cudnn nhwc ") + c.shape());
  }
  const bool nchw = fmt == CUDNN_TENSOR_NCHW;
  Tensor x = nchw ? c.x.permute({0, 3, 1, 2}).contiguous() : c.x;
  Tensor gy = nchw ? c.gy.permute({0, 3, 1, 2}).contiguous() : c.gy;
  Tensor y = empty(gy.sizes(), dev()), gx = empty(x.sizes(), dev()), gw = empty(c.w.sizes(), dev());
  const std::string how = bench::time_with_cuda_events(st, [&] {
    cd.forward(x, c.w, y);
    if (c.bwd) cd.backward(x, c.w, gy, gx, gw);
  });
  rate(st, c.bytes());
  st.SetLabel(cd.label + "; " + how);
}
void BM_depthwise_cudnn_nhwc(benchmark::State& st) { depthwise_cudnn(st, CUDNN_TENSOR_NHWC); }
void BM_depthwise_cudnn_nchw(benchmark::State& st) { depthwise_cudnn(st, CUDNN_TENSOR_NCHW); }

// ---------------------------------------------------------------- squeeze-excite
// args: N, H, W, C, reduced
// The unfused squeeze-excite from cuDNN and cuBLAS with an adnn SqueezeExcite's weights,
// shared by the SE and MBConv baselines: pooled (N, C) = mean over (H, W) of x (N, H, W, C);
// h (N, R) = swish(pooled · w1ᵀ + b1); g (N, C) = sigmoid(h · w2ᵀ + b2); y = x · g. Also
// holds the swish descriptor the MBConv uses.
struct CudnnSqueezeExcite {
  int N, C, R;
  cudnnTensorDescriptor_t xd, pd, hd, b1d, b2d;
  cudnnReduceTensorDescriptor_t rd;
  cudnnActivationDescriptor_t swish, sig;
  cudnnOpTensorDescriptor_t mul;
  size_t ws_bytes = 0;
  Tensor ws, pooled, h, g, w1, b1, w2, b2;
  CudnnSqueezeExcite(int n, int height, int width, const nn::SqueezeExcite& se)
      : N(n), C(int(se.conv_reduce->weight.size(3))), R(int(se.conv_reduce->weight.size(0))) {
    xd = tensor4(CUDNN_TENSOR_NHWC, N, C, height, width);
    pd = tensor4(CUDNN_TENSOR_NHWC, N, C, 1, 1);
    hd = tensor4(CUDNN_TENSOR_NCHW, N, R, 1, 1);
    b1d = tensor4(CUDNN_TENSOR_NCHW, 1, R, 1, 1);
    b2d = tensor4(CUDNN_TENSOR_NHWC, 1, C, 1, 1);
    CUDNN_CHECK(cudnnCreateReduceTensorDescriptor(&rd));
    CUDNN_CHECK(cudnnSetReduceTensorDescriptor(rd, CUDNN_REDUCE_TENSOR_AVG, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN,
                                               CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES));
    CUDNN_CHECK(cudnnGetReductionWorkspaceSize(handle(), rd, xd, pd, &ws_bytes));
    ws = empty({int64_t(ws_bytes / 4 + 1)}, dev());
    CUDNN_CHECK(cudnnCreateActivationDescriptor(&swish));
    CUDNN_CHECK(cudnnSetActivationDescriptor(swish, CUDNN_ACTIVATION_SWISH, CUDNN_PROPAGATE_NAN, 0.0));
    CUDNN_CHECK(cudnnSetActivationDescriptorSwishBeta(swish, 1.0));  // SiLU: x·σ(βx), β = 1 (no documented default)
    CUDNN_CHECK(cudnnCreateActivationDescriptor(&sig));
    CUDNN_CHECK(cudnnSetActivationDescriptor(sig, CUDNN_ACTIVATION_SIGMOID, CUDNN_PROPAGATE_NAN, 0.0));
    CUDNN_CHECK(cudnnCreateOpTensorDescriptor(&mul));
    CUDNN_CHECK(cudnnSetOpTensorDescriptor(mul, CUDNN_OP_TENSOR_MUL, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN));
    pooled = empty({int64_t(N) * C}, dev());
    h = empty({int64_t(N) * R}, dev());
    g = empty({int64_t(N) * C}, dev());
    // (R, 1, 1, C) and (C, 1, 1, R): row-major (R, C) and (C, R)
    w1 = se.conv_reduce->weight.detach().contiguous();
    b1 = se.conv_reduce->bias.detach().contiguous();
    w2 = se.conv_expand->weight.detach().contiguous();
    b2 = se.conv_expand->bias.detach().contiguous();
  }
  CudnnSqueezeExcite(const CudnnSqueezeExcite&) = delete;
  CudnnSqueezeExcite& operator=(const CudnnSqueezeExcite&) = delete;
  ~CudnnSqueezeExcite() {
    cudnnDestroyOpTensorDescriptor(mul);
    cudnnDestroyActivationDescriptor(sig);
    cudnnDestroyActivationDescriptor(swish);
    cudnnDestroyReduceTensorDescriptor(rd);
    for (auto d : {xd, pd, hd, b1d, b2d}) cudnnDestroyTensorDescriptor(d);
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
    CUBLAS_CHECK(cublasSgemm(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, R, N, C, &one, static_cast<float*>(w1.data_ptr()), C,
                             static_cast<float*>(pooled.data_ptr()), C, &zero, static_cast<float*>(h.data_ptr()), R));
    CUDNN_CHECK(cudnnAddTensor(handle(), &one, b1d, b1.data_ptr(), &one, hd, h.data_ptr()));
    activate(hd, h);
    CUBLAS_CHECK(cublasSgemm(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, C, N, R, &one, static_cast<float*>(w2.data_ptr()), R,
                             static_cast<float*>(h.data_ptr()), R, &zero, static_cast<float*>(g.data_ptr()), C));
    CUDNN_CHECK(cudnnAddTensor(handle(), &one, b2d, b2.data_ptr(), &one, pd, g.data_ptr()));
    CUDNN_CHECK(cudnnActivationForward(handle(), sig, &one, pd, g.data_ptr(), &zero, pd, g.data_ptr()));
    CUDNN_CHECK(cudnnOpTensor(handle(), mul, &one, xd, x.data_ptr(), &one, pd, g.data_ptr(), &zero, xd, y.data_ptr()));
  }
};

// adnn's SE with non-trivial biases (a zero bias would hide a missing bias add)
std::unique_ptr<nn::SqueezeExcite> make_se(int64_t C, int64_t R) {
  auto se = std::make_unique<nn::SqueezeExcite>(C, R);
  se->to(kCUDA);
  NoGradGuard ng;
  se->conv_reduce->bias.copy_(randn({R}, dev()) * 0.5);
  se->conv_expand->bias.copy_(randn({C}, dev()) * 0.5);
  return se;
}

void BM_se_adnn(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t N = st.range(0), H = st.range(1), W = st.range(2), C = st.range(3), R = st.range(4);
  auto se = make_se(C, R);
  Tensor x = randn({N, H, W, C}, dev());
  if (bench::first_call(st)) {
    CudnnSqueezeExcite ref(int(N), int(H), int(W), *se);
    Tensor y = empty({N, H, W, C}, dev());
    ref.run(x, y);
    if (!bench::validate(st, "squeeze-excite", (*se)(x), y, 1e-4, 1e-5)) return;
  }
  st.SetLabel(bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize((*se)(x).data_ptr()); }));
  rate(st, 2.0 * double(x.numel()) * 4);
}

void BM_se_cudnn(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t N = st.range(0), H = st.range(1), W = st.range(2), C = st.range(3), R = st.range(4);
  auto se = make_se(C, R);
  Tensor x = randn({N, H, W, C}, dev()), y = empty({N, H, W, C}, dev());
  CudnnSqueezeExcite ref(int(N), int(H), int(W), *se);
  ref.run(x, y);
  if (bench::first_call(st) && !bench::validate(st, "squeeze-excite", y, (*se)(x), 1e-4, 1e-5)) return;
  st.SetLabel(bench::time_with_cuda_events(st, [&] { ref.run(x, y); }));
  rate(st, 2.0 * double(x.numel()) * 4);
}

// ---------------------------------------------------------------- CBAM pooling
// args: N, H, W, C. cuDNN: four reductions (average and maximum over H·W, and over C).
struct CudnnCbamPools {
  int N, H, W, C;
  cudnnTensorDescriptor_t xd, cd, sd;
  cudnnReduceTensorDescriptor_t avg, mx;
  Tensor ws;
  size_t ws_bytes = 0;
  Tensor ca, cm, sa, sm;  // (N, C) mean and max over H·W; (N, H, W) mean and max over C
  CudnnCbamPools(int n, int h, int w, int c) : N(n), H(h), W(w), C(c) {
    xd = tensor4(CUDNN_TENSOR_NHWC, N, C, H, W);
    cd = tensor4(CUDNN_TENSOR_NHWC, N, C, 1, 1);
    sd = tensor4(CUDNN_TENSOR_NHWC, N, 1, H, W);
    for (auto [d, op] : {std::pair{&avg, CUDNN_REDUCE_TENSOR_AVG}, std::pair{&mx, CUDNN_REDUCE_TENSOR_MAX}}) {
      CUDNN_CHECK(cudnnCreateReduceTensorDescriptor(d));
      CUDNN_CHECK(cudnnSetReduceTensorDescriptor(*d, op, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN,
                                                 CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES));
    }
    for (auto* r : {&avg, &mx})
      for (auto out : {cd, sd}) {
        size_t b = 0;
        CUDNN_CHECK(cudnnGetReductionWorkspaceSize(handle(), *r, xd, out, &b));
        ws_bytes = std::max(ws_bytes, b);
      }
    ws = empty({int64_t(ws_bytes / 4 + 1)}, dev());
    ca = empty({N, C}, dev());
    cm = empty({N, C}, dev());
    sa = empty({N, H, W}, dev());
    sm = empty({N, H, W}, dev());
  }
  CudnnCbamPools(const CudnnCbamPools&) = delete;
  CudnnCbamPools& operator=(const CudnnCbamPools&) = delete;
  ~CudnnCbamPools() {
    cudnnDestroyReduceTensorDescriptor(avg);
    cudnnDestroyReduceTensorDescriptor(mx);
    for (auto d : {xd, cd, sd}) cudnnDestroyTensorDescriptor(d);
  }
  void run(const Tensor& x) {
    const float one = 1, zero = 0;
    for (auto [r, c, s] : {std::tuple{avg, &ca, &sa}, std::tuple{mx, &cm, &sm}}) {
      CUDNN_CHECK(cudnnReduceTensor(handle(), r, nullptr, 0, ws.data_ptr(), ws_bytes, &one, xd, x.data_ptr(), &zero,
                                    cd, c->data_ptr()));
      CUDNN_CHECK(cudnnReduceTensor(handle(), r, nullptr, 0, ws.data_ptr(), ws_bytes, &one, xd, x.data_ptr(), &zero,
                                    sd, s->data_ptr()));
    }
  }
};

// adnn's pools against cuDNN's four reductions: channel_pool2d (N, 2, C) = [mean; max] over
// H·W, spatial_pool2d (N, H, W, 2) = [mean, max] over C
bool validate_cbam_pools(benchmark::State& st, const Tensor& x, CudnnCbamPools& ref) {
  ref.run(x);
  const Tensor cp = channel_pool2d(x), sp = spatial_pool2d(x);
  return bench::validate(st, "channel pool mean", cp.select(1, 0), ref.ca, 1e-4, 1e-5) &&
         bench::validate(st, "channel pool max", cp.select(1, 1), ref.cm, 0, 0) &&
         bench::validate(st, "spatial pool mean", sp.select(3, 0), ref.sa, 1e-4, 1e-5) &&
         bench::validate(st, "spatial pool max", sp.select(3, 1), ref.sm, 0, 0);
}

void BM_cbam_pools_adnn(benchmark::State& st) {
  NoGradGuard ng;
  Tensor x = randn({st.range(0), st.range(1), st.range(2), st.range(3)}, dev());
  if (bench::first_call(st)) {
    CudnnCbamPools ref(int(st.range(0)), int(st.range(1)), int(st.range(2)), int(st.range(3)));
    if (!validate_cbam_pools(st, x, ref)) return;
  }
  st.SetLabel(bench::time_with_cuda_events(st, [&] {
    benchmark::DoNotOptimize(channel_pool2d(x).data_ptr());
    benchmark::DoNotOptimize(spatial_pool2d(x).data_ptr());
  }));
  rate(st, 2.0 * double(x.numel()) * 4);  // each pass reads x once
}

void BM_cbam_pools_cudnn(benchmark::State& st) {
  NoGradGuard ng;
  Tensor x = randn({st.range(0), st.range(1), st.range(2), st.range(3)}, dev());
  CudnnCbamPools ref(int(st.range(0)), int(st.range(1)), int(st.range(2)), int(st.range(3)));
  if (bench::first_call(st) && !validate_cbam_pools(st, x, ref)) return;
  st.SetLabel(bench::time_with_cuda_events(st, [&] { ref.run(x); }));
  rate(st, 4.0 * double(x.numel()) * 4);  // four passes over x
}

// ---------------------------------------------------------------- attention
// args: B, H, L, D, backward?. The f32 composition: one cublasSgemmStridedBatched per
// product over the B·H heads (q, k, v (B, H, L, D) row-major are column-major D×L per head),
// adnn's softmax between; backward: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP − rowsum(dP∘P)),
// dQ = scale·dS·K, dK = scale·dSᵀ·Q (four more batched GEMMs, three elementwise ops).
struct CublasAttention {
  int64_t B, H, L, D;
  int bh, n, d;
  long long LD, LL;
  float scale;
  Tensor p;  // (B, H, L, L) the softmax, kept for the backward pass
  CublasAttention(int64_t b, int64_t h, int64_t l, int64_t dd)
      : B(b), H(h), L(l), D(dd), bh(int(b * h)), n(int(l)), d(int(dd)), LD(l * dd), LL(l * l),
        scale(float(1.0 / std::sqrt(double(dd)))) {}
  // row-major C (rows × cols) = α·op(A)·op(B) per head, written as column-major Cᵀ
  void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int nn, int k, float alpha, const Tensor& a, int lda,
            long long sa, const Tensor& b, int ldb, long long sb, const Tensor& c, int ldc, long long sc) const {
    const float zero = 0;
    CUBLAS_CHECK(cublasSgemmStridedBatched(cublas(), ta, tb, m, nn, k, &alpha, static_cast<const float*>(a.data_ptr()),
                                           lda, sa, static_cast<const float*>(b.data_ptr()), ldb, sb, &zero,
                                           static_cast<float*>(c.data_ptr()), ldc, sc, bh));
  }
  Tensor forward(const Tensor& q, const Tensor& k, const Tensor& v) {
    Tensor s = empty({B, H, L, L}, dev()), o = empty({B, H, L, D}, dev());
    // S = scale·Q·Kᵀ  ⇔  column-major Sᵀ = scale·K·Qᵀ
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, scale, k, d, LD, q, d, LD, s, n, LL);
    p = softmax(s, -1);
    // O = P·V  ⇔  Oᵀ = Vᵀ·Pᵀ
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, d, n, n, 1.f, v, d, LD, p, n, LL, o, d, LD);
    return o;
  }
  // after forward(q, k, v): {dq, dk, dv} for the output gradient go
  std::vector<Tensor> backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& go) const {
    Tensor dq = empty({B, H, L, D}, dev()), dk = empty({B, H, L, D}, dev()), dv = empty({B, H, L, D}, dev());
    Tensor dp = empty({B, H, L, L}, dev());
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, d, n, n, 1.f, go, d, LD, p, n, LL, dv, d, LD);  // dVᵀ = dOᵀ·P
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, 1.f, v, d, LD, go, d, LD, dp, n, LL);  // dPᵀ = V·dOᵀ
    const Tensor ds = p * (dp - sum(dp * p, {-1}, true));
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, d, n, n, scale, k, d, LD, ds, n, LL, dq, d, LD);  // dQᵀ = scale·Kᵀ·dSᵀ
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, d, n, n, scale, q, d, LD, ds, n, LL, dk, d, LD);  // dKᵀ = scale·Qᵀ·dS
    return {dq, dk, dv};
  }
};

struct AttentionCase {
  int64_t B, H, L, D;
  bool bwd;
  Tensor q, k, v, go;  // (B, H, L, D) each
  explicit AttentionCase(const benchmark::State& st)
      : B(st.range(0)), H(st.range(1)), L(st.range(2)), D(st.range(3)), bwd(st.range(4) != 0) {
    q = randn({B, H, L, D}, dev());
    k = randn({B, H, L, D}, dev());
    v = randn({B, H, L, D}, dev());
    go = randn({B, H, L, D}, dev());
  }
  // adnn's fused kernel (or, with SdpaBackend::math, adnn's GEMM composition — what a real
  // GPU runs by default for f32): o, and with bwd {o, dq, dk, dv}
  std::vector<Tensor> fused(SdpaBackend backend = SdpaBackend::fused) const {
    const SdpaBackendScope scope(backend);
    if (!bwd) {
      NoGradGuard ng;
      return {scaled_dot_product_attention(q, k, v)};
    }
    Tensor qg = q.detach().requires_grad_(), kg = k.detach().requires_grad_(), vg = v.detach().requires_grad_();
    Tensor o = scaled_dot_product_attention(qg, kg, vg);
    o.backward(go);
    return {o.detach(), qg.grad(), kg.grad(), vg.grad()};
  }
  std::vector<Tensor> composed(CublasAttention& c) const {
    NoGradGuard ng;
    Tensor o = c.forward(q, k, v);
    if (!bwd) return {o};
    std::vector<Tensor> g = c.backward(q, k, v, go);
    return {o, g[0], g[1], g[2]};
  }
  void report(benchmark::State& st) const {
    const double flops = 4.0 * double(B * H) * double(L) * double(L) * double(D) * (bwd ? 3.5 : 1.0);
    rate(st, double(4 * B * H * L * D) * 4 * (bwd ? 2.5 : 1.0), flops);
  }
};

bool validate_attention(benchmark::State& st, const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  const char* names[] = {"attention o", "attention dq", "attention dk", "attention dv"};
  for (size_t i = 0; i < got.size(); ++i)
    if (!bench::validate(st, names[i], got[i], want[i], 2e-3, 2e-4)) return false;
  return true;
}

void BM_attention_fused(benchmark::State& st) {
  const AttentionCase c(st);
  if (bench::first_call(st)) {
    CublasAttention ref(c.B, c.H, c.L, c.D);
    if (!validate_attention(st, c.fused(), c.composed(ref))) return;
  }
  st.SetLabel(bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(c.fused()[0].data_ptr()); }));
  c.report(st);
}
// adnn's math backend (matmul, softmax, matmul through the op layer, autograd for backward)
void BM_attention_math(benchmark::State& st) {
  const AttentionCase c(st);
  if (bench::first_call(st)) {
    CublasAttention ref(c.B, c.H, c.L, c.D);
    if (!validate_attention(st, c.fused(SdpaBackend::math), c.composed(ref))) return;
  }
  st.SetLabel(bench::time_with_cuda_events(
      st, [&] { benchmark::DoNotOptimize(c.fused(SdpaBackend::math)[0].data_ptr()); }));
  c.report(st);
}
void BM_attention_unfused(benchmark::State& st) {
  const AttentionCase c(st);
  CublasAttention ref(c.B, c.H, c.L, c.D);
  if (bench::first_call(st) && !validate_attention(st, c.composed(ref), c.fused())) return;
  st.SetLabel(bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(c.composed(ref)[0].data_ptr()); }));
  c.report(st);
}

// f16, args B, H, L, D, backward?: adnn's tensor-core kernels (kernels/attention_mma.cuh) vs
// the composition on tensor cores: cublasGemmStridedBatchedEx (f16 in, f32 out) for S = Q·Kᵀ,
// adnn's softmax on S (scaled), P rounded to f16, cublasGemmStridedBatchedEx for O = P·V.
// Both validated against the f32 composition on the same (f16-rounded) inputs, at f16
// tolerances.
void BM_attention_fused_f16(benchmark::State& st) {
  const AttentionCase c(st);
  Tensor q = c.q.to(DType::f16), k = c.k.to(DType::f16), v = c.v.to(DType::f16), go = c.go.to(DType::f16);
  auto run = [&] {
    const SdpaBackendScope fused(SdpaBackend::fused);  // the tensor-core kernels, at every head dim
    if (!c.bwd) {
      NoGradGuard ng;
      return std::vector<Tensor>{scaled_dot_product_attention(q, k, v)};
    }
    Tensor qg = q.detach().requires_grad_(), kg = k.detach().requires_grad_(), vg = v.detach().requires_grad_();
    Tensor o = scaled_dot_product_attention(qg, kg, vg);
    o.backward(go);
    return std::vector<Tensor>{o.detach(), qg.grad(), kg.grad(), vg.grad()};
  };
  if (bench::first_call(st)) {
    AttentionCase r = c;  // the f32 reference on the rounded inputs
    r.q = q.to(DType::f32);
    r.k = k.to(DType::f32);
    r.v = v.to(DType::f32);
    r.go = go.to(DType::f32);
    CublasAttention ref(c.B, c.H, c.L, c.D);
    const std::vector<Tensor> got = run(), want = r.composed(ref);
    const char* names[] = {"f16 attention o", "f16 attention dq", "f16 attention dk", "f16 attention dv"};
    for (size_t i = 0; i < got.size(); ++i)
      if (!bench::validate(st, names[i], got[i], want[i], 2e-2, 2e-2)) return;
  }
  st.SetLabel(bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(run()[0].data_ptr()); }));
  const double flops = 4.0 * double(c.B * c.H) * double(c.L) * double(c.L) * double(c.D) * (c.bwd ? 3.5 : 1.0);
  rate(st, double(4 * c.B * c.H * c.L * c.D) * 2 * (c.bwd ? 2.5 : 1.0), flops);
}
void BM_attention_unfused_f16(benchmark::State& st) {
  NoGradGuard ng;
  if (st.range(4) != 0) {
    st.SkipWithError("the f16 composition is timed forward only");
    return;
  }
  const AttentionCase c(st);
  const int64_t B = c.B, H = c.H, L = c.L, D = c.D, BH = B * H;
  Tensor q = c.q.to(DType::f16), k = c.k.to(DType::f16), v = c.v.to(DType::f16);
  Tensor s = empty({B, H, L, L}, dev());
  Tensor o = empty({B, H, L, D}, dev());
  const float one = 1.f, zero = 0.f, scale = float(1.0 / std::sqrt(double(D)));
  const int n = int(L), d = int(D);
  auto run = [&] {
    // row-major S = Q·Kᵀ  ⇔  column-major Sᵀ = K·Qᵀ (K and Q are column-major D×L)
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, &scale, k.data_ptr(),
                                            CUDA_R_16F, d, int64_t(L) * D, q.data_ptr(), CUDA_R_16F, d, int64_t(L) * D,
                                            &zero, s.data_ptr(), CUDA_R_32F, n, int64_t(L) * L, int(BH),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    Tensor p = softmax(s, -1).to(DType::f16);
    // O (row-major L×D) = P·V  ⇔  column-major Oᵀ = Vᵀ·Pᵀ
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, d, n, n, &one, v.data_ptr(),
                                            CUDA_R_16F, d, int64_t(L) * D, p.data_ptr(), CUDA_R_16F, n, int64_t(L) * L,
                                            &zero, o.data_ptr(), CUDA_R_32F, d, int64_t(L) * D, int(BH),
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  if (bench::first_call(st)) {
    AttentionCase r = c;
    r.q = q.to(DType::f32);
    r.k = k.to(DType::f32);
    r.v = v.to(DType::f32);
    CublasAttention ref(B, H, L, D);
    run();
    if (!bench::validate(st, "f16 composition o", o, r.composed(ref)[0], 2e-2, 2e-2)) return;
  }
  const std::string how = bench::time_with_cuda_events(st, [&] {
    run();
    benchmark::DoNotOptimize(o.data_ptr());
  });
  // an f16 leading dimension that is not a multiple of 8 elements (L = 49) keeps cuBLAS off its
  // aligned tensor-core kernels: the composition is handicapped there, adnn's kernel is not
  st.SetLabel(L % 8 ? how + "; P's leading dimension " + std::to_string(L) + " is not 16-byte aligned for cuBLAS"
                    : how);
  // q, k, v read in f16; o written in f32
  rate(st, double(B * H * L * D) * (3 * 2 + 4), 4.0 * double(BH) * double(L) * double(L) * double(D));
}

// ---------------------------------------------------------------- a whole MBConv block (inference)
// args: N, H, W, C (in = out), expand, k. adnn: nn::MBConv in eval mode (GEMM 1×1 convs,
// fused BN + SiLU, depthwise kernel, fused SE, fused BN + residual epilogue). Baseline: the
// same block, with the adnn block's weights and batch-norm statistics, from cuDNN calls:
// convolutions (1×1 and grouped k×k, FMA math, fastest successful algorithm),
// cudnnBatchNormalizationForwardInference, swish/sigmoid activations, reduction + cuBLAS
// for SE, cudnnOpTensor for the gate and cudnnAddTensor for the skip.

// adnn's block in eval mode with random batch-norm statistics and affine parameters (the
// defaults, 0/1, would hide a missing or swapped term)
std::unique_ptr<nn::MBConv> make_mbconv(int64_t C, int64_t e, int64_t k) {
  auto block = std::make_unique<nn::MBConv>(C, C, k, 1, e, 0.25, false, 0.0);
  block->eval();
  block->to(kCUDA);
  NoGradGuard ng;
  for (auto* bn : {block->bn1.get(), block->bn2.get(), block->bn3.get()}) {
    const int64_t c = bn->weight.numel();
    bn->weight.copy_(uniform({c}, 0.5, 1.5, dev()));
    bn->bias.copy_(randn({c}, dev()) * 0.1);
    bn->running_mean.copy_(randn({c}, dev()) * 0.1);
    bn->running_var.copy_(uniform({c}, 0.5, 1.5, dev()));
  }
  block->se->conv_reduce->bias.copy_(randn({block->se->conv_reduce->bias.numel()}, dev()) * 0.5);
  block->se->conv_expand->bias.copy_(randn({block->se->conv_expand->bias.numel()}, dev()) * 0.5);
  return block;
}

struct CudnnConv {
  cudnnTensorDescriptor_t xd, yd;
  cudnnFilterDescriptor_t wd;
  cudnnConvolutionDescriptor_t cd;
  cudnnConvolutionFwdAlgo_t algo;
  size_t ws = 0;
  Tensor w;  // adnn's (Cout, k, k, Cin / groups): cuDNN's NHWC filter (KRSC)
  CudnnConv(int N, int H, int W, const nn::Conv2d& conv, int groups) {
    const int Cout = int(conv.weight.size(0)), k = int(conv.weight.size(1)), Cin = int(conv.weight.size(3)) * groups;
    w = conv.weight.detach().contiguous();
    xd = tensor4(CUDNN_TENSOR_NHWC, N, Cin, H, W);
    yd = tensor4(CUDNN_TENSOR_NHWC, N, Cout, H, W);
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, Cout, Cin / groups, k, k));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, k / 2, k / 2, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(cd, groups));
    CUDNN_CHECK(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH));
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    int found = 0;
    CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle(), xd, wd, cd, yd, 8, &found, perf));
    const auto* p = CudnnDepthwise::pick(perf, found, groups > 1 ? "MBConv depthwise" : "MBConv 1x1", error);
    if (!p) return;
    algo = p->algo;
    CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle(), xd, wd, cd, yd, algo, &ws));
  }
  std::string error;  // set when no algorithm ran in FMA math
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;
  ~CudnnConv() {
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
  }
  void run(const Tensor& x, Tensor& y, Tensor& workspace) const {
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnConvolutionForward(handle(), &one, xd, x.data_ptr(), wd, w.data_ptr(), cd, algo,
                                        workspace.data_ptr(), ws, &zero, yd, y.data_ptr()));
  }
};

// The MBConv block from cuDNN calls with an adnn block's parameters
struct CudnnMBConv {
  int N, H, W, C, M;
  CudnnConv expand, dw, project;
  CudnnSqueezeExcite se;
  Tensor ws, a, b;
  cudnnTensorDescriptor_t md, cdsc, bnm, bnc;
  std::vector<Tensor> p1, p2, p3;  // (scale, bias, mean, var) of bn1, bn2, bn3
  double eps;
  CudnnMBConv(int n, int h, int w, const nn::MBConv& blk)
      : N(n), H(h), W(w), C(int(blk.conv_pw->weight.size(3))), M(int(blk.conv_pw->weight.size(0))),
        expand(n, h, w, *blk.conv_pw, 1), dw(n, h, w, *blk.conv_dw, M), project(n, h, w, *blk.conv_pwl, 1),
        se(n, h, w, *blk.se), eps(blk.bn1->eps) {
    ws = empty({int64_t(std::max({expand.ws, dw.ws, project.ws}) / 4 + 1)}, dev());
    a = empty({int64_t(N) * H * W * M}, dev());
    b = empty({int64_t(N) * H * W * M}, dev());
    md = tensor4(CUDNN_TENSOR_NHWC, N, M, H, W);
    cdsc = tensor4(CUDNN_TENSOR_NHWC, N, C, H, W);
    bnm = tensor4(CUDNN_TENSOR_NCHW, 1, M, 1, 1);
    bnc = tensor4(CUDNN_TENSOR_NCHW, 1, C, 1, 1);
    auto params = [](const nn::BatchNorm2d& bn) {
      return std::vector<Tensor>{bn.weight.detach(), bn.bias.detach(), bn.running_mean.detach(),
                                 bn.running_var.detach()};
    };
    p1 = params(*blk.bn1);
    p2 = params(*blk.bn2);
    p3 = params(*blk.bn3);
  }
  std::string error() const { return !expand.error.empty() ? expand.error : !dw.error.empty() ? dw.error : project.error; }
  CudnnMBConv(const CudnnMBConv&) = delete;
  CudnnMBConv& operator=(const CudnnMBConv&) = delete;
  ~CudnnMBConv() {
    for (auto d : {md, cdsc, bnm, bnc}) cudnnDestroyTensorDescriptor(d);
  }
  void bn(cudnnTensorDescriptor_t d, cudnnTensorDescriptor_t pd, const std::vector<Tensor>& p, Tensor& t) const {
    const float one = 1, zero = 0;
    CUDNN_CHECK(cudnnBatchNormalizationForwardInference(handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, d, t.data_ptr(),
                                                        d, t.data_ptr(), pd, p[0].data_ptr(), p[1].data_ptr(),
                                                        p[2].data_ptr(), p[3].data_ptr(), eps));
  }
  void run(const Tensor& x, Tensor& y) {
    const float one = 1;
    expand.run(x, a, ws);
    bn(md, bnm, p1, a);
    se.activate(md, a);
    dw.run(a, b, ws);
    bn(md, bnm, p2, b);
    se.activate(md, b);
    se.run(b, a);
    project.run(a, y, ws);
    bn(cdsc, bnc, p3, y);
    CUDNN_CHECK(cudnnAddTensor(handle(), &one, cdsc, x.data_ptr(), &one, cdsc, y.data_ptr()));
  }
};

// f32 through three convolutions, three norms and the gate: relative 1e-3
bool validate_mbconv(benchmark::State& st, const Tensor& got, const Tensor& want) {
  return bench::validate(st, "MBConv", got, want, 1e-3, 1e-3);
}

void BM_mbconv_adnn(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t N = st.range(0), H = st.range(1), W = st.range(2), C = st.range(3), e = st.range(4), k = st.range(5);
  auto block = make_mbconv(C, e, k);
  Tensor x = randn({N, H, W, C}, dev());
  if (bench::first_call(st)) {
    CudnnMBConv ref(int(N), int(H), int(W), *block);
    if (!ref.error().empty()) return st.SkipWithError(("reference: " + ref.error()).c_str());
    Tensor y = empty({N, H, W, C}, dev());
    ref.run(x, y);
    if (!validate_mbconv(st, (*block)(x), y)) return;
  }
  st.SetLabel(bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize((*block)(x).data_ptr()); }));
  rate(st, 2.0 * double(x.numel()) * 4 * (1 + 2 * double(e)));  // each activation written and read once
}

void BM_mbconv_cudnn(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t N = st.range(0), H = st.range(1), W = st.range(2), C = st.range(3), e = st.range(4), k = st.range(5);
  auto block = make_mbconv(C, e, k);
  Tensor x = randn({N, H, W, C}, dev()), y = empty({N, H, W, C}, dev());
  CudnnMBConv ref(int(N), int(H), int(W), *block);
  if (!ref.error().empty()) return st.SkipWithError(ref.error().c_str());
  ref.run(x, y);
  if (bench::first_call(st) && !validate_mbconv(st, y, (*block)(x))) return;
  st.SetLabel(bench::time_with_cuda_events(st, [&] { ref.run(x, y); }));
  rate(st, 2.0 * double(x.numel()) * 4 * (1 + 2 * double(e)));
}

// The rows, registered in main() shape by shape — adnn, then its baselines, for one shape
// before the next (interleaved: a drift of the card's clocks or temperature during the run
// then falls on both sides of a comparison alike) — in order of value, so that a run cut
// short by the GPU kit's time limit keeps the comparisons that matter most:
//   1. EfficientNet-B5's depthwise layers at 224² (batch 32), forward, then forward + backward:
//      adnn, cuDNN NHWC (the goal's baseline), cuDNN NCHW;
//   2. squeeze-excite, CBAM pools, MBConv blocks, attention (f32, then f16);
//   3. the depthwise layers at B5's own 456² (batch 8): adnn and cuDNN NHWC.
// Each row's args: depthwise (N, H, W, C, k, stride, backward?); SE (N, H, W, C, reduced);
// pools (N, H, W, C); MBConv (N, H, W, C, expand, k); attention (B, heads, L, head dim, backward?).
const std::vector<std::vector<int64_t>> kDw224 = {{32, 112, 112, 144, 3, 2}, {32, 56, 56, 240, 5, 2},
                                                  {32, 28, 28, 384, 3, 2},   {32, 14, 14, 1056, 5, 1},
                                                  {32, 14, 14, 1056, 5, 2},  {32, 7, 7, 3072, 3, 1}};
const std::vector<std::vector<int64_t>> kDw456 = {{8, 228, 228, 144, 3, 2}, {8, 114, 114, 240, 5, 2},
                                                  {8, 57, 57, 384, 3, 2},   {8, 29, 29, 1056, 5, 1},
                                                  {8, 29, 29, 1056, 5, 2},  {8, 15, 15, 3072, 3, 1}};

using BenchFn = void (*)(benchmark::State&);
void add_row(const char* name, BenchFn fn, const std::vector<int64_t>& args) {
  benchmark::RegisterBenchmark(name, fn)->Args(args)->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void register_rows() {
  auto depthwise = [](const std::vector<std::vector<int64_t>>& shapes, bool nchw) {
    for (int64_t bwd : {0, 1})
      for (auto s : shapes) {
        s.push_back(bwd);
        add_row("BM_depthwise_adnn", BM_depthwise_adnn, s);
        add_row("BM_depthwise_cudnn_nhwc", BM_depthwise_cudnn_nhwc, s);
        if (nchw) add_row("BM_depthwise_cudnn_nchw", BM_depthwise_cudnn_nchw, s);
      }
  };
  depthwise(kDw224, true);
  for (const std::vector<int64_t>& s : {std::vector<int64_t>{32, 56, 56, 240, 10}, {32, 14, 14, 1056, 44}, {32, 7, 7, 3072, 128}}) {
    add_row("BM_se_adnn", BM_se_adnn, s);
    add_row("BM_se_cudnn", BM_se_cudnn, s);
  }
  for (const std::vector<int64_t>& s : {std::vector<int64_t>{64, 14, 14, 176}, {64, 7, 7, 2048}, {64, 56, 56, 64}}) {
    add_row("BM_cbam_pools_adnn", BM_cbam_pools_adnn, s);
    add_row("BM_cbam_pools_cudnn", BM_cbam_pools_cudnn, s);
  }
  // EfficientNet-B5 MBConv blocks at 224x224, batch 32
  for (const std::vector<int64_t>& s : {std::vector<int64_t>{32, 56, 56, 40, 6, 5}, {32, 14, 14, 176, 6, 5}, {32, 7, 7, 512, 6, 3}}) {
    add_row("BM_mbconv_adnn", BM_mbconv_adnn, s);
    add_row("BM_mbconv_cudnn", BM_mbconv_cudnn, s);
  }
  const std::vector<std::vector<int64_t>> attn = {{64, 8, 49, 256}, {16, 8, 196, 64}, {4, 8, 1024, 64}};
  for (int64_t bwd : {0, 1})
    for (auto s : attn) {
      s.push_back(bwd);
      add_row("BM_attention_fused", BM_attention_fused, s);
      add_row("BM_attention_unfused", BM_attention_unfused, s);
      add_row("BM_attention_math", BM_attention_math, s);
    }
  for (int64_t bwd : {0, 1})  // f16: the tensor-core kernel, forward and forward + backward; cuBLAS forward
    for (auto s : attn) {
      s.push_back(bwd);
      add_row("BM_attention_fused_f16", BM_attention_fused_f16, s);
      if (!bwd) add_row("BM_attention_unfused_f16", BM_attention_unfused_f16, s);
    }
  depthwise(kDw456, false);
}

}  // namespace

int main(int argc, char** argv) {
  if (cuda_device_count() == 0 || cuda::is_emulated()) {
    std::printf("bench_cudnn: no GPU on this host; cuDNN comparisons skipped\n");
    return 0;
  }
  std::printf("bench_cudnn on %s, cuDNN %zu\n", cuda::device_name(), cudnnGetVersion());
  register_rows();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;  // a flag this version does not take
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
