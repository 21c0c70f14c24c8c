// adnn-fer: the command line of the ADNN-FER example (docs/adnn_fer.md).
//   adnn-fer summary|bench|train|eval|predict|detect|preprocess|explain|profile [FLAGS] (args.cpp declares every flag; -h/--help)
// Exit status: 0 done, 2 usage error, 3 train stopped by --stop-after, 1 any other error —
// every exception becomes a one-line message, never an abort.
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>

#include "fer.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <new>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace adnn;

namespace adnn_fer {

bool is_fer(const std::string& name) { return name.rfind("adnn_fer", 0) == 0; }

ModelArgs model_args(const Args& a) {
  ModelArgs m;
  m.name = a.get("model");
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

}  // namespace adnn_fer

namespace {

using adnn_fer::Args;
using adnn_fer::make_model;
using adnn_fer::model_args;
using adnn_fer::ModelArgs;

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
  // device work is asynchronous: wait for it before reading the clock, after every step, so
  // that each step's time (the latency at batch 1) is measured as well as the total
  auto sync = [&] {
    if (dev.is_cuda()) cuda::device_synchronize();
  };
  step();  // warm-up
  step();
  sync();
  std::vector<double> ms;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) {
    auto t = std::chrono::steady_clock::now();
    step();
    sync();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
  };
  const double med = median(ms);
  // --graph: the same step captured once into a CUDA graph and replayed (static x and y; a
  // training step replays the captured AdamW step: right for timing, not for training)
  double graph_med = -1;
  if (a.has("graph") && dev.is_cuda()) {
    cuda::Graph graph;
    graph.capture_begin();
    step();
    graph.capture_end();
    graph.replay();  // first replay: uploads the graph on a GPU
    sync();
    std::vector<double> gms;
    for (int64_t i = 0; i < iters; ++i) {
      auto t = std::chrono::steady_clock::now();
      graph.replay();
      sync();
      gms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    }
    graph_med = median(gms);
    std::printf("graph: %zu nodes\n", graph.num_nodes());
  }
  std::printf("model %s, %s, batch %lld, %lldx%lld, device %s, %lld iterations in %.2f s\n", name.c_str(),
              train ? "train step (AdamW)" : "forward", (long long)batch, (long long)size, (long long)size,
              dev.str().c_str(), (long long)iters, s);
  std::printf("img/s: %.1f\n", double(batch * iters) / s);
  std::printf("ms/step (median): %.3f\n", med);
  if (a.has("graph")) {
    if (graph_med >= 0)
      std::printf("ms/step eager (median): %.3f, graph replay (median): %.3f, speed-up %.2fx\n", med, graph_med,
                  graph_med > 0 ? med / graph_med : 0.0);
    else
      std::printf("graph: CUDA graphs need --device cuda (eager only)\n");
  }
  if (dev.is_cuda()) std::printf("peak device memory MiB: %.1f\n", double(cuda::memory_stats().peak_in_use) / (1 << 20));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a;
    if (const int rc = adnn_fer::parse_command_line(argc, argv, a); rc >= 0) return rc;
    if (a.cmd == "summary") return summary(a);
    if (a.cmd == "bench") return bench(a);
    if (a.cmd == "train") return adnn_fer::cmd_train(a);
    if (a.cmd == "eval") return adnn_fer::cmd_eval(a);
    if (a.cmd == "predict") return adnn_fer::cmd_predict(a);
    if (a.cmd == "detect") return adnn_fer::cmd_detect(a);
    if (a.cmd == "preprocess") return adnn_fer::cmd_preprocess(a);
    if (a.cmd == "explain") return adnn_fer::cmd_explain(a);
    if (a.cmd == "profile") return adnn_fer::cmd_profile(a);
    std::fprintf(stderr, "adnn-fer: unknown command '%s'\n", a.cmd.c_str());
    return 2;
  } catch (const adnn_fer::UsageError& e) {
    std::fprintf(stderr, "adnn-fer: %s\n", e.what());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "adnn-fer: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "adnn-fer: out of memory (std::bad_alloc)\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    std::fprintf(stderr, "adnn-fer: %s\n", e.what());  // names the operation and the path(s)
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "adnn-fer: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "adnn-fer: unknown exception\n");
    return 1;
  }
}
