// Data-parallel training of ADNN-FER nano on random data: does the gradient all-reduce overlap
// the backward pass, and what do N processes give against one (docs/distributed.md).
//
//   bench_ddp [--nproc N] [--batch B] [--steps S] [--reps R] [--bucket-mb M] [--delay-ms D]
// (--bucket-mb: default the model's gradient MiB / 8, between 1 and 25, as adnn-fer train)
//
// With --nproc N (default 2) the program starts N ranks of itself over loopback Gloo (as
// adnn-fer train --nproc), each with OMP_NUM_THREADS = cores / N unless set. Each rank trains
// with batch B; blocks of S steps alternate (interleaved, R times) between no delay and an
// artificial delay of D ms (default 5) before every bucket's all-reduce. Rank 0 prints the
// median step time of each, the buckets per step, the total delay per step and the share of
// it that the step time absorbed (0 = fully overlapped, 1 = serialised after the backward
// pass). --nproc 1 times the same steps in one process (no DDP): the scaling baseline.
#include <adnn/adnn.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

using namespace adnn;
namespace dist = adnn::distributed;

namespace {

double arg(int argc, char** argv, const char* name, double def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return parse_double(argv[i + 1], name);
  return def;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int launch(int argc, char** argv, int nproc) {
  char tmpl[] = "/tmp/adnn-bench-ddp-XXXXXX";
  if (!::mkdtemp(tmpl)) return 1;
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::string> base;
  for (char** e = environ; *e; ++e) base.push_back(*e);
  base.push_back("WORLD_SIZE=" + std::to_string(nproc));
  base.push_back(std::string("ADNN_RENDEZVOUS_DIR_EXACT=") + tmpl);
  if (!std::getenv("OMP_NUM_THREADS")) base.push_back("OMP_NUM_THREADS=" + std::to_string(std::max(1u, hw / nproc)));
  std::vector<pid_t> pids;
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env = base;
    env.push_back("RANK=" + std::to_string(r));
    std::vector<char*> envp;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0) return 1;
    pids.push_back(pid);
  }
  int rc = 0;
  for (pid_t p : pids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  const int nproc = int(arg(argc, argv, "--nproc", 2));
  if (nproc > 1 && !dist::launched_by_env()) return launch(argc, argv, nproc);
  try {
    const int64_t B = int64_t(arg(argc, argv, "--batch", 16));
    const int steps = int(arg(argc, argv, "--steps", 6)), reps = int(arg(argc, argv, "--reps", 3));
    const double delay_ms = arg(argc, argv, "--delay-ms", 5);
    std::shared_ptr<dist::ProcessGroup> pg;
    if (dist::launched_by_env()) pg = dist::init_process_group(dist::options_from_env());
    const int rank = pg ? pg->rank() : 0, world = pg ? pg->world_size() : 1;

    nn::FerConfig c = nn::fer_config("adnn_fer_nano");
    c.dropout = c.head_dropout = c.drop_path = 0;
    manual_seed(1);
    auto model = std::make_shared<nn::AdnnFer>(c);
    model->train();
    std::unique_ptr<dist::DistributedDataParallel> ddp;
    if (pg) {
      dist::DdpOptions o;
      // as adnn-fer train: about 8 buckets for a small model, at most 25 MiB
      const double model_mb = double(model->num_parameters()) * 4.0 / (1024.0 * 1024.0);
      o.bucket_cap_mb = arg(argc, argv, "--bucket-mb", std::clamp(model_mb / 8.0, 1.0, 25.0));
      ddp = std::make_unique<dist::DistributedDataParallel>(model, pg, o);
    }
    optim::AdamW opt(model->parameters(), {.lr = 1e-4});
    manual_seed(100 + uint64_t(rank));
    Tensor x = randn({B, c.image_size, c.image_size, c.in_chans}), y = randint(0, c.num_classes, {B});
    auto step = [&] {
      opt.zero_grad();
      Tensor loss = cross_entropy(model->forward(x), y);
      loss.backward();  // DDP: the gradients are averaged when this returns
      opt.step();
    };
    for (int i = 0; i < 2; ++i) step();  // warm-up (allocations, AdamW state)
    if (ddp && std::getenv("BENCH_DDP_ORDER")) {  // (every rank: DDP reduces) when each bucket's last gradient arrives
      auto named = model->named_parameters();
      std::vector<double> ready(named.size(), -1);
      std::vector<std::pair<Tensor, int>> hooks;
      auto t0 = std::chrono::steady_clock::now();
      for (size_t i = 0; i < named.size(); ++i)
        hooks.push_back({named[i].second, named[i].second.register_post_accumulate_grad_hook([&, i](const Tensor&) {
                           ready[i] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
                         })});
      opt.zero_grad();
      Tensor loss = cross_entropy(model->forward(x), y);
      t0 = std::chrono::steady_clock::now();
      loss.backward();
      const double end = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      auto bk = ddp->buckets();
      for (size_t b = 0; b < bk.size(); ++b) {
        double last = 0;
        std::string who;
        for (int64_t i : bk[b].params)
          if (ready[size_t(i)] > last) {
            last = ready[size_t(i)];
            who = named[size_t(i)].first;
          }
        if (rank == 0) std::printf("bucket %zu: %zu tensors, %.2f MB, complete at %.1f ms of a %.1f ms backward (last: %s)\n", b,
                    bk[b].params.size(), double(bk[b].bytes) / 1048576.0, last, end, who.c_str());
      }
      for (auto& [t, id] : hooks) t.remove_hook(id);
    }
    if (pg) pg->barrier();

    std::vector<double> t_plain, t_delay;
    for (int rep = 0; rep < reps; ++rep)
      for (int with_delay = 0; with_delay < 2; ++with_delay) {
        if (pg) pg->set_all_reduce_delay(std::chrono::microseconds(with_delay ? int64_t(delay_ms * 1000) : 0));
        if (!pg && with_delay) continue;
        for (int s = 0; s < steps; ++s) {
          if (pg) pg->barrier();  // the ranks start each step together
          const auto t0 = std::chrono::steady_clock::now();
          step();
          (with_delay ? t_delay : t_plain).push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
      }
    if (rank == 0) {
      const double plain = median(t_plain);
      std::printf("bench_ddp: %d process%s x %s OpenMP threads, batch %lld per process (%lld per step), adnn_fer_nano "
                  "48x48, %d x %d steps\n",
                  world, world > 1 ? "es" : "", std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS") : "default",
                  (long long)B, (long long)(B * world), reps, steps);
      std::printf("step (no delay): median %.1f ms, %.1f img/s\n", plain, double(B * world) / plain * 1000);
      if (ddp) {
        const double delayed = median(t_delay);
        const int64_t nb = int64_t(ddp->buckets().size());
        const double total = double(nb) * delay_ms;
        std::printf("buckets per step: %lld; early launches (before the backward pass ended): %lld of %lld\n",
                    (long long)nb, (long long)ddp->early_launches(), (long long)(nb * ddp->reductions()));
        std::printf("step with %.1f ms delay per all-reduce: median %.1f ms; growth %.1f ms of %.1f ms total delay "
                    "(%.2f of it; goal < 0.5)\n",
                    delay_ms, delayed, delayed - plain, total, (delayed - plain) / total);
      }
    }
    dist::destroy_process_group();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_ddp: %s\n", e.what());
    return 1;
  }
  return 0;
}
