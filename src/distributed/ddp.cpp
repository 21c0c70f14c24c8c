// DistributedDataParallel: bucketed gradient all-reduce overlapped with the backward pass
// (include/adnn/distributed/distributed.hpp, docs/distributed.md).
#include <adnn/autograd/autograd.hpp>
#include <adnn/distributed/distributed.hpp>
#include <adnn/nn/module.hpp>
#include <adnn/ops/ops.hpp>

#include <algorithm>

namespace adnn::distributed {

struct DistributedDataParallel::Bucket {
  std::vector<int64_t> params;   // indices into params_, in the order they are packed
  std::vector<int64_t> offsets;  // element offset of each in `flat`
  int64_t numel = 0;
  Tensor flat;          // (numel) the bucket's gradients, packed
  int64_t pending = 0;  // parameters whose gradient is not ready yet in this backward pass
  bool launched = false;
  std::shared_ptr<Work> work;
};

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<nn::Module> module, std::shared_ptr<ProcessGroup> pg,
                                                 DdpOptions o)
    : module_(std::move(module)), pg_(std::move(pg)), o_(o) {
  ADNN_CHECK(module_, "DistributedDataParallel: no module");
  ADNN_CHECK(pg_, "DistributedDataParallel: no process group (call init_process_group first)");
  ADNN_CHECK(o_.bucket_cap_mb > 0 && o_.first_bucket_cap_mb > 0, "DistributedDataParallel: bucket sizes must be > 0 "
             "(got bucket_cap_mb ", o_.bucket_cap_mb, ", first_bucket_cap_mb ", o_.first_bucket_cap_mb, ")");
  for (auto& p : module_->parameters())
    if (p.requires_grad()) params_.push_back(p);
  if (o_.broadcast_parameters) broadcast_parameters();

  // buckets in reverse registration order (about the order the backward pass produces the
  // gradients) until the first backward pass has shown the real order
  std::vector<int64_t> order;
  for (int64_t i = int64_t(params_.size()) - 1; i >= 0; --i) order.push_back(i);
  build_buckets(order);
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t idx = int64_t(i);
    hooks_.push_back({params_[i], params_[i].register_post_accumulate_grad_hook(
                                      [this, idx](const Tensor&) { on_grad_ready(idx); })});
  }
}

void DistributedDataParallel::build_buckets(const std::vector<int64_t>& order) {
  buckets_.clear();
  bucket_of_.assign(params_.size(), -1);
  Bucket* cur = nullptr;
  int64_t cur_bytes = 0;
  for (int64_t i : order) {  // a bucket holds one dtype and device; the first is smaller
    const Tensor& p = params_[size_t(i)];
    const int64_t bytes = p.numel() * int64_t(dtype_size(p.dtype()));
    const double cap = (buckets_.size() == 1 ? o_.first_bucket_cap_mb : o_.bucket_cap_mb) * 1024 * 1024;
    const bool fits = cur && params_[size_t(cur->params.front())].dtype() == p.dtype() &&
                      params_[size_t(cur->params.front())].device() == p.device() && double(cur_bytes + bytes) <= cap;
    if (!fits) {
      buckets_.push_back(std::make_unique<Bucket>());
      cur = buckets_.back().get();
      cur_bytes = 0;
    }
    bucket_of_[size_t(i)] = int64_t(buckets_.size()) - 1;
    cur->params.push_back(i);
    cur->offsets.push_back(cur->numel);
    cur->numel += p.numel();
    cur_bytes += bytes;
  }
  for (auto& b : buckets_) {
    const Tensor& p0 = params_[size_t(b->params.front())];
    b->flat = zeros({b->numel}, TensorOptions(p0.dtype(), p0.device()));
  }
}

DistributedDataParallel::~DistributedDataParallel() {
  for (auto& [t, id] : hooks_) t.remove_hook(id);
  for (auto& b : buckets_)  // nothing in flight may outlive its buffer
    if (b->work) try {
        b->work->wait();
      } catch (...) {
      }
}

void DistributedDataParallel::broadcast_parameters() {
  NoGradGuard ng;
  for (auto& p : module_->parameters()) pg_->broadcast(p, 0);
  broadcast_buffers();
}

void DistributedDataParallel::broadcast_buffers() {
  NoGradGuard ng;
  for (auto& [name, b] : module_->named_buffers())
    if (b.defined() && b.numel() > 0) pg_->broadcast(b, 0);
}

std::vector<DistributedDataParallel::BucketInfo> DistributedDataParallel::buckets() const {
  std::vector<BucketInfo> out;
  for (auto& b : buckets_) {
    BucketInfo info{b->params, 0};
    for (int64_t i : b->params) info.bytes += params_[size_t(i)].numel() * int64_t(dtype_size(params_[size_t(i)].dtype()));
    out.push_back(std::move(info));
  }
  return out;
}

void DistributedDataParallel::on_grad_ready(int64_t param) {
  if (!sync_) return;  // no_sync(): the gradient only accumulates here
  if (!rebuilt_) ready_order_.push_back(param);
  const uint64_t pass = autograd::backward_pass_id();
  if (!in_backward_ || pass != pass_) {  // the first gradient of this backward pass
    // (a pass that ended with an exception never ran finish(): what it launched is waited
    // for and dropped, so every rank's collectives stay paired and no buffer is in use)
    for (auto& b : buckets_)
      if (b->work) {
        try {
          b->work->wait();
        } catch (...) {
        }
        b->work.reset();
      }
    in_backward_ = true;
    pass_ = pass;
    for (auto& b : buckets_) {
      b->pending = int64_t(b->params.size());
      b->launched = false;
    }
    next_launch_ = 0;
    autograd::queue_callback([this] { finish(); });
  }
  Bucket& b = *buckets_[size_t(bucket_of_[size_t(param)])];
  if (b.pending > 0) --b.pending;
  launch_ready();
}

void DistributedDataParallel::launch_ready() {
  // in bucket order, so that every rank issues the same all-reduces in the same order
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->pending == 0) {
    launch(*buckets_[next_launch_]);
    ++early_launches_;
    ++next_launch_;
  }
}

void DistributedDataParallel::launch(Bucket& b) {
  NoGradGuard ng;
  for (size_t k = 0; k < b.params.size(); ++k) {
    const Tensor& p = params_[size_t(b.params[k])];
    Tensor dst = b.flat.narrow(0, b.offsets[k], p.numel());  // (numel of p)
    Tensor g = p.grad();
    if (g.defined()) dst.copy_(g.to(b.flat.dtype()).reshape({p.numel()}));
    else dst.zero_();  // no gradient on this rank: the others' average
  }
  b.work = pg_->all_reduce_async(b.flat, ReduceOp::sum);
  b.launched = true;
}

void DistributedDataParallel::finish() {
  in_backward_ = false;
  for (; next_launch_ < buckets_.size(); ++next_launch_) launch(*buckets_[next_launch_]);
  NoGradGuard ng;
  const double inv = 1.0 / double(pg_->world_size());
  for (auto& bp : buckets_) {
    Bucket& b = *bp;
    b.work->wait();
    b.work.reset();
    b.flat.mul_(inv);
    for (size_t k = 0; k < b.params.size(); ++k) {
      const Tensor& p = params_[size_t(b.params[k])];
      Tensor src = b.flat.narrow(0, b.offsets[k], p.numel()).view(p.sizes());
      Tensor g = p.grad();
      if (g.defined() && g.is_contiguous() && g.dtype() == src.dtype() && g.sizes() == src.sizes()) g.copy_(src);
      else p.set_grad(src.clone());
    }
  }
  ++reductions_;
  if (!rebuilt_) {
    // torch's bucket rebuild: after the first backward pass the buckets follow the order its
    // gradients arrived in (rank 0's, broadcast, so that every rank packs them alike), so a
    // bucket of gradients that are ready early is not held back behind one that is not
    rebuilt_ = true;
    std::vector<int64_t> order;
    std::vector<bool> seen(params_.size(), false);
    for (int64_t i : ready_order_)
      if (!seen[size_t(i)]) {
        seen[size_t(i)] = true;
        order.push_back(i);
      }
    for (int64_t i = int64_t(params_.size()) - 1; i >= 0; --i)
      if (!seen[size_t(i)]) order.push_back(i);  // no gradient in that pass: last
    ready_order_.clear();
    Tensor t = from_vector(order, {int64_t(order.size())});  // (P) i64
    pg_->broadcast(t, 0);
    const int64_t* o = t.data_ptr<int64_t>();
    build_buckets(std::vector<int64_t>(o, o + order.size()));
  }
}

}  // namespace adnn::distributed
