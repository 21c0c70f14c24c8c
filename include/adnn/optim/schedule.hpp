#pragma once
// Learning-rate schedule (stepped per iteration) and early stopping.
#include <adnn/core/error.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

namespace adnn::optim {

// Linear warm-up over `warmup` steps (lr · (s+1)/warmup), then cosine annealing from
// base_lr to min_lr over the remaining steps; min_lr after `total`.
struct WarmupCosine {
  double base_lr = 1e-3, min_lr = 0.0;
  int64_t warmup = 0, total = 1;
  double lr(int64_t step) const {
    ADNN_CHECK(total > 0 && warmup >= 0 && warmup <= total, "WarmupCosine: bad steps (warmup ", warmup, ", total ",
               total, ")");
    if (step < warmup) return base_lr * double(step + 1) / double(warmup);
    if (step >= total) return min_lr;
    const double t = double(step - warmup) / double(std::max<int64_t>(total - warmup, 1));
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
  }
};

// Stops after `patience` evaluations without an improvement larger than min_delta.
struct EarlyStopping {
  int64_t patience = 20;
  bool maximize = true;
  double min_delta = 0.0;
  double best = std::numeric_limits<double>::quiet_NaN();
  int64_t bad = 0;  // evaluations since the best
  bool improved = false;
  // Records a metric; true when training should stop.
  bool update(double metric) {
    improved = std::isnan(best) || (maximize ? metric > best + min_delta : metric < best - min_delta);
    if (improved) {
      best = metric;
      bad = 0;
    } else {
      ++bad;
    }
    return bad >= patience;
  }
};

}  // namespace adnn::optim
