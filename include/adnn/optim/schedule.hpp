#pragma once
// Learning-rate schedule (stepped per iteration) and early stopping.
#include <adnn/core/error.hpp>

#include <algorithm>
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
  // A clock of time instead of steps (a run with a wall-clock budget, as the PyTorch peer's):
  // the cosine at `fraction` of the budget, 0..1 (clamped), and the first `warmup` steps ramp
  // linearly up to it: min(base_lr (step + 1) / warmup, cosine).
  double lr_at_fraction(int64_t step, double fraction) const {
    ADNN_CHECK(warmup >= 0 && std::isfinite(fraction), "WarmupCosine: bad warmup ", warmup, " or fraction ", fraction);
    const double t = std::clamp(fraction, 0.0, 1.0);
    const double c = min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
    return step < warmup ? std::min(c, base_lr * double(step + 1) / double(warmup)) : c;
  }
};

// Stops after `patience` evaluations without an improvement larger than min_delta. The
// first metric is always an improvement. A NaN metric is refused (it would compare false
// with everything and silently count as "no improvement" forever).
struct EarlyStopping {
  int64_t patience = 20;
  bool maximize = true;
  double min_delta = 0.0;
  double best = std::numeric_limits<double>::quiet_NaN();
  int64_t bad = 0;  // evaluations since the best
  bool improved = false;

  // What a checkpoint needs to continue: the best metric so far (NaN before the first
  // evaluation) and the evaluations since it.
  struct State {
    double best = std::numeric_limits<double>::quiet_NaN();
    int64_t bad = 0;
  };

  // Records a metric; true when training should stop.
  bool update(double metric) {
    ADNN_CHECK(!std::isnan(metric), "EarlyStopping::update: the metric is NaN (after ", bad,
               " evaluations without improvement, best ", best, ")");
    improved = std::isnan(best) || (maximize ? metric > best + min_delta : metric < best - min_delta);
    if (improved) {
      best = metric;
      bad = 0;
    } else {
      ++bad;
    }
    return should_stop();
  }
  bool should_stop() const { return bad >= patience; }

  State state_dict() const { return {best, bad}; }
  void load_state_dict(const State& s) {
    ADNN_CHECK(s.bad >= 0, "EarlyStopping::load_state_dict: bad evaluation count ", s.bad, " is negative");
    ADNN_CHECK(std::isnan(s.best) || std::isfinite(s.best), "EarlyStopping::load_state_dict: best metric ", s.best,
               " is not finite");
    ADNN_CHECK(!std::isnan(s.best) || s.bad == 0, "EarlyStopping::load_state_dict: ", s.bad,
               " bad evaluations but no best metric");
    best = s.best;
    bad = s.bad;
    improved = false;
  }
};

}  // namespace adnn::optim
