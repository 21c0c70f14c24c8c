// CPU GEMM throughput: the configured GEMM (OpenBLAS when present) and the built-in
// blocked kernel, square and transformer-like shapes. Reports GFLOP/s (2·M·N·K per call).
#include <adnn/adnn.hpp>
#include <benchmark/benchmark.h>

#include "cpu/gemm.hpp"

using namespace adnn;

template <bool Builtin>
static void BM_sgemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  Tensor a = randn({M, K}), b = randn({K, N}), c = empty({M, N});
  for (auto _ : st) {
    if constexpr (Builtin)
      cpu::gemm_builtin<float>(false, false, M, N, K, 1.f, a.data_ptr<float>(), K, b.data_ptr<float>(), N, 0.f,
                               c.data_ptr<float>(), N);
    else
      cpu::gemm(false, false, M, N, K, 1.f, a.data_ptr<float>(), K, b.data_ptr<float>(), N, 0.f, c.data_ptr<float>(),
                N);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(M * N * K) * double(st.iterations()),
                                              benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

#define GEMM_SHAPES ->Args({256, 256, 256})->Args({512, 512, 512})->Args({1024, 1024, 1024})->Args({3136, 64, 576})->Args({49 * 64, 256, 256})->Unit(benchmark::kMillisecond)
BENCHMARK(BM_sgemm<false>) GEMM_SHAPES;
BENCHMARK(BM_sgemm<true>) GEMM_SHAPES;

// The convolutions' GEMMs of adnn_fer_nano's training step (one column chunk each; the CPU
// splits it over its threads): forward / transposed-forward input gradient C (rows, O) =
// col (rows, KK) · w (O, KK)ᵀ (args M, N, K, 0), and weight gradient C (O, KK) = gy (rows, O)ᵀ ·
// col (rows, KK) (args M, N, K, 1). f32 through cpu::gemm against bf16 through cpu::gemm_bf16
// (its AVX512-BF16 kernel where the CPU has one; "widened": with it turned off), interleaved:
// ./build/bin/bench_gemm --benchmark_filter=conv --benchmark_enable_random_interleaving=true --benchmark_repetitions=5
// Variants: 0 f32 (cpu::gemm), 1 bf16 (cpu::gemm_bf16), 2 bf16 with the dot product off (the
// operands widened to f32, then cpu::gemm: the path before the kernel, and where the CPU lacks it)
template <int Variant>
static void BM_conv_gemm(benchmark::State& st) {
  constexpr bool Bf16 = Variant != 0;
  const bool before = cpu::set_bf16_dot(Variant == 1);
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  const bool wgrad = st.range(3) != 0;
  // forward: A (M, K), B stored (N, K); weight gradient: A stored (K, M), B (K, N)
  Tensor a = wgrad ? randn({K, M}) : randn({M, K}), b = wgrad ? randn({K, N}) : randn({N, K}), c = empty({M, N});
  Tensor a16 = a.to(DType::bf16), b16 = b.to(DType::bf16);
  const int64_t lda = wgrad ? M : K, ldb = wgrad ? N : K;
  for (auto _ : st) {
    if constexpr (Bf16)
      cpu::gemm_bf16(wgrad, !wgrad, M, N, K, a16.data_ptr<bfloat16>(), lda, b16.data_ptr<bfloat16>(), ldb, 0.f,
                     c.data_ptr<float>(), N);
    else
      cpu::gemm(wgrad, !wgrad, M, N, K, 1.f, a.data_ptr<float>(), lda, b.data_ptr<float>(), ldb, 0.f,
                c.data_ptr<float>(), N);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  cpu::set_bf16_dot(before);
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(M * N * K) * double(st.iterations()),
                                              benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
#define CONV_GEMM_SHAPES          \
  ->Args({2304, 32, 288, 0})      \
      ->Args({1728, 96, 288, 0})  \
      ->Args({576, 192, 864, 0})  \
      ->Args({216, 256, 2304, 0}) \
      ->Args({32, 288, 2304, 1})  \
      ->Args({96, 288, 1728, 1})  \
      ->Args({192, 864, 576, 1})  \
      ->Args({256, 2304, 216, 1}) \
      ->Unit(benchmark::kMicrosecond)
static void BM_conv_gemm_f32(benchmark::State& st) {
  BM_conv_gemm<0>(st);
}
static void BM_conv_gemm_bf16(benchmark::State& st) {
  BM_conv_gemm<1>(st);
}
static void BM_conv_gemm_bf16_widened(benchmark::State& st) {
  BM_conv_gemm<2>(st);
}
BENCHMARK(BM_conv_gemm_f32) CONV_GEMM_SHAPES;
BENCHMARK(BM_conv_gemm_bf16) CONV_GEMM_SHAPES;
BENCHMARK(BM_conv_gemm_bf16_widened) CONV_GEMM_SHAPES;

// matmul through the op layer (allocation + dispatch + GEMM)
static void BM_matmul_op(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor a = randn({n, n}), b = randn({n, n});
  for (auto _ : st) benchmark::DoNotOptimize(matmul(a, b).data_ptr());
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(n * n * n) * double(st.iterations()),
                                              benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_matmul_op)->Arg(256)->Arg(512)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
