// Autograd engine: accumulation, graph release, detach, no-grad, hooks, retain_grad.
#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;

TEST_SUITE("autograd") {
  TEST_CASE("backward of a scalar and gradient accumulation") {
    Tensor x = tensor({1, 2, 3}, {3}).requires_grad_();
    Tensor y = sum(mul(x, x));
    CHECK(y.requires_grad());
    CHECK(!y.is_leaf());
    CHECK(x.is_leaf());
    y.backward();
    check_values(x.grad(), {2, 4, 6});
    sum(mul(x, 3.0)).backward();  // accumulates
    check_values(x.grad(), {5, 7, 9});
    x.set_grad({});
    CHECK(!x.grad().defined());
  }

  TEST_CASE("backward with an explicit gradient, and a diamond graph") {
    Tensor x = tensor({1, 2}, {2}).requires_grad_();
    Tensor a = mul(x, 2.0), b = exp(x);
    Tensor y = add(mul(a, b), a);  // x used along several paths
    y.backward(tensor({1, 0.5}, {2}));
    // dy/dx = 2 e^x + 2x e^x + 2
    std::vector<double> want;
    for (double v : {1.0, 2.0}) want.push_back(2 * std::exp(v) + 2 * v * std::exp(v) + 2);
    want[1] *= 0.5;
    check_values(x.grad(), want, 1e-6);
  }

  TEST_CASE("non-scalar backward needs a gradient") {
    Tensor x = ones({2}).requires_grad_();
    Tensor y = mul(x, 2.0);
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("a gradient must be given for non-scalar output"), Error);
  }

  TEST_CASE("graph is released after backward; retain_graph keeps it") {
    Tensor x = ones({3}).requires_grad_();
    Tensor y = sum(exp(x));
    y.backward({}, true);
    y.backward();  // second pass allowed once retained
    check_values(x.grad(), {2 * std::exp(1.0), 2 * std::exp(1.0), 2 * std::exp(1.0)});
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("backward through the graph a second time"), Error);
  }

  TEST_CASE("release frees saved tensors") {
    Tensor x = ones({1000}).requires_grad_();
    std::weak_ptr<TensorImpl> saved;
    Tensor y;
    {
      Tensor h = mul(x, 2.0);
      saved = h.impl_ptr();
      y = sum(mul(h, h));  // mul saves h
    }
    CHECK(!saved.expired());
    y.backward();
    CHECK(saved.expired());
  }

  TEST_CASE("detach and no-grad stop recording") {
    Tensor x = ones({2}).requires_grad_();
    Tensor d = x.detach();
    CHECK(!d.requires_grad());
    CHECK(d.data_ptr() == x.data_ptr());
    {
      NoGradGuard ng;
      Tensor y = mul(x, 2.0);
      CHECK(!y.requires_grad());
      CHECK(!y.grad_fn());
    }
    CHECK(mul(x, 2.0).requires_grad());
    CHECK_THROWS_WITH_AS(sum(d).backward(), doctest::Contains("does not require grad"), Error);
  }

  TEST_CASE("in-place update of a tensor that requires grad is refused outside no-grad") {
    Tensor x = ones({2}).requires_grad_();
    CHECK_THROWS_WITH_AS(x.mul_(2.0), doctest::Contains("mul_: in-place update of a tensor that requires grad"), Error);
    {
      NoGradGuard ng;
      x.mul_(2.0);
    }
    check_values(x, {2, 2});
  }

  TEST_CASE("tensor hooks see and may replace gradients") {
    Tensor x = tensor({1, 2}, {2}).requires_grad_();
    Tensor h = mul(x, 3.0);
    Tensor seen;
    h.register_hook([&](const Tensor& g) {
      seen = g.clone();
      return mul(g, 2.0);  // doubles the gradient flowing on
    });
    int leaf_calls = 0;
    int id = x.register_hook([&](const Tensor& g) {
      ++leaf_calls;
      return Tensor();
    });
    sum(h).backward();
    check_values(seen, {1, 1});
    check_values(x.grad(), {6, 6});
    CHECK(leaf_calls == 1);
    x.remove_hook(id);
    sum(mul(x, 1.0)).backward();
    CHECK(leaf_calls == 1);
  }

  // AccumulateGrad adopts the incoming gradient as .grad when nothing else can see it, and
  // copies it otherwise (src/autograd/engine.cpp, can_adopt): an in-place change of one .grad
  // must never show in another tensor.
  TEST_CASE("the first gradient is adopted without a copy only when nothing else can see it") {
    {  // a fresh gradient: .grad is that tensor (same memory)
      Tensor w = tensor({1, 2, 3}, {3}).requires_grad_();
      const void* seen = nullptr;
      w.register_hook([&](const Tensor& g) {
        seen = g.data_ptr();  // no reference kept
        return Tensor();
      });
      sum(mul(w, 3.0)).backward();
      check_values(w.grad(), {3, 3, 3});
      CHECK(w.grad().data_ptr() == seen);
      sum(mul(w, 2.0)).backward();  // later passes add (out of place)
      check_values(w.grad(), {5, 5, 5});
    }
    {  // a hook keeps the gradient: .grad is a copy, and changing it leaves the kept one alone
      Tensor w = tensor({1, 2}, {2}).requires_grad_();
      Tensor kept;
      w.register_hook([&](const Tensor& g) {
        kept = g;
        return Tensor();
      });
      sum(mul(w, 4.0)).backward();
      CHECK(w.grad().data_ptr() != kept.data_ptr());
      {
        NoGradGuard ng;
        w.grad().mul_(0.5);
      }
      check_values(w.grad(), {2, 2});
      check_values(kept, {4, 4});
    }
    {  // one gradient reaching two leaves (add's backward passes it to both): no aliasing
      Tensor a = tensor({1, 2}, {2}).requires_grad_(), b = tensor({3, 4}, {2}).requires_grad_();
      add(a, b).backward(tensor({1, 1}, {2}));
      CHECK(a.grad().data_ptr() != b.grad().data_ptr());
      {
        NoGradGuard ng;
        a.grad().mul_(3.0);
      }
      check_values(a.grad(), {3, 3});
      check_values(b.grad(), {1, 1});
    }
    {  // a view of a larger buffer (a hook's replacement): copied, the buffer is not kept
      Tensor w = tensor({1, 2}, {2}).requires_grad_();
      const void* view_data = nullptr;
      w.register_hook([&](const Tensor& g) {
        Tensor big = cat({mul(g, 10.0), g}, 0);  // (4): the view's storage holds twice its elements
        Tensor v = big.narrow(0, 0, 2);
        view_data = v.data_ptr();
        return v;
      });
      sum(mul(w, 1.0)).backward();
      check_values(w.grad(), {10, 10});
      CHECK(w.grad().data_ptr() != view_data);
    }
  }

  TEST_CASE("retain_grad keeps a non-leaf gradient (Grad-CAM)") {
    Tensor x = tensor({1, 2, 3}, {3}).requires_grad_();
    Tensor act = mul(x, x);
    act.retain_grad();
    sum(mul(act, 2.0)).backward();
    check_values(act.grad(), {2, 2, 2});
    check_values(x.grad(), {4, 8, 12});
  }

  TEST_CASE("module forward and backward hooks") {
    manual_seed(3);
    nn::Linear lin(3, 2);
    Tensor captured_out, captured_grad;
    lin.register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& y) {
      captured_out = y.detach();
      return Tensor();
    });
    lin.register_backward_hook([&](nn::Module&, const Tensor& g) { captured_grad = g.clone(); });
    Tensor x = ones({4, 3});
    Tensor y = lin(x);
    sum(mul(y, 5.0)).backward();
    REQUIRE(captured_out.defined());
    CHECK(max_abs_diff(captured_out, y) == 0);
    check_values(captured_grad, std::vector<double>(8, 5.0));
    CHECK(lin.weight.grad().defined());
    check_values(lin.bias.grad(), {20, 20});
    auto names = lin.named_parameters();
    REQUIRE(names.size() == 2);
    CHECK(names[0].first == "weight");
    CHECK(lin.num_parameters() == 8);
  }

  TEST_CASE("sequential names are dotted and train/eval recurse") {
    nn::Sequential s;
    s.add(std::make_shared<nn::Linear>(2, 3)).add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::Linear>(3, 1));
    auto np = s.named_parameters();
    REQUIRE(np.size() == 4);
    CHECK(np[0].first == "0.weight");
    CHECK(np[3].first == "2.bias");
    s.eval();
    CHECK(!s[0].is_training());
  }

  TEST_CASE("gradients through views reach the base") {
    Tensor x = arange(0, 6, 1, DType::f64).reshape({2, 3}).detach().requires_grad_();
    Tensor y = sum(mul(x.t().slice(0, 1, 3).reshape({4}), tensor({1, 2, 3, 4}, {4}, DType::f64)));
    y.backward();
    // x.t()[1:3] = [[x01, x11], [x02, x12]] -> weights 1,2,3,4
    check_values(x.grad(), {0, 1, 3, 0, 2, 4});
  }

  TEST_CASE("SGD with momentum reduces a quadratic") {
    Tensor w = tensor({5, -3}, {2}).requires_grad_();
    optim::SGD opt({w}, {.lr = 0.1, .momentum = 0.5});
    double first = 0, last = 0;
    for (int i = 0; i < 50; ++i) {
      Tensor loss = sum(mul(w, w));
      if (i == 0) first = loss.item<double>();
      last = loss.item<double>();
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    CHECK(last < first * 1e-4);
  }

  TEST_CASE("tensor-scalar ops: gradients are ops, so a second derivative flows (s / x, x · s, s − x, x + s)") {
    for (Device dev : {kCPU, kCUDA}) {
      INFO(dev.str());
      Tensor x = tensor({0.5, 2.0}, {2}, TensorOptions(DType::f64)).to(dev).requires_grad_();
      Tensor y = sum(add(mul(1.5 / x, 2.0), 3.0 - x) + 0.25);  // 3 / x − x + const
      autograd::backward({y}, {}, false, true);                // create_graph
      Tensor g = x.grad();                                     // −3 / x² − 1
      check_values(g.to(kCPU), {-13.0, -1.75});
      x.set_grad({});
      sum(g).backward();  // d/dx (−3 x⁻² − 1) = 6 / x³
      check_values(x.grad().to(kCPU), {48.0, 0.75});
    }
  }
}
