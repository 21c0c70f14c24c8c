#include <adnn/adnn.hpp>

#include <cstdio>

int main() {
  using namespace adnn;
  Tensor w = tensor({1, 2, 3}, {3}).requires_grad_();
  Tensor loss = sum(mul(w, w));
  loss.backward();
  auto g = w.grad().to_vector();
  if (g != std::vector<double>{2, 4, 6}) {
    std::fprintf(stderr, "consumer: wrong gradient\n");
    return 1;
  }
  std::printf("consumer: adnn %s linked, gradient ok\n", ADNN_VERSION_STRING);
  return 0;
}
