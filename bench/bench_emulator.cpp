// Cost of the SIMT emulator per emulated CUDA thread (ADNN_CUDA_EMULATION builds).
// `block_sum`: a sum over 2^20 floats in 4096 blocks of 256 threads (warp shuffles and
// __syncthreads, as in kernels/reduce.cuh); `map`: an elementwise kernel with no barrier.
// Reports emulated threads per second of wall time (1e6 / that = µs per thread); every
// emulated thread is one fiber.
#include <adnn/adnn.hpp>
#include <benchmark/benchmark.h>

#include "kernels/elementwise.cuh"
#include "kernels/reduce.cuh"

using namespace adnn;
using namespace adnn::kernels;

static void BM_emulated_block_sum(benchmark::State& st) {
  const int64_t rows = 4096, R = 256;
  std::vector<float, sim::device_allocator<float>> x(size_t(rows * R), 1.0f), out(rows);
  for (auto _ : st) {
    ADNN_LAUNCH(reduce_rows_kernel<float>, dim3(unsigned(rows)), dim3(256), 0, nullptr, ReduceOp::sum, x.data(),
                out.data(), rows, R);
    benchmark::DoNotOptimize(out.data());
  }
  const double threads = double(rows * 256) * double(st.iterations());
  st.counters["threads_per_s"] = benchmark::Counter(threads, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_emulated_block_sum)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_emulated_map(benchmark::State& st) {
  const int64_t n = int64_t(1) << 20;
  std::vector<float, sim::device_allocator<float>> x(static_cast<size_t>(n), 0.5f), y(x.size());
  Geom g;
  g.ndim = 1;
  g.size[0] = n;
  g.stride[0][0] = 1;
  g.stride[1][0] = 1;
  for (auto _ : st) {
    // one element per thread: 4096 blocks of 256
    ADNN_LAUNCH(unary_kernel<float>, dim3(unsigned(n / 256)), dim3(256), 0, nullptr, UnaryOp::relu, x.data(), y.data(),
                n, g, 0.0, 0.0);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["threads_per_s"] = benchmark::Counter(double(n) * double(st.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_emulated_map)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
