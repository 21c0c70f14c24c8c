#pragma once
// Shared by the GPU benchmarks: times `body` per iteration with CUDA events (manual time).
#include <adnn/cuda/runtime.hpp>
#include <benchmark/benchmark.h>

#include <functional>

namespace adnn::bench {

inline void time_with_cuda_events(benchmark::State& st, const std::function<void()>& body) {
  body();  // warm-up (allocator, first launch)
  cuda::device_synchronize();
  cuda::Event a = cuda::create_event(), b = cuda::create_event();
  for (auto _ : st) {
    cuda::record(a);
    body();
    cuda::record(b);
    st.SetIterationTime(double(cuda::elapsed_ms(a, b)) / 1e3);
  }
  cuda::destroy_event(a);
  cuda::destroy_event(b);
}

}  // namespace adnn::bench
