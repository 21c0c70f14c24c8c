// adnn-fer train --nproc N: a local launcher, as torchrun --standalone --nproc-per-node N.
// Each rank is this program again, with the rank's variables in its environment; the ranks
// meet in a fresh rendezvous directory (removed at the end) and talk over loopback TCP.
#include <signal.h>
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

extern char** environ;

namespace adnn_fer {

namespace {
std::vector<pid_t>* g_children = nullptr;
// Ctrl-C or a kill of the launcher reaches every rank.
void forward_signal(int sig) {
  if (g_children)
    for (pid_t p : *g_children)
      if (p > 0) ::kill(p, sig);
}
}  // namespace

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
                             "ADNN_RENDEZVOUS_DIR_EXACT=", "OMP_NUM_THREADS=", "ADNN_DIST_TIMEOUT="})
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
  if (a.has("dist-timeout")) base_env.push_back("ADNN_DIST_TIMEOUT=" + a.get("dist-timeout"));

  std::vector<std::string> args{"adnn-fer"};
  for (const std::string& w : a.words) args.push_back(w);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  std::fprintf(stderr, "adnn-fer train --nproc %d: starting %d ranks (Gloo over loopback, %s OpenMP threads each, "
               "rendezvous %s)\n", nproc, nproc, threads.c_str(), dir.c_str());
  std::vector<pid_t> pids(size_t(nproc), -1);
  g_children = &pids;
  struct sigaction sa {}, old_int{}, old_term{};
  sa.sa_handler = forward_signal;
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  for (int r = 0; r < nproc; ++r) {
    std::vector<std::string> env = base_env;
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    std::vector<char*> envp;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data());
    if (rc != 0) {
      forward_signal(SIGTERM);
      ADNN_FAIL("train --nproc: cannot start rank ", r, ": ", std::strerror(rc));
    }
    pids[size_t(r)] = pid;
  }
  // wait; the first rank that fails (other than the --stop-after status 3) ends the others
  // after a grace period in which they report the failure themselves
  int status_out = 0, failed_rank = -1, left = nproc;
  std::chrono::steady_clock::time_point kill_at{};
  while (left > 0) {
    int st = 0;
    const pid_t p = ::waitpid(-1, &st, failed_rank >= 0 ? WNOHANG : 0);
    if (p == 0) {  // still running after a failure
      if (std::chrono::steady_clock::now() >= kill_at) {
        for (pid_t q : pids)
          if (q > 0) ::kill(q, SIGKILL);
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
      for (pid_t q : pids)
        if (q > 0) ::kill(q, SIGTERM);
    } else if (failed_rank < 0 && code != 0) {
      status_out = code;
    }
  }
  g_children = nullptr;
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return status_out;
}

}  // namespace adnn_fer
