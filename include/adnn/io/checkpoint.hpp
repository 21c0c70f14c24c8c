#pragma once
// Checkpoints that never lose a run: the model's weights as `<name>.safetensors` (loadable
// on their own, e.g. by `predict`) and the training state as `<name>.state.safetensors`
// (optimizer moments, step, epoch, scheduler position, RNG stream, best metric, early-
// stopping counter, any extra tensors such as loss centers, and a free-form config such as
// the loss weights). Each file is written atomically (temporary file, fsync, rename); both
// carry the same checkpoint id, so a crash between the two renames is detected on load.
#include <adnn/core/random.hpp>
#include <adnn/nn/module.hpp>
#include <adnn/optim/optimizer.hpp>

#include <array>
#include <limits>
#include <map>
#include <string>

namespace adnn::io {

struct TrainState {
  int64_t step = 0, epoch = 0;
  double best_metric = std::numeric_limits<double>::quiet_NaN();
  int64_t bad_epochs = 0;
  RngState rng{};  // adnn's global generator (get_rng_state / set_rng_state)
  std::map<std::string, std::string> config;  // also written into the weights file's metadata
};

// path: the weights file, ending in .safetensors
void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& opt,
                     const TrainState& state, const std::vector<std::pair<std::string, Tensor>>& extra = {});
// Restores weights, optimizer and (if given) the extra tensors in place; returns the state.
TrainState load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& opt,
                           std::vector<std::pair<std::string, Tensor>>* extra = nullptr);
std::string state_path(const std::string& weights_path);

}  // namespace adnn::io
