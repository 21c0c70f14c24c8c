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
    ADNN_NCCL_CHECK(ncclCommInitRank(&comm_, world_size_, id, rank_));
    ADNN_CUDART_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  ~NcclGroup() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Backend backend() const override { return Backend::nccl; }

  std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) override {
    check("all_reduce", t);
    ADNN_CHECK(op != ReduceOp::mean || is_floating(t.dtype()), "all_reduce: ReduceOp::mean needs a floating dtype, got ",
               t.desc());
    return enqueue(t, [&](cudaStream_t s) {
      ADNN_NCCL_CHECK(ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()),
                                    nccl_op(op, t.dtype()), comm_, s));
    });
  }

  std::shared_ptr<Work> broadcast_async(const Tensor& t, int root) override {
    check("broadcast", t);
    ADNN_CHECK(root >= 0 && root < world_size_, "broadcast: root ", root, " is outside world size ", world_size_);
    return enqueue(t, [&](cudaStream_t s) {
      ADNN_NCCL_CHECK(ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()), root, comm_, s));
    });
  }

  Tensor all_gather(const Tensor& t) override {
    check("all_gather", t);
    Shape shape = t.sizes();
    shape.insert(shape.begin(), world_size_);
    Tensor out = empty(shape, TensorOptions(t.dtype(), t.device()));  // (world, ...)
    auto w = enqueue(out, [&](cudaStream_t s) {
      ADNN_NCCL_CHECK(
          ncclAllGather(t.data_ptr(), out.data_ptr(), size_t(t.numel()), nccl_type(t.dtype()), comm_, s));
    });
    host_wait("all_gather");
    w->wait();
    return out;
  }

  void barrier() override {
    Tensor one = ones({1}, TensorOptions(DType::f32, Device(DeviceType::cuda, 0)));
    enqueue(one, [&](cudaStream_t s) {
      ADNN_NCCL_CHECK(ncclAllReduce(one.data_ptr(), one.data_ptr(), 1, ncclFloat32, ncclSum, comm_, s));
    });
    host_wait("barrier");
  }

 private:
  void check(const char* op, const Tensor& t) {
    detail::check_collective_tensor(op, t);
    ADNN_CHECK(t.device().is_cuda(), op, ": the NCCL group takes cuda tensors, got ", t.desc(),
               " (use a Gloo group for cpu tensors)");
  }

  // The collective on the group's stream, after the current stream's work so far.
  template <class F>
  std::shared_ptr<Work> enqueue(const Tensor& t, F&& issue) {
    ++seq_;
    cudaEvent_t ready, done;
    ADNN_CUDART_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    ADNN_CUDART_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    ADNN_CUDART_CHECK(cudaEventRecord(ready, as_cuda(cuda::current_stream())));
    ADNN_CUDART_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    cudaEventDestroy(ready);
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
    if (t.numel() > 0) issue(stream_);
    ADNN_CUDART_CHECK(cudaEventRecord(done, stream_));
    return std::make_shared<NcclWork>(t, done);
  }

  // The host waits for the group's stream, at most the timeout; then the communicator is
  // aborted and the error names the peer the heartbeats point at.
  void host_wait(const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      const cudaError_t q = cudaStreamQuery(stream_);
      if (q == cudaSuccess) break;
      ADNN_CHECK(q == cudaErrorNotReady, "distributed (nccl): rank ", rank_, ": ", what, " #", seq_, ": ",
                 cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess || std::chrono::steady_clock::now() >= deadline) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        ADNN_FAIL("distributed (nccl): rank ", rank_, " of ", world_size_, ": ", what, " #", seq_,
                  async != ncclSuccess ? std::string(" failed: ") + ncclGetErrorString(async)
                                       : adnn::detail::cat(" did not finish within ",
                                                           std::chrono::duration<double>(timeout_).count(), " s"),
                  " (communicator aborted)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  std::shared_ptr<ProcessGroup> bootstrap_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
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
