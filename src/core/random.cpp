// xoshiro256** generator seeded through splitmix64; one global stream.
#include <adnn/core/random.hpp>
#include <adnn/core/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "dispatch/dispatch.hpp"

namespace adnn {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Generator::Generator(uint64_t seed) {
  for (auto& s : state) s = splitmix64(seed);
}
uint64_t Generator::next_u64() {
  uint64_t* s = state;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}
double Generator::uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
double Generator::normal() {
  double u1 = uniform(), u2 = uniform();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

Generator& default_generator() {
  static Generator g(0x5eed);
  return g;
}
void manual_seed(uint64_t seed) { default_generator() = Generator(seed); }

RngState get_rng_state() {
  RngState s;
  std::copy(std::begin(default_generator().state), std::end(default_generator().state), s.begin());
  return s;
}
void set_rng_state(const RngState& s) {
  ADNN_CHECK(s != RngState{}, "set_rng_state: the all-zero state is not a valid xoshiro256** state "
             "(an uninitialised TrainState::rng?)");
  std::copy(s.begin(), s.end(), default_generator().state);
}

namespace {
template <class F>
Tensor generate(Shape shape, TensorOptions opts, F&& f) {
  std::vector<double> v(size_t(shape_numel(shape)));
  auto& g = default_generator();
  for (auto& x : v) x = f(g);
  return from_vector(v, std::move(shape), opts);
}
}  // namespace

Tensor rand(Shape shape, TensorOptions opts) {
  return generate(std::move(shape), opts, [](Generator& g) { return g.uniform(); });
}
Tensor randn(Shape shape, TensorOptions opts) {
  return generate(std::move(shape), opts, [](Generator& g) { return g.normal(); });
}
Tensor uniform(Shape shape, double lo, double hi, TensorOptions opts) {
  return generate(std::move(shape), opts, [=](Generator& g) { return lo + (hi - lo) * g.uniform(); });
}
Tensor randint(int64_t lo, int64_t hi, Shape shape, TensorOptions opts) {
  ADNN_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  uint64_t span = uint64_t(hi - lo);
  std::vector<int64_t> v(size_t(shape_numel(shape)));
  auto& g = default_generator();
  for (auto& x : v) x = lo + int64_t(g.next_u64() % span);
  return from_vector(v, std::move(shape), opts);
}
Tensor bernoulli(Shape shape, double p, TensorOptions opts, double value) {
  ADNN_CHECK(p >= 0 && p <= 1, "bernoulli: probability ", p, " outside [0, 1]");
  if (is_floating(opts.dtype_)) {
    Tensor out = empty(std::move(shape), TensorOptions(opts.dtype_, opts.device_));
    backend::bernoulli_fill(out, p, value, default_generator().next_u64());
    if (opts.requires_grad_) out.requires_grad_(true);
    return out;
  }
  return generate(std::move(shape), opts, [=](Generator& g) { return g.uniform() < p ? value : 0.0; });
}
std::vector<int64_t> randperm(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  auto& g = default_generator();
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[g.next_u64() % uint64_t(i + 1)]);
  return v;
}

}  // namespace adnn
