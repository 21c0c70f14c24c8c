// The NCCL process group (real GPUs only): one communicator per process on LOCAL_RANK's
// device, bootstrapped by a Gloo group (rank 0's ncclUniqueId is broadcast over it, and its
// heartbeats name a dead peer). Collectives run on the group's own stream, ordered after the
// work already queued on the caller's current stream (an event), so the backward pass keeps
// queueing kernels while gradients travel; Work::wait makes the current stream wait for the
// collective without blocking the host (torch's ProcessGroupNCCL). The host blocks only in
// all_gather and barrier, polling with the group's timeout, and aborts the communicator when
// it runs out.
#include "distributed/common.hpp"

#include <adnn/config.hpp>

#if ADNN_WITH_NCCL
#include <adnn/cuda/runtime.hpp>
#include <adnn/ops/ops.hpp>

#include <cuda_runtime.h>
#include <nccl.h>

#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#endif

namespace adnn::distributed {

#if ADNN_WITH_NCCL
bool has_nccl() { return true; }

namespace {

#define ADNN_NCCL_CHECK(call)                                                                                    \
  do {                                                                                                           \
    ncclResult_t r_ = (call);                                                                                    \
    ADNN_CHECK(r_ == ncclSuccess, "distributed (nccl): ", #call, " failed at ", __FILE__, ":", __LINE__, ": ", \
               ncclGetErrorString(r_));                                                                          \
  } while (0)
#define ADNN_CUDART_CHECK(call)                                                                                  \
  do {                                                                                                           \
    cudaError_t e_ = (call);                                                                                     \
    ADNN_CHECK(e_ == cudaSuccess, "distributed (nccl): ", #call, " failed at ", __FILE__, ":", __LINE__, ": ", \
               cudaGetErrorString(e_));                                                                          \
  } while (0)

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::f16: return ncclFloat16;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: case DType::boolean: return ncclUint8;
  }
  ADNN_FAIL("distributed (nccl): dtype ", dtype_name(d), " is not supported");
}

ncclRedOp_t nccl_op(ReduceOp op, DType d) {
  if (d == DType::boolean) return op == ReduceOp::min ? ncclMin : ncclMax;  // or / and
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::mean: return ncclAvg;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  return ncclSum;
}

cudaStream_t as_cuda(cuda::Stream s) {
  return s.handle ? static_cast<cudaStream_t>(s.handle) : cudaStreamPerThread;
}

class NcclWork final : public Work {
 public:
  NcclWork(Tensor t, cudaEvent_t done) : t_(std::move(t)), done_(done) {}
  ~NcclWork() override { cudaEventDestroy(done_); }
  void wait() override {
    ADNN_CUDART_CHECK(cudaStreamWaitEvent(as_cuda(cuda::current_stream()), done_, 0));
  }
  bool completed() override { return cudaEventQuery(done_) == cudaSuccess; }

 private:
  Tensor t_;  // kept alive until the collective is done
  cudaEvent_t done_;
};

class NcclGroup final : public ProcessGroup {
 public:
  explicit NcclGroup(const InitOptions& o) {
    int devices = 0;
    ADNN_CUDART_CHECK(cudaGetDeviceCount(&devices));
    ADNN_CHECK(devices > 0, "distributed (nccl): no CUDA device");
    ADNN_CUDART_CHECK(cudaSetDevice(o.local_rank % devices));
    bootstrap_ = new_gloo_group(o);
    rank_ = o.rank;
    world_size_ = o.world_size;
    timeout_ = o.timeout;
    ncclUniqueId id{};
    if (rank_ == 0) ADNN_NCCL_CHECK(ncclGetUniqueId(&id));
    Tensor idt = empty({int64_t(sizeof id)}, TensorOptions(DType::u8, kCPU));
    std::memcpy(idt.data_ptr(), &id, sizeof id);
    bootstrap_->broadcast(idt, 0);
    std::memcpy(&id, idt.data_ptr(), sizeof id);
    // non-blocking initialisation, polled against the timeout: a peer that dies now is an
    // error, not a hang
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    settle("ncclCommInitRankConfig", ncclCommInitRankConfig(&comm_, world_size_, id, rank_, &config));
    ADNN_CUDART_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclGroup() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
    if (comm_) {
      // everything done and no error: finalise (flushes nothing); else abort, which never
      // waits for a peer
      const bool idle = cudaStreamQuery(stream_) == cudaSuccess && failed().empty() && std::uncaught_exceptions() == 0;
      bool clean = false;
      if (idle) {
        ncclResult_t r = ncclCommFinalize(comm_);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (r == ncclInProgress && std::chrono::steady_clock::now() < deadline) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          ncclCommGetAsyncError(comm_, &r);
        }
        clean = r == ncclSuccess;
      }
      if (clean) ncclCommDestroy(comm_);
      else ncclCommAbort(comm_);
    }
    for (auto& p : pending_) cudaEventDestroy(p.done);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Backend backend() const override { return Backend::nccl; }
  std::string diagnose_peers() const override { return bootstrap_->diagnose_peers(); }

  // cpu tensors (a flag, a checkpoint's RNG words) take the bootstrap Gloo group; each group
  // keeps the ranks' order of its own collectives
  std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) override {
    if (!t.device().is_cuda()) return bootstrap_->all_reduce_async(t, op);
    check("all_reduce", t);
    ADNN_CHECK(op != ReduceOp::mean || is_floating(t.dtype()), "all_reduce: ReduceOp::mean needs a floating dtype, got ",
               t.desc());
    return enqueue("all_reduce", t, [&](cudaStream_t s) {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()), nccl_op(op, t.dtype()),
                           comm_, s);
    });
  }

  std::shared_ptr<Work> broadcast_async(const Tensor& t, int root) override {
    if (!t.device().is_cuda()) return bootstrap_->broadcast_async(t, root);
    check("broadcast", t);
    ADNN_CHECK(root >= 0 && root < world_size_, "broadcast: root ", root, " is outside world size ", world_size_);
    return enqueue("broadcast", t, [&](cudaStream_t s) {
      return ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()), root, comm_, s);
    });
  }

  Tensor all_gather(const Tensor& t) override {
    if (!t.device().is_cuda()) return bootstrap_->all_gather(t);
    check("all_gather", t);
    Shape shape = t.sizes();
    shape.insert(shape.begin(), world_size_);
    Tensor out = empty(shape, TensorOptions(t.dtype(), t.device()));  // (world, ...)
    auto w = enqueue("all_gather", out, [&](cudaStream_t s) {
      return ncclAllGather(t.data_ptr(), out.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()), comm_, s);
    });
    host_wait("all_gather");
    w->wait();
    return out;
  }

  void barrier() override {
    Tensor one = ones({1}, TensorOptions(DType::f32, Device(DeviceType::cuda, 0)));
    enqueue("barrier", one, [&](cudaStream_t s) {
      return ncclAllReduce(one.data_ptr(), one.data_ptr(), 1, ncclFloat32, ncclSum, comm_, s);
    });
    host_wait("barrier");
  }

 private:
  void check(const char* op, const Tensor& t) {
    detail::check_collective_tensor(op, t);
    const std::string f = failed();
    ADNN_CHECK(f.empty(), "distributed (nccl): rank ", rank_, ": ", op, " refused: the group failed earlier: ", f);
  }

  std::string failed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }

  // A call of the non-blocking communicator: waits (against the timeout) while it is in
  // progress; an error or the timeout aborts the communicator.
  void settle(const char* what, ncclResult_t r) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (r == ncclInProgress) {
      if (std::chrono::steady_clock::now() >= deadline) {
        if (comm_) ncclCommAbort(comm_);
        comm_ = nullptr;
        ADNN_FAIL("distributed (nccl): rank ", rank_, " of ", world_size_, ": ", what, " did not finish within ",
                  std::chrono::duration<double>(timeout_).count(), " s: ", bootstrap_->diagnose_peers());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      ncclCommGetAsyncError(comm_, &r);
    }
    ADNN_CHECK(r == ncclSuccess, "distributed (nccl): rank ", rank_, ": ", what, " failed: ", ncclGetErrorString(r));
  }

  // The collective on the group's stream, after the current stream's work so far; the
  // watchdog follows it to its end.
  template <class F>
  std::shared_ptr<Work> enqueue(const char* what, const Tensor& t, F&& issue) {
    ++seq_;
    cudaEvent_t ready, done, watched;
    ADNN_CUDART_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    ADNN_CUDART_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    ADNN_CUDART_CHECK(cudaEventCreateWithFlags(&watched, cudaEventDisableTiming));
    ADNN_CUDART_CHECK(cudaEventRecord(ready, as_cuda(cuda::current_stream())));
    ADNN_CUDART_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    cudaEventDestroy(ready);
    // the caching allocator must not hand t's memory out again before the collective is done
    if (t.numel() > 0) cuda::record_stream(t.data_ptr(), cuda::Stream{stream_});
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (t.numel() > 0) settle(what, issue(stream_));
    ADNN_CUDART_CHECK(cudaEventRecord(done, stream_));
    ADNN_CUDART_CHECK(cudaEventRecord(watched, stream_));
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back({watched, std::chrono::steady_clock::now() + timeout_, seq_, what});
    }
    cv_.notify_all();
    return std::make_shared<NcclWork>(t, done);
  }

  // The watchdog (torch's NCCL watchdog): a collective that fails or outlives the timeout
  // while nobody waits for it on the host would hang the rank at its next synchronisation;
  // instead the communicator is aborted and the process ends with the error, naming the
  // peers whose heartbeat stopped.
  void watch() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      while (!pending_.empty()) {
        Pending& p = pending_.front();
        const cudaError_t q = cudaEventQuery(p.done);
        ncclResult_t async = ncclSuccess;
        if (comm_) ncclCommGetAsyncError(comm_, &async);
        if (q == cudaSuccess) {
          cudaEventDestroy(p.done);
          pending_.pop_front();
          continue;
        }
        const bool late = std::chrono::steady_clock::now() >= p.deadline;
        if (q != cudaErrorNotReady || (async != ncclSuccess && async != ncclInProgress) || late) {
          failed_ = adnn::detail::cat("rank ", rank_, " of ", world_size_, ": ", p.what, " #", p.seq,
                                      late ? adnn::detail::cat(" did not finish within ",
                                                               std::chrono::duration<double>(timeout_).count(), " s")
                                           : std::string(" failed: ") + (q != cudaErrorNotReady ? cudaGetErrorString(q)
                                                                                                : ncclGetErrorString(async)));
          lock.unlock();
          const std::string peers = bootstrap_->diagnose_peers();
          if (comm_) ncclCommAbort(comm_);
          comm_ = nullptr;
          std::fprintf(stderr, "distributed (nccl): %s: %s; communicator aborted, exiting\n", failed_.c_str(),
                       peers.c_str());
          std::fflush(stderr);
          std::_Exit(1);
        }
        break;  // the oldest is still running: the later ones are too
      }
    }
  }

  // The host waits for the group's stream, at most the timeout (the watchdog ends the process
  // when a collective fails or hangs).
  void host_wait(const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_ + std::chrono::seconds(5);
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) return;
      ADNN_CHECK(q == cudaErrorNotReady, "distributed (nccl): rank ", rank_, ": ", what, " #", seq_, ": ",
                 cudaGetErrorString(q));
      ADNN_CHECK(std::chrono::steady_clock::now() < deadline, "distributed (nccl): rank ", rank_, ": ", what, " #",
                 seq_, " did not finish within the timeout: ", bootstrap_->diagnose_peers());
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  struct Pending {
    cudaEvent_t done;
    std::chrono::steady_clock::time_point deadline;
    int64_t seq;
    const char* what;
  };
  std::shared_ptr<ProcessGroup> bootstrap_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_;
  bool stop_ = false;
  std::string failed_;
  std::thread watchdog_;
};

}  // namespace

std::shared_ptr<ProcessGroup> new_nccl_group(const InitOptions& o) { return std::make_shared<NcclGroup>(o); }

#else  // !ADNN_WITH_NCCL

bool has_nccl() { return false; }
std::shared_ptr<ProcessGroup> new_nccl_group(const InitOptions&) {
  ADNN_FAIL("distributed: this adnn was built without NCCL (it needs the real CUDA build, ADNN_CUDA=ON with NCCL "
            "from the CUDA toolkit; the emulated `cuda` device uses the Gloo backend)");
}

#endif

}  // namespace adnn::distributed
