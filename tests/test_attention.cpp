// Fused attention and CBAM ops: registry cases (finite differences on cpu, cpu vs cuda in
// the cuda suite), the fused attention against the unfused composition on random and
// adversarial inputs, and exact small values.
#include <adnn/cuda/runtime.hpp>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
using V = std::vector<Tensor>;

namespace {

Register attention_cases({
    {"sdpa",
     {in({2, 2, 5, 4}), in({2, 2, 7, 4}), in({2, 2, 7, 4})},
     [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
    // more keys than one 32-key tile, head dim over one 32-lane chunk, explicit scale
    {"sdpa_tiles",
     {in({1, 1, 18, 40}), in({1, 1, 37, 40}), in({1, 1, 37, 40})},
     [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.0, 0.3); }},
    // more than one 32-query tile for the dK/dV kernel and one 32-key tile for the others
    {"sdpa_long_queries",
     {in({1, 1, 40, 8}), in({1, 1, 35, 8}), in({1, 1, 35, 8})},
     [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
    // second batch entry fully masked: zeros out, zero gradients
    {"sdpa_key_padding_mask",
     {in({2, 2, 3, 4}), in({2, 2, 5, 4}), in({2, 2, 5, 4}), bool_in({0, 1, 0, 0, 1, 1, 1, 1, 1, 1}, {2, 5})},
     [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2], x[3]); }},
    {"sdpa_dropout",
     {in({2, 2, 4, 4}), in({2, 2, 6, 4}), in({2, 2, 6, 4})},
     [](const V& x) {
       manual_seed(11);  // the same mask on every call
       // the fused kernels' mask, a function of seed and position on every device (on a GPU,
       // automatic would run the math backend, whose dropout op draws other bits)
       const SdpaBackendScope fused(SdpaBackend::fused);
       return scaled_dot_product_attention(x[0], x[1], x[2], {}, 0.25);
     }},
    {"channel_pool2d", {in({2, 3, 4, 5}, Domain::distinct)}, [](const V& x) { return channel_pool2d(x[0]); }},
    {"channel_pool2d_many_channels",
     {in({1, 2, 3, 37}, Domain::distinct)},
     [](const V& x) { return channel_pool2d(x[0]); }},
    // P = 300 positions at one 32-channel tile: 3 position slices and the merge kernel on cuda
    {"channel_pool2d_position_slices",
     {in({1, 20, 15, 3}, Domain::distinct)},
     [](const V& x) { return channel_pool2d(x[0]); }},
    {"spatial_pool2d", {in({2, 3, 4, 5}, Domain::distinct)}, [](const V& x) { return spatial_pool2d(x[0]); }},
    {"spatial_pool2d_many_channels",
     {in({1, 2, 2, 45}, Domain::distinct)},
     [](const V& x) { return spatial_pool2d(x[0]); }},
    {"squeeze_excite",
     {in({2, 3, 2, 6}), in({3, 6}), in({3}), in({6, 3}), in({6})},
     [](const V& x) { return squeeze_excite(x[0], x[1], x[2], x[3], x[4]); }},
    {"squeeze_excite_no_bias",
     {in({1, 5, 1, 4}), in({2, 4}), in({4, 2})},
     [](const V& x) { return squeeze_excite(x[0], x[1], {}, x[2], {}); }},
    {"sigmoid_gate_channel", {in({2, 3, 4, 5}), in({2, 1, 1, 5})}, [](const V& x) { return sigmoid_gate(x[0], x[1]); }},
    {"squeeze_excite_position_slices",
     {in({1, 20, 15, 4}), in({2, 4}), in({2}), in({4, 2}), in({4})},
     [](const V& x) { return squeeze_excite(x[0], x[1], x[2], x[3], x[4]); }},
    {"sigmoid_gate_channel_position_slices",
     {in({1, 20, 15, 3}), in({1, 1, 1, 3})},
     [](const V& x) { return sigmoid_gate(x[0], x[1]); }},
    {"sigmoid_gate_spatial", {in({2, 3, 4, 5}), in({2, 3, 4, 1})}, [](const V& x) { return sigmoid_gate(x[0], x[1]); }},
});

// softmax(scale q kᵀ + mask) v from the primitive ops.
Tensor attention_unfused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, double scale) {
  Tensor s = matmul(q, k.transpose(-1, -2)) * scale;  // (B, H, Lq, Lk)
  if (mask.defined()) {
    const int64_t B = mask.size(0), Lk = mask.size(1);
    Tensor m = mask.reshape({B, 1, 1, Lk});
    s = where(m, full(s.sizes(), -1e30, TensorOptions(s.dtype(), s.device())), s);
  }
  return matmul(softmax(s, -1), v);
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("fused attention equals the unfused composition (random and adversarial inputs)") {
    manual_seed(5);
    struct Case {
      int64_t B, H, Lq, Lk, D;
      double logit_scale;
    };
    for (Case c : {Case{2, 8, 49, 49, 32, 1.0}, Case{1, 2, 70, 33, 64, 1.0}, Case{1, 1, 5, 9, 256, 1.0},
                   Case{2, 2, 16, 40, 8, 300.0} /* logits in the thousands: the online max must hold */}) {
      CAPTURE(c.Lq);
      CAPTURE(c.D);
      Tensor q = randn({c.B, c.H, c.Lq, c.D}, DType::f64) * c.logit_scale;
      Tensor k = randn({c.B, c.H, c.Lk, c.D}, DType::f64);
      Tensor v = randn({c.B, c.H, c.Lk, c.D}, DType::f64);
      const double scale = 1.0 / std::sqrt(double(c.D));
      Tensor want = attention_unfused(q, k, v, {}, scale);
      Tensor got = scaled_dot_product_attention(q, k, v);
      CHECK(max_abs_diff(got, want) < 1e-10);
      // f32 too
      Tensor got32 = scaled_dot_product_attention(q.to(DType::f32), k.to(DType::f32), v.to(DType::f32));
      CHECK(max_abs_diff(got32, want) < 2e-5 * (c.logit_scale > 1 ? 10 : 1));
    }
  }

  TEST_CASE("fused attention: gradients equal the unfused composition's, with a padding mask") {
    manual_seed(6);
    const int64_t B = 2, H = 3, L = 20, D = 16;
    Tensor mask = zeros({B, L}, DType::boolean);
    std::vector<double> mv(size_t(B * L), 0.0);
    for (int64_t j = 15; j < L; ++j) mv[size_t(j)] = 1;  // batch 0: last 5 keys padded
    mask = from_vector(mv, {B, L}, DType::boolean);
    Tensor q0 = randn({B, H, L, D}, DType::f64), k0 = randn({B, H, L, D}, DType::f64), v0 = randn({B, H, L, D}, DType::f64);
    Tensor w = randn({B, H, L, D}, DType::f64);
    auto grads = [&](bool fused) {
      Tensor q = q0.detach().requires_grad_(true), k = k0.detach().requires_grad_(true),
             v = v0.detach().requires_grad_(true);
      Tensor o = fused ? scaled_dot_product_attention(q, k, v, mask) : attention_unfused(q, k, v, mask, 0.25);
      sum(o * w).backward();
      return std::vector<Tensor>{o.detach(), q.grad(), k.grad(), v.grad()};
    };
    auto a = grads(true), b = grads(false);
    for (size_t i = 0; i < a.size(); ++i) CHECK(max_abs_diff(a[i], b[i]) < 1e-10);
  }

  TEST_CASE("fused attention: a fully masked row gives zeros and no NaN in any gradient") {
    Tensor q = randn({1, 1, 3, 4}, DType::f64).requires_grad_(true);
    Tensor k = randn({1, 1, 2, 4}, DType::f64).requires_grad_(true);
    Tensor v = randn({1, 1, 2, 4}, DType::f64).requires_grad_(true);
    Tensor mask = from_vector(std::vector<double>{1, 1}, {1, 2}, DType::boolean);
    Tensor o = scaled_dot_product_attention(q, k, v, mask);
    check_values(o, std::vector<double>(12, 0.0));
    sum(o).backward();
    for (const Tensor& g : {q.grad(), k.grad(), v.grad()}) check_values(g, std::vector<double>(size_t(g.numel()), 0.0));
  }

  TEST_CASE("fused attention: dropout keeps about 1 - p and is reproducible from the seed") {
    Tensor q = zeros({1, 1, 64, 8}), k = zeros({1, 1, 64, 8}), v = ones({1, 1, 64, 8});
    manual_seed(3);
    Tensor a = scaled_dot_product_attention(q, k, v, {}, 0.5);
    manual_seed(3);
    Tensor b = scaled_dot_product_attention(q, k, v, {}, 0.5);
    CHECK(max_abs_diff(a, b) == 0);
    // uniform attention (1/64 each), kept with 1 - p, scaled by 2: mean output ≈ 1
    const double m = mean(a).item<double>();
    CHECK(m > 0.9);
    CHECK(m < 1.1);
  }

  TEST_CASE("CBAM pools and gate: exact values") {
    // x (1, 2, 1, 2): pixels (1, 4) and (3, 2)
    Tensor x = tensor({1, 4, 3, 2}, {1, 2, 1, 2});
    check_values(channel_pool2d(x), {2, 3, 3, 4});       // mean (2, 3), max (3, 4)
    check_values(spatial_pool2d(x), {2.5, 4, 2.5, 3});   // per pixel mean, max
    Tensor a = tensor({0, 1000}, {1, 1, 1, 2});          // σ = 0.5, 1
    check_values(sigmoid_gate(x, a), {0.5, 4, 1.5, 2});
    CHECK_THROWS_WITH_AS(sigmoid_gate(x, tensor({0, 0, 0}, {1, 1, 1, 3})),
                         doctest::Contains("sigmoid_gate: gate must be (N, 1, 1, C) or (N, H, W, 1)"), Error);
    CHECK_THROWS_WITH_AS(scaled_dot_product_attention(zeros({1, 1, 2, 300}), zeros({1, 1, 2, 300}), zeros({1, 1, 2, 300})),
                         doctest::Contains("head dim 300 not supported"), Error);
  }
}

// The tensor-core kernels (kernels/attention_mma.cuh) for f16 and bf16 on `cuda`: emulated
// mma.sync in CI, real tensor cores when a GPU is lent. The forward's reference is the f64
// composition on the same rounded inputs; the kernel rounds P to the input type before P·V,
// so the bound is a few units in the last place of the output's scale.
#define REQUIRE_TENSOR_CORES() \
  if (!cuda_is_available() || !cuda::has_tensor_cores()) ADNN_SKIP("no CUDA device with tensor cores")

TEST_SUITE("cuda") {
  TEST_CASE("tensor-core attention (f16, bf16) equals the f64 reference, masks and large logits included") {
    REQUIRE_TENSOR_CORES();
    manual_seed(15);
    struct Case {
      int64_t B, H, Lq, Lk, D;
      double logit_scale;
      bool mask;
    };
    for (Case c : {Case{2, 8, 49, 49, 256, 1.0, false} /* the paper's shape */, Case{1, 2, 70, 33, 64, 1.0, true},
                   Case{1, 1, 5, 9, 20, 1.0, false}, Case{2, 2, 16, 40, 8, 30.0, true} /* logits in the hundreds */,
                   Case{1, 1, 3, 100, 128, 1.0, false}}) {
      for (DType dt : {DType::f16, DType::bf16}) {
        CAPTURE(c.Lq);
        CAPTURE(c.D);
        INFO(dtype_name(dt));
        Tensor q = (randn({c.B, c.H, c.Lq, c.D}, DType::f64) * c.logit_scale).to(dt);
        Tensor k = randn({c.B, c.H, c.Lk, c.D}, DType::f64).to(dt);
        Tensor v = randn({c.B, c.H, c.Lk, c.D}, DType::f64).to(dt);
        Tensor mask;
        if (c.mask) {  // batch 0: the last third of the keys padded; batch 1 (if any): every key
          std::vector<double> mv(size_t(c.B * c.Lk), 0.0);
          for (int64_t j = c.Lk - c.Lk / 3; j < c.Lk; ++j) mv[size_t(j)] = 1;
          for (int64_t j = c.Lk; j < c.B * c.Lk; ++j) mv[size_t(j)] = 1;
          mask = from_vector(mv, {c.B, c.Lk}, DType::boolean);
        }
        const double scale = 1.0 / std::sqrt(double(c.D));
        Tensor want = attention_unfused(q.to(DType::f64), k.to(DType::f64), v.to(DType::f64),
                                        mask.defined() ? mask : Tensor(), scale);
        if (c.mask && c.B > 1) {  // the fully masked batch gives zeros (the composition gives a uniform average)
          Tensor keep = from_vector(std::vector<double>{1, 0}, {2, 1, 1, 1}, DType::f64);
          want = want * keep;
        }
        Tensor got = scaled_dot_product_attention(q.to(kCUDA), k.to(kCUDA), v.to(kCUDA),
                                                  mask.defined() ? mask.to(kCUDA) : Tensor());
        REQUIRE(got.dtype() == dt);
        const double ulp = dt == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
        const double err = max_abs_diff(got.to(kCPU).to(DType::f64), want);
        CHECK(std::isfinite(err));
        CHECK(err <= 3 * ulp * std::max(1.0, max_abs(want)));
      }
    }
  }

  TEST_CASE("tensor-core attention: forward and backward agree with f32, masks and dropout included") {
    REQUIRE_TENSOR_CORES();
    // the kernels under test, 16-bit against f32 with the same dropout mask (on a GPU automatic
    // runs f32 through the math backend, whose dropout draws other bits: seen on an H200)
    const SdpaBackendScope fused(SdpaBackend::fused);
    manual_seed(16);
    struct Case {
      int64_t B, H, Lq, Lk, D;
      bool mask;
      double dropout;
    };
    for (Case c : {Case{2, 2, 40, 40, 32, false, 0.0}, Case{2, 2, 40, 40, 32, false, 0.3},
                   Case{2, 1, 70, 33, 20, true, 0.0} /* two query blocks, padded head dim, masked keys */,
                   Case{1, 2, 49, 49, 256, false, 0.1} /* the paper's head size */}) {
      CAPTURE(c.Lq);
      CAPTURE(c.D);
      CAPTURE(c.dropout);
      Tensor q0 = randn({c.B, c.H, c.Lq, c.D}), k0 = randn({c.B, c.H, c.Lk, c.D}), v0 = randn({c.B, c.H, c.Lk, c.D});
      Tensor w = randn({c.B, c.H, c.Lq, c.D});
      Tensor mask;
      if (c.mask) {  // batch 0: keys 20.. padded; batch 1: every key
        std::vector<double> mv(size_t(c.B * c.Lk), 0.0);
        for (int64_t j = 20; j < c.B * c.Lk; ++j) mv[size_t(j)] = 1;
        mask = from_vector(mv, {c.B, c.Lk}, DType::boolean).to(kCUDA);
      }
      for (DType dt : {DType::f16, DType::bf16}) {
        INFO(dtype_name(dt));
        auto run = [&](DType t) {  // inputs rounded to dt either way, so only the arithmetic differs
          Tensor q = q0.to(dt).to(t).to(kCUDA).requires_grad_(true), k = k0.to(dt).to(t).to(kCUDA).requires_grad_(true),
                 v = v0.to(dt).to(t).to(kCUDA).requires_grad_(true);
          manual_seed(99);  // the same dropout seed for both runs
          Tensor o = scaled_dot_product_attention(q, k, v, mask, c.dropout);
          sum(o.to(DType::f32) * w.to(kCUDA)).backward();
          return std::vector<Tensor>{o.detach(), q.grad(), k.grad(), v.grad()};
        };
        auto low = run(dt), full = run(DType::f32);
        const double tol = dt == DType::f16 ? 4e-3 : 3e-2;
        for (size_t i = 0; i < low.size(); ++i) {
          INFO("tensor " << i << " (output, dq, dk, dv)");
          CHECK(low[i].dtype() == dt);
          Tensor a = low[i].to(kCPU).to(DType::f64), b = full[i].to(kCPU).to(DType::f64);
          const double err = max_abs_diff(a, b);
          CHECK(std::isfinite(err));
          CHECK(err <= tol * std::max(1.0, max_abs(b)));
        }
      }
    }
  }
}
