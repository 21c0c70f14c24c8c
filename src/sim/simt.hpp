#pragma once
// SIMT emulation of the CUDA execution model on the host (ADNN_CUDA_EMULATION).
//
// Every CUDA thread of a block is a fiber (Boost.Context); a block's fibers run
// cooperatively on one OS thread, blocks are spread over OpenMP threads. A fiber runs until
// it reaches a barrier (__syncthreads, a warp-synchronous op) or exits; the scheduler then
// releases a barrier once every live thread it covers has arrived. The order in which
// runnable threads are resumed is shuffled from a seed, so a kernel that forgets a barrier
// reads stale shared memory and gives a wrong answer in a test.
//
// Kernel code sees threadIdx/blockIdx/blockDim/gridDim, __shared__ (static thread_local
// storage: one block at a time per OS thread), dynamic shared memory, warp shuffles,
// votes, atomics and the fast-math intrinsics through kernels/common.cuh.
//
// Rules the emulator enforces (each violation throws adnn::Error naming the kernel and, where
// a barrier or warp op is involved, its file:line):
//  - Warp ops (__shfl*_sync, __ballot_sync, __any/__all_sync, __syncwarp) take a lane mask.
//    They wait for exactly the lanes of the mask, as on sm_70+: lanes outside it run on; a
//    lane of the mask that has exited does not take part (CUDA: "all non-exited threads named
//    in mask must execute the same intrinsic"); a lane of the mask that waits elsewhere (a
//    different barrier, a different mask) leaves the block deadlocked, which is reported
//    with every waiting thread and where it waits. A mask without the calling lane is an
//    error. A shuffle from a lane outside the mask, or exited, reads poison (all one bits).
//  - Shared memory race checker (on unless ADNN_SIM_RACECHECK=0, or set_racecheck(false)):
//    every access to static (ADNN_SHARED) or dynamic (ADNN_DYNAMIC_SHARED) shared memory goes
//    through a checked pointer (sptr / sref / shared_array below) that records, per 2-byte
//    granule (keyed by the first byte of the access), the last writer and the last reader
//    with their barrier epoch. An access is a race when another thread wrote the granule
//    (read-after-write, write-after-write) or read it (write-after-read, last reader only) in
//    the same epoch: no __syncthreads between them, and, for two lanes of one warp, no
//    __syncwarp either. Shuffles and votes are not fences. Atomics are not recorded. The
//    verdict does not depend on the thread order, so a missing barrier is found on every run.
//    Limits: one access type per location (mixed-width aliasing is keyed by first byte
//    only); __syncwarp(mask) orders all lanes of the warp in the checker (a possible miss,
//    never a false report); WAR is checked against the last reader only.
//    Accesses past the end of a static array or of the launch's dynamic shared bytes throw.
//  - Device memory and the host: every pointer argument of a launch must be device memory (a
//    host pointer throws, naming the kernel and argument); and host code that dereferences
//    device memory outside device work faults (SIGSEGV, reported with the address and the
//    host backtrace), as on a GPU: see "Device memory" below and src/sim/device_memory.cpp.
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <source_location>
#include <string>
#include <type_traits>

namespace adnn::sim {

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

class Block;

// What kernel code of the running thread can see.
struct ThreadCtx {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
  unsigned linear = 0;  // x + y*bx + z*bx*by
  unsigned lane = 0, warp = 0;
  Block* block = nullptr;
};

ThreadCtx& ctx();
using site = std::source_location;
constexpr unsigned full_mask = 0xffffffffu;
void syncthreads(const site& at = site::current());
// Makes the __syncthreads() at file:line do nothing, as if it were deleted from the source;
// the first call dropped is announced on stderr. file is a path suffix such as
// "kernels/norm.cuh"; an empty file: none. Returns the previous setting. The environment
// variable ADNN_SIM_DROP_BARRIER=<file>:<line> sets it for a whole process:
// scripts/check-barriers.sh shows with it, on one build, that every barrier of every kernel is
// needed. Call only while no kernel runs.
struct barrier_site {
  std::string file;
  unsigned line = 0;
};
barrier_site drop_barrier(barrier_site at);
// How many __syncthreads() calls were dropped since the drop was set.
uint64_t dropped_barriers();
void syncwarp(unsigned mask = full_mask, const site& at = site::current());
// Warp exchange: every lane of `mask` (which must hold the calling lane) publishes `value`
// and receives the value published by lane `src`; poison (all one bits) when src is not a
// lane of the mask, has exited or does not exist.
uint64_t warp_exchange(uint64_t value, int src, unsigned mask = full_mask, const site& at = site::current());
// Warp vote: bitmask of the lanes of `mask` that take part (not exited) and whose predicate is true.
unsigned warp_ballot(bool pred, unsigned mask = full_mask, const site& at = site::current());
// Lanes of `mask` that take part in a vote (not exited), after the same wait as warp_ballot.
unsigned warp_vote(bool pred, unsigned mask, unsigned* participants, const site& at = site::current());
unsigned warp_live_mask();
// Warp all-gather: every lane of the calling warp publishes `bytes` at `mine`; afterwards
// `all` holds lane 0's bytes, then lane 1's, ... (32 × bytes). Needs all 32 lanes live (the
// tensor-core instructions it serves are warp-wide); throws adnn::Error otherwise.
void warp_all_gather(const void* mine, size_t bytes, void* all);
void* dynamic_shared();
size_t dynamic_shared_bytes();

// Runs body() as every thread of grid x block. Throws adnn::Error on a deadlocked barrier
// or a bad configuration; rethrows an exception raised by a thread.
// `kernel` names the kernel in error messages.
void launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body,
            const char* kernel = "<kernel>");

// Static shared memory of the running block (ADNN_SHARED in kernels/common.cuh): the storage
// of the declaration identified by `key` (a static object at the declaration site), allocated
// in the block's shared arena the first time any thread of the block reaches it and filled
// with 0xFF bytes (NaN for floats, -1 for integers), so reading it before a write is caught.
void* block_shared(const void* key, size_t bytes, size_t align);
template <class T>
T* block_shared(const void* key) {
  return static_cast<T*>(block_shared(key, sizeof(T), alignof(T)));
}

// Device memory: the emulated device's allocations as address ranges (the runtime registers
// each one). Every pointer argument of a launch must lie in one, as on a GPU a host pointer
// would fault: kernels/common.cuh's launch checks them.
void register_device_memory(const void* p, size_t bytes);
void unregister_device_memory(const void* p);
bool is_device_memory(const void* p);

// The runtime's device allocations (src/sim/device_memory.cpp): one reserved arena, registered
// as above, tagged with a memory protection key that denies every thread except while it runs
// device work, so that host code dereferencing a device pointer faults here as it would on a
// GPU (the SIGSEGV handler names the address and prints the host backtrace). Device work runs
// inside a device_access scope, per thread and nestable: kernel launches (and each worker's
// blocks), the runtime's copies, memsets, library calls and graph replays. Without protection
// keys, or with ADNN_SIM_HOST_GUARD=0, the arena is open to all. Returns nullptr when the arena
// is exhausted.
// Every allocation is followed by an inaccessible guard page: an access past its end (beyond
// its last page) faults, and the handler names the allocation. device_arena_guarded: p, an
// allocation's start, has its guard page (false outside the arena, or where the system refused
// the mapping split).
void* device_arena_alloc(size_t bytes);
void device_arena_free(void* p);
bool device_arena_guarded(const void* p);
bool host_guard_on();
// The guard's SIGSEGV handler is installed with the arena; a handler installed later (a test
// framework's crash handler, a crash reporter) takes the fault first, so the process still dies
// at the bad access but without the guard's message. This puts the guard's handler back in
// front (the replaced one is called after its report, and for every other fault).
void install_host_guard_handler();
class device_access {
 public:
  device_access();
  ~device_access();
  device_access(const device_access&) = delete;
  device_access& operator=(const device_access&) = delete;
};

// An allocator whose memory is registered as emulated device memory: kernel-level tests and
// benchmarks keep their buffers in std::vector<T, device_allocator<T>>.
template <class T>
struct device_allocator {
  using value_type = T;
  device_allocator() = default;
  template <class U>
  device_allocator(const device_allocator<U>&) {}
  T* allocate(size_t n) {
    T* p = std::allocator<T>().allocate(n ? n : 1);
    register_device_memory(p, (n ? n : 1) * sizeof(T));
    return p;
  }
  void deallocate(T* p, size_t n) {
    unregister_device_memory(p);
    std::allocator<T>().deallocate(p, n ? n : 1);
  }
  template <class U>
  bool operator==(const device_allocator<U>&) const { return true; }
};

// Seed of the thread-order shuffle; each launch derives per-block streams from it.
void set_seed(uint64_t seed);
uint64_t launches();
// Number of emulated threads run so far (for cost measurements).
uint64_t threads_run();

// ---- shared-memory race checker
// On by default; ADNN_SIM_RACECHECK=0 in the environment turns it off at start-up.
inline bool racecheck_on = [] {
  const char* e = std::getenv("ADNN_SIM_RACECHECK");
  return !(e && e[0] == '0');
}();
inline void set_racecheck(bool on) { racecheck_on = on; }
// Records one access of `bytes` at p by the running thread; throws on a race or an access
// past the end of dynamic shared memory. Addresses outside shared memory are ignored.
void shared_access(const void* p, size_t bytes, bool write);

template <class T>
class sptr;

// A reference to one element of shared memory: reads and writes are recorded.
template <class T>
class sref {
 public:
  using value_type = std::remove_cv_t<T>;
  explicit sref(T* p) : p_(p) {}
  sref(const sref&) = default;
  operator value_type() const {
    if (racecheck_on) shared_access(p_, sizeof(T), false);
    return *p_;
  }
  // explicit conversions through T (float(s[i]) for a half s)
  template <class U>
    requires(!std::is_same_v<U, value_type> && std::is_constructible_v<U, value_type>)
  explicit operator U() const {
    return U(value_type(*this));
  }
  value_type get() const { return value_type(*this); }
  sref& operator=(const value_type& v)
    requires(!std::is_const_v<T>)
  {
    if (racecheck_on) shared_access(p_, sizeof(T), true);
    *p_ = v;
    return *this;
  }
  sref& operator=(const sref& o) { return *this = o.get(); }
  template <class U>
  sref& operator+=(const U& v) { value_type t = get(); t += v; return *this = t; }
  template <class U>
  sref& operator-=(const U& v) { value_type t = get(); t -= v; return *this = t; }
  template <class U>
  sref& operator*=(const U& v) { value_type t = get(); t *= v; return *this = t; }
  template <class U>
  sref& operator/=(const U& v) { value_type t = get(); t /= v; return *this = t; }
  template <class U>
  sref& operator|=(const U& v) { value_type t = get(); t |= v; return *this = t; }
  template <class U>
  sref& operator&=(const U& v) { value_type t = get(); t &= v; return *this = t; }
  sref& operator++() { value_type t = get(); ++t; return *this = t; }
  sref& operator--() { value_type t = get(); --t; return *this = t; }
  sptr<T> operator&() const { return sptr<T>(p_); }
  T* raw() const { return p_; }

 private:
  T* p_;
};

// A pointer into shared memory (what ADNN_DYNAMIC_SHARED declares and ADNN_SHARED_PTR(T) names
// in emulation): pointer arithmetic as T*, dereference through sref.
template <class T>
class sptr {
 public:
  sptr() = default;
  sptr(std::nullptr_t) {}
  explicit sptr(T* p) : p_(p) {}
  template <class U>
    requires(std::is_convertible_v<U*, T*> && !std::is_same_v<U, T>)
  sptr(sptr<U> o) : p_(o.raw()) {}
  sref<T> operator*() const { return sref<T>(p_); }
  sref<T> operator[](int64_t i) const { return sref<T>(p_ + i); }
  sptr operator+(int64_t i) const { return sptr(p_ + i); }
  friend sptr operator+(int64_t i, sptr p) { return sptr(p.p_ + i); }
  sptr operator-(int64_t i) const { return sptr(p_ - i); }
  ptrdiff_t operator-(sptr o) const { return p_ - o.p_; }
  sptr& operator+=(int64_t i) { p_ += i; return *this; }
  sptr& operator-=(int64_t i) { p_ -= i; return *this; }
  sptr& operator++() { ++p_; return *this; }
  sptr& operator--() { --p_; return *this; }
  sptr operator++(int) { sptr r = *this; ++p_; return r; }
  bool operator==(const sptr&) const = default;
  auto operator<=>(const sptr&) const = default;
  explicit operator bool() const { return p_ != nullptr; }
  T* raw() const { return p_; }

 private:
  T* p_ = nullptr;
};

// ADNN_SHARED_PTR(T) in emulation: sptr<T> in a non-deduced context, so that a helper's T comes
// from its other arguments and a shared_array or sptr<U> converts to the parameter.
template <class T>
using shared_ptr_t = typename std::type_identity<sptr<T>>::type;

// Reinterprets a shared pointer (ADNN_SHARED_CAST): the result is checked as well.
template <class U, class T>
sptr<U> shared_cast(sptr<T> p) {
  return sptr<U>(reinterpret_cast<U*>(p.raw()));
}

[[noreturn]] void shared_index_error(int64_t i, size_t n);

// A static shared array (what ADNN_SHARED declares in emulation): A is T[N] or T[N][M]...;
// indexing is bounds-checked and yields sref<T> for the last dimension.
template <class A>
class shared_array;
template <class E, size_t N>
class shared_array<E[N]> {
 public:
  explicit shared_array(E* first) : p_(first) {}
  auto operator[](int64_t i) const {
    if (uint64_t(i) >= N) shared_index_error(i, N);
    if constexpr (std::is_array_v<E>)
      return shared_array<E>(&p_[i][0]);
    else
      return sref<E>(p_ + i);
  }
  template <class Q>
    requires(!std::is_array_v<E> && std::is_convertible_v<E*, Q*>)
  operator sptr<Q>() const {
    return sptr<Q>(p_);
  }

 private:
  E* p_;
};
template <class E, size_t N, size_t M>
class shared_array<E[N][M]> {
 public:
  explicit shared_array(E (*first)[M]) : p_(first) {}
  explicit shared_array(E* first) : p_(reinterpret_cast<E (*)[M]>(first)) {}
  shared_array<E[M]> operator[](int64_t i) const {
    if (uint64_t(i) >= N) shared_index_error(i, N);
    return shared_array<E[M]>(&p_[i][0]);
  }

 private:
  E (*p_)[M];
};

}  // namespace adnn::sim
