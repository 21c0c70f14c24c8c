// CUDA kernel throughput through the op layer: elementwise (unary, broadcast binary),
// reductions, softmax, layer norm and batch norm on `cuda` tensors, each first validated against the CPU
// twin on the same inputs, then timed with CUDA events (bench/cuda_timing.hpp) and reported as GB/s of compulsory traffic (each input read once, each output
// written once). On a host without a GPU (or with the SIMT emulator) it prints a message
// and exits 0.
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>
#include <benchmark/benchmark.h>

#include "cuda_timing.hpp"

#include <cmath>
#include <cstdio>
#include <functional>

using namespace adnn;

namespace {

// Validates `op` on the device against the same op on the CPU twin (same inputs), then
// times it (bench/cuda_timing.hpp); `bytes` moved per call.
void time_cuda(benchmark::State& st, double bytes, const std::function<Tensor(bool on_cpu)>& op, double rtol = 1e-5,
               double atol = 1e-5) {
  if (bench::first_call(st) && !bench::validate(st, "cuda vs cpu", op(false), op(true), rtol, atol)) return;
  st.SetLabel(bench::time_with_cuda_events(st, [&] { benchmark::DoNotOptimize(op(false).data_ptr()); }));
  st.counters["GB/s"] = benchmark::Counter(bytes * double(st.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

TensorOptions dev(DType t = DType::f32) { return TensorOptions(t, kCUDA); }
Tensor on(const Tensor& t, bool cpu) { return cpu ? t.to(kCPU) : t; }

void BM_gelu(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t n = st.range(0);
  Tensor x = randn({n}, dev());
  time_cuda(st, 2.0 * n * 4, [&](bool cpu) { return gelu(on(x, cpu)); });
}
void BM_add_broadcast(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t rows = st.range(0), cols = st.range(1);
  Tensor x = randn({rows, cols}, dev()), b = randn({cols}, dev());
  time_cuda(st, 2.0 * rows * cols * 4 + cols * 4, [&](bool cpu) { return add(on(x, cpu), on(b, cpu)); });
}
void BM_sum_rows(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t rows = st.range(0), cols = st.range(1);
  Tensor x = randn({rows, cols}, dev());
  // sums of up to 2^20 terms in different orders: relative 1e-4 of the row's scale
  time_cuda(st, double(rows * cols + rows) * 4, [&](bool cpu) { return sum(on(x, cpu), {1}); }, 1e-4,
            1e-4 * std::sqrt(double(cols)));
}
void BM_softmax(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t rows = st.range(0), cols = st.range(1);
  Tensor x = randn({rows, cols}, dev());
  time_cuda(st, 2.0 * rows * cols * 4, [&](bool cpu) { return softmax(on(x, cpu), 1); }, 1e-4, 1e-6);
}
void BM_layer_norm(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t rows = st.range(0), cols = st.range(1);
  Tensor x = randn({rows, cols}, dev()), w = randn({cols}, dev()), b = randn({cols}, dev());
  time_cuda(st, 2.0 * rows * cols * 4 + 2.0 * cols * 4,
            [&](bool cpu) { return layer_norm(on(x, cpu), {cols}, on(w, cpu), on(b, cpu)); }, 1e-4, 1e-4);
}

// Forward and backward through autograd, the input's gradient returned (a fresh leaf each call,
// so nothing accumulates): softmax (y = softmax(x), then gx = y (g − Σ g y)) and layer norm
// without parameter gradients (w and b constants). Bytes: the forward's plus g, y (or x) and gx.
void BM_softmax_fwd_bwd(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1);
  Tensor x = randn({rows, cols}, dev()), g = randn({rows, cols}, dev());
  time_cuda(st, 5.0 * rows * cols * 4, [&](bool cpu) {
    Tensor xl = on(x, cpu).detach().requires_grad_(true);
    softmax(xl, 1).backward(on(g, cpu));
    return xl.grad();
  }, 1e-4, 1e-6);
}
void BM_layer_norm_fwd_bwd(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1);
  Tensor x = randn({rows, cols}, dev()), g = randn({rows, cols}, dev()), w = randn({cols}, dev()),
         b = randn({cols}, dev());
  time_cuda(st, 5.0 * rows * cols * 4 + 3.0 * cols * 4, [&](bool cpu) {
    Tensor xl = on(x, cpu).detach().requires_grad_(true);
    layer_norm(xl, {cols}, on(w, cpu), on(b, cpu)).backward(on(g, cpu));
    return xl.grad();
  }, 1e-4, 1e-4);
}

// Batch norm + SiLU in eval mode, the op as a model calls it: invstd = rsqrt(running_var + eps)
// (two small launches on C values) and bn_apply_kernel (the per-channel affine and the
// activation over M·C, channels last), at EfficientNet-B5 shapes: (M = N·H·W, C). The small
// launches cost about a microsecond each, so the GB/s of the larger row say more of the kernel.
void BM_batch_norm_silu(benchmark::State& st) {
  NoGradGuard ng;
  const int64_t M = st.range(0), C = st.range(1);
  Tensor x = randn({M, C}, dev()), rm = randn({C}, dev()), rv = add(rand({C}, dev()), 0.5),
         w = randn({C}, dev()), b = randn({C}, dev());
  time_cuda(st, 2.0 * M * C * 4 + 4.0 * C * 4, [&](bool cpu) {
    return batch_norm(on(x, cpu), on(rm, cpu), on(rv, cpu), on(w, cpu), on(b, cpu), false, 0.1, 1e-5,
                      NormActivation::silu);
  }, 1e-5, 1e-5);
}

}  // namespace

BENCHMARK(BM_gelu)->Arg(1 << 20)->Arg(1 << 24)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_add_broadcast)->Args({4096, 1024})->Args({64 * 49, 2048})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_sum_rows)->Args({4096, 1024})->Args({64, 1 << 20})->UseManualTime()->Unit(benchmark::kMicrosecond);
// the paper's attention shape: (64 batch · 8 heads · 49 queries) rows of 49 keys; and long rows
BENCHMARK(BM_softmax)->Args({64 * 8 * 49, 49})->Args({4096, 4096})->UseManualTime()->Unit(benchmark::kMicrosecond);
// the paper's encoder: 64·49 tokens of d_model 2048
BENCHMARK(BM_layer_norm)->Args({64 * 49, 2048})->Args({4096, 768})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_softmax_fwd_bwd)->Args({64 * 8 * 49, 49})->Args({4096, 4096})->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_layer_norm_fwd_bwd)->Args({64 * 49, 2048})->UseManualTime()->Unit(benchmark::kMicrosecond);
// B5 at 224², batch 32: stage 2's first block after its stride-2 depthwise (56², 144 channels)
// and stage 7's expansion (7², 3072)
BENCHMARK(BM_batch_norm_silu)->Args({32 * 56 * 56, 144})->Args({32 * 7 * 7, 3072})->UseManualTime()->Unit(benchmark::kMicrosecond);

int main(int argc, char** argv) {
  if (cuda_device_count() == 0 || cuda::is_emulated()) {
    std::printf("bench_kernels: no GPU on this host (%s); CUDA-event timings skipped\n",
                cuda_device_count() ? cuda::device_name() : "no CUDA device");
    return 0;
  }
  std::printf("bench_kernels on %s\n", cuda::device_name());
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;  // a flag this version does not take
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
