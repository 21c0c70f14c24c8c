// CPU conv2d (NHWC) forward and forward+backward throughput, reporting GFLOP/s
// (2·N·OH·OW·O·KH·KW·C/groups per forward; backward counts twice that); and the 2×2 max
// pooling of the VGG backbones (GB/s of x read + y and argmax written; backward adds gy and
// argmax read, gx written). Run: ./build/bin/bench_conv2d --benchmark_filter=max_pool2d
#include <adnn/adnn.hpp>
#include <benchmark/benchmark.h>

using namespace adnn;

// args: N, H, C, O, K, stride, groups, storage (0 f32, 1 bf16)
static void run(benchmark::State& st, bool train) {
  const int64_t N = st.range(0), H = st.range(1), C = st.range(2), O = st.range(3), K = st.range(4),
                S = st.range(5), G = st.range(6);
  const DType dt = st.range(7) == 1 ? DType::bf16 : DType::f32;
  Conv2dOptions o;
  o.with_stride(S).with_padding(K / 2).with_groups(G);
  Tensor x = randn({N, H, H, C}).to(dt), w = mul(randn({O, K, K, C / G}), 0.1).to(dt);  // (N, H, H, C), (O, K, K, C/G)
  if (train) {
    x.requires_grad_();
    w.requires_grad_();
  }
  const int64_t OH = (H + 2 * (K / 2) - K) / S + 1;
  const double flops = 2.0 * double(N * OH * OH * O * K * K * (C / G)) * (train ? 3.0 : 1.0);
  for (auto _ : st) {
    Tensor y = conv2d(x, w, {}, o);
    if (train) {
      sum(y).backward();
      x.set_grad({});
      w.set_grad({});
    }
    benchmark::DoNotOptimize(y.data_ptr());
  }
  st.counters["GFLOP/s"] =
      benchmark::Counter(flops * double(st.iterations()), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
static void BM_conv2d_forward(benchmark::State& st) { run(st, false); }
static void BM_conv2d_train(benchmark::State& st) { run(st, true); }

#define CONV_SHAPES                                                        \
  ->Args({32, 48, 1, 32, 3, 1, 1, 0})       /* FER stem at 48x48 */        \
      ->Args({128, 48, 1, 32, 3, 1, 1, 0})  /* vgg_nano block1.conv1 */    \
      ->Args({128, 48, 1, 32, 3, 1, 1, 1})  /* ... in bf16 */              \
      ->Args({128, 48, 32, 32, 3, 1, 1, 1}) /* block1.conv2 in bf16 */     \
      ->Args({128, 24, 96, 96, 3, 1, 1, 1}) /* wide block2.conv2, bf16 */  \
      ->Args({32, 24, 32, 64, 3, 1, 1, 0})                                 \
      ->Args({32, 24, 96, 96, 3, 1, 96, 0})   /* depthwise 3x3 */          \
      ->Args({32, 24, 96, 96, 5, 2, 96, 0})   /* depthwise 5x5 stride 2 */ \
      ->Args({32, 12, 144, 40, 1, 1, 1, 0})   /* pointwise projection */   \
      ->Args({128, 48, 32, 32, 3, 1, 1, 0})   /* vgg_nano block1.conv2 */  \
      ->Args({128, 24, 64, 64, 3, 1, 1, 0})   /* vgg_nano block2.conv2 */  \
      ->Args({128, 12, 128, 128, 3, 1, 1, 0}) /* vgg_nano block3.conv2 */  \
      ->Args({128, 6, 256, 256, 3, 1, 1, 0})  /* vgg_nano block4.conv2 */  \
      ->Unit(benchmark::kMillisecond)
BENCHMARK(BM_conv2d_forward) CONV_SHAPES;
BENCHMARK(BM_conv2d_train) CONV_SHAPES;

// args: N, H, C (2×2 window, stride 2)
static void run_pool(benchmark::State& st, bool train) {
  const int64_t N = st.range(0), H = st.range(1), C = st.range(2);
  Tensor x = randn({N, H, H, C});  // (N, H, H, C)
  if (train) x.requires_grad_();
  Tensor gy = randn({N, H / 2, H / 2, C});  // (N, H/2, H/2, C): the backward's seed, contiguous
  // forward: x read (4 B), y written (4 B per output), argmax written (1 B per output)
  const double in = double(N * H * H * C) * 4.0, out = double(N * (H / 2) * (H / 2) * C) * 5.0;
  const double bytes = train ? 2.0 * (in + out) : in + out;  // backward reads gy + argmax, writes gx
  for (auto _ : st) {
    Tensor y = max_pool2d(x, {});  // (N, H/2, H/2, C)
    if (train) {
      y.backward(gy);  // the pooling's backward alone (no loss, no broadcast copy of a scalar)
      x.set_grad({});
    }
    benchmark::DoNotOptimize(y.data_ptr());
  }
  st.counters["GB/s"] =
      benchmark::Counter(bytes * double(st.iterations()), benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
static void BM_max_pool2d_forward(benchmark::State& st) {
  run_pool(st, false);
}
static void BM_max_pool2d_train(benchmark::State& st) {
  run_pool(st, true);
}

#define POOL_SHAPES                                       \
  ->Args({128, 48, 32})      /* vgg_nano(_wide) block1 */ \
      ->Args({128, 24, 96})  /* vgg_nano_wide block2 */   \
      ->Args({128, 12, 192}) /* vgg_nano_wide block3 */   \
      ->Unit(benchmark::kMillisecond)
BENCHMARK(BM_max_pool2d_forward) POOL_SHAPES;
BENCHMARK(BM_max_pool2d_train) POOL_SHAPES;

BENCHMARK_MAIN();
