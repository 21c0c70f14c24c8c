// adnn-fer train --nproc N: a local launcher, as torchrun --standalone --nproc-per-node N.
// Each rank is this program again, with the rank's variables in its environment; the ranks
// meet in a fresh rendezvous directory (removed at the end) and talk over loopback TCP.
#include <signal.h>
#include <sys/prctl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "fer.hpp"

#include <adnn/cuda/runtime.hpp>

extern char** environ;

namespace adnn_fer {

namespace {
volatile sig_atomic_t g_group = 0;   // the ranks' process group (0: none yet)
volatile sig_atomic_t g_signal = 0;  // a signal the launcher received
// Ctrl-C, a hang-up or a kill of the launcher reaches every rank.
void forward_signal(int sig) {
  g_signal = sig;
  if (g_group > 0) ::killpg(pid_t(g_group), sig);
}
}  // namespace

void die_with_launcher() {
  const char* launcher = std::getenv("ADNN_LAUNCHER_PID");
  if (!launcher) return;
  // a rank of `--nproc` ends with its launcher, even one killed by SIGKILL
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (std::to_string(::getppid()) != launcher) std::_Exit(1);  // it died before the prctl
}

int launch_local_ranks(const Args& a, int nproc) {
  char tmpl[] = "/tmp/adnn-rdzv-XXXXXX";
  ADNN_CHECK(::mkdtemp(tmpl), "train --nproc: cannot create a rendezvous directory in /tmp: ", std::strerror(errno));
  const std::string dir = tmpl;
  // OpenMP threads: the cores shared between the ranks, unless the user chose
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::getenv("OMP_NUM_THREADS") ? std::getenv("OMP_NUM_THREADS")
                                                              : std::to_string(std::max(1u, hw / unsigned(nproc)));
  std::vector<std::string> base_env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    for (const char* drop : {"RANK=", "WORLD_SIZE=", "LOCAL_RANK=", "LOCAL_WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT=",
                             "ADNN_RENDEZVOUS_DIR_EXACT=", "OMP_NUM_THREADS=", "ADNN_DIST_TIMEOUT=", "ADNN_LAUNCHER_PID="})
      if (kv.rfind(drop, 0) == 0) goto skip;
    base_env.push_back(kv);
  skip:;
  }
  base_env.push_back("WORLD_SIZE=" + std::to_string(nproc));
  base_env.push_back("LOCAL_WORLD_SIZE=" + std::to_string(nproc));
  base_env.push_back("MASTER_ADDR=127.0.0.1");
  base_env.push_back("MASTER_PORT=0");
  base_env.push_back("ADNN_RENDEZVOUS_DIR_EXACT=" + dir);
  base_env.push_back("OMP_NUM_THREADS=" + threads);
  base_env.push_back("ADNN_LAUNCHER_PID=" + std::to_string(::getpid()));
  // one GPU per rank (the rank's device 0) when there is one for each, unless the user chose
  const bool own_gpus = std::getenv("CUDA_VISIBLE_DEVICES") == nullptr && !adnn::cuda_is_emulated() &&
                        adnn::cuda_device_count() >= nproc;
  if (a.has("dist-timeout")) base_env.push_back("ADNN_DIST_TIMEOUT=" + a.get("dist-timeout"));

  std::vector<std::string> args{"adnn-fer"};
  for (const std::string& w : a.words) args.push_back(w);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  std::fprintf(stderr, "adnn-fer train --nproc %d: starting %d ranks (Gloo over loopback, %s OpenMP threads each, "
               "rendezvous %s)\n", nproc, nproc, threads.c_str(), dir.c_str());
  std::vector<pid_t> pids(size_t(nproc), -1);
  struct sigaction sa {}, old_int{}, old_term{}, old_hup{};
  sa.sa_handler = forward_signal;
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  ::sigaction(SIGHUP, &sa, &old_hup);
  for (int r = 0; r < nproc && !g_signal; ++r) {
    std::vector<std::string> env = base_env;
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    if (own_gpus) env.push_back("CUDA_VISIBLE_DEVICES=" + std::to_string(r));
    std::vector<char*> envp;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    posix_spawnattr_t attr;  // the ranks share one process group, the signals' target
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, pid_t(g_group));
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, &attr, argv.data(), envp.data());
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      forward_signal(SIGTERM);
      ADNN_FAIL("train --nproc: cannot start rank ", r, ": ", std::strerror(rc));
    }
    if (g_group == 0) g_group = pid;
    pids[size_t(r)] = pid;
  }
  if (g_signal && g_group > 0) ::killpg(pid_t(g_group), g_signal);  // a signal during the starts
  // wait; the first rank that fails (other than the --stop-after status 3) ends the others
  // after a grace period in which they report the failure themselves
  int status_out = 0, failed_rank = -1, left = nproc;
  std::chrono::steady_clock::time_point kill_at{};
  while (left > 0) {
    int st = 0;
    const pid_t p = ::waitpid(-1, &st, failed_rank >= 0 ? WNOHANG : 0);
    if (p == 0) {  // still running after a failure
      if (std::chrono::steady_clock::now() >= kill_at) {
        if (g_group > 0) ::killpg(pid_t(g_group), SIGKILL);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (p < 0) {
      if (errno == EINTR) continue;
      break;
    }
    int r = 0;
    while (r < nproc && pids[size_t(r)] != p) ++r;
    if (r == nproc) continue;
    pids[size_t(r)] = -1;
    --left;
    const int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code != 0 && code != 3 && failed_rank < 0) {
      failed_rank = r;
      status_out = code;
      std::fprintf(stderr, "adnn-fer train --nproc: rank %d %s %d; stopping the other ranks\n", r,
                   WIFEXITED(st) ? "exited with status" : "was killed by signal", WIFEXITED(st) ? code : WTERMSIG(st));
      kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(15);
      if (g_group > 0) ::killpg(pid_t(g_group), SIGTERM);
    } else if (failed_rank < 0 && code != 0) {
      status_out = code;
    }
  }
  g_group = 0;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return status_out;
}

}  // namespace adnn_fer
