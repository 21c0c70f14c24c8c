// A tiny training run used by the resume test: an MLP on synthetic data, AdamW with
// layer-wise decay, warm-up + cosine, dropout (so the RNG stream matters), gradient
// clipping. Modes:
//   train_probe DIR STEPS                      train from scratch, print a weights digest
//   train_probe DIR STEPS --die-after K        save a checkpoint after step K, then _Exit(137)
//   train_probe DIR STEPS --resume             resume from DIR/ckpt.safetensors, finish, print
#include <adnn/adnn.hpp>

#include <cstdio>
#include <cstring>
#include <string>

using namespace adnn;

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string dir = argv[1];
  const int64_t steps = std::atoll(argv[2]);
  int64_t die_after = -1;
  bool resume = false;
  for (int i = 3; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--die-after") && i + 1 < argc) die_after = std::atoll(argv[++i]);
    if (!std::strcmp(argv[i], "--resume")) resume = true;
  }
  manual_seed(7);
  Tensor x = randn({64, 10}), y = randint(0, 3, {64});
  nn::Sequential model;
  model.add(std::make_shared<nn::Linear>(10, 32)).add(std::make_shared<nn::ReLU>()).add(std::make_shared<nn::Linear>(32, 3));
  optim::AdamW opt(optim::layer_decay_groups(model, 0.05, 0.8), {.lr = 0.01});
  optim::WarmupCosine sched{.base_lr = 0.01, .min_lr = 1e-4, .warmup = 5, .total = steps};
  const std::string ckpt = dir + "/ckpt.safetensors";
  int64_t start = 0;
  if (resume) {
    io::TrainState s = io::load_checkpoint(ckpt, model, opt);
    start = s.step;
    set_rng_state(s.rng);
  }
  for (int64_t step = start; step < steps; ++step) {
    opt.set_lr(sched.lr(step));
    Tensor h = dropout(x, 0.1, true);
    Tensor loss = cross_entropy(model(h), y);
    opt.zero_grad();
    loss.backward();
    optim::clip_grad_norm(opt.parameters(), 1.0);
    opt.step();
    if (step + 1 == die_after) {
      io::TrainState s;
      s.step = step + 1;
      s.rng = get_rng_state();
      io::save_checkpoint(ckpt, model, opt, s);
      std::_Exit(137);  // killed between steps
    }
  }
  // digest: every weight's bits
  uint64_t h = 1469598103934665603ull;
  for (auto& [n, p] : model.named_parameters()) {
    Tensor c = p.contiguous();
    const unsigned char* b = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0; i < size_t(c.numel()) * 4; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  std::printf("digest %016llx\n", (unsigned long long)h);
  return 0;
}
