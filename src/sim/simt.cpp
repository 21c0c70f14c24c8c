// The SIMT emulator: fibers, barriers, warp exchange and the block scheduler.
#include "sim/simt.hpp"

#include "sim/trace.hpp"

#include <adnn/core/error.hpp>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <boost/context/fiber.hpp>
#include <boost/context/pooled_fixedsize_stack.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace ctxlib = boost::context;

namespace adnn::sim {

namespace {

enum class State : uint8_t { runnable, wait_block, wait_warp, done };

struct Thread {
  ctxlib::fiber fiber;  // the thread's own continuation (held by the scheduler)
  ctxlib::fiber sched;  // the scheduler's continuation (held while the thread runs)
  State state = State::runnable;
  unsigned wmask = 0;   // the mask of the warp op it waits at (wait_warp)
  bool wfence = false;  // that warp op is __syncwarp (a memory fence for the race checker)
  const char* wwhat = "";  // what it waits at, for deadlock reports
  site wsite;              // where it waits (or last waited)
  ThreadCtx ctx;
  // access trace (src/sim/trace.hpp): on while the block is traced
  bool tracing = false;
  uint32_t seg = 0;  // sync points passed (barriers, warp ops)
  std::vector<TraceAccess> log;
};

// Race-checker shadow of one 2-byte granule of shared memory: the last writer and the last
// reader, each with the block epoch (__syncthreads count) and its warp's __syncwarp count.
// Readers: the last one (r_tid); r_many when another thread also read in the same epoch (not
// ordered before by a __syncwarp), r_warp the readers' warp or 0xffff when they span warps.
struct Shadow {
  uint32_t w_epoch = 0, w_wsync = 0, r_epoch = 0, r_wsync = 0;
  uint16_t w_tid = 0xffff, r_tid = 0xffff, r_warp = 0xffff;
  bool r_many = false;
};
// Epochs grow across the blocks an OS thread runs, so the shadow never needs clearing: an
// entry left by an earlier block has an older epoch and counts as ordered.
thread_local uint32_t tls_epoch = 0;

std::atomic<uint64_t> g_seed{0x51a7u};
std::atomic<uint64_t> g_launches{0};
std::atomic<uint64_t> g_seed_base{0};  // launches before the last set_seed: schedules count from there
std::atomic<uint64_t> g_threads{0};
thread_local ThreadCtx* tls_ctx = nullptr;
thread_local Thread* tls_thread = nullptr;

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

constexpr size_t kStackBytes = 64 * 1024;
constexpr uint64_t kPoison = ~uint64_t(0);          // what a read of undefined data returns
constexpr size_t kStaticSharedBytes = 48 * 1024;   // static shared memory per block (CUDA's limit)

struct DeviceRanges {
  std::shared_mutex mu;
  std::map<uintptr_t, size_t> ranges;  // start -> bytes
};
DeviceRanges& device_ranges() {
  static DeviceRanges* r = new DeviceRanges();  // never destroyed: frees may run at exit
  return *r;
}

}  // namespace

class Block {
 public:
  std::vector<Thread> threads;
  std::vector<uint64_t> exchange;  // one slot per thread
  unsigned nwarps = 0;
  std::vector<std::byte>* smem = nullptr;
  size_t smem_bytes = 0;
  std::vector<std::byte>* static_smem = nullptr;  // the arena of ADNN_SHARED declarations
  std::vector<std::pair<const void*, size_t>> static_slots;  // (declaration key, offset)
  size_t static_used = 0;
  std::exception_ptr error;
  const char* kernel = "<kernel>";
  // race checker
  uint32_t epoch = 0;               // current barrier epoch (tls_epoch at block start + __syncthreads count)
  std::vector<uint32_t> wsync;      // per warp: released __syncwarp count
  std::byte* sbase = nullptr;       // static arena
  std::byte* dbase = nullptr;       // dynamic shared memory
  size_t dcap = 0;                  // bytes of the dynamic buffer (>= smem_bytes)
  Shadow* sshadow = nullptr;        // kStaticSharedBytes / 2 entries
  Shadow* dshadow = nullptr;        // dcap / 2 entries

  void yield(State s) {
    Thread* t = tls_thread;
    t->state = s;
    ++t->seg;
    t->sched = std::move(t->sched).resume();
    // resumed by the scheduler
    tls_thread = t;
    tls_ctx = &t->ctx;
  }
  unsigned live_mask(unsigned warp) const {
    unsigned m = 0;
    for (unsigned l = 0; l < 32; ++l) {
      unsigned i = warp * 32 + l;
      if (i < threads.size() && threads[i].state != State::done) m |= 1u << l;
    }
    return m;
  }
};

ThreadCtx& ctx() {
  ADNN_CHECK(tls_ctx, "SIMT emulator: kernel code called outside a launch");
  return *tls_ctx;
}

namespace {
// The barrier drop (drop_barrier in simt.hpp). file is a path suffix; line 0: none. Written
// only while no kernel runs, read by every __syncthreads.
struct BarrierDrop {
  barrier_site at;
  std::atomic<uint64_t> count{0};
  BarrierDrop() {
    const char* e = std::getenv("ADNN_SIM_DROP_BARRIER");
    if (!e || !*e) return;
    const std::string v = e;
    const size_t colon = v.rfind(':');
    char* end = nullptr;
    const bool digits = colon != std::string::npos && colon + 1 < v.size() && std::isdigit(uint8_t(v[colon + 1]));
    const unsigned long n = digits ? std::strtoul(v.c_str() + colon + 1, &end, 10) : 0;
    ADNN_CHECK(digits && colon > 0 && n > 0 && n <= 1000000 && end && *end == '\0', "ADNN_SIM_DROP_BARRIER=\"", v,
               "\": expected <file>:<line>, e.g. kernels/norm.cuh:107");
    at = {v.substr(0, colon), unsigned(n)};
  }
};
BarrierDrop& barrier_drop() {
  static BarrierDrop d;
  return d;
}
// file_name ends with suffix at a path boundary
bool path_ends_with(const char* file_name, const std::string& suffix) {
  const size_t n = std::strlen(file_name);
  if (n < suffix.size() || suffix.compare(0, std::string::npos, file_name + n - suffix.size()) != 0) return false;
  return n == suffix.size() || file_name[n - suffix.size() - 1] == '/';
}
}  // namespace

barrier_site drop_barrier(barrier_site at) {
  BarrierDrop& d = barrier_drop();
  barrier_site previous = std::move(d.at);
  d.at = at.file.empty() ? barrier_site{} : std::move(at);
  d.count = 0;
  return previous;
}

uint64_t dropped_barriers() {
  return barrier_drop().count.load();
}

void syncthreads(const site& at) {
  Thread* t = tls_thread;
  ADNN_CHECK(t, "SIMT emulator: __syncthreads called outside a launch");
  if (BarrierDrop& d = barrier_drop();
      d.at.line == at.line() && d.at.line && path_ends_with(at.file_name(), d.at.file)) {
    if (d.count.fetch_add(1) == 0)
      std::fprintf(stderr, "adnn SIMT emulator: the __syncthreads() at %s:%u is dropped (drop_barrier)\n",
                   at.file_name(), d.at.line);
    return;
  }
  t->wwhat = "__syncthreads";
  t->wsite = at;
  t->ctx.block->yield(State::wait_block);
}

namespace {
[[noreturn, gnu::noinline, gnu::cold]] void mask_error(const Thread* t, const char* what, unsigned mask, const site& at) {
  ADNN_CHECK(t, "SIMT emulator: ", what, " called outside a launch");
  const char* base = at.file_name();
  for (const char* q = base; *q; ++q)
    if (*q == '/') base = q + 1;
  ADNN_FAIL("SIMT emulator: kernel ", t->ctx.block->kernel, ": ", what, " with mask 0x", std::hex, mask, std::dec,
            " called by lane ", t->ctx.lane, " of warp ", t->ctx.warp, ", which is not in the mask [", base, ":",
            at.line(), "]");
}
// Waits at a warp op over `mask` (checked to hold the calling lane).
inline void warp_wait(Thread* t, const char* what, unsigned mask, bool fence, const site& at) {
  if (!t || !(mask >> t->ctx.lane & 1u)) [[unlikely]]
    mask_error(t, what, mask, at);
  t->wmask = mask;
  t->wfence = fence;
  t->wwhat = what;
  t->wsite = at;
  t->ctx.block->yield(State::wait_warp);
}
}  // namespace

void syncwarp(unsigned mask, const site& at) { warp_wait(tls_thread, "__syncwarp", mask, true, at); }

uint64_t warp_exchange(uint64_t value, int src, unsigned mask, const site& at) {
  Thread* t = tls_thread;
  ThreadCtx& c = t ? t->ctx : ctx();
  Block* b = c.block;
  b->exchange[c.linear] = value;
  warp_wait(t, "__shfl_sync", mask, false, at);  // everyone has published
  // Reading a lane outside the mask, exited or nonexistent is undefined on hardware: poison.
  uint64_t r = kPoison;
  if (src >= 0 && src < 32 && (mask >> src & 1u)) {
    unsigned i = c.warp * 32 + unsigned(src);
    if (i < b->threads.size() && b->threads[i].state != State::done) r = b->exchange[i];
  }
  warp_wait(t, "__shfl_sync", mask, false, at);  // everyone has read before the slots are reused
  return r;
}

unsigned warp_vote(bool pred, unsigned mask, unsigned* participants, const site& at) {
  Thread* t = tls_thread;
  ThreadCtx& c = t ? t->ctx : ctx();
  Block* b = c.block;
  b->exchange[c.linear] = pred ? 1 : 0;
  warp_wait(t, "__ballot_sync", mask, false, at);
  unsigned m = 0, part = 0;
  for (unsigned l = 0; l < 32; ++l) {
    unsigned i = c.warp * 32 + l;
    if (!(mask >> l & 1u) || i >= b->threads.size() || b->threads[i].state == State::done) continue;
    part |= 1u << l;
    if (b->exchange[i]) m |= 1u << l;
  }
  warp_wait(t, "__ballot_sync", mask, false, at);
  if (participants) *participants = part;
  return m;
}

unsigned warp_ballot(bool pred, unsigned mask, const site& at) { return warp_vote(pred, mask, nullptr, at); }

void warp_all_gather(const void* mine, size_t bytes, void* all) {
  ThreadCtx& c = ctx();
  Block* b = c.block;
  b->exchange[c.linear] = reinterpret_cast<uintptr_t>(mine);  // the fiber's stack outlives the barrier
  warp_wait(tls_thread, "mma.sync", full_mask, false, site::current());
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned i = c.warp * 32 + l;
    ADNN_CHECK(i < b->threads.size() && b->threads[i].state != State::done,
               "SIMT emulator: a warp-wide matrix instruction needs all 32 lanes, lane ", l, " of warp ", c.warp,
               " is not running");
    std::memcpy(static_cast<std::byte*>(all) + l * bytes, reinterpret_cast<const void*>(b->exchange[i]), bytes);
  }
  warp_wait(tls_thread, "mma.sync", full_mask, false, site::current());  // everyone has copied before the sources change
}

unsigned warp_live_mask() {
  ThreadCtx& c = ctx();
  return c.block->live_mask(c.warp);
}

void* block_shared(const void* key, size_t bytes, size_t align) {
  Block* b = ctx().block;
  for (auto& [k, off] : b->static_slots)
    if (k == key) return b->static_smem->data() + off;
  const size_t off = (b->static_used + align - 1) / align * align;
  ADNN_CHECK(off + bytes <= kStaticSharedBytes, "SIMT emulator: static shared memory of the block exceeds ",
             kStaticSharedBytes, " bytes");
  std::memset(b->static_smem->data() + off, 0xFF, bytes);  // poison: a read before a write is caught
  b->static_slots.push_back({key, off});
  b->static_used = off + bytes;
  return b->static_smem->data() + off;
}

namespace {
const char* base_name(const char* file) {
  const char* base = file;
  for (const char* q = file; *q; ++q)
    if (*q == '/') base = q + 1;
  return base;
}
std::string thread_name(const Block& b, unsigned linear) {
  const ThreadCtx& c = b.threads[linear].ctx;
  return detail::cat("thread (", c.thread_idx.x, ", ", c.thread_idx.y, ", ", c.thread_idx.z, ") [linear ", linear,
                     ", warp ", linear / 32, " lane ", linear % 32, "]");
}
// Is the recorded access (epoch, wsync, tid) unordered with respect to thread `tid` now?
inline bool unordered(const Block& b, uint32_t epoch, uint32_t wsync, unsigned rec_tid, unsigned tid) {
  if (rec_tid == tid || epoch != b.epoch) return false;
  if (rec_tid / 32 == tid / 32 && b.wsync[tid / 32] != wsync) return false;  // a __syncwarp in between
  return true;
}
[[noreturn]] void race(const Block& b, const Thread& t, const char* region, size_t off, size_t bytes, bool write,
                       const char* other_op, unsigned other) {
  const dim3& bi = t.ctx.block_idx;
  const bool same_warp = other / 32 == t.ctx.linear / 32;
  ADNN_FAIL("SIMT emulator: shared-memory race in kernel ", b.kernel, ", block (", bi.x, ", ", bi.y, ", ", bi.z,
            "): ", thread_name(b, t.ctx.linear), (write ? " writes " : " reads "), bytes, " bytes at ", region,
            " shared offset ", off, " that ", thread_name(b, other), " ", other_op,
            " in the same barrier epoch (no __syncthreads between them",
            same_warp ? ", nor a __syncwarp: same warp" : "", "); the accessing thread last waited at ",
            t.wsite.line() ? detail::cat(t.wwhat, " [", base_name(t.wsite.file_name()), ":", t.wsite.line(), "]")
                           : std::string("none (kernel start)"));
}
}  // namespace

void shared_access(const void* p, size_t bytes, bool write) {
  Thread* t = tls_thread;
  if (!t) return;
  Block& b = *t->ctx.block;
  const std::byte* a = static_cast<const std::byte*>(p);
  Shadow* sh;
  const char* region;
  size_t off;
  if (a >= b.sbase && a < b.sbase + kStaticSharedBytes) {
    off = size_t(a - b.sbase);
    sh = b.sshadow + off / 2;
    region = "static";
  } else if (b.dbase && a >= b.dbase && a < b.dbase + b.dcap) {
    off = size_t(a - b.dbase);
    ADNN_CHECK(off + bytes <= b.smem_bytes, "SIMT emulator: kernel ", b.kernel, ": ", thread_name(b, t->ctx.linear),
               (write ? " writes" : " reads"), " dynamic shared memory at byte offset ", off, ", past the ",
               b.smem_bytes, " bytes of the launch");
    sh = b.dshadow + off / 2;
    region = "dynamic";
  } else {
    return;  // not shared memory
  }
  const unsigned tid = t->ctx.linear;
  const uint32_t ws = b.wsync[tid / 32];
  if (unordered(b, sh->w_epoch, sh->w_wsync, sh->w_tid, tid))
    race(b, *t, region, off, bytes, write, "wrote", sh->w_tid);
  const unsigned warp = tid / 32;
  if (write) {
    if (sh->r_many ? sh->r_epoch == b.epoch && !(sh->r_warp == warp && sh->r_wsync != ws)
                   : unordered(b, sh->r_epoch, sh->r_wsync, sh->r_tid, tid))
      race(b, *t, region, off, bytes, write, sh->r_many ? "(and other threads) read" : "read", sh->r_tid);
    sh->w_epoch = b.epoch;
    sh->w_wsync = ws;
    sh->w_tid = uint16_t(tid);
  } else {
    if (sh->r_epoch != b.epoch || (sh->r_warp == warp && sh->r_wsync != ws)) {  // earlier readers are ordered
      sh->r_many = false;
      sh->r_warp = uint16_t(warp);
    } else if (sh->r_tid != tid) {
      sh->r_many = true;
      if (sh->r_warp != warp) sh->r_warp = 0xffff;
    }
    sh->r_epoch = b.epoch;
    sh->r_wsync = ws;
    sh->r_tid = uint16_t(tid);
  }
}

void shared_index_error(int64_t i, size_t n) {
  Thread* t = tls_thread;
  ADNN_FAIL("SIMT emulator: kernel ", t ? t->ctx.block->kernel : "<none>", ": static shared array index ", i,
            " out of bounds [0, ", n, ")", t ? detail::cat(" in ", thread_name(*t->ctx.block, t->ctx.linear)) : "");
}

void register_device_memory(const void* p, size_t bytes) {
  auto& d = device_ranges();
  std::unique_lock lock(d.mu);
  d.ranges[reinterpret_cast<uintptr_t>(p)] = bytes;
}
void unregister_device_memory(const void* p) {
  auto& d = device_ranges();
  std::unique_lock lock(d.mu);
  d.ranges.erase(reinterpret_cast<uintptr_t>(p));
}
bool is_device_memory(const void* p) {
  auto& d = device_ranges();
  std::shared_lock lock(d.mu);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = d.ranges.upper_bound(a);
  if (it == d.ranges.begin()) return false;
  --it;
  return a <= it->first + it->second;  // one past the end counts (an empty range's pointer)
}

void* dynamic_shared() {
  Block* b = ctx().block;
  return b->smem_bytes ? b->smem->data() : nullptr;
}
size_t dynamic_shared_bytes() { return ctx().block->smem_bytes; }

void set_seed(uint64_t seed) {  // the schedules after it depend on the seed alone, not on earlier launches
  g_seed = seed;
  g_seed_base = g_launches.load();
}
uint64_t launches() { return g_launches; }
uint64_t threads_run() { return g_threads; }

namespace {

ctxlib::pooled_fixedsize_stack& stack_pool() {
  thread_local ctxlib::pooled_fixedsize_stack pool(kStackBytes);
  return pool;
}

// A traced launch: the device ranges when it started and its blocks' sums.
struct LaunchTraceState {
  std::vector<std::pair<uintptr_t, uintptr_t>> global;
  std::mutex mu;
  trace_detail::LaunchTrace sum;
};

// Matches the block's lane logs into warp requests (src/sim/trace.cpp) and adds them to the launch.
void trace_block(Block& b, LaunchTraceState& lt) {
  TraceRegions regions;
  regions.static_begin = reinterpret_cast<uintptr_t>(b.sbase);
  regions.static_end = regions.static_begin + b.static_used;
  regions.dynamic_begin = reinterpret_cast<uintptr_t>(b.dbase);
  regions.dynamic_end = regions.dynamic_begin + b.smem_bytes;
  regions.global = &lt.global;
  TraceCounters c;
  std::vector<uint64_t> sectors;
  std::vector<const std::vector<TraceAccess>*> lanes(32);
  for (unsigned w = 0; w < b.nwarps; ++w) {
    for (unsigned l = 0; l < 32; ++l) {
      const unsigned i = w * 32 + l;
      lanes[l] = i < b.threads.size() ? &b.threads[i].log : nullptr;
    }
    analyze_warp(lanes, regions, c, sectors);
  }
  std::sort(sectors.begin(), sectors.end());
  sectors.erase(std::unique(sectors.begin(), sectors.end()), sectors.end());
  std::lock_guard lock(lt.mu);
  lt.sum.c += c;
  lt.sum.blocks += 1;
  lt.sum.threads += b.threads.size();
  lt.sum.static_smem = std::max(lt.sum.static_smem, b.static_used);
  lt.sum.sectors.insert(lt.sum.sectors.end(), sectors.begin(), sectors.end());
}

void run_block(const dim3& grid, const dim3& bdim, const dim3& bidx, size_t smem_bytes, uint64_t seed,
               const std::function<void()>& body, const char* kernel, LaunchTraceState* trace) {
  thread_local std::vector<std::byte> smem;
  thread_local std::vector<std::byte> static_smem(kStaticSharedBytes);
  thread_local std::vector<Shadow> static_shadow(kStaticSharedBytes / 2);
  thread_local std::vector<Shadow> dyn_shadow;
  // a guard past the launch's bytes: an access just past them lies in the buffer whatever an
  // earlier launch on this OS thread left it at, so it is reported every time
  constexpr size_t kDynamicGuard = 4096;
  if (smem.size() < smem_bytes + kDynamicGuard) smem.resize(smem_bytes + kDynamicGuard);
  if (dyn_shadow.size() < smem.size() / 2 + 1) dyn_shadow.resize(smem.size() / 2 + 1);
  // Poison dynamic shared memory: a read before any write sees NaN / -1 patterns.
  if (smem_bytes) std::memset(smem.data(), 0xFF, smem_bytes);
  const unsigned n = bdim.x * bdim.y * bdim.z;
  Block b;
  b.threads.resize(n);
  b.exchange.assign(n, 0);
  b.nwarps = (n + 31) / 32;
  b.smem = &smem;
  b.smem_bytes = smem_bytes;
  b.static_smem = &static_smem;
  b.kernel = kernel;
  b.epoch = ++tls_epoch;
  b.wsync.assign(b.nwarps, 0);
  b.sbase = static_smem.data();
  b.dbase = smem.data();
  b.dcap = smem.size();
  b.sshadow = static_shadow.data();
  b.dshadow = dyn_shadow.data();
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    t.ctx.thread_idx = dim3(i % bdim.x, (i / bdim.x) % bdim.y, i / (bdim.x * bdim.y));
    t.ctx.block_idx = bidx;
    t.ctx.block_dim = bdim;
    t.ctx.grid_dim = grid;
    t.ctx.linear = i;
    t.ctx.lane = i % 32;
    t.ctx.warp = i / 32;
    t.ctx.block = &b;
    t.tracing = trace != nullptr;
    Thread* tp = &t;
    Block* bp = &b;
    t.fiber = ctxlib::fiber(std::allocator_arg, stack_pool(), [tp, bp, &body](ctxlib::fiber&& sched) {
      tp->sched = std::move(sched);
      tls_thread = tp;
      tls_ctx = &tp->ctx;
      try {
        body();
      } catch (const ctxlib::detail::forced_unwind&) {
        throw;  // a fiber abandoned after a deadlock is being unwound
      } catch (...) {
        if (!bp->error) bp->error = std::current_exception();
      }
      tp->state = State::done;
      return std::move(tp->sched);
    });
  }
  // Scheduler. One warp at a time is "current": a random runnable thread of it is resumed
  // until it blocks or exits, and the current warp changes when it cannot run or at random.
  // Each block draws one of three policies: run a warp until it blocks (warps drift as far
  // apart as the barriers allow), switch warps rarely (1 resume in 512), or pick a random
  // warp for every resume (fine interleaving). Lanes of a warp always interleave in random
  // order. A missing __syncthreads or __syncwarp then lets some thread read stale shared
  // memory. A barrier is released the moment its last live participant arrives.
  uint64_t rng = seed;
  auto rand_below = [&](size_t k) {
    rng = mix(rng);
    return size_t(rng % k);
  };
  std::vector<std::vector<unsigned>> runq(b.nwarps);
  std::vector<unsigned> livebits(b.nwarps, 0), waitbits(b.nwarps, 0);
  for (unsigned i = 0; i < n; ++i) {
    runq[i / 32].push_back(i);
    livebits[i / 32] |= 1u << (i % 32);
  }
  unsigned live = n, block_waiting = 0, nrunnable = n;
  auto make_runnable = [&](unsigned i) {
    b.threads[i].state = State::runnable;
    runq[i / 32].push_back(i);
    ++nrunnable;
  };
  // Releases each group of warp w's waiting lanes whose mask's live lanes all wait with that mask.
  auto release_warp = [&](unsigned w) {
    unsigned cand = waitbits[w];
    while (cand) {
      const unsigned l = unsigned(__builtin_ctz(cand));
      const unsigned m = b.threads[w * 32 + l].wmask;
      cand &= ~m;
      const unsigned need = m & livebits[w];
      if (need & ~waitbits[w]) continue;
      bool same = true, fence = false;
      for (unsigned r = need; r; r &= r - 1) {
        const Thread& o = b.threads[w * 32 + unsigned(__builtin_ctz(r))];
        same = same && o.wmask == m;
        fence = fence || o.wfence;
      }
      if (!same) continue;
      for (unsigned r = need; r; r &= r - 1) make_runnable(w * 32 + unsigned(__builtin_ctz(r)));
      waitbits[w] &= ~need;
      if (fence) ++b.wsync[w];
    }
  };
  const size_t policy = rand_below(3);
  const size_t switch_every = policy == 0 ? 0 : policy == 1 ? 512 : 1;
  unsigned cur = unsigned(rand_below(b.nwarps));
  while (live > 0) {
    if (nrunnable == 0) {
      std::string where;
      {
        struct Group {
          const char* what;
          site at;
          unsigned mask, count, first;
        };
        std::vector<Group> groups;
        for (unsigned k = 0; k < n; ++k) {
          const Thread& t = b.threads[k];
          if (t.state == State::done) continue;
          const unsigned m = t.state == State::wait_warp ? t.wmask : 0;
          auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
            return x.what == t.wwhat && x.at.line() == t.wsite.line() && x.mask == m &&
                   std::strcmp(x.at.file_name(), t.wsite.file_name()) == 0;
          });
          if (g == groups.end())
            groups.push_back({t.wwhat, t.wsite, m, 1, k});
          else
            ++g->count;
        }
        for (size_t gi = 0; gi < groups.size() && gi < 6; ++gi) {
          const Group& g = groups[gi];
          where += detail::cat("; ", g.count, " thread(s) from ", thread_name(b, g.first), " wait at ", g.what);
          if (g.mask) where += detail::cat(" (mask 0x", std::hex, g.mask, std::dec, ")");
          where += detail::cat(" [", base_name(g.at.file_name()), ":", g.at.line(), "]");
        }
      }
      for (auto& t : b.threads) t.state = State::done;  // abandon the fibers (stacks unwound below)
      if (b.error) std::rethrow_exception(b.error);
      ADNN_FAIL("SIMT emulator: deadlock in block (", bidx.x, ", ", bidx.y, ", ", bidx.z, ") of kernel ", kernel,
                ": threads wait at different barriers (__syncthreads inside divergent code, a warp op whose "
                "mask names a lane that waits elsewhere, or a warp op while other lanes of the warp wait at "
                "__syncthreads)",
                where);
    }
    if (runq[cur].empty() || (switch_every && rand_below(switch_every) == 0)) {
      do cur = unsigned(rand_below(b.nwarps));
      while (runq[cur].empty());
    }
    auto& q = runq[cur];
    size_t pick = rand_below(q.size());
    unsigned i = q[pick];
    q[pick] = q.back();
    q.pop_back();
    --nrunnable;
    Thread& t = b.threads[i];
    tls_thread = &t;
    tls_ctx = &t.ctx;
    t.fiber = std::move(t.fiber).resume();
    tls_thread = nullptr;
    tls_ctx = nullptr;
    const unsigned w = i / 32;
    switch (t.state) {
      case State::done:
        --live;
        livebits[w] &= ~(1u << (i % 32));
        release_warp(w);  // a group may have waited only for this lane
        break;
      case State::wait_warp:
        waitbits[w] |= 1u << (i % 32);
        release_warp(w);
        break;
      case State::wait_block: ++block_waiting; break;
      case State::runnable: make_runnable(i); break;
    }
    if (live > 0 && block_waiting == live) {
      for (unsigned k = 0; k < n; ++k)
        if (b.threads[k].state == State::wait_block) make_runnable(k);
      block_waiting = 0;
      b.epoch = ++tls_epoch;  // a new barrier epoch for the race checker
    }
  }
  g_threads += n;
  if (b.error) std::rethrow_exception(b.error);
  if (trace) trace_block(b, *trace);
}

}  // namespace

void launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body, const char* kernel) {
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  ADNN_CHECK(nthreads >= 1 && nthreads <= 1024 && block.z <= 64, "kernel launch: invalid block (", block.x, ", ",
             block.y, ", ", block.z, "): at most 1024 threads and z <= 64");
  ADNN_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= 65535 && grid.z <= 65535,
             "kernel launch: invalid grid (", grid.x, ", ", grid.y, ", ", grid.z, ")");
  ADNN_CHECK(shared_bytes <= 227 * 1024, "kernel launch: ", shared_bytes,
             " bytes of dynamic shared memory exceed the 227 KiB a block can have");
  ADNN_CHECK(tls_ctx == nullptr, "kernel launch: a kernel cannot launch another kernel in the emulator");
  device_access open_device_memory;  // device memory for this thread (see device_memory.cpp)
  const uint64_t launch_id = g_launches++;
  const uint64_t seed = mix(g_seed.load() ^ mix(launch_id - g_seed_base.load()));
  const int64_t nblocks = int64_t(grid.x) * grid.y * grid.z;
  std::unique_ptr<LaunchTraceState> trace;
  if (trace_detail::trace_on.load(std::memory_order_relaxed)) {
    trace = std::make_unique<LaunchTraceState>();
    auto& d = device_ranges();
    std::shared_lock lock(d.mu);
    for (const auto& [p, bytes] : d.ranges) trace->global.push_back({p, p + bytes});
    trace->sum.kernel = kernel;
    trace->sum.block_threads = unsigned(nthreads);
    trace->sum.dynamic_smem = shared_bytes;
  }
  std::exception_ptr err;
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1) if (nblocks > 1)
  for (int64_t bi = 0; bi < nblocks; ++bi) {
    if (failed.load(std::memory_order_relaxed)) continue;
    dim3 bidx(unsigned(bi % grid.x), unsigned((bi / grid.x) % grid.y), unsigned(bi / (int64_t(grid.x) * grid.y)));
    try {
      device_access worker;  // and for the OpenMP thread running this block
      run_block(grid, block, bidx, shared_bytes, mix(seed ^ uint64_t(bi)), body, kernel, trace.get());
    } catch (...) {
#pragma omp critical(adnn_sim_error)
      if (!err) err = std::current_exception();
      failed = true;
    }
  }
  if (err) std::rethrow_exception(err);
  if (trace) trace_detail::trace_record_launch(trace->sum);
}

}  // namespace adnn::sim

#if ADNN_SIM_TRACE
// The access hooks GCC's -fsanitize=thread instrumentation calls from the instrumented kernel
// translation units (CMakeLists.txt: ADNN_SIM_TRACE_FLAGS). No ThreadSanitizer runtime is
// linked: these definitions are the whole "runtime". This file is not instrumented. Without
// a trace each hook is one relaxed load; accesses outside an emulated kernel thread (the
// launching code) are ignored. ThreadSanitizer's pass is used rather than kernel-address
// (which the trace used until 2026-12-01) because it instruments every access: the
// kernel-address pass skips a store to an address it has just checked a load of in the same
// basic block, so the store of x[i] = f(x[i]) went unseen (tests/test_trace.cpp).
namespace {
[[gnu::always_inline]] inline void trace_access(const void* p, size_t bytes, bool write, void* pc) {
  using namespace adnn::sim;
  if (!trace_detail::trace_on.load(std::memory_order_relaxed)) [[likely]]
    return;
  Thread* t = tls_thread;
  if (!t || !t->tracing) return;
  t->log.push_back(TraceAccess{reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(pc), t->seg,
                               uint16_t(bytes > 0xffff ? 0xffff : bytes), uint8_t(write)});
}
// An atomic read-modify-write is a load and a store of the same instruction; the store is
// keyed one byte after it (pc + 1): a lane's executions of one instruction are counted per
// code address (the k-th execution of each lane is one request), so the store must not count
// as a second execution of the load. 16-byte atomics (__tsan_atomic128_*) have no hooks: a
// kernel using one would fail to link in this build, loudly.
[[gnu::always_inline]] inline void trace_rmw(const volatile void* p, size_t bytes, void* pc) {
  trace_access(const_cast<const void*>(p), bytes, false, pc);
  trace_access(const_cast<const void*>(p), bytes, true, static_cast<char*>(pc) + 1);
}
}  // namespace

#define ADNN_TRACE_HOOK extern "C" [[gnu::visibility("default")]]
#define ADNN_TRACE_HOOKS(n)                                 \
  ADNN_TRACE_HOOK void __tsan_read##n(void* p) {            \
    trace_access(p, n, false, __builtin_return_address(0)); \
  }                                                         \
  ADNN_TRACE_HOOK void __tsan_write##n(void* p) {           \
    trace_access(p, n, true, __builtin_return_address(0));  \
  }                                                         \
  ADNN_TRACE_HOOK void __tsan_unaligned_read##n(void* p) {  \
    trace_access(p, n, false, __builtin_return_address(0)); \
  }                                                         \
  ADNN_TRACE_HOOK void __tsan_unaligned_write##n(void* p) { \
    trace_access(p, n, true, __builtin_return_address(0));  \
  }
ADNN_TRACE_HOOKS(1)
ADNN_TRACE_HOOKS(2)
ADNN_TRACE_HOOKS(4)
ADNN_TRACE_HOOKS(8)
ADNN_TRACE_HOOKS(16)
#undef ADNN_TRACE_HOOKS
ADNN_TRACE_HOOK void __tsan_read_range(void* p, size_t n) {
  trace_access(p, n, false, __builtin_return_address(0));
}
ADNN_TRACE_HOOK void __tsan_write_range(void* p, size_t n) {
  trace_access(p, n, true, __builtin_return_address(0));
}
// a polymorphic object's vtable pointer being set (a constructor): a store of 8 bytes
ADNN_TRACE_HOOK void __tsan_vptr_update(void** p, void*) {
  trace_access(p, sizeof(void*), true, __builtin_return_address(0));
}
ADNN_TRACE_HOOK void __tsan_vptr_read(void** p) {
  trace_access(p, sizeof(void*), false, __builtin_return_address(0));
}
// the instrumented units' constructors call it; func entry/exit hooks are off
// (--param=tsan-instrument-func-entry-exit=0)
ADNN_TRACE_HOOK void __tsan_init() {}

// Atomics (std::atomic_ref in kernels/common.cuh's atomicAdd, ...): the pass replaces each
// __atomic builtin by a call that must perform it. Their int arguments are memory orders
// (the __ATOMIC_* numbering), ignored: the operations below are sequentially consistent,
// at least as strong as any order asked for.
// One read-modify-write hook: __tsan_atomicBITS_NAME performs BUILTIN (a load and a store).
#define ADNN_TRACE_RMW(bits, T, name, builtin)                              \
  ADNN_TRACE_HOOK T __tsan_atomic##bits##_##name(volatile T* a, T v, int) { \
    trace_rmw(a, sizeof(T), __builtin_return_address(0));                   \
    return builtin(a, v, __ATOMIC_SEQ_CST);                                 \
  }
// Compare-and-swap: strong and weak give 1 on success and, on failure, *expected the value seen.
#define ADNN_TRACE_CAS(bits, T, name)                                                              \
  ADNN_TRACE_HOOK int __tsan_atomic##bits##_##name(volatile T* a, T* expected, T v, int, int) {    \
    trace_rmw(a, sizeof(T), __builtin_return_address(0));                                          \
    return __atomic_compare_exchange_n(a, expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
  }
#define ADNN_TRACE_ATOMICS(bits, T)                                                                        \
  ADNN_TRACE_HOOK T __tsan_atomic##bits##_load(const volatile T* a, int) {                                 \
    trace_access(const_cast<const T*>(a), sizeof(T), false, __builtin_return_address(0));                  \
    return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                           \
  }                                                                                                        \
  ADNN_TRACE_HOOK void __tsan_atomic##bits##_store(volatile T* a, T v, int) {                              \
    trace_access(const_cast<const T*>(a), sizeof(T), true, __builtin_return_address(0));                   \
    __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                              \
  }                                                                                                        \
  ADNN_TRACE_RMW(bits, T, exchange, __atomic_exchange_n)                                                   \
  ADNN_TRACE_RMW(bits, T, fetch_add, __atomic_fetch_add)                                                   \
  ADNN_TRACE_RMW(bits, T, fetch_sub, __atomic_fetch_sub)                                                   \
  ADNN_TRACE_RMW(bits, T, fetch_and, __atomic_fetch_and)                                                   \
  ADNN_TRACE_RMW(bits, T, fetch_or, __atomic_fetch_or)                                                     \
  ADNN_TRACE_RMW(bits, T, fetch_xor, __atomic_fetch_xor)                                                   \
  ADNN_TRACE_RMW(bits, T, fetch_nand, __atomic_fetch_nand)                                                 \
  ADNN_TRACE_CAS(bits, T, compare_exchange_strong)                                                         \
  ADNN_TRACE_CAS(bits, T, compare_exchange_weak)                                                           \
  /* returns the value seen */                                                                             \
  ADNN_TRACE_HOOK T __tsan_atomic##bits##_compare_exchange_val(volatile T* a, T expected, T v, int, int) { \
    trace_rmw(a, sizeof(T), __builtin_return_address(0));                                                  \
    __atomic_compare_exchange_n(a, &expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);               \
    return expected;                                                                                       \
  }
ADNN_TRACE_ATOMICS(8, uint8_t)
ADNN_TRACE_ATOMICS(16, uint16_t)
ADNN_TRACE_ATOMICS(32, uint32_t)
ADNN_TRACE_ATOMICS(64, uint64_t)
#undef ADNN_TRACE_ATOMICS
#undef ADNN_TRACE_CAS
#undef ADNN_TRACE_RMW
ADNN_TRACE_HOOK void __tsan_atomic_thread_fence(int) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
ADNN_TRACE_HOOK void __tsan_atomic_signal_fence(int) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
#undef ADNN_TRACE_HOOK
#endif
