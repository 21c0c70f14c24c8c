// The backend-independent part of adnn::distributed: options from the environment, the
// default group, heartbeats, the worker thread, the differentiable all-reduce and
// SyncBatchNorm (docs/distributed.md).
#include "distributed/common.hpp"

#include <adnn/autograd/autograd.hpp>
#include <adnn/core/parse.hpp>
#include <adnn/nn/layers.hpp>
#include <adnn/ops/ops.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace adnn::distributed {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const char* backend_name(Backend b) { return b == Backend::nccl ? "nccl" : "gloo"; }

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

// The first of several variables that is set (torchrun's, then Open MPI's, then Slurm's).
const char* first_env(std::initializer_list<const char*> names, std::string* which = nullptr) {
  for (const char* n : names)
    if (const char* v = env(n)) {
      if (which) *which = n;
      return v;
    }
  return nullptr;
}

int env_int(std::initializer_list<const char*> names, int def, int lo, int hi) {
  std::string which;
  const char* v = first_env(names, &which);
  if (!v) return def;
  const int64_t x = parse_int64(v, "environment variable " + which);
  ADNN_CHECK(x >= lo && x <= hi, "environment variable ", which, "=", v, ": expected ", lo, "..", hi);
  return int(x);
}

std::string sanitize(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '_';
  return s;
}

}  // namespace

bool launched_by_env() {
  return first_env({"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}) &&
         first_env({"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"});
}

InitOptions options_from_env(Backend backend) {
  InitOptions o;
  o.backend = backend;
  ADNN_CHECK(launched_by_env(), "distributed: RANK and WORLD_SIZE are not set (start the processes with "
             "`adnn-fer train --nproc N`, torchrun, mpirun or srun; docs/distributed.md)");
  o.world_size = env_int({"WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}, 1, 1, 1 << 20);
  o.rank = env_int({"RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID"}, 0, 0, o.world_size - 1);
  o.local_rank = env_int({"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"}, 0, 0, 1 << 20);
  if (const char* t = env("ADNN_DIST_TIMEOUT")) {
    const double s = parse_double(t, "environment variable ADNN_DIST_TIMEOUT", NonFinite::refuse, 0.1);
    o.timeout = std::chrono::milliseconds(int64_t(s * 1000));
  }
  if (const char* r = env("ADNN_REDIS")) o.redis = r;
  if (const char* i = env("GLOO_SOCKET_IFNAME")) o.iface = i;
  const char* addr = env("MASTER_ADDR");
  const char* port = env("MASTER_PORT");
  if (const char* h = env("ADNN_GLOO_HOSTNAME")) {
    o.hostname = h;
  } else if (!addr || std::string(addr) == "localhost" || std::string(addr).rfind("127.", 0) == 0) {
    o.hostname = "127.0.0.1";  // every rank on this host
  }
  const char* run = first_env({"ADNN_RUN_ID", "TORCHELASTIC_RUN_ID", "SLURM_JOB_ID"});
  o.run_id = sanitize(addr ? addr : "local") + "-" + sanitize(port ? port : "0") + (run ? "-" + sanitize(run) : std::string());
  if (const char* d = env("ADNN_RENDEZVOUS_DIR_EXACT")) {  // set by `adnn-fer train --nproc`
    o.rendezvous_dir = d;
  } else {
    const char* base = env("ADNN_RENDEZVOUS_DIR");
    if (o.world_size > 1)
      ADNN_CHECK(addr && port, "distributed: MASTER_ADDR and MASTER_PORT must be set for WORLD_SIZE=", o.world_size,
                 " (they name the run; docs/distributed.md)");
    // with Redis and no directory given, the hosts may share no file system: no heartbeats
    if (base || o.redis.empty()) o.rendezvous_dir = std::string(base ? base : "/tmp") + "/adnn-rdzv-" + o.run_id;
  }
  return o;
}

// ---------------------------------------------------------------- the default group
namespace {
std::shared_ptr<ProcessGroup>& default_slot() {
  static std::shared_ptr<ProcessGroup> g;
  return g;
}
}  // namespace

std::shared_ptr<ProcessGroup> init_process_group(const InitOptions& o) {
  ADNN_CHECK(!default_slot(), "init_process_group: the default group already exists (destroy_process_group first)");
  default_slot() = o.backend == Backend::nccl ? new_nccl_group(o) : new_gloo_group(o);
  return default_slot();
}
std::shared_ptr<ProcessGroup> default_group() { return default_slot(); }
bool is_initialized() { return default_slot() != nullptr; }
void destroy_process_group() { default_slot().reset(); }
int get_rank() { return default_slot() ? default_slot()->rank() : 0; }
int get_world_size() { return default_slot() ? default_slot()->world_size() : 1; }

// ---------------------------------------------------------------- heartbeats
namespace detail {

Heartbeat::Heartbeat(std::string dir, int rank, int world_size) : dir_(std::move(dir)), rank_(rank), world_(world_size) {
  start_ = std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count()) +
           "." + std::to_string(::getpid());
  std::error_code ec;
  fs::create_directories(dir_, ec);
  ADNN_CHECK(!ec && fs::is_directory(dir_), "distributed: cannot create the rendezvous directory ", dir_, ": ",
             ec.message());
  write();
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_; })) {
      lock.unlock();
      write();
      lock.lock();
    }
  });
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // a clean exit: the file goes, so a later run in this directory does not see a stale rank
  std::error_code ec;
  fs::remove(path(rank_), ec);
}

std::string Heartbeat::path(int r) const { return dir_ + "/hb." + std::to_string(r); }

void Heartbeat::set_position(int64_t seq, const char* what) {
  std::lock_guard<std::mutex> lock(mu_);
  position_ = std::to_string(seq) + " " + what;
}

void Heartbeat::write() {
  std::string text;
  {
    std::lock_guard<std::mutex> lock(mu_);
    text = position_ + " " + start_ + "\n";  // "<collective> <name> <start>"

  }
  const std::string tmp = path(rank_) + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "w")) {
    std::fputs(text.c_str(), f);
    std::fclose(f);
    std::rename(tmp.c_str(), path(rank_).c_str());  // a fresh mtime each time
  }
}

namespace {
// Seconds since the file last changed, or -1 when it does not exist.
double age_s(const std::string& p) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) return -1;
  timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  return double(now.tv_sec - st.st_mtim.tv_sec) + 1e-9 * double(now.tv_nsec - st.st_mtim.tv_nsec);
}
std::string read_first_line(const std::string& p) {
  std::ifstream in(p);
  std::string line;
  std::getline(in, line);
  return line;
}
}  // namespace

std::string Heartbeat::generation() const {
  std::string latest;
  for (int r = 0; r < world_; ++r) {
    std::istringstream in(read_first_line(path(r)));
    std::string seq, what, start;
    in >> seq >> what >> start;
    if (start.size() > latest.size() || (start.size() == latest.size() && start > latest)) latest = start;
  }
  return latest;
}

void Heartbeat::wait_for_peers(std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    std::vector<int> missing, stale;
    for (int r = 0; r < world_; ++r) {
      const double a = age_s(path(r));
      if (a < 0) missing.push_back(r);
      else if (a > 5.0) stale.push_back(r);
    }
    if (missing.empty() && stale.empty()) return;
    if (Clock::now() >= deadline) {
      std::ostringstream m;
      m << "distributed: rank " << rank_ << " of " << world_ << ": rendezvous timed out after "
        << std::chrono::duration<double>(timeout).count() << " s in " << dir_ << ":";
      if (!missing.empty()) {
        m << " rank" << (missing.size() > 1 ? "s" : "");
        for (int r : missing) m << " " << r;
        m << " never arrived";
      }
      if (!stale.empty()) {
        m << (missing.empty() ? "" : ";") << " the heartbeat of rank" << (stale.size() > 1 ? "s" : "");
        for (int r : stale) m << " " << r;
        m << " is an earlier run's (a run that did not end cleanly left it: remove the directory or set ADNN_RUN_ID)";
      }
      m << " (check that every rank was started with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE)";
      ADNN_FAIL(m.str());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string Heartbeat::diagnose(int64_t seq) const {
  // a peer killed a moment ago still has a fresh file: give it time to go stale
  std::vector<double> ages(static_cast<size_t>(world_));
  for (int attempt = 0; attempt < 5; ++attempt) {
    bool any_stale = false;
    for (int r = 0; r < world_; ++r) {
      ages[size_t(r)] = r == rank_ ? 0 : age_s(path(r));
      if (r != rank_ && (ages[size_t(r)] < 0 || ages[size_t(r)] > 1.6)) any_stale = true;
    }
    if (any_stale) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  std::ostringstream m;
  bool named = false;
  for (int r = 0; r < world_; ++r) {
    if (r == rank_) continue;
    const double a = ages[size_t(r)];
    if (a < 0 || a > 1.6) {
      m << (named ? "; " : "") << "peer rank " << r
        << (a < 0 ? " has exited (its heartbeat file is gone)" : " stopped responding (no heartbeat for ")
        << (a < 0 ? "" : std::to_string(int(a * 10) / 10.0).substr(0, 4) + " s: it died or hangs)");
      named = true;
      continue;
    }
    // alive: is it at another collective?
    std::istringstream pos(read_first_line(path(r)));
    int64_t peer_seq = -1;
    std::string what;
    pos >> peer_seq >> what;
    if (seq >= 0 && peer_seq >= 0 && peer_seq != seq) {
      m << (named ? "; " : "") << "peer rank " << r << " is at collective #" << peer_seq << " (" << what
        << ") while this rank is at #" << seq << " (the ranks issued different collectives)";
      named = true;
    }
  }
  if (!named) m << "every peer's heartbeat is alive (a network problem, or a peer slower than the timeout)";
  return m.str();
}

// ---------------------------------------------------------------- the worker thread
void Worker::Job::wait() {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [this] { return done; });
  if (error) std::rethrow_exception(error);
}

Worker::Worker() {
  thread_ = std::thread([this] {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        job = queue_.front();
        queue_.pop_front();
      }
      try {
        job->fn();
      } catch (...) {
        job->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(job->mu);
        job->done = true;
        job->fn = nullptr;
      }
      job->cv.notify_all();
    }
  });
}

Worker::~Worker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<Worker::Job> Worker::submit(std::function<void()> fn) {
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(job);
  }
  cv_.notify_all();
  return job;
}

size_t element_size_for(const char* op, DType d) {
  switch (d) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::i64: return 8;
    case DType::f16: case DType::bf16: return 2;
    case DType::u8: case DType::boolean: return 1;
    default: ADNN_FAIL(op, ": dtype ", dtype_name(d), " is not supported by the collectives");
  }
}

void check_collective_tensor(const char* op, const Tensor& t) {
  ADNN_CHECK(t.defined(), op, ": undefined tensor");
  ADNN_CHECK(t.is_contiguous(), op, ": the tensor must be contiguous (got ", t.desc(), "; call .contiguous())");
  element_size_for(op, t.dtype());
}

}  // namespace detail

// ---------------------------------------------------------------- differentiable all-reduce
Tensor all_reduce_sum(const Tensor& x, ProcessGroup& pg) {
  Tensor y;
  {
    NoGradGuard ng;
    y = x.contiguous().clone();
    pg.all_reduce(y, ReduceOp::sum);
  }
  ProcessGroup* g = &pg;
  autograd::record("all_reduce_sum", {x}, y, [g](const Tensor& grad, const std::vector<bool>&) -> std::vector<Tensor> {
    Tensor s = grad.contiguous().clone();
    g->all_reduce(s, ReduceOp::sum);
    return {s};
  });
  return y;
}

void convert_sync_batchnorm(nn::Module& m, std::shared_ptr<ProcessGroup> pg) {
  ADNN_CHECK(pg, "convert_sync_batchnorm: no process group (call init_process_group first)");
  for (auto& [name, mod] : m.named_modules())
    if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(mod)) {
      std::weak_ptr<ProcessGroup> weak = pg;
      bn->sync_stats = [weak](const Tensor& stats) {
        auto g = weak.lock();
        ADNN_CHECK(g, "SyncBatchNorm: its process group was destroyed");
        return all_reduce_sum(stats, *g);
      };
    }
}

}  // namespace adnn::distributed
