// Mixed precision: the GEMM engine's precision semantics (TF32 rounding, f16/bf16 inputs with f32
// accumulation, fused epilogues against their unfused compositions, on cpu and the emulated
// cuda), autocast's per-op rules, GradScaler, and a nano training run in bf16 against f32.
#include <adnn/adnn.hpp>

#include <cmath>
#include <cstring>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

namespace {
std::vector<Device> devices() {
  std::vector<Device> d{kCPU};
  if (cuda_is_available()) d.push_back(kCUDA);
  return d;
}
float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// A matmul computed in f64 from inputs rounded by `round` (the reference for a precision mode).
Tensor reference_matmul(const Tensor& a, const Tensor& b, float (*round)(float)) {
  std::vector<double> va = a.to(kCPU).to_vector(), vb = b.to(kCPU).to_vector();
  for (auto& v : va) v = round(float(v));
  for (auto& v : vb) v = round(float(v));
  return matmul(from_vector(va, a.sizes(), TensorOptions(DType::f64)), from_vector(vb, b.sizes(), TensorOptions(DType::f64)));
}
float identity(float x) { return x; }
struct Tf32Guard {
  bool saved = allow_tf32();
  explicit Tf32Guard(bool on) { set_allow_tf32(on); }
  ~Tf32Guard() { set_allow_tf32(saved); }
};
}  // namespace

TEST_SUITE("amp") {
  TEST_CASE("every registry op in f16 and bf16 against its f32 result on the same (rounded) inputs, on the CPU") {
    // The reference is the op in f32 on inputs already rounded to the storage dtype, so what
    // remains is the op's own error: computed in f32, rounded once on store — within two ulps of
    // the result's scale. (The cpu-vs-cuda comparison of the same is in tests/test_cuda_ops.cpp.)
    manual_seed(78);
    int compared = 0;
    for (auto& c : registry()) {
      if (!c.check_f32) continue;
      for (DType dt : {DType::f16, DType::bf16}) {
        INFO("op " << c.name << " " << std::string(dtype_name(dt)));
        auto xs = make_inputs(c, false);
        std::vector<Tensor> low, ref_in;
        for (auto& x : xs) {
          Tensor l = x.dtype() == DType::f64 ? x.to(dt) : x;
          low.push_back(l);
          ref_in.push_back(x.dtype() == DType::f64 ? l.to(DType::f32) : x);
        }
        NoGradGuard ng;
        Tensor got = c.fn(low), ref = c.fn(ref_in);
        if (!is_floating(ref.dtype())) {
          CHECK(max_abs_diff(got, ref) == 0);
          continue;
        }
        CHECK(got.dtype() == (ref.dtype() == DType::f32 ? dt : ref.dtype()));
        double scale = 1;
        for (double v : ref.to_vector()) scale = std::max(scale, std::fabs(v));
        const double ulp = dt == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
        CHECK(max_abs_diff(got, ref) <= 2 * ulp * scale);
        ++compared;
      }
    }
    CHECK(compared >= 2 * 60);
  }

  TEST_CASE("round_to_tf32: a 10-bit mantissa, round to nearest, ties away from zero") {
    CHECK(round_to_tf32(1.0f) == 1.0f);
    CHECK(round_to_tf32(bits_to_float(0x3F800FFFu)) == 1.0f);                      // below half an ulp: down
    CHECK(round_to_tf32(bits_to_float(0x3F801000u)) == bits_to_float(0x3F802000u));  // the tie: away from zero
    CHECK(round_to_tf32(bits_to_float(0xBF801000u)) == bits_to_float(0xBF802000u));  // negative tie: away
    CHECK(round_to_tf32(bits_to_float(0x3F803001u)) == bits_to_float(0x3F804000u));
    CHECK(std::isinf(round_to_tf32(INFINITY)));
    CHECK(std::isnan(round_to_tf32(NAN)));
  }

  TEST_CASE("matmul: f32 exact by default, TF32 on cuda when allowed (never on the CPU)") {
    manual_seed(4);
    Tensor a = randn({3, 37, 70}), b = randn({3, 70, 29});  // (B, M, K), (B, K, N)
    const Tensor exact = reference_matmul(a, b, identity), tf32 = reference_matmul(a, b, round_to_tf32);
    CHECK(max_abs_diff(exact, tf32) > 1e-4);  // the test can tell the modes apart
    for (Device dev : devices()) {
      CAPTURE(dev.str());
      for (bool on : {false, true}) {
        Tf32Guard g(on);
        Tensor c = matmul(a.to(dev), b.to(dev)).to(kCPU).to(DType::f64);
        const bool rounded = on && dev.is_cuda();
        CAPTURE(on);
        CHECK(max_abs_diff(c, rounded ? tf32 : exact) < 2e-5);
        CHECK(max_abs_diff(c, rounded ? exact : tf32) > 1e-4);
      }
    }
  }

  TEST_CASE("matmul: f16/bf16 natively, f32 accumulation, one rounding (no f32 round trip of the product)") {
    manual_seed(5);
    for (DType t : {DType::bf16, DType::f16}) {
      Tensor a = randn({2, 33, 300}).to(t), b = randn({2, 300, 17}).to(t);
      // products of exact f16/bf16 values accumulated in f32, rounded once: the f32 product of
      // the widened inputs, cast once, bit for bit
      const Tensor want = matmul(a.to(DType::f32), b.to(DType::f32)).to(t);
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        CAPTURE(dtype_name(t));
        Tensor c = matmul(a.to(dev), b.to(dev));
        CHECK(c.dtype() == t);
        CHECK(max_abs_diff(c.to(kCPU), want) == 0);
        // and against f64 within the output's rounding
        CHECK(max_abs_diff(c.to(kCPU).to(DType::f64), reference_matmul(a, b, identity)) < 0.2);
      }
    }
  }

  TEST_CASE("linear: bias, bias+ReLU and bias+GELU epilogues equal the unfused composition, values and gradients") {
    manual_seed(6);
    for (Device dev : devices())
      for (DType t : {DType::f64, DType::f32, DType::bf16})
        for (GemmEpilogue ep : {GemmEpilogue::bias, GemmEpilogue::bias_relu, GemmEpilogue::bias_gelu})
          for (bool with_bias : {true, false}) {
            CAPTURE(dev.str());
            CAPTURE(dtype_name(t));
            CAPTURE(int(ep));
            CAPTURE(with_bias);
            Tensor x0 = randn({2, 5, 24}), w0 = randn({19, 24}), b0 = randn({19});
            auto leaf = [&](const Tensor& v) { return v.to(t).to(dev).detach().requires_grad_(); };
            Tensor x = leaf(x0), w = leaf(w0), b = with_bias ? leaf(b0) : Tensor();
            Tensor xu = leaf(x0), wu = leaf(w0), bu = with_bias ? leaf(b0) : Tensor();
            Tensor y = linear(x, w, b, ep);  // (2, 5, 19)
            Tensor z = matmul(xu, wu.t());
            if (with_bias) z = add(z, bu);
            Tensor yu = ep == GemmEpilogue::bias_relu ? relu(z) : ep == GemmEpilogue::bias_gelu ? gelu(z) : z;
            // relative to the values' scale: bf16 keeps 8 bits, and the unfused z is rounded before the bias
            const double rel = t == DType::f64 ? 1e-12 : t == DType::f32 ? 1e-5 : 2.0 / 128;
            auto close = [&](const Tensor& a, const Tensor& b) {
              return max_abs_diff(a.to(kCPU), b.to(kCPU)) <= rel * (1 + max_abs(b.to(kCPU)));
            };
            CHECK(y.dtype() == t);
            CHECK(close(y, yu));
            Tensor gy = randn(y.sizes()).to(t).to(dev);
            sum(mul(y, gy)).backward();
            sum(mul(yu, gy)).backward();
            CHECK(close(x.grad(), xu.grad()));
            CHECK(close(w.grad(), wu.grad()));
            if (with_bias) CHECK(close(b.grad(), bu.grad()));
          }
  }

  TEST_CASE("linear: the fused bias GEMM gives the same bits on cpu and the emulated cuda") {
    if (!cuda_is_available()) ADNN_SKIP("no cuda device");
    manual_seed(7);
    for (DType t : {DType::f32, DType::bf16, DType::f16}) {
      Tensor x = randn({64, 48}).to(t), w = randn({40, 48}).to(t), b = randn({40}).to(t);
      for (GemmEpilogue ep : {GemmEpilogue::bias, GemmEpilogue::bias_relu, GemmEpilogue::bias_gelu}) {
        Tensor c = linear(x, w, b, ep), g = linear(x.to(kCUDA), w.to(kCUDA), b.to(kCUDA), ep).to(kCPU);
        CAPTURE(dtype_name(t));
        CHECK(max_abs_diff(c, g) == 0);
      }
    }
  }

  TEST_CASE("autocast: GEMM-class ops in the lower dtype, statistics in f32, promotion, f32 master gradients") {
    manual_seed(8);
    for (Device dev : devices()) {
      CAPTURE(dev.str());
      Tensor x = randn({4, 8, 8, 3}).to(dev);
      Tensor w = mul(randn({6, 3, 3, 3}), 0.2).to(dev).detach().requires_grad_();  // (O, KH, KW, C)
      Tensor lw = randn({5, 6}).to(dev).detach().requires_grad_();
      Tensor ln_w = full({5}, 1.0, TensorOptions(DType::f32, dev)), ln_b = zeros({5}, TensorOptions(DType::f32, dev));
      {
        amp::Autocast ac(DType::bf16);
        Tensor y = conv2d(x, w, {}, Conv2dOptions{}.with_padding(1));  // (4, 8, 8, 6)
        CHECK(y.dtype() == DType::bf16);
        Tensor h = linear(relu(y), lw);  // (4, 8, 8, 5)
        CHECK(h.dtype() == DType::bf16);
        Tensor s = softmax(h, -1);
        CHECK(s.dtype() == DType::f32);
        CHECK(layer_norm(h, {5}, ln_w, ln_b, 1e-5).dtype() == DType::f32);
        CHECK(sum(h).dtype() == DType::f32);
        CHECK(add(h, ln_w).dtype() == DType::f32);  // bf16 + f32 -> f32
        {
          amp::Autocast off(std::nullopt);
          CHECK(linear(x.reshape({-1, 3}), randn({2, 3}).to(dev)).dtype() == DType::f32);
        }
        sum(mul(s, s)).backward();
      }
      CHECK(amp::autocast_dtype() == std::nullopt);
      REQUIRE(w.grad().defined());
      CHECK(w.grad().dtype() == DType::f32);  // gradients reach the f32 master weights in f32
      CHECK(lw.grad().dtype() == DType::f32);
      CHECK(max_abs(w.grad()) > 0);
      CHECK_THROWS_WITH_AS(amp::Autocast(DType::f32), doctest::Contains("bf16 or f16"), Error);
    }
  }

  TEST_CASE("GradScaler: scale, unscale, skip and back off on inf/NaN, grow after the interval, exact state") {
    Tensor p = tensor({1.0, 2.0}, {2}).requires_grad_();
    optim::SGD opt({p}, {.lr = 0.5});
    amp::GradScaler sc({.init_scale = 8.0, .growth_factor = 2.0, .backoff_factor = 0.25, .growth_interval = 2});
    check_values(sc.scale(tensor({3.0}, {1})), {24.0});
    // clean step: grads unscaled before the step
    p.set_grad(tensor({8.0, 16.0}, {2}));
    sc.unscale_(opt);
    check_values(p.grad(), {1.0, 2.0});
    CHECK(sc.step(opt));
    check_values(p, {0.5, 1.0});
    sc.update();
    CHECK(sc.get_scale() == 8.0);
    CHECK(sc.growth_tracker() == 1);
    // inf: skipped, backoff, tracker reset
    p.set_grad(tensor({INFINITY, 1.0}, {2}));
    CHECK_FALSE(sc.step(opt));
    check_values(p, {0.5, 1.0});
    sc.update();
    CHECK(sc.get_scale() == 2.0);
    CHECK(sc.growth_tracker() == 0);
    // NaN: skipped too
    p.set_grad(tensor({NAN, 1.0}, {2}));
    CHECK_FALSE(sc.step(opt));
    sc.update();
    CHECK(sc.get_scale() == 0.5);
    // two clean steps: growth
    for (int i = 0; i < 2; ++i) {
      p.set_grad(tensor({0.5, 0.5}, {2}));
      CHECK(sc.step(opt));
      sc.update();
    }
    CHECK(sc.get_scale() == 1.0);
    CHECK(sc.growth_tracker() == 0);
    // the state round-trips exactly
    amp::GradScaler other;
    other.load_state(sc.state());
    CHECK(other.get_scale() == sc.get_scale());
    CHECK(other.growth_tracker() == sc.growth_tracker());
    CHECK_THROWS_WITH_AS(sc.update(), doctest::Contains("call step()"), Error);
  }
}
