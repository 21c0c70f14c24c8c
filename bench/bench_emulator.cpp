// Cost of the SIMT emulator per emulated CUDA thread (ADNN_CUDA_EMULATION builds).
// `block_sum`: a sum over 2^20 floats in 4096 blocks of 256 threads (warp shuffles and
// __syncthreads, as in kernels/reduce.cuh); `map`: an elementwise kernel with no barrier.
// Reports emulated threads per second of wall time (1e6 / that = µs per thread) and
// s_per_thread (the inverse); every emulated thread is one fiber.
// `/racecheck:0|1`: the shared-memory race checker (src/sim/simt.hpp) off or on. `attention`:
// the tiled attention forward (kernels/attention.cuh, f32, D = 64, 128 queries and keys, 8
// heads): shared-memory heavy, ~2·32·64 checked shared reads per thread per key tile.
// `ops_trace/trace:0|1`: adnn ops on the emulated cuda device, whose kernels are compiled in
// src/cuda/*.cpp (with the access hooks in ADNN_SIM_TRACE builds): z = x·y + x over 2^18 floats
// and its sum, with the kernel access trace (include/adnn/cuda/kernel_report.hpp) off or on.
// Against a build with -DADNN_SIM_TRACE=OFF, trace:0 measures the cost of the idle hooks.
#include <adnn/adnn.hpp>
#include <adnn/cuda/kernel_report.hpp>
#include <adnn/cuda/runtime.hpp>
#include <benchmark/benchmark.h>

#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/reduce.cuh"

using namespace adnn;
using namespace adnn::kernels;

static void BM_emulated_block_sum(benchmark::State& st) {
  sim::set_racecheck(st.range(0) != 0);
  const int64_t rows = 4096, R = 256;
  std::vector<float, sim::device_allocator<float>> x(size_t(rows * R), 1.0f), out(rows);
  for (auto _ : st) {
    ADNN_LAUNCH((reduce_rows_kernel<float, float, float>), dim3(unsigned(rows)), dim3(256), 0, nullptr, ReduceOp::sum,
                x.data(), out.data(), static_cast<float*>(nullptr), rows, R, R);
    benchmark::DoNotOptimize(out.data());
  }
  const double threads = double(rows * 256) * double(st.iterations());
  st.counters["threads_per_s"] = benchmark::Counter(threads, benchmark::Counter::kIsRate);
  st.counters["s_per_thread"] =
      benchmark::Counter(threads, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  sim::set_racecheck(true);
}
BENCHMARK(BM_emulated_block_sum)->ArgName("racecheck")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_emulated_attention(benchmark::State& st) {
  sim::set_racecheck(st.range(0) != 0);
  AttnGeom P{1, 8, 128, 128, 64, 0.125, 0.0, 1};
  const size_t n = size_t(P.B * P.H * P.Lq * P.D);
  std::vector<float, sim::device_allocator<float>> q(n, 0.01f), k(n, 0.02f), v(n, 0.5f), o(n),
      lse(size_t(P.B * P.H * P.Lq));
  const uint64_t before = sim::threads_run();
  for (auto _ : st) {
    launch_attention_forward<float>(q.data(), k.data(), v.data(), nullptr, o.data(), lse.data(), P, nullptr);
    benchmark::DoNotOptimize(o.data());
  }
  const double threads = double(sim::threads_run() - before);
  st.counters["threads_per_s"] = benchmark::Counter(threads, benchmark::Counter::kIsRate);
  st.counters["s_per_thread"] =
      benchmark::Counter(threads, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  sim::set_racecheck(true);
}
BENCHMARK(BM_emulated_attention)->ArgName("racecheck")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_emulated_map(benchmark::State& st) {
  const int64_t n = int64_t(1) << 20;
  std::vector<float, sim::device_allocator<float>> x(static_cast<size_t>(n), 0.5f), y(x.size());
  Geom g;
  g.ndim = 1;
  g.size[0] = n;
  g.stride[0][0] = 1;
  g.stride[1][0] = 1;
  sim::set_racecheck(st.range(0) != 0);
  for (auto _ : st) {
    // one element per thread: 4096 blocks of 256
    ADNN_LAUNCH(unary_kernel<float>, dim3(unsigned(n / 256)), dim3(256), 0, nullptr, UnaryOp::relu, x.data(), y.data(),
                n, g, 0.0, 0.0);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["threads_per_s"] = benchmark::Counter(double(n) * double(st.iterations()), benchmark::Counter::kIsRate);
  st.counters["s_per_thread"] = benchmark::Counter(double(n) * double(st.iterations()),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  sim::set_racecheck(true);
}
BENCHMARK(BM_emulated_map)->ArgName("racecheck")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_emulated_ops_trace(benchmark::State& st) {
  const bool trace = st.range(0) != 0;
  if (trace && !cuda::kernel_trace_available()) {
    st.SkipWithError("this build has no kernel trace (ADNN_SIM_TRACE=OFF)");
    return;
  }
  const int64_t n = int64_t(1) << 18;
  manual_seed(0);
  Tensor x = randn({n}).to(kCUDA), y = randn({n}).to(kCUDA);  // (n) each
  if (trace) cuda::kernel_trace_start();
  for (auto _ : st) {
    Tensor z = x * y + x;  // (n)
    Tensor s = sum(z);     // ()
    cuda::device_synchronize();
    benchmark::DoNotOptimize(s.data_ptr());
  }
  if (trace) cuda::kernel_trace_stop();
  st.counters["elements_per_s"] = benchmark::Counter(double(n) * double(st.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_emulated_ops_trace)->ArgName("trace")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
