#pragma once
// Per-kernel memory report of the emulated `cuda` device (docs/kernels.md, "Memory-access
// report"): while a trace is on, every kernel launch's global and shared accesses are matched
// into warp requests (sectors per request, coalescing efficiency, bank conflicts) and summed per
// kernel; GEMMs and memcpy/memset, which the emulator runs on the host, are counted as library
// calls with their operand bytes and flops. Needs an emulated build with ADNN_SIM_TRACE.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace adnn::cuda {

struct KernelStats {
  std::string name;
  bool library = false;  // a GEMM / memcpy / memset (not traced: operand bytes and flops only)
  uint64_t launches = 0, blocks = 0, threads = 0;
  unsigned block_threads = 0;                              // threads per block (last launch)
  size_t dynamic_smem = 0, static_smem = 0;                // bytes per block (largest)
  uint64_t ld_requests = 0, ld_sectors = 0, ld_bytes = 0;  // global loads: warp requests, 32-B sectors, bytes used
  uint64_t st_requests = 0, st_sectors = 0, st_bytes = 0;  // global stores
  uint64_t sh_requests = 0, sh_wavefronts = 0, sh_ideal_wavefronts = 0, sh_conflict_requests = 0, sh_max_way = 0;
  uint64_t compulsory_bytes =
      0;  // per launch: 32 × (distinct sectors loaded + stored) (library: operand bytes), summed
  uint64_t flops = 0;             // library GEMMs: 2·M·N·K
  uint64_t other_accesses = 0;    // stack, parameters: not modelled

  uint64_t fetched_bytes() const { return 32 * (ld_sectors + st_sectors); }
  // bytes used / bytes fetched over global loads and stores (1 when there are none)
  double coalescing() const;
  // shared wavefronts / ideal wavefronts (1: no bank conflicts)
  double bank_conflict_factor() const;
};

// The roofline the estimated times use (H200 SXM: HBM3e 4.8 TB/s, 67 TFLOP/s FP32 without tensor cores).
struct Roofline {
  double hbm_bytes_per_s = 4.8e12;
  double fp32_flops_per_s = 67e12;
  // max(compulsory bytes / HBM bandwidth, flops / peak): a lower bound with perfect cache reuse
  double seconds(const KernelStats& k) const;
  // fetched bytes / HBM bandwidth: the same traffic with no reuse between requests
  double seconds_no_reuse(const KernelStats& k) const;
};

// Whether this build can trace kernels (emulated, ADNN_SIM_TRACE).
bool kernel_trace_available();
// Starts recording (clearing the previous records); throws adnn::Error when not available.
void kernel_trace_start();
// Stops recording and returns the kernels launched since kernel_trace_start, in order of first launch.
std::vector<KernelStats> kernel_trace_stop();
// The per-kernel table in Markdown, sorted by estimated time, with totals.
std::string kernel_report_markdown(const std::vector<KernelStats>& kernels, const Roofline& roof = {});

}  // namespace adnn::cuda
