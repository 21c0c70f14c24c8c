// cat, stack, index_select, gather, embedding.
#include <adnn/cuda/runtime.hpp>

#include <map>
#include <mutex>
#include <string>

#include "ops/common.hpp"

namespace adnn {

using namespace ops_detail;

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  ADNN_CHECK(!xs.empty(), "cat: expected a non-empty list of tensors");
  const Tensor& f = xs[0];
  check_defined("cat", f, "tensor 0");
  int64_t d = detail::wrap_dim(dim, f.dim(), "cat");
  Shape out = f.sizes();
  out[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    check_defined("cat", t, "a tensor in the list");
    check_devices("cat", {&f, &t});
    check_same_dtype("cat", {&f, &t});
    ADNN_CHECK(t.dim() == f.dim(), "cat: tensor ", i, " is ", t.desc(), " but tensor 0 is ", f.desc());
    for (int64_t k = 0; k < f.dim(); ++k)
      ADNN_CHECK(k == d || t.size(k) == f.size(k), "cat: tensor ", i, " is ", t.desc(), " but tensor 0 is ",
                 f.desc(), " (sizes must match except in dim ", d, ")");
    out[d] += t.size(d);
  }
  Tensor y = new_like(f, out);
  std::vector<int64_t> offs;
  int64_t off = 0;
  for (auto& t : xs) {
    offs.push_back(off);
    backend::copy(t, y.detach().narrow(d, off, t.size(d)));
    off += t.size(d);
  }
  std::vector<int64_t> lens;
  for (auto& t : xs) lens.push_back(t.size(d));
  autograd::record("cat", xs, y, [=](const Tensor& g, const std::vector<bool>& need) {
    std::vector<Tensor> r(lens.size());
    for (size_t i = 0; i < lens.size(); ++i)
      if (need[i]) r[i] = g.narrow(d, offs[i], lens[i]);
    return r;
  });
  return y;
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  ADNN_CHECK(!xs.empty(), "stack: expected a non-empty list of tensors");
  check_defined("stack", xs[0], "tensor 0");
  int64_t d = detail::wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> u;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_defined("stack", xs[i], "a tensor in the list");
    ADNN_CHECK(xs[i].sizes() == xs[0].sizes(), "stack: tensor ", i, " is ", xs[i].desc(), " but tensor 0 is ",
               xs[0].desc());
    u.push_back(xs[i].unsqueeze(d));
  }
  return cat(u, d);
}

#if ADNN_WITH_CUDA_BACKEND
Tensor& ops_detail::watched_device_flag(const std::string& key, std::function<std::string(int64_t)> message) {
  // never destroyed, so that the flags stay reachable at exit (LeakSanitizer runs after static
  // destructors) and outlive every kernel that may still store into them
  static auto& flags = *new std::map<std::string, Tensor*>();
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  Tensor*& f = flags[key];
  if (!f) {
    ADNN_CHECK(!cuda::is_capturing(), key,
               " on cuda: the first call may not be inside a CUDA graph capture "
               "(run the captured work once before capturing, as a warm-up)");
    f = new Tensor(zeros({1}, TensorOptions(DType::i64, kCUDA)));  // zeroed now, not recorded
    cuda::watch_flag(f->data_ptr<int64_t>(), std::move(message));
  }
  return *f;
}
#endif

namespace {
// Every entry of `index` in [0, size): on the CPU now, naming the entry, the dim and x; on cuda
// without reading the index on the host (a device pointer there): a kernel sets a watched
// flag that the runtime raises at the next point the host waits (watched_device_flag), naming
// the op and the entry, and the data kernels skip the bad entry meanwhile.
void check_index(const char* op, const Tensor& index, int64_t size, int64_t dim, const Tensor& x) {
  ADNN_CHECK(index.dtype() == DType::i64, op, ": index must be i64, got ", index.desc());
  if (index.numel() == 0) return;
  ADNN_CHECK(size > 0, op, ": index ", index.desc(), " into dim ", dim, " of ", x.desc(), ", which is empty");
  Tensor ic = index.contiguous();
  if (ic.device().is_cuda()) {
#if ADNN_WITH_CUDA_BACKEND
    backend::index_check(ic, size, watched_device_flag(op, [name = std::string(op)](int64_t v) {
                           return detail::cat(name, ": index ", v,
                                              " is out of range (found on the device, raised at this wait)");
                         }));
#endif
    return;
  }
  Tensor bad = zeros({1}, DType::i64);
  backend::index_check(ic, size, bad);
  const int64_t v = bad.data_ptr<int64_t>()[0];
  ADNN_CHECK(v == 0, op, ": index ", v, " is out of range for dim ", dim, " of ", x.desc(), " (size ", size, ")");
}
}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("index_select", x, "input");
  check_defined("index_select", index, "index");
  check_devices("index_select", {&x, &index});
  ADNN_CHECK(index.dim() <= 1, "index_select: index must be 0-D or 1-D, got ", index.desc());
  int64_t d = detail::wrap_dim(dim, x.dim(), "index_select");
  int64_t D = x.dim() ? x.size(d) : 1;
  check_index("index_select", index, D, d, x);
  Tensor idx = index.contiguous();
  Tensor xc = x.detach().contiguous();
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  Shape out = x.sizes();
  if (x.dim()) out[d] = idx.numel();
  Tensor y = new_like(x, out);
  backend::index_select(xc, idx, y, outer, D, inner);
  Shape xs = x.sizes();
  // f16/bf16 copied natively; the backward's sums run in an f32 accumulator, rounded once
  autograd::record("index_select", {x}, y, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = zeros(xs, TensorOptions(acc_dtype(g.dtype()), g.device()));
    backend::index_add(g.contiguous(), idx, gx, outer, D, inner);
    return std::vector<Tensor>{gx.to(g.dtype())};
  });
  return y;
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("gather", x, "input");
  check_defined("gather", index, "index");
  check_devices("gather", {&x, &index});
  int64_t d = detail::wrap_dim(dim, x.dim(), "gather");
  ADNN_CHECK(index.dim() == x.dim(), "gather: index ", index.desc(), " must have the rank of input ", x.desc());
  for (int64_t k = 0; k < x.dim(); ++k)
    ADNN_CHECK(k == d || index.size(k) <= x.size(k), "gather: index ", index.desc(), " is larger than input ",
               x.desc(), " in dim ", k);
  check_index("gather", index, x.size(d), d, x);
  check_floating("gather", x);
  // f16/bf16 copied natively; the backward's sums run in an f32 accumulator, rounded once
  Tensor idx = index.contiguous();
  Tensor y = new_like(x, index.sizes());
  backend::gather(x.detach().contiguous(), d, idx, y);
  Shape xs = x.sizes();
  autograd::record("gather", {x}, y, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = zeros(xs, TensorOptions(acc_dtype(g.dtype()), g.device()));
    backend::scatter_add(g.contiguous(), d, idx, gx);
    return std::vector<Tensor>{gx.to(g.dtype())};
  });
  return y;
}

Tensor embedding(const Tensor& weight, const Tensor& index) {
  check_defined("embedding", weight, "weight");
  check_defined("embedding", index, "index");
  ADNN_CHECK(weight.dim() == 2, "embedding: weight must be (num_embeddings, dim), got ", weight.desc());
  Shape out = index.sizes();
  out.push_back(weight.size(1));
  return index_select(weight, 0, index.reshape({-1})).reshape(out);
}

}  // namespace adnn
