// Trains a 2-layer MLP on a synthetic 4-class problem (points in 16-D drawn around 4
// random centres) and prints the falling loss. The first command of the README runs it.
#include <adnn/adnn.hpp>

#include <chrono>
#include <cstdio>

using namespace adnn;

int main(int argc, char** argv) {
  int64_t steps = argc > 1 ? std::atoll(argv[1]) : 300;
  manual_seed(42);
  const int64_t D = 16, K = 4, N = 512, H = 64;
  // synthetic data: class centres + noise
  Tensor centres = mul(randn({K, D}), 0.6);
  Tensor labels = randint(0, K, {N});
  Tensor x = add(index_select(centres, 0, labels), mul(randn({N, D}), 1.2));

  auto model = std::make_shared<nn::Sequential>();
  model->add(std::make_shared<nn::Linear>(D, H)).add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::Linear>(H, K));
  optim::SGD opt(model->parameters(), {.lr = 0.02, .momentum = 0.9});
  std::printf("mlp: %lld parameters, %lld samples, %lld classes\n", (long long)model->num_parameters(), (long long)N,
              (long long)K);
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t step = 0; step <= steps; ++step) {
    Tensor logits = (*model)(x);
    Tensor loss = cross_entropy(logits, labels);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (step % 25 == 0) {
      NoGradGuard ng;
      double acc = mean(eq(argmax(logits, 1), labels).to(DType::f32)).item<double>();
      std::printf("step %4lld  loss %.4f  accuracy %.3f\n", (long long)step, loss.item<double>(), acc);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("done in %.2f s\n", secs);
  return 0;
}
