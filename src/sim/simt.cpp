// The SIMT emulator: fibers, barriers, warp exchange and the block scheduler.
#include "sim/simt.hpp"

#include <adnn/core/error.hpp>
#include <omp.h>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <boost/context/pooled_fixedsize_stack.hpp>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <shared_mutex>
#include <vector>

namespace ctxlib = boost::context;

namespace adnn::sim {

namespace {

enum class State : uint8_t { runnable, wait_block, wait_warp, done };

struct Thread {
  ctxlib::fiber fiber;  // the thread's own continuation (held by the scheduler)
  ctxlib::fiber sched;  // the scheduler's continuation (held while the thread runs)
  State state = State::runnable;
  ThreadCtx ctx;
};

std::atomic<uint64_t> g_seed{0x51a7u};
std::atomic<uint64_t> g_launches{0};
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

  void yield(State s) {
    Thread* t = tls_thread;
    t->state = s;
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

void syncthreads() { ctx().block->yield(State::wait_block); }
void syncwarp() { ctx().block->yield(State::wait_warp); }

uint64_t warp_exchange(uint64_t value, int src) {
  ThreadCtx& c = ctx();
  Block* b = c.block;
  b->exchange[c.linear] = value;
  b->yield(State::wait_warp);  // everyone has published
  // Reading a lane that has exited (or does not exist) is undefined on hardware: poison.
  uint64_t r = kPoison;
  if (src >= 0 && src < 32) {
    unsigned i = c.warp * 32 + unsigned(src);
    if (i < b->threads.size() && b->threads[i].state != State::done) r = b->exchange[i];
  }
  b->yield(State::wait_warp);  // everyone has read before the slots are reused
  return r;
}

unsigned warp_ballot(bool pred) {
  ThreadCtx& c = ctx();
  Block* b = c.block;
  b->exchange[c.linear] = pred ? 1 : 0;
  b->yield(State::wait_warp);
  unsigned m = 0;
  for (unsigned l = 0; l < 32; ++l) {
    unsigned i = c.warp * 32 + l;
    if (i < b->threads.size() && b->threads[i].state != State::done && b->exchange[i]) m |= 1u << l;
  }
  b->yield(State::wait_warp);
  return m;
}

void warp_all_gather(const void* mine, size_t bytes, void* all) {
  ThreadCtx& c = ctx();
  Block* b = c.block;
  b->exchange[c.linear] = reinterpret_cast<uintptr_t>(mine);  // the fiber's stack outlives the barrier
  b->yield(State::wait_warp);
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned i = c.warp * 32 + l;
    ADNN_CHECK(i < b->threads.size() && b->threads[i].state != State::done,
               "SIMT emulator: a warp-wide matrix instruction needs all 32 lanes, lane ", l, " of warp ", c.warp,
               " is not running");
    std::memcpy(static_cast<std::byte*>(all) + l * bytes, reinterpret_cast<const void*>(b->exchange[i]), bytes);
  }
  b->yield(State::wait_warp);  // everyone has copied before the sources change
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

void set_seed(uint64_t seed) { g_seed = seed; }
uint64_t launches() { return g_launches; }
uint64_t threads_run() { return g_threads; }

namespace {

ctxlib::pooled_fixedsize_stack& stack_pool() {
  thread_local ctxlib::pooled_fixedsize_stack pool(kStackBytes);
  return pool;
}

void run_block(const dim3& grid, const dim3& bdim, const dim3& bidx, size_t smem_bytes, uint64_t seed,
               const std::function<void()>& body) {
  thread_local std::vector<std::byte> smem;
  thread_local std::vector<std::byte> static_smem(kStaticSharedBytes);
  if (smem.size() < smem_bytes) smem.resize(smem_bytes);
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
  std::vector<unsigned> warp_live(b.nwarps, 0), warp_waiting(b.nwarps, 0);
  for (unsigned i = 0; i < n; ++i) {
    runq[i / 32].push_back(i);
    warp_live[i / 32]++;
  }
  unsigned live = n, block_waiting = 0, nrunnable = n;
  auto make_runnable = [&](unsigned i) {
    b.threads[i].state = State::runnable;
    runq[i / 32].push_back(i);
    ++nrunnable;
  };
  const size_t policy = rand_below(3);
  const size_t switch_every = policy == 0 ? 0 : policy == 1 ? 512 : 1;
  unsigned cur = unsigned(rand_below(b.nwarps));
  while (live > 0) {
    if (nrunnable == 0) {
      for (auto& t : b.threads) t.state = State::done;  // abandon the fibers (stacks unwound below)
      if (b.error) std::rethrow_exception(b.error);
      ADNN_FAIL("SIMT emulator: deadlock in block (", bidx.x, ", ", bidx.y, ", ", bidx.z,
                "): threads wait at different barriers (__syncthreads inside divergent code, or a warp "
                "op while other lanes of the warp wait at __syncthreads)");
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
        --warp_live[w];
        break;
      case State::wait_warp: ++warp_waiting[w]; break;
      case State::wait_block: ++block_waiting; break;
      case State::runnable: make_runnable(i); break;
    }
    if (warp_live[w] > 0 && warp_waiting[w] == warp_live[w]) {
      for (unsigned l = 0; l < 32 && w * 32 + l < n; ++l)
        if (b.threads[w * 32 + l].state == State::wait_warp) make_runnable(w * 32 + l);
      warp_waiting[w] = 0;
    }
    if (live > 0 && block_waiting == live) {
      for (unsigned k = 0; k < n; ++k)
        if (b.threads[k].state == State::wait_block) make_runnable(k);
      block_waiting = 0;
    }
  }
  g_threads += n;
  if (b.error) std::rethrow_exception(b.error);
}

}  // namespace

void launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body) {
  const uint64_t nthreads = uint64_t(block.x) * block.y * block.z;
  ADNN_CHECK(nthreads >= 1 && nthreads <= 1024 && block.z <= 64, "kernel launch: invalid block (", block.x, ", ",
             block.y, ", ", block.z, "): at most 1024 threads and z <= 64");
  ADNN_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= 65535 && grid.z <= 65535,
             "kernel launch: invalid grid (", grid.x, ", ", grid.y, ", ", grid.z, ")");
  ADNN_CHECK(shared_bytes <= 227 * 1024, "kernel launch: ", shared_bytes,
             " bytes of dynamic shared memory exceed the 227 KiB a block can have");
  ADNN_CHECK(tls_ctx == nullptr, "kernel launch: a kernel cannot launch another kernel in the emulator");
  const uint64_t launch_id = g_launches++;
  const uint64_t seed = mix(g_seed.load() ^ mix(launch_id));
  const int64_t nblocks = int64_t(grid.x) * grid.y * grid.z;
  std::exception_ptr err;
  std::atomic<bool> failed{false};
#pragma omp parallel for schedule(dynamic, 1) if (nblocks > 1)
  for (int64_t bi = 0; bi < nblocks; ++bi) {
    if (failed.load(std::memory_order_relaxed)) continue;
    dim3 bidx(unsigned(bi % grid.x), unsigned((bi / grid.x) % grid.y), unsigned(bi / (int64_t(grid.x) * grid.y)));
    try {
      run_block(grid, block, bidx, shared_bytes, mix(seed ^ uint64_t(bi)), body);
    } catch (...) {
#pragma omp critical(adnn_sim_error)
      if (!err) err = std::current_exception();
      failed = true;
    }
  }
  if (err) std::rethrow_exception(err);
}

}  // namespace adnn::sim
