#pragma once
// The `cuda` device runtime: caching allocator, streams, events, copies.
//
// Real builds (ADNN_CUDA) use the CUDA runtime and cuBLAS; emulated builds
// (ADNN_CUDA_EMULATION) serve the same API from host memory, run kernels under the SIMT
// emulator and send GEMMs to the CPU BLAS. Work then runs at once, but streams, events and
// graph capture are modelled so that their rules can be tested (see Event and Graph below;
// docs/architecture.md, "Streams, the caching allocator, CUDA graphs").
#include <adnn/ops/gemm.hpp>
#include <adnn/config.hpp>
#include <adnn/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace adnn::cuda {

// ---------------------------------------------------------------- streams and events
// A CUDA stream. The null handle is this thread's default stream: on a GPU the per-thread
// default stream (cudaStreamPerThread), which current_stream() returns as such; in the
// emulator one emulated stream per thread. Work queued on one stream runs in order; streams
// are ordered against each other only through events (wait).
struct Stream {
  void* handle = nullptr;
  friend bool operator==(const Stream& a, const Stream& b) { return a.handle == b.handle; }
};
Stream current_stream();
void set_current_stream(Stream s);
Stream default_stream();  // this thread's default stream
Stream create_stream();   // a non-blocking stream
void destroy_stream(Stream s);
void synchronize(Stream s = {});  // waits for the work queued on `s` (the thread's default stream if null)
void device_synchronize();
bool query(Stream s);  // whether everything queued on `s` has completed (no wait)

// Makes `s` current for a scope, like torch.cuda.stream(s).
class StreamGuard {
 public:
  explicit StreamGuard(Stream s) : saved_(current_stream()) { set_current_stream(s); }
  ~StreamGuard() { set_current_stream(saved_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream saved_;
};

// CUDA events: timing, and ordering between streams. In the emulator, where every launch runs
// at once on the host, an event models the device's asynchrony for the tests: it completes
// only when the host synchronises with its stream (synchronize(stream), device_synchronize,
// synchronize(event), a copy to the host on that stream), never by itself.
struct Event {
  void* handle = nullptr;
};
Event create_event();
void destroy_event(Event e);
void record(Event e, Stream s = {});
bool query(Event e);        // completed? (no wait)
void synchronize(Event e);  // the host waits for the event
void wait(Stream s, Event e);  // work queued on `s` from now on waits for `e` (cudaStreamWaitEvent)
float elapsed_ms(Event start, Event stop);  // waits for `stop`

// ---------------------------------------------------------------- caching allocator
// Device memory comes in segments (one cudaMalloc each) carved into blocks. A block belongs
// to the stream it was allocated on and is reused only by allocations on that stream; a
// request takes the best-fitting free block (the smallest that fits), split when the rest is
// worth keeping (the remainder stays in the cache), and a freed block merges with free
// neighbours in its segment. When nothing fits, a request of at most 1 MiB opens a 2 MiB
// segment, a larger one a segment of its size rounded up to 2 MiB. Small and large requests
// share one best-fit pool per stream (separate pools, as PyTorch's, held 1.36x the peak bytes
// in use over nano training steps against 1.11x: docs/testing.md). A block used on another stream must be
// recorded there (Tensor::record_stream / record_stream): when freed, it waits for an event
// on each such stream before it is handed out again. On out-of-memory the allocator waits for
// those events, returns its whole free segments to the driver and retries once, then raises an
// error naming the request and what it holds.
struct MemoryStats {
  size_t in_use = 0;         // bytes in live blocks (allocated; sizes rounded to 512 B)
  size_t reserved = 0;       // bytes in segments (in use + cached)
  size_t peak_in_use = 0;    // high-water mark of in_use since reset_peak_memory
  size_t peak_reserved = 0;  // high-water mark of reserved since reset_peak_memory
  size_t pending_free = 0;   // freed bytes waiting for events of other streams
  uint64_t allocations = 0, cache_hits = 0;  // requests; those served without cudaMalloc
  uint64_t device_mallocs = 0, device_frees = 0;  // segments obtained from / returned to the driver
  uint64_t splits = 0, merges = 0;
  uint64_t oom_retries = 0;  // times the cache was released to retry a failed request
};
void* allocate(size_t nbytes);  // on the current stream
void deallocate(void* p, size_t nbytes);
// The block starting at `p` (a live allocation) is in use on `s` as well; see above.
void record_stream(const void* p, Stream s);
MemoryStats memory_stats();
void reset_peak_memory();
void empty_cache();  // return the whole free segments to the driver (those of graph pools stay)
// A cap on reserved bytes, so out-of-memory can be tested (0 = none).
void set_memory_limit(size_t bytes);

// ---------------------------------------------------------------- CUDA graphs
// Records the work queued on a stream once, then replays it with one launch (cudaGraphLaunch
// on a GPU; in the emulator the recorded closures run in order). Between capture_begin and
// capture_end, kernels, device-to-device copies and memsets queued on the stream are recorded,
// not run; a synchronisation, a copy to or from the host or an allocation that needs cudaMalloc
// is an error naming the call, as on hardware. Allocations during capture come from the cache
// and belong to the graph's private pool afterwards (freed blocks too), so replays find their
// buffers intact: warm up with one eager run first, and keep inputs and outputs in tensors
// that live as long as the graph (static buffers). Host-side values are baked into the graph
// (scalars such as a learning rate passed by value), with two exceptions made for training
// graphs: random masks (dropout, drop-path, attention dropout) read a replay salt that the
// graph's last node advances, so each replay draws new masks (the first replay draws those of
// an eager step with the same seed), and AdamW(capturable) reads its step count and learning
// rate from device scalars.
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void capture_begin(Stream s = current_stream());
  // Ends the capture and instantiates it; a graph captured again updates its executable
  // graph in place when the topology allows (cudaGraphExecUpdate), else re-instantiates.
  void capture_end();
  void replay();  // on the stream it was captured on
  void reset();   // drops the graph; its pool's blocks return to the cache
  size_t num_nodes() const;  // operations recorded
  bool updated_in_place() const;  // whether the last capture_end updated the executable graph
  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};
bool is_capturing(Stream s = current_stream());
// The replay salt of the graph capturing `s` (a device u64, see above), or null when `s` is
// not capturing. Launchers of random kernels pass it; the graph then ends with a node that
// advances it.
const uint64_t* capture_rng_salt(Stream s = current_stream());

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
// stream with that stream's cuBLAS handle. f32 honours allow_tf32() (TF32 inputs, f32
// accumulation; emulated: A and B rounded by round_to_tf32): the convolutions' GEMMs.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// One strided-batched GEMM with its epilogue (include/adnn/ops/gemm.hpp) on the current stream:
// cuBLASLt (a workspace per stream, the heuristic's algorithm cached per shape), or, emulated,
// the CPU reference with the same precision semantics (src/cpu/gemm.cpp). Returns false, having
// run nothing, only when d.bias_grad is set and cuBLASLt has no algorithm with its bias-gradient
// epilogue for the problem: the caller then runs it without and sums A itself (src/cuda/gemm.cpp).
bool gemm_ex(const GemmDesc& d);
// Emulator only (ignored on a GPU): whether the emulated cuBLASLt has bias-gradient algorithms
// (default true). Off, gemm_ex answers false for a GemmDesc with a bias gradient, as cuBLASLt
// without such an algorithm does, so that tests reach the callers' fallback. Process-wide.
void set_emulated_bias_grad_epilogue(bool on);

// Name of the device ("SIMT emulator on the host" when emulated).
const char* device_name();
bool is_emulated();
// Whether the f16/bf16 tensor-core kernels (mma.sync m16n8k16, sm_80 and later) can run:
// true on the emulator, which emulates them.
bool has_tensor_cores();

}  // namespace adnn::cuda
