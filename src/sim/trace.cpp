// The memory-access model of the kernel trace (src/sim/trace.hpp): lane logs -> warp requests.
#include "sim/trace.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace adnn::sim {

TraceCounters& TraceCounters::operator+=(const TraceCounters& o) {
  ld_requests += o.ld_requests;
  ld_sectors += o.ld_sectors;
  ld_bytes += o.ld_bytes;
  st_requests += o.st_requests;
  st_sectors += o.st_sectors;
  st_bytes += o.st_bytes;
  sh_requests += o.sh_requests;
  sh_wavefronts += o.sh_wavefronts;
  sh_ideal_wavefronts += o.sh_ideal_wavefronts;
  sh_conflict_requests += o.sh_conflict_requests;
  sh_max_way = std::max(sh_max_way, o.sh_max_way);
  other_accesses += o.other_accesses;
  return *this;
}

namespace {

enum Space : uint8_t { global_space = 0, shared_space = 1, other_space = 2 };

struct Item {
  uint32_t seg, occ;
  uintptr_t pc;
  uint8_t write, space;
  uint16_t bytes;
  uintptr_t addr;  // shared: offset from the region's start
};

bool in_global(const TraceRegions& r, uintptr_t a) {
  if (!r.global || r.global->empty()) return false;
  auto it = std::upper_bound(r.global->begin(), r.global->end(), a,
                             [](uintptr_t v, const std::pair<uintptr_t, uintptr_t>& g) { return v < g.first; });
  if (it == r.global->begin()) return false;
  --it;
  return a < it->second;
}

}  // namespace

void analyze_warp(const std::vector<const std::vector<TraceAccess>*>& lanes, const TraceRegions& regions,
                  TraceCounters& c, std::vector<uint64_t>& sectors) {
  std::vector<Item> items;
  size_t total = 0;
  for (const auto* l : lanes)
    if (l) total += l->size();
  items.reserve(total);
  std::vector<std::pair<uintptr_t, uint32_t>> occ;  // per lane and segment: pc -> executions so far
  for (const auto* l : lanes) {
    if (!l) continue;
    occ.clear();
    uint32_t seg = ~0u;
    for (const TraceAccess& a : *l) {
      if (a.seg != seg) {
        occ.clear();
        seg = a.seg;
      }
      uint32_t k = 0;
      auto it = std::find_if(occ.begin(), occ.end(), [&](const auto& p) { return p.first == a.pc; });
      if (it == occ.end())
        occ.push_back({a.pc, 1});
      else
        k = it->second++;
      Item x{a.seg, k, a.pc, a.write, other_space, a.bytes, a.addr};
      if (a.addr >= regions.static_begin && a.addr < regions.static_end) {
        x.space = shared_space;
        x.addr = a.addr - regions.static_begin;
      } else if (a.addr >= regions.dynamic_begin && a.addr < regions.dynamic_end) {
        x.space = shared_space;
        x.addr = a.addr - regions.dynamic_begin;
      } else if (in_global(regions, a.addr)) {
        x.space = global_space;
      }
      if (x.space == other_space) {
        ++c.other_accesses;
        continue;
      }
      items.push_back(x);
    }
  }
  auto key = [](const Item& x) { return std::tuple(x.seg, x.pc, x.occ, x.write, x.space); };
  std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) { return key(a) < key(b); });
  std::vector<uint64_t> req_sectors;
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  std::vector<uint64_t> words;
  for (size_t i = 0; i < items.size();) {
    size_t j = i + 1;
    while (j < items.size() && key(items[j]) == key(items[i])) ++j;
    if (items[i].space == global_space) {
      req_sectors.clear();
      ranges.clear();
      for (size_t k = i; k < j; ++k) {
        const uintptr_t b = items[k].addr, e = b + std::max<uint16_t>(items[k].bytes, 1);
        ranges.push_back({b, e});
        for (uintptr_t s = b >> 5; s <= (e - 1) >> 5; ++s) req_sectors.push_back(s);
      }
      std::sort(req_sectors.begin(), req_sectors.end());
      req_sectors.erase(std::unique(req_sectors.begin(), req_sectors.end()), req_sectors.end());
      std::sort(ranges.begin(), ranges.end());
      uint64_t used = 0;
      uintptr_t cb = ranges[0].first, ce = ranges[0].second;
      for (const auto& [b, e] : ranges) {
        if (b > ce) {
          used += ce - cb;
          cb = b;
          ce = e;
        } else {
          ce = std::max(ce, e);
        }
      }
      used += ce - cb;
      if (items[i].write) {
        ++c.st_requests;
        c.st_sectors += req_sectors.size();
        c.st_bytes += used;
      } else {
        ++c.ld_requests;
        c.ld_sectors += req_sectors.size();
        c.ld_bytes += used;
      }
      // keyed (sector << 1) | store: a sector loaded and stored counts twice in the compulsory
      // bytes (fetched once, written back once), as an in-place update moves it twice
      for (uint64_t sct : req_sectors) sectors.push_back(sct << 1 | uint64_t(items[i].write));
    } else {  // shared: 32 banks of 4-byte words
      words.clear();
      for (size_t k = i; k < j; ++k) {
        const uintptr_t b = items[k].addr, e = b + std::max<uint16_t>(items[k].bytes, 1);
        for (uintptr_t w = b / 4; w <= (e - 1) / 4; ++w) words.push_back(w);
      }
      std::sort(words.begin(), words.end());
      words.erase(std::unique(words.begin(), words.end()), words.end());
      unsigned per_bank[32] = {};
      uint64_t way = 0;
      for (uint64_t w : words) way = std::max<uint64_t>(way, ++per_bank[w % 32]);
      const uint64_t ideal = std::max<uint64_t>(1, (words.size() + 31) / 32);
      ++c.sh_requests;
      c.sh_wavefronts += way;
      c.sh_ideal_wavefronts += ideal;
      if (way > ideal) ++c.sh_conflict_requests;
      c.sh_max_way = std::max(c.sh_max_way, way);
    }
    i = j;
  }
}

namespace trace_detail {
std::atomic<bool> trace_on{false};
}

namespace {
struct Results {
  std::mutex mu;
  std::vector<KernelTrace> kernels;
  std::map<std::string, size_t> index;
};
Results& results() {
  static Results* r = new Results();  // never destroyed: a launch may end during exit
  return *r;
}
}  // namespace

void trace_detail::trace_record_launch(LaunchTrace& l) {
  std::sort(l.sectors.begin(), l.sectors.end());
  const uint64_t compulsory = 32 * uint64_t(std::unique(l.sectors.begin(), l.sectors.end()) - l.sectors.begin());
  auto& r = results();
  std::lock_guard lock(r.mu);
  auto [it, fresh] = r.index.try_emplace(l.kernel, r.kernels.size());
  if (fresh) {
    r.kernels.emplace_back();
    r.kernels.back().name = l.kernel;
  }
  KernelTrace& k = r.kernels[it->second];
  ++k.launches;
  k.blocks += l.blocks;
  k.threads += l.threads;
  k.block_threads = l.block_threads;
  k.dynamic_smem = std::max(k.dynamic_smem, l.dynamic_smem);
  k.static_smem = std::max(k.static_smem, l.static_smem);
  k.compulsory_bytes += compulsory;
  k.c += l.c;
}

void trace_library_call(const char* name, uint64_t bytes, uint64_t flops) {
  if (!trace_detail::trace_on.load(std::memory_order_relaxed)) return;
  auto& r = results();
  std::lock_guard lock(r.mu);
  auto [it, fresh] = r.index.try_emplace(name, r.kernels.size());
  if (fresh) {
    r.kernels.emplace_back();
    r.kernels.back().name = name;
    r.kernels.back().library = true;
  }
  KernelTrace& k = r.kernels[it->second];
  ++k.launches;
  k.compulsory_bytes += bytes;
  k.flops += flops;
}

bool trace_compiled() {
#if ADNN_SIM_TRACE
  return true;
#else
  return false;
#endif
}

void trace_start() {
  auto& r = results();
  {
    std::lock_guard lock(r.mu);
    r.kernels.clear();
    r.index.clear();
  }
  trace_detail::trace_on = true;
}
void trace_stop() {
  trace_detail::trace_on = false;
}
bool trace_active() {
  return trace_detail::trace_on.load(std::memory_order_relaxed);
}
std::vector<KernelTrace> trace_results() {
  auto& r = results();
  std::lock_guard lock(r.mu);
  return r.kernels;
}

}  // namespace adnn::sim
