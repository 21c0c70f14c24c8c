#pragma once
// The `cuda` device runtime: caching allocator, streams, events, copies.
//
// Real builds (ADNN_CUDA) use the CUDA runtime and cuBLAS; emulated builds
// (ADNN_CUDA_EMULATION) serve the same API from host memory, run kernels under the SIMT
// emulator and send GEMMs to the CPU BLAS. Streams are then executed synchronously, and
// events measure host time.
#include <adnn/config.hpp>
#include <adnn/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace adnn::cuda {

struct MemoryStats {
  size_t in_use = 0;       // bytes in live tensors
  size_t reserved = 0;     // bytes held by the allocator (in use + cached)
  size_t peak_in_use = 0;  // high-water mark of in_use since the last reset
  uint64_t allocations = 0, cache_hits = 0;
};

// Caching allocator: freed blocks are kept per size class and reused.
void* allocate(size_t nbytes);
void deallocate(void* p, size_t nbytes);
MemoryStats memory_stats();
void reset_peak_memory();
void empty_cache();  // return cached blocks to the driver
// Emulated builds: a cap on reserved bytes, so out-of-memory can be tested (0 = none).
void set_memory_limit(size_t bytes);

// A CUDA stream (the null handle is the legacy default stream).
struct Stream {
  void* handle = nullptr;
};
Stream current_stream();
void set_current_stream(Stream s);
Stream create_stream();
void destroy_stream(Stream s);
void synchronize(Stream s = {});
void device_synchronize();

// Timing events (CUDA events on a GPU).
struct Event {
  void* handle = nullptr;
};
Event create_event();
void destroy_event(Event e);
void record(Event e, Stream s = {});
float elapsed_ms(Event start, Event stop);  // waits for `stop`

// Copies and memset on the current stream; the host side is pageable memory, so the
// copies to the host are synchronous.
void copy_to_device(void* dst, const void* src, size_t n);
void copy_to_host(void* dst, const void* src, size_t n);
void copy_device_to_device(void* dst, const void* src, size_t n);
void memset(void* dst, int value, size_t n);

// What a hot loop must not do, counted since the last reset: copies that make the host wait
// (every host<->device copy from pageable memory), stream/device synchronisations, and
// allocations that reach the driver (cudaMalloc; caching-allocator hits are free). A
// warmed-up training step should show zeros (tests/test_cuda_ops.cpp checks it).
struct HostRoundTrips {
  uint64_t sync_copies = 0;      // copy_to_device, copy_to_host
  uint64_t synchronizations = 0; // synchronize, device_synchronize, event waits
  uint64_t device_mallocs = 0;   // raw allocations by the caching allocator
};
HostRoundTrips host_round_trips();
void reset_host_round_trips();

// A flag in device memory (an i64: 0 = fine, else a value for the message) that kernels set
// when they find bad input (e.g. a label out of range). The runtime reads every watched flag
// wherever the host waits for the device anyway (a copy to the host, a synchronisation) and
// raises adnn::Error(message(value)), resetting the flag — like a device-side assert, with no
// synchronisation of its own. The flag must stay allocated for the life of the process.
void watch_flag(const int64_t* flag, std::function<std::string(int64_t)> message);
// Reads the watched flags now (every waiting call does this); raises the first one set.
void raise_deferred_checks();

// Row-major GEMM on the device (cuBLAS, or the CPU BLAS when emulated), on the current
// stream with that stream's cuBLAS handle.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// Name of the device ("SIMT emulator on the host" when emulated).
const char* device_name();
bool is_emulated();
// Whether the f16/bf16 tensor-core kernels (mma.sync m16n8k16, sm_80 and later) can run:
// true on the emulator, which emulates them.
bool has_tensor_cores();

}  // namespace adnn::cuda
