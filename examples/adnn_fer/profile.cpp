// adnn-fer profile: one step of a model on the emulated cuda device with the kernel access
// trace on (include/adnn/cuda/kernel_report.hpp): per kernel, launches, global sectors per
// request, coalescing, shared-memory wavefronts and bank conflicts, compulsory bytes and the
// time they imply at the H200's HBM bandwidth. docs/kernels.md explains the model and its limits.
#include <adnn/adnn.hpp>
#include <adnn/cuda/kernel_report.hpp>
#include <adnn/cuda/runtime.hpp>

#include "fer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

namespace adnn_fer {

using namespace adnn;

int cmd_profile(const Args& a) {
  if (!cuda::kernel_trace_available())
    throw Error(
        "profile: needs the emulated cuda device built with ADNN_SIM_TRACE=ON (a GCC build with "
        "-DADNN_CUDA_EMULATION=ON and no sanitizer); this build cannot trace kernels");
  const ModelArgs ma = model_args(a);
  const int64_t batch = a.num("batch", 2), warmup = a.num("warmup", 1), size = ma.size;
  const bool train = a.has("train");
  const Device dev("cuda");
  auto model = make_model(ma);
  model->to(dev);
  model->train(train);
  auto* fer = dynamic_cast<nn::AdnnFer*>(model.get());
  manual_seed(0);
  optim::AdamW opt(optim::layer_decay_groups(*model, 0.05, fer ? fer->config().layer_decay : 0.8), {.lr = 1e-3});
  Tensor x = randn({batch, size, size, ma.in_chans}).to(dev);  // (B, S, S, C)
  Tensor labels = randint(0, ma.classes, {batch}).to(dev);     // (B)
  // ADNN-FER's compound loss: soft targets, class centers and the DLS prior, as in training
  Tensor soft = softmax(randn({batch, ma.classes}), 1).to(dev);  // (B, K)
  Tensor centers, prior;                                         // (K, d), (K)
  if (fer) {
    centers = zeros({ma.classes, fer->feature_dim()}).to(dev);
    prior = full({ma.classes}, 1.0 / double(ma.classes)).to(dev);
  }
  auto step = [&] {
    if (!train) {
      NoGradGuard ng;
      model->forward(x);
      return;
    }
    Tensor loss;
    Tensor feats;  // (B, d)
    if (fer) {
      auto [logits, pooled] = fer->forward_with_features(x);  // (B, K), (B, d)
      feats = pooled * (1.0 / std::sqrt(double(fer->feature_dim())));
      nn::CompoundLossOptions o;
      o.dls_eps = fer->config().dls_eps;
      loss = nn::compound_loss(logits, feats, soft, labels, centers, prior, {}, o).total;
    } else {
      loss = cross_entropy(model->forward(x), labels);
    }
    opt.zero_grad();
    loss.backward();
    if (fer) optim::clip_grad_norm_(opt.parameters(), 5.0);
    opt.step();
    if (fer) nn::update_centers(centers, feats.detach(), labels, 0.5);
  };
  for (int64_t i = 0; i < warmup; ++i) step();
  cuda::device_synchronize();
  cuda::kernel_trace_start();
  const auto t0 = std::chrono::steady_clock::now();
  step();
  cuda::device_synchronize();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::vector<cuda::KernelStats> kernels = cuda::kernel_trace_stop();
  char head[512];
  std::snprintf(head, sizeof head,
                "model %s, %s, batch %lld, %lldx%lld, %lld untraced warm-up step(s); traced step: %.1f s emulated\n",
                ma.label().c_str(), train ? "training step (forward, loss, backward, AdamW)" : "forward",
                (long long)batch, (long long)size, (long long)size, (long long)warmup, secs);
  const std::string table = cuda::kernel_report_markdown(kernels);
  std::printf("%s\n%s", head, table.c_str());
  if (a.has("out")) {
    const std::string path = a.get("out");
    std::ofstream f(path);
    if (!f) throw Error("profile --out: cannot write " + path);
    f << "# Kernel report: " << ma.label() << (train ? " training step" : " forward") << "\n\n"
      << "Emulated `cuda` device (SIMT emulator, access trace: docs/kernels.md, \"Memory-access report\"), "
         "estimated for an H200.\n\n"
      << "Command: `" << a.command() << "`\n\n"
      << head << "\n"
      << table;
    if (!f) throw Error("profile --out: write failed: " + path);
    std::printf("wrote %s\n", path.c_str());
  }
  return 0;
}

}  // namespace adnn_fer
