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
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
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
void syncthreads();
void syncwarp();
// Warp exchange: every live lane of the calling warp publishes `value` and receives the
// value published by lane `src` (own value when src is not a live lane).
uint64_t warp_exchange(uint64_t value, int src);
// Warp vote: bitmask of live lanes whose predicate is true.
unsigned warp_ballot(bool pred);
unsigned warp_live_mask();
// Warp all-gather: every lane of the calling warp publishes `bytes` at `mine`; afterwards
// `all` holds lane 0's bytes, then lane 1's, ... (32 × bytes). Needs all 32 lanes live (the
// tensor-core instructions it serves are warp-wide); throws adnn::Error otherwise.
void warp_all_gather(const void* mine, size_t bytes, void* all);
void* dynamic_shared();
size_t dynamic_shared_bytes();

// Runs body() as every thread of grid x block. Throws adnn::Error on a deadlocked barrier
// or a bad configuration; rethrows an exception raised by a thread.
void launch(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& body);

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

}  // namespace adnn::sim
