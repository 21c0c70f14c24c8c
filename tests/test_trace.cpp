// The memory-access trace of emulated kernels (src/sim/trace.hpp, ADNN_SIM_TRACE builds):
// deliberately good and bad kernels, whose requests, sectors and bank conflicts are known.
// This file is compiled with the same access instrumentation as src/cuda/*.cpp (ADNN_SIM_TRACE_FLAGS).
#include <adnn/optim/ema.hpp>

#include <algorithm>
#include <string>

#include "kernels/common.cuh"
#include "kernels/conv.cuh"
#include "sim/trace.hpp"
#include "testing.hpp"

using namespace adnn;
using namespace adnn::kernels;

// Emulated device memory whose first element is 256-byte aligned, as cudaMalloc's.
struct dbuf {
  std::vector<float, adnn::sim::device_allocator<float>> v;
  float* p;
  explicit dbuf(size_t n, float fill = 0.f) : v(n + 64, fill) {
    p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 255) & ~uintptr_t(255));
  }
  float& operator[](size_t i) { return p[i]; }
};

namespace {

// y[i] = x[i]: each warp's 32 lanes read and write 128 contiguous bytes (4 sectors).
__global__ void trace_copy_kernel(const float* x, float* y, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = x[i];
}

// y[i] = x[32 i]: each lane of a load touches its own sector (32 sectors for 128 bytes used).
__global__ void trace_stride_kernel(const float* x, float* y, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = x[int64_t(i) * 32];
}

// A 32×32 tile written by rows and read by columns: with a pitch of 32 floats the column read
// hits one bank 32 times; with a pitch of 33 every lane hits its own bank.
template <int Pitch>
__global__ void trace_transpose_kernel(const float* x, float* y) {
  ADNN_SHARED(float, tile, [32][Pitch]);
  const int l = int(threadIdx.x), w = int(threadIdx.y);  // block (32, 32)
  tile[w][l] = x[w * 32 + l];
  __syncthreads();
  y[w * 32 + l] = tile[l][w];
}

// lanes of a warp take different branches: two load instructions, each a half-warp request
__global__ void trace_divergent_kernel(const float* x, float* y) {
  const int i = int(threadIdx.x);
  if (i % 2 == 0)
    y[i] = x[i];
  else
    y[i] = x[i] + 1.f;
}

// x[i] *= 3: a read-modify-write of each element
__global__ void trace_scale_kernel(float* x, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] *= 3.f;
}

// y[lane] += 1 by every warp (one block of 16 warps): integer atomics to one row of 32 words.
// (A float atomicAdd is a compare-and-swap loop in the emulator: an atomic load and a CAS, a
// retry each time another block's thread got there first — more requests than a GPU's one.)
__global__ void trace_atomic_kernel(unsigned* y) {
  atomicAdd(&y[threadIdx.x % 32], 1u);
}

const sim::KernelTrace& find(const std::vector<sim::KernelTrace>& r, const std::string& name) {
  auto it = std::find_if(r.begin(), r.end(),
                         [&](const sim::KernelTrace& k) { return k.name.find(name) != std::string::npos; });
  REQUIRE_MESSAGE(it != r.end(), "no trace of ", name);
  return *it;
}

// bytes used / bytes fetched over a kernel's global loads and stores (the report's coalescing %)
double efficiency(const sim::KernelTrace& k) {
  return double(k.c.ld_bytes + k.c.st_bytes) / (32.0 * double(k.c.ld_sectors + k.c.st_sectors));
}

struct TraceScope {
  TraceScope() { sim::trace_start(); }
  ~TraceScope() { sim::trace_stop(); }
};

// The traces of optim::foreach_lerp_(xs, ends, w).
std::vector<sim::KernelTrace> traced_lerp(const std::vector<Tensor>& xs, const std::vector<Tensor>& ends, double w) {
  TraceScope t;
  optim::foreach_lerp_(xs, ends, w);
  return sim::trace_results();
}

// The launches traced in r, every one of a kernel whose name holds `name` (another fails the test).
int64_t launches_only_of(const std::vector<sim::KernelTrace>& r, const std::string& name) {
  int64_t launches = 0;
  for (const auto& k : r) {
    INFO(k.name);
    CHECK(k.name.find(name) != std::string::npos);
    launches += int64_t(k.launches);
  }
  return launches;
}

}  // namespace

TEST_SUITE("sim") {
  TEST_CASE("trace: a coalesced copy is 100% efficient, 4 sectors per request") {
    const int n = 4 * 256;
    dbuf x(n, 1.f), y(n, 0.f);
    std::vector<sim::KernelTrace> r;
    {
      TraceScope t;
      ADNN_LAUNCH(trace_copy_kernel, dim3(4), dim3(256), 0, nullptr, x.p, y.p, n);
      r = sim::trace_results();
    }
    const auto& k = find(r, "trace_copy_kernel");
    CHECK(k.launches == 1);
    CHECK(k.blocks == 4);
    CHECK(k.block_threads == 256);
    CHECK(k.c.ld_requests == n / 32);
    CHECK(k.c.ld_sectors == 4 * (n / 32));
    CHECK(k.c.ld_bytes == 4u * n);
    CHECK(k.c.st_requests == n / 32);
    CHECK(k.c.st_sectors == 4 * (n / 32));
    CHECK(k.c.st_bytes == 4u * n);
    CHECK(k.compulsory_bytes == 2 * 4u * n);  // x and y once each
    CHECK(k.c.sh_requests == 0);
  }

  TEST_CASE("trace: a stride-32 f32 load uses 1/8 of the sectors it fetches") {
    const int n = 256;
    dbuf x(n * 32, 1.f), y(n, 0.f);
    std::vector<sim::KernelTrace> r;
    {
      TraceScope t;
      ADNN_LAUNCH(trace_stride_kernel, dim3(1), dim3(256), 0, nullptr, x.p, y.p, n);
      r = sim::trace_results();
    }
    const auto& k = find(r, "trace_stride_kernel");
    CHECK(k.c.ld_requests == n / 32);
    CHECK(k.c.ld_sectors == uint64_t(n));  // 32 per request
    CHECK(k.c.ld_bytes == 4u * n);
    CHECK(double(k.c.ld_bytes) / (32.0 * double(k.c.ld_sectors)) == doctest::Approx(1.0 / 8));
    CHECK(k.c.st_sectors == 4 * (n / 32));  // the store stays coalesced
  }

  TEST_CASE("trace: a shared column read with a 32-float pitch is a 32-way bank conflict, 33 is conflict-free") {
    dbuf x(32 * 32), y(32 * 32, 0.f);
    for (int i = 0; i < 32 * 32; ++i) x[size_t(i)] = float(i);
    std::vector<sim::KernelTrace> r;
    {
      TraceScope t;
      ADNN_LAUNCH(trace_transpose_kernel<32>, dim3(1), dim3(32, 32), 0, nullptr, x.p, y.p);
      ADNN_LAUNCH(trace_transpose_kernel<33>, dim3(1), dim3(32, 32), 0, nullptr, x.p, y.p);
      r = sim::trace_results();
    }
    CHECK(y[1] == 32.f);  // transposed
    const auto& bad = find(r, "trace_transpose_kernel<32>");
    const auto& good = find(r, "trace_transpose_kernel<33>");
    // 32 warps: one row write (conflict-free in both) and one column read each
    CHECK(bad.c.sh_requests == 64);
    CHECK(bad.c.sh_max_way == 32);
    CHECK(bad.c.sh_wavefronts == 32 * 1 + 32 * 32);
    CHECK(bad.c.sh_ideal_wavefronts == 64);
    CHECK(bad.c.sh_conflict_requests == 32);
    CHECK(good.c.sh_requests == 64);
    CHECK(good.c.sh_max_way == 1);
    CHECK(good.c.sh_wavefronts == 64);
    CHECK(good.c.sh_conflict_requests == 0);
  }

  TEST_CASE("trace: lanes on different branches make separate requests") {
    dbuf x(32, 1.f), y(32, 0.f);
    std::vector<sim::KernelTrace> r;
    {
      TraceScope t;
      ADNN_LAUNCH(trace_divergent_kernel, dim3(1), dim3(32), 0, nullptr, x.p, y.p);
      r = sim::trace_results();
    }
    const auto& k = find(r, "trace_divergent_kernel");
    CHECK(k.c.ld_requests == 2);
    CHECK(k.c.ld_bytes == 128);      // 16 lanes × 4 bytes each, every other word
    CHECK(k.c.ld_sectors == 2 * 4);  // each half-warp request spans the same 4 sectors
    CHECK(y[1] == 2.f);
  }

  TEST_CASE("trace: the tiled transpose copy is at most 2-way bank-conflicted for every tile shape") {
    // (rows, cols) of a contiguous f32 / f64 matrix made contiguous transposed: full tiles,
    // tiles narrow on either side (32 × 8 and 8 × 32 were 4-way with a fixed pitch of 33),
    // odd and tiny ones
    const std::vector<std::pair<int64_t, int64_t>> shapes{{64, 64}, {64, 8}, {8, 64}, {96, 3}, {3, 96}, {40, 24},
                                                          {8, 8},   {5, 7},  {64, 17}, {17, 64}, {33, 33}, {64, 2}};
    for (DType dt : {DType::f32, DType::f64})
      for (auto [rows, cols] : shapes) {
        Tensor x = randn({rows, cols}, TensorOptions(dt, kCUDA));
        std::vector<sim::KernelTrace> r;
        Tensor y;
        {
          TraceScope t;
          y = x.transpose(0, 1).contiguous();  // (cols, rows)
          r = sim::trace_results();
        }
        INFO(std::string(dtype_name(dt)) << " " << rows << " x " << cols);
        const auto& k = find(r, "copy_transpose_kernel");
        CHECK(k.c.sh_requests > 0);
        CHECK(k.c.sh_max_way <= 2);
        CHECK(y.to(kCPU).to_vector() == x.to(kCPU).transpose(0, 1).contiguous().to_vector());
      }
  }

  TEST_CASE("trace: the depthwise weight tile's transposed stores and tap reads are at most 2-way bank-conflicted") {
    // EfficientNet's depthwise shapes (channels, kernel) in the training dtypes, f32 (V = 4) and
    // bf16 / f16 (V = 8, an f32 tile), and a scalar case; the (tap, V, lane) tile of before was
    // 4-way at V = 4. (f64, V = 2 with 8-byte words, reaches 3-way: not a hot path.)
    struct Case {
      int64_t C, k;
    };
    for (DType dt : {DType::f32, DType::bf16, DType::f16})
      for (Case cs : {Case{32, 3}, Case{96, 3}, Case{144, 5}, Case{240, 5}, Case{672, 5}, Case{13, 3}}) {
        INFO(std::string(dtype_name(dt)) << " C " << cs.C << " k " << cs.k);
        Tensor x = randn({1, 16, 16, cs.C}).to(dt).to(kCUDA).requires_grad_();
        Tensor w = randn({cs.C, cs.k, cs.k, 1}).to(dt).to(kCUDA);
        std::vector<sim::KernelTrace> r;
        {
          TraceScope t;
          Tensor y = conv2d(x, w, {}, Conv2dOptions().with_groups(cs.C).with_same());
          sum(y).backward();
          // dilated: the per-pixel kernels
          Tensor yd = conv2d(x, w, {}, Conv2dOptions().with_groups(cs.C).with_same().with_dilation(2));
          sum(yd).backward();
          r = sim::trace_results();
        }
        // stride 1 with kernels 3 and 5: the row-tiled kernels; dilated: the per-pixel ones
        for (const char* name : {"depthwise_forward_rows_kernel", "depthwise_backward_input_rows_kernel",
                                 "depthwise_forward_kernel", "depthwise_backward_input_kernel"}) {
          INFO(std::string(name));
          const auto& k = find(r, name);
          CHECK(k.c.sh_requests > 0);
          CHECK(k.c.sh_max_way <= 2);
          // 16-byte vectors along C; the scalar fallback (13 channels: 52-byte pixels, not
          // sector-aligned) is below that on any GPU as well. The row kernels' bound is 85 %: a
          // warp whose lanes serve two items (C / V not a multiple of 32, e.g. 30 lanes at
          // C = 240) skips different padded columns in each, and the trace pairs a lane's k-th
          // load with its neighbours' k-th, which at the borders are other columns (the model's
          // limit, docs/kernels.md; a GPU issues each unrolled column's load as its own
          // instruction): 89.8 % in 16 bits at C = 240, 5×5, 16×16
          const bool rows = std::string(name).find("_rows_") != std::string::npos;
          if (cs.C % 8 == 0) CHECK(efficiency(k) >= (rows ? 0.85 : 0.9));
        }
      }
  }

  TEST_CASE("trace: the max-pool backward of tiled windows is fully coalesced; overlapping windows gather") {
    // vgg_nano's pools (2×2/2 on 48×48×32, 24×24×64, 12×12×128, and an odd 7×5 map): one thread per
    // output writes its window, so every request is a full warp along c (the gather loaded gy in
    // the winners' lanes only: 83.6% on the nano step)
    struct Case {
      int64_t H, W, C, k, s;
    };
    for (DType dt : {DType::f32, DType::bf16})
      for (Case cs : {Case{48, 48, 32, 2, 2}, Case{24, 24, 64, 2, 2}, Case{12, 12, 128, 2, 2}, Case{7, 5, 32, 2, 2},
                      Case{9, 9, 32, 3, 2}}) {
        INFO(std::string(dtype_name(dt)) << " " << cs.H << "x" << cs.W << "x" << cs.C << " k" << cs.k << " s" << cs.s);
        Tensor x = randn({2, cs.H, cs.W, cs.C}).to(dt).to(kCUDA).requires_grad_();
        std::vector<sim::KernelTrace> r;
        {
          TraceScope t;
          Pool2dOptions o;
          o.kernel = {cs.k, cs.k};
          o.stride = {cs.s, cs.s};
          sum(max_pool2d(x, o)).backward();
          r = sim::trace_results();
        }
        const bool tiled = cs.k == cs.s;
        const auto& k = find(r, tiled ? "max_pool_backward_tiled_kernel" : "max_pool_backward_kernel");
        CHECK(k.c.ld_sectors + k.c.st_sectors > 0);
        if (tiled) CHECK(efficiency(k) >= 0.99);
      }
  }

  TEST_CASE("trace: reductions over leading and middle dims read in place, fully coalesced") {
    // A bias gradient summed over the batch (batch 1, as efficientnet_b5's profile: one value
    // per 32-lane request in the row kernel, 13.4%), a long batch (two stages), NHWC means
    // over H and W: reduce_cols reads whole rows of 32 columns per warp request, no transposed
    // copy is made, and the row kernel is not used.
    struct Case {
      Shape shape;
      std::vector<int64_t> dims;
    };
    for (DType dt : {DType::f32, DType::bf16})
      for (Case cs : {Case{{1, 96}, {0}}, Case{{16, 128}, {0}}, Case{{4000, 64}, {0}}, Case{{2, 6, 6, 128}, {1, 2}}}) {
        INFO(std::string(dtype_name(dt)) << " " << shape_str(cs.shape));
        Tensor x = randn(cs.shape).to(dt).to(kCUDA);
        std::vector<sim::KernelTrace> r;
        {
          TraceScope t;
          sum(x, cs.dims);
          r = sim::trace_results();
        }
        for (const auto& k : r) {  // (a bf16 sum's f32 result is then rounded to bf16: one small cast)
          INFO(k.name);
          CHECK(k.name.find("reduce_rows") == std::string::npos);
          if (dt == DType::f32) CHECK(k.name.find("copy") == std::string::npos);
        }
        const auto& k = find(r, "reduce_cols_kernel");
        CHECK(k.c.ld_sectors + k.c.st_sectors > 0);
        CHECK(efficiency(k) >= 0.99);
      }
  }

  TEST_CASE("trace: im2col of narrow channels stages whole input rows: >= 90% coalesced, at most 2-way conflicts") {
    // efficientnet_b5's stem (3 channels, 3x3, stride 2, same padding): the direct kernel's
    // warps read 12-byte runs KW pixels and KH rows apart (74.8% in the B5 step); the tiled
    // kernel reads the rows it stages contiguously and writes its columns contiguously
    struct Case {
      Shape x;
      int64_t O, k, s, groups;
    };
    for (DType dt : {DType::f32, DType::bf16})
      for (Case cs :
           {Case{{1, 64, 64, 3}, 8, 3, 2, 1}, Case{{2, 17, 13, 5}, 4, 5, 1, 1}, Case{{1, 40, 36, 1}, 4, 3, 1, 1},
            Case{{1, 9, 9, 4}, 6, 3, 1, 2}, Case{{2, 40, 30, 3}, 4, 7, 2, 1}, Case{{1, 8, 300, 2}, 3, 3, 1, 1}}) {
        INFO(std::string(dtype_name(dt)) << " x " << shape_str(cs.x) << " k" << cs.k << " s" << cs.s << " groups "
                                         << cs.groups);
        Tensor x = randn(cs.x).to(dt), w = randn({cs.O, cs.k, cs.k, cs.x[3] / cs.groups}).to(dt);
        Conv2dOptions o;
        o.stride = {cs.s, cs.s};
        o.groups = cs.groups;
        o.same = true;
        Tensor xd = x.to(kCUDA), wd = w.to(kCUDA).requires_grad_();
        std::vector<sim::KernelTrace> r;
        Tensor y;
        {
          TraceScope t;
          y = conv2d(xd, wd, {}, o);
          sum(y).backward();  // the weight gradient gathers the columns again (f32 ones for bf16 x)
          r = sim::trace_results();
        }
        for (const auto& k : r) CHECK(k.name.find("im2col_kernel") == std::string::npos);  // not the direct kernel
        const auto& k = find(r, "im2col_tiled_kernel");
        CHECK(k.launches == 2 * cs.groups);  // once per group
        if (cs.groups == 1) CHECK(efficiency(k) >= 0.9);
        CHECK(k.c.sh_requests > 0);
        CHECK(k.c.sh_max_way <= 2);
        // the same values as the CPU's im2col + GEMM
        Tensor wc = w.requires_grad_();
        Tensor yc = conv2d(x, wc, {}, o);
        sum(yc).backward();
        const double tol = dt == DType::f32 ? 1e-5 : 1e-2;  // relative to the largest value
        CHECK(testing::max_abs_diff(y.to(kCPU), yc) <= tol * (1 + testing::max_abs(yc)));
        CHECK(testing::max_abs_diff(wd.grad().to(kCPU), wc.grad()) <= tol * (1 + testing::max_abs(wc.grad())));
      }
    // the direct kernel on the stem's shape, for the record: well under 90%
    ConvGeom g{};
    g.N = 1, g.H = 64, g.W = 64, g.C = 3, g.O = 8, g.KH = 3, g.KW = 3, g.sh = 2, g.sw = 2, g.pt = 0, g.pl = 0;
    g.dh = 1, g.dw = 1, g.groups = 1, g.OH = 32, g.OW = 32;  // same padding: 0 before, 1 after
    dbuf x(size_t(64 * 64 * 3), 1.f), col(size_t(32 * 32 * 27));
    TraceScope t;
    ADNN_LAUNCH((im2col_kernel<float, float>), grid_for(32 * 32 * 27), dim3(256), 0, nullptr, x.p, col.p, g, 0, 1, 0);
    const auto r = sim::trace_results();
    CHECK(efficiency(find(r, "im2col_kernel")) < 0.8);
  }

  TEST_CASE("trace: col2im of narrow channels gathers a transposed dcol through shared memory: >= 90% coalesced") {
    // CBAM's spatial conv (2 channels, 7x7, same) on the paper's 4x4 and 2x2 maps at 64x64: the
    // direct kernel's lanes read taps KK elements apart (56.6 % in the paper step). The cases
    // cover the three tile forms (whole images, whole rows, one row's segment), strides,
    // dilation and groups; the input gradient against the CPU's im2col + GEMM + col2im.
    struct Case {
      Shape x;
      int64_t O, k, s, d, groups;
    };
    for (DType dt : {DType::f32, DType::bf16, DType::f64})
      for (Case cs : {Case{{2, 4, 4, 2}, 1, 7, 1, 1, 1}, Case{{2, 2, 2, 2}, 1, 7, 1, 1, 1},
                      Case{{3, 7, 7, 2}, 1, 7, 1, 1, 1}, Case{{2, 20, 20, 3}, 4, 3, 1, 1, 1},
                      Case{{1, 17, 15, 5}, 4, 5, 2, 1, 1}, Case{{1, 6, 300, 2}, 3, 3, 1, 1, 1},
                      Case{{1, 12, 90, 3}, 2, 3, 1, 2, 1}, Case{{1, 9, 9, 4}, 6, 3, 1, 1, 2}}) {
        INFO(std::string(dtype_name(dt)) << " x " << shape_str(cs.x) << " k" << cs.k << " s" << cs.s << " d" << cs.d
                                         << " groups " << cs.groups);
        Tensor x = randn(cs.x).to(dt), w = randn({cs.O, cs.k, cs.k, cs.x[3] / cs.groups}).to(dt);
        Conv2dOptions o;
        o.stride = {cs.s, cs.s};
        o.dilation = {cs.d, cs.d};
        o.groups = cs.groups;
        o.same = true;
        Tensor xc = x.clone().requires_grad_();
        Tensor yc = conv2d(xc, w, {}, o), gy = randn(yc.sizes()).to(dt);
        (yc * gy).sum().backward();
        Tensor xd = x.to(kCUDA).requires_grad_(), wd = w.to(kCUDA);
        std::vector<sim::KernelTrace> r;
        {
          TraceScope t;
          (conv2d(xd, wd, {}, o) * gy.to(kCUDA)).sum().backward();
          r = sim::trace_results();
        }
        for (const auto& k : r) CHECK(k.name.find("col2im_kernel") == std::string::npos);  // not the direct kernel
        const auto& k = find(r, "col2im_tiled_kernel");
        CHECK(k.launches == cs.groups);
        if (cs.groups == 1) CHECK(efficiency(k) >= 0.9);
        CHECK(k.c.sh_requests > 0);
        CHECK(k.c.sh_max_way <= 2);  // 2-way only for f64's two words per lane
        CHECK(double(k.c.sh_wavefronts) <= 1.1 * double(k.c.sh_ideal_wavefronts));
        const double tol = dt == DType::bf16 ? 1e-2 : 1e-6;  // relative to the largest value
        CHECK(testing::max_abs_diff(xd.grad().to(kCPU), xc.grad()) <= tol * (1 + testing::max_abs(xc.grad())));
      }
    // two geometries that differ only in the left/right padding, one after the other on this
    // thread: the tiling (its shared-memory size) is cached per geometry, OW included
    {
      Tensor x = randn({1, 8, 8, 2}), w = randn({1, 7, 7, 2});
      for (int64_t pl : {0, 3, 0}) {
        INFO("left/right padding " << pl);
        Conv2dOptions o;
        o.padding = {3, 3, pl, pl};
        Tensor xc = x.clone().requires_grad_(), xd = x.to(kCUDA).requires_grad_();
        Tensor yc = conv2d(xc, w, {}, o), gy = randn(yc.sizes());
        (yc * gy).sum().backward();
        (conv2d(xd, w.to(kCUDA), {}, o) * gy.to(kCUDA)).sum().backward();
        CHECK(testing::max_abs_diff(xd.grad().to(kCPU), xc.grad()) <= 1e-5 * (1 + testing::max_abs(xc.grad())));
      }
    }
    // the direct kernel on CBAM's shape (2 images of 4x4x2, 7x7, same), for the record: well under 90%
    ConvGeom g{};
    g.N = 2, g.H = 4, g.W = 4, g.C = 2, g.O = 1, g.KH = 7, g.KW = 7, g.sh = 1, g.sw = 1, g.pt = 3, g.pl = 3;
    g.dh = 1, g.dw = 1, g.groups = 1, g.OH = 4, g.OW = 4;
    dbuf dcol(size_t(2 * 16 * 98), 1.f), gx(size_t(2 * 16 * 2));
    TraceScope t;
    ADNN_LAUNCH(col2im_kernel<float>, grid_for(2 * 16 * 2), dim3(256), 0, nullptr, dcol.p, gx.p, g, 0, 2, 0);
    const auto r = sim::trace_results();
    CHECK(efficiency(find(r, "col2im_kernel")) < 0.8);
    CHECK(gx[0] == 16.f);  // the 16 taps of a corner pixel inside the 4x4 map
  }

  TEST_CASE("trace: a training batch norm counts its batch in the statistics kernel, with no launch of its own") {
    // num_batches_tracked += 1 was a fill, a broadcast add and a copy per BN forward: 348 of
    // the B5 step's launches. Now bn_stats_merge_kernel increments it (cpu: the twin).
    for (Device dev : {kCPU, kCUDA})
      for (int residual = 0; residual < 2; ++residual) {
        INFO(dev.str() << std::string(residual ? " forward_residual" : " forward"));
        nn::BatchNorm2d bn(6);
        bn.to(dev);
        Tensor x = randn({2, 3, 3, 6}).to(dev);
        std::vector<sim::KernelTrace> r;
        {
          TraceScope t;
          for (int i = 0; i < 3; ++i) residual ? bn.forward_residual(x, x, {}) : bn.forward(x);
          r = sim::trace_results();
        }
        CHECK(bn.num_batches_tracked.to(kCPU).item<int64_t>() == 3);
        if (dev == kCUDA) {
          for (const auto& k : r) {
            INFO(k.name);
            CHECK(k.name.find("fill") == std::string::npos);
            CHECK(k.name.find("binary") == std::string::npos);
            CHECK(k.name.find("copy") == std::string::npos);
            if (k.name.rfind("cuda", 0) != 0)  // kernels, not library calls (cudaMemsetAsync)
              CHECK(k.launches == 3);          // partials, merge (+ the count), apply: once per forward
          }
          CHECK(find(r, "bn_stats_merge_kernel").launches == 3);
        }
        bn.eval();
        bn.forward(x);
        CHECK(bn.num_batches_tracked.to(kCPU).item<int64_t>() == 3);  // eval does not count
      }
  }

  TEST_CASE("trace: a batch norm backward writes the weight and bias gradients from its apply kernel, no copies") {
    // gb, gw were two copy launches of the f64 sums per BN backward (232 of a B5 step)
    for (DType dt : {DType::f32, DType::bf16}) {
      INFO(dtype_name(dt));
      Tensor x = randn({2, 3, 5, 6}).to(dt), gy = randn({2, 3, 5, 6}).to(dt);
      Tensor wc = randn({6}).requires_grad_(), bc = randn({6}).requires_grad_();
      Tensor wd = wc.detach().to(kCUDA).requires_grad_(), bd = bc.detach().to(kCUDA).requires_grad_();
      batch_norm(x, {}, {}, wc, bc, true, 0.1, 1e-5, NormActivation::silu).backward(gy);
      Tensor yd = batch_norm(x.to(kCUDA).requires_grad_(), {}, {}, wd, bd, true, 0.1, 1e-5, NormActivation::silu);
      std::vector<sim::KernelTrace> r;
      {
        TraceScope t;
        yd.backward(gy.to(kCUDA));
        r = sim::trace_results();
      }
      for (const auto& k : r) {
        INFO(k.name);
        CHECK(k.name.find("copy") == std::string::npos);
      }
      CHECK(find(r, "bn_backward_apply_kernel").launches == 1);
      CHECK(testing::max_abs_diff(wd.grad().to(kCPU), wc.grad()) <= 1e-4 * (1 + testing::max_abs(wc.grad())));
      CHECK(testing::max_abs_diff(bd.grad().to(kCPU), bc.grad()) <= 1e-4 * (1 + testing::max_abs(bc.grad())));
    }
  }

  TEST_CASE(
      "trace: clip_grad_norm_ over 100 gradients is 7 coalesced launches, and an unclipped scale writes nothing") {
    // per tensor it was a squared copy, its sum, a cast, an add, the scaled copy and its copy
    // back (~6 launches a tensor: 1800 of the paper step's, 28 % of its estimated time)
    std::vector<Tensor> pc, pd;
    for (int i = 0; i < 100; ++i) {
      Tensor g = randn({int64_t(1 + (i * 997) % 3000)});  // 1 to 3000 elements, odd sizes
      if (i == 7) g = randn({140000});                    // three chunks
      pc.push_back(zeros(g.sizes()).requires_grad_());
      pc.back().set_grad(g.clone());
      pd.push_back(zeros(g.sizes()).to(kCUDA).requires_grad_());
      pd.back().set_grad(g.to(kCUDA));
    }
    for (double max_norm : {10.0, 1e9}) {
      INFO("max_norm " << max_norm);
      const Tensor nc = optim::clip_grad_norm_(pc, max_norm);
      std::vector<sim::KernelTrace> r;
      Tensor nd;
      {
        TraceScope t;
        nd = optim::clip_grad_norm_(pd, max_norm);
        r = sim::trace_results();
      }
      int64_t launches = 0;
      for (const auto& k : r) {
        INFO(k.name);
        if (k.name.rfind("cuda", 0) == 0) continue;  // a library call (a new buffer's cudaMemsetAsync)
        CHECK((k.name.find("grad_sq_partials") != std::string::npos ||
               k.name.find("grad_norm_finish") != std::string::npos ||
               k.name.find("scale_multi_tensor") != std::string::npos));
        launches += int64_t(k.launches);
      }
      CHECK(launches == 7);  // 3 partial launches (48 tensors each), the finish, 3 scale launches
      CHECK(efficiency(find(r, "grad_sq_partials_kernel")) >= 0.95);
      const auto& sc = find(r, "scale_multi_tensor_kernel");
      int64_t elements = 0;
      for (const Tensor& p : pc) elements += p.numel();
      if (max_norm > 1e6) {  // coefficient 1: the warps read it (a broadcast) and touch no gradient
        CHECK(sc.c.ld_bytes == 8 * sc.c.ld_requests);
        CHECK(sc.c.st_bytes == 0);
      } else {  // each gradient read and written once, besides the coefficient's broadcasts
        CHECK(efficiency(sc) >= 0.95);
        CHECK(sc.c.ld_bytes >= 4 * elements);
        CHECK(sc.c.st_bytes == 4 * elements);
      }
      CHECK(std::fabs(nd.item<double>() - nc.item<double>()) <= 1e-12 * nc.item<double>());
      for (size_t i = 0; i < pc.size(); ++i) CHECK(testing::max_abs_diff(pd[i].grad().to(kCPU), pc[i].grad()) <= 1e-6);
    }
    // a NaN gradient: the norm is NaN and every gradient becomes NaN, as torch's clamp of a
    // NaN coefficient (a plain min(1, c) would have left them unscaled)
    for (Device dev : {kCPU, kCUDA}) {
      INFO(dev.str());
      Tensor p0 = zeros({3}).to(dev).requires_grad_(), p1 = zeros({2}).to(dev).requires_grad_();
      p0.set_grad(tensor({1.0, std::nan(""), 2.0}, {3}).to(DType::f32).to(dev));
      p1.set_grad(tensor({3.0, 4.0}, {2}).to(DType::f32).to(dev));
      CHECK(std::isnan(optim::clip_grad_norm_({p0, p1}, 1.0).item<double>()));
      for (double v : p1.grad().to(kCPU).to_vector()) CHECK(std::isnan(v));
    }
  }

  TEST_CASE("trace: the weights' moving average of 100 tensors is 4 coalesced launches (ModelEma on cuda)") {
    std::vector<Tensor> xc, ec, xd, ed;
    for (int i = 0; i < 100; ++i) {
      Tensor x = randn({int64_t(1 + (i * 997) % 3000)}), e = randn(x.sizes());  // 1 to 3000 elements
      if (i == 7) x = randn({140000}), e = randn({140000});                     // three chunks
      xc.push_back(x.clone());
      ec.push_back(e);
      xd.push_back(x.to(kCUDA));
      ed.push_back(e.to(kCUDA));
    }
    optim::foreach_lerp_(xc, ec, 0.002);
    const std::vector<sim::KernelTrace> r = traced_lerp(xd, ed, 0.002);
    CHECK(launches_only_of(r, "lerp_multi_tensor") == 4);  // 32 pairs a launch
    const auto& lk = find(r, "lerp_multi_tensor_kernel");
    CHECK(efficiency(lk) >= 0.95);
    int64_t elements = 0;
    for (const Tensor& x : xc) elements += x.numel();
    CHECK(lk.c.ld_bytes == 8 * elements);  // x and end read once
    CHECK(lk.c.st_bytes == 4 * elements);  // x written once
    for (size_t i = 0; i < xc.size(); ++i) CHECK(testing::max_abs_diff(xd[i].to(kCPU), xc[i]) <= 1e-6);
  }

  // One list of tensors on two devices (a model split between them, an average kept on the
  // host): each device's f32 tensors go through its own multi-tensor op. Until 2026-12-02 only
  // the first device's did (the lerp sent the others through the elementwise ops; clipping
  // refused gradients of a second device).
  TEST_CASE("trace: tensors on two devices: each device's are fused; clipping spans both") {
    std::vector<Tensor> xs, es, xc, ec;  // xs/es: cpu, 60 × cuda, cpu; xc/ec: all on the host
    for (int i = 0; i < 62; ++i) {
      Tensor x = randn({int64_t(1 + (i * 389) % 700)}), e = randn(x.sizes());
      const Device dev = i == 0 || i == 61 ? kCPU : kCUDA;
      xc.push_back(x.clone());
      ec.push_back(e);
      xs.push_back(x.to(dev));
      es.push_back(e.to(dev));
    }
    optim::foreach_lerp_(xc, ec, 0.1);
    const std::vector<sim::KernelTrace> r = traced_lerp(xs, es, 0.1);
    // the 60 cuda pairs, 32 a launch (the cpu pairs: the CPU twin, untraced)
    CHECK(launches_only_of(r, "lerp_multi_tensor") == 2);
    for (size_t i = 0; i < xc.size(); ++i) CHECK(testing::max_abs_diff(xs[i].to(kCPU), xc[i]) <= 1e-6);

    // clipping: the norm over both devices, on the first gradient's (cpu), every gradient scaled
    for (double max_norm : {5.0, 1e9}) {
      INFO("max_norm " << max_norm);
      std::vector<Tensor> pc, pm;
      for (size_t i = 0; i < xs.size(); ++i) {
        pc.push_back(zeros(xc[i].sizes()).requires_grad_());
        pc.back().set_grad(ec[i].clone());
        pm.push_back(zeros(xc[i].sizes()).to(xs[i].device()).requires_grad_());
        pm.back().set_grad(es[i].clone());
      }
      pm[5].set_grad(ec[5].to(DType::f64).to(kCUDA));  // a gradient of another dtype, on cuda
      pc[5].set_grad(ec[5].to(DType::f64));
      const Tensor nc = optim::clip_grad_norm_(pc, max_norm);
      std::vector<sim::KernelTrace> rc;
      Tensor nm;
      {
        TraceScope t;
        nm = optim::clip_grad_norm_(pm, max_norm);
        rc = sim::trace_results();
      }
      CHECK(nm.device() == kCPU);
      CHECK(std::fabs(nm.item<double>() - nc.item<double>()) <= 1e-12 * nc.item<double>());
      // cuda's 59 f32 gradients, 48 a launch (its f64 one through the elementwise ops); the
      // finish on cuda computes that device's norm only (the total is the cpu's)
      CHECK(find(rc, "grad_sq_partials_kernel").launches == 2);
      CHECK(find(rc, "grad_norm_finish_kernel").launches == 1);
      CHECK(find(rc, "scale_multi_tensor_kernel").launches == 2);
      for (size_t i = 0; i < pc.size(); ++i) {
        INFO(i);
        CHECK(pm[i].grad().device() == xs[i].device());
        CHECK(testing::max_abs_diff(pm[i].grad().to(kCPU), pc[i].grad()) <= 1e-6);
      }
    }
  }

  // The store of a read-modify-write (x[i] = f(x[i]), x[i] *= c: AdamW's p, m and v, the
  // clipping scale, this lerp). Until 2026-12-01 the trace used GCC's kernel-address
  // instrumentation, which skips a store to an address whose load it has just checked in the
  // same basic block: these stores were unseen (st_bytes 0 here), and the paper step's
  // estimate was low by 16 bytes a parameter. Both kernels below are such updates.
  TEST_CASE("trace: the store of a read-modify-write is seen") {
    Tensor x = randn({4096}).to(kCUDA), e = randn({4096}).to(kCUDA);
    std::vector<sim::KernelTrace> r = traced_lerp({x}, {e}, 0.5);
    const auto& lk = find(r, "lerp_multi_tensor_kernel");
    CHECK(lk.c.ld_bytes == 8 * 4096);
    CHECK(lk.c.st_bytes == 4 * 4096);
    CHECK(lk.c.st_requests == 4096 / 32);  // one store instruction, full warps
    CHECK(lk.c.st_sectors == 4 * 4096 / 32);

    // a hand-written in-place scale: one load and one store of each element
    dbuf y(1024, 2.f);
    {
      TraceScope t;
      ADNN_LAUNCH(trace_scale_kernel, dim3(4), dim3(256), 0, nullptr, y.p, 1024);
      r = sim::trace_results();
    }
    const auto& sk = find(r, "trace_scale_kernel");
    CHECK(sk.c.ld_bytes == 4 * 1024);
    CHECK(sk.c.st_bytes == 4 * 1024);
    CHECK(sk.c.ld_sectors + sk.c.st_sectors == 2 * 1024 / 8);
    CHECK(sk.compulsory_bytes == 2 * 4 * 1024);  // each sector fetched once and written back once
    CHECK(y[1023] == 6.f);
  }

  TEST_CASE("trace: a fused AdamW step reads p, g, m, v once and writes p, m, v once (28 bytes a parameter)") {
    // computed through references, p was stored twice and p and m re-read after the stores of
    // m and v (the pointers may alias): 40 bytes of requests a parameter
    std::vector<Tensor> pc, pd;
    int64_t elements = 0;
    for (int i = 0; i < 30; ++i) {
      Tensor w = randn({int64_t(32 * (1 + (i * 37) % 200))}), g = randn(w.sizes());  // whole warps
      elements += w.numel();
      pc.push_back(w.clone().requires_grad_());
      pc.back().set_grad(g);
      pd.push_back(w.to(kCUDA).requires_grad_());
      pd.back().set_grad(g.to(kCUDA));
    }
    optim::AdamW oc(pc, {.lr = 1e-2, .weight_decay = 0.1, .fused = true});
    optim::AdamW od(pd, {.lr = 1e-2, .weight_decay = 0.1, .fused = true});
    oc.step();
    std::vector<sim::KernelTrace> r;
    {
      TraceScope t;
      od.step();
      r = sim::trace_results();
    }
    const auto& k = find(r, "adamw_multi_tensor_kernel");
    CHECK(k.launches == 2);  // 24 tensors a launch
    CHECK(k.c.ld_bytes == 16 * elements);
    CHECK(k.c.st_bytes == 12 * elements);
    CHECK(efficiency(k) == 1.0);  // every tensor a multiple of 32 floats, 256-byte aligned
    CHECK(k.compulsory_bytes == uint64_t(28 * elements));
    for (size_t i = 0; i < pc.size(); ++i) CHECK(testing::max_abs_diff(pd[i].to(kCPU), pc[i]) <= 1e-6);
  }

  TEST_CASE("trace: an atomic add is a load and a store, and still adds") {
    dbuf y(32, 0.f);
    unsigned* u = reinterpret_cast<unsigned*>(y.p);
    std::vector<sim::KernelTrace> r;
    {
      TraceScope t;
      ADNN_LAUNCH(trace_atomic_kernel, dim3(1), dim3(512), 0, nullptr, u);
      r = sim::trace_results();
    }
    const auto& k = find(r, "trace_atomic_kernel");
    // 16 warps, each one request of 32 lanes to one 128-byte row (4 sectors) for the load
    // and again for the store
    CHECK(k.c.ld_requests == 16);
    CHECK(k.c.st_requests == 16);
    CHECK(k.c.ld_sectors == 16 * 4);
    CHECK(k.c.st_sectors == 16 * 4);
    for (int i = 0; i < 32; ++i) CHECK(u[i] == 16u);
  }

  TEST_CASE("trace: the CBAM channel-pool backward loads each channel's values once and stores whole rows") {
    // the paper's CBAM shapes at 64x64 (stage 5: 176 channels over 4x4; head: 2048 over 2x2)
    // and nano's (128 over 6x6): one thread per element read g mean, argmax and (in the
    // argmax lanes only) g max for every position, 88.0 % in the paper step
    for (DType dt : {DType::f32, DType::bf16})
      for (Shape sh : {Shape{2, 4, 4, 176}, Shape{2, 2, 2, 2048}, Shape{2, 6, 6, 128}}) {
        INFO(std::string(dtype_name(dt)) << " " << shape_str(sh));
        Tensor x = randn(sh).to(dt).to(kCUDA).requires_grad_();
        std::vector<sim::KernelTrace> r;
        {
          TraceScope t;
          sum(channel_pool2d(x)).backward();
          r = sim::trace_results();
        }
        const auto& k = find(r, "channel_pool_backward_kernel");
        CHECK(efficiency(k) >= 0.95);
      }
  }

  TEST_CASE("trace: the channel pools and full reductions split long ranges into slices merged by a second pass") {
    // CBAM's channel pool, SE's pool and the channel gate's backward (kernels/cbam.cuh, se.cuh)
    // at an early-stage shape with few (n, 32-channel) tiles: 2 · 2 = 4 blocks for P = 600
    // positions each looped over all of P; now 4 · 5 slices of 120 positions (position_slices),
    // whose partials a finish kernel merges; every access coalesced
    Tensor x = randn({2, 20, 30, 48}).to(kCUDA).requires_grad_();
    Tensor w1 = randn({4, 48}).to(kCUDA), w2 = randn({48, 4}).to(kCUDA);
    Tensor a = randn({2, 1, 1, 48}).to(kCUDA).requires_grad_();
    std::vector<sim::KernelTrace> r;
    {
      TraceScope t;
      sum(channel_pool2d(x)).backward();
      sum(squeeze_excite(x, w1, {}, w2, {})).backward();
      sum(sigmoid_gate(x, a)).backward();
      r = sim::trace_results();
    }
    for (const char* name : {"channel_pool_kernel", "se_pool_kernel", "sigmoid_gate_backward_channel_kernel"}) {
      INFO(name);
      const auto& k = find(r, name);
      CHECK(k.launches >= 1);
      CHECK(k.blocks == 4 * 5 * k.launches);
      CHECK(efficiency(k) >= 0.95);
    }
    for (const char* name :
         {"channel_pool_finish_kernel", "se_pool_finish_kernel", "sigmoid_gate_channel_finish_kernel"}) {
      INFO(name);
      CHECK(efficiency(find(r, name)) >= 0.9);
    }
    // a full reduction (one row of 100,000 values, reduce_rows): 13 slices, then one block
    // over their partials (before: one block of 256 threads over the whole row)
    Tensor v = randn({100000}).to(kCUDA);
    {
      TraceScope t;
      (void)sum(v);
      r = sim::trace_results();
    }
    const auto& k = find(r, "reduce_rows_kernel<X");  // (the ADNN_LAUNCH text names the trace)
    CHECK(k.launches == 1);
    CHECK(k.blocks == 13);
    CHECK(efficiency(k) >= 0.95);
    CHECK(find(r, "reduce_rows_kernel<A").blocks == 1);  // the partials' row
  }

  TEST_CASE("trace: nothing is recorded without a trace, nor for host code during one") {
    dbuf x(256, 1.f), y(256, 0.f);
    ADNN_LAUNCH(trace_copy_kernel, dim3(1), dim3(256), 0, nullptr, x.p, y.p, 256);
    CHECK(sim::trace_results().empty() == false);  // the previous case's results stay until the next start
    TraceScope t;
    float s = 0;
    for (int i = 0; i < 256; ++i) s += x[size_t(i)];  // host code reading device memory: not a kernel thread
    CHECK(s == 256.f);
    CHECK(sim::trace_results().empty());
  }
}
