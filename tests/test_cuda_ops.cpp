// Every registered op on `cpu` and on `cuda` (the SIMT emulator in CI, a GPU when one is
// lent): forward outputs and all input gradients must agree, for contiguous and
// non-contiguous inputs, in f64 and f32.
#include <adnn/amp/amp.hpp>
#include <adnn/cuda/runtime.hpp>

#include <array>
#include <cstdlib>
#include <functional>
#include <optional>
#include <set>
#include <string>

#include "dispatch/dispatch.hpp"
#include "nano_trainer.hpp"
#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

namespace {

// The same values with the same strides, on `device`.
Tensor to_device_like(const Tensor& t, Device device) {
  const int64_t capacity = int64_t(t.impl().storage->nbytes / t.element_size());
  Tensor base = t.detach().as_strided({capacity}, {1}, 0);
  return base.to(device).as_strided(t.sizes(), t.strides(), t.storage_offset());
}

struct Run {
  Tensor out;
  std::vector<Tensor> grads;
};

Run run_case(const OpCase& c, std::vector<Tensor> xs, const Tensor& w) {
  for (size_t i = 0; i < xs.size(); ++i)
    if (c.inputs[i].differentiable) xs[i] = xs[i].detach().requires_grad_(true);
  Run r;
  r.out = c.fn(xs);
  if (any_differentiable(c)) sum(mul(r.out, w.to(r.out.device()).to(r.out.dtype()))).backward();
  for (size_t i = 0; i < xs.size(); ++i) r.grads.push_back(c.inputs[i].differentiable ? xs[i].grad() : Tensor());
  return r;
}

// ADNN_TEST_OPS=name,name,...: run only these registry cases (scripts/gpu-check.sh runs one op
// per kernel family under compute-sanitizer); unset: every case.
bool selected(const std::string& name) {
  const char* env = std::getenv("ADNN_TEST_OPS");
  if (!env || !*env) return true;
  const std::string list = std::string(",") + env + ",";
  return list.find("," + name + ",") != std::string::npos;
}
bool filtered() {
  const char* env = std::getenv("ADNN_TEST_OPS");
  return env && *env;
}

double scale_of(const Tensor& t) {
  double m = 1;
  for (double v : t.to_vector()) m = std::max(m, std::fabs(v));
  return m;
}

}  // namespace

// Real-CUDA builds run on machines without a GPU too (CI compiles them there): skip then.
#define REQUIRE_CUDA_DEVICE() \
  if (!cuda_is_available()) ADNN_SKIP("no CUDA device on this machine")

TEST_SUITE("cuda") {
  TEST_CASE("every op: cpu and cuda agree (forward and gradients)") {
    REQUIRE_CUDA_DEVICE();
    INFO("device: " << std::string(cuda::device_name()));
    manual_seed(4321);
    int compared = 0;
    for (auto& c : registry()) {
      if (!selected(c.name)) continue;
      for (DType dt : {DType::f64, DType::f32}) {
        for (bool nc : {false, true}) {
          INFO("op " << c.name << " " << std::string(dtype_name(dt)) << std::string(nc ? " non-contiguous" : ""));
          auto xs = make_inputs(c, nc);
          if (dt == DType::f32)
            for (auto& x : xs)
              if (x.dtype() == DType::f64) x = to_device_like(x.detach(), kCPU).to(DType::f32);  // contiguous f32
          std::vector<Tensor> xd;
          for (auto& x : xs) xd.push_back(to_device_like(x, kCUDA));
          if (nc)
            for (size_t i = 0; i < xs.size(); ++i) CHECK(xd[i].strides() == xs[i].strides());
          Tensor w;
          {
            NoGradGuard ng;
            w = randn(c.fn(xs).sizes(), DType::f64);  // weights of the scalar whose gradient is compared
          }
          Run ref = run_case(c, xs, w);
          Run got = run_case(c, xd, w);
          REQUIRE(got.out.device() == kCUDA);
          // by the dtype the op computes in, not the inputs' label: an op that works in f32 on
          // f64 inputs (the optimizer family) is held to the f32 tolerance (a GPU contracts
          // a·b + c into one fma where the CPU twin rounds twice: one ulp apart, seen on an H200)
          const bool f64_out = dt == DType::f64 && ref.out.dtype() == DType::f64;
          const double tol = f64_out ? 1e-9 : std::max(2e-5, c.f32_tol);
          CHECK(max_abs_diff(got.out, ref.out) <= tol * scale_of(ref.out));
          for (size_t i = 0; i < xs.size(); ++i) {
            if (!c.inputs[i].differentiable) continue;
            INFO("gradient of input " << i);
            REQUIRE(got.grads[i].defined());
            CHECK(got.grads[i].device() == kCUDA);
            CHECK(max_abs_diff(got.grads[i], ref.grads[i]) <= tol * scale_of(ref.grads[i]) * 10);
          }
          ++compared;
        }
      }
    }
    CHECK(compared >= (filtered() ? 1 : 4 * 80));
  }

  TEST_CASE("every op in f16 and bf16: cpu and cuda forward and input gradients agree") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(77);
    int with_grads = 0;
    for (auto& c : registry()) {
      if (!c.check_f32 || !selected(c.name)) continue;
      for (DType dt : {DType::f16, DType::bf16}) {
        INFO("op " << c.name << " " << std::string(dtype_name(dt)));
        auto xs = make_inputs(c, false);
        for (auto& x : xs)
          if (x.dtype() == DType::f64) x = x.to(dt);
        std::vector<Tensor> xd;
        for (size_t i = 0; i < xs.size(); ++i) {
          xd.push_back(xs[i].to(kCUDA));
          if (c.inputs[i].differentiable && is_floating(xs[i].dtype())) {
            xs[i] = xs[i].detach().requires_grad_();
            xd[i] = xd[i].detach().requires_grad_();
          }
        }
        Tensor ref = c.fn(xs), got = c.fn(xd);
        CHECK(got.device() == kCUDA);
        CHECK(got.dtype() == ref.dtype());
        // both devices compute in f32 and round once to the storage type: allow one ulp
        const double ulp = dt == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
        CHECK(max_abs_diff(got, ref) <= 2 * ulp * scale_of(ref));
        if (!is_floating(ref.dtype()) || !ref.requires_grad()) continue;
        // the backward from one 16-bit upstream gradient: gradients in the inputs' dtypes, each
        // computed in f32 and rounded once on both devices
        const Tensor gy = randn(ref.sizes()).to(ref.dtype());
        ref.backward(gy);
        got.backward(gy.to(kCUDA));
        for (size_t i = 0; i < xs.size(); ++i) {
          if (!xs[i].requires_grad()) continue;
          INFO("input " << i);
          REQUIRE(xs[i].grad().defined() == xd[i].grad().defined());
          if (!xs[i].grad().defined()) continue;
          CHECK(xd[i].grad().device() == kCUDA);
          CHECK(xd[i].grad().dtype() == xs[i].grad().dtype());
          // the scale: the CPU gradient's own largest magnitude (no floor at 1), and no NaN
          double gscale = 0;
          bool finite = true;
          for (double v : xs[i].grad().to_vector())
            gscale = std::max(gscale, std::fabs(v)), finite = finite && std::isfinite(v);
          CHECK(finite);
          CHECK(max_abs_diff(xd[i].grad(), xs[i].grad()) <= 2 * ulp * gscale);
          ++with_grads;
        }
      }
    }
    CHECK(with_grads >= (filtered() ? 0 : 446));  // as the CPU-only test: every triple
  }

  TEST_CASE("device memory: caching allocator, peak, out-of-memory error") {
    REQUIRE_CUDA_DEVICE();
    cuda::empty_cache();
    cuda::reset_peak_memory();
    auto before = cuda::memory_stats();
    {
      Tensor a = empty({1000}, TensorOptions(DType::f32, kCUDA));
      Tensor b = empty({250000}, TensorOptions(DType::f32, kCUDA));
      auto s = cuda::memory_stats();
      CHECK(s.in_use >= before.in_use + 1000 * 4 + 250000 * 4);
      CHECK(s.peak_in_use >= s.in_use);
    }
    auto after = cuda::memory_stats();
    CHECK(after.in_use == before.in_use);
    CHECK(after.reserved > after.in_use);  // blocks are cached, not freed
    const uint64_t hits = after.cache_hits;
    { Tensor again = empty({250000}, TensorOptions(DType::f32, kCUDA)); }
    CHECK(cuda::memory_stats().cache_hits == hits + 1);
    if (cuda::is_emulated()) {
      cuda::set_memory_limit(64 << 20);
      CHECK_THROWS_WITH_AS(empty({100 << 20}, TensorOptions(DType::f32, kCUDA)),
                           doctest::Contains("CUDA out of memory: tried to allocate 419430400 bytes"), Error);
      cuda::set_memory_limit(0);
    }
  }

  TEST_CASE("copies between devices, views of device tensors, printing") {
    REQUIRE_CUDA_DEVICE();
    Tensor a = arange(0, 12, 1, DType::f32).reshape({3, 4});
    Tensor d = a.to(kCUDA);
    CHECK(d.device() == kCUDA);
    testing::check_values(d.t().contiguous(), a.t().contiguous().to_vector());
    testing::check_values(d.slice(1, 1, 4, 2).to(kCPU), {1, 3, 5, 7, 9, 11});
    CHECK(to_string(d.narrow(0, 0, 1)).find("device=cuda:0") != std::string::npos);
    Tensor x = ones({2, 2}, kCUDA).requires_grad_();
    Tensor y = sum(mul(x.to(kCPU), 3.0));
    y.backward();
    CHECK(x.grad().device() == kCUDA);
    testing::check_values(x.grad(), {3, 3, 3, 3});
    CHECK_THROWS_WITH_AS(add(ones({2}), ones({2}, kCUDA)), doctest::Contains("expected all tensors on one device"),
                         Error);
  }
}

// ---------------------------------------------------------------- host round trips

TEST_SUITE("cuda") {
  TEST_CASE("a warmed-up training step and an inference forward make no host round trip") {
    REQUIRE_CUDA_DEVICE();
    ADNN_SKIP_EMULATED_NANO("a host round-trip count over emulated nano steps");
    testing::NanoTrainer s;
    const double first = s.step().item<double>();  // warm-up: the caching allocator fills
    s.step();
    cuda::reset_host_round_trips();
    Tensor loss = s.step();
    const cuda::HostRoundTrips t = cuda::host_round_trips();
    INFO("sync copies " << t.sync_copies << ", synchronisations " << t.synchronizations << ", device mallocs "
                        << t.device_mallocs);
    CHECK(t.sync_copies == 0);
    CHECK(t.synchronizations == 0);
    CHECK(t.device_mallocs == 0);
    CHECK(std::isfinite(loss.item<double>()));  // the one read, after the step
    CHECK(cuda::host_round_trips().sync_copies == 1);
    CHECK(std::isfinite(first));
    {
      NoGradGuard ng;
      s.model->eval();
      s.model->forward(s.x);
      cuda::reset_host_round_trips();
      s.model->forward(s.x);
      const cuda::HostRoundTrips f = cuda::host_round_trips();
      INFO("inference: sync copies " << f.sync_copies << ", synchronisations " << f.synchronizations
                                     << ", device mallocs " << f.device_mallocs);
      CHECK(f.sync_copies == 0);
      CHECK(f.synchronizations == 0);
      CHECK(f.device_mallocs == 0);
    }
  }

  TEST_CASE("interpolate on cuda: forward and backward copy nothing to the device (taps computed in the kernel)") {
    REQUIRE_CUDA_DEVICE();
    for (InterpMode mode : {InterpMode::nearest, InterpMode::bilinear, InterpMode::bicubic}) {
      CAPTURE(int(mode));
      Tensor x = randn({2, 5, 7, 3}).to(kCUDA).requires_grad_();
      auto run = [&] {
        Tensor y = interpolate(x, 9, 4, mode);
        sum(y * y).backward();
      };
      run();  // warm-up: the caching allocator fills (twice: the second accumulates into x.grad)
      run();
      cuda::reset_host_round_trips();
      run();
      const cuda::HostRoundTrips t = cuda::host_round_trips();
      CHECK(t.sync_copies == 0);
      CHECK(t.synchronizations == 0);
      CHECK(t.device_mallocs == 0);
    }
  }

  TEST_CASE("compound_loss on cuda: an out-of-range label is raised at the next host wait") {
    REQUIRE_CUDA_DEVICE();
    Tensor z = ones({2, 3}, TensorOptions(DType::f32, kCUDA)), f = ones({2, 4}, TensorOptions(DType::f32, kCUDA));
    Tensor y = from_vector(std::vector<int64_t>{0, 5}, {2}, TensorOptions(DType::i64, kCUDA));
    nn::CompoundLoss cl;
    CHECK_NOTHROW(cl = nn::compound_loss(z, f, ones({2, 3}, TensorOptions(DType::f32, kCUDA)), y,
                                         ones({3, 4}, TensorOptions(DType::f32, kCUDA)),
                                         ones({3}, TensorOptions(DType::f32, kCUDA)), {}));
    CHECK_THROWS_WITH_AS(cl.total.item<double>(), doctest::Contains("compound_loss: label 5 out of range"),
                         Error);
    CHECK_NOTHROW(ones({1}, TensorOptions(DType::f32, kCUDA)).item<float>());  // raised once
  }

  TEST_CASE("index_select, gather, cross_entropy on cuda: a bad index is raised at the next host wait, read nowhere") {
    // the range check reads no index on the host (a device pointer on a GPU): a kernel flags the
    // entry, the runtime raises it where the host waits anyway, and the data kernels skip it
    REQUIRE_CUDA_DEVICE();
    const TensorOptions f32(DType::f32, kCUDA), i64(DType::i64, kCUDA);
    const Tensor x = arange(0, 6, 1, f32).reshape({3, 2});  // (3, 2): rows (0 1) (2 3) (4 5)
    const Tensor good = from_vector(std::vector<int64_t>{2, 0}, {2}, i64);
    const Tensor bad = from_vector(std::vector<int64_t>{2, 5, 0}, {3}, i64);
    const Tensor bad_cols = from_vector(std::vector<int64_t>{0, 1, 1, 7, 0, 0}, {3, 2}, i64);
    Tensor a, b, c;
    auto no_host_wait = [](const std::function<void()>& op) {
      cuda::reset_host_round_trips();
      CHECK_NOTHROW(op());
      CHECK(cuda::host_round_trips().sync_copies == 0);  // no index came to the host
      CHECK(cuda::host_round_trips().synchronizations == 0);
    };
    no_host_wait([&] { a = index_select(x, 0, good); });
    no_host_wait([&] { b = index_select(x, 0, bad); });
    CHECK_THROWS_WITH_AS(b.to(kCPU), doctest::Contains("index_select: index 5 is out of range"), Error);
    no_host_wait([&] { c = gather(x, 1, bad_cols); });
    CHECK_THROWS_WITH_AS(c.to(kCPU), doctest::Contains("gather: index 7 is out of range"), Error);
    CHECK_NOTHROW(b.to(kCPU));  // each raised once
    testing::check_values(a, std::vector<double>{4, 5, 0, 1});
    testing::check_values(b, std::vector<double>{4, 5, 0, 0, 0, 1});  // the bad row read nothing: 0
    testing::check_values(c, std::vector<double>{0, 1, 3, 0, 4, 4});
    // cross-entropy picks the target's probability with gather: a target out of range
    const Tensor z = ones({2, 3}, f32);
    Tensor ce;
    CHECK_NOTHROW(ce = cross_entropy(z, from_vector(std::vector<int64_t>{0, 3}, {2}, i64)));
    CHECK_THROWS_WITH_AS(ce.item<double>(), doctest::Contains("gather: index 3 is out of range"), Error);
    CHECK_NOTHROW(cross_entropy(z, from_vector(std::vector<int64_t>{0, 2}, {2}, i64)).item<double>());
  }

  TEST_CASE("dropout masks: the same on cpu and cuda for the same seed, drawn on the device") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(31);
    Tensor a = bernoulli({1000}, 0.3, DType::f32, 2.0);
    manual_seed(31);
    cuda::reset_host_round_trips();
    Tensor b = bernoulli({1000}, 0.3, TensorOptions(DType::f32, kCUDA), 2.0);
    CHECK(cuda::host_round_trips().sync_copies == 0);
    CHECK(max_abs_diff(a, b) == 0);
    double kept = sum(a).item<double>() / 2.0;
    CHECK(kept > 250);  // ~300 of 1000
    CHECK(kept < 350);
    // every dtype, and sizes around the 128-element chunks of the interleaved mapping (a warp's
    // 32 calls fill 128 consecutive elements)
    for (DType dt : {DType::f16, DType::bf16, DType::f32, DType::f64})
      for (int64_t n : {int64_t(1), int64_t(37), int64_t(128), int64_t(129), int64_t(4099), int64_t(70001)}) {
        INFO(std::string(dtype_name(dt)) << " n " << n);
        manual_seed(n);
        Tensor c = bernoulli({n}, 0.5, dt, 3.0);
        manual_seed(n);
        Tensor d = bernoulli({n}, 0.5, TensorOptions(dt, kCUDA), 3.0);
        CHECK(max_abs_diff(c, d) == 0);
        const double frac = sum(c.to(DType::f64)).item<double>() / (3.0 * double(n));
        if (n >= 4099) CHECK(std::fabs(frac - 0.5) < 0.05);
      }
    // f64 keeps the value unrounded (dropout's 1 / (1 - p) as torch computes it in f64), on both
    for (Device dev : {kCPU, kCUDA}) {
      manual_seed(5);
      const Tensor m = bernoulli({4099}, 0.7, TensorOptions(DType::f64, dev), 1.0 / 0.7).to(kCPU);
      std::set<double> values;
      for (double x : m.to_vector()) values.insert(x);
      CHECK(values == std::set<double>{0.0, 1.0 / 0.7});
    }
  }
}

TEST_SUITE("cuda") {
  // The depthwise kernels (kernels/conv.cuh) pick a vector width from C and the pointers'
  // alignment (f32: 4 when C % 4 == 0, 2 when C % 2 == 0, else 1; f64: 2 or 1), split C into
  // tiles of at most 32 lanes, and sum the weight gradient over slices of output pixels in
  // two stages, its first in groups of up to 9 taps per thread. These shapes reach every width,
  // one and several tiles (C / V above 32, the last tile narrower), several slices (N·OH·OW
  // above 8 rows of a block), and one (3×3), three (5×5: 9 + 9 + 7) and six (7×7) tap groups.
  // The weight tile is staged 16 elements a thread a round in f32, 8 in f64: at 7×7, C = 260
  // takes two rounds in f32 (4,312 weights, 242 threads), C = 136 and 260 in f64; the rest one.
  TEST_CASE("depthwise conv on cuda: every vector width, channel tiles and gradient slices agree with cpu") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(77);
    struct Geo {
      int64_t n, h, w, k, s, p;
    };
    for (DType dt : {DType::f32, DType::f64})
      for (int64_t C : {3, 8, 66, 136, 260})
        for (Geo geo : {Geo{2, 17, 15, 3, 1, 1}, Geo{1, 9, 11, 5, 2, 2}, Geo{1, 10, 9, 7, 1, 3}}) {
          INFO("dtype " << std::string(dtype_name(dt)) << ", C " << C << ", kernel " << geo.k << ", stride " << geo.s);
          Conv2dOptions o;
          o.with_stride(geo.s).with_padding(geo.p).with_groups(C);
          Tensor x = randn({geo.n, geo.h, geo.w, C}, dt), w = randn({C, geo.k, geo.k, 1}, dt), b = randn({C}, dt);
          auto run = [&](Device d) {
            Tensor xd = x.to(d).detach().requires_grad_(true), wd = w.to(d).detach().requires_grad_(true), bd = b.to(d);
            Tensor y = conv2d(xd, wd, bd, o);
            Tensor r = randn(y.sizes(), dt);  // the same draws on both runs: the seed is reset below
            sum(mul(y, r.to(d))).backward();
            return std::vector<Tensor>{y.to(kCPU), xd.grad().to(kCPU), wd.grad().to(kCPU)};
          };
          manual_seed(5);
          auto ref = run(kCPU);
          manual_seed(5);
          auto got = run(kCUDA);
          manual_seed(5);
          auto again = run(kCUDA);
          const double tol = dt == DType::f64 ? 1e-9 : 2e-5;
          const char* what[] = {"y", "grad x", "grad w"};
          for (int i = 0; i < 3; ++i) {
            INFO(what[i]);
            CHECK(max_abs_diff(got[i], ref[i]) <= tol * scale_of(ref[i]) * (i == 2 ? 10 : 1));
            CHECK(max_abs_diff(got[i], again[i]) == 0);  // deterministic run to run
          }
        }
  }
}

TEST_SUITE("cuda") {
  // se_fc1_kernel, se_fc2_kernel and se_scale_kernel (kernels/se.cuh): FC1 one warp per
  // (sample, hidden unit) with lanes along C (four loads a lane in flight, then the remainder),
  // FC2 groups of 1..32 lanes per channel (the power of two >= min(R, 32)) over slices of
  // se_fc2_channels(R) channels a block, the scale in vectors of V channels (f32: 4, 2 or 1 as
  // C allows; f64: 2 or 1; bf16: 8 — two 16-byte gate loads — 4, 2 or 1). These shapes reach
  // group widths 1, 2, 8 and 32, R above 32 (a lane sums several terms), C above the block,
  // every V, a last FC1 block with fewer than 8 hidden units (R = 44, 130), C with and without
  // the four-column loop's remainder, and several FC2 slices with a partial last one (C = 72,
  // 300, 520 and 1056 at 64 channels a block). FC1 stages the sample's means in shared memory
  // up to 48 KB: C = 6200 in f64 (49,600 bytes) reads them from global instead.
  TEST_CASE("squeeze_excite on cuda: every FC2 group width, wide C, agree with cpu") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(91);
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      for (auto [C, R, H] : std::vector<std::array<int64_t, 3>>{{6, 1, 5},
                                                                {8, 2, 5},
                                                                {40, 7, 5},
                                                                {300, 40, 5},
                                                                {72, 32, 5},
                                                                {7, 3, 5},
                                                                {16, 4, 5},
                                                                {37, 5, 5},
                                                                {40, 7, 100},
                                                                {7, 3, 100},
                                                                {1056, 44, 1},
                                                                {520, 130, 1},
                                                                {6200, 3, 1}}) {
        // H = 100: P = 300 positions over 4 or 2 (n, channel-tile) blocks, so the pool runs in 3
        // position slices merged by se_pool_finish_kernel, and the backward's channel gate too
        INFO(std::string(dtype_name(dt)) << " C " << C << " R " << R << " H " << H);
        Tensor x = randn({2, H, 3, C}, dt), w1 = randn({R, C}, dt), b1 = randn({R}, dt), w2 = randn({C, R}, dt),
               b2 = randn({C}, dt);
        auto run = [&](Device d) {
          Tensor xd = x.to(d).detach().requires_grad_(true), w1d = w1.to(d).detach().requires_grad_(true);
          Tensor y = squeeze_excite(xd, w1d, b1.to(d), w2.to(d), b2.to(d));
          sum(mul(y, y)).backward();
          return std::vector<Tensor>{y.to(kCPU), xd.grad().to(kCPU), w1d.grad().to(kCPU)};
        };
        auto ref = run(kCPU), got = run(kCUDA);
        const double tol = dt == DType::f64 ? 1e-9 : dt == DType::f32 ? 2e-5 : 1e-2;
        for (int i = 0; i < 3; ++i) CHECK(max_abs_diff(got[i], ref[i]) <= tol * scale_of(ref[i]) * (i == 0 ? 1 : 10));
      }
  }
}

TEST_SUITE("cuda") {
  // copy (src/cuda/elementwise.cpp): when the destination and the source are contiguous along
  // different dimensions, copy_transpose_kernel moves 32 × 32 tiles through shared memory;
  // otherwise copy_kernel. Permutes made contiguous, copies into permuted views, casts, and
  // dimensions below, at and above the tile size, against the cpu copy (exact).
  TEST_CASE("strided copies on cuda: tiled transposes and casts equal the cpu copy") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(13);
    struct Case {
      Shape shape;
      std::vector<int64_t> perm;
    };
    const std::vector<Case> cases = {{{2, 3, 40, 5}, {0, 3, 1, 2}}, {{2, 33, 70}, {0, 2, 1}}, {{64, 32}, {1, 0}},
                                     {{3, 1, 31}, {2, 1, 0}},       {{4, 5, 6, 7}, {3, 2, 1, 0}}, {{2, 3, 4}, {1, 0, 2}}};
    for (const Case& c : cases)
      for (auto [from, to] : std::vector<std::pair<DType, DType>>{
               {DType::f32, DType::f32}, {DType::f64, DType::f32}, {DType::f32, DType::f16}, {DType::f32, DType::boolean},
               {DType::i64, DType::i64}, {DType::f32, DType::bf16}}) {
        INFO(shape_str(c.shape) << " " << std::string(dtype_name(from)) << " -> " << std::string(dtype_name(to)));
        Tensor x = (randn(c.shape, DType::f64) * 4.0).to(from);
        // a permuted source made contiguous
        Tensor ref = x.permute(c.perm).contiguous().to(to);
        Tensor got = x.to(kCUDA).permute(c.perm).contiguous().to(to).to(kCPU);
        CHECK(max_abs_diff(got.to(DType::f64), ref.to(DType::f64)) == 0);
        // a contiguous source copied into a permuted (non-contiguous) destination
        Tensor src = (randn(ref.sizes(), DType::f64) * 4.0).to(from);
        Tensor dst_cpu = zeros(c.shape, to), dst_cuda = zeros(c.shape, TensorOptions(to, kCUDA));
        dst_cpu.permute(c.perm).copy_(src);
        dst_cuda.permute(c.perm).copy_(src.to(kCUDA));
        CHECK(max_abs_diff(dst_cuda.to(kCPU).to(DType::f64), dst_cpu.to(DType::f64)) == 0);
      }
  }
}

TEST_SUITE("cuda") {
  // Training batch norm (src/cuda/norm.cpp batch_norm_stats): Welford partials over row slices
  // (more slices when C is small), a fixed-order merge that also updates the running
  // statistics. C below, at and above the 32-channel tile; M = N·H·W not a multiple of the
  // 8-row lanes or of the slices; f16/bf16 input (statistics in f32, f32 running statistics);
  // running statistics of another dtype (the separate update). Output, mean/var update and
  // gradients against the cpu, the running statistics also against mean and var(correction 1).
  TEST_CASE("batch norm training statistics on cuda: Welford slices, running stats, agree with cpu") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(29);
    auto is_reduced = [](DType t) { return t == DType::f16 || t == DType::bf16; };
    struct Shape4 {
      int64_t n, h, w, c;
    };
    const std::vector<Shape4> shapes{{2, 3, 5, 3}, {2, 3, 5, 32}, {1, 7, 3, 37}, {2, 4, 3, 130}, {3, 37, 29, 3},
                                     {1, 45, 41, 40}};
    for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16})
      for (const auto& s : shapes)
        for (bool same_dtype_stats : {true, false}) {
          if (is_reduced(dt) && !same_dtype_stats) continue;
          const DType sdt = is_reduced(dt) ? DType::f32 : same_dtype_stats ? dt : (dt == DType::f32 ? DType::f64 : DType::f32);
          INFO(dtype_name(dt) << " (" << s.n << ", " << s.h << ", " << s.w << ", " << s.c << ") running stats "
                              << dtype_name(sdt));
          Tensor x = add(mul(randn({s.n, s.h, s.w, s.c}, DType::f64), 3.0), 5.0).to(dt);
          Tensor w = randn({s.c}, is_reduced(dt) ? DType::f32 : dt), b = randn({s.c}, is_reduced(dt) ? DType::f32 : dt);
          Tensor rm0 = randn({s.c}, sdt), rv0 = add(rand({s.c}, sdt), 0.5);
          auto run = [&](Device d) {
            Tensor xd = x.to(d).detach().requires_grad_(true), wd = w.to(d).detach().requires_grad_(true);
            Tensor rm = rm0.to(d).clone(), rv = rv0.to(d).clone();
            Tensor y = batch_norm(xd, rm, rv, wd, b.to(d), true, 0.1, 1e-5, NormActivation::silu);
            sum(mul(y.to(DType::f32), y.to(DType::f32))).backward();
            return std::vector<Tensor>{y.to(kCPU).to(DType::f64), rm.to(kCPU).to(DType::f64),
                                       rv.to(kCPU).to(DType::f64), xd.grad().to(kCPU).to(DType::f64),
                                       wd.grad().to(kCPU).to(DType::f64)};
          };
          auto ref = run(kCPU), got = run(kCUDA);
          const double tol = dt == DType::f64 ? 1e-9 : dt == DType::f32 ? 2e-5 : dt == DType::f16 ? 4e-3 : 2e-2;
          for (int i = 0; i < 5; ++i) {
            INFO("output " << i);
            CHECK(max_abs_diff(got[i], ref[i]) <= tol * scale_of(ref[i]) * (i >= 3 ? 10 : 1));
          }
          // the running statistics against their definition (from the input as the op saw it)
          Tensor xs = x.to(DType::f64).reshape({-1, s.c});
          Tensor em = add(mul(rm0.to(DType::f64), 0.9), mul(mean(xs, {0}), 0.1));
          Tensor ev = add(mul(rv0.to(DType::f64), 0.9), mul(var(xs, {0}, 1), 0.1));
          const double stol = sdt == DType::f64 && dt == DType::f64 ? 1e-10 : 1e-5;
          CHECK(max_abs_diff(got[1], em) <= stol * scale_of(em));
          CHECK(max_abs_diff(got[2], ev) <= stol * scale_of(ev));
          CHECK(max_abs_diff(ref[1], em) <= stol * scale_of(em));
          CHECK(max_abs_diff(ref[2], ev) <= stol * scale_of(ev));
        }
  }

  // bn_apply_kernel / bn_backward_apply_kernel (kernels/norm.cuh) move V channels a step where C
  // and every pointer allow it; an input one element off a 16-byte boundary takes V = 1. The
  // arithmetic per element is the same, so the results must be the same bits.
  TEST_CASE("batch norm apply and backward on cuda: 16-byte vectors give the same bits as scalars") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(31);
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16})
      for (int64_t C : {32, 40})
        for (bool training : {true, false})
          for (NormActivation act : {NormActivation::none, NormActivation::silu, NormActivation::relu})
            for (bool epilogue : {false, true}) {
              INFO(dtype_name(dt) << " C " << C << (training ? " training" : " eval") << " act " << int(act)
                                  << (epilogue ? " residual + drop-path scale" : ""));
              const DType pt = dt == DType::f64 ? DType::f64 : DType::f32;
              const int64_t n = 2 * 5 * 3 * C;
              const Tensor flat = add(mul(randn({n + 1}, DType::f64), 2.0), 0.5).to(dt).to(kCUDA);
              const Tensor rflat = randn({n + 1}, DType::f64).to(dt).to(kCUDA);
              const Tensor w = randn({C}, pt).to(kCUDA), b = randn({C}, pt).to(kCUDA);
              const Tensor rm = randn({C}, pt).to(kCUDA), rv = add(rand({C}, pt), 0.5).to(kCUDA);
              const Tensor sc = tensor({0.0, 1.25}, {2}, pt).to(kCUDA), r = randn({2, 5, 3, C}).to(kCUDA);
              auto run = [&](int64_t offset) {
                // the same values at an aligned address (a fresh copy) or one element past one
                Tensor x = offset ? flat.narrow(0, 1, n).reshape({2, 5, 3, C})
                                  : flat.narrow(0, 1, n).clone().reshape({2, 5, 3, C});
                Tensor res = offset ? rflat.narrow(0, 1, n).reshape({2, 5, 3, C})
                                    : rflat.narrow(0, 1, n).clone().reshape({2, 5, 3, C});
                x = x.detach().requires_grad_(true);
                Tensor wd = w.detach().requires_grad_(true), bd = b.detach().requires_grad_(true);
                Tensor m = rm.clone(), v = rv.clone();
                Tensor y = epilogue ? batch_norm_residual(x, m, v, wd, bd, training, 0.1, 1e-5, res, sc)
                                    : batch_norm(x, m, v, wd, bd, training, 0.1, 1e-5, act);
                sum(mul(y.to(DType::f32), r)).backward();
                return std::vector<Tensor>{y.to(kCPU), x.grad().to(kCPU), wd.grad().to(kCPU), bd.grad().to(kCPU)};
              };
              const auto vec = run(0), scalar = run(1);
              for (size_t i = 0; i < vec.size(); ++i) {
                INFO("output " << i << " (y, grad x, grad w, grad b)");
                CHECK(max_abs_diff(vec[i].to(DType::f64), scalar[i].to(DType::f64)) == 0);
              }
              if (epilogue) break;  // (the epilogue has no activation of its own)
            }
  }
}

TEST_SUITE("cuda") {
  // reduce_cols / reduce_cols_finish (kernels/reduce.cuh): reductions over leading or middle
  // dims read in place as (outer, R, inner); one slice of R, or several (few blocks, R > 512)
  // added in slice order by the second kernel; inner below, at and above the 32-column block;
  // f32, f64 and bf16 (read natively, an f32 sum) inputs; max/min with a NaN; run to run.
  TEST_CASE("column reductions on cuda: one slice and many, every dtype, NaN, agree with cpu, run to run") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(44);
    struct Case {
      Shape shape;
      std::vector<int64_t> dims;
    };
    for (Case cs : {Case{{1, 96}, {0}}, Case{{7, 33}, {0}}, Case{{3000, 5}, {0}}, Case{{5000, 40}, {0}},
                    Case{{2, 700, 64}, {1}}, Case{{2, 6, 6, 128}, {1, 2}}, Case{{3, 4, 2, 5}, {0, 1}}})
      for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
        INFO(dtype_name(dt) << " " << shape_str(cs.shape) << " over " << cs.dims.size() << " dims from "
                            << cs.dims.front());
        Tensor x = randn(cs.shape).to(dt);
        const double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : 1.0 / 128;
        auto run = [&](Device d, int what) {
          Tensor xd = x.to(d);
          Tensor r = what == 0 ? sum(xd, cs.dims) : what == 1 ? amax(xd, cs.dims) : amin(xd, cs.dims);
          return r.to(kCPU);
        };
        for (int what = 0; what < 3; ++what) {
          CAPTURE(what);
          Tensor ref = run(kCPU, what), got = run(kCUDA, what), again = run(kCUDA, what);
          CHECK(got.dtype() == dt);
          CHECK(max_abs_diff(got.to(DType::f64), ref.to(DType::f64)) <=
                tol * (1 + max_abs(ref.to(DType::f64))) * (what == 0 ? 4 : 0));
          CHECK(max_abs_diff(got.to(DType::f64), again.to(DType::f64)) == 0);  // deterministic run to run
        }
      }
    // NaN propagates through max and min (in the first slice, in a later slice), sums do not hide it
    for (int64_t at : {3, 4000}) {
      Tensor x = randn({5000, 40});
      x.narrow(0, at, 1).narrow(1, 7, 1).fill_(NAN);
      Tensor mx = amax(x.to(kCUDA), {0}).to(kCPU), mn = amin(x.to(kCUDA), {0}).to(kCPU),
             sm = sum(x.to(kCUDA), {0}).to(kCPU);
      CHECK(std::isnan(mx.to_vector<float>()[7]));
      CHECK(std::isnan(mn.to_vector<float>()[7]));
      CHECK(std::isnan(sm.to_vector<float>()[7]));
      CHECK_FALSE(std::isnan(mx.to_vector<float>()[6]));
    }
  }
}

TEST_SUITE("cuda") {
  // layer_norm_param_partials / layer_norm_param_sum (kernels/norm.cuh): one slice of 256 rows
  // per block, a second stage when there are several; rows below, at and above one slice and
  // a partial last slice, D below, at and above the 32-column block.
  TEST_CASE("layer norm parameter gradients on cuda: row slices and the slice sum agree with cpu, run to run") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(43);
    for (DType dt : {DType::f32, DType::f64})
      for (int64_t rows : {5, 256, 257, 700})
        for (int64_t D : {5, 32, 40, 128}) {
          INFO(dtype_name(dt) << " rows " << rows << " D " << D);
          Tensor x = add(mul(randn({rows, D}, dt), 2.0), 1.0), w = randn({D}, dt), b = randn({D}, dt);
          Tensor r = randn({rows, D}, dt);
          auto run = [&](Device d) {
            Tensor xd = x.to(d).detach().requires_grad_(true), wd = w.to(d).detach().requires_grad_(true),
                   bd = b.to(d).detach().requires_grad_(true);
            sum(mul(layer_norm(xd, {D}, wd, bd), r.to(d))).backward();
            return std::vector<Tensor>{xd.grad().to(kCPU), wd.grad().to(kCPU), bd.grad().to(kCPU)};
          };
          auto ref = run(kCPU), got = run(kCUDA), again = run(kCUDA);
          const double tol = dt == DType::f64 ? 1e-9 : 2e-5;
          const char* what[] = {"grad x", "grad w", "grad b"};
          for (int i = 0; i < 3; ++i) {
            INFO(what[i]);
            CHECK(max_abs_diff(got[i], ref[i]) <= tol * scale_of(ref[i]) * 10);
            CHECK(max_abs_diff(got[i], again[i]) == 0);  // deterministic run to run
          }
        }
  }

  // group_norm_param_partials + layer_norm_param_sum (kernels/norm.cuh): N·P rows in slices
  // of 256 whose rows cross images (each row's statistics are its (n, group)'s), channels below,
  // at and past a 32-channel tile with groups inside and across tiles, and no positions at all.
  TEST_CASE("group norm parameter gradients on cuda: row slices across images agree with cpu, run to run") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(47);
    struct Shape4 {
      int64_t N, H, W, C, G;
    };
    for (DType dt : {DType::f32, DType::f64, DType::bf16})
      for (Shape4 s : {Shape4{2, 3, 1, 6, 3}, {3, 10, 9, 32, 4}, {5, 11, 7, 40, 5}, {2, 16, 16, 64, 2}, {4, 0, 3, 8, 2}}) {
        INFO(dtype_name(dt) << " N " << s.N << " H " << s.H << " W " << s.W << " C " << s.C << " G " << s.G);
        Tensor x = add(mul(randn({s.N, s.H, s.W, s.C}), 2.0), 1.0).to(dt), w = randn({s.C}).to(dt),
               b = randn({s.C}).to(dt), r = randn({s.N, s.H, s.W, s.C}).to(dt);
        auto run = [&](Device d) {
          Tensor xd = x.to(d).detach().requires_grad_(true), wd = w.to(d).detach().requires_grad_(true),
                 bd = b.to(d).detach().requires_grad_(true);
          sum(mul(group_norm(xd, s.G, wd, bd), r.to(d))).backward();
          return std::vector<Tensor>{xd.grad().to(kCPU), wd.grad().to(kCPU), bd.grad().to(kCPU)};
        };
        auto ref = run(kCPU), got = run(kCUDA), again = run(kCUDA);
        const double tol = dt == DType::f64 ? 1e-9 : dt == DType::f32 ? 2e-5 : 1e-2;
        const char* what[] = {"grad x", "grad w", "grad b"};
        for (int i = 0; i < 3; ++i) {
          INFO(what[i]);
          CHECK(max_abs_diff(got[i], ref[i]) <= tol * scale_of(ref[i]) * 10);
          CHECK(max_abs_diff(got[i], again[i]) == 0);  // deterministic run to run
        }
      }
  }

  // spatial_pool / spatial_pool_backward (kernels/cbam.cuh): one warp per 8 pixels, (mean,
  // max) pairs as one vector when aligned. Pixel counts below, at and above a warp's 8 and a
  // block's 64, C below and above 32, ties (argmax = the first), and through the op table with
  // pair buffers one element off alignment (the scalar path).
  TEST_CASE("conv2d with zero input channels or an empty kernel on cuda: the bias alone, as on the cpu") {
    // K·K·C = 0 columns: the im2col launcher must not divide by the column width
    REQUIRE_CUDA_DEVICE();
    Conv2dOptions o;
    o.padding = {1, 1, 1, 1};
    Tensor x = randn({1, 5, 5, 0}), w = randn({4, 3, 3, 0}), b = randn({4});
    Tensor ref = conv2d(x, w, b, o), got = conv2d(x.to(kCUDA), w.to(kCUDA), b.to(kCUDA), o).to(kCPU);
    CHECK(got.sizes() == Shape{1, 5, 5, 4});
    CHECK(max_abs_diff(got, ref) == 0);
  }

  TEST_CASE("attention's math backend on cuda (GEMMs, softmax, dropout) agrees with the fused kernels and the cpu") {
    // automatic picks math on a real GPU (f32/f64, and 16-bit past head dim 128); forced here
    REQUIRE_CUDA_DEVICE();
    const SdpaBackendScope restore(sdpa_backend());
    manual_seed(77);
    for (DType dt : {DType::f64, DType::f32, DType::bf16})
      for (int64_t D : {8, 160}) {
        INFO("dtype " << std::string(dtype_name(dt)) << ", head dim " << D);
        const Tensor q = randn({2, 3, 5, D}, DType::f64), k = randn({2, 3, 7, D}, DType::f64),
                     v = randn({2, 3, 7, D}, DType::f64), w = randn({2, 3, 5, D}, DType::f64);
        auto run = [&](Device dev, SdpaBackend b) {
          set_sdpa_backend(b);
          Tensor qd = q.to(dt).to(dev).detach().requires_grad_(), kd = k.to(dt).to(dev).detach().requires_grad_(),
                 vd = v.to(dt).to(dev).detach().requires_grad_();
          Tensor o = scaled_dot_product_attention(qd, kd, vd);
          CHECK(o.dtype() == dt);
          (o.to(DType::f64) * w.to(dev)).sum().backward();
          return std::vector<Tensor>{o.to(kCPU).to(DType::f64), qd.grad().to(kCPU).to(DType::f64),
                                     kd.grad().to(kCPU).to(DType::f64), vd.grad().to(kCPU).to(DType::f64)};
        };
        const auto ref = run(kCPU, SdpaBackend::fused), fused = run(kCUDA, SdpaBackend::fused),
                   math = run(kCUDA, SdpaBackend::math);
        const double tol = dt == DType::f64 ? 1e-10 : dt == DType::f32 ? 2e-5 : 3e-2;
        for (size_t i = 0; i < ref.size(); ++i) {
          INFO("output " << i << " (o, dq, dk, dv)");
          CHECK(max_abs_diff(math[i], ref[i]) <= tol * scale_of(ref[i]));
          CHECK(max_abs_diff(fused[i], ref[i]) <= tol * scale_of(ref[i]));
        }
      }
    // under bf16 autocast (the model's training step): f32 q, k, v lowered, the result bf16
    // and within bf16 rounding of the f32 result, gradients f32 like the inputs
    {
      set_sdpa_backend(SdpaBackend::math);
      const Tensor q = randn({2, 2, 7, 160}).to(kCUDA), k = randn({2, 2, 7, 160}).to(kCUDA),
                   v = randn({2, 2, 7, 160}).to(kCUDA);
      const Tensor want = scaled_dot_product_attention(q, k, v).to(kCPU);
      Tensor qg = q.detach().requires_grad_();
      Tensor o;
      {
        amp::Autocast ac(DType::bf16);
        o = scaled_dot_product_attention(qg, k, v);
      }
      CHECK(o.dtype() == DType::bf16);
      CHECK(max_abs_diff(o.to(kCPU).to(DType::f32), want) <= 3e-2 * scale_of(want));
      o.to(DType::f32).sum().backward();
      CHECK(qg.grad().dtype() == DType::f32);
      // f16 inputs under a bf16 autocast (not lowered: not f32): softmax's f32 probabilities go
      // back to v's f16, not autocast's bf16 (which matmul would refuse against an f16 v)
      amp::Autocast ac(DType::bf16);
      const Tensor o16 = scaled_dot_product_attention(q.to(DType::f16), k.to(DType::f16), v.to(DType::f16));
      CHECK(o16.dtype() == DType::f16);
      CHECK(max_abs_diff(o16.to(kCPU).to(DType::f32), want) <= 3e-2 * scale_of(want));
    }
    // dropout on the math path: a kept probability is scaled by 1/(1 − p), a dropped one is 0,
    // so with v = I (Lk = D) every output row is the dropped-out probability row
    set_sdpa_backend(SdpaBackend::math);
    const Tensor q = randn({1, 2, 4, 6}).to(kCUDA), k = randn({1, 2, 6, 6}).to(kCUDA);
    std::vector<double> id(36, 0.0);
    for (int i = 0; i < 6; ++i) id[size_t(i * 7)] = 1.0;
    const Tensor v = from_vector(id, {1, 1, 6, 6}).to(DType::f32).expand({1, 2, 6, 6}).contiguous().to(kCUDA);
    const Tensor p = softmax(matmul(q * (1.0 / std::sqrt(6.0)), k.transpose(2, 3)), -1).to(kCPU);
    const Tensor o = scaled_dot_product_attention(q, k, v, {}, 0.5).to(kCPU);
    const std::vector<double> pv = p.to(DType::f64).contiguous().to_vector(), ov = o.to(DType::f64).contiguous().to_vector();
    int dropped = 0;
    for (size_t i = 0; i < pv.size(); ++i) {
      if (ov[i] == 0) ++dropped;
      else CHECK(std::abs(ov[i] - 2 * pv[i]) <= 1e-6);
    }
    CHECK(dropped > 0);
    CHECK(dropped < int(pv.size()));
  }

  // softmax_cached / layer_norm_cached and their backward (kernels/rows.cuh): a row held in
  // registers — one warp a row (eight rows a block, the last block partly past the end), several
  // warps a row, 16-byte vectors and scalars (a pointer one element off alignment), the longest
  // row that fits (8,192 values) and the strided kernels past it; f64, f32, bf16, f16, and the
  // 16-bit inputs under autocast (f32 out).
  TEST_CASE("softmax and layer norm on cuda: rows held in registers, every width, and the strided fallback agree with cpu") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(44);
    struct Shape {
      int64_t rows, D;
      bool misaligned;
    };
    // (rows, D): one warp a row with 8 rows a block, the last block partial (37 × 49); vectors
    // (200); several warps a row, 2 rows a block, full and partial (6 and 5 × 1280); D = 50, 66
    // and 100, where narrower vectors than 16 bytes would do (scalar kernels); a misaligned row;
    // 512 threads (8192: f32 and f64 ... 16-bit: 16 values a thread); past what fits (8200,
    // 4099 odd): the strided kernels
    const Shape shapes[] = {{37, 49, false}, {7, 200, false}, {6, 1280, false}, {5, 1280, false},
                            {4, 50, false},  {3, 66, false},  {3, 100, false},  {5, 96, true},
                            {2, 8192, false}, {2, 8200, false}, {3, 4099, false}};
    for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16})
      for (bool autocast : {false, true})
        for (const Shape& sh : shapes) {
          if (autocast && (dt == DType::f64 || dt == DType::f32)) continue;
          INFO(dtype_name(dt) << (autocast ? " under autocast" : "") << " rows " << sh.rows << " D " << sh.D
                              << (sh.misaligned ? " misaligned" : ""));
          const int64_t n = sh.rows * sh.D;
          Tensor flat = mul(randn({n + 1}, DType::f64), 3.0).to(dt);
          Tensor x = flat.narrow(0, sh.misaligned ? 1 : 0, n).reshape({sh.rows, sh.D});
          Tensor w = randn({sh.D}), b = randn({sh.D});
          Tensor r = randn({sh.rows, sh.D});
          for (int op = 0; op < 4; ++op) {  // softmax, log-softmax, layer norm (affine, plain)
            CAPTURE(op);
            auto run = [&](Device d) {
              Tensor xd = (d == kCPU ? x : to_device_like(x, d)).detach().requires_grad_(true);
              REQUIRE(xd.is_contiguous());
              Tensor wd = w.to(d).to(dt == DType::f64 ? DType::f64 : DType::f32),
                     bd = b.to(d).to(dt == DType::f64 ? DType::f64 : DType::f32);
              Tensor y;
              {
                std::optional<amp::Autocast> ac;
                if (autocast) ac.emplace(dt);
                y = op == 0 ? softmax(xd, -1)
                    : op == 1 ? log_softmax(xd, -1)
                    : op == 2 ? layer_norm(xd, {sh.D}, wd, bd, 1e-5)
                              : layer_norm(xd, {sh.D}, Tensor(), Tensor(), 1e-5);
              }
              sum(mul(y.to(DType::f64), r.to(d).to(DType::f64))).backward();
              return std::pair{y.to(kCPU), xd.grad().to(kCPU)};
            };
            const auto [yc, gc] = run(kCPU);
            const auto [yg, gg] = run(kCUDA);
            CHECK(yg.dtype() == yc.dtype());
            CHECK(yg.dtype() == (autocast ? DType::f32 : dt));
            // y in f32 under autocast (one computation from the same 16-bit x); x's gradient in x's dtype
            const double tol16 = 1e-2, tolx = dt == DType::f64 ? 1e-10 : dt == DType::f32 ? 2e-5 : tol16;
            const double toly = autocast ? 2e-5 : tolx;
            CHECK(max_abs_diff(yg.to(DType::f64), yc.to(DType::f64)) <= toly * scale_of(yc.to(DType::f64)));
            CHECK(max_abs_diff(gg.to(DType::f64), gc.to(DType::f64)) <= tolx * 4 * scale_of(gc.to(DType::f64)));
          }
        }
    // special values as the cpu twin treats them: a row of -inf (NaN out: 0/0), -inf entries
    // (0 out), +inf (NaN), NaN (NaN); a constant row for layer norm (0 out)
    for (DType dt : {DType::f32, DType::bf16})
      for (int64_t D : {49, 1280}) {
        INFO(dtype_name(dt) << " D " << D);
        Tensor x = randn({5, D});
        x.narrow(0, 0, 1).fill_(-INFINITY);
        x.narrow(0, 1, 1).narrow(1, 3, 7).fill_(-INFINITY);
        x.narrow(0, 2, 1).narrow(1, D - 1, 1).fill_(INFINITY);
        x.narrow(0, 3, 1).narrow(1, 5, 1).fill_(NAN);
        x.narrow(0, 4, 1).fill_(2.5);
        x = x.to(dt);
        auto same = [](const Tensor& a, const Tensor& b, double tol) {
          const std::vector<double> u = a.to(DType::f64).to_vector(), v = b.to(DType::f64).to_vector();
          for (size_t i = 0; i < u.size(); ++i)
            if (std::isnan(u[i]) != std::isnan(v[i]) || (!std::isnan(u[i]) && std::fabs(u[i] - v[i]) > tol)) return false;
          return true;
        };
        const double tol = dt == DType::f32 ? 1e-6 : 1e-2;
        CHECK(same(softmax(x.to(kCUDA), -1).to(kCPU), softmax(x, -1), tol));
        CHECK(same(log_softmax(x.to(kCUDA), -1).to(kCPU), log_softmax(x, -1), tol * 10));
        Tensor xc = x.narrow(0, 4, 1);
        CHECK(same(layer_norm(xc.to(kCUDA), {D}).to(kCPU), layer_norm(xc, {D}), tol));
      }
  }

  TEST_CASE("GEMMs with an inner dimension of 0 on cuda: C = beta C + the epilogue, as on the cpu") {
    // cuBLAS refuses a leading dimension of 0 (K = 0: status 7 on an H200, 2026-12-04); both
    // backends give such a product the same rule (runtime.cpp: blas_leading_dims)
    REQUIRE_CUDA_DEVICE();
    for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
      INFO("dtype " << std::string(dtype_name(dt)));
      const TensorOptions o(dt, kCPU);
      const Tensor a = randn({3, 0}, o), b = randn({0, 5}, o), w = randn({5, 0}, o), bias = randn({5}, o);
      const Tensor a3 = randn({2, 3, 0}, o), b3 = randn({2, 0, 4}, o);
      auto both = [&](const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& f, const Tensor& x,
                      const Tensor& y, const Tensor& z, double rel = 0.0) {
        const Tensor ref = f(x, y, z), got = f(x.to(kCUDA), y.to(kCUDA), z.to(kCUDA)).to(kCPU);
        CHECK(got.sizes() == ref.sizes());
        CHECK(max_abs_diff(got, ref) <= rel * scale_of(ref));
      };
      both([](const Tensor& x, const Tensor& y, const Tensor&) { return matmul(x, y); }, a, b, bias);
      both([](const Tensor& x, const Tensor& y, const Tensor& z) { return linear(x, y, z); }, a, w, bias);
      both([](const Tensor& x, const Tensor& y, const Tensor& z) { return linear(x, y, z, GemmEpilogue::bias_relu); },
           a, w, bias);
      both([](const Tensor& x, const Tensor& y, const Tensor& z) { return linear(x, y, z, GemmEpilogue::bias_gelu); },
           a, w, bias, dt == DType::bf16 ? 1e-2 : 1e-6);  // GELU(bias): the device's erf, an ulp from the host's
      both([](const Tensor& x, const Tensor& y, const Tensor&) { return matmul(x, y); }, a3, b3, bias);
    }
    // the runtime's GEMM directly: C = beta C (K = 0, lda = ldb-of-an-empty-row = 0)
    std::vector<float> host(12);
    for (size_t i = 0; i < host.size(); ++i) host[i] = float(i) - 3.5f;
    float* C = static_cast<float*>(cuda::allocate(host.size() * 4));
    cuda::copy_to_device(C, host.data(), host.size() * 4);
    cuda::gemm(false, false, 3, 4, 0, 1.f, C, 0, C, 4, 0.5f, C, 4);
    std::vector<float> back(12);
    cuda::copy_to_host(back.data(), C, back.size() * 4);
    for (size_t i = 0; i < back.size(); ++i) CHECK(back[i] == 0.5f * host[i]);
    // a leading dimension shorter than a nonempty row: refused naming the call, on either backend
    CHECK_THROWS_WITH_AS(cuda::gemm(false, false, 3, 4, 2, 1.f, C, 1, C, 4, 0.f, C, 4),
                         doctest::Contains("cuda::gemm (f32): a leading dimension is shorter than its row"), Error);
    cuda::deallocate(C, host.size() * 4);
  }

  TEST_CASE("CBAM channel pool on cuda: position slices, ties, partial channel tiles agree with cpu") {
    // the backward's grid splits P into slices of 8-position multiples until ~1024 blocks:
    // one slice (P = 3), several with a partial last one (P = 1000 at one tile: 125 slices of 8),
    // C below, at and past a 32-channel tile. The forward splits P = 1000 into 8 slices of 125
    // (position_slices) merged by channel_pool_finish_kernel: a tie between positions 0 and 999
    // (the first and the last slice) must keep position 0
    REQUIRE_CUDA_DEVICE();
    manual_seed(53);
    for (DType dt : {DType::f32, DType::bf16})
      for (int64_t P : {3, 49, 1000})
        for (int64_t C : {5, 32, 70})
          for (int64_t N : {1, 3}) {
            INFO(std::string(dtype_name(dt)) << " N " << N << " P " << P << " C " << C);
            Tensor x = randn({N, P, 1, C}).to(dt);
            if (P > 2) {
              x.narrow(1, 0, 1).narrow(3, 0, 1).fill_(10.0);   // channel 0's maximum at position 0 ...
              x.narrow(1, 2, 1).copy_(x.narrow(1, 0, 1));      // tied by position 2
              x.narrow(1, P - 1, 1).copy_(x.narrow(1, 0, 1));  // and by P − 1 (another slice)
            }
            Tensor r = randn({N, 2, C}).to(dt);
            auto run = [&](Device d) {
              Tensor xd = x.to(d).detach().requires_grad_(true);
              Tensor y = channel_pool2d(xd);  // (N, 2, C): means, maxima
              sum(mul(y, r.to(d))).backward();
              return std::vector<Tensor>{y.to(kCPU), xd.grad().to(kCPU)};
            };
            auto ref = run(kCPU), got = run(kCUDA);
            CHECK(max_abs_diff(got[0], ref[0]) <= (dt == DType::f32 ? 1e-6 : 1e-2) * scale_of(ref[0]));
            CHECK(max_abs_diff(got[1], ref[1]) == 0);  // g / P + [p = argmax] g max: the same operations, exact
          }
  }

  TEST_CASE("CBAM spatial pool on cuda: pixel groups, ties, aligned and unaligned pairs agree with cpu") {
    REQUIRE_CUDA_DEVICE();
    manual_seed(47);
    for (DType dt : {DType::f32, DType::f64})
      for (int64_t M : {1, 7, 8, 9, 64, 70})
        for (int64_t C : {1, 5, 32, 130}) {
          INFO(dtype_name(dt) << " M " << M << " C " << C);
          Tensor x = randn({1, M, 1, C}, dt);
          if (C > 2) x.narrow(3, 2, 1).copy_(x.narrow(3, 0, 1));  // a tie between channels 0 and 2
          Tensor r = randn({1, M, 1, 2}, dt);
          auto run = [&](Device d) {
            Tensor xd = x.to(d).detach().requires_grad_(true);
            Tensor y = spatial_pool2d(xd);  // (1, M, 1, 2)
            sum(mul(y, r.to(d))).backward();
            return std::vector<Tensor>{y.to(kCPU), xd.grad().to(kCPU)};
          };
          auto ref = run(kCPU), got = run(kCUDA);
          const double tol = dt == DType::f64 ? 1e-12 : 1e-6;
          CHECK(max_abs_diff(got[0], ref[0]) <= tol * scale_of(ref[0]));
          CHECK(max_abs_diff(got[1], ref[1]) <= tol * scale_of(ref[1]));
          // the backend entry points with out / g one element past an aligned start
          for (Device d : {kCPU, kCUDA}) {
            INFO("unaligned pairs on " << d.str());
            Tensor xs = x.reshape({M, C}).to(d);
            Tensor out_buf = full({2 * M + 1}, -7.0, TensorOptions(dt, d)), am = full({M}, -5.0, TensorOptions(DType::i64, d));
            Tensor out = out_buf.narrow(0, 1, 2 * M);
            backend::spatial_pool(xs, out, am, M, C);
            Tensor ref_out = ref[0].reshape({2 * M});
            CHECK(max_abs_diff(out.to(kCPU), ref_out) <= tol * scale_of(ref_out));
            Tensor g_buf = randn({2 * M + 1}, dt).to(d), g = g_buf.narrow(0, 1, 2 * M);
            Tensor gx = full({M, C}, -9.0, TensorOptions(dt, d));
            backend::spatial_pool_backward(g, am, gx, M, C);
            // gx[m, c] = g[m, 0] / C + [c = argmax m] g[m, 1]
            Tensor gc = g.to(kCPU).to(DType::f64).contiguous(), amc = am.to(kCPU).contiguous();
            const double* gp = gc.data_ptr<double>();
            const int64_t* ap = amc.data_ptr<int64_t>();
            std::vector<double> e(size_t(M * C));
            for (int64_t m = 0; m < M; ++m) {
              CHECK(ap[m] >= 0);
              CHECK(ap[m] < C);
              for (int64_t c = 0; c < C; ++c) e[size_t(m * C + c)] = gp[2 * m] / double(C) + (ap[m] == c ? gp[2 * m + 1] : 0.0);
            }
            Tensor expect = from_vector(e, {M, C}, dt);
            CHECK(max_abs_diff(gx.to(kCPU), expect) <= tol * scale_of(expect));
          }
        }
  }

  TEST_CASE("full reductions on cuda: long rows in slices and a second pass agree with cpu") {
    // (100000) reduced whole is one row of 13 slices, (3, 40000) over its last dim three rows of
    // 5 (reduce_rows_slices, kernels/reduce.cuh); f64, f32, and bf16 read natively (summed in f32)
    REQUIRE_CUDA_DEVICE();
    manual_seed(71);
    for (DType dt : {DType::f64, DType::f32, DType::bf16})
      for (Shape sh : {Shape{100000}, Shape{3, 40000}}) {
        INFO(dtype_name(dt) << " " << shape_str(sh));
        Tensor x = randn(sh).to(dt), xd = x.to(kCUDA);
        const std::vector<int64_t> dims = {int64_t(sh.size()) - 1};
        Tensor want = sum(x.to(DType::f64), dims), got = sum(xd, dims).to(kCPU).to(DType::f64);
        const double abs_sum = sum(abs(x.to(DType::f64))).item<double>();
        const double tol = dt == DType::f64 ? 1e-12 : 1e-5,
                     out_round = sum(xd, dims).dtype() == DType::bf16 ? 1e-2 : 0.0;
        CHECK(max_abs_diff(got, want) <= tol * abs_sum + out_round * scale_of(want));
        for (bool largest : {true, false}) {  // exact: the same values compared
          Tensor e_ref = largest ? amax(x, dims) : amin(x, dims), e_got = largest ? amax(xd, dims) : amin(xd, dims);
          CHECK(max_abs_diff(e_got.to(kCPU), e_ref) == 0);
        }
        Tensor xn = x.clone();
        xn.reshape({-1}).narrow(0, sh.back() - 3, 1).fill_(NAN);  // the last slice of the first row
        Tensor m = amax(xn.to(kCUDA), dims).to(kCPU).to(DType::f64).reshape({-1});
        CHECK(std::isnan(m.to_vector<double>()[0]));
      }
  }

  TEST_CASE("argmax on cuda: long rows in slices keep the first maximum (ties and NaN across slices), agree with cpu") {
    // (100000) is one row of 13 slices of 7,936 values, (3, 40000) three rows of 5
    // (reduce_rows_slices); the maximum is planted three times per row, the first in a later
    // slice than the row's start and the others in later slices still, so the second pass must
    // keep the smallest index; then a NaN (two, in different slices) must win the same way.
    // Every storage dtype the op takes; 16-bit rows are full of ties after rounding.
    REQUIRE_CUDA_DEVICE();
    manual_seed(83);
    for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64})
      for (Shape sh : {Shape{100000}, Shape{3, 40000}, Shape{2000, 20}}) {
        INFO(dtype_name(dt) << " " << shape_str(sh));
        const int64_t R = sh.back(), rows = shape_numel(sh) / R;
        Tensor x = mul(randn(sh), 100.0).to(dt).contiguous();
        Tensor x2 = x.reshape({rows, R});
        const bool planted = R > 10000;
        const int64_t first = R / 3, later = R - 5;  // R = 40000: 13,333, 20,000, 39,995 in slices 1, 2, 4
        if (planted)
          for (int64_t at : {later, first, R / 2}) x2.narrow(1, at, 1).fill_(1000.0);
        Tensor want = argmax(x, -1), got = argmax(x.to(kCUDA), -1).to(kCPU);
        CHECK(max_abs_diff(got.to(DType::f64), want.to(DType::f64)) == 0);
        if (planted) CHECK(got.reshape({-1}).to_vector<int64_t>()[0] == first);
        if (is_floating(dt) && planted) {
          x2.narrow(1, later, 1).fill_(NAN);
          x2.narrow(1, R / 2, 1).fill_(NAN);
          Tensor wn = argmax(x, -1), gn = argmax(x.to(kCUDA), -1).to(kCPU);
          CHECK(max_abs_diff(gn.to(DType::f64), wn.to(DType::f64)) == 0);
          CHECK(gn.reshape({-1}).to_vector<int64_t>()[0] == R / 2);
        }
      }
  }

  TEST_CASE("argmax and the CBAM pools with two NaNs: the first NaN wins on cuda as on the cpu (torch.argmax)") {
    // Each kernel merges partial (value, index) pairs out of order; two NaNs must tie, the
    // smaller index winning, or the result depends on which lane or warp saw which NaN.
    REQUIRE_CUDA_DEVICE();
    manual_seed(61);
    {  // argmax_rows, R = 300 on 128 threads: k = 40 lies in warp 1, k = 130 in warp 0 (the block merge)
      Tensor x = randn({3, 300});
      x.narrow(0, 0, 1).narrow(1, 130, 1).fill_(NAN);
      x.narrow(0, 0, 1).narrow(1, 40, 1).fill_(NAN);
      x.narrow(0, 1, 1).narrow(1, 299, 1).fill_(NAN);  // one NaN, last position
      std::vector<int64_t> ref = argmax(x, 1).to_vector<int64_t>(),
                           got = argmax(x.to(kCUDA), 1).to(kCPU).to_vector<int64_t>();
      CHECK(ref[0] == 40);
      CHECK(ref[1] == 299);
      CHECK(got == ref);
    }
    // the pools' argmax decides where the max's gradient goes: gx differs unless the same NaN wins
    auto grads = [](const Tensor& x, bool channel, Device d) {
      Tensor xd = x.to(d).detach().requires_grad_(true);
      Tensor y = channel ? channel_pool2d(xd) : spatial_pool2d(xd);
      manual_seed(5);
      Tensor r = randn(y.sizes());  // finite weights: the NaN maxima do not reach the gradient
      sum(mul(y, r.to(d))).backward();
      return xd.grad().to(kCPU);
    };
    {  // channel pool, P = 20 on 8 position lanes: p = 9 (lane 1) is merged before p = 2 (lane 2)
      Tensor x = randn({1, 20, 1, 3});
      x.narrow(1, 9, 1).narrow(3, 1, 1).fill_(NAN);
      x.narrow(1, 2, 1).narrow(3, 1, 1).fill_(NAN);
      Tensor ref = grads(x, true, kCPU), got = grads(x, true, kCUDA);
      CHECK(max_abs_diff(got, ref) == 0);
    }
    {  // channel pool, P = 600 in 5 slices of 120: p = 130 (slice 1) and p = 500 (slice 4) meet in
       // the merge of the slices' partials
      Tensor x = randn({1, 600, 1, 3});
      x.narrow(1, 500, 1).narrow(3, 1, 1).fill_(NAN);
      x.narrow(1, 130, 1).narrow(3, 1, 1).fill_(NAN);
      Tensor ref = grads(x, true, kCPU), got = grads(x, true, kCUDA);
      CHECK(max_abs_diff(got, ref) == 0);
    }
    {  // spatial pool, C = 64 over 32 lanes: c = 2 (lane 2) and c = 40 (lane 8) meet in the butterfly
      Tensor x = randn({1, 3, 1, 64});
      x.narrow(1, 0, 1).narrow(3, 40, 1).fill_(NAN);
      x.narrow(1, 0, 1).narrow(3, 2, 1).fill_(NAN);
      Tensor ref = grads(x, false, kCPU), got = grads(x, false, kCUDA);
      CHECK(max_abs_diff(got, ref) == 0);
    }
  }
}
