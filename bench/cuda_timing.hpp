#pragma once
// Shared by the GPU benchmarks: validate, then time (llm.c's dev/cuda habit).
//
// first_call(st): true on the runner's first call of a benchmark function (one iteration
//   asked; later calls grow the count): validation runs there only, and a failure there
//   ends the row.
// validate(): before any timing, a benchmark compares its output with a reference (adnn's
//   with cuDNN's or the composition's on the same inputs, or with the CPU twin); a mismatch
//   fails the row (SkipWithError, naming the worst element), so no number is reported for a
//   wrong result.
// time_with_cuda_events(): K calls of `body` between one pair of CUDA events (K sized from a
//   first timed call so that a batch lasts about 0.2 ms: one event pair per call would add
//   its own overhead to microsecond kernels; one host sync per batch, none per call). With
//   ADNN_BENCH_L2_FLUSH=1 the L2 is overwritten (a 256 MiB memset, over twice an H200's L2)
//   before every call and each call is timed alone, the flush outside the events:
//   cold-cache numbers (slow: a memset and a host wait per call; for chosen rows with
//   --benchmark_filter). It returns which, for the row's label.
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

namespace adnn::bench {

inline bool first_call(const benchmark::State& st) { return st.max_iterations == 1; }

// Wall time of a row's set-up (inputs, library plans, validation), printed to stderr on the
// row's first call: where a GPU run's minutes go outside the timed loops.
struct Stopwatch {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  void report(const std::string& what) const {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "[set-up] %s: %.2f s\n", what.c_str(), s);
  }
};

inline bool l2_flush_requested() {
  const char* e = std::getenv("ADNN_BENCH_L2_FLUSH");
  return e && std::strcmp(e, "1") == 0;
}

// Compares got with want element by element (both flattened in their logical order, any
// device, any float dtype): |got − want| ≤ atol + rtol·|want| everywhere and no NaN where
// want has none. On a mismatch the row fails with the worst element; returns whether it
// passed.
inline bool validate(benchmark::State& st, const std::string& what, const Tensor& got, const Tensor& want,
                     double rtol, double atol) {
  if (!got.defined() || !want.defined()) {
    st.SkipWithError((what + ": " + (got.defined() ? "the reference" : "the result") + " is undefined").c_str());
    return false;
  }
  if (got.numel() != want.numel()) {
    st.SkipWithError((what + ": " + std::to_string(got.numel()) + " elements, the reference has " +
                      std::to_string(want.numel()))
                         .c_str());
    return false;
  }
  // on the host as f32 (an f16/bf16 result is exact in f32; f64 would double the copy)
  const Tensor gt = got.detach().contiguous().to(kCPU).to(DType::f32).contiguous();
  const Tensor wt = want.detach().contiguous().to(kCPU).to(DType::f32).contiguous();
  const float* g = gt.data_ptr<float>();
  const float* w = wt.data_ptr<float>();
  const size_t n = size_t(gt.numel());
  size_t worst = 0;
  double worst_excess = 0;
  bool ok = true;
  for (size_t i = 0; i < n; ++i) {
    const double d = std::abs(double(g[i]) - double(w[i])), tol = atol + rtol * std::abs(double(w[i]));
    const bool bad = !(d <= tol) && !(std::isnan(g[i]) && std::isnan(w[i]));
    if (bad && (ok || !(d - tol <= worst_excess))) {
      worst = i;
      worst_excess = d - tol;
      ok = false;
    }
  }
  if (!ok) {
    char msg[512];
    std::snprintf(msg, sizeof msg, "%s: validation failed: element %zu is %.6g, the reference %.6g (rtol %g, atol %g)",
                  what.c_str(), worst, double(g[worst]), double(w[worst]), rtol, atol);
    st.SkipWithError(msg);
  }
  return ok;
}

inline std::string time_with_cuda_events(benchmark::State& st, const std::function<void()>& body) {
  body();  // warm-up (allocator, first launch, cuBLAS/cuDNN plans)
  cuda::device_synchronize();
  cuda::Event a = cuda::create_event(), b = cuda::create_event();
  std::string how;
  if (l2_flush_requested()) {
    Tensor flush = empty({int64_t(64) << 20}, TensorOptions(DType::f32, kCUDA));  // 256 MiB
    for (auto _ : st) {
      cuda::memset(flush.data_ptr(), 0, size_t(flush.numel()) * 4);
      cuda::record(a, cuda::current_stream());
      body();
      cuda::record(b, cuda::current_stream());
      st.SetIterationTime(double(cuda::elapsed_ms(a, b)) / 1e3);
    }
    how = "L2 flushed before each call";
  } else {
    cuda::record(a, cuda::current_stream());
    body();
    cuda::record(b, cuda::current_stream());
    const double once_ms = std::max(double(cuda::elapsed_ms(a, b)), 1e-4);
    const int64_t K = std::clamp<int64_t>(int64_t(std::ceil(0.2 / once_ms)), 1, 1000);
    while (st.KeepRunningBatch(K)) {
      cuda::record(a, cuda::current_stream());
      for (int64_t i = 0; i < K; ++i) body();
      cuda::record(b, cuda::current_stream());
      st.SetIterationTime(double(cuda::elapsed_ms(a, b)) / 1e3);
    }
    how = std::to_string(K) + " calls per event pair";
  }
  cuda::destroy_event(a);
  cuda::destroy_event(b);
  return how;
}

}  // namespace adnn::bench
