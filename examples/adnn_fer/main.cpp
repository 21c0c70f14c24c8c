// adnn-fer: the command line of the ADNN-FER example (docs/adnn_fer.md).
//   adnn-fer summary --model NAME [--classes N] [--in-chans C] [--image-size S]
//   adnn-fer bench --model NAME --image-size S --batch B [--train] --device cpu|cuda [--iters N]
//   adnn-fer train --config NAME [--data DIR] [--epochs N --batch B --lr X --layer-decay X --seed S
//                  --device auto|cpu|cuda --out RUN_DIR --resume --time-budget MIN ...]
//   adnn-fer eval --checkpoint CKPT [--data DIR] [--split val]
//   adnn-fer predict --checkpoint CKPT IMAGE... [--crop] [--out DIR]
//   adnn-fer detect IMAGE... [--out DIR] [--threshold X] [--max-side N]
//   adnn-fer preprocess --data RAW_DIR --out DIR [--checkpoint CKPT | --size S --channels C]
#include <adnn/adnn.hpp>

#include "fer.hpp"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

using namespace adnn;

namespace {

using adnn_fer::Args;

int usage() {
  std::printf(
      "usage:\n"
      "  adnn-fer summary --model NAME [--classes N] [--in-chans C] [--image-size S]\n"
      "  adnn-fer bench --model NAME --image-size S --batch B [--train] --device cpu|cuda [--iters N]\n"
      "  adnn-fer train --config adnn_fer_nano|adnn_fer_paper [--data DIR] [--epochs N] [--batch B] [--lr X]\n"
      "                 [--layer-decay X] [--weight-decay X] [--seed S] [--device auto|cpu|cuda] [--out RUN_DIR]\n"
      "                 [--resume] [--time-budget MINUTES] [--backbone resnet50|efficientnet_bN] [--cbam on|off]\n"
      "                 [--transformer on|off] [--loss ce|compound] [--mixup on|off] [--train-limit N] [--val-limit N]\n"
      "  adnn-fer eval --checkpoint CKPT [--data DIR] [--split val] [--out DIR] [--limit N]\n"
      "  adnn-fer predict --checkpoint CKPT IMAGE... [--top K] [--crop] [--out DIR] [--detector PATH]\n"
      "  adnn-fer detect IMAGE... [--out DIR] [--threshold X] [--max-side N] [--detector PATH] [--repeat N]\n"
      "  adnn-fer preprocess --data RAW_DIR --out DIR [--checkpoint CKPT | --size S --channels 1|3]\n"
      "models:");
  for (auto& n : nn::model_names()) std::printf(" %s", n.c_str());
  for (auto& n : nn::fer_config_names()) std::printf(" %s", n.c_str());
  std::printf("\n");
  return 2;
}

bool is_fer(const std::string& name) { return name.rfind("adnn_fer", 0) == 0; }

// Defaults that depend on the model: ADNN-FER configurations carry their own.
struct ModelArgs {
  std::string name;
  int64_t classes, in_chans, size;
};
ModelArgs model_args(const Args& a) {
  ModelArgs m;
  m.name = a.get("model");
  ADNN_CHECK(!m.name.empty(), a.cmd, ": --model is required");
  if (is_fer(m.name)) {
    nn::FerConfig c = nn::fer_config(m.name);
    m.classes = a.num("classes", c.num_classes);
    m.in_chans = c.in_chans;
    m.size = a.num("image-size", c.image_size);
  } else {
    m.classes = a.num("classes", 1000);
    m.in_chans = a.num("in-chans", 3);
    m.size = a.num("image-size", 224);
  }
  return m;
}

// A torchvision/timm-style backbone by name, or an ADNN-FER configuration.
std::shared_ptr<nn::Module> make_model(const ModelArgs& m) {
  if (is_fer(m.name)) {
    nn::FerConfig c = nn::fer_config(m.name);
    c.num_classes = m.classes;
    c.image_size = m.size;
    return std::make_shared<nn::AdnnFer>(c);
  }
  return nn::create_model(m.name, m.classes, m.in_chans);
}

int summary(const Args& a) {
  const ModelArgs ma = model_args(a);
  auto model = make_model(ma);
  const int64_t size = ma.size;
  std::printf("%-48s %-22s %12s\n", "parameter", "shape", "count");
  for (auto& [n, p] : model->named_parameters())
    std::printf("%-48s %-22s %12lld\n", n.c_str(), shape_str(p.sizes()).c_str(), (long long)p.numel());
  model->eval();
  NoGradGuard ng;
  Tensor x = zeros({1, size, size, ma.in_chans});
  std::printf("\nfeature maps for a %lldx%lld input (N, H, W, C):\n", (long long)size, (long long)size);
  if (auto* e = dynamic_cast<nn::EfficientNet*>(model.get())) {
    auto taps = e->forward_features(x);
    for (size_t i = 0; i < taps.size(); ++i) {
      std::string label = i == 0 ? "stem" : (i + 1 == taps.size() ? "head" : "stage " + std::to_string(i));
      std::printf("  %-8s %s\n", label.c_str(), shape_str(taps[i].sizes()).c_str());
    }
  } else if (auto* f = dynamic_cast<nn::AdnnFer*>(model.get())) {
    const nn::FerConfig& c = f->config();
    if (f->effnet) {
      auto taps = f->effnet->forward_features(x);
      for (size_t i = 0; i < taps.size(); ++i) {
        std::string label = i == 0 ? "stem" : (i + 1 == taps.size() ? "head" : "stage " + std::to_string(i));
        std::string note = (i == 5 || i + 1 == taps.size()) && c.cbam ? "  + CBAM" : "";
        std::printf("  %-8s %s%s\n", label.c_str(), shape_str(taps[i].sizes()).c_str(), note.c_str());
      }
    }
    std::printf("configuration:\n");
    for (auto& [k, v] : c.to_map()) std::printf("  %-24s %s\n", k.c_str(), v.c_str());
    std::printf("  token grid               %lldx%lld (%lld tokens of %lld)\n", (long long)f->token_grid().first,
                (long long)f->token_grid().second, (long long)(f->token_grid().first * f->token_grid().second),
                (long long)f->feature_dim());
    std::printf("  logits                   %s\n", shape_str(f->forward(x).sizes()).c_str());
  } else if (auto* r = dynamic_cast<nn::ResNet*>(model.get())) {
    auto taps = r->forward_features(x);
    for (size_t i = 0; i < taps.size(); ++i) std::printf("  layer%zu   %s\n", i + 1, shape_str(taps[i].sizes()).c_str());
  }
  std::printf("params: %lld\n", (long long)model->num_parameters());
  return 0;
}

int bench(const Args& a) {
  const ModelArgs ma = model_args(a);
  const std::string& name = ma.name;
  const int64_t size = ma.size, batch = a.num("batch", 32), iters = a.num("iters", 10);
  const bool train = a.has("train");
  const Device dev(a.get("device", "cpu"));
  auto model = make_model(ma);
  model->to(dev);
  model->train(train);
  optim::AdamW opt(optim::layer_decay_groups(*model, 0.05, 0.8), {.lr = 1e-3});
  manual_seed(0);
  Tensor x = randn({batch, size, size, ma.in_chans}).to(dev);
  Tensor y = randint(0, ma.classes, {batch}).to(dev);
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
    Args a = adnn_fer::parse_args(argc, argv);
    if (a.cmd == "summary") return summary(a);
    if (a.cmd == "bench") return bench(a);
    if (a.cmd == "train") return adnn_fer::cmd_train(a);
    if (a.cmd == "eval") return adnn_fer::cmd_eval(a);
    if (a.cmd == "predict") return adnn_fer::cmd_predict(a);
    if (a.cmd == "detect") return adnn_fer::cmd_detect(a);
    if (a.cmd == "preprocess") return adnn_fer::cmd_preprocess(a);
    return usage();
  } catch (const Error& e) {
    std::fprintf(stderr, "adnn-fer: %s\n", e.what());
    return 1;
  }
}
