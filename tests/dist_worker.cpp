// One rank of a distributed test (tests/test_distributed.cpp starts 2 or 3 of them with RANK,
// WORLD_SIZE and a rendezvous directory in their environment). Exit status 0: every check
// of the scenario held; otherwise the failed check is printed.
//   dist_worker collectives   all_reduce (sum, mean, max, min) / broadcast / all_gather /
//                             barrier for every dtype, empty and > 25 MB tensors, cuda tensors
//   dist_worker ddp           DistributedDataParallel = one process on the whole batch
//                             (buckets, overlap, no_sync, SyncBatchNorm)
//   dist_worker kill          the last rank dies (SIGKILL) after one collective; the others
//                             must fail naming it
//   dist_worker stall         the last rank stops issuing collectives; the others must time
//                             out naming it
#include <adnn/adnn.hpp>
#include <adnn/cuda/runtime.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

using namespace adnn;
namespace dist = adnn::distributed;

namespace {

int failures = 0;
#define CHECK_THAT(cond, ...)                                                            \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      ++failures;                                                                        \
      std::fprintf(stderr, "rank %d: check failed at %s:%d: %s: %s\n", dist::get_rank(), \
                   __FILE__, __LINE__, #cond, adnn::detail::cat(__VA_ARGS__).c_str());   \
    }                                                                                    \
  } while (0)

// Runs f and returns the adnn::Error message it throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to(kCPU).to_vector(), y = b.to(kCPU).to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

void collectives(dist::ProcessGroup& pg) {
  const int W = pg.world_size(), r = pg.rank();
  const double S = W * (W + 1) / 2.0;
  for (DType d : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64, DType::u8}) {
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000), int64_t(7'000'003)}) {
      if (n > 1000 && d != DType::f32) continue;  // one tensor larger than a 25 MB bucket
      std::vector<double> base(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) base[size_t(i)] = double(i % 7);
      auto filled = [&](double scale) {
        std::vector<double> v(base);
        for (double& x : v) x *= scale;
        return from_vector(v, {n}, TensorOptions(DType::f64)).to(d);
      };
      auto expect = [&](const Tensor& t, double scale, const char* what) {
        const std::vector<double> got = t.to_vector();
        double worst = 0;
        for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(got[size_t(i)] - base[size_t(i)] * scale));
        CHECK_THAT(worst <= 1e-6 * std::max(1.0, scale * 6) + (d == DType::bf16 || d == DType::f16 ? 0.02 * scale : 0),
                   what, " ", dtype_name(d), " n=", n, ": max error ", worst);
      };
      Tensor t = filled(r + 1);
      pg.all_reduce(t, dist::ReduceOp::sum);
      expect(t, S, "all_reduce sum");
      t = filled(r + 1);
      pg.all_reduce(t, dist::ReduceOp::max);
      expect(t, W, "all_reduce max");
      t = filled(r + 1);
      pg.all_reduce(t, dist::ReduceOp::min);
      expect(t, 1, "all_reduce min");
      if (is_floating(d)) {
        t = filled(r + 1);
        pg.all_reduce(t, dist::ReduceOp::mean);
        expect(t, S / W, "all_reduce mean");
      }
      const int root = W - 1;
      t = r == root ? filled(3) : filled(-1).to(d);
      if (d == DType::u8 && r != root) t = filled(0);
      pg.broadcast(t, root);
      expect(t, 3, "broadcast");
    }
  }
  // all_gather: rank q's tensor at index q
  for (DType d : {DType::f32, DType::i64, DType::bf16}) {
    Tensor mine = full({2, 3}, double(10 * r + 1), TensorOptions(d));
    Tensor all = pg.all_gather(mine);  // (W, 2, 3)
    CHECK_THAT(all.sizes() == Shape({W, 2, 3}), "all_gather shape ", all.desc());
    for (int q = 0; q < W; ++q)
      CHECK_THAT(max_abs_diff(all.select(0, q), full({2, 3}, double(10 * q + 1))) == 0, "all_gather ", dtype_name(d),
                 " rank ", q);
  }
  Tensor empty_gather = pg.all_gather(zeros({0}));
  CHECK_THAT(empty_gather.sizes() == Shape({W, 0}), "all_gather of an empty tensor: ", empty_gather.desc());
  pg.barrier();
#if ADNN_WITH_CUDA_BACKEND
  {  // a cuda tensor goes through a host copy
    Tensor c = full({257}, double(r + 1), TensorOptions(DType::f32, kCUDA));
    pg.all_reduce(c, dist::ReduceOp::sum);
    CHECK_THAT(c.device().is_cuda() && max_abs_diff(c, full({257}, S)) == 0, "all_reduce of a cuda tensor");
    Tensor g = pg.all_gather(full({2}, double(r), TensorOptions(DType::f32, kCUDA)));
    CHECK_THAT(g.device().is_cuda() && g.sizes() == Shape({W, 2}), "all_gather of a cuda tensor: ", g.desc());
  }
#endif
  // refusals name the op and the tensor
  Tensor m = zeros({4, 4});
  std::string e = error_of([&] { pg.all_reduce(m.transpose(0, 1)); });
  CHECK_THAT(e.find("all_reduce") != std::string::npos && e.find("contiguous") != std::string::npos, e);
  e = error_of([&] { pg.all_reduce(zeros({3}, TensorOptions(DType::i32)), dist::ReduceOp::mean); });
  CHECK_THAT(e.find("mean needs a floating dtype") != std::string::npos, e);
  e = error_of([&] { pg.broadcast(zeros({3}), W); });
  CHECK_THAT(e.find("root") != std::string::npos, e);
  pg.barrier();  // the refusals issued no collective: the ranks are still in step
}

// loss = mean((net(x) - y)^2) over the rows given
Tensor mse(nn::Module& net, const Tensor& x, const Tensor& y) { return mean(pow(sub(net(x), y), 2.0)); }

std::shared_ptr<nn::Sequential> mlp() {
  auto net = std::make_shared<nn::Sequential>();
  net->add(std::make_shared<nn::Linear>(8, 32)).add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::Linear>(32, 32)).add(std::make_shared<nn::ReLU>());
  net->add(std::make_shared<nn::Linear>(32, 4));
  return net;
}

// ADNN_DIST_DEVICE=cuda: the models and data on the cuda device (NCCL on a GPU; the emulated
// device's tensors go through Gloo by host copies)
Device test_device() {
  const char* d = std::getenv("ADNN_DIST_DEVICE");
  return d && std::string(d) == "cuda" ? kCUDA : kCPU;
}

void ddp(std::shared_ptr<dist::ProcessGroup> pg) {
  const int W = pg->world_size(), r = pg->rank();
  const Device dev = test_device();
  const int64_t B = 4, N = B * W;  // per rank, in all
  manual_seed(11);
  Tensor x1 = randn({N, 8}).to(dev), y1 = randn({N, 4}).to(dev), x2 = randn({N, 8}).to(dev), y2 = randn({N, 4}).to(dev);
  auto rows = [&](const Tensor& t) { return t.narrow(0, r * B, B); };  // this rank's shard

  // the reference: one process, the whole batch
  manual_seed(5);
  auto ref = mlp();
  ref->to(dev);
  mse(*ref, x1, y1).backward();
  std::vector<Tensor> ref_grads;
  for (auto& p : ref->parameters()) ref_grads.push_back(p.grad().clone());

  manual_seed(5);
  auto net = mlp();
  net->to(dev);
  if (r > 0) {  // DDP must replace these by rank 0's parameters
    NoGradGuard ng;
    for (auto& p : net->parameters()) p.add_(ones_like(p), 0.5 * r);
  }
  dist::DistributedDataParallel model(net, pg, {.bucket_cap_mb = 0.002, .first_bucket_cap_mb = 0.001});
  CHECK_THAT(model.buckets().size() >= 3, "expected several buckets, got ", model.buckets().size());
  for (size_t i = 0; i < ref->parameters().size(); ++i)
    CHECK_THAT(max_abs_diff(net->parameters()[i], ref->parameters()[i]) == 0, "parameter ", i, " not broadcast");
  mse(*net, rows(x1), rows(y1)).backward();
  double worst = 0;
  for (size_t i = 0; i < ref_grads.size(); ++i) worst = std::max(worst, max_abs_diff(net->parameters()[i].grad(), ref_grads[i]));
  CHECK_THAT(worst < 1e-6, "DDP gradients differ from one process on the whole batch by ", worst);
  CHECK_THAT(model.reductions() == 1, "reductions ", model.reductions());
  CHECK_THAT(model.early_launches() >= 1, "no bucket was launched before the backward pass ended");

  // no_sync: the first backward only accumulates; the next one reduces the sum
  for (auto& p : net->parameters()) p.set_grad(Tensor());
  ref->zero_grad();
  add(mse(*ref, x1, y1), mse(*ref, x2, y2)).backward();
  const int64_t before = pg->collectives();
  {
    auto guard = model.no_sync();
    mse(*net, rows(x1), rows(y1)).backward();
  }
  CHECK_THAT(pg->collectives() == before, "no_sync issued ", pg->collectives() - before, " collectives");
  mse(*net, rows(x2), rows(y2)).backward();
  worst = 0;
  for (size_t i = 0; i < ref_grads.size(); ++i)
    worst = std::max(worst, max_abs_diff(net->parameters()[i].grad(), ref->parameters()[i].grad()));
  CHECK_THAT(worst < 1e-6, "no_sync + sync: gradients differ from the accumulated reference by ", worst);

  // SyncBatchNorm: conv -> BN -> ReLU on an NHWC batch = one process's BN on the whole batch
  manual_seed(13);
  Tensor xi = randn({N, 5, 5, 3}).to(dev), yi = randn({N, 5, 5, 4}).to(dev);
  auto conv_bn = [] {
    auto s = std::make_shared<nn::Sequential>();
    s->add(std::make_shared<nn::Conv2d>(nn::Conv2dOptions(3, 4, 3).padding(1)));
    s->add(std::make_shared<nn::BatchNorm2d>(4)).add(std::make_shared<nn::ReLU>());
    return s;
  };
  manual_seed(17);
  auto ref_bn = conv_bn();
  ref_bn->to(dev);
  mse(*ref_bn, xi, yi).backward();
  for (int sync = 0; sync < 2; ++sync) {
    manual_seed(17);
    auto net_bn = conv_bn();
    net_bn->to(dev);
    if (sync) dist::convert_sync_batchnorm(*net_bn, pg);
    dist::DistributedDataParallel m2(net_bn, pg);
    mse(*net_bn, rows(xi), rows(yi)).backward();
    double g = 0;
    for (size_t i = 0; i < ref_bn->parameters().size(); ++i)
      g = std::max(g, max_abs_diff(net_bn->parameters()[i].grad(), ref_bn->parameters()[i].grad()));
    double stats = 0;
    auto rb = ref_bn->named_buffers(), nb = net_bn->named_buffers();
    for (size_t i = 0; i < rb.size(); ++i)
      if (rb[i].second.dtype() == DType::f32) stats = std::max(stats, max_abs_diff(rb[i].second, nb[i].second));
    if (sync) {
      CHECK_THAT(g < 1e-5, "SyncBatchNorm gradients differ from one process's BN on the whole batch by ", g);
      CHECK_THAT(stats < 1e-5, "SyncBatchNorm running statistics differ by ", stats);
    } else if (W > 1) {  // per-process statistics: a different function (what makes the check above able to fail)
      CHECK_THAT(g > 1e-3, "per-process BN gave the whole-batch gradients (", g, "): the SyncBatchNorm check is void");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dist_worker collectives|ddp|kill|stall\n");
    return 2;
  }
  const std::string what = argv[1];
  try {
    const bool nccl = test_device().is_cuda() && !cuda::is_emulated() && dist::has_nccl();
    auto pg = dist::init_process_group(dist::options_from_env(nccl ? dist::Backend::nccl : dist::Backend::gloo));
    if (dist::get_rank() == 0)
      std::printf("dist_worker %s: %d ranks, %s backend, device %s\n", argv[1], pg->world_size(),
                  dist::backend_name(pg->backend()), test_device().str().c_str());
    const int W = pg->world_size(), r = pg->rank();
    if (what == "collectives") {
      collectives(*pg);
    } else if (what == "ddp") {
      ddp(pg);
    } else if (what == "kill" || what == "stall") {
      Tensor t = ones({16});
      pg->all_reduce(t);  // every rank is connected
      if (r == W - 1) {
        if (what == "kill") ::raise(SIGKILL);
        // never issues the next collective; leaves after the others have timed out
        std::this_thread::sleep_for(pg->timeout() + std::chrono::seconds(8));
        std::_Exit(0);
      }
      const auto t0 = std::chrono::steady_clock::now();
      const std::string e = error_of([&] {
        for (int i = 0; i < 1000; ++i) pg->all_reduce(t);
      });
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("rank %d: after %.1f s: %s\n", r, s, e.c_str());
      const std::string peer = "peer rank " + std::to_string(W - 1);
      CHECK_THAT(e.find(peer) != std::string::npos, "the error does not name ", peer, ": ", e);
      CHECK_THAT(s < std::chrono::duration<double>(pg->timeout()).count() + 5, "took ", s, " s");
      std::fflush(stdout);
      std::_Exit(failures ? 1 : 0);  // the group's destructor would wait for the dead peer's collectives
    } else {
      std::fprintf(stderr, "dist_worker: unknown scenario '%s'\n", what.c_str());
      return 2;
    }
    dist::destroy_process_group();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %s: error: %s\n", std::getenv("RANK") ? std::getenv("RANK") : "?", e.what());
    return 1;
  }
  if (failures) std::fprintf(stderr, "%d checks failed\n", failures);
  return failures ? 1 : 0;
}
