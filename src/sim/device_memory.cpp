// The emulated device's memory arena and its host guard (src/sim/simt.hpp, "Device memory").
//
// On a GPU a device pointer dereferenced by host code is a segfault (or, with unified
// addressing on some systems, a silent page migration that hides the bug until it faults on
// another machine). The emulator's device memory is host memory, so such a read used to
// succeed here and pass every test (the first wave's fused AdamW, stop 39's index check).
// The guard restores the GPU's behaviour: the runtime's allocations come from one reserved
// arena tagged with a memory protection key (x86 PKU: pkey_alloc/pkey_mprotect). A thread may
// touch a protection key's pages only when its own PKRU register allows it, and every thread
// starts denied (Linux's default PKRU), so host code that dereferences device memory faults at
// once. Device work opens the arena for the thread doing it, for its duration (device_access:
// one user-mode register write, no system call): a kernel launch (the launching thread and each
// OpenMP worker running one of its blocks), a runtime copy or memset, a library GEMM (run on the
// calling thread alone: OpenMP workers outside a launch stay denied), a graph replay. The
// SIGSEGV handler names the address, its offset in the arena and where the host code was (a
// backtrace), then lets the fault take its course (the previous handler: the default core
// dump, or AddressSanitizer's report).
//
// Protection keys are per thread, so a host read on any thread is caught, even while another
// thread runs device work. Without PKU (an older CPU, a hypervisor that hides it) there is no
// guard: the arena stays open and host_guard_on() says so. ADNN_SIM_HOST_GUARD=0 turns it off.
// (A first version toggled the whole arena with mprotect per launch: correct, but the page-table
// walk over gigabytes of test tensors made the suite three times slower.)
//
// Guard pages: every allocation is followed by one inaccessible page (PROT_NONE, whatever the
// thread's key allows), and freed memory is closed the same way, so device work, or host code,
// running past the end of an allocation or using it after its free faults there, as a GPU
// reports an illegal address, instead of reading the next allocation or stale zeros (the
// caching allocator's segments lie back to back in the arena, which AddressSanitizer does not
// see into). The handler names the allocation overrun, or says no allocation holds the address.
// An overrun within an allocation's last page, or past a tensor's end inside a segment, is not
// seen. Where the system refuses another mapping split (vm.max_map_count), an allocation goes
// without its guard (device_arena_guarded says so, and a message says why, once).
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <execinfo.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "sim/simt.hpp"

namespace adnn::sim {
namespace {

constexpr size_t kPage = 4096;
size_t page_round(size_t n) { return (n + kPage - 1) / kPage * kPage; }

struct Arena {
  std::mutex mu;
  char* base = nullptr;
  size_t reserved = 0;
  size_t high = 0;                  // bytes of the arena ever handed out (its open prefix)
  std::map<size_t, size_t> free;    // offset -> bytes, below `high`, coalesced
  struct Block {
    size_t span;   // bytes of the arena it holds: its pages, then its guard page
    size_t bytes;  // bytes asked for
    bool guard;    // its last page is closed (false where the system refused the split)
  };
  std::map<size_t, Block> live;     // offset -> block
  int pkey = -1;                    // the arena's protection key; -1: no guard
  struct sigaction previous {};
};

void segv_handler(int sig, siginfo_t* info, void* uctx);
void install(Arena& a);

Arena* make_arena() {
  auto* a = new Arena();  // never destroyed: device frees may run during static destruction
  // Reserve address space only (no memory, no commit charge); halve until the system agrees.
  for (size_t r = size_t(256) << 30; r >= (size_t(1) << 30); r /= 2) {
    void* p = ::mmap(nullptr, r, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      a->base = static_cast<char*>(p);
      a->reserved = r;
      break;
    }
  }
  if (!a->base) return a;  // no arena: allocations fall back to the heap, unguarded
  const char* e = std::getenv("ADNN_SIM_HOST_GUARD");
  if (!(e && e[0] == '0')) a->pkey = ::pkey_alloc(0, 0);  // -1 without PKU: no guard
  if (a->pkey >= 0) ::pkey_set(a->pkey, PKEY_DISABLE_ACCESS);  // this thread, as every other
  return a;
}
Arena& arena() {
  static Arena* a = [] {
    Arena* r = make_arena();
    if (r->base) {  // the protection key's faults and the guard pages'

      void* frames[4];
      (void)backtrace(frames, 4);  // loads libgcc now, not first in the signal handler
      install(*r);
    }
    return r;
  }();
  return *a;
}

// Makes segv_handler the SIGSEGV action; the one it replaces is called for faults that are not
// the guard's (or after the guard's report).
void install(Arena& a) {
  struct sigaction sa {}, old {};
  sa.sa_sigaction = segv_handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old);
  if (!((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == segv_handler)) a.previous = old;
}

// Opens [from, to) of the reserved arena: readable and writable, tagged with the arena's key
// (the threads' PKRU then decides), or closes it (PROT_NONE, the same key: a guard page, freed
// memory); a.mu held. False when the system refuses (ENOMEM: no mapping split left,
// vm.max_map_count).
bool protect_pages(Arena& a, size_t from, size_t to, bool open) {
  if (to <= from) return true;
  const int prot = open ? PROT_READ | PROT_WRITE : PROT_NONE;
  const int rc = a.pkey >= 0 ? ::pkey_mprotect(a.base + from, to - from, prot, a.pkey)
                             : ::mprotect(a.base + from, to - from, prot);
  if (rc != 0 && errno != ENOMEM) {
    std::perror("adnn SIMT emulator: mprotect of the device arena");
    std::abort();
  }
  return rc == 0;
}

// once per process: allocations fail or go unguarded because of the mapping limit, which the
// caller reports as out of memory
void warn_map_count() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::fprintf(stderr,
                 "adnn SIMT emulator: the system refused another memory mapping of the device arena "
                 "(vm.max_map_count): allocations now go without guard pages or fail as out of memory\n");
  });
}

thread_local int tls_depth = 0;  // this thread's device_access nesting

void write_str(const char* s) { (void)!::write(2, s, std::strlen(s)); }
void write_dec(size_t v) {
  char buf[21];
  int i = 20;
  buf[i] = 0;
  do buf[--i] = char('0' + v % 10);
  while ((v /= 10) != 0);
  write_str(buf + i);
}
void write_hex(uintptr_t v) {
  char buf[2 + 16 + 1];
  buf[0] = '0';
  buf[1] = 'x';
  for (int i = 0; i < 16; ++i) buf[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 15];
  buf[18] = 0;
  write_str(buf);
}

void segv_handler(int sig, siginfo_t* info, void* uctx) {
  Arena& a = arena();  // made: the handler is installed after make_arena, in arena()'s initializer
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const auto lo = reinterpret_cast<uintptr_t>(a.base);
  // si_code > 0: raised by the kernel at a bad access (not a kill() whose si_addr means nothing)
  if (a.base && info->si_code > 0 && addr >= lo && addr < lo + a.reserved) {
    const size_t off = addr - lo;
    // the block holding the address, if any (read without the lock: the process is going
    // down, and a fault inside alloc/free is not an access of device memory)
    auto next = a.live.upper_bound(off);
    const Arena::Block* b = nullptr;
    size_t start = 0;
    if (next != a.live.begin() && off < std::prev(next)->first + std::prev(next)->second.span) {
      start = std::prev(next)->first;
      b = &std::prev(next)->second;
    }
    if (b && b->guard && off >= start + b->span - kPage) {
      write_str("adnn SIMT emulator: an access past the end of a device allocation at ");
      write_hex(addr);
      write_str(": the guard page after the allocation at device arena offset ");
      write_hex(start);
      write_str(" of ");
      write_dec(b->bytes);
      write_str(" bytes, ");
      write_dec(off - start - b->bytes);
      write_str(
          " bytes past its end (on a GPU: an illegal address; a kernel's index runs past its tensor, or a "
          "copy is too long). Host backtrace:\n");
    } else {
      write_str(b ? "adnn SIMT emulator: host code touched emulated device memory at "
                  : "adnn SIMT emulator: an access to emulated device memory that no allocation holds (freed, or "
                    "never allocated), at ");
      write_hex(addr);
      write_str(" (device arena offset ");
      write_hex(off);
      write_str(b ? ") outside any device work (a kernel, a runtime copy or memset, a library call).\n"
                    "On a GPU this is a device pointer dereferenced on the host: a segfault. Copy the data to the "
                    "host (Tensor::to(kCPU), cuda::copy_to_host) or do the work in a kernel. Host backtrace:\n"
                  : "): on a GPU, an illegal address. Host backtrace:\n");
    }
    void* frames[64];
    const int n = backtrace(frames, 64);
    backtrace_symbols_fd(frames, n, 2);
  }
  // Not ours, or reported: hand the fault to the previous handler (default: terminate).
  sigaction(SIGSEGV, &a.previous, nullptr);
  if (a.previous.sa_flags & SA_SIGINFO) {
    if (a.previous.sa_sigaction) a.previous.sa_sigaction(sig, info, uctx);
  } else if (a.previous.sa_handler != SIG_DFL && a.previous.sa_handler != SIG_IGN) {
    a.previous.sa_handler(sig);
  }
  // returning re-executes the faulting access, now under the previous (or default) action
}

}  // namespace

void* device_arena_alloc(size_t bytes) {
  Arena& a = arena();
  if (!a.base) {
    void* p = std::aligned_alloc(kPage, page_round(std::max<size_t>(bytes, 1)));
    if (p) register_device_memory(p, bytes);
    return p;
  }
  const size_t n = page_round(std::max<size_t>(bytes, 1)), span = n + kPage;  // the pages, then the guard
  size_t off = 0;
  {
    std::lock_guard<std::mutex> lock(a.mu);
    auto it = std::find_if(a.free.begin(), a.free.end(), [span](const auto& f) { return f.second >= span; });
    const bool from_top = it == a.free.end();
    if (!from_top) {  // first fit by address
      off = it->first;
      const size_t rest = it->second - span;
      a.free.erase(it);
      if (rest) a.free[off + span] = rest;
    } else {
      if (a.reserved - a.high < span) return nullptr;
      off = a.high;
      a.high += span;
    }
    // open the pages (free closed them), close the guard (a fresh range's is closed already,
    // but not with the arena's key: one key keeps the closed pages one mapping)
    if (!protect_pages(a, off, off + n, true)) {  // the range goes back as it was taken
      if (from_top) {
        a.high = off;
      } else {
        size_t len = span;
        if (auto rest = a.free.find(off + span); rest != a.free.end()) {
          len += rest->second;
          a.free.erase(rest);
        }
        a.free[off] = len;
      }
      warn_map_count();
      return nullptr;
    }
    const bool guard = protect_pages(a, off + n, off + span, false);
    if (!guard) warn_map_count();
    a.live[off] = Arena::Block{span, bytes, guard};
  }
  register_device_memory(a.base + off, bytes);
  return a.base + off;
}

bool device_arena_guarded(const void* p) {
  Arena& a = arena();
  const char* c = static_cast<const char*>(p);
  if (!a.base || c < a.base || c >= a.base + a.reserved) return false;
  std::lock_guard<std::mutex> lock(a.mu);
  auto b = a.live.find(size_t(c - a.base));
  return b != a.live.end() && b->second.guard;
}

void device_arena_free(void* p) {
  if (!p) return;
  unregister_device_memory(p);
  Arena& a = arena();
  char* c = static_cast<char*>(p);
  if (!a.base || c < a.base || c >= a.base + a.reserved) {
    std::free(p);
    return;
  }
  std::lock_guard<std::mutex> lock(a.mu);
  size_t off = size_t(c - a.base);
  auto lv = a.live.find(off);
  if (lv == a.live.end()) return;
  size_t n = lv->second.span;
  a.live.erase(lv);
  ::madvise(c, n, MADV_DONTNEED);  // give the pages back; they read as zeros when reused
  (void)protect_pages(a, off, off + n, false);  // a use after free faults (ENOMEM: stays open)
  auto next = a.free.lower_bound(off);
  if (next != a.free.end() && next->first == off + n) {
    n += next->second;
    next = a.free.erase(next);
  }
  if (next != a.free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      off = prev->first;
      n += prev->second;
      a.free.erase(prev);
    }
  }
  a.free[off] = n;
}

void install_host_guard_handler() {
  Arena& a = arena();
  if (a.base) install(a);
}

bool host_guard_on() { return arena().pkey >= 0; }

device_access::device_access() {
  const int key = arena().pkey;
  if (key >= 0 && tls_depth++ == 0) ::pkey_set(key, 0);
}
device_access::~device_access() {
  const int key = arena().pkey;
  if (key >= 0 && --tls_depth == 0) ::pkey_set(key, PKEY_DISABLE_ACCESS);
}

}  // namespace adnn::sim
