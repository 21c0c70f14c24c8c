// adnn-fer: the command line of the ADNN-FER example (docs/adnn_fer.md).
//   adnn-fer summary|bench|train|eval|predict|detect|preprocess|explain|experiment|compare|export|profile [FLAGS] (args.cpp declares every flag; -h/--help)
// Exit status: 0 done, 2 usage error, 3 train stopped by --stop-after, 1 any other error —
// every exception becomes a one-line message, never an abort.
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>

#include "fer.hpp"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

using namespace adnn;

namespace adnn_fer {

bool is_fer(const std::string& name) { return name.rfind("adnn_fer", 0) == 0; }

ModelArgs model_args(const Args& a) {
  ModelArgs m;
  m.name = a.get("model");
  m.backbone = a.get("backbone");
  ADNN_CHECK(m.backbone.empty() || is_fer(m.name), "--backbone ", m.backbone,
             ": applies to ADNN-FER configurations only, not --model ", m.name);
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
    if (!m.backbone.empty()) c.backbone = m.backbone;  // an unknown one: the constructor's error lists them
    return std::make_shared<nn::AdnnFer>(c);
  }
  return nn::create_model(m.name, m.classes, m.in_chans);
}

}  // namespace adnn_fer

namespace {

using adnn_fer::apply_precision;
using adnn_fer::Args;
using adnn_fer::make_model;
using adnn_fer::model_args;
using adnn_fer::ModelArgs;

int summary(const Args& a) {
  const ModelArgs ma = model_args(a);
  auto model = make_model(ma);
  // batch 1 through the whole model on the CPU, no grad (the paper configuration: 9 s, 1.1 GB)
  const nn::ModelSummary s = nn::summarize(*model, {1, ma.size, ma.size, ma.in_chans}, kCPU);
  std::printf("%s: input (N, H, W, C) = %s\n", ma.label().c_str(), shape_str(s.input).c_str());
  std::fputs(nn::format_summary(s, int(a.num("depth", 3))).c_str(), stdout);
  if (auto* f = dynamic_cast<nn::AdnnFer*>(model.get())) {
    std::printf("configuration:\n");
    for (auto& [k, v] : f->config().to_map()) std::printf("  %-24s %s\n", k.c_str(), v.c_str());
    std::printf("  token grid               %lldx%lld (%lld tokens of %lld)\n", (long long)f->token_grid().first,
                (long long)f->token_grid().second, (long long)(f->token_grid().first * f->token_grid().second),
                (long long)f->feature_dim());
  }
  return 0;
}

// The OpenMP threads of bench: --threads, else OMP_NUM_THREADS when set, else the cores that
// the 1-minute load average leaves idle (at least 1): on a loaded 2-core machine a second
// spinning OpenMP thread competes with the other processes and halves the throughput
// (docs/adnn_fer.md, "bench: threads").
int bench_threads(const Args& a, std::string& why) {
  const int cores = std::max(1, omp_get_num_procs());
  if (a.has("threads")) {
    why = "--threads";
    return int(a.num("threads", 1));
  }
  if (const char* env = std::getenv("OMP_NUM_THREADS"); env && *env) {
    why = "OMP_NUM_THREADS";
    return omp_get_max_threads();
  }
  double load[1] = {0};
  if (getloadavg(load, 1) != 1) load[0] = 0;
  const int idle = cores - int(std::lround(load[0]));
  char b[96];
  std::snprintf(b, sizeof b, "%d cores, load average %.2f", cores, load[0]);
  why = b;
  return std::clamp(idle, 1, cores);
}

// How a --precision computes, for bench's header line.
std::string precision_text(const std::string& p, bool train) {
  if (p == "tf32") return "tf32 (f32, TF32 GEMMs)";
  if (p != "bf16" && p != "f16") return "f32";
  if (!train) return p + " autocast";
  return p + " autocast (f32 master weights" + (p == "f16" ? ", gradient scaler)" : ")");
}

int bench(const Args& a) {
  const ModelArgs ma = model_args(a);
  const std::string name = ma.label();
  const int64_t size = ma.size, batch = a.num("batch", 32), iters = a.num("iters", 10);
  const bool train = a.has("train");
  // --precision: as train's (docs/training.md): tf32 switches the f32 GEMMs; bf16/f16 run the
  // forward and the loss under autocast, the weights and AdamW state stay f32; f16 trains
  // through a gradient scaler, whose step reads its inf/NaN check on the host (no graph)
  const std::string precision = a.get("precision", "f32");
  ADNN_CHECK(!(precision == "f16" && train && a.has("graph")),
             "bench: --graph with --train --precision f16: the gradient scaler decides each step on the host, "
             "which a CUDA graph cannot replay (use bf16)");
  const std::optional<DType> amp_dtype = apply_precision(precision, "bench: --precision");
  std::unique_ptr<amp::GradScaler> scaler;
  if (train && precision == "f16") scaler = std::make_unique<amp::GradScaler>();
  std::string threads_why;
  const int threads = bench_threads(a, threads_why);
  omp_set_num_threads(threads);
  const Device dev = a.has("device") ? pick_device(a) : kCPU;
  auto model = make_model(ma);
  model->to(dev);
  model->train(train);
  // with --graph on cuda, AdamW reads t and the rate from the device, so replays train (capturable)
  optim::AdamW opt(optim::layer_decay_groups(*model, 0.05, 0.8),
                   {.lr = 1e-3, .capturable = a.has("graph") && dev.is_cuda()});
  manual_seed(0);
  Tensor x = randn({batch, size, size, ma.in_chans}).to(dev);  // (N, H, W, C)
  Tensor y = randint(0, ma.classes, {batch}).to(dev);          // (N)
  auto step = [&] {
    if (train) {
      Tensor loss;
      {
        amp::Autocast autocast(amp_dtype);  // the forward and the loss (backward outside, as torch)
        loss = cross_entropy(model->forward(x), y);
      }
      opt.zero_grad();
      if (scaler) {
        scaler->scale(loss).backward();
        scaler->step(opt);
        scaler->update();
      } else {
        loss.backward();
        opt.step();
      }
    } else {
      NoGradGuard ng;
      amp::Autocast autocast(amp_dtype);
      model->forward(x);
    }
  };
  // device work is asynchronous: wait for it before reading the clock, after every step, so
  // that each step's time (the latency at batch 1) is measured as well as the total
  auto sync = [&] {
    if (dev.is_cuda()) cuda::device_synchronize();
  };
  MacCounter counted;
  step();  // warm-up; its forward's MACs (the ops count them; backward kernels are not counted)
  const int64_t macs_per_step = counted.macs();
  step();
  sync();
  if (dev.is_cuda()) cuda::reset_peak_memory();
  std::vector<double> ms;
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) {
    auto t = std::chrono::steady_clock::now();
    step();
    sync();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // quantile q of the step times (linear interpolation, numpy's default)
  auto quantile = [](std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const double at = q * double(v.size() - 1);
    const size_t lo = size_t(at), hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (at - double(lo)) * (v[hi] - v[lo]);
  };
  double mean = 0, var = 0;
  for (double t : ms) mean += t / double(ms.size());
  for (double t : ms) var += (t - mean) * (t - mean) / double(std::max<size_t>(ms.size() - 1, 1));
  const double med = quantile(ms, 0.5), p25 = quantile(ms, 0.25), p75 = quantile(ms, 0.75);
  const double lo = *std::min_element(ms.begin(), ms.end()), hi = *std::max_element(ms.begin(), ms.end());
  // --graph: the same step captured once into a CUDA graph and replayed (static x and y; each
  // replay is a real training step: AdamW is capturable and dropout masks change per replay)
  double graph_med = -1;
  size_t graph_nodes = 0;
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
    graph_med = quantile(gms, 0.5);
    graph_nodes = graph.num_nodes();
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mib = double(ru.ru_maxrss) / 1024.0;  // KiB on Linux
  const double dev_mib = dev.is_cuda() ? double(cuda::memory_stats().peak_in_use) / (1 << 20) : -1;
  const double img_s = double(batch * iters) / s;
  const double gmacs_img = double(macs_per_step) / double(batch) / 1e9;
  const double gmacs_s = double(macs_per_step) / (med / 1e3) / 1e9;

  std::printf("model %s, %s, %s, batch %lld, %lldx%lld, device %s, %d threads (%s), %lld iterations in %.2f s\n",
              name.c_str(), train ? "train step (AdamW)" : "forward", precision_text(precision, train).c_str(),
              (long long)batch, (long long)size, (long long)size, dev.str().c_str(), threads, threads_why.c_str(),
              (long long)iters, s);
  std::printf("img/s: %.1f\n", img_s);
  // "ms/step (median): X" and "peak device memory MiB: X" are read by scripts/gpu-check.sh
  std::printf("ms/step (median): %.3f\n", med);
  std::printf("ms/step spread: mean %.3f +- %.3f (std), IQR %.3f..%.3f, min %.3f, max %.3f\n", mean, std::sqrt(var),
              p25, p75, lo, hi);
  std::printf("GMACs/img (forward): %.4f; GMACs/s (forward MACs of a step / median step time): %.2f%s\n", gmacs_img,
              gmacs_s, train ? " (the backward pass does about 2x more, not counted)" : "");
  std::printf("peak host RSS MiB: %.1f\n", rss_mib);
  if (dev.is_cuda()) std::printf("peak device memory MiB: %.1f (the allocator's peak over the timed steps)\n", dev_mib);
  if (a.has("graph")) {
    if (graph_med >= 0)
      std::printf("graph: %zu nodes; ms/step eager (median): %.3f, graph replay (median): %.3f, speed-up %.2fx\n",
                  graph_nodes, med, graph_med, graph_med > 0 ? med / graph_med : 0.0);
    else
      std::printf("graph: CUDA graphs need --device cuda (eager only)\n");
  }
  if (a.has("json")) {
    const std::string path = a.get("json");
    std::ostringstream j;
    j.precision(6);
    j << "{\n  \"model\": \"" << name << "\",\n  \"mode\": \"" << (train ? "train" : "forward")
      << "\",\n  \"precision\": \"" << precision << "\",\n  \"device\": \"" << dev.str()
      << "\",\n  \"emulated\": " << (dev.is_cuda() && cuda_is_emulated() ? "true" : "false")
      << ",\n  \"threads\": " << threads << ",\n  \"batch\": " << batch << ",\n  \"image_size\": " << size
      << ",\n  \"iters\": " << iters << ",\n  \"img_per_s\": " << img_s << ",\n  \"ms_per_step\": {\"median\": " << med
      << ", \"mean\": " << mean << ", \"std\": " << std::sqrt(var) << ", \"p25\": " << p25 << ", \"p75\": " << p75
      << ", \"min\": " << lo << ", \"max\": " << hi << "},\n  \"gmacs_per_img\": " << gmacs_img
      << ",\n  \"gmacs_per_s\": " << gmacs_s << ",\n  \"peak_rss_mib\": " << rss_mib;
    if (dev.is_cuda()) j << ",\n  \"peak_device_mib\": " << dev_mib;
    if (graph_med >= 0) j << ",\n  \"graph_ms_per_step_median\": " << graph_med;
    j << "\n}\n";
    const std::string t = j.str();
    io::write_file_atomic(path, std::vector<uint8_t>(t.begin(), t.end()));
    std::printf("results: %s\n", path.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // line-buffered even when piped: a header printed on stdout comes before the progress
  // lines that follow it on stderr
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
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
    if (a.cmd == "experiment") return adnn_fer::cmd_experiment(a);
    if (a.cmd == "compare") return adnn_fer::cmd_compare(a);
    if (a.cmd == "export") return adnn_fer::cmd_export(a);
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
