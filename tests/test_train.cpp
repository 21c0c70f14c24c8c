// Losses, optimizers, schedules, layer-wise decay, safetensors and checkpoints.
#include <adnn/config.hpp>
#include <adnn/optim/ema.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

using V = std::vector<Tensor>;
InputSpec fixed(std::function<Tensor()> f) { return InputSpec{{}, Domain::any, false, std::move(f)}; }
Tensor soft_targets() {  // rows sum to 1
  return from_vector(std::vector<double>{0.7, 0.2, 0.1, 0, 0, 1, 0.25, 0.25, 0.5, 1, 0, 0}, {4, 3}, DType::f64);
}
Tensor labels4() { return from_vector(std::vector<int64_t>{0, 2, 2, 0}, {4}); }

// Registered with the op registry: finite differences, non-contiguous inputs, f32, and the
// cpu-vs-cuda comparison all apply to the losses too.
Register loss_cases({
    {"soft_cross_entropy", {in({4, 3}), fixed(soft_targets)},
     [](const V& x) { return nn::soft_cross_entropy(x[0], x[1]); }},
    {"soft_cross_entropy_weighted", {in({4, 3}), fixed(soft_targets), fixed([] { return tensor({1, 2, 0.5}, {3}, DType::f64); })},
     [](const V& x) { return nn::soft_cross_entropy(x[0], x[1], x[2]); }},
    {"focal_loss", {in({4, 3}), fixed(soft_targets)}, [](const V& x) { return nn::focal_loss(x[0], x[1], 2.0); }},
    {"dls_loss", {in({4, 3}), fixed(soft_targets), fixed([] { return tensor({0.2, 0.5, 0.3}, {3}, DType::f64); })},
     [](const V& x) { return nn::dls_loss(x[0], x[1], x[2], 0.1); }},
    {"center_loss", {in({4, 5}), fixed(labels4), fixed([] { return tensor({0, 1, 2, 3, 4, 1, 1, 1, 1, 1, -1, 0, 1, 0, -1}, {3, 5}, DType::f64); })},
     [](const V& x) { return nn::center_loss(x[0], x[1], x[2]); }},
});

// A few draws from each generator-backed factory, concatenated.
std::vector<double> cat_draws() {
  std::vector<double> v = randn({4}).to_vector(), u = rand({3}).to_vector(), k = randint(0, 1000, {3}).to_vector();
  v.insert(v.end(), u.begin(), u.end());
  v.insert(v.end(), k.begin(), k.end());
  return v;
}

}  // namespace

TEST_SUITE("train") {
  TEST_CASE("losses against direct formulas") {
    Tensor z = tensor({1, 2, 3}, {1, 3}, DType::f64);
    const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
    Tensor t = tensor({0.5, 0, 0.5}, {1, 3}, DType::f64);
    check_values(nn::soft_cross_entropy(z, t), {0.5 * (lse - 1) + 0.5 * (lse - 3)}, 1e-12);
    // weights renormalise: w = (3, 1, 1) -> (1.5 (lse-1) + 0.5 (lse-3)) / 2
    check_values(nn::soft_cross_entropy(z, t, tensor({3, 1, 1}, {3}, DType::f64)),
                 {(1.5 * (lse - 1) + 0.5 * (lse - 3)) / 2.0}, 1e-12);
    // hard labels equal the plain cross_entropy
    Tensor z2 = randn({5, 4}, DType::f64);
    Tensor lab = from_vector(std::vector<int64_t>{0, 3, 1, 1, 2}, {5});
    check_values(nn::soft_cross_entropy(z2, nn::one_hot(lab, 4, DType::f64)), cross_entropy(z2, lab).to_vector(),
                 1e-12);
    const double p3 = std::exp(3 - lse);
    check_values(nn::focal_loss(z, tensor({0, 0, 1}, {1, 3}, DType::f64), 2.0), {(1 - p3) * (1 - p3) * (lse - 3)},
                 1e-12);
    auto prior = nn::dls_prior({100, 10, 50});  // ∝ (0.01, 0.1, 0.02)
    CHECK(prior[0] == doctest::Approx(0.01 / 0.13));
    CHECK(prior[1] == doctest::Approx(0.1 / 0.13));
    Tensor pr = from_vector(prior, {3}, DType::f64);
    Tensor q = nn::dls_targets(tensor({0, 0, 1}, {1, 3}, DType::f64), pr, 0.1);
    check_values(q, {0.1 * prior[0], 0.1 * prior[1], 0.9 + 0.1 * prior[2]}, 1e-12);
    // center loss: ½ mean ‖f - c_y‖²
    Tensor f = tensor({1, 1, 3, 3}, {2, 2}, DType::f64), c = tensor({0, 0, 3, 4}, {2, 2}, DType::f64);
    check_values(nn::center_loss(f, from_vector(std::vector<int64_t>{0, 1}, {2}), c), {0.5 * (2 + 1) / 2}, 1e-12);
    // center update: c_0 gets both samples: Δ = (2 c_0 - f_0 - f_1) / 3 = (-4/3, -4/3)
    Tensor cc = c.clone();
    nn::update_centers(cc, f, from_vector(std::vector<int64_t>{0, 0}, {2}), 0.5);
    check_values(cc, {2.0 / 3, 2.0 / 3, 3, 4}, 1e-12);
  }

  TEST_CASE("fused compound loss equals the unfused composition (values and gradients)") {
    manual_seed(5);
    std::vector<Device> devs{kCPU};
    if (cuda_is_available()) devs.push_back(kCUDA);
    for (Device d : devs) {
      INFO("device " << d.str());
      const int64_t B = 6, K = 7, D = 10;
      TensorOptions o(DType::f32, d);
      Tensor z = mul(randn({B, K}), 2.0).to(d), f = randn({B, D}).to(d);
      Tensor lab = randint(0, K, {B}).to(d);
      Tensor t = nn::one_hot(lab, K);
      t = add(mul(t, 0.8), 0.2 / K);  // mixup-like soft targets
      Tensor centers = randn({K, D}).to(d);
      Tensor prior = from_vector(nn::dls_prior({3995, 436, 4097, 7215, 4830, 3171, 4965}), {K}, o);
      for (bool weighted : {false, true}) {
        Tensor w = weighted ? uniform({K}, 0.5, 2.0).to(d) : Tensor();
        Tensor z1 = z.detach().requires_grad_(), f1 = f.detach().requires_grad_();
        Tensor z2 = z.detach().requires_grad_(), f2 = f.detach().requires_grad_();
        auto fused = nn::compound_loss(z1, f1, t, lab, centers, prior, w);
        auto ref = nn::compound_loss_unfused(z2, f2, t, lab, centers, prior, w);
        CHECK(fused.total.device() == d);
        CHECK(max_abs_diff(fused.terms, ref.terms) < 1e-5);
        CHECK(fused.total.item<double>() == doctest::Approx(ref.total.item<double>()).epsilon(1e-5));
        mul(fused.total, 3.0).backward();
        mul(ref.total, 3.0).backward();
        CHECK(max_abs_diff(z1.grad(), z2.grad()) < 1e-5);
        CHECK(max_abs_diff(f1.grad(), f2.grad()) < 1e-5);
      }
    }
    CHECK_THROWS_WITH_AS(nn::compound_loss(ones({2, 3}), ones({2, 4}), ones({2, 3}),
                                           from_vector(std::vector<int64_t>{0, 5}, {2}), ones({3, 4}), ones({3}), {}),
                         doctest::Contains("compound_loss: label 5 out of range for 3 classes"), Error);
  }

  TEST_CASE("AdamW: hand-computed steps, decoupled decay, groups") {
    Tensor p = tensor({1.0}, {1}).requires_grad_();
    optim::AdamW opt({p}, {.lr = 0.1, .weight_decay = 0.01});
    for (int step = 0; step < 2; ++step) {
      p.set_grad(tensor({0.5}, {1}));
      opt.step();
    }
    // step 1: p = 0.999 - 1 · 0.05 / (0.5 + 1e-8) = 0.899
    // step 2: p *= 0.999; m = 0.095, v = 0.00049975; m̂ = 0.5, v̂ = 0.25 -> p -= 0.1
    double p1 = 0.999 - 0.05 / (0.5 + 1e-8) * 1.0;
    double p2 = p1 * 0.999;
    double m = 0.9 * 0.05 + 0.1 * 0.5, v = 0.999 * 0.00025 + 0.001 * 0.25;
    p2 -= (0.1 / (1 - 0.81)) * m / (std::sqrt(v) / std::sqrt(1 - 0.998001) + 1e-8);
    check_values(p, {p2}, 1e-6);
    CHECK(opt.steps() == 2);
    // a parameter without a gradient does not move
    Tensor a = tensor({1.0}, {1}).requires_grad_(), b = tensor({1.0}, {1}).requires_grad_();
    optim::AdamW o2({a, b}, {.lr = 0.1});
    a.set_grad(tensor({1.0}, {1}));
    o2.step();
    check_values(b, {1.0});
  }

  TEST_CASE("fused multi-tensor AdamW on cuda equals the CPU loop") {
    if (!cuda_is_available()) ADNN_SKIP("no CUDA device");
    manual_seed(8);
    std::vector<Tensor> cpu_p, dev_p;
    for (int64_t n : {3, 100, 70000, 1}) {
      Tensor v = randn({n});
      cpu_p.push_back(v.clone().requires_grad_());
      dev_p.push_back(v.to(kCUDA).detach().requires_grad_());
    }
    std::vector<optim::ParamGroup> gc(2), gd(2);
    gc[0].params = {cpu_p[0], cpu_p[1]};
    gc[1].params = {cpu_p[2], cpu_p[3]};
    gc[1].lr_scale = 0.5;
    gc[1].weight_decay = 0.05;
    gd = gc;
    gd[0].params = {dev_p[0], dev_p[1]};
    gd[1].params = {dev_p[2], dev_p[3]};
    optim::AdamW oc(gc, {.lr = 0.01}), od(gd, {.lr = 0.01});
    for (int s = 0; s < 3; ++s) {
      for (size_t i = 0; i < cpu_p.size(); ++i) {
        Tensor g = randn(cpu_p[i].sizes());
        cpu_p[i].set_grad(g);
        dev_p[i].set_grad(g.to(kCUDA));
      }
      oc.step();
      od.step();
    }
    for (size_t i = 0; i < cpu_p.size(); ++i) CHECK(max_abs_diff(cpu_p[i], dev_p[i]) < 1e-6);
  }

  TEST_CASE("AdamW capturable: t and the rate read from device scalars give the host-computed steps") {
    for (Device dev : {kCPU, kCUDA}) {
      if (dev.is_cuda() && !cuda_is_available()) continue;
      CAPTURE(dev.str());
      manual_seed(21);
      Tensor init = randn({300});
      Tensor a = init.clone().to(dev).detach().requires_grad_(), b = init.clone().to(dev).detach().requires_grad_();
      std::vector<optim::ParamGroup> ga(1), gb(1);
      ga[0].params = {a};
      ga[0].lr_scale = 0.5;
      ga[0].weight_decay = 0.02;
      gb = ga;
      gb[0].params = {b};
      optim::AdamW oa(ga, {.lr = 0.01}), ob(gb, {.lr = 0.01, .capturable = true});
      for (double lr : {0.01, 0.02, 0.005, 0.01}) {
        Tensor g = randn({300}).to(dev);
        a.set_grad(g);
        b.set_grad(g);
        oa.set_lr(lr);
        ob.set_lr(lr);
        oa.step();
        ob.step();
      }
      CHECK(max_abs_diff(a.to(kCPU), b.to(kCPU)) < 1e-6);  // f32 t and rate vs the host's f64
      CHECK(max_abs_diff(a.to(kCPU), init) > 1e-3);
      CHECK(ob.steps() == 4);
      // the step count travels through a checkpoint's state into the device scalar
      std::map<std::string, std::string> meta{{"optimizer.steps", std::to_string(ob.steps())}};
      std::vector<std::pair<std::string, Tensor>> named = ob.state_tensors();
      io::SafeTensors st;
      for (auto& [n, t] : named) st.tensors.push_back({n, t.to(kCPU)});
      st.metadata = meta;
      optim::AdamW oc(gb, {.lr = 0.01, .capturable = true});
      oc.load_state_tensors(st);
      CHECK(oc.steps() == 4);
    }
  }

  TEST_CASE("optimizers follow a module moved after they were made (cpu -> cuda -> cpu), as if it never moved") {
    // Module::to moves the parameters in place; AdamW's moments (and, capturable, its step
    // and rate) and SGD's momentum must follow, or a kernel gets another device's memory
    if (!cuda_is_available()) ADNN_SKIP("no CUDA device");
    for (int kind = 0; kind < 3; ++kind) {  // AdamW, AdamW capturable, SGD with momentum
      CAPTURE(kind);
      manual_seed(23);
      nn::Linear a(5, 3), b(5, 3);
      {
        NoGradGuard ng;
        for (size_t i = 0; i < 2; ++i) b.parameters()[i].copy_(a.parameters()[i]);
      }
      auto make = [&](nn::Module& m) -> std::unique_ptr<optim::Optimizer> {
        if (kind == 2)
          return std::make_unique<optim::SGD>(m.parameters(), optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
        return std::make_unique<optim::AdamW>(m.parameters(), optim::AdamWOptions{.lr = 0.01, .capturable = kind == 1});
      };
      auto oa = make(a), ob = make(b);
      const Tensor w0 = a.parameters()[0].detach().clone();
      for (int s = 0; s < 4; ++s) {
        if (s == 1) b.to(kCUDA);  // after one step on the CPU
        if (s == 3) b.to(kCPU);
        for (size_t i = 0; i < 2; ++i) {
          const Tensor g = randn(a.parameters()[i].sizes());
          a.parameters()[i].set_grad(g);
          b.parameters()[i].set_grad(g.to(b.parameters()[i].device()));
        }
        oa->step();
        ob->step();
      }
      for (size_t i = 0; i < 2; ++i) {
        CHECK(b.parameters()[i].device() == kCPU);
        CHECK(max_abs_diff(a.parameters()[i], b.parameters()[i]) < 1e-6);
      }
      CHECK(max_abs_diff(a.parameters()[0], w0) > 1e-3);  // the steps moved the weights
    }
    // capturable AdamW reads its step and rate on one device: a later parameter moved alone is refused
    nn::Linear c(2, 2), d(2, 2);
    std::vector<Tensor> ps = c.parameters();
    for (const Tensor& p : d.parameters()) ps.push_back(p);
    optim::AdamW o(ps, {.lr = 0.01, .capturable = true});
    d.to(kCUDA);
    for (Tensor& p : ps) p.set_grad(zeros_like(p));
    CHECK_THROWS_WITH_AS(o.step(), doctest::Contains("AdamW(capturable): every parameter must be on one device"),
                         Error);
  }

  TEST_CASE("ModelEma: the warm-up decay, averaged weights and BN statistics, copied counters, mismatches refused") {
    // a BatchNorm2d: parameters (weight, bias), floating buffers (running stats) and an
    // integer buffer (num_batches_tracked)
    auto model = std::make_shared<nn::BatchNorm2d>(2);
    auto avg = std::make_shared<nn::BatchNorm2d>(2);
    NoGradGuard ng;
    model->weight.copy_(tensor({1.0, 2.0}, {2}));
    avg->weight.copy_(tensor({-5.0, -5.0}, {2}));  // overwritten: the average starts as a copy
    optim::ModelEma ema(avg, *model, 0.2);
    check_values(avg->weight, {1.0, 2.0}, 0);
    CHECK(!avg->is_training());
    CHECK(!avg->weight.requires_grad());
    // update 0: d = min(0.2, 1/10) = 0.1; update 1: min(0.2, 2/11) = 2/11; update 2: min(0.2, 3/12) = 0.2
    CHECK(ema.decay_now() == doctest::Approx(0.1));
    model->weight.copy_(tensor({3.0, 4.0}, {2}));
    model->running_mean.copy_(tensor({10.0, 20.0}, {2}));
    model->num_batches_tracked.copy_(from_vector(std::vector<int64_t>{7}, {}));
    ema.update(*model);
    check_values(avg->weight, {0.1 * 1 + 0.9 * 3, 0.1 * 2 + 0.9 * 4}, 1e-6);
    check_values(avg->running_mean, {9.0, 18.0}, 1e-6);
    // the counter is copied when the average is read through module(), not at every update
    CHECK(avg->num_batches_tracked.item<int64_t>() == 0);
    CHECK(&ema.module() == avg.get());
    CHECK(avg->num_batches_tracked.item<int64_t>() == 7);
    avg->num_batches_tracked.fill_(3);  // written by hand after the read: kept until the next update
    CHECK(static_cast<const optim::ModelEma&>(ema).module().state_dict().back().second.item<int64_t>() == 3);
    CHECK(ema.updates() == 1);
    const double d1 = 2.0 / 11.0;
    CHECK(ema.decay_now() == doctest::Approx(d1));
    model->weight.copy_(tensor({0.0, 0.0}, {2}));
    ema.update(*model);
    check_values(avg->weight, {d1 * 2.8, d1 * 3.8}, 1e-6);
    CHECK(ema.decay_now() == doctest::Approx(0.2));  // the cap
    ema.update(*model);
    check_values(avg->weight, {0.2 * d1 * 2.8, 0.2 * d1 * 3.8}, 1e-6);
    ema.set_updates(0);  // resuming restores the count: the warm-up decay again
    CHECK(ema.decay_now() == doctest::Approx(0.1));
    CHECK_THROWS_WITH_AS(ema.set_updates(-1), doctest::Contains("negative"), adnn::Error);
    // another model, an average of another shape or dtype, and decays outside [0, 1)
    auto other = std::make_shared<nn::BatchNorm2d>(2);
    CHECK_THROWS_WITH_AS(ema.update(*other), doctest::Contains("not the model this average was made for"), adnn::Error);
    CHECK_THROWS_WITH_AS(optim::ModelEma(std::make_shared<nn::BatchNorm2d>(3), *model, 0.5),
                         doctest::Contains("'weight' has shape"), adnn::Error);
    nn::Linear lin(2, 2);
    CHECK_THROWS_WITH_AS(optim::ModelEma(std::make_shared<nn::Linear>(2, 2, true, DType::f64), lin, 0.5),
                         doctest::Contains("the average's 'weight' does not match"), adnn::Error);
    // foreach_lerp_: pairs that differ are named; f64 and strided pairs take the elementwise path
    CHECK_THROWS_WITH_AS(optim::foreach_lerp_({zeros({2})}, {zeros({3})}, 0.5), doctest::Contains("pair 0 is [2]"),
                         adnn::Error);
    CHECK_THROWS_WITH_AS(optim::foreach_lerp_({zeros({2}, DType::i64)}, {zeros({2}, DType::i64)}, 0.5),
                         doctest::Contains("a floating dtype is needed"), adnn::Error);
    Tensor x64 = tensor({1.0, 2.0}, {2}, DType::f64), e64 = tensor({3.0, -2.0}, {2}, DType::f64);
    Tensor base = tensor({0.0, 1.0, 2.0, 3.0}, {2, 2}), xt = base.transpose(0, 1), et = full({2, 2}, 10.0);
    optim::foreach_lerp_({x64, xt}, {e64, et}, 0.25);
    check_values(x64, {1.5, 1.0}, 0);
    check_values(base, {2.5, 3.25, 4.0, 4.75}, 1e-6);  // through the transposed view
    // a tensor past 4 chunks of 64 Ki elements: the CPU twin's OpenMP loop
    Tensor big = randn({300001}), big_end = randn({300001}), expect = add(big, mul(sub(big_end, big), 0.3));
    optim::foreach_lerp_({big}, {big_end}, 0.3);
    CHECK(testing::max_abs_diff(big, expect) <= 1e-6);
    CHECK_THROWS_WITH_AS(optim::ModelEma(std::make_shared<nn::BatchNorm2d>(2), *model, 1.0),
                         doctest::Contains("out of range [0, 1)"), adnn::Error);
    CHECK_THROWS_AS(optim::ModelEma(std::make_shared<nn::BatchNorm2d>(2), *model, -0.1), adnn::Error);
  }

  TEST_CASE("ModelEma built from a function gives the draws of the average's initialisation back") {
    manual_seed(11);
    auto model = std::make_shared<nn::Linear>(4, 3);
    int built = 0;
    optim::ModelEma ema(
        [&] {
          ++built;
          return std::static_pointer_cast<nn::Module>(std::make_shared<nn::Linear>(4, 3));  // draws 15 numbers
        },
        *model, 0.5);
    const std::vector<double> after = randn({5}).to_vector();
    manual_seed(11);
    nn::Linear same(4, 3);
    CHECK(randn({5}).to_vector() == after);  // as if no average had been built
    CHECK(built == 1);
    auto& avg = static_cast<nn::Linear&>(ema.module());
    CHECK(testing::max_abs_diff(avg.weight, model->weight) == 0);  // starts as a copy
    CHECK(testing::max_abs_diff(same.weight, model->weight) == 0);
    CHECK_THROWS_WITH_AS(optim::ModelEma(std::function<std::shared_ptr<nn::Module>()>(), *model, 0.5),
                         doctest::Contains("no function given"), adnn::Error);
  }

  TEST_CASE("SGD momentum and Nesterov") {
    Tensor p = tensor({1.0}, {1}).requires_grad_();
    optim::SGD opt({p}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
    p.set_grad(tensor({1.0}, {1}));
    opt.step();  // buf = 1; g = 1 + 0.9 = 1.9 -> p = 0.81
    check_values(p, {0.81}, 1e-6);
    p.set_grad(tensor({1.0}, {1}));
    opt.step();  // buf = 1.9; g = 1 + 1.71 = 2.71 -> p = 0.539
    check_values(p, {0.539}, 1e-6);
  }

  TEST_CASE("warm-up + cosine schedule and early stopping") {
    optim::WarmupCosine s{.base_lr = 1.0, .min_lr = 0.1, .warmup = 10, .total = 110};
    CHECK(s.lr(0) == doctest::Approx(0.1));
    CHECK(s.lr(4) == doctest::Approx(0.5));
    CHECK(s.lr(9) == doctest::Approx(1.0));
    CHECK(s.lr(10) == doctest::Approx(1.0));
    CHECK(s.lr(60) == doctest::Approx(0.55));  // halfway: min + (base - min) / 2
    CHECK(s.lr(110) == doctest::Approx(0.1));
    CHECK(s.lr(35) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25))));
    // the time clock: the cosine at a fraction of the budget, the warm-up steps capped by it
    CHECK(s.lr_at_fraction(500, 0.0) == doctest::Approx(1.0));
    CHECK(s.lr_at_fraction(500, 0.5) == doctest::Approx(0.55));
    CHECK(s.lr_at_fraction(500, 0.25) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.25))));
    CHECK(s.lr_at_fraction(500, 1.0) == doctest::Approx(0.1));
    CHECK(s.lr_at_fraction(500, 1.7) == doctest::Approx(0.1));  // past the budget: clamped
    CHECK(s.lr_at_fraction(500, -0.1) == doctest::Approx(1.0));
    CHECK(s.lr_at_fraction(4, 0.01) == doctest::Approx(0.5));   // warm-up: 5/10 of base
    CHECK(s.lr_at_fraction(4, 0.9) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 0.9))));  // capped
    CHECK_THROWS_AS(s.lr_at_fraction(4, NAN), adnn::Error);
    optim::EarlyStopping es{.patience = 2, .maximize = true};
    CHECK(!es.update(0.5));
    CHECK(es.improved);
    CHECK(!es.update(0.6));
    CHECK(!es.update(0.55));
    CHECK(!es.improved);
    CHECK(es.update(0.6));  // not better than 0.6: second bad epoch -> stop
    CHECK(es.best == 0.6);
  }

  TEST_CASE("early stopping: state_dict / load_state_dict continue a run exactly; NaN metrics are refused") {
    optim::EarlyStopping a{.patience = 3, .maximize = false};
    a.update(1.0);
    a.update(0.8);
    a.update(0.9);  // one bad evaluation since 0.8
    const optim::EarlyStopping::State s = a.state_dict();
    CHECK(s.best == 0.8);
    CHECK(s.bad == 1);
    optim::EarlyStopping b{.patience = 3, .maximize = false};
    b.load_state_dict(s);
    // both see the same metrics from here and stop at the same evaluation
    for (double m : {0.85, 0.82}) {
      CHECK(a.update(m) == b.update(m));
      CHECK(a.bad == b.bad);
    }
    CHECK(b.should_stop());  // 0.9, 0.85, 0.82: three evaluations without beating 0.8
    CHECK_THROWS_WITH_AS(b.update(std::nan("")), doctest::Contains("EarlyStopping::update: the metric is NaN"), Error);
    CHECK_THROWS_WITH_AS(b.load_state_dict({.best = 0.5, .bad = -1}), doctest::Contains("is negative"), Error);
    CHECK_THROWS_WITH_AS(b.load_state_dict({.best = INFINITY, .bad = 0}), doctest::Contains("is not finite"), Error);
    optim::EarlyStopping fresh;
    fresh.load_state_dict(optim::EarlyStopping::State{});  // before the first evaluation
    CHECK(!fresh.update(0.1));  // the first evaluation is the best so far
    CHECK(fresh.improved);
  }

  TEST_CASE("rng state: set_rng_state(get_rng_state()) replays the same draws") {
    manual_seed(11);
    randn({5});
    const RngState s = get_rng_state();
    const std::vector<double> first = cat_draws();
    manual_seed(999);  // move the stream elsewhere
    set_rng_state(s);
    CHECK(get_rng_state() == s);
    CHECK(cat_draws() == first);
    CHECK(get_rng_state() != s);  // drawing advanced it
    CHECK_THROWS_WITH_AS(set_rng_state(RngState{}), doctest::Contains("set_rng_state: the all-zero state"), Error);
  }

  TEST_CASE("layer-wise decay on an EfficientNet-shaped module tree") {
    struct Leaf : nn::Module {
      Leaf(bool bias) {
        register_parameter("weight", ones({2, 2}));
        if (bias) register_parameter("bias", ones({2}));
      }
      Tensor forward(const Tensor& x) override { return x; }
    };
    struct Net : nn::Module {
      Net() {
        register_module("conv_stem", std::make_shared<Leaf>(false));
        register_module("bn1", std::make_shared<Leaf>(true));
        auto blocks = std::make_shared<nn::Sequential>();
        for (int s = 0; s < 2; ++s) {
          auto stage = std::make_shared<nn::Sequential>();
          for (int b = 0; b < 2; ++b) stage->add(std::make_shared<Leaf>(true));
          blocks->add(stage);
        }
        register_module("blocks", blocks);
        register_module("conv_head", std::make_shared<Leaf>(false));
        register_module("classifier", std::make_shared<Leaf>(true));
      }
      Tensor forward(const Tensor& x) override { return x; }
    } net;
    auto groups = optim::layer_decay_groups(net, 0.05, 0.5);
    std::map<std::string, std::pair<double, double>> got;  // name -> (lr_scale, wd)
    for (auto& g : groups)
      for (auto& n : g.names) got[n] = {g.lr_scale, g.weight_decay};
    // layers: conv_stem(7) bn1(6) blocks.0.0(5) blocks.0.1(4) blocks.1.0(3) blocks.1.1(2) conv_head(1) classifier(0)
    CHECK(got["conv_stem.weight"].first == doctest::Approx(std::pow(0.5, 7)));
    CHECK(got["bn1.weight"].first == doctest::Approx(std::pow(0.5, 6)));
    CHECK(got["blocks.0.0.weight"].first == doctest::Approx(std::pow(0.5, 5)));
    CHECK(got["blocks.1.1.bias"].first == doctest::Approx(std::pow(0.5, 2)));
    CHECK(got["classifier.weight"].first == 1.0);
    CHECK(got["classifier.weight"].second == 0.05);
    CHECK(got["classifier.bias"].second == 0.0);  // no decay on biases / 1-D parameters
    auto over = optim::layer_decay_groups(net, 0.05, 0.5, {{"bn1", 7}});
    for (auto& g : over)
      for (auto& n : g.names)
        if (n == "bn1.weight") CHECK(g.lr_scale == doctest::Approx(std::pow(0.5, 7)));
  }

  TEST_CASE("gradient clipping by global norm") {
    Tensor a = zeros({2}).requires_grad_(), b = zeros({1}).requires_grad_();
    a.set_grad(tensor({3, 0}, {2}));
    b.set_grad(tensor({4}, {1}));
    CHECK(optim::clip_grad_norm({a, b}, 1.0) == doctest::Approx(5.0));
    check_values(a.grad(), {0.6, 0}, 1e-5);
    check_values(b.grad(), {0.8}, 1e-5);
  }

  TEST_CASE("safetensors: round trip of every dtype, strict validation of bad files") {
    fs::path d = fs::temp_directory_path() / ("adnn_st_" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::vector<std::pair<std::string, Tensor>> ts;
    for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8, DType::boolean})
      ts.push_back({std::string("t_") + dtype_name(t), arange(0, 6, 1, t).reshape({2, 3})});
    ts.push_back({"scalar", scalar_tensor(2.5)});
    ts.push_back({"empty", zeros({0, 4})});
    const std::string p = (d / "a.safetensors").string();
    io::save_safetensors(p, ts, {{"note", "quote\" and \\ backslash"}});
    auto st = io::load_safetensors(p);
    REQUIRE(st.tensors.size() == ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      CHECK(st.tensors[i].first == ts[i].first);
      CHECK(st.tensors[i].second.dtype() == ts[i].second.dtype());
      CHECK(st.tensors[i].second.sizes() == ts[i].second.sizes());
      CHECK(st.tensors[i].second.to_vector() == ts[i].second.to_vector());
    }
    CHECK(st.metadata.at("note") == "quote\" and \\ backslash");
    auto bytes = io::read_file(p);
    auto bad = [&](std::vector<uint8_t> b, const char* msg) {
      CHECK_THROWS_WITH_AS(io::parse_safetensors(b, "x.safetensors"), doctest::Contains(msg), Error);
    };
    bad({1, 2, 3}, "truncated");
    bad(std::vector<uint8_t>(bytes.begin(), bytes.end() - 5), "outside");  // truncated data
    bad(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20), "truncated (header of");
    auto huge = bytes;
    huge[7] = 0x7f;
    bad(huge, "exceeds");
    auto header = [](const std::string& h, size_t data) {
      std::vector<uint8_t> b(8 + h.size() + data, 0);
      uint64_t n = h.size();
      for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(n >> (8 * i));
      std::memcpy(b.data() + 8, h.data(), h.size());
      return b;
    };
    bad(header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8), "malformed header");
    bad(header("{\"a\":{\"dtype\":\"F99\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8), "unsupported dtype 'F99'");
    bad(header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "needs 12");
    bad(header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlaps");
    bad(header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12), "trailing bytes");
    bad(header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{}}", 8), "duplicate key");
    bad(header("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8),
        "number too large");
    CHECK_THROWS_WITH_AS(io::load_safetensors((d / "none.safetensors").string()), doctest::Contains("cannot open"),
                         Error);
    fs::remove_all(d);
  }

  TEST_CASE("checkpoints: resume after a kill reproduces the run bit for bit; damage is detected") {
    fs::path d = fs::temp_directory_path() / ("adnn_ckpt_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    const std::string probe = ADNN_TRAIN_PROBE, dir = d.string();
    auto run = [&](const std::string& args) {
      const std::string out = dir + "/out.txt";
      int rc = std::system((probe + " " + dir + " 40 " + args + " > " + out + " 2>&1").c_str());
      std::ifstream f(out);
      std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      return std::make_pair(WEXITSTATUS(rc), text);
    };
    auto full = run("");
    REQUIRE(full.first == 0);
    auto killed = run("--die-after 17");
    CHECK(killed.first == 137);
    CHECK(fs::exists(dir + "/ckpt.safetensors"));
    CHECK(fs::exists(dir + "/ckpt.state.safetensors"));
    auto resumed = run("--resume");
    REQUIRE(resumed.first == 0);
    CHECK(resumed.second == full.second);  // same digest of every weight bit
    // a truncated weights file is a clear error
    auto bytes = io::read_file(dir + "/ckpt.safetensors");
    std::ofstream(dir + "/ckpt.safetensors", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size() / 2));
    auto broken = run("--resume");
    CHECK(broken.first != 0);
    CHECK(broken.second.find("ckpt.safetensors") != std::string::npos);
    // weights and state from different saves are refused
    io::write_file_atomic(dir + "/ckpt.safetensors", bytes);
    auto st = io::read_file(dir + "/ckpt.state.safetensors");
    killed = run("--die-after 5");  // a new save of both files
    io::write_file_atomic(dir + "/ckpt.state.safetensors", st);
    auto mixed = run("--resume");
    CHECK(mixed.first != 0);
    CHECK(mixed.second.find("come from different saves") != std::string::npos);
    // a failed write leaves the previous file intact
    CHECK_THROWS_AS(io::write_file_atomic(dir + "/missing_dir/x.safetensors", bytes), Error);
    io::write_file_atomic(dir + "/keep.bin", {1, 2, 3});
    CHECK_THROWS_AS(io::write_file_atomic(dir + "/keep.bin/child", {4}), Error);
    CHECK(io::read_file(dir + "/keep.bin") == std::vector<uint8_t>{1, 2, 3});
    fs::remove_all(d);
  }
}
