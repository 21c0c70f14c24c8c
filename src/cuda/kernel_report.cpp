// The per-kernel memory report (include/adnn/cuda/kernel_report.hpp): the emulator's access
// trace (src/sim/trace.hpp) as public statistics and a Markdown table.
#include <adnn/config.hpp>
#include <adnn/core/error.hpp>
#include <adnn/cuda/kernel_report.hpp>

#include <algorithm>
#include <cstdio>
#include <string>

#if ADNN_WITH_CUDA_EMULATION
#include "sim/trace.hpp"
#endif

namespace adnn::cuda {

double KernelStats::coalescing() const {
  const uint64_t f = fetched_bytes();
  return f ? double(ld_bytes + st_bytes) / double(f) : 1.0;
}
double KernelStats::bank_conflict_factor() const {
  return sh_ideal_wavefronts ? double(sh_wavefronts) / double(sh_ideal_wavefronts) : 1.0;
}
double Roofline::seconds(const KernelStats& k) const {
  return std::max(double(k.compulsory_bytes) / hbm_bytes_per_s, double(k.flops) / fp32_flops_per_s);
}
double Roofline::seconds_no_reuse(const KernelStats& k) const {
  const double bytes = k.library ? double(k.compulsory_bytes) : double(k.fetched_bytes());
  return std::max(bytes / hbm_bytes_per_s, double(k.flops) / fp32_flops_per_s);
}

bool kernel_trace_available() {
#if ADNN_WITH_CUDA_EMULATION
  return sim::trace_compiled();
#else
  return false;
#endif
}

void kernel_trace_start() {
  ADNN_CHECK(kernel_trace_available(),
             "kernel trace: needs the emulated cuda device built with ADNN_SIM_TRACE=ON (GCC, no sanitizer; "
             "this build: ",
             ADNN_WITH_CUDA_EMULATION ? "emulated, ADNN_SIM_TRACE=OFF" : "not emulated", ")");
#if ADNN_WITH_CUDA_EMULATION
  sim::trace_start();
#endif
}

std::vector<KernelStats> kernel_trace_stop() {
  std::vector<KernelStats> out;
#if ADNN_WITH_CUDA_EMULATION
  sim::trace_stop();
  for (const sim::KernelTrace& t : sim::trace_results()) {
    KernelStats k;
    k.name = t.name;
    k.library = t.library;
    k.launches = t.launches;
    k.blocks = t.blocks;
    k.threads = t.threads;
    k.block_threads = t.block_threads;
    k.dynamic_smem = t.dynamic_smem;
    k.static_smem = t.static_smem;
    k.ld_requests = t.c.ld_requests;
    k.ld_sectors = t.c.ld_sectors;
    k.ld_bytes = t.c.ld_bytes;
    k.st_requests = t.c.st_requests;
    k.st_sectors = t.c.st_sectors;
    k.st_bytes = t.c.st_bytes;
    k.sh_requests = t.c.sh_requests;
    k.sh_wavefronts = t.c.sh_wavefronts;
    k.sh_ideal_wavefronts = t.c.sh_ideal_wavefronts;
    k.sh_conflict_requests = t.c.sh_conflict_requests;
    k.sh_max_way = t.c.sh_max_way;
    k.compulsory_bytes = t.compulsory_bytes;
    k.flops = t.flops;
    k.other_accesses = t.c.other_accesses;
    out.push_back(std::move(k));
  }
#endif
  return out;
}

namespace {
std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
// "(k::copy_kernel<S, D>)" -> "copy_kernel<S, D>"; `|` would break the table
std::string clean_name(std::string n) {
  if (n.size() > 2 && n.front() == '(' && n.back() == ')') n = n.substr(1, n.size() - 2);
  for (const char* p : {"k::", "kernels::"})
    for (size_t at; (at = n.find(p)) != std::string::npos;) n.erase(at, std::string(p).size());
  for (char& c : n)
    if (c == '|') c = '/';
  return n;
}
}  // namespace

std::string kernel_report_markdown(const std::vector<KernelStats>& kernels, const Roofline& roof) {
  std::vector<const KernelStats*> order;
  for (const auto& k : kernels) order.push_back(&k);
  std::stable_sort(order.begin(), order.end(),
                   [&](const KernelStats* a, const KernelStats* b) { return roof.seconds(*a) > roof.seconds(*b); });
  double total_s = 0, total_nr = 0;
  uint64_t launches = 0, lib_calls = 0, fetched = 0, compulsory = 0, used = 0, sh_wf = 0, sh_ideal = 0;
  for (const auto* k : order) {
    total_s += roof.seconds(*k);
    total_nr += roof.seconds_no_reuse(*k);
    (k->library ? lib_calls : launches) += k->launches;
    fetched += k->fetched_bytes();
    used += k->ld_bytes + k->st_bytes;
    compulsory += k->compulsory_bytes;
    sh_wf += k->sh_wavefronts;
    sh_ideal += k->sh_ideal_wavefronts;
  }
  std::string s;
  s += "| kernel | launches | threads/block | ld sectors/req | st sectors/req | coalescing % | shared req | "
       "wavefronts/req (ideal) | max n-way | fetched MB | compulsory MB | est. µs | no-reuse µs | time % |\n";
  s += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto* k : order) {
    const double t = roof.seconds(*k);
    s += "| " + clean_name(k->name) + (k->library ? " (library, not traced)" : "") + " | " +
         std::to_string(k->launches) + " | ";
    if (k->library) {
      s += "– | – | – | – | – | – | – | – | ";
    } else {
      s += std::to_string(k->block_threads) + " | ";
      s += (k->ld_requests ? fmt("%.2f", double(k->ld_sectors) / double(k->ld_requests)) : "–") + " | ";
      s += (k->st_requests ? fmt("%.2f", double(k->st_sectors) / double(k->st_requests)) : "–") + " | ";
      s += (k->fetched_bytes() ? fmt("%.1f", 100 * k->coalescing()) : "–") + " | ";
      s += std::to_string(k->sh_requests) + " | ";
      s += (k->sh_requests ? fmt("%.2f", double(k->sh_wavefronts) / double(k->sh_requests)) + " (" +
                                 fmt("%.2f", double(k->sh_ideal_wavefronts) / double(k->sh_requests)) + ")"
                           : "–") +
           " | ";
      s += (k->sh_requests ? std::to_string(k->sh_max_way) : "–") + " | ";
      s += fmt("%.3f", double(k->fetched_bytes()) / 1e6) + " | ";
    }
    s += fmt("%.3f", double(k->compulsory_bytes) / 1e6) + " | " + fmt("%.2f", t * 1e6) + " | " +
         fmt("%.2f", roof.seconds_no_reuse(*k) * 1e6) + " | " + fmt("%.1f", total_s > 0 ? 100 * t / total_s : 0) +
         " |\n";
  }
  s += "\n";
  s += "- kernel launches: " + std::to_string(launches) +
       "; library calls (GEMM, memcpy, memset): " + std::to_string(lib_calls) +
       "; total: " + std::to_string(launches + lib_calls) + "\n";
  s += "- traced kernels: global bytes used / fetched = " +
       fmt("%.1f", fetched ? 100.0 * double(used) / double(fetched) : 100) + " % coalescing (" +
       fmt("%.1f", double(fetched) / 1e6) +
       " MB fetched); shared wavefronts / ideal = " + fmt("%.3f", sh_ideal ? double(sh_wf) / double(sh_ideal) : 1.0) +
       "\n";
  s += "- compulsory bytes (all rows): " + fmt("%.1f", double(compulsory) / 1e6) + " MB; estimated time " +
       fmt("%.1f", total_s * 1e6) + " µs (perfect reuse), " + fmt("%.1f", total_nr * 1e6) + " µs (no reuse) at " +
       fmt("%.1f", roof.hbm_bytes_per_s / 1e12) + " TB/s HBM and " + fmt("%.0f", roof.fp32_flops_per_s / 1e12) +
       " TFLOP/s FP32; launch overheads not included\n";
  return s;
}

}  // namespace adnn::cuda
