#pragma once
// What the Gloo and NCCL groups share: the heartbeat files that name a dead or lagging peer,
// the rendezvous wait, and the worker thread that runs a group's collectives in order.
#include <adnn/core/error.hpp>
#include <adnn/distributed/distributed.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace adnn::distributed::detail {

// Each rank rewrites DIR/hb.RANK every 0.5 s ("<collective number> <name>"), atomically
// (write + rename), from its own thread. A peer whose file stopped changing has died or
// hangs; the collective numbers tell which rank is behind.
class Heartbeat {
 public:
  Heartbeat(std::string dir, int rank, int world_size);
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  // The collective this rank is in (or last finished).
  void set_position(int64_t seq, const char* what);
  // Waits until every rank's file exists and is fresh; an adnn::Error naming the ranks that
  // did not arrive within `timeout`, or whose file is an earlier run's.
  void wait_for_peers(std::chrono::milliseconds timeout) const;
  // After a failed collective: which peers stopped (no heartbeat for a while) or are at
  // another collective. Waits up to ~2 s for a peer that just died to go stale.
  std::string diagnose(int64_t seq) const;
  const std::string& dir() const { return dir_; }
  // After wait_for_peers: the same string on every rank and new for every launch (the latest
  // start time among the ranks' files), naming this launch's store keys.
  std::string generation() const;

 private:
  void write();
  std::string path(int r) const;
  std::string dir_;
  int rank_, world_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string position_ = "0 start";
  std::string start_;  // this process's start time (ns), constant
  std::thread thread_;
};

// The group's collectives, one at a time, in the order they were queued.
class Worker {
 public:
  Worker();
  ~Worker();
  // Runs `fn` on the worker thread; the returned state completes when it has run.
  struct Job {
    std::function<void()> fn;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::exception_ptr error;
    void wait();
  };
  std::shared_ptr<Job> submit(std::function<void()> fn);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

// The element size of the dtypes collectives accept, or an adnn::Error naming the op.
size_t element_size_for(const char* op, DType d);
// Contiguity and dtype checks shared by the backends.
void check_collective_tensor(const char* op, const Tensor& t);

}  // namespace adnn::distributed::detail
