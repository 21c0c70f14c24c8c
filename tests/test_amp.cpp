// Mixed precision: the GEMM engine's precision semantics (TF32 rounding, f16/bf16 inputs with f32
// accumulation, fused epilogues against their unfused compositions, on cpu and the emulated
// cuda), autocast's per-op rules, GradScaler, and a nano training run in bf16 against f32.
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>

#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>

#include "common/conv.hpp"
#include "cpu/gemm.hpp"
#include "dispatch/dispatch.hpp"
#include "nano_trainer.hpp"
#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

namespace {
// Within a scope: cpu::gemm_bf16's dot product as it is (true) or off (false), restored after
struct DotState {
  bool before;
  explicit DotState(bool keep) : before(cpu::set_bf16_dot(keep && cpu::bf16_dot_available())) {}
  ~DotState() { cpu::set_bf16_dot(before); }
};
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
// Walks the autograd graph below t: true when a dtype cast ("to_dtype") of a tensor of at
// least min_numel elements is in it — an op that widened its 16-bit input to f32 and rounded
// back (min_numel > 1: small casts, such as a gate's logits, do not count).
bool has_cast(const Tensor& t, int64_t min_numel = 1) {
  std::vector<std::shared_ptr<autograd::Node>> todo{t.grad_fn()};
  while (!todo.empty()) {
    auto n = todo.back();
    todo.pop_back();
    if (!n) continue;
    if (n->name() == "to_dtype" && !n->input_meta.empty() && shape_numel(n->input_meta[0].shape) >= min_numel)
      return true;
    for (auto& e : n->next_edges) todo.push_back(e.fn);
  }
  return false;
}
// One unit in the last place of 16-bit dtype t, relative (f16: 2^-10, bf16: 2^-7).
double unit(DType t) {
  return t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
}
// a within `ulps` units of t of the reference's scale: computed in f32 and rounded once to t
// on store is within one.
bool close_to(const Tensor& a, const Tensor& ref, DType t, double ulps) {
  const Tensor r = ref.to(kCPU).to(DType::f32);
  return max_abs_diff(a.to(kCPU).to(DType::f32), r) <= ulps * unit(t) * (1 + max_abs(r));
}
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

  // The same for the backward: every differentiable input's gradient from 16-bit inputs and a
  // 16-bit upstream gradient, against the f32 op's gradient on the same rounded values. A
  // 16-bit gradient computed in f32 and rounded once on store is within one ulp of its scale;
  // the bound is two (measured 2026-12-04, each gradient scaled by its own largest magnitude:
  // every op within 0.91 ulps, `rsqrt` the widest; an op above one is named). index_select's
  // backward, the one op that refused 16-bit gradients, now sums them in f32 as gather's does.
  TEST_CASE("every registry op in f16 and bf16: input gradients against f32's on the same (rounded) values, on the CPU") {
    manual_seed(79);
    int compared = 0;
    std::map<std::string, double> worst;  // op → largest error seen, in ulps of the scale
    for (auto& c : registry()) {
      if (!c.check_f32) continue;
      for (DType dt : {DType::f16, DType::bf16}) {
        INFO("op " << c.name << " " << std::string(dtype_name(dt)));
        auto xs = make_inputs(c, false);
        std::vector<Tensor> low, ref_in;
        for (size_t i = 0; i < xs.size(); ++i) {
          Tensor l = xs[i].dtype() == DType::f64 ? xs[i].to(dt) : xs[i];
          Tensor r = xs[i].dtype() == DType::f64 ? l.to(DType::f32) : xs[i];
          if (c.inputs[i].differentiable && is_floating(l.dtype())) {
            l = l.detach().requires_grad_();
            r = r.detach().requires_grad_();
          }
          low.push_back(l);
          ref_in.push_back(r);
        }
        Tensor y = c.fn(low), yr = c.fn(ref_in);
        if (!is_floating(yr.dtype()) || !yr.requires_grad()) continue;
        // the upstream gradient: 16-bit values, the same for both (f32 for an f32 output)
        Tensor gy = randn(yr.sizes()).to(y.dtype());
        y.backward(gy);
        yr.backward(gy.to(yr.dtype()));
        for (size_t i = 0; i < low.size(); ++i) {
          if (!low[i].requires_grad()) continue;
          INFO("input " << i);
          const Tensor g = low[i].grad(), gr = ref_in[i].grad();
          REQUIRE(g.defined() == gr.defined());
          if (!gr.defined()) continue;
          CHECK(g.dtype() == low[i].dtype());  // the gradient in the input's own dtype
          // the scale is the reference's own largest magnitude (no floor at 1: a gradient of 0.04
          // is held to its own ulps); NaN on both sides would compare as equal, so none is allowed
          double scale = 0;
          bool finite = true;
          for (double v : gr.to_vector()) scale = std::max(scale, std::fabs(v)), finite = finite && std::isfinite(v);
          CHECK(finite);
          if (scale == 0) {
            CHECK(max_abs(g.to(DType::f32)) == 0);
            continue;
          }
          const double err = max_abs_diff(g.to(DType::f32), gr) / (unit(dt) * scale);
          worst[c.name] = std::max(worst[c.name], err);
          CHECK(err <= 2);
          ++compared;
        }
      }
    }
    for (auto& [name, e] : worst)
      if (e > 1) MESSAGE(name << ": " << e << " ulps");
    CHECK(compared >= 446);  // (op, dtype, input) triples measured 2026-12-04: none skipped since
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

  // On a GPU, cuBLAS does not document how its TF32 kernels convert f32 inputs (rounding or
  // truncation) and may pick a non-tensor-core kernel for small shapes; so there a result only
  // has to lie within a few TF32 errors of the exact one (the emulator, above and below, checks
  // the rounding semantics exactly).
  bool tf32_on_gpu_ok(const Tensor& got, const Tensor& exact, const Tensor& tf32) {
    return max_abs_diff(got, exact) <= 4 * max_abs_diff(tf32, exact) + 1e-5;
  }

  TEST_CASE("amp::bf16_pays: the CPU with its bf16 dot product, a real GPU with tensor cores, never the emulator") {
    for (bool dot : {false, true}) {
      DotState d(dot);  // the CPU's dot product off, or on where the CPU has it
      CAPTURE(dot);
      CHECK(amp::bf16_pays(kCPU) == cpu::bf16_dot_available());
      if (!dot) CHECK_FALSE(amp::bf16_pays(kCPU));
    }
    for (Device dev : devices()) {
      if (!dev.is_cuda()) continue;
      CHECK(amp::bf16_pays(dev) == (!cuda::is_emulated() && cuda::has_tensor_cores()));
      if (cuda::is_emulated()) CHECK_FALSE(amp::bf16_pays(dev));
    }
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
        if (rounded && !cuda::is_emulated()) {  // a GPU: see tf32_on_gpu_ok
          CHECK(tf32_on_gpu_ok(c, exact, tf32));
          continue;
        }
        CHECK(max_abs_diff(c, rounded ? tf32 : exact) < 2e-5);
        CHECK(max_abs_diff(c, rounded ? exact : tf32) > 1e-4);
      }
    }
  }

  // The convolutions' GEMMs (cuda::gemm: pointwise and im2col, forward, input and weight
  // gradient) follow the same switch: the references are the f64 convolution and its
  // gradients from exact inputs and from inputs (x, w and the upstream gradient) rounded to TF32.
  TEST_CASE("conv2d: f32 exact by default, TF32 on cuda when allowed, forward and both gradients") {
    manual_seed(9);
    auto rounded = [](const Tensor& t, bool tf32) {  // f64 copy, optionally of TF32-rounded values
      std::vector<double> v = t.to_vector();
      if (tf32)
        for (double& e : v) e = double(round_to_tf32(float(e)));
      return from_vector(v, t.sizes(), DType::f64);
    };
    struct Case {
      int64_t K, stride, C, O;
    };
    for (Case c : {Case{1, 1, 24, 40}, Case{3, 1, 20, 36}, Case{3, 2, 16, 24}}) {
      CAPTURE(c.K);
      CAPTURE(c.stride);
      Conv2dOptions o;
      o.with_stride(c.stride).with_padding(c.K / 2);
      Tensor x = randn({2, 9, 9, c.C}), w = randn({c.O, c.K, c.K, c.C});  // (N, H, W, C), (O, K, K, C)
      const int64_t OH = (9 + 2 * (c.K / 2) - c.K) / c.stride + 1;
      Tensor r = randn({2, OH, OH, c.O});  // (N, OH, OW, O): the upstream gradient
      auto run = [&](const Tensor& xi, const Tensor& wi, const Tensor& ri) {  // y, gx, gw on the inputs' device
        Tensor xd = xi.detach().requires_grad_(true), wd = wi.detach().requires_grad_(true);
        Tensor y = conv2d(xd, wd, {}, o);
        sum(mul(y, ri)).backward();
        return std::vector<Tensor>{y.detach().to(kCPU).to(DType::f64), xd.grad().to(kCPU).to(DType::f64),
                                   wd.grad().to(kCPU).to(DType::f64)};
      };
      const auto exact = run(rounded(x, false), rounded(w, false), rounded(r, false)),
                 tf32 = run(rounded(x, true), rounded(w, true), rounded(r, true));
      const char* what[] = {"y", "grad x", "grad w"};
      for (int i = 0; i < 3; ++i) {
        INFO(what[i]);
        CHECK(max_abs_diff(exact[size_t(i)], tf32[size_t(i)]) > 1e-3);  // the test can tell the modes apart
      }
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        for (bool on : {false, true}) {
          Tf32Guard g(on);
          CAPTURE(on);
          const auto got = run(x.to(dev), w.to(dev), r.to(dev));
          if (on && dev.is_cuda() && !cuda::is_emulated()) {  // a GPU: see tf32_on_gpu_ok
            for (int i = 0; i < 3; ++i) CHECK(tf32_on_gpu_ok(got[size_t(i)], exact[size_t(i)], tf32[size_t(i)]));
            continue;
          }
          const auto& want = on && dev.is_cuda() ? tf32 : exact;
          const auto& other = on && dev.is_cuda() ? exact : tf32;
          for (int i = 0; i < 3; ++i) {
            INFO(what[i]);
            CHECK(max_abs_diff(got[size_t(i)], want[size_t(i)]) < 1e-4);
            CHECK(max_abs_diff(got[size_t(i)], other[size_t(i)]) > 1e-3);
          }
        }
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

  TEST_CASE("linear backward: the bias gradient rides on the weight gradient's GEMM (fused, or the fallback sum)") {
    // dW = dzᵀ · x and db = Σ_r dz[r] from one GemmDesc (cuBLASLt's BGRADB epilogue on a GPU); an
    // emulated cuBLASLt without that algorithm sends the product plain and sums dz with a reduction.
    // Both against f64 on the same rounded values: db within one rounding of the sums' scale.
    manual_seed(16);
    struct Restore {
      ~Restore() { cuda::set_emulated_bias_grad_epilogue(true); }
    } restore;
    // R = 1 and R = 0 rows: the device sums them itself (no fused bias gradient over k < 2)
    for (Device dev : devices())
      for (DType t : {DType::f64, DType::f32, DType::bf16, DType::f16})
        for (int64_t R : {37, 1, 0})
        for (bool fused : {true, false}) {
          if (!fused && !(dev.is_cuda() && cuda::is_emulated())) continue;
          CAPTURE(dev.str());
          CAPTURE(dtype_name(t));
          CAPTURE(R);
          CAPTURE(fused);
          cuda::set_emulated_bias_grad_epilogue(fused);
          Tensor x0 = randn({R, 24}).to(t), w0 = randn({19, 24}).to(t), b0 = randn({19}).to(t),
                 g0 = randn({R, 19}).to(t);  // (R, K), (N, K), (N), the upstream gradient (R, N)
          auto leaf = [&](const Tensor& v) { return v.to(dev).detach().requires_grad_(); };
          Tensor x = leaf(x0), w = leaf(w0), b = leaf(b0);
          Tensor y = linear(x, w, b);  // (R, N)
          sum(mul(y, g0.to(dev))).backward();
          const Tensor g64 = g0.to(DType::f64), x64 = x0.to(DType::f64), w64 = w0.to(DType::f64);
          const Tensor db = sum(g64, {0}), dw = matmul(g64.t(), x64), dx = matmul(g64, w64);  // f64 references
          const double rel = t == DType::f64 ? 1e-12 : t == DType::f32 ? 1e-6 : t == DType::bf16 ? 1.0 / 128 : 1.0 / 1024;
          auto close = [&](const Tensor& got, const Tensor& want) {
            return max_abs_diff(got.to(kCPU).to(DType::f64), want) <= rel * (1 + max_abs(want));
          };
          CHECK(b.grad().dtype() == t);
          CHECK(b.grad().sizes() == Shape{19});
          CHECK(close(b.grad(), db));
          CHECK(close(w.grad(), dw));
          CHECK(close(x.grad(), dx));
        }
  }

  TEST_CASE("linear backward with create_graph: the bias gradient stays differentiable (no fused epilogue)") {
    for (Device dev : devices()) {
      CAPTURE(dev.str());
      manual_seed(17);
      Tensor x = randn({5, 4}, TensorOptions(DType::f64)).to(dev).requires_grad_();
      Tensor w = randn({3, 4}, TensorOptions(DType::f64)).to(dev).requires_grad_();
      Tensor b = randn({3}, TensorOptions(DType::f64)).to(dev).requires_grad_();
      Tensor y = linear(x, w, b);                       // (5, 3)
      autograd::backward({sum(mul(y, y))}, {}, true, true);  // retain + create_graph: db = Σ_r 2 y[r]
      Tensor db = b.grad();
      x.set_grad({});
      w.set_grad({});
      b.set_grad({});
      sum(db).backward();  // d/dx Σ_r Σ_n 2 y[r, n] = 2 Σ_n w[n, :] for every row
      const Tensor want = mul(sum(w.detach(), {0}, true), 2.0).expand({5, 4});
      REQUIRE(x.grad().defined());
      CHECK(max_abs_diff(x.grad().to(kCPU), want.to(kCPU)) < 1e-12);
    }
  }

  TEST_CASE("conv2d 1x1: f16/bf16 natively as one GEMM (no f32 copy of x in the graph), values and gradients") {
    manual_seed(9);
    for (Device dev : devices())
      for (DType t : {DType::bf16, DType::f16})
        for (bool with_bias : {true, false}) {
          CAPTURE(dev.str());
          CAPTURE(dtype_name(t));
          CAPTURE(with_bias);
          // (N, H, W, C) = (2, 5, 3, 24) -> 19 channels; a transposed view as input (non-contiguous)
          Tensor x0 = randn({2, 3, 5, 24}).transpose(1, 2), w0 = randn({19, 1, 1, 24}), b0 = randn({19});
          auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
          Tensor x = leaf(x0, t), w = leaf(w0, t), b = with_bias ? leaf(b0, t) : Tensor();
          // the reference: f32 on the same 16-bit values
          Tensor xr = leaf(x0.to(t), DType::f32), wr = leaf(w0.to(t), DType::f32),
                 br = with_bias ? leaf(b0.to(t), DType::f32) : Tensor();
          Tensor y = conv2d(x, w, b), yr = conv2d(xr, wr, br);  // (2, 5, 3, 19)
          CHECK(y.dtype() == t);
          CHECK(y.sizes() == Shape{2, 5, 3, 19});
          CHECK_FALSE(has_cast(y));
          const double ulp = t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
          auto close = [&](const Tensor& a, const Tensor& r) { return close_to(a, r, t, 1); };
          CHECK(close(y, yr));
          Tensor gy = randn(y.sizes()).to(t);
          sum(mul(y, gy.to(dev))).backward();
          sum(mul(yr, gy.to(DType::f32).to(dev))).backward();
          CHECK(x.grad().dtype() == t);
          CHECK(w.grad().dtype() == t);
          CHECK(close(x.grad(), xr.grad()));
          CHECK(close(w.grad(), wr.grad()));
          if (with_bias) CHECK(close(b.grad(), br.grad()));
        }
    // the check sees a cast: a bf16 tensor widened before an f32 op
    Tensor x = randn({1, 6, 6, 4}).to(DType::bf16).requires_grad_(), w = randn({5, 3, 3, 4});
    CHECK(has_cast(conv2d(x.to(DType::f32), w)));
  }

  TEST_CASE("depthwise and im2col conv2d: f16/bf16 natively (f32 math, one rounding), no f32 copy in the graph") {
    manual_seed(11);
    struct Case {
      int64_t C, k, stride, O, groups;  // groups 0: depthwise (groups = O = C)
    };
    // depthwise with 8-wide vectors and scalar (13 channels), and 256 channels at 5x5 (6,400
    // weights staged over 256 threads in two rounds of 16); im2col: 3x3, strided 5x5 with
    // two groups and padding, 3x3 from one input channel (a stem)
    for (Case cs : {Case{24, 3, 1, 0, 0}, Case{24, 5, 2, 0, 0}, Case{13, 3, 2, 0, 0}, Case{256, 5, 1, 0, 0},
                    Case{6, 3, 1, 10, 1}, Case{8, 5, 2, 6, 2}, Case{1, 3, 2, 16, 1}})
      for (DType t : {DType::bf16, DType::f16})
        for (bool with_bias : {true, false}) {
          CAPTURE(cs.C);
          CAPTURE(cs.k);
          CAPTURE(cs.stride);
          CAPTURE(cs.groups);
          CAPTURE(dtype_name(t));
          CAPTURE(with_bias);
          const int64_t groups = cs.groups ? cs.groups : cs.C, O = cs.groups ? cs.O : cs.C;
          Tensor x0 = randn({2, 7, 9, cs.C}), w0 = mul(randn({O, cs.k, cs.k, cs.C / groups}), 0.5), b0 = randn({O});
          const Conv2dOptions o = Conv2dOptions().with_groups(groups).with_stride(cs.stride).with_same();
          // 'same' padding: OH = ceil(7 / stride), OW = ceil(9 / stride); one gradient for both devices
          Tensor gy = randn({2, (7 + cs.stride - 1) / cs.stride, (9 + cs.stride - 1) / cs.stride, O}).to(t);
          std::vector<Tensor> ys, gxs;
          for (Device dev : devices()) {
            CAPTURE(dev.str());
            auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
            Tensor x = leaf(x0, t), w = leaf(w0, t), b = with_bias ? leaf(b0, t) : Tensor();
            Tensor xr = leaf(x0.to(t), DType::f32), wr = leaf(w0.to(t), DType::f32),
                   br = with_bias ? leaf(b0.to(t), DType::f32) : Tensor();
            Tensor y = conv2d(x, w, b, o), yr = conv2d(xr, wr, br, o);  // (2, OH, OW, C)
            CHECK(y.dtype() == t);
            CHECK_FALSE(has_cast(y));
            const double ulp = t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
            auto close = [&](const Tensor& a, const Tensor& r) { return close_to(a, r, t, 1); };
            CHECK(close(y, yr));
            REQUIRE(y.sizes() == gy.sizes());
            sum(mul(y, gy.to(dev))).backward();
            sum(mul(yr, gy.to(DType::f32).to(dev))).backward();
            CHECK(x.grad().dtype() == t);
            CHECK(w.grad().dtype() == t);
            CHECK(close(x.grad(), xr.grad()));
            CHECK(close(w.grad(), wr.grad()));
            if (with_bias) CHECK(close(b.grad(), br.grad()));
            ys.push_back(y.detach().to(kCPU));
            gxs.push_back(x.grad().to(kCPU));
          }
          // the emulated device and the CPU twin: both f32 math, so at most one rounding apart
          for (size_t i = 1; i < ys.size(); ++i) {
            const double ulp = t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
            CHECK(max_abs_diff(ys[i].to(DType::f32), ys[0].to(DType::f32)) <=
                  ulp * (1 + max_abs(ys[0].to(DType::f32))));
            CHECK(max_abs_diff(gxs[i].to(DType::f32), gxs[0].to(DType::f32)) <=
                  ulp * (1 + max_abs(gxs[0].to(DType::f32))));
          }
        }
  }

  TEST_CASE("im2col conv2d over several column chunks (the last one partial), on the CPU: the batch = image by image") {
    // x (17, 24, 24, 16), 3x3 'same', 12 outputs, groups 1 and 2: 24·24·9·16/groups column
    // elements per image and group, so the CPU's column buffer (common::kConvColElementsCpu)
    // holds 6 images (groups 1: chunks 6, 6, 5) or 12 (groups 2: 12, 5) in the forward and the
    // weight gradient, and 8 (8, 8, 1) or 16 (16, 1) in the input gradient (the transposed
    // convolution's forward, 24·24·9·12/groups per image). Each image alone is one chunk: the
    // batch must give the same outputs and gradients. Groups 1 takes im2col's whole-row gather.
    for (int64_t groups : {1, 2}) {
      CAPTURE(groups);
      const common::ConvGeom g{17, 24, 24, 16, 12, 3, 3, 24, 24, 1, 1, 1, 1, 1, 1, groups};
      CHECK(common::use_transposed_backward(g));
      for (const common::ConvGeom& gg : {g, common::transposed_geom(g)}) {
        const common::ConvPlan plan = common::conv_plan(gg, common::kConvColElementsCpu);
        CHECK(plan.chunk_images > 1);
        CHECK(plan.chunk_images < gg.N);
        CHECK(gg.N % plan.chunk_images != 0);
      }
      manual_seed(12);
      Tensor x0 = randn({17, 24, 24, 16}), w0 = mul(randn({12, 3, 3, 16 / groups}), 0.3), b0 = randn({12});
      Tensor gy0 = randn({17, 24, 24, 12});
      const Conv2dOptions o = Conv2dOptions().with_groups(groups).with_same();
      // the last pass: bf16 again with cpu::gemm_bf16's dot product off (its f32 fallback)
      for (int pass = 0; pass < 5; ++pass) {
        const DType t = std::array{DType::f64, DType::f32, DType::bf16, DType::f16, DType::bf16}[size_t(pass)];
        CAPTURE(dtype_name(t));
        CAPTURE(pass);
        const DotState dot_state(pass < 4);
        const bool reduced = t == DType::bf16 || t == DType::f16;
        auto leaf = [&](const Tensor& v, DType d) { return v.to(d).detach().requires_grad_(); };
        Tensor x = leaf(x0, t), w = leaf(w0, t), b = leaf(b0, t), wi = leaf(w0, t), bi = leaf(b0, t);
        Tensor y = conv2d(x, w, b, o);  // (17, 24, 24, 12)
        sum(mul(y, gy0.to(t))).backward();
        std::vector<Tensor> ys, gxs;
        for (int64_t n = 0; n < 17; ++n) {  // one image per call; wi's and bi's gradients accumulate
          Tensor xn = leaf(x0.slice(0, n, n + 1), t), yn = conv2d(xn, wi, bi, o);  // (1, 24, 24, 12)
          sum(mul(yn, gy0.slice(0, n, n + 1).to(t))).backward();
          ys.push_back(yn.detach());
          gxs.push_back(xn.grad());
        }
        // f64 and f32: the summation order only. 16-bit: y and gx are computed in f32 and rounded
        // once on both sides (1 unit); the image-by-image gw and gb are 17 partial sums, each
        // rounded, added up in 16 bits (16 more roundings): 33 half-units, plus the batch's one,
        // at the tensor's scale — 17 units (the f32 reference below holds gw and gb to 1)
        auto same = [&](const Tensor& a, const Tensor& ref, double units) {
          const double tol = t == DType::f64 ? 1e-12 : t == DType::f32 ? 1e-5 : units * unit(t);
          const Tensor r = ref.to(DType::f64);
          return max_abs_diff(a.to(DType::f64), r) <= tol * (1 + max_abs(r));
        };
        CHECK(same(y, cat(ys, 0), 1));
        CHECK(same(x.grad(), cat(gxs, 0), 1));
        CHECK(same(w.grad(), wi.grad(), 17));
        CHECK(same(b.grad(), bi.grad(), 17));
        if (reduced) {  // and against f32 on the same 16-bit values: each result rounded once
          Tensor xr = leaf(x0.to(t), DType::f32), wr = leaf(w0.to(t), DType::f32), br = leaf(b0.to(t), DType::f32);
          Tensor yr = conv2d(xr, wr, br, o);
          sum(mul(yr, gy0.to(t).to(DType::f32))).backward();
          CHECK(close_to(y, yr, t, 1));
          CHECK(close_to(x.grad(), xr.grad(), t, 1));
          CHECK(close_to(w.grad(), wr.grad(), t, 1));
          CHECK(close_to(b.grad(), br.grad(), t, 1));
        }
      }
    }
  }

  TEST_CASE("im2col conv2d on the device over several column chunks: 16-bit gradients from 16-bit GEMMs, gw summed in f32") {
    // x (3, 40, 40, 128), 3x3 'same', 8 outputs: 40·40·9·128 column elements per image, so the
    // device's column buffer (common::kConvColElements) holds 2 images: chunks 2 and 1. The input
    // gradient's GEMMs write f32 columns (GemmDesc::c_f32), the weight gradient's the first chunk's
    // sums then adds the next (GemmDesc::accumulate): against f32 on the same 16-bit values, each
    // result rounded once.
    // Two groups: 5 images, chunks of 4 and 1, each group's weight slice accumulated on its own.
    if (!cuda_is_available()) ADNN_SKIP("no cuda device");
    for (int64_t groups : {1, 2})
    for (DType t : {DType::bf16, DType::f16}) {
      CAPTURE(groups);
      CAPTURE(dtype_name(t));
      const int64_t N = groups == 1 ? 3 : 5;
      const common::ConvGeom g{N, 40, 40, 128, 8, 3, 3, 40, 40, 1, 1, 1, 1, 1, 1, groups};
      const common::ConvPlan plan = common::conv_plan(g);
      REQUIRE(plan.path == common::ConvPath::im2col);
      REQUIRE(plan.chunk_images == 2 * groups);
      manual_seed(19);
      Tensor x0 = randn({N, 40, 40, 128}), w0 = mul(randn({8, 3, 3, 128 / groups}), 0.1),
             gy0 = randn({N, 40, 40, 8});
      const Conv2dOptions o = Conv2dOptions().with_same().with_groups(groups);
      auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(kCUDA).detach().requires_grad_(); };
      Tensor x = leaf(x0, t), w = leaf(w0, t), xr = leaf(x0.to(t), DType::f32), wr = leaf(w0.to(t), DType::f32);
      sum(mul(conv2d(x, w, {}, o), gy0.to(t).to(kCUDA))).backward();
      sum(mul(conv2d(xr, wr, {}, o), gy0.to(t).to(DType::f32).to(kCUDA))).backward();
      CHECK(x.grad().dtype() == t);
      CHECK(w.grad().dtype() == t);
      CHECK(close_to(x.grad().to(kCPU), xr.grad().to(kCPU), t, 1));
      CHECK(close_to(w.grad().to(kCPU), wr.grad().to(kCPU), t, 1));
    }
  }

  TEST_CASE("batch norm (+SiLU, + MBConv epilogue): f16/bf16 natively, f32 statistics, no f32 copy in the graph") {
    manual_seed(10);
    for (Device dev : devices())
      for (DType t : {DType::bf16, DType::f16})
        for (int variant = 0; variant < 3; ++variant)  // plain training, SiLU training, epilogue; then eval
          for (bool training : {true, false}) {
            CAPTURE(dev.str());
            CAPTURE(dtype_name(t));
            CAPTURE(variant);
            CAPTURE(training);
            // x (N, H, W, C) = (3, 4, 5, 40), values off zero so the statistics matter
            Tensor x0 = add(mul(randn({3, 4, 5, 40}), 2.0), 0.5), r0 = randn({3, 4, 5, 40});
            Tensor w0 = add(randn({40}), 1.0), b0 = randn({40}),
                   s0 = from_vector(std::vector<double>{0.0, 1.25, 1.25}, Shape{3});
            auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
            // the 16-bit run: x and the residual in t, parameters f32 (master weights)
            Tensor x = leaf(x0, t), r = leaf(r0, t), w = leaf(w0, DType::f32), b = leaf(b0, DType::f32);
            // the reference: f32 on the same 16-bit values
            Tensor xr = leaf(x0.to(t), DType::f32), rr = leaf(r0.to(t), DType::f32), wr = leaf(w0, DType::f32),
                   br = leaf(b0, DType::f32);
            Tensor rm = zeros({40}).to(dev), rv = ones({40}).to(dev), rmr = rm.clone(), rvr = rv.clone();
            if (!training) {  // eval: running statistics near the data's
              for (Tensor* m : {&rm, &rmr}) m->copy_(full({40}, 0.4).to(dev));
              for (Tensor* v : {&rv, &rvr}) v->copy_(full({40}, 3.5).to(dev));
            }
            Tensor y, yr;
            if (variant == 2) {
              Tensor s = s0.to(dev);
              y = batch_norm_residual(x, rm, rv, w, b, training, 0.1, 1e-5, r, s);
              yr = batch_norm_residual(xr, rmr, rvr, wr, br, training, 0.1, 1e-5, rr, s);
            } else {
              const NormActivation act = variant == 1 ? NormActivation::silu : NormActivation::none;
              y = batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5, act);
              yr = batch_norm(xr, rmr, rvr, wr, br, training, 0.1, 1e-5, act);
            }
            CHECK(y.dtype() == t);
            CHECK_FALSE(has_cast(y));
            const double ulp = t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
            auto close = [&](const Tensor& a, const Tensor& r, double ulps) { return close_to(a, r, t, ulps); };
            CHECK(close(y, yr, 1));  // computed in f32, rounded once
            // the running statistics stay f32 and match the f32 run's
            CHECK(rm.dtype() == DType::f32);
            CHECK(max_abs_diff(rm.to(kCPU), rmr.to(kCPU)) < 1e-5);
            CHECK(max_abs_diff(rv.to(kCPU), rvr.to(kCPU)) < 1e-4);
            Tensor gy = randn(y.sizes());
            sum(mul(y, gy.to(t).to(dev))).backward();
            sum(mul(yr, gy.to(t).to(DType::f32).to(dev))).backward();
            CHECK(x.grad().dtype() == t);
            CHECK(w.grad().dtype() == DType::f32);
            CHECK(close(x.grad(), xr.grad(), 2));
            // parameter gradients: sums of 16-bit gradients in f32 (no rounding of the sum)
            CHECK(close(w.grad(), wr.grad(), 1));
            CHECK(close(b.grad(), br.grad(), 1));
            if (variant == 2) CHECK(close(r.grad(), rr.grad(), 1));
          }
  }

  TEST_CASE("squeeze_excite: f16/bf16 natively (f32 pooled means, logits and FC math), no f32 copy of x") {
    manual_seed(12);
    for (int64_t C : {24, 13})  // 8-wide vectors; scalar
      for (DType t : {DType::bf16, DType::f16}) {
        CAPTURE(C);
        CAPTURE(dtype_name(t));
        const int64_t R = 6;
        Tensor x0 = randn({2, 5, 7, C}), w10 = mul(randn({R, C}), 0.3), b10 = randn({R}), w20 = mul(randn({C, R}), 0.3),
               b20 = randn({C}), gy = randn({2, 5, 7, C}).to(t);
        std::vector<Tensor> ys;
        for (Device dev : devices()) {
          CAPTURE(dev.str());
          auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
          Tensor x = leaf(x0, t), w1 = leaf(w10, t), b1 = leaf(b10, t), w2 = leaf(w20, t), b2 = leaf(b20, t);
          Tensor xr = leaf(x0.to(t), DType::f32), w1r = leaf(w10.to(t), DType::f32), b1r = leaf(b10.to(t), DType::f32),
                 w2r = leaf(w20.to(t), DType::f32), b2r = leaf(b20.to(t), DType::f32);
          Tensor y = squeeze_excite(x, w1, b1, w2, b2), yr = squeeze_excite(xr, w1r, b1r, w2r, b2r);
          CHECK(y.dtype() == t);
          CHECK_FALSE(has_cast(y));
          const double ulp = t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
          auto close = [&](const Tensor& a, const Tensor& r, double ulps) { return close_to(a, r, t, ulps); };
          CHECK(close(y, yr, 1));  // statistics and math in f32: one rounding
          sum(mul(y, gy.to(dev))).backward();
          sum(mul(yr, gy.to(DType::f32).to(dev))).backward();
          CHECK(close(x.grad(), xr.grad(), 2));  // g·σ(a) rounded, then the pool's term added
          for (auto [p, pr] : {std::pair{w1, w1r}, std::pair{b1, b1r}, std::pair{w2, w2r}, std::pair{b2, b2r}})
            CHECK(close(p.grad(), pr.grad(), 1));
          ys.push_back(y.detach().to(kCPU).to(DType::f32));
        }
        for (size_t i = 1; i < ys.size(); ++i) {
          const double ulp = t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
          CHECK(max_abs_diff(ys[i], ys[0]) <= ulp * (1 + max_abs(ys[0])));
        }
      }
  }

  TEST_CASE("pooling and CBAM: f16/bf16 natively (no activation-sized cast), values and gradients; cpu and cuda") {
    manual_seed(13);
    for (DType t : {DType::bf16, DType::f16}) {
      CAPTURE(dtype_name(t));
      const double ulp = t == DType::f16 ? 1.0 / 1024 : 1.0 / 128;
      Tensor x0 = randn({2, 6, 8, 24}), gyp = randn({2, 3, 4, 24}).to(t), gyc = randn({2, 6, 8, 24}).to(t);
      nn::CBAM cbam(24, 4, 7);
      // CBAM ops' gates (channel, spatial) and output gradients, shared by both devices
      const Tensor gate_c = randn({2, 1, 1, 24}), gate_s = randn({2, 6, 8, 1});
      const Tensor g_ops[4] = {randn({2, 2, 24}).to(t), randn({2, 6, 8, 2}).to(t), randn({2, 6, 8, 24}).to(t),
                               randn({2, 6, 8, 24}).to(t)};
      std::vector<Tensor> outs;
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        cbam.to(dev);
        auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
        auto close = [&](const Tensor& a, const Tensor& r, double ulps) { return close_to(a, r, t, ulps); };
        // max and average pooling (the average with padding, the torch divisor)
        for (int kind = 0; kind < 2; ++kind) {
          CAPTURE(kind);
          Tensor x = leaf(x0, t), xr = leaf(x0.to(t), DType::f32);
          Pool2dOptions o;
          if (kind == 1) o.padding = {1, 1}, o.kernel = {3, 3}, o.stride = {2, 2};
          Tensor y = kind == 0 ? max_pool2d(x, o) : avg_pool2d(x, o),
                 yr = kind == 0 ? max_pool2d(xr, o) : avg_pool2d(xr, o);
          CHECK(y.dtype() == t);
          CHECK_FALSE(has_cast(y));
          CHECK(close(y, yr, kind == 0 ? 0 : 1));  // a maximum is one of the inputs: exact
          REQUIRE(y.sizes() == gyp.sizes());
          sum(mul(y, gyp.to(dev))).backward();
          sum(mul(yr, gyp.to(DType::f32).to(dev))).backward();
          CHECK(close(x.grad(), xr.grad(), 1));
          outs.push_back(y.detach().to(kCPU).to(DType::f32));
        }
        // CBAM's ops on the same inputs: the channel and spatial pools (mean, max), the
        // sigmoid gates with f32 logits
        for (int op = 0; op < 4; ++op) {
          CAPTURE(op);
          Tensor x = leaf(x0, t), xr = leaf(x0.to(t), DType::f32);
          const Tensor& a0 = op == 2 ? gate_c : gate_s;
          Tensor a = leaf(a0, DType::f32), ar = leaf(a0, DType::f32);
          auto run = [&](const Tensor& in, const Tensor& gate) {
            return op == 0 ? channel_pool2d(in) : op == 1 ? spatial_pool2d(in) : sigmoid_gate(in, gate);
          };
          Tensor y = run(x, a), yr = run(xr, ar);
          CHECK(y.dtype() == t);
          CHECK_FALSE(has_cast(y));
          CHECK(close(y, yr, 1));
          const Tensor& g = g_ops[op];
          REQUIRE(g.sizes() == y.sizes());
          sum(mul(y, g.to(dev))).backward();
          sum(mul(yr, g.to(DType::f32).to(dev))).backward();
          CHECK(close(x.grad(), xr.grad(), 1));
          if (op >= 2)
            CHECK(max_abs_diff(a.grad().to(kCPU), ar.grad().to(kCPU)) <= 1e-5 * (1 + max_abs(ar.grad().to(kCPU))));
          outs.push_back(y.detach().to(kCPU).to(DType::f32));
        }
        // the CBAM module under autocast: its FCs and 7x7 conv in t, no activation-sized cast
        // (its gradient is not compared with f32's: a max over values rounded differently may
        // pick another winner)
        Tensor x = leaf(x0, t), xr = leaf(x0.to(t), DType::f32);
        Tensor y, yr = cbam.forward(xr);
        {
          amp::Autocast ac(t);
          y = cbam.forward(x);
        }
        CHECK(y.dtype() == t);
        CHECK_FALSE(has_cast(y, x.numel()));
        CHECK(close(y, yr, 4));
        sum(mul(y, gyc.to(dev))).backward();
        CHECK(x.grad().dtype() == t);
        CHECK(std::isfinite(max_abs(x.grad().to(kCPU).to(DType::f32))));
      }
      // the emulated device and the CPU twin agree within a rounding (the pools and gates)
      const size_t per = outs.size() / devices().size();
      for (size_t i = per; i < outs.size(); ++i)
        CHECK(max_abs_diff(outs[i], outs[i - per]) <= ulp * (1 + max_abs(outs[i - per])));
    }
  }

  TEST_CASE(
      "layer norm, softmax, log-softmax, cross-entropy: f16/bf16 natively, f32 out under autocast; cpu and cuda") {
    // The kernels read the 16-bit input itself (no widened copy in the graph); the math is f32
    // (layer norm's row statistics f64), so against the f32 op on the same rounded inputs the
    // 16-bit output is within one rounding and autocast's f32 output within f32 noise.
    manual_seed(21);
    for (DType t : {DType::bf16, DType::f16}) {
      CAPTURE(dtype_name(t));
      const Tensor x0 = mul(randn({4, 6, 40}), 3.0), g0 = randn({4, 6, 40});
      const Tensor w0 = add(mul(randn({40}), 0.3), 1.0), b0 = mul(randn({40}), 0.2);
      const Tensor target = tensor({1, 0, 5, 3}, {4}, DType::i64);
      std::vector<Tensor> outs;
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
        auto f32_close = [](const Tensor& a, const Tensor& r, double tol) {
          const Tensor rc = r.to(kCPU).to(DType::f32);
          return max_abs_diff(a.to(kCPU).to(DType::f32), rc) <= tol * (1 + max_abs(rc));
        };
        for (bool autocast : {false, true}) {
          CAPTURE(autocast);
          const DType out_t = autocast ? DType::f32 : t;
          // the f32 reference on the rounded input; 16-bit: one rounding, f32 out: f32 noise
          auto close = [&](const Tensor& a, const Tensor& r) {
            return autocast ? f32_close(a, r, 1e-5) : close_to(a, r, t, 1);
          };
          for (int op = 0; op < 4;
               ++op) {  // layer norm, softmax (last dim), log-softmax (dim 1: strided), cross-entropy
            CAPTURE(op);
            Tensor x = leaf(x0, t), xr = leaf(x0.to(t), DType::f32);
            Tensor w = leaf(w0, DType::f32), b = leaf(b0, DType::f32), wr = leaf(w0, DType::f32),
                   br = leaf(b0, DType::f32);
            auto run = [&](const Tensor& in, const Tensor& wi, const Tensor& bi) {
              if (op == 0) return layer_norm(in, {40}, wi, bi, 1e-5);
              if (op == 1) return softmax(in, -1);
              if (op == 2) return log_softmax(in, 1);
              return cross_entropy(in.reshape({4, 240}).narrow(1, 0, 7), target.to(dev));
            };
            Tensor y, yr = run(xr, wr, br);
            {
              std::optional<amp::Autocast> ac;
              if (autocast) ac.emplace(t);
              y = run(x, w, b);
            }
            CHECK(y.dtype() == (op == 3 && !autocast ? t : out_t));
            CHECK_FALSE(has_cast(y, 8));
            if (op < 3) {
              CHECK(close(y, yr));
              outs.push_back(y.detach().to(kCPU).to(DType::f32));
              sum(mul(y, g0.to(y.dtype()).to(dev))).backward();
              sum(mul(yr, g0.to(y.dtype()).to(DType::f32).to(dev))).backward();
            } else {
              CHECK(autocast ? f32_close(y, yr, 1e-5) : close_to(y, yr, t, 2));
              y.backward();
              yr.backward();
            }
            CHECK(x.grad().dtype() == t);
            CHECK(close_to(x.grad(), xr.grad(), t, 2));
            if (op == 0) {  // the parameters' gradients in f32, from the same 16-bit values
              CHECK(w.grad().dtype() == DType::f32);
              CHECK(f32_close(w.grad(), wr.grad(), 1e-4));
              CHECK(f32_close(b.grad(), br.grad(), 1e-4));
            }
          }
        }
      }
      // the emulated device and the CPU twin agree within a rounding
      const size_t per = outs.size() / devices().size();
      for (size_t i = per; i < outs.size(); ++i)
        CHECK(max_abs_diff(outs[i], outs[i - per]) <= unit(t) * (1 + max_abs(outs[i - per])));
      // the fused compound loss: 16-bit logits and features read natively (f32 math), an f32
      // loss under autocast, the gradients rounded once into the inputs' dtypes
      const Tensor z0 = mul(randn({6, 7}), 2.0), f0 = randn({6, 12}), soft = softmax(randn({6, 7}), 1);
      const Tensor labels = tensor({0, 3, 6, 2, 2, 5}, {6}, DType::i64), centers = randn({7, 12});
      const Tensor prior = full({7}, 1.0 / 7);
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        for (bool autocast : {false, true}) {
          CAPTURE(autocast);
          auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
          Tensor z = leaf(z0, t), f = leaf(f0, t), zr = leaf(z0.to(t), DType::f32), fr = leaf(f0.to(t), DType::f32);
          auto run = [&](const Tensor& zi, const Tensor& fi) {
            return nn::compound_loss(zi, fi, soft.to(dev), labels.to(dev), centers.to(dev), prior.to(dev), {});
          };
          nn::CompoundLoss l, lr = run(zr, fr);
          {
            std::optional<amp::Autocast> ac;
            if (autocast) ac.emplace(t);
            l = run(z, f);
          }
          CHECK(l.total.dtype() == (autocast ? DType::f32 : t));
          CHECK_FALSE(has_cast(l.total));  // not even the (6, 7) logits are widened
          CHECK(max_abs_diff(l.terms.to(kCPU), lr.terms.to(kCPU)) <= 1e-5 * (1 + max_abs(lr.terms.to(kCPU))));
          l.total.backward();
          lr.total.backward();
          CHECK(z.grad().dtype() == t);
          CHECK(f.grad().dtype() == t);
          CHECK(close_to(z.grad(), zr.grad(), t, 1));
          CHECK(close_to(f.grad(), fr.grad(), t, 1));
        }
      }
    }
  }

  TEST_CASE(
      "argmax, gather, interpolate, warp_affine, group_norm: f16/bf16 natively (no f32 copy), f32-accumulated "
      "gradients") {
    // against the same ops in f32 on the rounded inputs: an argmax and a gather are exact; a
    // resampling sums in f32 (f64 for the warp) and rounds once; the gradients accumulate in f32
    // and round once, so they are within one unit of the f32 gradient rounded
    manual_seed(21);
    for (DType t : {DType::bf16, DType::f16}) {
      CAPTURE(dtype_name(t));
      const Tensor x0 = randn({2, 5, 6, 8}).to(t).to(DType::f32), gy_i = randn({2, 9, 7, 8}).to(t),
                   gy_w = randn({2, 4, 5, 8}).to(t), gy_g = randn({2, 5, 6, 3}).to(t);
      const Tensor rnd = randint(0, 8, {2, 5, 6, 3});  // repeats: the gradient sums
      const Tensor mats = tensor({0.9, 0.1, 0.5, -0.1, 1.1, 0.2, 1.2, 0.0, -0.3, 0.0, 0.8, 0.4}, {2, 2, 3});
      std::vector<Tensor> outs;
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        // argmax over the last dim, and over a middle one (a permuted copy in t, no cast)
        Tensor xa = x0.to(t).to(dev);
        backend::reset_op_calls();
        Tensor a = argmax(xa, 3);
        CHECK(backend::op_calls(backend::OpId::argmax_rows, dev.is_cuda()) == 1);
        CHECK(backend::op_calls(backend::OpId::copy, dev.is_cuda()) == 0);  // no widened copy
        Tensor am = argmax(xa, 1);
        CHECK(max_abs_diff(a.to(kCPU).to(DType::f64), argmax(x0, 3).to(DType::f64)) == 0);
        CHECK(max_abs_diff(am.to(kCPU).to(DType::f64), argmax(x0, 1).to(DType::f64)) == 0);
        auto leaf = [&](DType d) { return x0.to(d).to(dev).detach().requires_grad_(); };
        for (int op = 0; op < 3; ++op) {
          CAPTURE(op);
          Tensor x = leaf(t), xr = leaf(DType::f32);
          auto run = [&](const Tensor& in) {
            return op == 0   ? gather(in, 3, (rnd.to(dev)))
                   : op == 1 ? interpolate(in, 9, 7, InterpMode::bilinear, false)
                             : warp_affine(in, mats.to(dev), 4, 5, InterpMode::bilinear);
          };
          const Tensor& gy = op == 0 ? gy_g : op == 1 ? gy_i : gy_w;
          Tensor y = run(x), yr = run(xr);
          CHECK(y.dtype() == t);
          CHECK_FALSE(has_cast(y));
          CHECK(close_to(y, yr, t, op == 0 ? 0 : 1));
          sum(mul(y, gy.to(dev))).backward();
          sum(mul(yr, gy.to(DType::f32).to(dev))).backward();
          CHECK(x.grad().dtype() == t);
          CHECK(close_to(x.grad(), xr.grad(), t, 1));
          outs.push_back(y.detach().to(kCPU).to(DType::f32));
          outs.push_back(x.grad().to(kCPU).to(DType::f32));
        }
      }
      // the emulated device and the CPU twin agree within a rounding
      const size_t per = outs.size() / devices().size();
      for (size_t i = per; i < outs.size(); ++i)
        CHECK(max_abs_diff(outs[i], outs[i - per]) <= unit(t) * (1 + max_abs(outs[i - per])));
      // group norm (x and the affine parameters in t; statistics in f32, kept in f32)
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        const Tensor w0 = randn({8}).to(t).to(DType::f32), b0 = randn({8}).to(t).to(DType::f32);
        auto leaf = [&](const Tensor& v, DType d) { return v.to(d).to(dev).detach().requires_grad_(); };
        Tensor x = leaf(x0, t), w = leaf(w0, t), b = leaf(b0, t);
        Tensor xr = leaf(x0, DType::f32), wr = leaf(w0, DType::f32), br = leaf(b0, DType::f32);
        Tensor y = group_norm(x, 2, w, b), yr = group_norm(xr, 2, wr, br);
        CHECK(y.dtype() == t);
        CHECK_FALSE(has_cast(y));
        CHECK(close_to(y, yr, t, 1));
        const Tensor gy = randn({2, 5, 6, 8}).to(t);
        sum(mul(y, gy.to(dev))).backward();
        sum(mul(yr, gy.to(DType::f32).to(dev))).backward();
        for (auto [a, r] : {std::pair{x, xr}, std::pair{w, wr}, std::pair{b, br}}) {
          CHECK(a.grad().dtype() == t);
          CHECK(close_to(a.grad(), r.grad(), t, 1));
        }
      }
      // 4096 gradients of 1 into one input element: 4096 in an f32 accumulator, where a 16-bit
      // sum stalls (bf16 at 256, f16 at 2048)
      for (Device dev : devices()) {
        CAPTURE(dev.str());
        const TensorOptions o(t, dev);
        for (int op = 0; op < 3; ++op) {
          CAPTURE(op);
          Tensor x = zeros({1, 1, 1, 1}, o).requires_grad_();
          Tensor y = op == 0   ? gather(x, 3, zeros({1, 1, 1, 4096}, TensorOptions(DType::i64, dev)))
                     : op == 1 ? interpolate(x, 64, 64, InterpMode::nearest, false)
                               : warp_affine(x, zeros({1, 2, 3}).to(dev), 64, 64, InterpMode::bilinear);
          sum(y).backward();
          CHECK(x.grad().to(kCPU).to(DType::f64).item<double>() == 4096.0);
        }
      }
    }
  }

  TEST_CASE("a bf16 autocast forward holds less activation memory than f32 (nano, emulated cuda)") {
    if (!cuda_is_available()) ADNN_SKIP("no cuda device");
    ADNN_SKIP_EMULATED_NANO("a memory measurement over emulated nano forwards");
    // Activation memory: the allocator's bytes in use after the forward and the loss (what the
    // autograd graph keeps for backward, the autocast copies of the weights included) minus the
    // bytes held before (weights, the batch). With every backbone op native in 16 bits the
    // saved tensors halve; the head (CBAM, encoder) does not. The max-pool argmax is one byte
    // per output in both precisions.
    struct Bytes {
      size_t saved, peak;
    };
    // At batch 8 the bf16 copies of the weights (about 3.9 MB for vgg_nano_wide) are a large
    // part of what bf16 keeps; the difference between batch 16 and batch 8 is the activations
    // of 8 images alone, what grows with the batch.
    auto measure = [](std::optional<DType> precision, int64_t batch) {
      cuda::empty_cache();
      NanoTrainer::Options o;
      o.dropout = false;
      NanoTrainer t(batch, o);
      const size_t before = cuda::memory_stats().in_use;
      cuda::reset_peak_memory();
      nn::CompoundLoss cl;
      {
        amp::Autocast ac(precision);
        auto [logits, feats] = t.model->forward_with_features(t.x);
        cl = nn::compound_loss(logits, feats, t.soft, t.labels, t.centers, t.prior, {});
      }
      const size_t saved = cuda::memory_stats().in_use - before;
      cl.total.backward();
      CHECK(std::isfinite(cl.total.item<double>()));
      return Bytes{saved, cuda::memory_stats().peak_in_use - before};
    };
    const Bytes f32 = measure(std::nullopt, 8), bf16 = measure(DType::bf16, 8);
    const Bytes f32_16 = measure(std::nullopt, 16), bf16_16 = measure(DType::bf16, 16);
    const double per8_f32 = double(f32_16.saved) - double(f32.saved);
    const double per8_bf16 = double(bf16_16.saved) - double(bf16.saved);
    std::printf(
        "activation memory of a nano training step (batch 8, emulated cuda): saved after the forward f32 %zu B, "
        "bf16 %zu B (%.1f%% less); step peak f32 %zu B, bf16 %zu B; batch 16 minus batch 8 (8 images' "
        "activations): f32 %.0f B, bf16 %.0f B (%.1f%% less)\n",
        f32.saved, bf16.saved, 100.0 * (1.0 - double(bf16.saved) / double(f32.saved)), f32.peak, bf16.peak,
        per8_f32, per8_bf16, 100.0 * (1.0 - per8_bf16 / per8_f32));
    // guards on the native 16-bit paths (an op widening its input again would raise them);
    // the goal is 30% less, measured and reported in docs/training.md
    CHECK(double(bf16.saved) <= 0.8 * double(f32.saved));
    CHECK(per8_bf16 <= 0.7 * per8_f32);
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
