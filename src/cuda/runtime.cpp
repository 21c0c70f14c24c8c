// The `cuda` device runtime (see include/adnn/cuda/runtime.hpp).
#include <adnn/cuda/runtime.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include <omp.h>

#include "cpu/gemm.hpp"

#if ADNN_WITH_CUDA_EMULATION
#include "sim/simt.hpp"
#include "sim/trace.hpp"
#else
#include <cublasLt.h>
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

// ---------------------------------------------------------------- BLAS leading dimensions
namespace {
// cuBLAS's rule for row-major C (M, N) = op(A) (M, K) · op(B) (K, N) with A stored (ta ? K : M)
// rows of lda and B (tb ? N : K) rows of ldb: every leading dimension at least max(1, the
// stored row's length) — also when that length is 0 (K = 0: an im2col of zero channels), where
// cuBLAS answers CUBLAS_STATUS_INVALID_VALUE for ld = 0 (seen on an H200, 2026-12-04). Both
// backends apply it, so the emulator refuses what a GPU would: an ld shorter than a nonempty
// row is the caller's bug and fails naming the call; a zero ld of an empty row becomes 1 (no
// element is read: C = β·C + epilogue).
struct BlasLd {
  int64_t a, b, c;
};
BlasLd blas_leading_dims(const char* call, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                         int64_t ldc) {
  const int64_t ra = ta ? M : K, rb = tb ? K : N;  // the stored rows' lengths (row-major)
  ADNN_CHECK(lda >= ra && ldb >= rb && ldc >= N, call, ": a leading dimension is shorter than its row (M ", M, ", N ",
             N, ", K ", K, "; lda ", lda, " of ", ra, ", ldb ", ldb, " of ", rb, ", ldc ", ldc, " of ", N, ")");
  return {std::max<int64_t>(lda, 1), std::max<int64_t>(ldb, 1), std::max<int64_t>(ldc, 1)};
}
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
#if !ADNN_WITH_CUDA_EMULATION
  // read on this thread's stream, checked: not the legacy default stream, which waits for
  // every blocking stream and would break another thread's capture; never inside a capture
  const Stream cur = current_stream();
  const cudaStream_t cs = cur.handle ? static_cast<cudaStream_t>(cur.handle) : cudaStreamPerThread;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  ADNN_CUDA_CHECK(cudaStreamIsCapturing(cs, &capture));
  if (capture != cudaStreamCaptureStatusNone) return;
#endif
  tls_raising = true;
  std::string failed;
  for (auto& d : watched) {
    int64_t v = 0;
#if ADNN_WITH_CUDA_EMULATION
    sim::device_access copy;  // the emulated cudaMemcpy
    std::memcpy(&v, d.flag, sizeof v);
    if (v != 0) std::memset(const_cast<int64_t*>(d.flag), 0, sizeof v);
#else
    try {
      ADNN_CUDA_CHECK(cudaMemcpyAsync(&v, d.flag, sizeof v, cudaMemcpyDeviceToHost, cs));
      ADNN_CUDA_CHECK(cudaStreamSynchronize(cs));
      if (v != 0) ADNN_CUDA_CHECK(cudaMemsetAsync(const_cast<int64_t*>(d.flag), 0, sizeof v, cs));
    } catch (...) {
      tls_raising = false;
      throw;
    }
#endif
    if (v != 0 && failed.empty()) failed = d.message(v);
  }
  tls_raising = false;
  if (!failed.empty()) throw Error(failed);
}

// ---------------------------------------------------------------- streams and events
namespace {
thread_local Stream tls_stream{};
std::mutex g_stream_mu;  // the emulated streams' counters

#if ADNN_WITH_CUDA_EMULATION
// An emulated stream: the work runs at once, but completion is a model. `recorded` counts the
// events recorded on it, `completed` how many of them the host has seen complete (it saw the
// stream synchronised); `waits` are events of other streams it waits for.
struct EmuStream {
  uint64_t recorded = 0, completed = 0;
  std::vector<std::pair<EmuStream*, uint64_t>> waits;
};
thread_local EmuStream tls_default_stream;
std::set<EmuStream*> g_streams;  // the created ones (device_synchronize completes them all)
// destroyed ones, kept (see destroy_stream); never destroyed itself, so that at exit the kept
// streams are still reachable from a global (LeakSanitizer runs after static destructors)
std::vector<EmuStream*>& g_retired_streams = *new std::vector<EmuStream*>();
EmuStream* emu(Stream s) { return s.handle ? static_cast<EmuStream*>(s.handle) : &tls_default_stream; }
void complete(EmuStream* s, uint64_t upto) {  // g_stream_mu held
  if (s->completed >= upto) return;
  s->completed = upto;
  auto waits = std::move(s->waits);
  s->waits.clear();
  for (auto& [other, seq] : waits) complete(other, seq);
}
using Clock = std::chrono::steady_clock;
struct EmuEvent {
  EmuStream* stream = nullptr;
  uint64_t seq = 0;
  Clock::time_point time{};
};
// The allocator's key of a stream: the emulated stream object (one per thread for the default).
void* stream_key(Stream s) { return emu(s); }
#else
cudaStream_t raw(Stream s) { return s.handle ? static_cast<cudaStream_t>(s.handle) : cudaStreamPerThread; }
// cudaStreamPerThread is one handle value for every thread's own stream: key it by thread.
thread_local char tls_default_key;
void* stream_key(Stream s) {
  return (s.handle == nullptr || s.handle == static_cast<void*>(cudaStreamPerThread)) ? &tls_default_key : s.handle;
}
#endif
}  // namespace

// ---------------------------------------------------------------- capture registry
namespace {
std::mutex g_capture_mu;
std::atomic<int> g_num_capturing{0};
std::map<void*, Graph::Impl*> g_capturing;  // stream key -> the graph capturing it
Graph::Impl* capturing_graph_of_key(void* key) {
  if (g_num_capturing.load(std::memory_order_relaxed) == 0) return nullptr;
  std::lock_guard<std::mutex> lock(g_capture_mu);
  auto it = g_capturing.find(key);
  return it == g_capturing.end() ? nullptr : it->second;
}
Graph::Impl* capturing_graph(Stream s) { return capturing_graph_of_key(stream_key(s)); }
[[noreturn]] void fail_in_capture(const char* call, const char* file, int line) {
  const char* base = file;
  for (const char* q = file; *q; ++q)
    if (*q == '/') base = q + 1;
  throw Error(detail::cat(call, " during CUDA stream capture: not allowed, as on a GPU (the capture records work, ",
                          "it does not run it; the host cannot wait for it or copy from it) [", base, ":", line, "]"));
}
#define ADNN_NOT_IN_CAPTURE(stream, call) \
  if (capturing_graph(stream)) fail_in_capture(call, __FILE__, __LINE__)
}  // namespace

struct Graph::Impl {
  uint64_t pool = 0;  // the private pool's id
  Stream stream{};
  bool capturing = false, updated = false;
  size_t nodes = 0;
  uint64_t* salt = nullptr;  // the replay salt (device u64), allocated by the first capture
  bool salt_used = false;    // a launch of this capture read it: the graph ends by advancing it
#if ADNN_WITH_CUDA_EMULATION
  std::vector<std::function<void()>> recording, ops;
#else
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
#endif
};
bool is_capturing(Stream s) { return capturing_graph(s) != nullptr; }
const uint64_t* capture_rng_salt(Stream s) {
  Graph::Impl* g = capturing_graph(s);
  if (!g) return nullptr;
  g->salt_used = true;
  return g->salt;
}
void advance_graph_salt(uint64_t* salt);  // src/cuda/random.cpp

// ---------------------------------------------------------------- caching allocator
namespace {
constexpr size_t kRound = 512, kSmall = size_t(1) << 20, kSegment = size_t(2) << 20;
size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

struct Block {
  char* ptr = nullptr;
  size_t size = 0;
  void* key = nullptr;  // the stream it belongs to (stream_key)
  Stream stream{};
  uint64_t pool = 0;    // 0: the shared cache; else a graph's private pool
  bool allocated = false, cached = false;
  int pending_events = 0;
  Block *prev = nullptr, *next = nullptr;  // neighbours in the segment
  std::vector<Stream> uses;  // other streams it was recorded on
};
struct BlockLess {  // best fit: by pool, stream, size, address
  bool operator()(const Block* a, const Block* b) const {
    if (a->pool != b->pool) return a->pool < b->pool;
    if (a->key != b->key) return std::less<void*>()(a->key, b->key);
    if (a->size != b->size) return a->size < b->size;
    return std::less<char*>()(a->ptr, b->ptr);
  }
};
struct Pool {
  std::mutex mu;
  std::set<Block*, BlockLess> free_blocks;  // one best-fit pool (see allocate)
  std::unordered_map<const void*, Block*> live;
  std::vector<std::pair<Event, Block*>> events;  // outstanding cross-stream uses
  std::vector<Event> spare_events;
  MemoryStats stats;
  size_t limit = 0;
};
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may outlive static destruction
  return *p;
}

void* raw_alloc(size_t n) {
#if ADNN_WITH_CUDA_EMULATION
  return sim::device_arena_alloc(n);  // registered: kernels may receive only these; guarded from the host
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
  sim::device_arena_free(p);
#else
  cudaFree(p);
#endif
}

// Puts a block back in the cache, merged with its free neighbours (same pool).
void cache_block(Pool& P, Block* b) {
  auto& set = P.free_blocks;
  // a graph's block absorbs free neighbours of the shared cache (nothing uses them); the
  // shared cache never absorbs a graph's
  auto mergeable = [&](Block* n) { return n && n->cached && (n->pool == b->pool || n->pool == 0); };
  if (mergeable(b->prev)) {
    Block* n = b->prev;
    set.erase(n);
    n->pool = b->pool;
    n->size += b->size;
    n->next = b->next;
    if (b->next) b->next->prev = n;
    delete b;
    b = n;
    ++P.stats.merges;
  }
  if (mergeable(b->next)) {
    Block* n = b->next;
    set.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    delete n;
    ++P.stats.merges;
  }
  b->cached = true;
  set.insert(b);
}

// Returns to the cache the blocks whose cross-stream events have completed.
void process_events(Pool& P) {
  if (P.events.empty()) return;
  std::vector<std::pair<Event, Block*>> left;
  for (auto& [e, b] : P.events) {
    if (!query(e)) {
      left.emplace_back(e, b);
      continue;
    }
    P.spare_events.push_back(e);
    if (--b->pending_events == 0) {
      P.stats.pending_free -= b->size;
      cache_block(P, b);
    }
  }
  P.events = std::move(left);
}
// The out-of-memory path: wait for every outstanding event (a synchronisation).
void sync_events(Pool& P) {
  for (auto& [e, b] : P.events) synchronize(e);
  process_events(P);
}

// Frees the whole free segments of the shared cache.
void release_cached(Pool& P) {
  for (auto it = P.free_blocks.begin(); it != P.free_blocks.end();) {
    Block* b = *it;
    if (b->pool == 0 && !b->prev && !b->next) {
      raw_free(b->ptr);
      P.stats.reserved -= b->size;
      ++P.stats.device_frees;
      it = P.free_blocks.erase(it);
      delete b;
    } else {
      ++it;
    }
  }
}

Block* find_free(Pool& P, uint64_t pool_id, void* key, size_t size) {
  auto& set = P.free_blocks;
  Block probe;
  probe.pool = pool_id;
  probe.key = key;
  probe.size = size;
  probe.ptr = nullptr;
  auto it = set.lower_bound(&probe);
  if (it == set.end() || (*it)->pool != pool_id || (*it)->key != key) return nullptr;
  Block* b = *it;
  set.erase(it);
  b->cached = false;
  return b;
}

std::string oom_message(const Pool& P, size_t nbytes, size_t size, size_t seg) {
  std::string device;
#if !ADNN_WITH_CUDA_EMULATION
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
    device = detail::cat("; the device has ", free_b, " of ", total_b, " bytes free");
  else
    cudaGetLastError();
#endif
  return detail::cat("CUDA out of memory: tried to allocate ", nbytes, " bytes (a segment of ", seg, ", block ",
                     size, " with rounding); adnn holds ", P.stats.reserved, " bytes reserved, ", P.stats.in_use,
                     " of them in live tensors, ", P.stats.pending_free,
                     " waiting for other streams; its cache was released and the allocation retried",
                     P.limit ? detail::cat(" (device limit ", P.limit, " bytes)") : std::string(), device,
                     " [cuda::allocate]");
}

// capturing: a segment for a capture's private pool. cudaMalloc is not a stream operation: a
// capture does not record it (replays allocate nothing) and allows it in relaxed mode, which
// this thread switches to around the call (PyTorch's allocator does the same).
Block* new_segment(Pool& P, size_t seg, void* key, Stream stream, bool capturing = false) {
  void* p = nullptr;
  if (!(P.limit && P.stats.reserved + seg > P.limit)) {
#if !ADNN_WITH_CUDA_EMULATION
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    if (capturing) ADNN_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
#endif
    p = raw_alloc(seg);
#if !ADNN_WITH_CUDA_EMULATION
    if (capturing) ADNN_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
#endif
  }
  if (!p) return nullptr;
  ++g_mallocs;
  ++P.stats.device_mallocs;
  P.stats.reserved += seg;
  P.stats.peak_reserved = std::max(P.stats.peak_reserved, P.stats.reserved);
  Block* b = new Block;
  b->ptr = static_cast<char*>(p);
  b->size = seg;
  b->key = key;
  b->stream = stream;
  return b;
}
}  // namespace

void* allocate(size_t nbytes) {
  Pool& P = pool();
  const Stream stream = current_stream();
  void* const key = stream_key(stream);
  Graph::Impl* g = capturing_graph(stream);
  const uint64_t pool_id = g ? g->pool : 0;
  std::lock_guard<std::mutex> lock(P.mu);
  process_events(P);
  const size_t size = round_up(std::max<size_t>(nbytes, 1), kRound);
  ++P.stats.allocations;
  Block* b = find_free(P, pool_id, key, size);
  if (pool_id) {  // a capture: the best fit of its pool and the shared cache (taken into its pool)
    Block* c = find_free(P, 0, key, size);
    if (!b || (c && c->size < b->size)) std::swap(b, c);
    if (c) cache_block(P, c);  // the one not taken goes back
  }
  const size_t seg = size <= kSmall ? kSegment : round_up(size, kSegment);
  if (b) {
    ++P.stats.cache_hits;
  } else {
    // A capture grows its graph's private pool with a new segment; it stays there (never freed,
    // never handed to eager work) until the graph is reset or destroyed.
    b = new_segment(P, seg, key, stream, g != nullptr);
    if (!b && g)  // no synchronisation or cudaFree during a capture: no release and retry
      throw Error(detail::cat("CUDA out of memory during CUDA stream capture: tried to allocate ", nbytes,
                              " bytes (a segment of ", seg, "); adnn holds ", P.stats.reserved, " bytes reserved, ",
                              P.stats.in_use,
                              " of them in live tensors (a capture cannot release the cache: free memory, "
                              "or call cuda::empty_cache(), before capture_begin) [cuda::allocate]"));
    if (!b) {  // wait for the other streams' uses, release the cache, retry once
      sync_events(P);
      b = find_free(P, 0, key, size);
      if (!b) {
        release_cached(P);
        ++P.stats.oom_retries;
        b = new_segment(P, seg, key, stream);
      }
      if (!b) throw Error(oom_message(P, nbytes, size, seg));
    }
  }
  b->pool = pool_id;  // a capture takes the whole block (its rest too) into the graph's pool
  if (b->size - size >= kRound) {  // split: the rest stays in the cache
    Block* r = new Block;
    r->ptr = b->ptr + size;
    r->size = b->size - size;
    r->key = b->key;
    r->stream = b->stream;
    r->pool = b->pool;
    r->prev = b;
    r->next = b->next;
    if (b->next) b->next->prev = r;
    b->next = r;
    b->size = size;
    ++P.stats.splits;
    cache_block(P, r);
  }
  b->allocated = true;
  b->pool = pool_id;
  P.live[b->ptr] = b;
  P.stats.in_use += b->size;
  P.stats.peak_in_use = std::max(P.stats.peak_in_use, P.stats.in_use);
  return b->ptr;
}

void deallocate(void* p, size_t) {
  if (!p) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.live.find(p);
  ADNN_CHECK(it != P.live.end(), "cuda::deallocate: ", p, " is not a live allocation of the caching allocator");
  Block* b = it->second;
  P.live.erase(it);
  P.stats.in_use -= b->size;
  b->allocated = false;
  // A block freed while its stream is capturing joins that graph's pool: replays may use it.
  if (Graph::Impl* g = capturing_graph_of_key(b->key)) b->pool = g->pool;
  std::vector<Stream> uses = std::move(b->uses);
  b->uses.clear();
  for (const Stream& s : uses) {
    if (capturing_graph(s)) continue;  // the graph's pool keeps it anyway
    Event e;
    if (P.spare_events.empty()) {
      e = create_event();
    } else {
      e = P.spare_events.back();
      P.spare_events.pop_back();
    }
    record(e, s);
    P.events.emplace_back(e, b);
    ++b->pending_events;
  }
  if (b->pending_events > 0)
    P.stats.pending_free += b->size;
  else
    cache_block(P, b);
}

void record_stream(const void* p, Stream s) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  auto it = P.live.find(p);
  ADNN_CHECK(it != P.live.end(), "Tensor::record_stream: ", p, " is not the start of a live device allocation");
  Block* b = it->second;
  if (stream_key(s) == b->key) return;  // its own stream orders its uses
  for (const Stream& u : b->uses)
    if (u == s) return;
  b->uses.push_back(s);
}

MemoryStats memory_stats() {
  std::lock_guard<std::mutex> lock(pool().mu);
  return pool().stats;
}
void reset_peak_memory() {
  std::lock_guard<std::mutex> lock(pool().mu);
  pool().stats.peak_in_use = pool().stats.in_use;
  pool().stats.peak_reserved = pool().stats.reserved;
}
void empty_cache() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  process_events(P);
  release_cached(P);
}
void set_memory_limit(size_t bytes) {
  std::lock_guard<std::mutex> lock(pool().mu);
  pool().limit = bytes;
}

namespace {
// A graph's pool returns to the shared cache.
void release_graph_pool(uint64_t id) {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mu);
  for (auto& [ptr, b] : P.live)
    if (b->pool == id) b->pool = 0;
  for (auto& [e, b] : P.events)
    if (b->pool == id) b->pool = 0;
  std::vector<Block*> freed;
  for (auto it = P.free_blocks.begin(); it != P.free_blocks.end();) {
    if ((*it)->pool == id) {
      freed.push_back(*it);
      it = P.free_blocks.erase(it);
    } else {
      ++it;
    }
  }
  for (Block* b : freed) {
    b->pool = 0;
    b->cached = false;
  }
  // one at a time: each merges with the neighbours already back in the cache
  std::set<Block*> merged_away;
  for (Block* b : freed) {
    if (merged_away.count(b)) continue;
    Block *prev = b->prev, *next = b->next;
    const bool prev_merges = prev && prev->cached && prev->pool == 0;
    const bool next_merges = next && next->cached && next->pool == 0;
    cache_block(P, b);  // deletes b if it merged into prev, and next if it merged into b
    if (prev_merges) merged_away.insert(b);
    if (next_merges) merged_away.insert(next);
  }
}
}  // namespace

// ---------------------------------------------------------------- streams, events, copies
Stream current_stream() {
#if ADNN_WITH_CUDA_EMULATION
  return tls_stream;
#else
  return tls_stream.handle ? tls_stream : Stream{static_cast<void*>(cudaStreamPerThread)};
#endif
}
void set_current_stream(Stream s) { tls_stream = s; }

#if ADNN_WITH_CUDA_EMULATION

Stream default_stream() { return Stream{}; }
Stream create_stream() {
  auto* s = new EmuStream();
  std::lock_guard<std::mutex> lock(g_stream_mu);
  g_streams.insert(s);
  return Stream{s};
}
void destroy_stream(Stream s) {
  synchronize(s);  // as on a GPU, where its blocks may be reused once it is gone
  std::lock_guard<std::mutex> lock(g_stream_mu);
  g_streams.erase(emu(s));
  g_retired_streams.push_back(emu(s));
  // the EmuStream is kept (a few bytes): its address keys its blocks in the allocator, and a
  // new stream at the same address would inherit them
}
void synchronize(Stream s) {
  ADNN_NOT_IN_CAPTURE(s, "cuda::synchronize(stream)");
  ++g_syncs;
  {
    std::lock_guard<std::mutex> lock(g_stream_mu);
    complete(emu(s), emu(s)->recorded);
  }
  raise_deferred_checks();
}
bool query(Stream s) {
  std::lock_guard<std::mutex> lock(g_stream_mu);
  return emu(s)->completed >= emu(s)->recorded;
}
void device_synchronize() {
  if (g_num_capturing.load() > 0) fail_in_capture("cuda::device_synchronize", __FILE__, __LINE__);
  ++g_syncs;
  {
    // every stream: the allocator's events and the streams the caller knows of
    std::lock_guard<std::mutex> lock(g_stream_mu);
    complete(emu(Stream{}), emu(Stream{})->recorded);
  }
  std::vector<Event> evs;
  {
    std::lock_guard<std::mutex> lock(pool().mu);
    for (auto& [e, b] : pool().events) evs.push_back(e);
  }
  {
    std::lock_guard<std::mutex> lock(g_stream_mu);
    for (Event e : evs) {
      auto* ev = static_cast<EmuEvent*>(e.handle);
      if (ev->stream) complete(ev->stream, ev->stream->recorded);
    }
    for (EmuStream* s : g_streams) complete(s, s->recorded);
  }
  raise_deferred_checks();
}
Event create_event() { return Event{new EmuEvent()}; }
void destroy_event(Event e) { delete static_cast<EmuEvent*>(e.handle); }
void record(Event e, Stream s) {
  auto* ev = static_cast<EmuEvent*>(e.handle);
  std::lock_guard<std::mutex> lock(g_stream_mu);
  ev->stream = emu(s);
  ev->seq = ++ev->stream->recorded;
  ev->time = Clock::now();
}
bool query(Event e) {
  auto* ev = static_cast<EmuEvent*>(e.handle);
  std::lock_guard<std::mutex> lock(g_stream_mu);
  return !ev->stream || ev->stream->completed >= ev->seq;
}
void synchronize(Event e) {
  if (g_num_capturing.load() > 0) fail_in_capture("cuda::synchronize(event)", __FILE__, __LINE__);
  ++g_syncs;
  auto* ev = static_cast<EmuEvent*>(e.handle);
  std::lock_guard<std::mutex> lock(g_stream_mu);
  if (ev->stream) complete(ev->stream, ev->seq);
}
void wait(Stream s, Event e) {
  auto* ev = static_cast<EmuEvent*>(e.handle);
  std::lock_guard<std::mutex> lock(g_stream_mu);
  if (ev->stream && ev->stream->completed < ev->seq) emu(s)->waits.emplace_back(ev->stream, ev->seq);
}
float elapsed_ms(Event a, Event b) {
  synchronize(b);
  return std::chrono::duration<float, std::milli>(static_cast<EmuEvent*>(b.handle)->time -
                                                  static_cast<EmuEvent*>(a.handle)->time)
      .count();
}
namespace {
// Records `work` if `stream` is capturing; false when it should run now.
bool record_if_capturing(Stream stream, std::function<void()> work) {
  Graph::Impl* g = capturing_graph(stream);
  if (!g) return false;
  g->recording.push_back(std::move(work));
  return true;
}
}  // namespace
namespace {
// The emulated cuBLAS: the CPU GEMM on this thread alone. Device memory is open only to the
// thread doing device work (src/sim/device_memory.cpp); the CPU GEMM's OpenMP workers are not.
struct library_call {
  sim::device_access access;
  const bool alone = sim::host_guard_on();
  const int threads = omp_get_max_threads();
  library_call() {
    if (alone) omp_set_num_threads(1);  // this thread's parallel regions: one thread
  }
  ~library_call() {
    if (alone) omp_set_num_threads(threads);
  }
  library_call(const library_call&) = delete;
  library_call& operator=(const library_call&) = delete;
};
}  // namespace
// What the kernel trace (src/sim/trace.hpp) counts for a GEMM: its operands once, 2·M·N·K flops.
namespace {
void trace_gemm(const char* name, int64_t M, int64_t N, int64_t K, size_t elem, bool reads_c) {
  if (!sim::trace_active()) return;
  const uint64_t elems = uint64_t(M * K + K * N + M * N * (reads_c ? 2 : 1));
  sim::trace_library_call(name, elems * elem, 2 * uint64_t(M) * uint64_t(N) * uint64_t(K));
}
}  // namespace
void copy_to_device(void* d, const void* s, size_t n) {
  ADNN_NOT_IN_CAPTURE(current_stream(), "cuda::copy_to_device (a synchronous copy from the host)");
  ++g_sync_copies;
  sim::device_access copy;
  std::memcpy(d, s, n);
}
void copy_to_host(void* d, const void* s, size_t n) {
  ADNN_NOT_IN_CAPTURE(current_stream(), "cuda::copy_to_host (a synchronous copy to the host)");
  ++g_sync_copies;
  {
    sim::device_access copy;
    std::memcpy(d, s, n);
  }
  {
    std::lock_guard<std::mutex> lock(g_stream_mu);  // the copy waits for the stream
    EmuStream* st = emu(current_stream());
    complete(st, st->recorded);
  }
  raise_deferred_checks();
}
void copy_device_to_device(void* d, const void* s, size_t n) {
  sim::trace_library_call("cudaMemcpyAsync (device to device)", 2 * uint64_t(n), 0);
  if (record_if_capturing(current_stream(), [d, s, n] { std::memmove(d, s, n); })) return;
  sim::device_access copy;
  std::memmove(d, s, n);
}
void memset(void* d, int v, size_t n) {
  sim::trace_library_call("cudaMemsetAsync", n, 0);
  if (record_if_capturing(current_stream(), [d, v, n] { std::memset(d, v, n); })) return;
  sim::device_access set;
  std::memset(d, v, n);
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const BlasLd ld = blas_leading_dims("cuda::gemm (f32)", ta, tb, M, N, K, lda, ldb, ldc);
  lda = ld.a, ldb = ld.b, ldc = ld.c;
  const bool tf32 = allow_tf32();  // as the device path: A and B rounded to TF32, f32 accumulation
  trace_gemm(tf32 ? "cuBLAS gemm f32 (TF32)" : "cuBLAS gemm f32", M, N, K, sizeof(float), beta != 0);
  auto work = [=] {
    library_call library;
    if (!tf32 || K == 0) return cpu::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    thread_local std::vector<float> pa, pb;
    const int64_t ac = ta ? M : K, bc = tb ? K : N;  // columns of A and B as stored
    cpu::widen_panel(A, ta ? K : M, ac, lda, true, pa);
    cpu::widen_panel(B, tb ? N : K, bc, ldb, true, pb);
    cpu::gemm(ta, tb, M, N, K, alpha, pa.data(), ac, pb.data(), bc, beta, C, ldc);
  };
  if (record_if_capturing(current_stream(), work)) return;
  work();
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const BlasLd ld = blas_leading_dims("cuda::gemm (f64)", ta, tb, M, N, K, lda, ldb, ldc);
  lda = ld.a, ldb = ld.b, ldc = ld.c;
  trace_gemm("cuBLAS gemm f64", M, N, K, sizeof(double), beta != 0);
  auto work = [=] {
    library_call library;
    cpu::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  };
  if (record_if_capturing(current_stream(), work)) return;
  work();
}
namespace {
std::atomic<bool> g_emulated_bias_grad{true};
}
void set_emulated_bias_grad_epilogue(bool on) { g_emulated_bias_grad = on; }
bool gemm_ex(const GemmDesc& d) {
  // as on a GPU (below): no fused bias gradient over fewer than two rows
  if (d.bias_grad && (!g_emulated_bias_grad || d.K <= 1)) return false;
  if (d.M > 0 && d.N > 0 && d.batch > 0)
    blas_leading_dims("cuda::gemm_ex", d.ta, d.tb, d.M, d.N, d.K, d.lda, d.ldb, d.ldc);
  if (sim::trace_active() && d.M > 0 && d.N > 0) {  // one library call: B strided products
    const char* name = d.dtype == DType::f64    ? "cuBLASLt matmul f64"
                       : d.dtype == DType::f16  ? "cuBLASLt matmul f16"
                       : d.dtype == DType::bf16 ? "cuBLASLt matmul bf16"
                       : d.math == GemmMath::tf32 ? "cuBLASLt matmul f32 (TF32)"
                                                   : "cuBLASLt matmul f32";
    const uint64_t elems = uint64_t(d.batch) * uint64_t(d.M * d.K + d.K * d.N + d.M * d.N * (d.pre ? 2 : 1)) +
                           (d.bias ? uint64_t(d.N) : 0) + (d.bias_grad ? uint64_t(d.M) : 0);
    // an f32 C of 16-bit inputs counts twice its elements; an accumulated C is read and written
    const uint64_t c_extra =
        uint64_t(d.batch) * uint64_t(d.M * d.N) * uint64_t((d.c_f32 ? 2 : 1) * (d.accumulate ? 2 : 1) - 1);
    sim::trace_library_call(name, (elems + c_extra) * dtype_size(d.dtype),
                            2 * uint64_t(d.batch) * uint64_t(d.M) * uint64_t(d.N) * uint64_t(d.K));
  }
  auto work = [d] {
    library_call library;
    cpu::gemm_ex(d);
  };
  if (!record_if_capturing(current_stream(), work)) work();
  return true;  // the reference computes every epilogue
}
const char* device_name() { return "SIMT emulator on the host"; }
bool is_emulated() { return true; }
bool has_tensor_cores() { return true; }  // kernels/mma.cuh emulates mma.sync

#else  // real CUDA

namespace {
// One cuBLAS handle per stream (per thread for the per-thread default stream).
cublasHandle_t blas_handle(Stream s) {
  static std::mutex mu;
  static std::map<void*, cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles.find(stream_key(s));
  if (it != handles.end()) return it->second;
  cublasHandle_t h;
  ADNN_CUBLAS_CHECK(cublasCreate(&h));
  ADNN_CUBLAS_CHECK(cublasSetStream(h, raw(s)));
  handles[stream_key(s)] = h;
  return h;
}

// A GEMM with K = 0 runs as a K = 1 product of zero operands (as rocBLAS does for K = 0, with
// zeros rather than α = 0 so nothing unwritten is read): cuBLAS refuses ld = 0, and a k = 0
// call once ignored β (pytorch/pytorch#31421). a: (M, 1) zeros, b: (1, N) zeros, 256-byte
// aligned, from the caching allocator on the current stream (freed after the call, stream-ordered).
struct ZeroOperands {
  void* a = nullptr;
  const void* b = nullptr;
  size_t bytes = 0;
  ZeroOperands(int64_t M, int64_t N, size_t elem) {
    const size_t b_off = (size_t(M) * elem + 255) / 256 * 256;
    bytes = b_off + size_t(N) * elem;
    a = allocate(bytes);
    cuda::memset(a, 0, bytes);
    b = static_cast<const char*>(a) + b_off;
  }
  ZeroOperands(const ZeroOperands&) = delete;
  ZeroOperands& operator=(const ZeroOperands&) = delete;
  ~ZeroOperands() { deallocate(a, bytes); }
};

// ---- cuBLASLt: one handle, a workspace per stream, the heuristic's choice cached per problem
constexpr size_t kLtWorkspace = size_t(32) << 20;  // cuBLAS's recommendation for Hopper
cublasLtHandle_t lt_handle() {
  static cublasLtHandle_t h = [] {
    cublasLtHandle_t x = nullptr;
    ADNN_CUBLAS_CHECK(cublasLtCreate(&x));
    return x;
  }();
  return h;
}
void* lt_workspace(Stream s) {
  static std::mutex mu;
  static std::map<void*, void*> ws;
  std::lock_guard<std::mutex> lock(mu);
  auto it = ws.find(stream_key(s));
  if (it != ws.end()) return it->second;
  ADNN_NOT_IN_CAPTURE(s, "cuda::gemm_ex's first use of a stream (its cuBLASLt workspace is a cudaMalloc)");
  void* p = raw_alloc(kLtWorkspace);
  ADNN_CHECK(p, "cuda::gemm_ex: out of device memory for the ", kLtWorkspace >> 20, " MiB cuBLASLt workspace");
  ws[stream_key(s)] = p;
  return p;
}
int alignment_of(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  int a = 256;
  while (a > 1 && v % uintptr_t(a)) a /= 2;
  return a;
}
cudaDataType_t lt_type(DType t) {
  switch (t) {
    case DType::f64: return CUDA_R_64F;
    case DType::f32: return CUDA_R_32F;
    case DType::f16: return CUDA_R_16F;
    case DType::bf16: return CUDA_R_16BF;
    default: ADNN_FAIL("cuda::gemm_ex: unsupported dtype ", dtype_name(t));
  }
}
struct LtKey {
  int dtype, c_f32, math, epilogue, ta, tb, align_a, align_b, align_c, align_bias;  // epilogue: lt_epilogue's
  int64_t M, N, K, lda, ldb, ldc, batch, sa, sb, sc;
  auto tie() const {
    return std::tie(dtype, c_f32, math, epilogue, ta, tb, align_a, align_b, align_c, align_bias, M, N, K, lda, ldb, ldc,
                    batch, sa, sb, sc);
  }
  bool operator<(const LtKey& o) const { return tie() < o.tie(); }
};
// The descriptors of one problem and the heuristic's algorithm, made once; found = false when
// the heuristic had none (kept, so that the question is asked once per problem).
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  mutable std::atomic<bool> found{false};  // cleared if cuBLASLt refuses the algorithm when run
  LtPlan() = default;
  LtPlan(LtPlan&& o) noexcept : op(o.op), a(o.a), b(o.b), c(o.c), algo(o.algo), found(o.found.load()) {}
};
// The cuBLASLt epilogue of d. Our A is cuBLASLt's B (below), so the sums of op(A)'s rows are
// its BGRADB: the bias gradient over the columns of its D (our rows), reduced over k.
cublasLtEpilogue_t lt_epilogue(const GemmDesc& d) {
  if (d.bias_grad) return CUBLASLT_EPILOGUE_BGRADB;
  if (d.epilogue == GemmEpilogue::none || !d.bias) return CUBLASLT_EPILOGUE_DEFAULT;
  return d.epilogue == GemmEpilogue::bias_relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
}
template <class V>
void lt_layout_attr(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr, V v) {
  ADNN_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, attr, &v, sizeof(v)));
}
template <class V>
void lt_desc_attr(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, V v) {
  ADNN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof(v)));
}
// Row-major C (M, N) = op(A) op(B) is column-major Cᵀ (N, M) = op(B)ᵀ op(A)ᵀ: cuBLASLt's A is
// our B and its B our A; the bias (length N) runs along cuBLASLt's rows, as it requires.
const LtPlan& lt_plan(const GemmDesc& d) {
  static std::mutex mu;
  static std::map<LtKey, LtPlan> plans;
  const cublasLtEpilogue_t ep = lt_epilogue(d);
  const bool with_bias = ep == CUBLASLT_EPILOGUE_BIAS || ep == CUBLASLT_EPILOGUE_RELU_BIAS;
  const void* vec = d.bias_grad ? d.bias_grad : with_bias ? d.bias : nullptr;  // the epilogue's vector
  const LtKey key{int(d.dtype), d.c_f32, int(d.math), int(ep), d.ta, d.tb, alignment_of(d.A), alignment_of(d.B),
                  alignment_of(d.C), vec ? alignment_of(vec) : 0, d.M, d.N, d.K, d.lda, d.ldb, d.ldc,
                  d.batch, d.stride_a, d.stride_b, d.stride_c};
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  LtPlan p;
  const cudaDataType_t t = lt_type(d.dtype);
  const bool f64 = d.dtype == DType::f64;
  const cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F : (d.math == GemmMath::tf32 && d.dtype == DType::f32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                                    : CUBLAS_COMPUTE_32F);
  ADNN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, compute, f64 ? CUDA_R_64F : CUDA_R_32F));
  lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_TRANSA, d.tb ? CUBLAS_OP_T : CUBLAS_OP_N);
  lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_TRANSB, d.ta ? CUBLAS_OP_T : CUBLAS_OP_N);
  lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, ep);
  if (with_bias) {
    lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, t);
    lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, int64_t(0));
  }
  // the bias gradient is in D's type (the default, set as TransformerEngine does); its pointer is
  // set again, under a lock, for each call
  if (d.bias_grad) lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, d.c_f32 ? CUDA_R_32F : t);
  if (vec) lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, vec);
  auto layout = [&](cublasLtMatrixLayout_t& l, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                    cudaDataType_t type) {
    ADNN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, type, uint64_t(rows), uint64_t(cols), ld));
    if (d.batch > 1) {
      lt_layout_attr(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, int32_t(d.batch));
      lt_layout_attr(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, stride);
    }
  };
  layout(p.a, d.tb ? d.K : d.N, d.tb ? d.N : d.K, d.ldb, d.stride_b, t);
  layout(p.b, d.ta ? d.M : d.K, d.ta ? d.K : d.M, d.lda, d.stride_a, t);
  layout(p.c, d.N, d.M, d.ldc, d.stride_c, d.c_f32 ? CUDA_R_32F : t);  // bf16/f16 A, B with f32 C: supported
  cublasLtMatmulPreference_t pref = nullptr;
  ADNN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t wsz = kLtWorkspace;
  ADNN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz,
                                                         sizeof(wsz)));
  auto pref_align = [&](cublasLtMatmulPreferenceAttributes_t attr, int a) {
    const uint32_t v = uint32_t(a);
    ADNN_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &v, sizeof(v)));
  };
  pref_align(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_b);
  pref_align(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_a);
  pref_align(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c);
  pref_align(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_c);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(lt_handle(), p.op, p.a, p.b, p.c, p.c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  // a fused bias gradient is optional (the caller sums A without it); any other problem must run
  ADNN_CHECK(d.bias_grad || (st == CUBLAS_STATUS_SUCCESS && found > 0), "cuda::gemm_ex: cuBLASLt has no algorithm for ",
             dtype_name(d.dtype), " M=", d.M, " N=", d.N, " K=", d.K, " batch ", d.batch, " (status ", int(st), ")");
  p.found = st == CUBLAS_STATUS_SUCCESS && found > 0;
  if (p.found) p.algo = result.algo;
  return plans.emplace(key, std::move(p)).first->second;
}
}  // namespace

void set_emulated_bias_grad_epilogue(bool) {}  // a GPU has what its cuBLASLt has
bool gemm_ex(const GemmDesc& d) {
  if (d.bias_grad)
    ADNN_CHECK(d.batch == 1 && d.epilogue == GemmEpilogue::none && !d.pre,
               "cuda::gemm_ex: a bias gradient is computed for one product without an epilogue (batch ", d.batch, ")");
  if (d.M == 0 || d.batch == 0) return true;
  // no product, or a bias gradient over fewer than two rows (cuBLASLt before 12.3.4 mishandles
  // k = 1 with BGRAD, per nvmath-python's check): the caller sums A
  if (d.bias_grad && (d.N == 0 || d.K <= 1)) return false;
  if (d.N == 0) return true;
  blas_leading_dims("cuda::gemm_ex", d.ta, d.tb, d.M, d.N, d.K, d.lda, d.ldb, d.ldc);
  if (d.K == 0) {  // no inner dimension: the same D = β·C + epilogue from a K = 1 product of zeros
    const ZeroOperands z(d.M, d.N, dtype_size(d.dtype));
    GemmDesc e = d;
    e.K = 1;
    e.ta = e.tb = false;
    e.A = z.a, e.lda = 1, e.stride_a = 0;  // (M, 1), one matrix for every batch item
    e.B = z.b, e.ldb = d.N, e.stride_b = 0;  // (1, N)
    return gemm_ex(e);
  }
  ADNN_CHECK(d.epilogue != GemmEpilogue::bias_gelu, "cuda::gemm_ex: the erf GELU epilogue is not cuBLASLt's (tanh); "
             "the gemm family applies it after a bias epilogue");
  ADNN_CHECK(!d.pre, "cuda::gemm_ex: no pre-activation output on the device (src/cuda/gemm.cpp writes z to it with a "
             "bias epilogue and applies the activation after)");
  const bool half_inputs = d.dtype == DType::f16 || d.dtype == DType::bf16;
  if (d.c_f32 || d.accumulate)
    ADNN_CHECK(d.epilogue == GemmEpilogue::none && !d.bias_grad && (!d.c_f32 || half_inputs) &&
                   (!d.accumulate || !half_inputs || d.c_f32),
               "cuda::gemm_ex: an f32 C (f16/bf16 inputs) or an accumulated C (f32/f64 C) takes no epilogue; got ",
               dtype_name(d.dtype), d.c_f32 ? " with an f32 C" : "", d.accumulate ? ", accumulating" : "");
  const LtPlan& p = lt_plan(d);
  if (!p.found) return false;  // only a bias gradient may be missing (lt_plan)
  const void* vec = d.bias_grad ? d.bias_grad : (d.epilogue != GemmEpilogue::none ? d.bias : nullptr);
  static std::mutex bias_mu;  // the vector's pointer is an attribute of the cached descriptor
  std::unique_lock<std::mutex> lock(bias_mu, std::defer_lock);
  if (vec) {
    lock.lock();
    lt_desc_attr(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, vec);
  }
  const Stream s = current_stream();
  void* ws = lt_workspace(s);
  const double one64 = 1, zero64 = 0;
  const float one32 = 1, zero32 = 0;
  const bool f64 = d.dtype == DType::f64;
  const void* alpha = f64 ? static_cast<const void*>(&one64) : static_cast<const void*>(&one32);
  const void* beta = f64 ? static_cast<const void*>(d.accumulate ? &one64 : &zero64)
                         : static_cast<const void*>(d.accumulate ? &one32 : &zero32);
  const cublasStatus_t st = cublasLtMatmul(lt_handle(), p.op, alpha, d.B, p.a, d.A, p.b, beta, d.C, p.c, d.C, p.c,
                                           &p.algo, ws, kLtWorkspace, raw(s));
  if (st == CUBLAS_STATUS_NOT_SUPPORTED && d.bias_grad) {  // refused when run: the caller's fallback from now on
    p.found = false;
    return false;
  }
  if (st != CUBLAS_STATUS_SUCCESS)
    ADNN_FAIL("cuBLAS call cublasLtMatmul failed with status ", int(st), " (", dtype_name(d.dtype), " M=", d.M, " N=",
              d.N, " K=", d.K, " batch ", d.batch, ")");
  return true;
}

// The default stream is cudaStreamPerThread, not the legacy NULL stream: each host thread gets
// its own stream, which does not serialise with the other threads' work or with created
// streams (the legacy stream waits for, and blocks, every blocking stream of the device), needs
// no creation or destruction, and can be captured into a CUDA graph (the legacy stream cannot).
Stream default_stream() { return Stream{static_cast<void*>(cudaStreamPerThread)}; }
Stream create_stream() {
  cudaStream_t s;
  ADNN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream{s};
}
void destroy_stream(Stream s) {
  // its cached blocks keep its handle as their key, and a new stream may get the same handle:
  // let its work finish first
  ADNN_CUDA_CHECK(cudaStreamSynchronize(raw(s)));
  ADNN_CUDA_CHECK(cudaStreamDestroy(raw(s)));
}
void synchronize(Stream s) {
  ADNN_NOT_IN_CAPTURE(s, "cuda::synchronize(stream)");
  ++g_syncs;
  ADNN_CUDA_CHECK(cudaStreamSynchronize(raw(s)));
  raise_deferred_checks();
}
bool query(Stream s) {
  cudaError_t e = cudaStreamQuery(raw(s));
  if (e == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  ADNN_CUDA_CHECK(e);
  return true;
}
void device_synchronize() {
  if (g_num_capturing.load() > 0) fail_in_capture("cuda::device_synchronize", __FILE__, __LINE__);
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
bool query(Event e) {
  cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(e.handle));
  if (r == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  ADNN_CUDA_CHECK(r);
  return true;
}
void synchronize(Event e) {
  if (g_num_capturing.load() > 0) fail_in_capture("cuda::synchronize(event)", __FILE__, __LINE__);
  ++g_syncs;
  ADNN_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(e.handle)));
}
void wait(Stream s, Event e) { ADNN_CUDA_CHECK(cudaStreamWaitEvent(raw(s), static_cast<cudaEvent_t>(e.handle), 0)); }
float elapsed_ms(Event a, Event b) {
  synchronize(b);
  float ms = 0;
  ADNN_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(a.handle), static_cast<cudaEvent_t>(b.handle)));
  return ms;
}
void copy_to_device(void* d, const void* s, size_t n) {
  ADNN_NOT_IN_CAPTURE(current_stream(), "cuda::copy_to_device (a synchronous copy from the host)");
  ++g_sync_copies;
  ADNN_CUDA_CHECK(cudaMemcpyAsync(d, s, n, cudaMemcpyHostToDevice, raw(current_stream())));
}
void copy_to_host(void* d, const void* s, size_t n) {
  ADNN_NOT_IN_CAPTURE(current_stream(), "cuda::copy_to_host (a synchronous copy to the host)");
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
// f32, one call either way: CUBLAS_COMPUTE_32F (as cublasSgemm), or with allow_tf32() the
// same product with TF32 inputs on the tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32; f32
// accumulation), as matmul's cuBLASLt path.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const BlasLd ld = blas_leading_dims("cuda::gemm (f32)", ta, tb, M, N, K, lda, ldb, ldc);
  lda = ld.a, ldb = ld.b, ldc = ld.c;
  if (K == 0) {  // C = β·C as a K = 1 product of zeros (cuBLAS's k = 0 is not relied on)
    const ZeroOperands z(M, N, sizeof(float));
    return gemm(false, false, M, N, 1, alpha, static_cast<const float*>(z.a), 1, static_cast<const float*>(z.b), N,
                beta, C, ldc);
  }
  const cublasComputeType_t compute = allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  ADNN_CUBLAS_CHECK(cublasGemmEx(blas_handle(current_stream()), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K), &alpha, B, CUDA_R_32F, int(ldb),
                                 A, CUDA_R_32F, int(lda), &beta, C, CUDA_R_32F, int(ldc), compute,
                                 CUBLAS_GEMM_DEFAULT));
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const BlasLd ld = blas_leading_dims("cuda::gemm (f64)", ta, tb, M, N, K, lda, ldb, ldc);
  lda = ld.a, ldb = ld.b, ldc = ld.c;
  if (K == 0) {  // as the f32 gemm
    const ZeroOperands z(M, N, sizeof(double));
    return gemm(false, false, M, N, 1, alpha, static_cast<const double*>(z.a), 1, static_cast<const double*>(z.b), N,
                beta, C, ldc);
  }
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

// ---------------------------------------------------------------- CUDA graphs
namespace {
std::atomic<uint64_t> g_next_pool{1};
}
Graph::Graph() : impl_(std::make_unique<Impl>()) { impl_->pool = g_next_pool++; }
Graph::~Graph() {
  try {
    reset();
    if (impl_->salt) raw_free(impl_->salt);
  } catch (...) {
  }
}
void Graph::capture_begin(Stream s) {
  Impl& g = *impl_;
  ADNN_CHECK(!g.capturing, "cuda::Graph::capture_begin: this graph is already capturing");
  if (!g.salt) {  // before the capture starts, outside the cache (its segments stay whole)
    g.salt = static_cast<uint64_t*>(raw_alloc(256));
    ADNN_CHECK(g.salt, "cuda::Graph::capture_begin: out of device memory for the graph's 8-byte replay salt");
    StreamGuard guard(s);
    memset(g.salt, 0, sizeof(uint64_t));
  }
  g.salt_used = false;
  {
    std::lock_guard<std::mutex> lock(g_capture_mu);
    ADNN_CHECK(!g_capturing.count(stream_key(s)), "cuda::Graph::capture_begin: the stream is already capturing");
    g_capturing[stream_key(s)] = &g;
    ++g_num_capturing;
  }
  g.stream = s;
  g.capturing = true;
#if ADNN_WITH_CUDA_EMULATION
  g.recording.clear();
#else
  cudaError_t e = cudaStreamBeginCapture(raw(s), cudaStreamCaptureModeThreadLocal);
  if (e != cudaSuccess) {
    std::lock_guard<std::mutex> lock(g_capture_mu);
    g_capturing.erase(stream_key(s));
    --g_num_capturing;
    g.capturing = false;
    ADNN_FAIL("cuda::Graph::capture_begin: cudaStreamBeginCapture failed: ", cudaGetErrorString(e));
  }
#endif
}
void Graph::capture_end() {
  Impl& g = *impl_;
  ADNN_CHECK(g.capturing, "cuda::Graph::capture_end: capture_begin was not called");
  if (g.salt_used) {  // the last node: the next replay draws new masks
    StreamGuard guard(g.stream);
    advance_graph_salt(g.salt);
  }
  {
    std::lock_guard<std::mutex> lock(g_capture_mu);
    g_capturing.erase(stream_key(g.stream));
    --g_num_capturing;
  }
  g.capturing = false;
#if ADNN_WITH_CUDA_EMULATION
  g.updated = !g.ops.empty() && g.ops.size() == g.recording.size();  // same topology: an update
  g.ops = std::move(g.recording);
  g.recording.clear();
  g.nodes = g.ops.size();
#else
  cudaGraph_t graph = nullptr;
  ADNN_CUDA_CHECK(cudaStreamEndCapture(raw(g.stream), &graph));
  g.updated = false;
  if (g.exec) {
    cudaGraphExecUpdateResultInfo info{};
    if (cudaGraphExecUpdate(g.exec, graph, &info) == cudaSuccess) {
      g.updated = true;
    } else {
      cudaGetLastError();
      ADNN_CUDA_CHECK(cudaGraphExecDestroy(g.exec));
      g.exec = nullptr;
    }
  }
  if (!g.exec) ADNN_CUDA_CHECK(cudaGraphInstantiate(&g.exec, graph, 0));
  if (g.graph) cudaGraphDestroy(g.graph);
  g.graph = graph;
  ADNN_CUDA_CHECK(cudaGraphGetNodes(g.graph, nullptr, &g.nodes));
#endif
}
void Graph::replay() {
  Impl& g = *impl_;
  ADNN_CHECK(!g.capturing, "cuda::Graph::replay: the graph is still capturing (call capture_end)");
#if ADNN_WITH_CUDA_EMULATION
  if (record_if_capturing(current_stream(), [&g] {
        sim::device_access replay;  // the recorded copies, memsets and GEMMs
        for (auto& op : g.ops) op();
      }))
    return;
  sim::device_access replay;
  for (auto& op : g.ops) op();
#else
  ADNN_CHECK(g.exec, "cuda::Graph::replay: nothing captured");
  ADNN_CUDA_CHECK(cudaGraphLaunch(g.exec, raw(g.stream)));
#endif
}
void Graph::reset() {
  Impl& g = *impl_;
  if (g.capturing) {
    {
      std::lock_guard<std::mutex> lock(g_capture_mu);
      g_capturing.erase(stream_key(g.stream));
      --g_num_capturing;
    }
    g.capturing = false;
#if !ADNN_WITH_CUDA_EMULATION
    cudaGraph_t graph = nullptr;
    cudaStreamEndCapture(raw(g.stream), &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
#endif
  }
#if ADNN_WITH_CUDA_EMULATION
  g.ops.clear();
  g.recording.clear();
#else
  if (g.exec) cudaGraphExecDestroy(g.exec);
  if (g.graph) cudaGraphDestroy(g.graph);
  g.exec = nullptr;
  g.graph = nullptr;
#endif
  g.nodes = 0;
  release_graph_pool(g.pool);
}
size_t Graph::num_nodes() const { return impl_->nodes; }
bool Graph::updated_in_place() const { return impl_->updated; }

}  // namespace adnn::cuda

#if ADNN_WITH_CUDA_EMULATION
// The launch hook of kernels/common.cuh.
namespace adnn::kernels {
struct StreamTag;
using Stream = StreamTag*;
bool stream_capturing(Stream stream) {
  return adnn::cuda::g_num_capturing.load(std::memory_order_relaxed) > 0 &&
         adnn::cuda::is_capturing(adnn::cuda::Stream{static_cast<void*>(stream)});
}
void capture_launch(Stream stream, std::function<void()> work) {
  adnn::cuda::record_if_capturing(adnn::cuda::Stream{static_cast<void*>(stream)}, std::move(work));
}
}  // namespace adnn::kernels
#endif
