// Optimizer and loss benchmarks.
//  - AdamW over a model-like list of tensors (EfficientNet-B0-sized: 5.3 M f32 parameters
//    in 312 tensors): on the GPU, the fused multi-tensor kernel (one launch) against one
//    launch per tensor, timed with CUDA events; on the CPU, the OpenMP loop. GB/s counts
//    28 bytes per parameter (read p, g, m, v; write p, m, v).
//  - The compound loss (B = 64, K = 7, D = 2048) fused against its unfused composition.
// GPU cases skip without a GPU; each first validates against the CPU (AdamW: three steps from
// the same start; the loss: value and gradients), then times (bench/cuda_timing.hpp).
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>
#include <benchmark/benchmark.h>

#include "cuda_timing.hpp"

using namespace adnn;

namespace {

bool have_gpu() { return cuda_device_count() > 0 && !cuda::is_emulated(); }

std::vector<Tensor> model_like(Device d) {
  std::vector<Tensor> ps;
  manual_seed(1);
  int64_t total = 0;
  for (int i = 0; total < 5'300'000; ++i) {
    const int64_t n = i % 4 == 0 ? 40000 + 500 * i : (i % 4 == 1 ? 320 : (i % 4 == 2 ? 1152 : 16 * (i % 50 + 1)));
    Tensor p = randn({n}).to(d).requires_grad_();
    p.set_grad(mul(randn({n}), 0.01).to(d));
    ps.push_back(p);
    total += n;
  }
  return ps;
}

int64_t numel(const std::vector<Tensor>& ps) {
  int64_t n = 0;
  for (auto& p : ps) n += p.numel();
  return n;
}

void BM_adamw_cpu(benchmark::State& st) {
  auto ps = model_like(kCPU);
  optim::AdamW opt(ps, {.lr = 1e-3});
  for (auto _ : st) opt.step();
  st.counters["GB/s"] = benchmark::Counter(28.0 * double(numel(ps)) * double(st.iterations()) / 1e9,
                                           benchmark::Counter::kIsRate);
  st.counters["tensors"] = double(ps.size());
}

void BM_adamw_gpu(benchmark::State& st) {
  if (!have_gpu()) {
    st.SkipWithError("no GPU");
    return;
  }
  if (bench::first_call(st)) {  // validate, then time: three steps on the device against three on the CPU
    auto pd = model_like(kCUDA), pc = model_like(kCPU);
    optim::AdamW od(pd, {.lr = 1e-3, .fused = st.range(0) != 0}), oc(pc, {.lr = 1e-3});
    for (int i = 0; i < 3; ++i) {
      od.step();
      oc.step();
    }
    for (size_t i = 0; i < pd.size(); ++i)
      if (!bench::validate(st, "AdamW parameter " + std::to_string(i), pd[i], pc[i], 1e-5, 1e-6)) return;
  }
  auto ps = model_like(kCUDA);
  optim::AdamW opt(ps, {.lr = 1e-3, .fused = st.range(0) != 0});
  st.SetLabel(bench::time_with_cuda_events(st, [&] { opt.step(); }));
  st.counters["GB/s"] = benchmark::Counter(28.0 * double(numel(ps)) * double(st.iterations()) / 1e9,
                                           benchmark::Counter::kIsRate);
}

void loss_case(benchmark::State& st, Device d, bool fused) {
  const int64_t B = 64, K = 7, D = 2048;
  manual_seed(2);
  Tensor z = randn({B, K}).to(d).requires_grad_(), f = randn({B, D}).to(d).requires_grad_();
  Tensor lab = randint(0, K, {B}).to(d);
  Tensor t = nn::one_hot(lab, K), c = randn({K, D}).to(d);
  Tensor prior = from_vector(nn::dls_prior({3995, 436, 4097, 7215, 4830, 3171, 4965}), {K}, TensorOptions(DType::f32, d));
  auto body = [&] {
    auto l = fused ? nn::compound_loss(z, f, t, lab, c, prior, {}) : nn::compound_loss_unfused(z, f, t, lab, c, prior, {});
    l.total.backward();
  };
  if (d.is_cuda()) {
    if (bench::first_call(st)) {  // validate, then time: the loss and its gradients against the CPU's
      Tensor zc = z.detach().to(kCPU).requires_grad_(), fc = f.detach().to(kCPU).requires_grad_();
      auto lc = nn::compound_loss_unfused(zc, fc, t.to(kCPU), lab.to(kCPU), c.to(kCPU), prior.to(kCPU), {});
      lc.total.backward();
      Tensor zd = z.detach().requires_grad_(), fd = f.detach().requires_grad_();
      auto ld = fused ? nn::compound_loss(zd, fd, t, lab, c, prior, {}) : nn::compound_loss_unfused(zd, fd, t, lab, c, prior, {});
      ld.total.backward();
      if (!bench::validate(st, "compound loss", ld.total, lc.total, 1e-5, 1e-6) ||
          !bench::validate(st, "compound loss dlogits", zd.grad(), zc.grad(), 1e-4, 1e-6) ||
          !bench::validate(st, "compound loss dfeatures", fd.grad(), fc.grad(), 1e-4, 1e-6))
        return;
    }
    st.SetLabel(bench::time_with_cuda_events(st, body));
  } else {
    for (auto _ : st) body();
  }
}
void BM_compound_loss_cpu(benchmark::State& st) { loss_case(st, kCPU, st.range(0) != 0); }
void BM_compound_loss_gpu(benchmark::State& st) {
  if (!have_gpu()) {
    st.SkipWithError("no GPU");
    return;
  }
  loss_case(st, kCUDA, st.range(0) != 0);
}

}  // namespace

BENCHMARK(BM_adamw_cpu)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_adamw_gpu)->Arg(1)->Arg(0)->UseManualTime()->Unit(benchmark::kMicrosecond);  // 1 fused, 0 per tensor
BENCHMARK(BM_compound_loss_cpu)->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_compound_loss_gpu)->Arg(1)->Arg(0)->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
