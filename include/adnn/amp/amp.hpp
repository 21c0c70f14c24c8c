#pragma once
// Automatic mixed precision, as torch.autocast and torch.cuda.amp.GradScaler.
//
// amp::Autocast guard(DType::bf16);  // or f16: for this thread, until the guard ends
//   - GEMM-class ops (matmul, linear, conv2d, scaled_dot_product_attention) cast f32 operands to
//     the autocast dtype and compute there (f32 accumulation inside);
//   - statistics-class ops (softmax, log_softmax, layer_norm, losses, sum/mean reductions) cast
//     f16/bf16 inputs to f32 and return f32;
//   - every other op runs in its inputs' dtype (batch norm, pooling, activations keep bf16 storage
//     and compute in f32 inside); binary ops promote mixed dtypes (bf16 + f32 -> f32), as torch.
// The casts are ordinary differentiable ops, so gradients reach the f32 master weights in f32;
// optimizer state stays f32. Autocast scopes nest; Autocast(std::nullopt) disables inside one.
#include <adnn/core/tensor.hpp>
#include <adnn/io/safetensors.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace adnn::optim {
class Optimizer;
}

namespace adnn::amp {

class Autocast {
 public:
  explicit Autocast(std::optional<DType> dtype);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  std::optional<DType> saved_;
};
std::optional<DType> autocast_dtype();  // this thread's, or nullopt

// Used by the ops: x cast to the autocast dtype when autocast is on and x is f32 (else x).
Tensor autocast_lower(const Tensor& x);
// x cast to f32 when autocast is on and x is f16/bf16 (else x).
Tensor autocast_f32(const Tensor& x);

// Whether bf16 autocast pays on dev, i.e. its GEMMs multiply bf16 natively: a real GPU with
// tensor cores (sm_80+; not the emulator), or a CPU with AVX512-BF16 (VDPBF16PS, unless
// ADNN_CPU_BF16_DOT=0). Elsewhere bf16 still works, with the products widened to f32 first,
// and costs time instead of saving it. As torch.cuda.is_bf16_supported(), for both backends.
bool bf16_pays(Device dev);

struct GradScalerOptions {
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;
};

// torch.cuda.amp.GradScaler: loss scaling for f16 training.
//   scaler.scale(loss).backward();
//   scaler.unscale_(opt);            // optional: before clipping
//   clip_grad_norm_(...);
//   scaler.step(opt);                // skipped when a gradient is inf/NaN
//   scaler.update();                 // back off after a skip, grow after growth_interval clean steps
// The scale and the clean-step count live on the host; the inf/NaN check is computed on the
// gradients' device and read once per step in step() (one synchronisation, as torch's .item()).
class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions o = {});
  Tensor scale(const Tensor& loss) const;  // loss * scale (loss unchanged when disabled)
  void unscale_(optim::Optimizer& opt);    // grads /= scale once per step; records inf/NaN
  bool step(optim::Optimizer& opt);        // unscales if needed; steps unless inf/NaN; true when it stepped
  void update();
  double get_scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }
  bool enabled() const { return o_.enabled; }
  // For checkpoints (metadata keys "scaler.scale", "scaler.growth_tracker"): exact round trip.
  std::map<std::string, std::string> state() const;
  void load_state(const std::map<std::string, std::string>& meta);

 private:
  GradScalerOptions o_;
  double scale_;
  int64_t growth_tracker_ = 0;
  bool unscaled_ = false, found_inf_ = false, stepped_ = false;
};

}  // namespace adnn::amp
