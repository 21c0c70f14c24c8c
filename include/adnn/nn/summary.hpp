#pragma once
// torchinfo's summary(model, input_size) for adnn modules: one forward pass (no grad, eval
// mode) of a zero input, observed through forward pre-hooks and hooks on every submodule,
// gives each module's output shape and the multiply-accumulates its ops counted
// (adnn::MacCounter, include/adnn/ops/ops.hpp), listed in the order the modules first ran,
// nested under their parents. docs/adnn_fer.md shows the table for nano and B0.
#include <adnn/nn/module.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace adnn::nn {

// One module of the summary.
struct LayerSummary {
  std::string name;            // dotted name ("" for the model itself)
  std::string type;            // the class name ("Conv2d", "MBConv")
  int depth = 0;               // 0 for the model, 1 for its children, ...
  bool leaf = false;           // no submodules
  int64_t calls = 0;           // forward calls in the pass (0: run by its parent's forward directly)
  Shape output;                // the last call's output, e.g. (1, 24, 24, 32); empty when not called
  int64_t params = 0;          // parameters of the module and its submodules
  int64_t trainable = 0;       // of which require grad
  int64_t macs = 0;            // MACs counted by ops during its calls (its submodules' included);
                               // not called: the sum of its submodules' (a container its parent iterates)
  bool macs_at_least = false;  // not called, and that sum may miss ops of its own (printed "≥N")
};

struct ModelSummary {
  Shape input;                        // e.g. (1, 48, 48, 1)
  std::vector<LayerSummary> layers;   // depth first, in the order the modules first ran
  int64_t params = 0, trainable = 0;  // every parameter once
  int64_t param_bytes = 0, buffer_bytes = 0;
  int64_t macs = 0;  // the whole forward pass
  // Estimated activation memory of a training step: the bytes of every leaf module's output
  // (kept for backward), as torchinfo's "forward/backward pass size" counts them (× 2 there:
  // the gradients of the same size).
  int64_t activation_bytes = 0;
  int64_t input_bytes = 0;
  Device device = kCPU;
};

// Runs one forward pass of zeros({input}) on `device` (the model is moved there and left in
// eval mode) and collects the summary. input is the model's input shape with the batch,
// e.g. {1, 48, 48, 1}.
ModelSummary summarize(Module& model, const Shape& input, Device device = kCPU);

// The table: modules down to `depth` (deeper ones fold into their parent's row; depth < 0:
// all), then the totals with thousands separators.
std::string format_summary(const ModelSummary& s, int depth = 3);

// 1234567 -> "1,234,567"
std::string thousands(int64_t n);

}  // namespace adnn::nn
