// The Gloo process group: Debian's libgloo (TCP transport), the library behind PyTorch's CPU
// collectives. Rendezvous through Gloo's FileStore (or RedisStore), a full mesh of TCP pairs,
// then ring all-reduce, broadcast, all-gather and barrier on host memory; a tensor on the
// `cuda` device is staged through a host copy. Collectives run on the group's worker thread.
#include "distributed/common.hpp"

#include <adnn/config.hpp>
#include <adnn/autograd/autograd.hpp>
#include <adnn/core/dtype.hpp>
#include <adnn/core/parse.hpp>
#include <adnn/ops/ops.hpp>

#include <cstring>
#include <filesystem>
#include <signal.h>
#include <unistd.h>

#if ADNN_WITH_GLOO
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#if __has_include(<hiredis/hiredis.h>)  // Debian's libhiredis-dev: Gloo's Redis store
#define ADNN_GLOO_REDIS 1
#define HIREDIS_NESTED_INCLUDE 1
#include <gloo/rendezvous/redis_store.h>
#else
#define ADNN_GLOO_REDIS 0
#endif
#include <gloo/transport/tcp/device.h>
#endif

namespace adnn::distributed {

#if ADNN_WITH_GLOO
bool has_gloo() { return true; }

namespace {

using detail::Heartbeat;
using detail::Worker;

// c = a (op) b over n elements of T (Gloo's reduce-function signature).
template <class T, class Acc>
void reduce_typed(ReduceOp op, void* c, const void* a, const void* b, size_t n) {
  T* out = static_cast<T*>(c);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) {
    const Acc u = Acc(x[i]), v = Acc(y[i]);
    Acc r;
    switch (op) {
      case ReduceOp::max: r = u > v ? u : v; break;
      case ReduceOp::min: r = u < v ? u : v; break;
      default: r = u + v; break;
    }
    out[i] = T(r);
  }
}

gloo::AllreduceOptions::Func reduce_function(DType d, ReduceOp op) {
  switch (d) {
    case DType::f32: return [op](void* c, const void* a, const void* b, size_t n) { reduce_typed<float, float>(op, c, a, b, n); };
    case DType::f64: return [op](void* c, const void* a, const void* b, size_t n) { reduce_typed<double, double>(op, c, a, b, n); };
    case DType::f16: return [op](void* c, const void* a, const void* b, size_t n) { reduce_typed<half, float>(op, c, a, b, n); };
    case DType::bf16: return [op](void* c, const void* a, const void* b, size_t n) { reduce_typed<bfloat16, float>(op, c, a, b, n); };
    case DType::i32: return [op](void* c, const void* a, const void* b, size_t n) { reduce_typed<int32_t, int64_t>(op, c, a, b, n); };
    case DType::i64: return [op](void* c, const void* a, const void* b, size_t n) { reduce_typed<int64_t, int64_t>(op, c, a, b, n); };
    case DType::u8: return [op](void* c, const void* a, const void* b, size_t n) { reduce_typed<uint8_t, uint32_t>(op, c, a, b, n); };
    case DType::boolean:  // sum and max: or; min: and
      return [op](void* c, const void* a, const void* b, size_t n) {
        auto* out = static_cast<uint8_t*>(c);
        auto* x = static_cast<const uint8_t*>(a);
        auto* y = static_cast<const uint8_t*>(b);
        for (size_t i = 0; i < n; ++i) out[i] = op == ReduceOp::min ? (x[i] && y[i]) : (x[i] || y[i]);
      };
  }
  ADNN_FAIL("all_reduce: dtype ", dtype_name(d), " is not supported");
}

// Gloo's options are templated on the element type only for its size.
template <size_t N> struct Bytes { unsigned char b[N]; };

template <class Opts>
void set_output(Opts& o, void* p, size_t n, size_t esize) {
  switch (esize) {
    case 1: o.template setOutput<Bytes<1>>(static_cast<Bytes<1>*>(p), n); break;
    case 2: o.template setOutput<Bytes<2>>(static_cast<Bytes<2>*>(p), n); break;
    case 4: o.template setOutput<Bytes<4>>(static_cast<Bytes<4>*>(p), n); break;
    default: o.template setOutput<Bytes<8>>(static_cast<Bytes<8>*>(p), n); break;
  }
}
template <class Opts>
void set_input(Opts& o, void* p, size_t n, size_t esize) {
  switch (esize) {
    case 1: o.template setInput<Bytes<1>>(static_cast<Bytes<1>*>(p), n); break;
    case 2: o.template setInput<Bytes<2>>(static_cast<Bytes<2>*>(p), n); break;
    case 4: o.template setInput<Bytes<4>>(static_cast<Bytes<4>*>(p), n); break;
    default: o.template setInput<Bytes<8>>(static_cast<Bytes<8>*>(p), n); break;
  }
}

// mean = sum / world, in place on host memory
void divide(void* p, DType d, size_t n, int world) {
  const double s = 1.0 / double(world);
  switch (d) {
    case DType::f32: for (size_t i = 0; i < n; ++i) static_cast<float*>(p)[i] = float(static_cast<float*>(p)[i] * s); break;
    case DType::f64: for (size_t i = 0; i < n; ++i) static_cast<double*>(p)[i] *= s; break;
    case DType::f16: for (size_t i = 0; i < n; ++i) static_cast<half*>(p)[i] = half(float(static_cast<half*>(p)[i]) * float(s)); break;
    case DType::bf16:
      for (size_t i = 0; i < n; ++i) static_cast<bfloat16*>(p)[i] = bfloat16(float(static_cast<bfloat16*>(p)[i]) * float(s));
      break;
    default: ADNN_FAIL("all_reduce: ReduceOp::mean needs a floating dtype, got ", dtype_name(d));
  }
}

class GlooGroup;

// A collective queued on the worker. A tensor on another device than the CPU was copied to
// `host` when queued; wait() copies the result back.
class GlooWork final : public Work {
 public:
  GlooWork(std::shared_ptr<Worker::Job> job, Tensor target, Tensor host)
      : job_(std::move(job)), target_(std::move(target)), host_(std::move(host)) {}
  void wait() override {
    job_->wait();
    if (host_.defined() && !copied_) {
      NoGradGuard ng;
      target_.copy_(host_.to(target_.device()));
      copied_ = true;
    }
  }
  bool completed() override {
    std::lock_guard<std::mutex> lock(job_->mu);
    return job_->done;
  }

 private:
  std::shared_ptr<Worker::Job> job_;
  Tensor target_, host_;
  bool copied_ = false;
};

class GlooGroup final : public ProcessGroup {
 public:
  explicit GlooGroup(const InitOptions& o) {
    ADNN_CHECK(o.world_size >= 1 && o.rank >= 0 && o.rank < o.world_size, "distributed: rank ", o.rank,
               " is outside world size ", o.world_size);
    ADNN_CHECK(!o.rendezvous_dir.empty() || !o.redis.empty(),
               "distributed: no rendezvous directory and no Redis server given");
    rank_ = o.rank;
    world_size_ = o.world_size;
    timeout_ = o.timeout;
    // Gloo writes to its sockets without MSG_NOSIGNAL: a write to a peer that died would end
    // this process with SIGPIPE (status 141) instead of the error naming the peer. Ignored,
    // unless the program installed a handler of its own.
    struct sigaction current {};
    if (::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
    if (!o.rendezvous_dir.empty()) {
      hb_ = std::make_unique<Heartbeat>(o.rendezvous_dir, rank_, world_size_);
      hb_->wait_for_peers(timeout_);
    }
    try {
      gloo::transport::tcp::attr attr;
      if (!o.iface.empty()) attr.iface = o.iface;
      else if (!o.hostname.empty()) attr.hostname = o.hostname;
      else {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        attr.hostname = host;
      }
      auto device = gloo::transport::tcp::CreateDevice(attr);
      std::unique_ptr<gloo::rendezvous::Store> store;
      // this launch's keys: a name no earlier launch used (the ranks' start times)
      const std::string gen = hb_ ? hb_->generation() : std::string("0");
      if (!o.redis.empty()) {
        const size_t colon = o.redis.rfind(':');
        ADNN_CHECK(colon != std::string::npos, "distributed: ADNN_REDIS must be host:port, got '", o.redis, "'");
#if ADNN_GLOO_REDIS
        redis_ = std::make_unique<gloo::rendezvous::RedisStore>(
            o.redis.substr(0, colon), int(parse_int64(o.redis.substr(colon + 1), "the Redis port")));
        store = std::make_unique<gloo::rendezvous::PrefixStore>("adnn/" + o.run_id + "/" + gen, *redis_);
#else
        ADNN_FAIL("distributed: ADNN_REDIS is set but this adnn was built without hiredis (apt install libhiredis-dev "
                  "and configure again)");
#endif
      } else {
        store_dir_ = o.rendezvous_dir + "/store-" + gen;
        std::filesystem::create_directories(store_dir_);
        store = std::make_unique<gloo::rendezvous::FileStore>(store_dir_);
      }
      auto ctx = std::make_shared<gloo::rendezvous::Context>(rank_, world_size_);
      ctx->setTimeout(timeout_);
      ctx->connectFullMesh(*store, device);
      ctx_ = ctx;
    } catch (const adnn::Error&) {
      throw;
    } catch (const std::exception& e) {
      if (std::string(e.what()).find("already set") != std::string::npos)
        ADNN_FAIL("distributed (gloo): rank ", rank_, ": the Redis store already holds this launch's keys (run '",
                  o.run_id, "'): give each launch its own ADNN_RUN_ID, or FLUSHDB; gloo: ", e.what());
      ADNN_FAIL("distributed (gloo): rank ", rank_, " of ", world_size_, ": connecting to the peers failed: ",
                hb_ ? hb_->diagnose(0) : std::string("no heartbeat directory"), "; gloo: ", e.what());
    }
    worker_ = std::make_unique<Worker>();
    // every rank has read the store's keys once the first barrier passes: rank 0 clears them,
    // so that a later run in the same directory cannot read this run's addresses
    barrier();
    if (rank_ == 0 && !store_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(store_dir_, ec);
    }
  }

  ~GlooGroup() override {
    worker_.reset();  // finishes what was queued
    ctx_.reset();
  }

  Backend backend() const override { return Backend::gloo; }
  std::string diagnose_peers() const override { return hb_ ? hb_->diagnose(-1) : std::string(); }

  std::shared_ptr<Work> all_reduce_async(const Tensor& t, ReduceOp op) override {
    detail::check_collective_tensor("all_reduce", t);
    if (op == ReduceOp::mean)
      ADNN_CHECK(is_floating(t.dtype()), "all_reduce: ReduceOp::mean needs a floating dtype, got ", t.desc());
    Tensor host = t.device().is_cpu() ? Tensor() : t.to(kCPU);
    Tensor buf = host.defined() ? host : t;
    const int64_t n = t.numel();
    const DType d = t.dtype();
    const auto delay = delay_;
    const auto to = timeout_;
    auto job = submit("all_reduce", [this, buf, n, d, op, delay, to](uint32_t tag) {
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      if (n == 0 || world_size_ == 1) {
        if (op == ReduceOp::mean && n > 0) divide(buf.data_ptr(), d, size_t(n), world_size_);
        return;
      }
      gloo::AllreduceOptions opts(ctx_);
      set_output(opts, buf.data_ptr(), size_t(n), detail::element_size_for("all_reduce", d));
      opts.setReduceFunction(reduce_function(d, op));
      opts.setTag(tag);
      opts.setTimeout(to);
      gloo::allreduce(opts);
      if (op == ReduceOp::mean) divide(buf.data_ptr(), d, size_t(n), world_size_);
    });
    return std::make_shared<GlooWork>(job, t, host);
  }

  std::shared_ptr<Work> broadcast_async(const Tensor& t, int root) override {
    detail::check_collective_tensor("broadcast", t);
    ADNN_CHECK(root >= 0 && root < world_size_, "broadcast: root ", root, " is outside world size ", world_size_);
    Tensor host = t.device().is_cpu() ? Tensor() : t.to(kCPU);
    Tensor buf = host.defined() ? host : t;
    const int64_t n = t.numel();
    const size_t es = detail::element_size_for("broadcast", t.dtype());
    const auto to = timeout_;
    auto job = submit("broadcast", [this, buf, n, es, root, to](uint32_t tag) {
      if (n == 0 || world_size_ == 1) return;
      gloo::BroadcastOptions opts(ctx_);
      set_output(opts, buf.data_ptr(), size_t(n), es);
      opts.setRoot(root);
      opts.setTag(tag);
      opts.setTimeout(to);
      gloo::broadcast(opts);
    });
    return std::make_shared<GlooWork>(job, t, host);
  }

  Tensor all_gather(const Tensor& t) override {
    detail::check_collective_tensor("all_gather", t);
    Tensor src = t.device().is_cpu() ? t : t.to(kCPU);
    Shape shape = t.sizes();
    shape.insert(shape.begin(), world_size_);
    Tensor out = empty(shape, TensorOptions(t.dtype(), kCPU));  // (world, ...)
    const int64_t n = t.numel();
    const size_t es = detail::element_size_for("all_gather", t.dtype());
    const auto to = timeout_;
    auto job = submit("all_gather", [this, src, out, n, es, to](uint32_t tag) {
      if (n == 0) return;
      if (world_size_ == 1) {
        std::memcpy(out.data_ptr(), src.data_ptr(), size_t(n) * es);
        return;
      }
      gloo::AllgatherOptions opts(ctx_);
      set_input(opts, src.data_ptr(), size_t(n), es);
      set_output(opts, out.data_ptr(), size_t(n) * size_t(world_size_), es);
      opts.setTag(tag);
      opts.setTimeout(to);
      gloo::allgather(opts);
    });
    job->wait();
    return t.device().is_cpu() ? out : out.to(t.device());
  }

  void barrier() override {
    const auto to = timeout_;
    auto job = submit("barrier", [this, to](uint32_t tag) {
      if (world_size_ == 1) return;
      gloo::BarrierOptions opts(ctx_);
      opts.setTag(tag);
      opts.setTimeout(to);
      gloo::barrier(opts);
    });
    job->wait();
  }

 private:
  // Queues `body(tag)` as collective number seq_; a failure becomes an adnn::Error naming the
  // collective, this rank and the peer at fault, and fails every later collective of the group.
  std::shared_ptr<Worker::Job> submit(const char* what, std::function<void(uint32_t)> body) {
    const int64_t seq = ++seq_;
    {
      std::lock_guard<std::mutex> lock(fail_mu_);
      ADNN_CHECK(failed_.empty(), "distributed (gloo): rank ", rank_, ": ", what, " #", seq,
                 " refused: the group failed earlier: ", failed_);
    }
    const double timeout_s = std::chrono::duration<double>(timeout_).count();
    return worker_->submit([this, what, seq, timeout_s, body = std::move(body)] {
      {
        std::lock_guard<std::mutex> lock(fail_mu_);
        if (!failed_.empty()) ADNN_FAIL("distributed (gloo): rank ", rank_, ": ", what, " #", seq, " not run: ", failed_);
      }
      if (hb_) hb_->set_position(seq, what);
      try {
        body(uint32_t(seq & 0x7fffffff));
      } catch (const adnn::Error&) {
        throw;
      } catch (const std::exception& e) {
        std::string msg = adnn::detail::cat("distributed (gloo): rank ", rank_, " of ", world_size_, ": ", what, " #", seq,
                                      " failed (timeout ", timeout_s, " s): ",
                                      hb_ ? hb_->diagnose(seq) : std::string("no heartbeat directory to name the peer"),
                                      "; gloo: ", e.what());
        {
          std::lock_guard<std::mutex> lock(fail_mu_);
          failed_ = msg;
        }
        ADNN_FAIL(msg);
      }
    });
  }

  std::unique_ptr<Heartbeat> hb_;
#if ADNN_GLOO_REDIS
  std::unique_ptr<gloo::rendezvous::Store> redis_;  // behind the PrefixStore
#endif
  std::shared_ptr<gloo::Context> ctx_;
  std::unique_ptr<Worker> worker_;
  std::string store_dir_;
  std::mutex fail_mu_;
  std::string failed_;
};

}  // namespace

std::shared_ptr<ProcessGroup> new_gloo_group(const InitOptions& o) { return std::make_shared<GlooGroup>(o); }

#else  // !ADNN_WITH_GLOO

bool has_gloo() { return false; }
std::shared_ptr<ProcessGroup> new_gloo_group(const InitOptions&) {
  ADNN_FAIL("distributed: this adnn was built without Gloo (install Debian's libgloo-dev and configure again)");
}

#endif

}  // namespace adnn::distributed
