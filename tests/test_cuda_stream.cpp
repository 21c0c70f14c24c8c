// Streams, the caching allocator (stream-tagged blocks, cross-stream events, best-fit splits,
// merges, out-of-memory retry) and CUDA graphs. The event model is the emulator's (an event
// completes only when the host synchronises with its stream), so the ordering tests are exact
// there; on a GPU they check what holds whatever the timing.
#include <adnn/cuda/runtime.hpp>
#include <adnn/nn/tta.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "nano_trainer.hpp"
#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

#define REQUIRE_CUDA_DEVICE() \
  if (!cuda_is_available()) ADNN_SKIP("no CUDA device on this machine")

namespace {
const TensorOptions kF32Cuda(DType::f32, kCUDA);
constexpr int64_t kMiB = 1 << 20;

// A created stream, destroyed at the end of the scope.
struct OwnStream {
  cuda::Stream s = cuda::create_stream();
  ~OwnStream() { cuda::destroy_stream(s); }
};

double max_param_diff(nn::Module& a, nn::Module& b) {
  auto pa = a.parameters(), pb = b.parameters();
  REQUIRE(pa.size() == pb.size());
  double m = 0;
  for (size_t i = 0; i < pa.size(); ++i) m = std::max(m, max_abs_diff(pa[i].to(kCPU), pb[i].to(kCPU)));
  return m;
}
}  // namespace

TEST_SUITE("cuda") {
  TEST_CASE("streams: StreamGuard, the thread's default stream, events") {
    REQUIRE_CUDA_DEVICE();
    OwnStream s2;
    const cuda::Stream before = cuda::current_stream();
    CHECK(before == cuda::default_stream());
    {
      cuda::StreamGuard g(s2.s);
      CHECK(cuda::current_stream() == s2.s);
      Tensor a = full({64}, 2.0, kF32Cuda);
      testing::check_values(add(a, a), std::vector<double>(64, 4.0));  // the read waits for s2
    }
    CHECK(cuda::current_stream() == before);
    cuda::Event e = cuda::create_event();
    cuda::record(e, s2.s);
    if (cuda::is_emulated()) CHECK_FALSE(cuda::query(e));  // completes when the host waits for s2
    cuda::synchronize(s2.s);
    CHECK(cuda::query(e));
    CHECK(cuda::query(s2.s));
    cuda::destroy_event(e);
  }

  TEST_CASE("caching allocator: a block recorded on another stream waits for its event") {
    REQUIRE_CUDA_DEVICE();
    OwnStream s1, s2;
    cuda::StreamGuard g(s1.s);  // a fresh stream: its pool of blocks starts empty
    const int64_t n = 3 * kMiB / 4;  // 3 MiB of f32: a segment of its own (4 MiB, split)
    void* p = nullptr;
    {
      Tensor a = empty({n}, kF32Cuda);
      p = a.data_ptr();
      a.record_stream(s2.s);  // a kernel on s2 reads `a`
    }
    auto st = cuda::memory_stats();
    CHECK(st.pending_free >= size_t(n) * 4);
    Tensor b = empty({n}, kF32Cuda);
    if (cuda::is_emulated()) {
      CHECK(b.data_ptr() != p);  // s2 has not been seen to finish: the block is not handed out
      CHECK(cuda::memory_stats().pending_free >= size_t(n) * 4);
    }
    {
      cuda::StreamGuard g2(s2.s);  // blocks belong to their stream: s2 gets none of s1's
      Tensor c = empty({n}, kF32Cuda);
      CHECK(c.data_ptr() != p);
    }
    cuda::synchronize(s2.s);
    Tensor d = empty({n}, kF32Cuda);  // now the block is free again, and the best fit
    if (cuda::is_emulated()) CHECK(d.data_ptr() == p);
    CHECK(cuda::memory_stats().pending_free == 0);
  }

  TEST_CASE("caching allocator: best-fit split, remainder cached, neighbours merge") {
    REQUIRE_CUDA_DEVICE();
    OwnStream s;
    cuda::StreamGuard g(s.s);
    void* base = nullptr;
    { base = empty({6 * kMiB / 4}, kF32Cuda).data_ptr(); }  // one 6 MiB segment, now cached
    const auto st0 = cuda::memory_stats();
    Tensor y1 = empty({2 * kMiB / 4}, kF32Cuda), y2 = empty({2 * kMiB / 4}, kF32Cuda);
    Tensor small = empty({100}, kF32Cuda);  // 400 B: the best fit is the 2 MiB left
    const auto st1 = cuda::memory_stats();
    CHECK(y1.data_ptr() == base);
    CHECK(static_cast<char*>(y2.data_ptr()) == static_cast<char*>(base) + 2 * kMiB);
    CHECK(static_cast<char*>(small.data_ptr()) == static_cast<char*>(base) + 4 * kMiB);
    CHECK(st1.splits == st0.splits + 3);
    CHECK(st1.device_mallocs == st0.device_mallocs);  // all from the cached segment
    CHECK(st1.cache_hits == st0.cache_hits + 3);
    y1 = Tensor();
    y2 = Tensor();  // merges with y1
    small = Tensor();  // merges with y1+y2 and with the rest of the segment
    const auto st2 = cuda::memory_stats();
    CHECK(st2.merges == st1.merges + 3);
    Tensor z = empty({6 * kMiB / 4}, kF32Cuda);  // the whole segment again: merged, no cudaMalloc
    CHECK(z.data_ptr() == base);
    CHECK(cuda::memory_stats().device_mallocs == st1.device_mallocs);
  }

  TEST_CASE("caching allocator: out of memory releases the cache and retries, then names what is held") {
    REQUIRE_CUDA_DEVICE();
    if (!cuda::is_emulated()) ADNN_SKIP("the device limit is the emulator's");
    cuda::empty_cache();
    OwnStream s1, s2;
    {
      cuda::StreamGuard g(s1.s);
      empty({6 * kMiB / 4}, kF32Cuda);  // 6 MiB cached on s1
    }
    const auto st0 = cuda::memory_stats();
    cuda::set_memory_limit(st0.reserved + 4 * kMiB);
    {
      cuda::StreamGuard g(s2.s);
      Tensor t;
      CHECK_NOTHROW(t = empty({6 * kMiB / 4}, kF32Cuda));  // over the limit until s1's cache goes
      const auto st1 = cuda::memory_stats();
      CHECK(st1.oom_retries == st0.oom_retries + 1);
      CHECK(st1.device_frees >= st0.device_frees + 1);
      CHECK_THROWS_WITH_AS(empty({5 * kMiB}, kF32Cuda),
                           doctest::Contains("CUDA out of memory: tried to allocate 20971520 bytes"), Error);
      try {
        empty({5 * kMiB}, kF32Cuda);
      } catch (const Error& e) {
        const std::string m = e.what();
        CHECK(m.find("bytes reserved") != std::string::npos);
        CHECK(m.find("in live tensors") != std::string::npos);
        CHECK(m.find("retried") != std::string::npos);
      }
    }
    cuda::set_memory_limit(0);
  }

  TEST_CASE("CUDA graph: capture records, replay runs; forbidden calls name themselves") {
    REQUIRE_CUDA_DEVICE();
    Tensor x = full({256}, 1.0, kF32Cuda);
    Tensor y = add(mul(x, 2.0), 1.0);  // warm-up: the cache holds these sizes
    y = Tensor();
    cuda::Graph graph;
    graph.capture_begin();
    CHECK(cuda::is_capturing());
    y = add(mul(x, 2.0), 1.0);  // y: [256], in the graph's pool
    graph.capture_end();
    CHECK_FALSE(cuda::is_capturing());
    CHECK(graph.num_nodes() >= 2);
    x.copy_(full({256}, 3.0).to(kCUDA));  // new input in the static buffer
    graph.replay();
    testing::check_values(y, std::vector<double>(256, 7.0));
    x.copy_(full({256}, -1.0).to(kCUDA));
    graph.replay();
    testing::check_values(y, std::vector<double>(256, -1.0));
    graph.capture_begin();
    y = add(mul(x, 2.0), 1.0);
    graph.capture_end();
    CHECK(graph.updated_in_place());
    if (cuda::is_emulated()) {
      cuda::Graph bad;
      bad.capture_begin();
      CHECK_THROWS_WITH_AS(y.to(kCPU), doctest::Contains("cuda::copy_to_host"), Error);
      CHECK_THROWS_WITH_AS(cuda::device_synchronize(),
                           doctest::Contains("cuda::device_synchronize during CUDA stream capture"), Error);
      bad.reset();
      CHECK_FALSE(cuda::is_capturing());
    }
  }

  TEST_CASE("CUDA graph: a capture the cache cannot serve maps a new segment into its pool, kept until reset") {
    // as PyTorch's allocator: a capture's cudaMalloc is not recorded (replays allocate nothing);
    // the segment is the graph's until reset, so neither eager work nor empty_cache takes it
    REQUIRE_CUDA_DEVICE();
    OwnStream s;  // a stream with nothing cached
    cuda::StreamGuard g(s.s);
    const int64_t n = 6 * kMiB;  // 24 MiB of f32: a segment of its own
    Tensor x = full({n}, 2.0, kF32Cuda);
    const auto st0 = cuda::memory_stats();
    cuda::Graph graph;
    graph.capture_begin();
    Tensor y = mul(x, 3.0);  // (n): no cached block of 24 MiB on this stream
    graph.capture_end();
    const auto st1 = cuda::memory_stats();
    CHECK(st1.device_mallocs > st0.device_mallocs);  // (with a small segment for the scalar)
    CHECK(st1.reserved >= st0.reserved + size_t(n) * 4);
    x.fill_(-1.0);
    cuda::reset_host_round_trips();
    graph.replay();
    CHECK(cuda::host_round_trips().device_mallocs == 0);
    CHECK(amax(y).item<double>() == -3.0);
    CHECK(amin(y).item<double>() == -3.0);
    void* const p = y.data_ptr();
    y = Tensor();  // freed: its block stays in the graph's pool (replays write it)
    {
      Tensor e = empty({n}, kF32Cuda);  // eager work gets a segment of its own
      CHECK(e.data_ptr() != p);
      CHECK(cuda::memory_stats().device_mallocs > st1.device_mallocs);
    }
    x = Tensor();
    cuda::synchronize(s.s);
    cuda::empty_cache();  // releases x's and the eager segment, not the graph's
    const size_t held = cuda::memory_stats().reserved;
    CHECK(held >= size_t(n) * 4);
    graph.reset();  // the pool returns to the cache, which may now release it
    cuda::empty_cache();
    CHECK(cuda::memory_stats().reserved + size_t(n) * 4 <= held);
  }

  TEST_CASE("CUDA graph: blocks used during a capture stay in the graph's pool until it is reset") {
    REQUIRE_CUDA_DEVICE();
    OwnStream s;
    cuda::StreamGuard g(s.s);
    { empty({1000}, kF32Cuda); }  // warm-up: a 2 MiB segment, cached
    cuda::Graph graph;
    graph.capture_begin();
    void* p = nullptr;
    {
      Tensor t = empty({1000}, kF32Cuda);  // from the cache, into the graph's pool
      p = t.data_ptr();
    }  // freed during the capture: replays may still write it
    graph.capture_end();
    const auto st0 = cuda::memory_stats();
    {
      Tensor e = empty({1000}, kF32Cuda);  // eager work does not get the graph's blocks
      CHECK(e.data_ptr() != p);
      CHECK(cuda::memory_stats().device_mallocs == st0.device_mallocs + 1);
      graph.reset();  // the pool returns to the cache
      Tensor whole = empty({2 * kMiB / 4}, kF32Cuda);
      CHECK(whole.data_ptr() == p);
      CHECK(cuda::memory_stats().device_mallocs == st0.device_mallocs + 1);
    }
  }

  TEST_CASE("CUDA graph: inference forward of adnn_fer_nano, replay equals eager bit for bit") {
    REQUIRE_CUDA_DEVICE();
    ADNN_SKIP_EMULATED_NANO("emulated nano forwards (the smaller graph cases capture and replay under ASan)");
    manual_seed(5);
    nn::FerConfig c = nn::fer_config("adnn_fer_nano");
    auto model = std::make_shared<nn::AdnnFer>(c);
    model->to(kCUDA);
    model->eval();
    NoGradGuard ng;
    const int64_t S = c.image_size;
    Tensor x = randn({2, S, S, c.in_chans}).to(kCUDA);  // static input buffer
    Tensor x2 = randn({2, S, S, c.in_chans});
    model->forward(x);  // warm-up
    cuda::Graph graph;
    graph.capture_begin();
    Tensor out = model->forward(x);  // out: [2, classes], static output buffer
    graph.capture_end();
    x.copy_(x2.to(kCUDA));
    graph.replay();
    Tensor eager = model->forward(x2.to(kCUDA));
    CHECK(max_abs_diff(out.to(kCPU), eager.to(kCPU)) == 0);
    cuda::reset_host_round_trips();
    graph.replay();
    CHECK(cuda::host_round_trips().device_mallocs == 0);
    CHECK(max_abs_diff(out.to(kCPU), eager.to(kCPU)) == 0);
  }

  TEST_CASE("CUDA graph: TTA flip and tencrop capture (nothing copied from the host), replay equals eager") {
    // predict --tta on cuda replays a graph of nn::predict_probabilities: the mirror's index and
    // the crops must be made on the device (a host copy is refused during capture)
    REQUIRE_CUDA_DEVICE();
    constexpr int64_t H = 12, W = 10;
    struct Tiny : nn::Module {  // (N, H, W, 1) -> flatten -> Linear(H·W, 3)
      std::shared_ptr<nn::Linear> fc = register_module("fc", std::make_shared<nn::Linear>(H* W, 3));
      Tensor forward(const Tensor& x) override { return (*fc)(x.reshape({x.size(0), H * W})); }  // (N, 3)
    };
    manual_seed(6);
    Tiny m;
    m.to(kCUDA);
    NoGradGuard ng;
    for (nn::Tta tta : {nn::Tta::flip, nn::Tta::tencrop}) {
      INFO(nn::tta_name(tta));
      Tensor x = randn({2, H, W, 1}).to(kCUDA);  // static input buffer
      const Tensor x2 = randn({2, H, W, 1});
      nn::predict_probabilities(m, x, tta);  // warm-up
      cuda::Graph graph;
      graph.capture_begin();
      Tensor out = nn::predict_probabilities(m, x, tta);  // (2, 3), the graph's output buffer
      graph.capture_end();
      x.copy_(x2.to(kCUDA));
      graph.replay();
      const Tensor eager = nn::predict_probabilities(m, x2.to(kCUDA), tta).to(kCPU);  // (2, 3)
      CHECK(max_abs_diff(out.to(kCPU), eager) == 0);
      m.to(kCPU);  // and the CPU's answer (the twin kernels), to float tolerance
      CHECK(max_abs_diff(eager, nn::predict_probabilities(m, x2, tta)) < 1e-5);
      m.to(kCUDA);
    }
  }

  TEST_CASE("CUDA graph: a whole nano training step (forward, loss, backward, clip, AdamW) equals eager") {
    REQUIRE_CUDA_DEVICE();
    ADNN_SKIP_EMULATED_NANO("emulated nano training steps (the smaller graph cases capture and replay under ASan)");
    OwnStream s;  // a stream of its own: a cache that only these steps filled
    cuda::StreamGuard g(s.s);
    NanoTrainer a, b;  // identical (same seed)
    for (int i = 0; i < 2; ++i) {  // warm-up: the cache fills, AdamW's state exists
      manual_seed(100 + i);
      a.step();
      manual_seed(100 + i);
      b.step();
    }
    CHECK(max_param_diff(*a.model, *b.model) == 0);
    cuda::Graph graph;
    manual_seed(7);
    graph.capture_begin();
    b.step();  // recorded, not run
    graph.capture_end();
    manual_seed(7);
    a.step();
    CHECK(max_param_diff(*a.model, *b.model) > 0);  // b has not stepped yet
    cuda::reset_host_round_trips();
    graph.replay();
    const cuda::HostRoundTrips t = cuda::host_round_trips();
    CHECK(t.device_mallocs == 0);
    CHECK(t.sync_copies == 0);
    CHECK(t.synchronizations == 0);
    CHECK(max_param_diff(*a.model, *b.model) == 0);
    CHECK(max_abs_diff(a.loss.to(kCPU), b.loss.to(kCPU)) == 0);
    CHECK(max_abs_diff(a.centers.to(kCPU), b.centers.to(kCPU)) == 0);
  }

  TEST_CASE("CUDA graph: replays of a captured training step advance AdamW (capturable) and follow set_lr") {
    REQUIRE_CUDA_DEVICE();
    ADNN_SKIP_EMULATED_NANO("20 emulated nano training steps");
    OwnStream s;
    cuda::StreamGuard g(s.s);
    // Without dropout every other value of the step lives on the device, so N replays must equal
    // N eager steps bit for bit only if t and the rate are read there (a baked-in t or rate differs).
    const NanoTrainer::Options o{.capturable = true, .dropout = false};
    NanoTrainer a(2, o), b(2, o);
    for (int i = 0; i < 2; ++i) {  // warm-up
      a.step();
      b.step();
    }
    cuda::Graph graph;
    graph.capture_begin();
    b.step();
    graph.capture_end();
    const double rates[] = {1e-3, 5e-4, 2e-3};
    for (double lr : rates) {
      a.opt->set_lr(lr);
      a.step();
      b.opt->set_lr(lr);  // outside the capture: fills the device scalar the replay reads
      graph.replay();
    }
    CHECK(max_param_diff(*a.model, *b.model) == 0);
    CHECK(max_abs_diff(a.loss.to(kCPU), b.loss.to(kCPU)) == 0);
    CHECK(a.opt->steps() == 5);
    CHECK(b.opt->steps() == 5);
    // the same replays with a non-capturable optimizer repeat the captured t and rate: they differ
    NanoTrainer c(2, {.capturable = false, .dropout = false}), d(2, {.capturable = false, .dropout = false});
    for (int i = 0; i < 2; ++i) {
      c.step();
      d.step();
    }
    cuda::Graph g2;
    g2.capture_begin();
    d.step();
    g2.capture_end();
    for (double lr : rates) {
      c.opt->set_lr(lr);
      c.step();
      d.opt->set_lr(lr);
      g2.replay();
    }
    CHECK(max_param_diff(*c.model, *d.model) > 0);
  }

  TEST_CASE("CUDA graph: each replay draws new dropout and attention-dropout masks; the first equals eager") {
    REQUIRE_CUDA_DEVICE();
    OwnStream s;
    cuda::StreamGuard g(s.s);
    manual_seed(3);
    Tensor x = full({4, 1000}, 1.0, kF32Cuda);                   // (4, 1000) static input
    Tensor q = randn({2, 2, 40, 16}).to(kCUDA), k = randn({2, 2, 40, 16}).to(kCUDA), v = randn({2, 2, 40, 16}).to(kCUDA);
    NoGradGuard ng;
    dropout(x, 0.5, true);  // warm-up
    scaled_dot_product_attention(q, k, v, Tensor(), 0.5);
    manual_seed(9);
    Tensor eager_d = dropout(x, 0.5, true).to(kCPU);
    Tensor eager_a = scaled_dot_product_attention(q, k, v, Tensor(), 0.5).to(kCPU);
    cuda::Graph graph;
    manual_seed(9);
    graph.capture_begin();
    Tensor od = dropout(x, 0.5, true);                                      // (4, 1000)
    Tensor oa = scaled_dot_product_attention(q, k, v, Tensor(), 0.5);       // (2, 2, 40, 16)
    graph.capture_end();
    graph.replay();
    CHECK(max_abs_diff(od.to(kCPU), eager_d) == 0);
    CHECK(max_abs_diff(oa.to(kCPU), eager_a) == 0);
    Tensor first_d = od.to(kCPU), first_a = oa.to(kCPU);
    graph.replay();
    CHECK(max_abs_diff(od.to(kCPU), first_d) > 0);
    CHECK(max_abs_diff(oa.to(kCPU), first_a) > 0);
    const std::vector<double> vals = od.to(kCPU).to_vector<double>();
    int64_t kept = 0;
    for (double e : vals) {
      CHECK((e == 0.0 || e == 2.0));
      kept += e != 0.0;
    }
    CHECK(kept > 1800);  // 4000 draws at p = 0.5: 2000 ± 32 (σ)
    CHECK(kept < 2200);
  }

  TEST_CASE("caching allocator: reserved against allocated over nano training steps") {
    REQUIRE_CUDA_DEVICE();
    ADNN_SKIP_EMULATED_NANO("a memory measurement over emulated nano training steps");
    // The peak is reached in the first step (its pattern then repeats): the test runs 3 steps
    // (about 10 s each on the emulator); ADNN_FRAG_STEPS=100 gives the number in docs/testing.md.
    // The workload is the ResNet nano's (the nano backbone when the goal was set and measured);
    // the VGG nanos give more (docs/testing.md: over the goal, an open finding):
    // ADNN_FRAG_BACKBONE=B measures backbone B, and then only prints the ratio.
    const char* env = std::getenv("ADNN_FRAG_STEPS");
    const char* other = std::getenv("ADNN_FRAG_BACKBONE");
    const int steps = env ? std::max(1, std::atoi(env)) : 3;
    cuda::empty_cache();
    OwnStream s;  // a stream of its own: no other test's blocks
    cuda::StreamGuard g(s.s);
    NanoTrainer::Options o;
    o.backbone = other ? other : "resnet_nano";
    NanoTrainer t(2, o);
    cuda::reset_peak_memory();
    for (int i = 0; i < steps; ++i) t.step();
    CHECK(std::isfinite(t.loss.item<double>()));
    const auto st = cuda::memory_stats();
    const double peak_ratio = double(st.peak_reserved) / double(st.peak_in_use);
    std::printf(
        "fragmentation after %d nano steps (%s, batch 2): peak reserved %zu / peak allocated %zu = %.3f; "
        "at the end reserved %zu / allocated %zu = %.3f; device mallocs %llu, splits %llu, merges %llu\n",
        steps, o.backbone.c_str(), st.peak_reserved, st.peak_in_use, peak_ratio, st.reserved, st.in_use,
        double(st.reserved) / double(st.in_use), (unsigned long long)st.device_mallocs, (unsigned long long)st.splits,
        (unsigned long long)st.merges);
    if (!other) CHECK(peak_ratio <= 1.2);
  }
}
