// adnn-fer: the command line of the ADNN-FER example.
//   adnn-fer summary --model NAME [--classes N] [--in-chans C] [--image-size S]
//   adnn-fer bench --model NAME --image-size S --batch B [--train] --device cpu|cuda [--iters N]
// (train / eval / predict arrive with the ADNN-FER issue.)
#include <adnn/adnn.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

using namespace adnn;

namespace {

struct Args {
  std::string cmd;
  std::map<std::string, std::string> kv;
  bool has(const std::string& k) const { return kv.count(k) > 0; }
  std::string get(const std::string& k, const std::string& d = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? d : it->second;
  }
  int64_t num(const std::string& k, int64_t d) const { return has(k) ? std::stoll(get(k)) : d; }
};

Args parse(int argc, char** argv) {
  Args a;
  if (argc > 1) a.cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    ADNN_CHECK(s.rfind("--", 0) == 0, "adnn-fer: unexpected argument '", s, "'");
    s = s.substr(2);
    if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0)
      a.kv[s] = argv[++i];
    else
      a.kv[s] = "1";
  }
  return a;
}

int usage() {
  std::printf(
      "usage:\n"
      "  adnn-fer summary --model NAME [--classes N] [--in-chans C] [--image-size S]\n"
      "  adnn-fer bench --model NAME --image-size S --batch B [--train] --device cpu|cuda [--iters N]\n"
      "models:");
  for (auto& n : nn::model_names()) std::printf(" %s", n.c_str());
  std::printf("\n");
  return 2;
}

int summary(const Args& a) {
  const std::string name = a.get("model");
  ADNN_CHECK(!name.empty(), "summary: --model is required");
  auto model = nn::create_model(name, a.num("classes", 1000), a.num("in-chans", 3));
  const int64_t size = a.num("image-size", 224);
  std::printf("%-48s %-22s %12s\n", "parameter", "shape", "count");
  for (auto& [n, p] : model->named_parameters())
    std::printf("%-48s %-22s %12lld\n", n.c_str(), shape_str(p.sizes()).c_str(), (long long)p.numel());
  model->eval();
  NoGradGuard ng;
  Tensor x = zeros({1, size, size, a.num("in-chans", 3)});
  std::printf("\nfeature maps for a %lldx%lld input (N, H, W, C):\n", (long long)size, (long long)size);
  if (auto* e = dynamic_cast<nn::EfficientNet*>(model.get())) {
    auto taps = e->forward_features(x);
    for (size_t i = 0; i < taps.size(); ++i) {
      std::string label = i == 0 ? "stem" : (i + 1 == taps.size() ? "head" : "stage " + std::to_string(i));
      std::printf("  %-8s %s\n", label.c_str(), shape_str(taps[i].sizes()).c_str());
    }
  } else if (auto* r = dynamic_cast<nn::ResNet*>(model.get())) {
    auto taps = r->forward_features(x);
    for (size_t i = 0; i < taps.size(); ++i) std::printf("  layer%zu   %s\n", i + 1, shape_str(taps[i].sizes()).c_str());
  }
  std::printf("params: %lld\n", (long long)model->num_parameters());
  return 0;
}

int bench(const Args& a) {
  const std::string name = a.get("model");
  ADNN_CHECK(!name.empty(), "bench: --model is required");
  const int64_t size = a.num("image-size", 224), batch = a.num("batch", 32), iters = a.num("iters", 10);
  const bool train = a.has("train");
  const Device dev(a.get("device", "cpu"));
  auto model = nn::create_model(name, a.num("classes", 1000), a.num("in-chans", 3));
  model->to(dev);
  model->train(train);
  optim::AdamW opt(optim::layer_decay_groups(*model, 0.05, 0.8), {.lr = 1e-3});
  manual_seed(0);
  Tensor x = randn({batch, size, size, a.num("in-chans", 3)}).to(dev);
  Tensor y = randint(0, a.num("classes", 1000), {batch}).to(dev);
  auto step = [&] {
    if (train) {
      Tensor loss = cross_entropy(model->forward(x), y);
      opt.zero_grad();
      loss.backward();
      opt.step();
    } else {
      NoGradGuard ng;
      model->forward(x);
    }
  };
  step();  // warm-up
  step();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) step();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("model %s, %s, batch %lld, %lldx%lld, device %s, %lld iterations in %.2f s\n", name.c_str(),
              train ? "train step (AdamW)" : "forward", (long long)batch, (long long)size, (long long)size,
              dev.str().c_str(), (long long)iters, s);
  std::printf("img/s: %.1f\n", double(batch * iters) / s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    if (a.cmd == "summary") return summary(a);
    if (a.cmd == "bench") return bench(a);
    return usage();
  } catch (const Error& e) {
    std::fprintf(stderr, "adnn-fer: %s\n", e.what());
    return 1;
  }
}
