#pragma once
// Data-parallel training: torch.distributed's model on existing engines (docs/distributed.md).
//
// A ProcessGroup is the set of processes (ranks 0..world_size-1) of one run, one per device.
// Its collectives run on Gloo (Debian's libgloo, TCP transport; the library PyTorch uses for
// CPU collectives) for `cpu` tensors and on NCCL (the CUDA toolkit's) for `cuda` tensors.
// Ranks meet through a store: Gloo's FileStore in a directory every rank sees (the local /tmp
// for processes on one host, a shared file system for several), or Gloo's RedisStore.
//
// Every collective of a group runs on the group's one worker thread, in the order the ranks
// issue them (all ranks must issue the same collectives in the same order, as in torch);
// `*_async` returns at once with a Work to wait on, so gradients travel while the backward
// pass goes on. Every blocking call ends within the group's timeout: a peer that died or
// stopped answering is an adnn::Error naming that peer's rank (each rank keeps a heartbeat
// file in the rendezvous directory, read when a collective fails), never a hang.
#include <adnn/core/tensor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace adnn::nn {
class Module;
}

namespace adnn::distributed {

enum class ReduceOp { sum, mean, max, min };
enum class Backend { gloo, nccl };
const char* backend_name(Backend b);

// Where and how the ranks of one run meet.
struct InitOptions {
  Backend backend = Backend::gloo;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // the process's index on its host (its GPU for NCCL)
  // The rendezvous directory (Gloo's FileStore, and the heartbeat files): visible to every
  // rank (local for one host; NFS or similar for several). A launch's keys go to a
  // subdirectory of its own, so a directory left by a killed run does not confuse the next.
  // May be empty with a Redis store (then no heartbeats: a failure cannot name the peer).
  std::string rendezvous_dir;
  // "host:port" of a Redis server: Gloo's RedisStore instead of the FileStore (the heartbeat
  // files still go to rendezvous_dir when one is given).
  std::string redis;
  // Names this run's keys in the Redis store ("<addr>-<port>-<job id>").
  std::string run_id = "adnn";
  // The address this rank listens on for its peers (Gloo's TCP device): a hostname or IP;
  // empty: 127.0.0.1 when the master address is local, else this host's name.
  std::string hostname;
  std::string iface;  // or a network interface name (GLOO_SOCKET_IFNAME)
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

// The options torchrun, mpirun or srun give through the environment: RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT (or OMPI_COMM_WORLD_* / SLURM_PROCID, SLURM_NTASKS,
// SLURM_LOCALID), and adnn's own ADNN_RENDEZVOUS_DIR (default: /tmp, except with ADNN_REDIS)
// with a directory named after MASTER_ADDR, MASTER_PORT and TORCHELASTIC_RUN_ID /
// SLURM_JOB_ID / ADNN_RUN_ID,
// ADNN_REDIS, ADNN_DIST_TIMEOUT (seconds), GLOO_SOCKET_IFNAME. An adnn::Error names a variable
// that is missing or malformed.
InitOptions options_from_env(Backend backend = Backend::gloo);
// Whether the environment describes a launched rank (RANK and WORLD_SIZE, or their MPI /
// Slurm equivalents, are set).
bool launched_by_env();

// A collective in flight. wait() blocks until it is done (for NCCL: makes the current stream
// wait for it, without blocking the host) and rethrows its error.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool completed() = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  virtual Backend backend() const = 0;
  std::chrono::milliseconds timeout() const { return timeout_; }

  // In place on a contiguous tensor, every rank the same shape and dtype. mean divides the
  // sum by world_size (floating dtypes only).
  virtual std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  // Every rank's `t` becomes root's.
  virtual std::shared_ptr<Work> broadcast_async(const Tensor& t, int root = 0) = 0;
  // (world_size, ...t's shape): rank r's tensor at index r.
  virtual Tensor all_gather(const Tensor& t) = 0;
  virtual void barrier() = 0;

  void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::sum) { all_reduce_async(t, op)->wait(); }
  void broadcast(const Tensor& t, int root = 0) { broadcast_async(t, root)->wait(); }

  // For tests and the overlap benchmark: every all-reduce waits `d` first on the worker
  // thread (an artificial network latency).
  void set_all_reduce_delay(std::chrono::microseconds d) { delay_ = d; }
  // Collectives issued so far (all kinds).
  int64_t collectives() const { return seq_; }
  // Which peers look dead (their heartbeat stopped): a phrase for error messages, "" when the
  // group keeps no heartbeats.
  virtual std::string diagnose_peers() const { return ""; }
  // The timeout of the collectives issued from now on (e.g. longer for a wait known to be long).
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

 protected:
  int rank_ = 0, world_size_ = 1;
  std::chrono::milliseconds timeout_{};
  std::chrono::microseconds delay_{0};
  int64_t seq_ = 0;
};

// The Gloo group (cpu tensors; a cuda tensor is staged through host memory).
std::shared_ptr<ProcessGroup> new_gloo_group(const InitOptions& o);
// The NCCL group (cuda tensors, on a real GPU: LOCAL_RANK's device). Its unique id travels
// over a Gloo group made from the same options. An adnn::Error where adnn was built without
// NCCL or runs the emulated device.
std::shared_ptr<ProcessGroup> new_nccl_group(const InitOptions& o);
bool has_gloo();  // whether this build has the Gloo backend
bool has_nccl();  // whether it has the NCCL backend

// The process-wide default group, as torch.distributed.init_process_group.
std::shared_ptr<ProcessGroup> init_process_group(const InitOptions& o);
std::shared_ptr<ProcessGroup> default_group();  // null before init_process_group
bool is_initialized();
void destroy_process_group();
int get_rank();        // 0 without a group
int get_world_size();  // 1 without a group

// y = the sum of x over the ranks, differentiable: the gradient of x is the sum of y's
// gradients over the ranks (the building block of SyncBatchNorm).
Tensor all_reduce_sum(const Tensor& x, ProcessGroup& pg);

// Every BatchNorm2d of `m` normalises with the batch statistics of all ranks (torch's
// SyncBatchNorm.convert_sync_batchnorm); without it each process uses its own batch.
void convert_sync_batchnorm(nn::Module& m, std::shared_ptr<ProcessGroup> pg);

struct DdpOptions {
  double bucket_cap_mb = 25.0;      // gradient bytes per bucket (torch's bucket_cap_mb)
  double first_bucket_cap_mb = 1.0;  // the first bucket (the last layers') is smaller, so that
                                     // communication starts early in the backward pass
  bool broadcast_parameters = true;  // rank 0's parameters and buffers at construction
};

// torch.nn.parallel.DistributedDataParallel: the module's trainable parameters are packed
// into buckets, first in reverse registration order, then (after the first backward pass,
// rank 0's order broadcast to all) in the order their gradients became ready; a hook on each parameter's gradient accumulation marks it ready, and a bucket
// whose gradients are all ready is copied into one flat tensor and all-reduced
// asynchronously while the backward pass continues (buckets launch in index order, the
// same on every rank). When the backward pass ends, the remaining buckets are launched,
// all are waited for, and each .grad becomes the mean over the ranks: after
// loss.backward() the gradients are synchronised, as in torch. Inside no_sync() gradients
// only accumulate locally; the first backward after it reduces the accumulated sum.
// A parameter that received no gradient on a rank contributes zeros (torch's
// find_unused_parameters). Batch norm statistics stay per process unless
// convert_sync_batchnorm is applied.
class DistributedDataParallel {
 public:
  DistributedDataParallel(std::shared_ptr<nn::Module> module, std::shared_ptr<ProcessGroup> pg = default_group(),
                          DdpOptions o = {});
  ~DistributedDataParallel();
  DistributedDataParallel(const DistributedDataParallel&) = delete;
  DistributedDataParallel& operator=(const DistributedDataParallel&) = delete;

  nn::Module& module() { return *module_; }
  ProcessGroup& process_group() { return *pg_; }
  // Rank 0's buffers (batch-norm running statistics) to every rank.
  void broadcast_buffers();
  // Rank 0's parameters and buffers to every rank.
  void broadcast_parameters();

  class NoSync {
   public:
    explicit NoSync(DistributedDataParallel& d) : d_(d), prev_(d.sync_) { d.sync_ = false; }
    ~NoSync() { d_.sync_ = prev_; }
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    DistributedDataParallel& d_;
    bool prev_;
  };
  NoSync no_sync() { return NoSync(*this); }

  // The buckets: parameter indices (into module().parameters()) and bytes.
  struct BucketInfo {
    std::vector<int64_t> params;
    int64_t bytes = 0;
  };
  std::vector<BucketInfo> buckets() const;
  // Backward passes whose gradients were reduced, and buckets launched before the backward
  // pass ended (the overlap), since construction.
  int64_t reductions() const { return reductions_; }
  int64_t early_launches() const { return early_launches_; }

 private:
  struct Bucket;
  void on_grad_ready(int64_t param);
  void launch_ready();
  void launch(Bucket& b);
  void finish();
  void build_buckets(const std::vector<int64_t>& order);

  std::shared_ptr<nn::Module> module_;
  std::shared_ptr<ProcessGroup> pg_;
  DdpOptions o_;
  std::vector<Tensor> params_;            // trainable, registration order
  std::vector<int64_t> bucket_of_;       // per parameter
  std::vector<int64_t> ready_order_;     // the first backward pass: parameters in gradient order
  bool rebuilt_ = false;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<std::pair<Tensor, int>> hooks_;
  size_t next_launch_ = 0;
  bool sync_ = true;
  bool in_backward_ = false;
  uint64_t pass_ = 0;  // autograd::backward_pass_id() of the pass in progress
  int64_t reductions_ = 0, early_launches_ = 0;
};

}  // namespace adnn::distributed
