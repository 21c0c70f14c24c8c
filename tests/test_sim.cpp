// The SIMT emulator (built with ADNN_CUDA_EMULATION): CUDA semantics on the host, and the
// kernels in kernels/ against their CPU twins.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <utility>

#include <adnn/cuda/runtime.hpp>

#include "kernels/conv.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/loops.cuh"
#include "kernels/mma.cuh"
#include "kernels/norm.cuh"
#include "kernels/reduce.cuh"
#include "kernels/softmax.cuh"
#include "testing.hpp"

using namespace adnn;
using namespace adnn::kernels;
// kernel buffers live in (emulated) device memory
template <class T>
using dvec = std::vector<T, adnn::sim::device_allocator<T>>;

namespace {

// ---- small kernels exercising the execution model
__global__ void write_ids_kernel(unsigned* out) {
  const unsigned bid = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned nthreads = blockDim.x * blockDim.y * blockDim.z;
  out[bid * nthreads + tid] = bid * 100000 + tid;
}

// D (16×8) = A (16×16, row-major) · B (16×8, row-major) with fragments built from the PTX
// layout documented in kernels/mma.cuh; lanes ≥ `live` exit first (to provoke the error).
template <class T>
__global__ void mma_tile_kernel(const T* A, const T* B, float* D, unsigned live) {
  const int lane = int(threadIdx.x), g = lane / 4, t = lane % 4;
  if (threadIdx.x >= live) return;
  uint32_t a[4], b[2];
  for (int r = 0; r < 4; ++r) a[r] = load_pair(A + (g + 8 * (r % 2)) * 16 + 2 * t + 8 * (r / 2));
  for (int r = 0; r < 2; ++r) b[r] = pack_pair<T>(B[(2 * t + 8 * r) * 8 + g], B[(2 * t + 8 * r + 1) * 8 + g]);
  float d[4] = {1.f, 1.f, 1.f, 1.f};  // accumulates onto C = 1
  mma_m16n8k16<T>(d, a, b);
  for (int r = 0; r < 4; ++r) D[(g + 8 * (r / 2)) * 8 + 2 * t + r % 2] = d[r];
}

// reverses each block's slice through static shared memory
__global__ void reverse_kernel(const float* in, float* out) {
  ADNN_SHARED(float, buf, [128]);
  const unsigned t = threadIdx.x, base = blockIdx.x * blockDim.x;
  buf[t] = in[base + t];
  __syncthreads();
  out[base + t] = buf[blockDim.x - 1 - t];
}
constexpr unsigned reverse_kernel_barrier_line = __LINE__ - 3;  // the __syncthreads() above

__global__ void dynamic_shared_kernel(const int* in, int* out, int n) {
  ADNN_DYNAMIC_SHARED(int, buf);
  for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = in[i] * 2;
  __syncthreads();
  if (threadIdx.x == 0) {
    int s = 0;
    for (int i = 0; i < n; ++i) s += buf[i];
    out[blockIdx.x] = s;
  }
}

__global__ void shuffle_kernel(int* out) {
  const int lane = threadIdx.x % 32;
  const int base = (threadIdx.x / 32) * 32 * 5 + blockIdx.x * blockDim.x * 5;
  out[base + lane * 5 + 0] = __shfl_xor_sync(0xffffffffu, lane * 10, 1);
  out[base + lane * 5 + 1] = __shfl_down_sync(0xffffffffu, lane * 10, 3);
  out[base + lane * 5 + 2] = __shfl_up_sync(0xffffffffu, lane * 10, 2);
  out[base + lane * 5 + 3] = __shfl_sync(0xffffffffu, lane * 10, 7);
  out[base + lane * 5 + 4] = __shfl_xor_sync(0xffffffffu, lane * 10, 4, 8);  // width 8
}

__global__ void vote_kernel(unsigned* out) {
  const int lane = threadIdx.x % 32;
  unsigned b = __ballot_sync(0xffffffffu, lane % 3 == 0);
  int all = __all_sync(0xffffffffu, lane < 40);
  int any = __any_sync(0xffffffffu, lane == 31);
  int none = __any_sync(0xffffffffu, lane > 40);
  if (lane == 0) {
    out[0] = b;
    out[1] = unsigned(all);
    out[2] = unsigned(any);
    out[3] = unsigned(none);
  }
}

__global__ void atomic_kernel(int* counter, float* fsum, int* maxv) {
  atomicAdd(counter, 1);
  atomicAdd(fsum, 0.5f);
  atomicMax(maxv, int(blockIdx.x * blockDim.x + threadIdx.x));
}

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) __syncthreads();  // undefined in CUDA; the emulator must say so
  else out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void throwing_kernel(int* out) {
  if (threadIdx.x == 5) ADNN_FAIL("kernel-side failure in thread ", threadIdx.x);
  out[threadIdx.x] = 1;
}

// y[i] = x[i + off]: with off = n − 31 for 32 threads, the last one reads x[n], one past the end
__global__ void shifted_copy_kernel(const float* x, float* y, int off) {
  y[threadIdx.x] = x[threadIdx.x + off];
}

// Reads static shared memory before any thread writes it (tests only): sees the poison, then
// writes, so a second block on the same OS thread would see stale data without the poison.
__global__ void read_unwritten_shared_kernel(unsigned* out) {
  ADNN_SHARED(unsigned, s, [32]);
  out[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x];
  s[threadIdx.x] = threadIdx.x;
}
// Lanes 16..31 exit, then lanes 0..15 read lane l + 16 with a shuffle (undefined on hardware).
__global__ void shuffle_from_exited_lane_kernel(unsigned* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_sync(0x0000ffffu, threadIdx.x * 3u, int(threadIdx.x) + 16);
}

// A block sum that forgets the barrier between publishing warp sums and reading them.
// Tests only: the emulator's shuffled thread order must make it produce wrong sums.
__global__ void sum_rows_missing_barrier_kernel(const float* x, float* out, int64_t R) {
  ADNN_SHARED(float, warp_sums, [32]);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  float acc = 0;
  for (int64_t k = threadIdx.x; k < R; k += blockDim.x) acc += x[blockIdx.x * R + k];
  acc = warp_reduce<float>(ReduceOp::sum, acc);
  if (lane == 0) warp_sums[warp] = acc;
  // __syncthreads() missing here
  float t = lane < nwarps ? warp_sums[lane] : 0.f;
  t = warp_reduce<float>(ReduceOp::sum, t);
  if (threadIdx.x == 0) out[blockIdx.x] = t;
}

// ---- warp-op masks (tests only; the broken ones must be reported)
// Lanes 0..15 shuffle among themselves (mask 0x0000ffff) while lanes 16..31 wait at
// __syncthreads: the shuffle must not wait for lanes outside its mask. out: lane l of the
// low half gets the value of lane l ^ 1; lane l reading lane l + 16 (outside the mask) gets poison.
__global__ void masked_shuffle_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane < 16) {
    out[lane] = __shfl_xor_sync(0x0000ffffu, lane * 10, 1);
    out[32 + lane] = __shfl_sync(0x0000ffffu, lane * 10, int(lane) + 16);
    out[64 + lane] = __ballot_sync(0x0000ffffu, lane % 2 == 0);
  }
  __syncthreads();
  if (lane >= 16) out[lane] = __shfl_down_sync(0xffff0000u, lane * 10, 1);  // lane 31: own value
}
// kernels/loops.cuh: each element records how often it was visited and the coordinates given.
__global__ void loops_nhwc_kernel(NhwcIndex ix, int64_t* hits, int64_t* coord) {
  for_each_nhwc(ix, [&](int64_t i, int64_t b, int64_t h, int64_t w, int64_t c) {
    atomicAdd(reinterpret_cast<unsigned long long*>(hits + i), 1ull);
    coord[i] = ((b * 100 + h) * 100 + w) * 100 + c;
  });
}
__global__ void loops_3d_kernel(Index3d ix, int64_t* hits, int64_t* coord) {
  for_each_3d(ix, [&](int64_t i, int64_t o, int64_t j, int64_t k) {
    atomicAdd(reinterpret_cast<unsigned long long*>(hits + i), 1ull);
    coord[i] = (o * 100 + j) * 100 + k;
  });
}
// kernels/elementwise.cuh: the offsets geom_offsets gives each linear index, two operands.
__global__ void geom_offsets_kernel(Geom g, int64_t n, int64_t* off) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t o[2];
    geom_offsets<2>(g, i, o);
    off[2 * i] = o[0];
    off[2 * i + 1] = o[1];
  }
}
// Broken: the mask names lanes 16..31, which wait at __syncthreads instead: a deadlock.
__global__ void shuffle_mask_names_waiting_lanes_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane < 16) out[lane] = __shfl_xor_sync(0xffffffffu, lane, 1);
  __syncthreads();
  out[lane] += 1;
}
// Broken: __syncwarp(mask) whose mask names lane 31, which never arrives (it waits at a
// __syncwarp with a different mask).
__global__ void syncwarp_mask_mismatch_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane < 31) __syncwarp(0xffffffffu);
  else __syncwarp(0x80000000u);
  out[lane] = lane;
}
// Broken: the mask excludes the calling lane.
__global__ void mask_without_caller_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  out[lane] = __shfl_sync(0x0000ffffu, lane, 0);  // lanes 16..31 are not in the mask
}
// A vote whose mask names exited lanes: they do not take part (sm_70+ semantics).
__global__ void vote_with_exited_lanes_kernel(unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  if (lane >= 8) return;
  const unsigned b = __ballot_sync(0xffffffffu, true);
  const int all = __all_sync(0xffffffffu, lane < 8);
  if (lane == 0) {
    out[0] = b;
    out[1] = unsigned(all);
  }
}

// ---- shared-memory races (tests only; every one must be reported)
// Dynamic shared memory: each thread reads its neighbour's slot with no barrier (RAW).
__global__ void dynamic_shared_missing_barrier_kernel(const int* in, int* out) {
  ADNN_DYNAMIC_SHARED(int, buf);
  const unsigned t = threadIdx.x, n = blockDim.x;
  buf[t] = in[t];
  // __syncthreads() missing here
  out[t] = buf[(t + 1) % n];
}
// Write-after-read: lanes 1..31 read slot 0, then lane 0 overwrites it with no barrier. The
// shuffle between them orders them in the emulator but is not a memory fence: a race (WAR).
__global__ void write_after_read_kernel(int* out) {
  ADNN_SHARED(int, s, [64]);
  const unsigned t = threadIdx.x;
  if (t == 0) s[0] = 7;
  __syncthreads();
  int v = t != 0 ? int(s[0]) : 0;
  v += __shfl_sync(0xffffffffu, v, 1);
  if (t == 0) s[0] = 8;  // the readers have read, but nothing orders their reads before this write
  out[t] = v;
}
// Warp-synchronous exchange through shared memory between lanes of one warp. mode 0: with
// __syncwarp (correct); 1: nothing in between; 2: a shuffle in between (not a memory fence).
__global__ void warp_exchange_through_shared_kernel(int* out, int mode) {
  ADNN_SHARED(int, s, [32]);
  const unsigned lane = threadIdx.x % 32;
  s[lane] = int(lane);
  if (mode == 0) __syncwarp();
  if (mode == 2) (void)__shfl_sync(0xffffffffu, 0, 0);
  out[lane] = s[lane ^ 1];
}
// Atomics on shared memory are not races; a histogram then read after a barrier.
__global__ void shared_atomics_kernel(int* out) {
  ADNN_SHARED(int, hist, [4]);
  const unsigned t = threadIdx.x;
  if (t < 4) hist[t] = 0;
  __syncthreads();
  atomicAdd(&hist[t % 4], 1);
  __syncthreads();
  if (t < 4) out[t] = hist[t];
}
// Broken: an index past the end of a static shared array.
__global__ void shared_out_of_bounds_kernel(int* out) {
  ADNN_SHARED(int, s, [32]);
  s[threadIdx.x] = 1;  // launched with 33 threads
  out[0] = 0;
}

template <class T>
dvec<T> random_vec(size_t n, uint64_t seed, double lo = -2, double hi = 2) {
  Generator g(seed);
  dvec<T> v(n);
  for (auto& x : v) x = T(float(lo + (hi - lo) * g.uniform()));
  return v;
}

// References from the CPU backend through the ops, in f64.
template <class T>
Tensor host_matrix(const dvec<T>& v, int64_t rows, int64_t cols) {
  return from_vector(std::vector<double>(v.begin(), v.end()), {rows, cols}, DType::f64);
}
template <class T>
dvec<T> reduce_ref(ReduceOp op, const dvec<T>& x, int64_t rows, int64_t R) {
  Tensor t = host_matrix(x, rows, R);
  Tensor r = op == ReduceOp::sum ? sum(t, {1}) : (op == ReduceOp::max ? amax(t, {1}) : amin(t, {1}));
  auto v = r.to_vector<T>();
  return dvec<T>(v.begin(), v.end());
}

template <class A, class B>
double rel_err(const A& a, const B& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double x = double(to_float(a[i])), y = double(to_float(b[i]));
    m = std::max(m, std::fabs(x - y) / (1.0 + std::fabs(y)));
  }
  return m;
}

// Runs `broken` in a child process (stdout and stderr captured, the emulator's SIGSEGV handler
// put back in front of doctest's, 60 s at most) and returns its exit status and output; the
// child exits 0 if `broken` returns, 3 if it throws.
std::pair<int, std::string> run_in_child(const std::function<void()>& broken) {
  int err[2];
  REQUIRE(::pipe(err) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(err[1], 1);
    ::dup2(err[1], 2);
    ::close(err[0]);
    ::alarm(60);                        // a hang fails the test instead of stalling the suite
    sim::install_host_guard_handler();  // doctest's per-test-case crash handler replaced it
    try {
      broken();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "threw: %s\n", e.what());
      ::_exit(3);
    }
    std::fprintf(stderr, "the broken code went on\n");
    ::_exit(0);
  }
  ::close(err[1]);
  std::string text;
  char buf[4096];
  for (ssize_t k; (k = ::read(err[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(k));
  ::close(err[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return {status, text};
}

}  // namespace

TEST_SUITE("sim") {
  TEST_CASE("emulated mma.sync m16n8k16 computes D = A·B + C in the documented fragment layout") {
    auto run = [](auto tag) {
      using T = decltype(tag);
      dvec<T> A(256), B(128);
      dvec<float> Af(256), Bf(128), D(128, -7.f);
      for (int i = 0; i < 256; ++i) Af[size_t(i)] = float(A[size_t(i)] = T(float((i * 7) % 13) - 6.f) );
      for (int i = 0; i < 128; ++i) Bf[size_t(i)] = float(B[size_t(i)] = T(float((i * 5) % 11) * 0.5f - 2.f));
      ADNN_LAUNCH(mma_tile_kernel<T>, dim3(1), dim3(32), 0, nullptr, A.data(), B.data(), D.data(), 32u);
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 8; ++j) {
          float want = 1.f;
          for (int k = 0; k < 16; ++k) want += Af[size_t(i * 16 + k)] * Bf[size_t(k * 8 + j)];
          CHECK(D[size_t(i * 8 + j)] == want);  // small integers and halves: exact
        }
      CHECK_THROWS_WITH_AS(
          ADNN_LAUNCH(mma_tile_kernel<T>, dim3(1), dim3(32), 0, nullptr, A.data(), B.data(), D.data(), 31u),
          doctest::Contains("needs all 32 lanes, lane 31 of warp 0 is not running"), Error);
    };
    run(f16{});
    run(bf16{});
  }

  TEST_CASE("elementwise geometry: coalesce merges what every operand steps through as one; offsets on every path") {
    // make a Geom as the launchers do (sizes, then each operand's strides), coalesce it
    auto geom = [](std::vector<int64_t> size, std::vector<std::vector<int64_t>> strides) {
      Geom g;
      g.ndim = int(size.size());
      for (int d = 0; d < g.ndim; ++d) {
        g.size[d] = size[size_t(d)];
        for (size_t k = 0; k < strides.size(); ++k) g.stride[k][d] = strides[k][size_t(d)];
      }
      return g;
    };
    // the reference: row-major coordinates of i, dotted with each operand's strides
    auto reference = [](const Geom& g, int64_t i, int k) {
      int64_t off = 0;
      for (int d = g.ndim - 1; d >= 0; --d) {
        off += (i % g.size[d]) * g.stride[k][d];
        i /= g.size[d];
      }
      return off;
    };
    struct Case {
      const char* what;
      Geom g;
      int ndim;  // after coalesce
    };
    const std::vector<Case> cases = {
        {"contiguous (N, H, W, C)", geom({2, 3, 4, 5}, {{60, 20, 5, 1}, {60, 20, 5, 1}}), 1},
        {"NCHW source into NHWC: (N), (H, W) merged, (C)", geom({2, 3, 4, 5}, {{60, 20, 5, 1}, {60, 4, 1, 12}}), 3},
        {"a per-channel operand broadcast over (N, H, W)", geom({2, 3, 4, 5}, {{60, 20, 5, 1}, {0, 0, 0, 1}}), 2},
        {"size-1 dimensions dropped", geom({1, 6, 1, 7}, {{42, 7, 7, 1}, {99, 7, 5, 1}}), 1},
        {"a narrowed view (row stride 9 of 7 used)", geom({4, 7}, {{7, 1}, {9, 1}}), 2},
        {"one element", geom({1, 1}, {{1, 1}, {5, 3}}), 1},
        {"a reversed stride on one operand", geom({3, 4}, {{4, 1}, {-4, 1}}), 2},
    };
    for (const Case& c : cases) {
      INFO(c.what);
      Geom g = c.g;
      coalesce(g);
      CHECK(g.ndim == c.ndim);
      CHECK(g.index32);
      int64_t n = 1;
      for (int d = 0; d < c.g.ndim; ++d) n *= c.g.size[d];
      // every path: coalesced (1-D fast path or 32-bit), the same geometry with 64-bit
      // indexing, and the original uncoalesced one
      Geom wide = g;
      wide.index32 = false;
      Geom raw = c.g;
      for (const Geom* run : {&g, &wide, &raw}) {
        dvec<int64_t> off(size_t(2 * n), -777);
        ADNN_LAUNCH(geom_offsets_kernel, dim3(2), dim3(32), 0, nullptr, *run, n, off.data());
        for (int64_t i = 0; i < n; ++i)
          for (int k = 0; k < 2; ++k) CHECK(off[size_t(2 * i + k)] == reference(c.g, i, k));
      }
    }
    // a count past 2^31 keeps 64-bit indexing (geometry only: nothing allocated)
    Geom big = geom({3, 1 << 30}, {{1 << 30, 1}, {1, 3}});
    coalesce(big);
    CHECK(big.ndim == 2);
    CHECK_FALSE(big.index32);
  }

  TEST_CASE("IntDivider (kernels/loops.cuh): n / d by multiply-high and shift equals the division") {
    CHECK_THROWS_WITH_AS(IntDivider(0), doctest::Contains("IntDivider: divisor 0"), Error);
    CHECK_THROWS_WITH_AS(IntDivider((uint32_t(1) << 31) + 1), doctest::Contains("outside [1, 2^31]"), Error);
    auto check = [](uint32_t d, uint32_t n) {
      const IntDivider div(d);
      if (div.div(n) != n / d) {
        FAIL_CHECK("d " << d << " n " << n << ": " << div.div(n) << " != " << n / d);
        return false;
      }
      return true;
    };
    const uint32_t top = (uint32_t(1) << 31) - 1;  // the largest n it takes
    // small divisors against a run of n from 0 and the last n below 2^31
    for (uint32_t d = 1; d <= 1100; ++d) {
      bool ok = true;
      for (uint32_t n = 0; n < 4 * d + 70 && ok; ++n) ok = check(d, n) && check(d, top - n);
      if (!ok) break;
    }
    // powers of two, their neighbours, 2^31 itself, and the multiples of d and their neighbours
    for (uint32_t k = 0; k <= 31; ++k)
      for (int64_t delta : {-1, 0, 1}) {
        const int64_t d = (int64_t(1) << k) + delta;
        if (d < 1 || d > (int64_t(1) << 31)) continue;
        for (uint32_t n : {0u, 1u, uint32_t(d - 1 <= top ? d - 1 : top), top, top - 1, uint32_t(d <= top ? d : top)})
          check(uint32_t(d), n);
      }
    uint64_t state = 12345;  // random divisors and numerators below 2^31
    auto next = [&] {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return uint32_t(state >> 33);  // 31 bits
    };
    for (int t = 0; t < 200000; ++t) {
      const uint32_t d = std::max<uint32_t>(1, next() >> (next() % 31)), n = next();
      if (!check(d, n)) break;
      const uint32_t q = n / d;  // the boundaries q·d − 1, q·d
      if (q > 0 && !(check(d, q * d) && check(d, q * d - 1))) break;
    }
  }

  TEST_CASE("grid-stride loops (kernels/loops.cuh): every element once, with its coordinates, fewer threads than elements") {
    // both index paths: the 32-bit one (precomputed divisors) and the int64 one that tensors of
    // 2^31 elements or more take (forced here on a small shape)
    for (bool narrow : {true, false}) {
      CAPTURE(narrow);
      const int64_t B = 2, H = 3, W = 5, C = 7, n = B * H * W * C;  // 210 elements, 2 blocks x 32 threads
      NhwcIndex ix = nhwc_index(B, H, W, C);
      REQUIRE(ix.narrow);
      ix.narrow = narrow;
      dvec<int64_t> hits(size_t(n), 0), coord(size_t(n), -1);
      ADNN_LAUNCH(loops_nhwc_kernel, dim3(2), dim3(32), 0, nullptr, ix, hits.data(), coord.data());
      for (int64_t b = 0, i = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            for (int64_t c = 0; c < C; ++c, ++i) {
              CHECK(hits[size_t(i)] == 1);
              CHECK(coord[size_t(i)] == ((b * 100 + h) * 100 + w) * 100 + c);
            }
      const int64_t outer = 4, mid = 3, inner = 11, m = outer * mid * inner;
      Index3d ix3 = index_3d(outer, mid, inner);
      REQUIRE(ix3.narrow);
      ix3.narrow = narrow;
      dvec<int64_t> hits3(size_t(m), 0), coord3(size_t(m), -1);
      ADNN_LAUNCH(loops_3d_kernel, dim3(3), dim3(32), 0, nullptr, ix3, hits3.data(), coord3.data());
      for (int64_t o = 0, i = 0; o < outer; ++o)
        for (int64_t j = 0; j < mid; ++j)
          for (int64_t k = 0; k < inner; ++k, ++i) {
            CHECK(hits3[size_t(i)] == 1);
            CHECK(coord3[size_t(i)] == (o * 100 + j) * 100 + k);
          }
    }
    // the index paths by size: 2^31 − 1 elements are 32-bit, 2^31 are not (geometry only)
    CHECK(nhwc_index(1, 1, 1, (int64_t(1) << 31) - 1).narrow);
    CHECK_FALSE(nhwc_index(2, 1, 1, int64_t(1) << 30).narrow);
    CHECK_FALSE(index_3d(1, 1 << 16, 1 << 15).narrow);
    CHECK_FALSE(nhwc_index(0, 3, 3, 3).narrow);
  }

  TEST_CASE("3-D grids and blocks cover every (block, thread) exactly once") {
    const dim3 grid(3, 2, 2), block(4, 3, 2);
    dvec<unsigned> out(12 * 24, 0xffffffffu);
    ADNN_LAUNCH(write_ids_kernel, grid, block, 0, nullptr, out.data());
    std::set<unsigned> seen(out.begin(), out.end());
    CHECK(seen.size() == out.size());
    for (unsigned b = 0; b < 12; ++b)
      for (unsigned t = 0; t < 24; ++t) CHECK(out[b * 24 + t] == b * 100000 + t);
  }

  TEST_CASE("static shared memory and __syncthreads") {
    dvec<float> in(4 * 128), out(in.size(), NAN);
    for (size_t i = 0; i < in.size(); ++i) in[i] = float(i);
    for (uint64_t seed : {1, 2, 3}) {
      sim::set_seed(seed);
      ADNN_LAUNCH(reverse_kernel, dim3(4), dim3(128), 0, nullptr, in.data(), out.data());
      for (int b = 0; b < 4; ++b)
        for (int t = 0; t < 128; ++t) CHECK(out[b * 128 + t] == in[b * 128 + 127 - t]);
    }
    // the barrier dropped at run time (scripts/check-barriers.sh's instrument) is as if deleted:
    // the race checker reports it; unchecked, the answer is wrong; other sites are untouched
    // (the process's own drop, ADNN_SIM_DROP_BARRIER under scripts/check-barriers.sh, is restored)
    struct restore_drop {
      sim::barrier_site previous;
      ~restore_drop() { sim::drop_barrier(std::move(previous)); }
    } process_drop{sim::drop_barrier({"tests/test_sim.cpp", reverse_kernel_barrier_line})};
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(reverse_kernel, dim3(4), dim3(128), 0, nullptr, in.data(), out.data()),
                         doctest::Contains("shared-memory race in kernel reverse_kernel"), Error);
    CHECK(sim::dropped_barriers() > 0);
    std::fill(out.begin(), out.end(), NAN);
    {
      struct restore_racecheck {
        bool previous = sim::racecheck_on;
        ~restore_racecheck() { sim::set_racecheck(previous); }
      } unchecked;
      sim::set_racecheck(false);
      ADNN_LAUNCH(reverse_kernel, dim3(4), dim3(128), 0, nullptr, in.data(), out.data());
    }
    int wrong = 0;
    for (int b = 0; b < 4; ++b)
      for (int t = 0; t < 128; ++t) wrong += !(out[b * 128 + t] == in[b * 128 + 127 - t]);
    INFO("elements reversed wrongly without the barrier: " << wrong);
    CHECK(wrong > 0);
    sim::drop_barrier({"test_sim.cpp", reverse_kernel_barrier_line + 1});  // a line without a barrier
    ADNN_LAUNCH(reverse_kernel, dim3(4), dim3(128), 0, nullptr, in.data(), out.data());
    CHECK(sim::dropped_barriers() == 0);
    sim::drop_barrier({"sim.cpp", reverse_kernel_barrier_line});  // a suffix that is not a whole path component
    ADNN_LAUNCH(reverse_kernel, dim3(4), dim3(128), 0, nullptr, in.data(), out.data());
    CHECK(sim::dropped_barriers() == 0);
    sim::drop_barrier({});
    ADNN_LAUNCH(reverse_kernel, dim3(4), dim3(128), 0, nullptr, in.data(), out.data());
    for (int b = 0; b < 4; ++b)
      for (int t = 0; t < 128; ++t) CHECK(out[b * 128 + t] == in[b * 128 + 127 - t]);
  }

  TEST_CASE("dynamic shared memory") {
    dvec<int> in(300), out(3, -1);
    for (int i = 0; i < 300; ++i) in[i] = i;
    ADNN_LAUNCH(dynamic_shared_kernel, dim3(3), dim3(64), 300 * sizeof(int), nullptr, in.data(), out.data(), 300);
    for (int v : out) CHECK(v == 2 * (299 * 300 / 2));
  }

  TEST_CASE("warp shuffles") {
    dvec<int> out(2 * 64 * 5, -1);
    ADNN_LAUNCH(shuffle_kernel, dim3(2), dim3(64), 0, nullptr, out.data());
    for (int w = 0; w < 4; ++w)
      for (int lane = 0; lane < 32; ++lane) {
        const int* o = out.data() + w * 32 * 5 + lane * 5;
        CHECK(o[0] == (lane ^ 1) * 10);
        CHECK(o[1] == (lane + 3 < 32 ? lane + 3 : lane) * 10);
        CHECK(o[2] == (lane >= 2 ? lane - 2 : lane) * 10);
        CHECK(o[3] == 70);
        CHECK(o[4] == (lane ^ 4) * 10);
      }
  }

  TEST_CASE("warp votes") {
    dvec<unsigned> out(4, 7);
    ADNN_LAUNCH(vote_kernel, dim3(1), dim3(32), 0, nullptr, out.data());
    unsigned want = 0;
    for (int l = 0; l < 32; l += 3) want |= 1u << l;
    CHECK(out[0] == want);
    CHECK(out[1] == 1);
    CHECK(out[2] == 1);
    CHECK(out[3] == 0);
  }

  TEST_CASE("atomics across concurrently running blocks") {
    dvec<int> counter(1, 0), maxv(1, -1);
    dvec<float> fsum(1, 0.f);
    ADNN_LAUNCH(atomic_kernel, dim3(40), dim3(96), 0, nullptr, counter.data(), fsum.data(), maxv.data());
    CHECK(counter[0] == 40 * 96);
    CHECK(fsum[0] == doctest::Approx(40 * 96 * 0.5));
    CHECK(maxv[0] == 40 * 96 - 1);
  }

  TEST_CASE("a barrier reached by only part of a block is reported, kernel errors propagate") {
    dvec<int> out(32);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(divergent_barrier_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                         doctest::Contains("SIMT emulator: deadlock in block (0, 0, 0)"), Error);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(throwing_kernel, dim3(2), dim3(32), 0, nullptr, out.data()),
                         doctest::Contains("kernel-side failure in thread 5"), Error);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(throwing_kernel, dim3(1), dim3(2048), 0, nullptr, out.data()),
                         doctest::Contains("kernel launch: invalid block (2048, 1, 1)"), Error);
  }

  TEST_CASE("a host pointer handed to a kernel fails as it would on a GPU, naming the kernel and argument") {
    std::vector<int> host(32);  // plain host memory
    dvec<int> dev(32);
    CHECK_NOTHROW(ADNN_LAUNCH(throwing_kernel, dim3(1), dim3(1), 0, nullptr, dev.data()));
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(throwing_kernel, dim3(1), dim3(32), 0, nullptr, host.data()),
                         doctest::Contains("kernel launch throwing_kernel: argument 0"), Error);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(throwing_kernel, dim3(1), dim3(32), 0, nullptr, host.data()),
                         doctest::Contains("is not device memory"), Error);
    // a CPU tensor's data handed to a launch: the same (the class of the fused-AdamW bug)
    Tensor t = zeros({32}, DType::i32);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(throwing_kernel, dim3(1), dim3(32), 0, nullptr, t.data_ptr<int>()),
                         doctest::Contains("is not device memory"), Error);
    Tensor d = zeros({32}, TensorOptions(DType::i32, kCUDA));
    CHECK_NOTHROW(ADNN_LAUNCH(throwing_kernel, dim3(1), dim3(1), 0, nullptr, d.data_ptr<int>()));
  }

  // The reverse direction: host code that dereferences a device pointer. On a GPU that is a
  // segfault; the emulator's device memory is host memory, so before the host guard such code
  // passed every test (stop 39's index check read its index this way). A child process does the
  // deliberately broken read; it must die naming the fault.
  TEST_CASE("host code reading device memory faults as it would on a GPU, naming it; device work still runs") {
    if (!sim::host_guard_on()) {
      // the guard needs protection keys enabled by the OS (the `ospke` CPU flag); where they are,
      // a guard that is off is a failure
      std::ifstream cpuinfo("/proc/cpuinfo");
      std::string line;
      bool ospke = false;
      while (std::getline(cpuinfo, line))
        if (line.rfind("flags", 0) == 0 && (line + " ").find(" ospke ") != std::string::npos) ospke = true;
      REQUIRE_MESSAGE(!ospke,
                      "this CPU and kernel have protection keys, but the host guard is off "
                      "(ADNN_SIM_HOST_GUARD=0, or no arena)");
      MESSAGE("no memory protection keys (no `ospke` CPU flag): the host guard is off, its check skipped");
      return;
    }
    const Tensor index = arange(0, 8, 1, TensorOptions(DType::i64, kCUDA));  // (8,) made by a kernel
    // device work opens the memory: a kernel, a library GEMM, copies both ways, a memset
    const Tensor a = full({3, 4}, 2.0, TensorOptions(DType::f32, kCUDA));
    const Tensor b = full({4, 2}, 0.5, TensorOptions(DType::f32, kCUDA));
    CHECK(matmul(a, b).to(kCPU).data_ptr<float>()[5] == 4.0f);
    CHECK(index.to(kCPU).data_ptr<int64_t>()[7] == 7);
    Tensor z = zeros({4}, TensorOptions(DType::f32, kCUDA));
    CHECK(z.to(kCPU).data_ptr<float>()[3] == 0.0f);
    // the broken host-side range check (what check_index did until 624f103)
    auto broken_check_index = [](const Tensor& idx, int64_t n) {
      const int64_t* p = idx.data_ptr<int64_t>();  // a device pointer
      for (int64_t i = 0; i < idx.numel(); ++i)
        if (p[i] < 0 || p[i] >= n) return false;
      return true;
    };
    auto [status, text] = run_in_child([&] {
      const bool ok = broken_check_index(index, 8);
      std::fprintf(stderr, "the host read device memory (%d)\n", int(ok));
    });
    INFO("child's output: " << text);
    CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));  // it died (SIGSEGV, or the sanitizer's exit)
    CHECK(text.find("host code touched emulated device memory at 0x") != std::string::npos);
    CHECK(text.find("device pointer dereferenced on the host") != std::string::npos);
    CHECK(text.find("went on") == std::string::npos);  // (run_in_child's line after the broken code)
    // the parent's memory is intact and device work still runs after the child's fault
    CHECK(index.to(kCPU).data_ptr<int64_t>()[3] == 3);
  }

  // The arena's guard pages: a deliberately broken kernel whose last thread reads one element
  // past its input, which ends on a page boundary (as the caching allocator's segments do), is
  // stopped at that read with a message naming the allocation; in bounds it runs. Device work
  // reading freed device memory is stopped too.
  TEST_CASE("a kernel reading past the end of a device allocation, or freed device memory, faults, naming it") {
    constexpr int n = 1024;  // floats: 4,096 bytes, one page
    auto* x = static_cast<float*>(sim::device_arena_alloc(n * sizeof(float)));
    auto* y = static_cast<float*>(sim::device_arena_alloc(32 * sizeof(float)));
    REQUIRE(x != nullptr);
    REQUIRE(y != nullptr);
    struct Free {
      void* p;
      ~Free() { sim::device_arena_free(p); }
    } fx{x}, fy{y};
    if (!sim::device_arena_guarded(x)) {
      // no arena (address space refused) or no mapping split left: said, and not a failure here
      MESSAGE("the allocation has no guard page (no device arena, or vm.max_map_count reached): check skipped");
      return;
    }
    {
      sim::device_access open;
      for (int i = 0; i < n; ++i) x[i] = float(i);
    }
    ADNN_LAUNCH(shifted_copy_kernel, dim3(1), dim3(32), 0, nullptr, x, y, n - 32);  // the last 32: in bounds
    std::vector<float> got(32);
    {
      sim::device_access open;
      std::memcpy(got.data(), y, sizeof(float) * 32);
    }
    CHECK(got[31] == float(n - 1));
    // one block: its launch forms no OpenMP team, safe after fork
    auto [status, text] =
        run_in_child([&] { ADNN_LAUNCH(shifted_copy_kernel, dim3(1), dim3(32), 0, nullptr, x, y, n - 31); });
    INFO("child's output: " << text);
    CHECK_FALSE((WIFEXITED(status) && WEXITSTATUS(status) == 0));  // it died (SIGSEGV, or the sanitizer's exit)
    CHECK(text.find("an access past the end of a device allocation at 0x") != std::string::npos);
    CHECK(text.find(" of 4096 bytes, 0 bytes past its end") != std::string::npos);
    CHECK(text.find("went on") == std::string::npos);
    // a use after free by device work (a launch's own pointer check refuses a freed argument
    // first, so the stale read is a library call's or a copy's): the input freed in the child
    auto [status2, text2] = run_in_child([&] {
      sim::device_arena_free(x);
      sim::device_access open;
      std::fprintf(stderr, "read %f\n", double(*static_cast<volatile float*>(x + 5)));
    });
    INFO("child's output: " << text2);
    CHECK_FALSE((WIFEXITED(status2) && WEXITSTATUS(status2) == 0));
    CHECK(text2.find("no allocation holds (freed, or never allocated)") != std::string::npos);
    CHECK(text2.find("went on") == std::string::npos);
  }

  TEST_CASE("static shared memory starts poisoned; a shuffle from an exited lane reads poison") {
    dvec<unsigned> out(64, 0);
    ADNN_LAUNCH(read_unwritten_shared_kernel, dim3(2), dim3(32), 0, nullptr, out.data());
    for (int i = 0; i < 64; ++i) CHECK(out[i] == 0xffffffffu);  // every block, not only the first
    dvec<unsigned> got(32, 0);
    ADNN_LAUNCH(shuffle_from_exited_lane_kernel, dim3(1), dim3(32), 0, nullptr, got.data());
    for (int i = 0; i < 16; ++i) CHECK(got[i] == 0xffffffffu);  // lanes 16..31 exited before the shuffle
  }

  TEST_CASE("a missing __syncthreads: the race checker reports it on every run; unchecked, the answer is wrong") {
    const int64_t rows = 64, R = 1000;
    auto x = random_vec<float>(rows * R, 5, 0.5, 1.5);
    dvec<float> ref(rows), good(rows, NAN), bad(rows, NAN);
    ref = reduce_ref(ReduceOp::sum, x, rows, R);
    launch_reduce_rows(ReduceOp::sum, x.data(), good.data(), nullptr, rows, R, nullptr);  // one slice per row
    CHECK(rel_err(good, ref) < 1e-5);
    REQUIRE(sim::racecheck_on);  // tests run with the checker (ADNN_SIM_RACECHECK unset or 1)
    for (uint64_t seed : {1, 2, 3, 4, 5, 6, 7, 8}) {  // every thread order: found, not by luck
      sim::set_seed(seed);
      CHECK_THROWS_WITH_AS(
          ADNN_LAUNCH(sum_rows_missing_barrier_kernel, dim3(rows), dim3(256), 0, nullptr, x.data(), bad.data(), R),
          doctest::Contains("shared-memory race in kernel sum_rows_missing_barrier_kernel"), Error);
      // a single block of 64 threads with one reader per warp: still every run
      CHECK_THROWS_WITH_AS(
          ADNN_LAUNCH(sum_rows_missing_barrier_kernel, dim3(1), dim3(64), 0, nullptr, x.data(), bad.data(), R),
          doctest::Contains("4 bytes at static shared offset"), Error);
    }
    sim::set_racecheck(false);
    ADNN_LAUNCH(sum_rows_missing_barrier_kernel, dim3(rows), dim3(256), 0, nullptr, x.data(), bad.data(), R);
    sim::set_racecheck(true);
    int wrong = 0;
    for (int64_t r = 0; r < rows; ++r) wrong += !(std::fabs(bad[r] - ref[r]) <= 1e-3f * ref[r]);  // NaN is wrong
    INFO("rows with a wrong sum: " << wrong);
    CHECK(wrong > rows / 4);
  }

  TEST_CASE("race checker: dynamic shared memory, write-after-read, warp-synchronous code, atomics, bounds") {
    dvec<int> in(128), out(128, -1);
    for (int i = 0; i < 128; ++i) in[i] = i;
    for (uint64_t seed : {11, 12, 13}) {
      sim::set_seed(seed);
      CHECK_THROWS_WITH_AS(ADNN_LAUNCH(dynamic_shared_missing_barrier_kernel, dim3(2), dim3(128), 128 * sizeof(int),
                                       nullptr, in.data(), out.data()),
                           doctest::Contains("shared-memory race in kernel dynamic_shared_missing_barrier_kernel"),
                           Error);
      CHECK_THROWS_WITH_AS(ADNN_LAUNCH(dynamic_shared_missing_barrier_kernel, dim3(1), dim3(128), 128 * sizeof(int),
                                       nullptr, in.data(), out.data()),
                           doctest::Contains("at dynamic shared offset"), Error);
      CHECK_THROWS_WITH_AS(ADNN_LAUNCH(write_after_read_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                           doctest::Contains("thread (0, 0, 0) [linear 0, warp 0 lane 0] writes 4 bytes at static "
                                             "shared offset 0 that thread"),
                           Error);
      CHECK_THROWS_WITH_AS(ADNN_LAUNCH(write_after_read_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                           doctest::Contains("the accessing thread last waited at __shfl_sync [test_sim.cpp:"),
                           Error);
      // lanes of one warp: __syncwarp orders them, nothing or a shuffle does not
      CHECK_NOTHROW(ADNN_LAUNCH(warp_exchange_through_shared_kernel, dim3(1), dim3(32), 0, nullptr, out.data(), 0));
      for (int l = 0; l < 32; ++l) CHECK(out[l] == (l ^ 1));
      CHECK_THROWS_WITH_AS(ADNN_LAUNCH(warp_exchange_through_shared_kernel, dim3(1), dim3(32), 0, nullptr, out.data(), 1),
                           doctest::Contains("nor a __syncwarp: same warp"), Error);
      CHECK_THROWS_WITH_AS(ADNN_LAUNCH(warp_exchange_through_shared_kernel, dim3(1), dim3(32), 0, nullptr, out.data(), 2),
                           doctest::Contains("nor a __syncwarp: same warp"), Error);
    }
    CHECK_NOTHROW(ADNN_LAUNCH(shared_atomics_kernel, dim3(3), dim3(64), 0, nullptr, out.data()));
    for (int i = 0; i < 4; ++i) CHECK(out[i] == 16);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(shared_out_of_bounds_kernel, dim3(1), dim3(33), 0, nullptr, out.data()),
                         doctest::Contains("static shared array index 32 out of bounds [0, 32)"), Error);
    dvec<int> in300(300, 1);  // 300 inputs (global memory in bounds), 299 ints of shared memory
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(dynamic_shared_kernel, dim3(1), dim3(64), 299 * sizeof(int), nullptr,
                                     in300.data(), out.data(), 300),
                         doctest::Contains("past the 1196 bytes of the launch"), Error);
  }

  TEST_CASE("warp ops wait for exactly the lanes of their mask") {
    dvec<unsigned> out(96, 0);
    for (uint64_t seed : {1, 2, 3}) {
      sim::set_seed(seed);
      REQUIRE_NOTHROW(ADNN_LAUNCH(masked_shuffle_kernel, dim3(1), dim3(32), 0, nullptr, out.data()));
      for (unsigned l = 0; l < 16; ++l) {
        CHECK(out[l] == (l ^ 1) * 10);
        CHECK(out[32 + l] == 0xffffffffu);  // lane l + 16 is outside the mask: poison
        CHECK(out[64 + l] == 0x5555u);      // only the lanes of the mask vote
      }
      for (unsigned l = 16; l < 32; ++l) CHECK(out[l] == (l < 31 ? l + 1 : l) * 10);
    }
    sim::set_seed(3);  // the schedules below (which lane arrives last) from this seed, whatever ran before
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(shuffle_mask_names_waiting_lanes_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                         doctest::Contains("deadlock in block (0, 0, 0) of kernel shuffle_mask_names_waiting_lanes_kernel"),
                         Error);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(shuffle_mask_names_waiting_lanes_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                         doctest::Contains("wait at __shfl_sync (mask 0xffffffff) [test_sim.cpp:"), Error);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(syncwarp_mask_mismatch_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                         doctest::Contains("of kernel syncwarp_mask_mismatch_kernel"), Error);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(syncwarp_mask_mismatch_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                         doctest::Contains("wait at __syncwarp (mask 0x80000000)"), Error);
    CHECK_THROWS_WITH_AS(ADNN_LAUNCH(mask_without_caller_kernel, dim3(1), dim3(32), 0, nullptr, out.data()),
                         doctest::Contains("kernel mask_without_caller_kernel: __shfl_sync with mask 0xffff called by lane"),
                         Error);
    CHECK_NOTHROW(ADNN_LAUNCH(vote_with_exited_lanes_kernel, dim3(1), dim3(32), 0, nullptr, out.data()));
    CHECK(out[0] == 0xffu);
    CHECK(out[1] == 1u);
  }

  TEST_CASE("kernels vs CPU twins: row reductions, softmax, layer norm, atomics") {
    // {1, 100000} and {2, 40000}: rows split into 13 and 5 slices (reduce_rows_slices), whose
    // partials a second launch combines; NaN in one slice reaches max and min
    for (auto [rows, R] : {std::pair<int64_t, int64_t>{1, 1}, {5, 31}, {7, 200}, {3, 5000}, {1, 100000}, {2, 40000}}) {
      auto x = random_vec<float>(size_t(rows * R), uint64_t(rows * 131 + R));
      const int64_t S = reduce_rows_slices(rows, R);
      CHECK(S == (R == 100000 ? 13 : R == 40000 ? 5 : 1));
      dvec<float> part(size_t(rows * S), NAN);
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
        dvec<float> ref = reduce_ref(op, x, rows, R), got(rows, NAN);
        launch_reduce_rows(op, x.data(), got.data(), S > 1 ? part.data() : nullptr, rows, R, nullptr);
        CHECK(rel_err(got, ref) < 1e-5);
      }
      if (S > 1) {
        auto xn = x;
        xn[size_t(R - 3)] = NAN;  // the last slice of row 0
        for (ReduceOp op : {ReduceOp::max, ReduceOp::min}) {
          dvec<float> got(rows, 0.f);
          launch_reduce_rows(op, xn.data(), got.data(), part.data(), rows, R, nullptr);
          CHECK(std::isnan(got[0]));
          if (rows > 1) CHECK(!std::isnan(got[1]));
        }
      }
      dvec<int64_t> aref(rows), agot(rows, -1);
      for (int64_t r = 0; r < rows; ++r)
        aref[r] = std::max_element(x.begin() + r * R, x.begin() + (r + 1) * R) - (x.begin() + r * R);
      dvec<float> apart_v(size_t(rows * S), NAN);  // the slices' partials, as reduce_rows'
      dvec<int64_t> apart_i(size_t(rows * S), -1);
      launch_argmax_rows(x.data(), agot.data(), S > 1 ? apart_v.data() : nullptr, S > 1 ? apart_i.data() : nullptr,
                         rows, R, nullptr);
      CHECK(agot == aref);
      dvec<float> sgot(x.size(), NAN), gx(x.size(), NAN);
      const auto g = random_vec<float>(x.size(), uint64_t(R + 17));
      for (bool log : {false, true}) {
        Tensor t = host_matrix(x, rows, R);
        std::vector<float> sref = (log ? log_softmax(t, 1) : softmax(t, 1)).to_vector<float>();
        launch_softmax<float, float, float>(x.data(), sgot.data(), rows, R, 1, log, nullptr);
        CHECK(rel_err(sgot, sref) < 1e-5);
        // backward: gx = y (g − Σ g y), log form g − exp(y) Σ g, against the formula in double
        std::fill(gx.begin(), gx.end(), NAN);
        launch_softmax_backward<float, float, float>(g.data(), sgot.data(), gx.data(), rows, R, 1, log, nullptr);
        dvec<float> gref(x.size());
        for (int64_t i = 0; i < rows; ++i) {
          double sg = 0;
          for (int64_t k = 0; k < R; ++k) sg += log ? double(g[i * R + k]) : double(g[i * R + k]) * sgot[i * R + k];
          for (int64_t k = 0; k < R; ++k) {
            const double gv = g[i * R + k], yv = sgot[i * R + k];
            gref[i * R + k] = float(log ? gv - std::exp(yv) * sg : yv * (gv - sg));
          }
        }
        CHECK(rel_err(gx, gref) < 1e-4);
      }
    }
    // which kernel each shape above and the registry's get: rows held in registers (kernels/rows.cuh)
    // with the widest vector the row allows, one warp a row up to 32·N·V values, the strided
    // kernel past 1,024 threads' registers
    {
      alignas(64) static float buf[16];
      auto geo = [](int64_t rows, int64_t D, const float* p = nullptr) {
        return row_geom(rows, D, 4, {{p ? p : buf, sizeof(float)}});
      };
      RowGeom g1 = geo(5, 31);
      CHECK((g1.fits && g1.v == 1 && g1.n == 1 && g1.tx == 32 && g1.ty == 8 && g1.blocks == 1));
      RowGeom g2 = geo(7, 200);
      CHECK((g2.fits && g2.v == 4 && g2.n == 2 && g2.tx == 32 && g2.ty == 8));
      RowGeom g3 = geo(3, 5000);  // 1,250 vectors: 320 threads of 4
      CHECK((g3.fits && g3.v == 4 && g3.n == 4 && g3.tx == 320 && g3.ty == 1 && g3.blocks == 3));
      RowGeom g4 = geo(6, 1280);  // 320 vectors: 96 threads of 4, 2 rows a block
      CHECK((g4.fits && g4.v == 4 && g4.n == 4 && g4.tx == 96 && g4.ty == 2 && g4.blocks == 3));
      CHECK(geo(37, 49).n == 2);
      CHECK(geo(1, 96, buf + 1).v == 1);  // 4 bytes off a 16-byte boundary
      CHECK(geo(1, 96, buf + 2).v == 1);  // 8 bytes off: pairs would do, but only 4 and 1 are built
      CHECK(geo(1, 50).v == 1);           // D = 50: pairs would do
      CHECK((geo(2, 8192).fits && geo(2, 8192).tx == 512 && geo(2, 8192).n == 4));
      CHECK_FALSE(geo(2, 8196).fits);  // 512 threads of 16 values at most
      CHECK((geo(1, 2048, buf + 1).fits && geo(1, 2048, buf + 1).tx == 512));
      CHECK_FALSE(geo(1, 2049).fits);  // scalar: 4 values a thread
      CHECK_FALSE(geo(1, 100000).fits);
      CHECK_FALSE(geo(0, 10).fits);
      CHECK_FALSE(geo(3, 0).fits);
      // 16-bit rows: 8 values a vector, 2 vectors a thread at most (16 values in registers)
      alignas(64) static uint16_t hbuf[16];
      RowGeom h = row_geom(4, 1280, 8, {{hbuf, 2}, {buf, sizeof(float)}});
      CHECK((h.fits && h.v == 8 && h.n == 2 && h.tx == 96));
    }
    // rows one element off a 16-byte boundary take the scalar loads; the same rows aligned, the
    // vector loads (reduce_rows_kernel<..., V>): the same sums within rounding, max/min exact
    for (auto [rows, R] : {std::pair<int64_t, int64_t>{7, 200}, {300, 64}, {3, 4096}}) {
      auto xm = random_vec<float>(size_t(rows * R + 1), uint64_t(R + 5));
      dvec<float> xa(xm.begin() + 1, xm.end());
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
        dvec<float> ref = reduce_ref(op, xa, rows, R), ga(rows, NAN), gm(rows, NAN);
        launch_reduce_rows(op, xa.data(), ga.data(), nullptr, rows, R, nullptr);
        launch_reduce_rows(op, xm.data() + 1, gm.data(), nullptr, rows, R, nullptr);
        CHECK(rel_err(ga, ref) < 1e-5);
        CHECK(rel_err(gm, ref) < 1e-5);
        if (op != ReduceOp::sum) CHECK(ga == ref);
      }
    }
    dvec<double> xd = random_vec<double>(1000, 3);
    dvec<double> dref = reduce_ref(ReduceOp::sum, xd, 4, 250), dgot(4, NAN);
    launch_reduce_rows(ReduceOp::sum, xd.data(), dgot.data(), nullptr, 4, 250, nullptr);
    for (int i = 0; i < 4; ++i) CHECK(dgot[i] == doctest::Approx(dref[i]).epsilon(1e-12));
    auto v = random_vec<float>(100000, 8);
    dvec<float> total(1, 0.f);
    launch_sum_all_atomic(v.data(), total.data(), 100000, nullptr);
    double want = 0;
    for (float f : v) want += f;
    CHECK(total[0] == doctest::Approx(want).epsilon(1e-4).scale(100));

    for (auto [rows, D] : {std::pair<int64_t, int64_t>{3, 7}, {9, 300}, {4, 2048}}) {
      auto x = random_vec<float>(size_t(rows * D), uint64_t(D), -3, 5);
      auto w = random_vec<float>(size_t(D), 1), b = random_vec<float>(size_t(D), 2);
      dvec<float> yg(x.size(), NAN), mg(rows, NAN), rg(rows, NAN);
      Tensor t = host_matrix(x, rows, D);
      std::vector<float> yr = layer_norm(t, {D}, host_matrix(w, 1, D).reshape({D}), host_matrix(b, 1, D).reshape({D}),
                                         1e-5).to_vector<float>();
      std::vector<float> mr = mean(t, {1}).to_vector<float>();
      std::vector<float> rr = rsqrt(add(var(t, {1}, 0), 1e-5)).to_vector<float>();
      ADNN_LAUNCH((layer_norm_rows_kernel<float, float, float>), row_grid(rows), dim3(row_threads(D)), 0, nullptr,
                  x.data(), w.data(), b.data(), yg.data(), mg.data(), rg.data(), rows, D, 1e-5);
      CHECK(rel_err(yg, yr) < 2e-5);
      CHECK(rel_err(mg, mr) < 1e-5);
      CHECK(rel_err(rg, rr) < 1e-5);
      // the same rows held in registers (layer_norm_cached_kernel), whatever width they get
      const RowGeom rgeo = row_geom(rows, D, 4, {{x.data(), 4}, {yg.data(), 4}, {w.data(), 4}, {b.data(), 4}});
      REQUIRE(rgeo.fits);
      std::fill(yg.begin(), yg.end(), NAN);
      std::fill(mg.begin(), mg.end(), NAN);
      std::fill(rg.begin(), rg.end(), NAN);
      with_row_geom<4>(rgeo, [&](auto vc, auto nc) {
        constexpr int V = decltype(vc)::value, N = decltype(nc)::value;
        ADNN_LAUNCH((layer_norm_cached_kernel<float, float, float, V, N>), row_blocks(rgeo), dim3(rgeo.tx, rgeo.ty), 0,
                    nullptr, x.data(), w.data(), b.data(), yg.data(), mg.data(), rg.data(), rows, D, 1e-5);
      });
      CHECK(rel_err(yg, yr) < 2e-5);
      CHECK(rel_err(mg, mr) < 1e-5);
      CHECK(rel_err(rg, rr) < 1e-5);
    }
  }

  TEST_CASE("elementwise kernels broadcast through strides and compute f16 in f32") {
    // (4, 1, 6) * (5, 1) -> (4, 5, 6); b is addressed with stride 1 along dim 1
    Geom g;
    g.ndim = 3;
    int64_t size[3] = {4, 5, 6}, so[3] = {30, 6, 1}, sa[3] = {6, 0, 1}, sb[3] = {0, 1, 0};
    for (int d = 0; d < 3; ++d) {
      g.size[d] = size[d];
      g.stride[0][d] = so[d];
      g.stride[1][d] = sa[d];
      g.stride[2][d] = sb[d];
    }
    auto a = random_vec<float>(24, 1), b = random_vec<float>(5, 2);
    dvec<float> out(120, NAN);
    ADNN_LAUNCH((binary_kernel<float, float>), grid_for(120), dim3(256), 0, nullptr, BinaryOp::mul, a.data(), b.data(),
                out.data(), int64_t(120), g);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 5; ++j)
        for (int k = 0; k < 6; ++k) CHECK(out[(i * 5 + j) * 6 + k] == a[i * 6 + k] * b[j]);
    Geom g1;
    g1.ndim = 1;
    g1.size[0] = 1000;
    g1.stride[0][0] = 1;
    g1.stride[1][0] = 1;
    auto u = random_vec<half>(1000, 4);
    dvec<half> ug(1000);
    ADNN_LAUNCH(unary_kernel<half>, grid_for(1000), dim3(256), 0, nullptr, UnaryOp::gelu, u.data(), ug.data(),
                int64_t(1000), g1, 0.0, 0.0);
    for (int i = 0; i < 1000; ++i) {
      double x = double(float(u[i]));
      double want = 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
      CHECK(float(ug[i]) == doctest::Approx(want).epsilon(2e-3).scale(1e-3));
    }
  }

  // The launcher (src/cuda/conv.cpp) takes 32-bit indices whenever a tensor has fewer than
  // 2^30 elements, so every other test runs the int32 kernels; here the same small problems run
  // with 64-bit indices too, and must give the same bits.
  TEST_CASE("depthwise kernels: 32-bit and 64-bit index instantiations give the same bits") {
    struct Shape {
      int64_t n, h, w, c, k, s, p;
    };
    for (Shape sh : {Shape{2, 9, 7, 12, 3, 1, 1}, Shape{1, 8, 9, 5, 5, 2, 2}}) {
      INFO("C " << sh.c << " kernel " << sh.k);
      ConvGeom g{};
      g.N = sh.n, g.H = sh.h, g.W = sh.w, g.C = sh.c, g.O = sh.c, g.KH = g.KW = sh.k, g.sh = g.sw = sh.s;
      g.pt = g.pl = sh.p, g.dh = g.dw = 1, g.groups = sh.c;
      g.OH = (g.H + 2 * sh.p - sh.k) / sh.s + 1, g.OW = (g.W + 2 * sh.p - sh.k) / sh.s + 1;
      const int64_t nx = g.N * g.H * g.W * g.C, ny = g.N * g.OH * g.OW * g.C, KK = g.KH * g.KW;
      dvec<float> x(static_cast<size_t>(nx)), gy(static_cast<size_t>(ny)), w(static_cast<size_t>(g.C * KK)),
          b(static_cast<size_t>(g.C));
      uint32_t st = 7;
      auto next = [&] { st = st * 1664525u + 1013904223u; return float(int(st >> 9) % 2001 - 1000) / 500.0f; };
      for (auto* v : {&x, &gy, &w, &b})
        for (float& e : *v) e = next();
      constexpr int V = 4;
      const int vw = sh.c % 4 == 0 ? 4 : 1;
      REQUIRE(vector_width<float>(g.C, {x.data(), gy.data()}) == vw);
      auto run = [&](auto it, auto vc) {
        using I = decltype(it);
        constexpr int W = decltype(vc)::value;
        const DepthwiseTiling t = depthwise_tiling(g.C, W, KK, sizeof(float));
        const int64_t pps = depthwise_pixels_per_slice(g.N * g.OH * g.OW, t.rows);
        const int64_t slices = (g.N * g.OH * g.OW + pps - 1) / pps;
        dvec<float> y(static_cast<size_t>(ny)), gx(static_cast<size_t>(nx)), part(static_cast<size_t>(slices * KK * g.C));
        const dim3 block(unsigned(t.lanes * t.rows));
        ADNN_LAUNCH((depthwise_forward_kernel<float, W, I>), dim3(unsigned(t.tiles), 3), block,
                    size_t(KK * W * t.pitch) * sizeof(float), nullptr, x.data(), w.data(), b.data(), y.data(), g,
                    t.lanes, t.pitch);
        ADNN_LAUNCH((depthwise_backward_input_kernel<float, W, I>), dim3(unsigned(t.tiles), 2), block,
                    size_t(KK * W * t.pitch) * sizeof(float), nullptr, gy.data(), w.data(), gx.data(), g, t.lanes,
                    t.pitch);
        ADNN_LAUNCH((depthwise_backward_weight_kernel<float, W, I>),
                    dim3(unsigned(t.tiles), unsigned(depthwise_wgrad_groups(KK, depthwise_wgrad_taps<W>)),
                         unsigned(slices)),
                    block,
                    size_t(W) * t.lanes * t.rows * sizeof(float), nullptr, gy.data(), x.data(), part.data(), g,
                    t.lanes, pps);
        std::vector<float> out(y.begin(), y.end());
        out.insert(out.end(), gx.begin(), gx.end());
        out.insert(out.end(), part.begin(), part.end());
        return out;
      };
      std::vector<float> narrow, wide;
      if (vw == V) {
        narrow = run(int32_t{}, std::integral_constant<int, V>{});
        wide = run(int64_t{}, std::integral_constant<int, V>{});
      } else {
        narrow = run(int32_t{}, std::integral_constant<int, 1>{});
        wide = run(int64_t{}, std::integral_constant<int, 1>{});
      }
      REQUIRE(narrow.size() == wide.size());
      CHECK(std::memcmp(narrow.data(), wide.data(), narrow.size() * sizeof(float)) == 0);
      // and the forward is the convolution: one output element by hand
      double want = b[0];
      for (int64_t kh = 0; kh < g.KH; ++kh)
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t ih = kh - sh.p, iw = kw - sh.p;
          if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) want += double(x[size_t((ih * g.W + iw) * g.C)]) * w[size_t(kh * g.KW + kw)];
        }
      CHECK(narrow[0] == doctest::Approx(want).epsilon(1e-5));
    }
  }

  // The row-tiled depthwise kernels (TW outputs or inputs of a row per thread, the row's
  // weights and input vectors read once) add each pixel's taps in the per-pixel kernels' order
  // and skip the same padded taps: the same bits, over kernel widths 3 and 5, column strides 1
  // and 2 (both directions), row strides and dilations, asymmetric padding, padding wider than the
  // kernel, rows shorter than one item's reach, widths not a multiple of TW, f32 (4-wide and
  // scalar vectors) and bf16 (8-wide vectors, 32 accumulators). The row's input vectors load in
  // batches (for_each_row_vector): f32 J = 9 and 11 take partial last batches (5 + 4, 6 + 5),
  // bf16 J = 9 three of 3 and J = 11 one load at a time.
  TEST_CASE("depthwise row-tiled kernels: the same bits as the per-pixel kernels") {
    struct Shape {
      int64_t n, h, w, c, kh, kw, sh, sw, dh, pt, pl;
    };
    int forward = 0, input_grad = 0;
    for (Shape sh : {Shape{2, 9, 7, 12, 3, 3, 1, 1, 1, 1, 1}, Shape{1, 8, 11, 12, 5, 5, 2, 2, 1, 2, 2},
                     Shape{1, 6, 13, 5, 3, 3, 2, 1, 2, 2, 0}, Shape{2, 5, 3, 8, 5, 5, 1, 1, 1, 2, 2},
                     Shape{1, 7, 10, 5, 1, 5, 1, 2, 1, 0, 3}, Shape{1, 4, 9, 12, 3, 3, 1, 2, 1, 0, 1},
                     Shape{1, 5, 6, 16, 3, 3, 1, 1, 1, 3, 3}, Shape{1, 3, 3, 16, 5, 5, 1, 2, 1, 2, 5},
                     Shape{1, 4, 9, 16, 3, 3, 1, 2, 1, 0, 1}})
      for (bool bf16 : {false, true}) {
        if (bf16 && sh.c % 8 != 0) continue;
        CAPTURE(sh.c);
        CAPTURE(sh.kw);
        CAPTURE(sh.sw);
        CAPTURE(sh.pl);
        CAPTURE(bf16);
        ConvGeom g{};
        g.N = sh.n, g.H = sh.h, g.W = sh.w, g.C = sh.c, g.O = sh.c, g.KH = sh.kh, g.KW = sh.kw, g.sh = sh.sh;
        g.sw = sh.sw, g.pt = sh.pt, g.pl = sh.pl, g.dh = sh.dh, g.dw = 1, g.groups = sh.c;
        g.OH = (g.H + 2 * sh.pt - sh.dh * (sh.kh - 1) - 1) / sh.sh + 1;
        g.OW = (g.W + 2 * sh.pl - (sh.kw - 1) - 1) / sh.sw + 1;
        auto run = [&](auto tag, auto vc) {
          using T = decltype(tag);
          using A = acc_t<T>;
          constexpr int V = decltype(vc)::value;
          const int64_t nx = g.N * g.H * g.W * g.C, ny = g.N * g.OH * g.OW * g.C, KK = g.KH * g.KW;
          const dvec<T> x = random_vec<T>(size_t(nx), 3), gy = random_vec<T>(size_t(ny), 4),
                        w = random_vec<T>(size_t(g.C * KK), 5), b = random_vec<T>(size_t(g.C), 6);
          REQUIRE(vector_width<T>(g.C, {x.data(), gy.data()}) == V);
          const DepthwiseTiling t = depthwise_tiling(g.C, V, KK, sizeof(A));
          const dim3 block(unsigned(t.lanes * t.rows)), grid(unsigned(t.tiles), 2);
          const size_t smem = size_t(KK * V * t.pitch) * sizeof(A);
          const T sentinel = T(INFINITY);  // no output of finite inputs is infinite
          dvec<T> y0(size_t(ny), sentinel), y1(size_t(ny), sentinel), gx0(size_t(nx), sentinel),
              gx1(size_t(nx), sentinel);
          ADNN_LAUNCH((depthwise_forward_kernel<T, V, int>), grid, block, smem, nullptr, x.data(), w.data(), b.data(),
                      y0.data(), g, t.lanes, t.pitch);
          ADNN_LAUNCH((depthwise_backward_input_kernel<T, V, int>), grid, block, smem, nullptr, gy.data(), w.data(),
                      gx0.data(), g, t.lanes, t.pitch);
          REQUIRE(depthwise_rows_kw(g) == int(g.KW));
          if (g.KW == 3 && g.sw == 1)
            ADNN_LAUNCH((depthwise_forward_rows_kernel<T, V, int, 3, 1, 4>), grid, block, smem, nullptr, x.data(),
                        w.data(), b.data(), y1.data(), g, t.lanes, t.pitch);
          if (g.KW == 3 && g.sw == 2)
            ADNN_LAUNCH((depthwise_forward_rows_kernel<T, V, int, 3, 2, 4>), grid, block, smem, nullptr, x.data(),
                        w.data(), b.data(), y1.data(), g, t.lanes, t.pitch);
          if (g.KW == 5 && g.sw == 1)
            ADNN_LAUNCH((depthwise_forward_rows_kernel<T, V, int, 5, 1, 4>), grid, block, smem, nullptr, x.data(),
                        w.data(), b.data(), y1.data(), g, t.lanes, t.pitch);
          if (g.KW == 5 && g.sw == 2)
            ADNN_LAUNCH((depthwise_forward_rows_kernel<T, V, int, 5, 2, 4>), grid, block, smem, nullptr, x.data(),
                        w.data(), b.data(), y1.data(), g, t.lanes, t.pitch);
          CHECK(std::memcmp(y0.data(), y1.data(), y0.size() * sizeof(T)) == 0);
          CHECK(std::none_of(y1.begin(), y1.end(), [](T v) { return std::isinf(float(v)); }));  // all written
          ++forward;
          if (g.KW == 3 && g.sw == 1)
            ADNN_LAUNCH((depthwise_backward_input_rows_kernel<T, V, int, 3, 1, 4>), grid, block, smem, nullptr,
                        gy.data(), w.data(), gx1.data(), g, t.lanes, t.pitch);
          if (g.KW == 3 && g.sw == 2)
            ADNN_LAUNCH((depthwise_backward_input_rows_kernel<T, V, int, 3, 2, 4>), grid, block, smem, nullptr,
                        gy.data(), w.data(), gx1.data(), g, t.lanes, t.pitch);
          if (g.KW == 5 && g.sw == 1)
            ADNN_LAUNCH((depthwise_backward_input_rows_kernel<T, V, int, 5, 1, 4>), grid, block, smem, nullptr,
                        gy.data(), w.data(), gx1.data(), g, t.lanes, t.pitch);
          if (g.KW == 5 && g.sw == 2)
            ADNN_LAUNCH((depthwise_backward_input_rows_kernel<T, V, int, 5, 2, 4>), grid, block, smem, nullptr,
                        gy.data(), w.data(), gx1.data(), g, t.lanes, t.pitch);
          CHECK(std::memcmp(gx0.data(), gx1.data(), gx0.size() * sizeof(T)) == 0);
          CHECK(std::none_of(gx1.begin(), gx1.end(), [](T v) { return std::isinf(float(v)); }));
          ++input_grad;
        };
        if (bf16)
          run(bfloat16{}, std::integral_constant<int, 8>{});
        else if (g.C % 4 == 0)
          run(float{}, std::integral_constant<int, 4>{});
        else
          run(float{}, std::integral_constant<int, 1>{});
      }
    CHECK(forward == 13);
    CHECK(input_grad == 13);
    // and the plan: dilated columns, other widths and column strides above 2 keep the per-pixel kernels
    ConvGeom d{};
    d.KW = 3, d.sw = 1, d.dw = 2;
    CHECK(depthwise_rows_kw(d) == 0);
    d.dw = 1, d.KW = 7;
    CHECK(depthwise_rows_kw(d) == 0);
    d.KW = 5, d.sw = 2;
    CHECK(depthwise_rows_kw(d) == 5);
    d.sw = 3;
    CHECK(depthwise_rows_kw(d) == 0);
  }

  TEST_CASE("linear backward: the fused bias gradient saves the reduction's launches; the fallback matches it") {
    // the emulated cuBLASLt with and without its bias-gradient epilogue: kernel launches in the
    // backward (GEMMs are library calls, not launches) and the gradients each way
    struct Restore {
      ~Restore() { cuda::set_emulated_bias_grad_epilogue(true); }
    } restore;
    manual_seed(18);
    for (DType t : {DType::f32, DType::bf16}) {
      CAPTURE(dtype_name(t));
      Tensor x0 = randn({2, 33, 40}).to(t), w0 = randn({24, 40}).to(t), b0 = randn({24}).to(t),
             g0 = randn({2, 33, 24}).to(t);  // (B, T, K), (N, K), (N), upstream (B, T, N)
      std::vector<Tensor> grads[2];
      uint64_t launched[2] = {0, 0};
      for (int fused = 0; fused < 2; ++fused) {
        cuda::set_emulated_bias_grad_epilogue(fused == 1);
        Tensor x = x0.to(kCUDA).requires_grad_(), w = w0.to(kCUDA).requires_grad_(), b = b0.to(kCUDA).requires_grad_();
        Tensor loss = sum(mul(linear(x, w, b), g0.to(kCUDA)));
        const uint64_t before = sim::launches();
        loss.backward();
        launched[fused] = sim::launches() - before;
        grads[fused] = {x.grad().to(kCPU), w.grad().to(kCPU), b.grad().to(kCPU)};
      }
      CAPTURE(launched[0]);
      CAPTURE(launched[1]);
      CHECK(launched[1] < launched[0]);  // the reduction (and, for 16 bits, its f32 -> bf16 copy) is gone
      CHECK(testing::max_abs_diff(grads[1][0], grads[0][0]) == 0);  // dx: the same GEMM either way
      CHECK(testing::max_abs_diff(grads[1][1], grads[0][1]) == 0);  // dW: the same GEMM either way
      // db: f64 sums (reference) against the reduction's f32 sums, each rounded once
      CHECK(testing::max_abs_diff(grads[1][2], grads[0][2]) <= (t == DType::f32 ? 1e-6 : 1.0 / 128) * (1 + testing::max_abs(grads[1][2])));
    }
  }
}
