#pragma once
// Test helpers: value comparison, non-contiguous inputs, finite-difference gradient check,
// and the op registry every op declares itself in.
#include <adnn/adnn.hpp>
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace adnn::testing {

// Test cases that could not run here (no GPU, no data, a sanitizer build), with the reason.
// tests/main.cpp prints them and exits 77 (CTest: "Skipped") when every case skipped.
inline std::vector<std::string>& skipped_cases() {
  static std::vector<std::string> s;
  return s;
}
#define ADNN_SKIP(reason)                                                                        \
  do {                                                                                           \
    std::ostringstream adnn_skip_os_;                                                            \
    adnn_skip_os_ << doctest::getContextOptions()->currentTest->m_name << ": " << reason;               \
    ::adnn::testing::skipped_cases().push_back(adnn_skip_os_.str());                             \
    MESSAGE("skipped: " << reason);                                                              \
    return;                                                                                      \
  } while (0)

// Cases whose work is many forwards or training steps of adnn_fer_nano on the emulated device
// (graph replay of a whole step, host round-trip counts, memory measurements): minutes in the
// ASan build and in scripts/check-barriers.sh's one-thread runs, and no kernel the op registry
// does not test. Skipped there (ASan; ADNN_TEST_SKIP_EMULATED_NANO=1); the release suite runs them.
inline bool skip_emulated_nano() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#else
  const char* e = std::getenv("ADNN_TEST_SKIP_EMULATED_NANO");
  return e != nullptr && std::string(e) == "1";
#endif
}
#define ADNN_SKIP_EMULATED_NANO(what)                                                        \
  do {                                                                                       \
    if (::adnn::testing::skip_emulated_nano())                                               \
      ADNN_SKIP(what << ": minutes under ASan or on one thread; the release suite runs it"); \
  } while (0)

inline void check_values(const Tensor& got, const std::vector<double>& want, double tol = 1e-6) {
  REQUIRE(got.defined());
  std::vector<double> g = got.to_vector();
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << want[i]);
    CHECK(std::fabs(g[i] - want[i]) <= tol * (1.0 + std::fabs(want[i])));
  }
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) != std::isnan(y[i])) return INFINITY;
    if (!std::isnan(x[i])) m = std::max(m, std::fabs(x[i] - y[i]));
  }
  return m;
}

inline double max_abs(const Tensor& a) {
  double m = 0;
  for (double x : a.to_vector()) m = std::max(m, std::fabs(x));
  return m;
}

enum class Domain { any, positive, unit /* (0.1, 0.9) */, distinct /* well-separated values */ };

// Random f64 tensor of `shape`; non-contiguous when asked (a permuted or strided view).
inline Tensor make_input(const Shape& shape, Domain dom, bool noncontig) {
  auto gen = [&](const Shape& s) {
    Tensor t;
    switch (dom) {
      case Domain::any: t = randn(s, DType::f64); break;
      case Domain::positive: t = uniform(s, 0.5, 2.0, DType::f64); break;
      case Domain::unit: t = uniform(s, 0.1, 0.9, DType::f64); break;
      case Domain::distinct: {
        int64_t n = shape_numel(s);
        auto perm = randperm(n);
        std::vector<double> v(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) v[i] = double(perm[i]) * 0.37 - double(n) * 0.15;
        t = from_vector(v, s, DType::f64);
        break;
      }
    }
    return t;
  };
  if (!noncontig || shape.empty()) return gen(shape);
  if (shape.size() == 1) {
    Shape s{shape[0] * 2};
    return gen(s).slice(0, 0, shape[0] * 2, 2);
  }
  // reversed storage order, viewed back: same shape, permuted strides
  Shape rev(shape.rbegin(), shape.rend());
  std::vector<int64_t> perm(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = int64_t(perm.size() - 1 - i);
  Tensor t = gen(rev).permute(perm);
  if (t.is_contiguous()) {  // e.g. all but one dim of size 1: fall back to a strided slice
    Shape s = shape;
    s.back() *= 2;
    t = gen(s).slice(-1, 0, s.back(), 2);
  }
  return t;
}

struct InputSpec {
  Shape shape;
  Domain domain = Domain::any;
  bool differentiable = true;
  std::function<Tensor()> make;  // custom (e.g. integer index tensors); overrides shape/domain
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
  double grad_tol = 1e-5;  // finite differences in f64
  double f32_tol = 1e-4;   // f32 forward vs f64 forward
  bool check_f32 = true;
  bool noncontig = true;   // also run with non-contiguous inputs
};

// Input makers shared by the registry files: a random differentiable input, and a fixed
// bool tensor (masks, conditions).
inline InputSpec in(Shape s, Domain d = Domain::any) { return InputSpec{std::move(s), d, true, nullptr}; }
inline InputSpec bool_in(std::vector<double> v, Shape s) {
  return InputSpec{s, Domain::any, false, [v, s] { return from_vector(v, s, DType::boolean); }};
}

// Registry: each op's test file adds its cases here.
inline std::vector<OpCase>& registry() {
  static std::vector<OpCase> r;
  return r;
}
struct Register {
  explicit Register(std::vector<OpCase> cases) {
    for (auto& c : cases) registry().push_back(std::move(c));
  }
};

// Perturbable handle on one element of a (possibly strided) f64 tensor.
inline double* element_ptr(const Tensor& t, int64_t linear) {
  int64_t off = 0, rem = linear;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (rem % t.size(d)) * t.stride(d);
    rem /= t.size(d);
  }
  return static_cast<double*>(t.impl().storage->data) + t.storage_offset() + off;
}

// Finite-difference check of d(sum(fn(x) * w))/dx for every differentiable input.
inline bool any_differentiable(const OpCase& c) {
  for (auto& s : c.inputs)
    if (s.differentiable) return true;
  return false;
}

inline void gradcheck(const OpCase& c, const std::vector<Tensor>& inputs) {
  if (!any_differentiable(c)) {  // e.g. an optimizer step: its forward only
    CHECK(c.fn(inputs).defined());
    return;
  }
  std::vector<Tensor> xs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    Tensor t = inputs[i];
    if (c.inputs[i].differentiable) t = t.detach().requires_grad_(true);
    xs.push_back(t);
  }
  Tensor out = c.fn(xs);
  REQUIRE(out.defined());
  Tensor w = randn(out.sizes(), DType::f64);
  Tensor loss = sum(mul(out, w));
  loss.backward();
  const double eps = 1e-6;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!c.inputs[i].differentiable) continue;
    Tensor g = xs[i].grad();
    INFO("op " << c.name << ", input " << i << " " << xs[i].desc());
    REQUIRE(g.defined());
    REQUIRE(g.sizes() == xs[i].sizes());
    std::vector<double> ga = g.to_vector();
    NoGradGuard ng;
    for (int64_t k = 0; k < xs[i].numel(); ++k) {
      double* p = element_ptr(xs[i], k);
      double orig = *p;
      *p = orig + eps;
      double lp = sum(mul(c.fn(xs), w)).item<double>();
      *p = orig - eps;
      double lm = sum(mul(c.fn(xs), w)).item<double>();
      *p = orig;
      double num = (lp - lm) / (2 * eps);
      INFO("element " << k << ": analytic " << ga[k] << ", numeric " << num);
      CHECK(std::fabs(ga[k] - num) <= c.grad_tol * (1.0 + std::fabs(num)));
    }
  }
}

inline std::vector<Tensor> make_inputs(const OpCase& c, bool noncontig) {
  std::vector<Tensor> xs;
  for (auto& s : c.inputs) xs.push_back(s.make ? s.make() : make_input(s.shape, s.domain, noncontig));
  return xs;
}

}  // namespace adnn::testing
