#pragma once
// Memory-access trace of emulated kernels (ADNN_SIM_TRACE builds).
//
// The kernel translation units (src/cuda/*.cpp) are compiled with GCC's ThreadSanitizer
// instrumentation (ADNN_SIM_TRACE_FLAGS, no TSan runtime), so every load and store of kernel
// code calls a hook (__tsan_read4, __tsan_write4, ..., and the atomics' __tsan_atomic32_*)
// defined in src/sim/simt.cpp. A memcpy of a size known only at run time stays a libc call
// that no hook sees (kernels have none; fixed-size ones are loads, stores or
// __tsan_read_range). While a trace is on, the hook
// appends the access (address, bytes, load/store, the calling instruction's address, the
// thread's sync-point count) to the running emulated thread's log; accesses made outside an
// emulated kernel thread are ignored. When a block ends, each warp's lane logs are matched
// into warp-level requests (the model below) and summed per kernel name.
//
// Model (see docs/kernels.md, "Memory-access report"):
//  - Lanes are matched access by access between synchronisation points: the accesses a lane
//    makes between two of its sync points (__syncthreads, __syncwarp, shuffles, votes,
//    mma.sync) form a segment; within a segment the k-th execution of one access instruction
//    (same code address) by every lane that executes it is one warp-level request. Lanes
//    that take different branches run different instructions: different requests, as on a GPU.
//  - Global request (an address in a registered device allocation): sectors = distinct 32-byte
//    segments touched by its lanes; bytes used = distinct bytes touched (a broadcast counts
//    once); coalescing efficiency = bytes used / (32 × sectors). Nsight Compute's
//    "sectors/request" is sectors / requests (4 for 32 lanes × 4 contiguous bytes).
//  - Shared request (an address in the block's static or dynamic shared memory): banks are
//    4-byte words mod 32 (offset from the start of the region); wavefronts = the largest
//    number of distinct words in one bank ("n-way"); ideal = ceil(distinct words / 32);
//    bank conflicts = wavefronts - ideal (Nsight Compute: l1tex__data_bank_conflicts_*).
//  - Compulsory bytes of a launch: 32 × (distinct global sectors it loads + distinct global
//    sectors it stores): what an ideal cache moves from and to HBM, each sector read fetched
//    once and each sector written written back once (a sector updated in place moves twice).
//  - Anything else (the thread's stack, kernel parameters, the emulator's own state) is
//    counted as "other" and not modelled.
// Limits: no cache model between compulsory (perfect reuse) and fetched (no reuse) bytes;
// atomics count as a load and a store; the emulated code is GCC's -O2 code, not nvcc's (a
// value nvcc keeps in a register may be re-read here, vector loads may be split or merged).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace adnn::sim {

struct TraceAccess {
  uintptr_t addr = 0;
  uintptr_t pc = 0;  // the access instruction (the hook's return address)
  uint32_t seg = 0;  // the thread's sync-point count when it made the access
  uint16_t bytes = 0;
  uint8_t write = 0;
};

struct TraceCounters {
  uint64_t ld_requests = 0, ld_sectors = 0, ld_bytes = 0;  // global loads
  uint64_t st_requests = 0, st_sectors = 0, st_bytes = 0;  // global stores
  uint64_t sh_requests = 0, sh_wavefronts = 0, sh_ideal_wavefronts = 0, sh_conflict_requests = 0;
  uint64_t sh_max_way = 0;  // the worst request's n-way
  uint64_t other_accesses = 0;
  TraceCounters& operator+=(const TraceCounters& o);
};

// Where an address lies, for one block.
struct TraceRegions {
  uintptr_t static_begin = 0, static_end = 0;                            // static shared arena
  uintptr_t dynamic_begin = 0, dynamic_end = 0;                          // dynamic shared memory
  const std::vector<std::pair<uintptr_t, uintptr_t>>* global = nullptr;  // sorted [begin, end) ranges
};

// Matches one warp's lane logs (lanes[l]: lane l's accesses in program order; null or empty
// for a lane that does not exist) into requests and adds them to `c`; the global sectors
// touched are appended to `sectors` as (address / 32) << 1 | store.
void analyze_warp(const std::vector<const std::vector<TraceAccess>*>& lanes, const TraceRegions& regions,
                  TraceCounters& c, std::vector<uint64_t>& sectors);

// Per kernel name, summed over its launches.
struct KernelTrace {
  std::string name;
  uint64_t launches = 0, blocks = 0, threads = 0;
  unsigned block_threads = 0;  // threads per block of the last launch
  size_t dynamic_smem = 0;     // the largest dynamic shared bytes of a launch
  size_t static_smem = 0;      // the largest static shared bytes a block used
  uint64_t compulsory_bytes = 0;
  TraceCounters c;
  // a library call the emulator runs on the host (cuBLAS GEMM, memcpy/memset): not traced,
  // its bytes are the operands' sizes and flops its arithmetic
  bool library = false;
  uint64_t flops = 0;
};

// Whether this build records traces (ADNN_SIM_TRACE: the kernels are instrumented).
bool trace_compiled();
// Starts a trace (clearing the previous results); kernels launched until trace_stop are recorded.
void trace_start();
void trace_stop();
bool trace_active();
// Records a call that runs on the host in the emulator (GEMM, memcpy, memset) while a trace is on.
void trace_library_call(const char* name, uint64_t bytes, uint64_t flops);
// The kernels recorded by the last trace, in order of first launch.
std::vector<KernelTrace> trace_results();

}  // namespace adnn::sim

namespace adnn::sim::trace_detail {
// The trace switch the access hooks read (one relaxed load when no trace is on).
extern std::atomic<bool> trace_on;
// One launch's trace, summed over its blocks by the emulator.
struct LaunchTrace {
  const char* kernel = "<kernel>";
  unsigned block_threads = 0;
  uint64_t blocks = 0, threads = 0;
  size_t dynamic_smem = 0, static_smem = 0;
  TraceCounters c;
  std::vector<uint64_t> sectors;  // (global sector << 1) | store, per request (duplicates allowed)
};
void trace_record_launch(LaunchTrace& launch);
}  // namespace adnn::sim::trace_detail
