// The `cuda` device runtime (see include/adnn/cuda/runtime.hpp).
#include <adnn/cuda/runtime.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "cpu/gemm.hpp"

#if ADNN_WITH_CUDA_EMULATION
#include "sim/simt.hpp"
#else
#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

namespace adnn::cuda {

#if !ADNN_WITH_CUDA_EMULATION
#define ADNN_CUDA_CHECK(call)                                                                       \
  do {                                                                                              \
    cudaError_t adnn_e_ = (call);                                                                   \
    if (adnn_e_ != cudaSuccess) ADNN_FAIL("CUDA call ", #call, " failed: ", cudaGetErrorString(adnn_e_)); \
  } while (0)
#define ADNN_CUBLAS_CHECK(call)                                                                      \
  do {                                                                                               \
    cublasStatus_t adnn_s_ = (call);                                                                 \
    if (adnn_s_ != CUBLAS_STATUS_SUCCESS) ADNN_FAIL("cuBLAS call ", #call, " failed with status ", int(adnn_s_)); \
  } while (0)
#endif

// ---------------------------------------------------------------- host round trips
namespace {
std::atomic<uint64_t> g_sync_copies{0}, g_syncs{0}, g_mallocs{0};
struct Deferred {
  const int64_t* flag;
  std::function<std::string(int64_t)> message;
};
std::mutex g_deferred_mu;
std::vector<Deferred> g_deferred;
thread_local bool tls_raising = false;
}  // namespace

HostRoundTrips host_round_trips() { return {g_sync_copies.load(), g_syncs.load(), g_mallocs.load()}; }
void reset_host_round_trips() {
  g_sync_copies = 0;
  g_syncs = 0;
  g_mallocs = 0;
}
void watch_flag(const int64_t* flag, std::function<std::string(int64_t)> message) {
  std::lock_guard<std::mutex> lock(g_deferred_mu);
  g_deferred.push_back({flag, std::move(message)});
}

// Reads the watched flags (the host waits for the device at this point anyway).
void raise_deferred_checks() {
  if (tls_raising) return;
  std::vector<Deferred> watched;
  {
    std::lock_guard<std::mutex> lock(g_deferred_mu);
    watched = g_deferred;
  }
  if (watched.empty()) return;
  tls_raising = true;
  std::string failed;
  for (auto& d : watched) {
    int64_t v = 0;
#if ADNN_WITH_CUDA_EMULATION
    std::memcpy(&v, d.flag, sizeof v);
    if (v != 0) std::memset(const_cast<int64_t*>(d.flag), 0, sizeof v);
#else
    cudaMemcpy(&v, d.flag, sizeof v, cudaMemcpyDeviceToHost);
    if (v != 0) cudaMemset(const_cast<int64_t*>(d.flag), 0, sizeof v);
#endif
    if (v != 0 && failed.empty()) failed = d.message(v);
  }
  tls_raising = false;
  if (!failed.empty()) throw Error(failed);
}

// ---------------------------------------------------------------- caching allocator
namespace {

// Size classes: multiples of 512 B below 1 MiB, of 2 MiB above.
size_t size_class(size_t n) {
  if (n == 0) n = 1;
  const size_t small = 512, large = size_t(2) << 20;
  return n < (size_t(1) << 20) ? (n + small - 1) / small * small : (n + large - 1) / large * large;
}

struct Pool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;  // by size class
  MemoryStats stats;
  size_t limit = 0;
};
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may outlive static destruction
  return *p;
}

void* raw_alloc(size_t n) {
  ++g_mallocs;
#if ADNN_WITH_CUDA_EMULATION
  void* p = std::aligned_alloc(256, n);
  if (p) sim::register_device_memory(p, n);  // kernels may receive only these
  return p;
#else
  void* p = nullptr;
  if (cudaMalloc(&p, n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky OOM
    return nullptr;
  }
  return p;
#endif
}
void raw_free(void* p) {
#if ADNN_WITH_CUDA_EMULATION
  sim::unregister_device_memory(p);
  std::free(p);
#else
  cudaFree(p);
#endif
}

void release_cached(Pool& P) {
  for (auto& [sz, v] : P.free_blocks) {
    for (void* p : v) raw_free(p);
    P.stats.reserved -= sz * v.size();
  }
  P.free_blocks.clear();
}
}  // namespace

void* allocate(size_t nbytes) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  const size_t sz = size_class(nbytes);
  ++P.stats.allocations;
  auto it = P.free_blocks.find(sz);
  void* p = nullptr;
  if (it != P.free_blocks.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    ++P.stats.cache_hits;
  } else {
    bool over = P.limit && P.stats.reserved + sz > P.limit;
    if (!over) p = raw_alloc(sz);
    if (!p) {  // free the cache and retry once
      release_cached(P);
      over = P.limit && P.stats.reserved + sz > P.limit;
      if (!over) p = raw_alloc(sz);
    }
    if (!p)
      ADNN_FAIL("CUDA out of memory: tried to allocate ", nbytes, " bytes (", sz, " with rounding); adnn holds ",
                P.stats.reserved, " bytes, ", P.stats.in_use, " of them in live tensors",
                P.limit ? detail::cat(" (emulated device limit ", P.limit, " bytes)") : std::string());
    P.stats.reserved += sz;
  }
  P.stats.in_use += sz;
  P.stats.peak_in_use = std::max(P.stats.peak_in_use, P.stats.in_use);
  return p;
}

void deallocate(void* p, size_t nbytes) {
  if (!p) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  const size_t sz = size_class(nbytes);
  P.stats.in_use -= sz;
  P.free_blocks[sz].push_back(p);
}

MemoryStats memory_stats() {
  std::lock_guard<std::mutex> lock(pool().mu);
  return pool().stats;
}
void reset_peak_memory() {
  std::lock_guard<std::mutex> lock(pool().mu);
  pool().stats.peak_in_use = pool().stats.in_use;
}
void empty_cache() {
  std::lock_guard<std::mutex> lock(pool().mu);
  release_cached(pool());
}
void set_memory_limit(size_t bytes) {
  std::lock_guard<std::mutex> lock(pool().mu);
  pool().limit = bytes;
}

// ---------------------------------------------------------------- streams, events, copies
namespace {
thread_local Stream tls_stream{};
}
Stream current_stream() { return tls_stream; }
void set_current_stream(Stream s) { tls_stream = s; }

#if ADNN_WITH_CUDA_EMULATION

Stream create_stream() { return Stream{new int(0)}; }
void destroy_stream(Stream s) { delete static_cast<int*>(s.handle); }
void synchronize(Stream) {
  ++g_syncs;
  raise_deferred_checks();
}
void device_synchronize() {
  ++g_syncs;
  raise_deferred_checks();
}
using Clock = std::chrono::steady_clock;
Event create_event() { return Event{new Clock::time_point()}; }
void destroy_event(Event e) { delete static_cast<Clock::time_point*>(e.handle); }
void record(Event e, Stream) { *static_cast<Clock::time_point*>(e.handle) = Clock::now(); }
float elapsed_ms(Event a, Event b) {
  return std::chrono::duration<float, std::milli>(*static_cast<Clock::time_point*>(b.handle) -
                                                  *static_cast<Clock::time_point*>(a.handle))
      .count();
}
void copy_to_device(void* d, const void* s, size_t n) {
  ++g_sync_copies;
  std::memcpy(d, s, n);
}
void copy_to_host(void* d, const void* s, size_t n) {
  ++g_sync_copies;
  std::memcpy(d, s, n);
  raise_deferred_checks();
}
void copy_device_to_device(void* d, const void* s, size_t n) { std::memmove(d, s, n); }
void memset(void* d, int v, size_t n) { std::memset(d, v, n); }
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  cpu::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cpu::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
const char* device_name() { return "SIMT emulator on the host"; }
bool is_emulated() { return true; }
bool has_tensor_cores() { return true; }  // kernels/mma.cuh emulates mma.sync

#else  // real CUDA

namespace {
cudaStream_t raw(Stream s) { return static_cast<cudaStream_t>(s.handle); }
// One cuBLAS handle per stream.
cublasHandle_t blas_handle(Stream s) {
  static std::mutex mu;
  static std::map<void*, cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(s.handle);
  if (it != handles.end()) return it->second;
  cublasHandle_t h;
  ADNN_CUBLAS_CHECK(cublasCreate(&h));
  ADNN_CUBLAS_CHECK(cublasSetStream(h, raw(s)));
  handles[s.handle] = h;
  return h;
}
}  // namespace

Stream create_stream() {
  cudaStream_t s;
  ADNN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream{s};
}
void destroy_stream(Stream s) { ADNN_CUDA_CHECK(cudaStreamDestroy(raw(s))); }
void synchronize(Stream s) {
  ++g_syncs;
  ADNN_CUDA_CHECK(cudaStreamSynchronize(raw(s)));
  raise_deferred_checks();
}
void device_synchronize() {
  ++g_syncs;
  ADNN_CUDA_CHECK(cudaDeviceSynchronize());
  raise_deferred_checks();
}
Event create_event() {
  cudaEvent_t e;
  ADNN_CUDA_CHECK(cudaEventCreate(&e));
  return Event{e};
}
void destroy_event(Event e) { ADNN_CUDA_CHECK(cudaEventDestroy(static_cast<cudaEvent_t>(e.handle))); }
void record(Event e, Stream s) { ADNN_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(e.handle), raw(s))); }
float elapsed_ms(Event a, Event b) {
  ++g_syncs;
  ADNN_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(b.handle)));
  float ms = 0;
  ADNN_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(a.handle), static_cast<cudaEvent_t>(b.handle)));
  return ms;
}
void copy_to_device(void* d, const void* s, size_t n) {
  ++g_sync_copies;
  ADNN_CUDA_CHECK(cudaMemcpyAsync(d, s, n, cudaMemcpyHostToDevice, raw(current_stream())));
}
void copy_to_host(void* d, const void* s, size_t n) {
  ++g_sync_copies;
  ADNN_CUDA_CHECK(cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToHost, raw(current_stream())));
  ADNN_CUDA_CHECK(cudaStreamSynchronize(raw(current_stream())));
  raise_deferred_checks();
}
void copy_device_to_device(void* d, const void* s, size_t n) {
  ADNN_CUDA_CHECK(cudaMemcpyAsync(d, s, n, cudaMemcpyDeviceToDevice, raw(current_stream())));
}
void memset(void* d, int v, size_t n) { ADNN_CUDA_CHECK(cudaMemsetAsync(d, v, n, raw(current_stream()))); }

// Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: swap the operands.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  ADNN_CUBLAS_CHECK(cublasSgemm(blas_handle(current_stream()), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K), &alpha, B, int(ldb), A,
                                int(lda), &beta, C, int(ldc)));
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  ADNN_CUBLAS_CHECK(cublasDgemm(blas_handle(current_stream()), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K), &alpha, B, int(ldb), A,
                                int(lda), &beta, C, int(ldc)));
}
namespace {
const cudaDeviceProp& device_properties() {
  static const cudaDeviceProp prop = [] {
    cudaDeviceProp p{};
    ADNN_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    return p;
  }();
  return prop;
}
}  // namespace
const char* device_name() { return device_properties().name; }
bool is_emulated() { return false; }
bool has_tensor_cores() { return device_properties().major >= 8; }

#endif

}  // namespace adnn::cuda
