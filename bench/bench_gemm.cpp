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
