// Autocast state and GradScaler (include/adnn/amp/amp.hpp).
#include <adnn/amp/amp.hpp>
#include <adnn/cuda/runtime.hpp>
#include <adnn/core/parse.hpp>
#include <adnn/ops/ops.hpp>
#include <adnn/optim/optimizer.hpp>

#include <cmath>
#include <cstdio>
#include <limits>

#include "cpu/gemm.hpp"

namespace adnn::amp {

namespace {
thread_local std::optional<DType> tls_autocast;
}

Autocast::Autocast(std::optional<DType> dtype) : saved_(tls_autocast) {
  ADNN_CHECK(!dtype || *dtype == DType::bf16 || *dtype == DType::f16, "amp::Autocast: dtype must be bf16 or f16, got ",
             dtype_name(*dtype));
  tls_autocast = dtype;
}
Autocast::~Autocast() { tls_autocast = saved_; }
std::optional<DType> autocast_dtype() { return tls_autocast; }

Tensor autocast_lower(const Tensor& x) {
  return tls_autocast && x.defined() && x.dtype() == DType::f32 ? x.to(*tls_autocast) : x;
}
bool bf16_pays(Device dev) {
#if ADNN_WITH_CUDA_BACKEND
  if (dev.is_cuda()) return !cuda::is_emulated() && cuda::has_tensor_cores();
#else
  if (dev.is_cuda()) return false;  // a build without a CUDA backend has no such device
#endif
  return cpu::bf16_dot_available();
}

Tensor autocast_f32(const Tensor& x) {
  return tls_autocast && x.defined() && (x.dtype() == DType::f16 || x.dtype() == DType::bf16) ? x.to(DType::f32) : x;
}

GradScaler::GradScaler(GradScalerOptions o) : o_(o), scale_(o.init_scale) {
  ADNN_CHECK(o.init_scale > 0 && std::isfinite(o.init_scale), "GradScaler: init_scale must be positive, got ",
             o.init_scale);
  ADNN_CHECK(o.growth_factor > 1, "GradScaler: growth_factor must be > 1, got ", o.growth_factor);
  ADNN_CHECK(o.backoff_factor > 0 && o.backoff_factor < 1, "GradScaler: backoff_factor must be in (0, 1), got ",
             o.backoff_factor);
  ADNN_CHECK(o.growth_interval > 0, "GradScaler: growth_interval must be positive, got ", o.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const { return o_.enabled ? mul(loss, scale_) : loss; }

void GradScaler::unscale_(optim::Optimizer& opt) {
  if (!o_.enabled) return;
  ADNN_CHECK(!unscaled_, "GradScaler::unscale_: already called since the last update()");
  NoGradGuard ng;
  const double inv = 1.0 / scale_;
  Tensor probe;  // () Σ 0·g over every gradient, on their device: NaN iff some element is inf or NaN
  for (Tensor& p : opt.parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    g.mul_(inv);
    Tensor z = sum(mul(g, 0.0)).to(DType::f32);
    probe = probe.defined() ? add(probe, z.to(probe.device())) : z;
  }
  found_inf_ = probe.defined() && std::isnan(probe.item<double>());  // the step's one synchronisation
  unscaled_ = true;
}

bool GradScaler::step(optim::Optimizer& opt) {
  if (!o_.enabled) {
    opt.step();
    return true;
  }
  if (!unscaled_) unscale_(opt);
  stepped_ = !found_inf_;
  if (stepped_) opt.step();
  return stepped_;
}

void GradScaler::update() {
  if (!o_.enabled) return;
  ADNN_CHECK(unscaled_, "GradScaler::update: call step() (or unscale_()) first");
  if (found_inf_) {
    scale_ *= o_.backoff_factor;
    growth_tracker_ = 0;
  } else if (++growth_tracker_ == o_.growth_interval) {
    scale_ *= o_.growth_factor;
    growth_tracker_ = 0;
  }
  unscaled_ = found_inf_ = false;
}

std::map<std::string, std::string> GradScaler::state() const {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", scale_);
  return {{"scaler.scale", buf}, {"scaler.growth_tracker", std::to_string(growth_tracker_)}};
}
void GradScaler::load_state(const std::map<std::string, std::string>& meta) {
  auto get = [&](const char* k) -> const std::string& {
    auto it = meta.find(k);
    ADNN_CHECK(it != meta.end(), "GradScaler::load_state: missing '", k, "'");
    return it->second;
  };
  scale_ = parse_double(get("scaler.scale"), "GradScaler state 'scaler.scale'", NonFinite::refuse, 0.0);
  ADNN_CHECK(scale_ > 0, "GradScaler state 'scaler.scale' must be positive, got ", scale_);
  growth_tracker_ = parse_int64(get("scaler.growth_tracker"), "GradScaler state 'scaler.growth_tracker'", 0,
                                std::numeric_limits<int64_t>::max());
}

}  // namespace adnn::amp
