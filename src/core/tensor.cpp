// Tensor metadata, views, factories and the autograd accessors.
#include <adnn/autograd/autograd.hpp>
#include <adnn/core/tensor.hpp>
#include <adnn/ops/ops.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <numeric>
#include <vector>

#include <sys/mman.h>
#include <optional>

#include "dispatch/dispatch.hpp"
#if ADNN_WITH_CUDA_BACKEND
#include <adnn/cuda/runtime.hpp>
#endif

namespace adnn {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto v : s) n *= v;
  return n;
}
Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = int64_t(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

namespace detail {
static std::atomic<bool> allocation_sentinel{false};
void set_allocation_sentinel(bool on) { allocation_sentinel = on; }
}  // namespace detail

// ---------------------------------------------------------------- host cache
namespace {
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kHostCacheBuild = false;  // ASan: every free reaches the allocator (use-after-free stays visible)
#else
constexpr bool kHostCacheBuild = true;
#endif
constexpr size_t kHostCacheMin = size_t(1) << 20, kHostCacheRound = size_t(64) << 10;

struct HostCache {
  std::mutex mu;
  std::list<std::pair<size_t, void*>> blocks;  // cached (rounded size, block), oldest first
  HostCacheStats st;
  HostCache() {
    size_t mb = 512;
    if (const char* e = std::getenv("ADNN_HOST_CACHE_MB")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(e, &end, 10);
      ADNN_CHECK(end != e && *end == 0 && v <= (1ull << 24), "ADNN_HOST_CACHE_MB: expected a number of MiB, got '",
                 e, "'");
      mb = size_t(v);
    }
    st.limit = kHostCacheBuild ? mb << 20 : 0;
  }
};
HostCache& host_cache() {
  static HostCache* c = new HostCache;  // never destroyed: storages may be freed during exit
  return *c;
}
size_t host_rounded(size_t n) {
  if (n >= kHostCacheMin) return (n + kHostCacheRound - 1) / kHostCacheRound * kHostCacheRound;
  const size_t r = (n + 63) / 64 * 64;
  return r == 0 ? 64 : r;
}
// Large blocks are mapped and unmapped directly: glibc would serve them from its heap once
// its dynamic mmap threshold has grown, and a fragmented heap is not returned to the system.
bool host_large(size_t r) { return kHostCacheBuild && r >= kHostCacheMin; }
void* host_map(size_t r) {
  void* p = ::mmap(nullptr, r, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
void* host_allocate(size_t n) {
  const size_t r = host_rounded(n);
  if (!host_large(r)) return std::aligned_alloc(64, r);
  {
    HostCache& c = host_cache();
    std::lock_guard<std::mutex> lock(c.mu);
    for (auto it = c.blocks.rbegin(); it != c.blocks.rend(); ++it)  // the most recently freed first
      if (it->first == r) {
        void* p = it->second;
        c.blocks.erase(std::next(it).base());
        c.st.cached_bytes -= r;
        --c.st.cached_blocks;
        ++c.st.hits;
        return p;
      }
    ++c.st.misses;
  }
  return host_map(r);
}
using HostBlocks = std::vector<std::pair<size_t, void*>>;
// Removes the oldest cached blocks until at most `target` bytes stay cached (c.mu held);
// returns them, for unmapping once the lock is released.
HostBlocks host_evict_to(HostCache& c, size_t target) {
  HostBlocks out;
  while (c.st.cached_bytes > target) {
    out.push_back(c.blocks.front());
    c.st.cached_bytes -= c.blocks.front().first;
    --c.st.cached_blocks;
    c.blocks.pop_front();
  }
  return out;
}
void host_unmap(const HostBlocks& blocks) {
  for (auto [size, p] : blocks) ::munmap(p, size);
}
void host_deallocate(void* p, size_t n) {
  if (!p) return;
  const size_t r = host_rounded(n);
  if (!host_large(r)) {
    std::free(p);
    return;
  }
  HostBlocks unmap;  // evicted (oldest first), unmapped outside the lock
  {
    HostCache& c = host_cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (r <= c.st.limit) {
      unmap = host_evict_to(c, c.st.limit - r);
      c.blocks.emplace_back(r, p);
      c.st.cached_bytes += r;
      ++c.st.cached_blocks;
    } else {
      unmap.emplace_back(r, p);
    }
  }
  host_unmap(unmap);
}
}  // namespace

HostCacheStats host_cache_stats() {
  HostCache& c = host_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.st;
}
void set_host_cache_limit(size_t bytes) {
  if (!kHostCacheBuild) return;
  HostCache& c = host_cache();
  HostBlocks unmap;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.st.limit = bytes;
    unmap = host_evict_to(c, bytes);
  }
  host_unmap(unmap);
}
void host_empty_cache() {
  HostCache& c = host_cache();
  HostBlocks unmap;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    unmap = host_evict_to(c, 0);
  }
  host_unmap(unmap);
}

// ---------------------------------------------------------------- storage
Storage::Storage(size_t n, Device d) : nbytes(n), device(d) {
  detail::check_device_available(d);
#if ADNN_WITH_CUDA_BACKEND
  if (d.is_cuda()) {
    data = cuda::allocate(n);
    if (detail::allocation_sentinel) cuda::memset(data, 0xFF, n);
    return;
  }
#endif
  data = host_allocate(n);
  ADNN_CHECK(data, "cpu allocator: out of memory allocating ", n, " bytes");
  if (detail::allocation_sentinel) std::memset(data, 0xFF, host_rounded(n));
}
Storage::~Storage() {
#if ADNN_WITH_CUDA_BACKEND
  if (device.is_cuda()) {
    cuda::deallocate(data, nbytes);
    return;
  }
#endif
  host_deallocate(data, nbytes);
}

TensorImpl::TensorImpl() = default;
TensorImpl::~TensorImpl() = default;

namespace detail {
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op) {
  int64_t r = std::max<int64_t>(rank, 1);
  ADNN_CHECK(dim >= -r && dim < r, op, ": dim ", dim, " out of range for a tensor of rank ", rank);
  return dim < 0 ? dim + r : dim;
}

Tensor placeholder_on(Device device, Shape shape, DType dtype) {
  auto impl = std::make_shared<TensorImpl>();
  // A storage object that owns nothing: built without the allocator.
  struct Raw {
    static std::shared_ptr<Storage> make(Device d) {
      Storage* s = static_cast<Storage*>(::operator new(sizeof(Storage)));
      s->data = nullptr;
      s->nbytes = 0;
      s->device = d;
      return std::shared_ptr<Storage>(s, [](Storage* p) { ::operator delete(p); });
    }
  };
  impl->storage = Raw::make(device);
  impl->strides = contiguous_strides(shape);
  impl->sizes = std::move(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}
}  // namespace detail

// ---------------------------------------------------------------- metadata
int64_t Tensor::size(int64_t d) const { return sizes()[detail::wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[detail::wrap_dim(d, dim(), "stride")]; }
Device Tensor::device() const { return impl().storage->device; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (sizes()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= sizes()[i];
  }
  return true;
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  return detail::cat(dtype_name(dtype()), shape_str(sizes()), " ", device().str());
}

void Tensor::record_stream(const cuda::Stream& stream) const {
#if ADNN_WITH_CUDA_BACKEND
  if (defined() && device().is_cuda() && impl().storage && impl().storage->data)
    cuda::record_stream(impl().storage->data, stream);
#else
  (void)stream;
#endif
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data) + impl().offset * int64_t(element_size());
}

std::vector<double> Tensor::to_vector() const {
  if (!device().is_cpu()) return detach().to(kCPU).to_vector();
  Tensor t = empty(sizes(), TensorOptions(DType::f64));
  backend::copy(*this, t);
  const double* p = t.data_ptr<double>();
  return std::vector<double>(p, p + numel());
}

double Tensor::item_double() const {
  ADNN_CHECK(numel() == 1, "item: tensor has ", numel(), " elements (", desc(), "), expected 1");
  return to(kCPU).to_vector()[0];
}

// ---------------------------------------------------------------- views
namespace {

Tensor make_view(const Tensor& base, Shape sizes, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->offset = offset;
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->dtype = base.dtype();
  return Tensor(impl);
}

std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& new_shape) {
  Shape ns(new_shape.size());
  if (old_shape.empty()) return contiguous_strides(new_shape);
  if (shape_numel(old_shape) == 0) return contiguous_strides(new_shape);
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk = old_strides.back();
  int64_t tnum = 1, vnum = 1;
  for (int64_t td = int64_t(old_shape.size()) - 1; td >= 0; --td) {
    tnum *= old_shape[td];
    if (td == 0 || (old_shape[td - 1] != 1 && old_strides[td - 1] != tnum * chunk)) {
      while (view_d >= 0 && (vnum < tnum || new_shape[view_d] == 1)) {
        ns[view_d] = vnum * chunk;
        vnum *= new_shape[view_d];
        --view_d;
      }
      if (vnum != tnum) return std::nullopt;
      if (td > 0) {
        chunk = old_strides[td - 1];
        tnum = 1;
        vnum = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return ns;
}

Shape infer_shape(Shape shape, int64_t numel, const char* op, const Tensor& t) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      ADNN_CHECK(infer < 0, op, ": only one dimension can be -1, got ", shape_str(shape));
      infer = int64_t(i);
    } else {
      ADNN_CHECK(shape[i] >= 0, op, ": invalid size in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    ADNN_CHECK(known > 0 && numel % known == 0, op, ": cannot reshape ", t.desc(), " to ", shape_str(shape));
    shape[infer] = numel / known;
  }
  ADNN_CHECK(shape_numel(shape) == numel, op, ": cannot reshape ", t.desc(), " (", numel, " elements) to ",
             shape_str(shape));
  return shape;
}

void check_inplace(const Tensor& t, const char* op) {
  ADNN_CHECK(!(autograd::GradMode::is_enabled() && t.requires_grad()), op,
             ": in-place update of a tensor that requires grad (", t.desc(),
             "); wrap it in adnn::NoGradGuard or use the out-of-place op");
}

}  // namespace

Tensor Tensor::view(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), "view", *this);
  auto st = view_strides(sizes(), strides(), shape);
  ADNN_CHECK(st, "view: ", desc(), " with strides ", shape_str(strides()), " cannot be viewed as ", shape_str(shape),
             "; use reshape (copies)");
  Tensor out = make_view(*this, shape, *st, storage_offset());
  Shape in_shape = sizes();
  autograd::record("view", {*this}, out, [in_shape](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
  return out;
}

Tensor Tensor::reshape(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), "reshape", *this);
  if (view_strides(sizes(), strides(), shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::permute(std::vector<int64_t> dims) const {
  ADNN_CHECK(int64_t(dims.size()) == dim(), "permute: ", dims.size(), " dims given for ", desc());
  std::vector<bool> seen(dims.size(), false);
  Shape sz(dims.size()), st(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = detail::wrap_dim(dims[i], dim(), "permute");
    ADNN_CHECK(!seen[d], "permute: repeated dim ", dims[i], " for ", desc());
    seen[d] = true;
    dims[i] = d;
    sz[i] = sizes()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, sz, st, storage_offset());
  std::vector<int64_t> inv(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inv[dims[i]] = int64_t(i);
  autograd::record("permute", {*this}, out, [inv](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.permute(inv)};
  });
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  if (dim() == 0) return *this;
  std::swap(p[detail::wrap_dim(d0, dim(), "transpose")], p[detail::wrap_dim(d1, dim(), "transpose")]);
  return permute(p);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = detail::wrap_dim(d, dim(), "slice");
  ADNN_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = sizes()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sz = sizes(), st = strides();
  sz[d] = (end - start + step - 1) / step;
  st[d] = strides()[d] * step;
  Tensor out = make_view(*this, sz, st, storage_offset() + start * strides()[d]);
  Shape in_shape = sizes();
  autograd::record("slice", {*this}, out, [=](const Tensor& g, const std::vector<bool>&) {
    Tensor gx = zeros(in_shape, TensorOptions(g.dtype(), g.device()));
    gx.slice(d, start, end, step).copy_(g);
    return std::vector<Tensor>{gx};
  });
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = detail::wrap_dim(d, dim(), "narrow");
  ADNN_CHECK(start >= 0 && length >= 0 && start + length <= sizes()[d], "narrow: [", start, ", ", start + length,
             ") out of range for dim ", d, " of ", desc());
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = detail::wrap_dim(d, dim(), "select");
  int64_t n = sizes()[d];
  ADNN_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", d, " of ", desc());
  if (index < 0) index += n;
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::expand(Shape shape) const {
  ADNN_CHECK(int64_t(shape.size()) >= dim(), "expand: cannot expand ", desc(), " to ", shape_str(shape));
  Shape st(shape.size());
  int64_t lead = int64_t(shape.size()) - dim();
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    int64_t j = i - lead;
    if (j < 0) {
      ADNN_CHECK(shape[i] >= 0, "expand: invalid size in ", shape_str(shape));
      st[i] = 0;
      continue;
    }
    if (shape[i] == -1) shape[i] = sizes()[j];
    if (sizes()[j] == shape[i]) {
      st[i] = strides()[j];
    } else {
      ADNN_CHECK(sizes()[j] == 1, "expand: cannot expand ", desc(), " to ", shape_str(shape), " (dim ", j,
                 " has size ", sizes()[j], ")");
      st[i] = 0;
    }
  }
  if (shape == sizes()) return *this;
  Tensor out = make_view(*this, shape, st, storage_offset());
  Shape in_shape = sizes();
  autograd::record("expand", {*this}, out, [in_shape](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{sum_to(g, in_shape)};
  });
  return out;
}

Tensor Tensor::squeeze() const {
  Shape s;
  for (auto v : sizes())
    if (v != 1) s.push_back(v);
  return reshape(s);
}
Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  d = detail::wrap_dim(d, dim(), "squeeze");
  if (sizes()[d] != 1) return *this;
  Shape s = sizes();
  s.erase(s.begin() + d);
  return reshape(s);
}
Tensor Tensor::unsqueeze(int64_t d) const {
  d = detail::wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = sizes();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}
Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = detail::wrap_dim(start, dim(), "flatten");
  end = detail::wrap_dim(end, dim(), "flatten");
  ADNN_CHECK(start <= end, "flatten: start ", start, " after end ", end);
  Shape s(sizes().begin(), sizes().begin() + start);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= sizes()[i];
  s.push_back(m);
  s.insert(s.end(), sizes().begin() + end + 1, sizes().end());
  return reshape(s);
}

Tensor Tensor::as_strided(Shape sz, Shape st, int64_t offset) const {
  ADNN_CHECK(sz.size() == st.size(), "as_strided: sizes ", shape_str(sz), " and strides ", shape_str(st),
             " differ in rank");
  ADNN_CHECK(!(autograd::GradMode::is_enabled() && requires_grad()),
             "as_strided: not differentiable; call it on a detached tensor");
  int64_t hi = offset;
  for (size_t i = 0; i < sz.size(); ++i) {
    ADNN_CHECK(sz[i] >= 0 && st[i] >= 0, "as_strided: negative size or stride");
    if (sz[i] == 0) hi = offset - 1;
    else hi += (sz[i] - 1) * st[i];
  }
  const int64_t capacity = int64_t(impl().storage->nbytes / element_size());
  ADNN_CHECK(offset >= 0 && hi < capacity, "as_strided: view ", shape_str(sz), " strides ", shape_str(st),
             " offset ", offset, " reaches element ", hi, " of a storage of ", capacity);
  return make_view(*this, std::move(sz), std::move(st), offset);
}

Tensor Tensor::clone() const {
  Tensor out = empty(sizes(), TensorOptions(dtype(), device()));
  backend::copy(*this, out);
  autograd::record("clone", {*this}, out, [](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g};
  });
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = empty(sizes(), TensorOptions(t, device()));
  backend::copy(*this, out);
  if (is_floating(t) && is_floating(dtype())) {
    DType in_t = dtype();
    autograd::record("to_dtype", {*this}, out, [in_t](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{g.to(in_t)};
    });
  }
  return out;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  detail::check_device_available(d);
#if ADNN_WITH_CUDA_BACKEND
  Tensor src = detach().contiguous();
  Tensor out = empty(sizes(), TensorOptions(dtype(), d));
  const size_t n = size_t(numel()) * element_size();
  if (n) {
    if (device().is_cpu())
      cuda::copy_to_device(out.data_ptr(), src.data_ptr(), n);
    else if (d.is_cpu())
      cuda::copy_to_host(out.data_ptr(), src.data_ptr(), n);
    else
      cuda::copy_device_to_device(out.data_ptr(), src.data_ptr(), n);
  }
  Device from = device();
  autograd::record("to_device", {*this}, out, [from](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{g.to(from)};
  });
  return out;
#else
  ADNN_FAIL("to: copies between ", device().str(), " and ", d.str(), " need the CUDA backend");
#endif
}

// ---------------------------------------------------------------- in-place
Tensor& Tensor::fill_(double v) {
  check_inplace(*this, "fill_");
  backend::fill(*this, v);
  return *this;
}
Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace(*this, "copy_");
  ADNN_CHECK(src.device() == device(), "copy_: source ", src.desc(), " and destination ", desc(),
             " are on different devices");
  Tensor s = src.detach().expand(sizes());
  backend::copy(s, *this);
  return *this;
}
Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_inplace(*this, "add_");
  NoGradGuard ng;
  Tensor r = alpha == 1.0 ? add(*this, other) : add(*this, mul(other, alpha));
  ADNN_CHECK(r.sizes() == sizes(), "add_: result shape ", shape_str(r.sizes()), " differs from ", desc());
  backend::copy(r, *this);
  return *this;
}
Tensor& Tensor::mul_(double s) {
  check_inplace(*this, "mul_");
  NoGradGuard ng;
  backend::copy(mul(*this, s), *this);
  return *this;
}
Tensor& Tensor::mul_(const Tensor& other) {
  check_inplace(*this, "mul_");
  NoGradGuard ng;
  Tensor r = mul(*this, other.to(dtype()));
  ADNN_CHECK(r.sizes() == sizes(), "mul_: result shape ", shape_str(r.sizes()), " differs from ", desc());
  backend::copy(r, *this);
  return *this;
}

// ---------------------------------------------------------------- autograd accessors
namespace {
autograd::AutogradMeta& meta(const Tensor& t) {
  auto& impl = t.impl();
  if (!impl.autograd) impl.autograd = std::make_unique<autograd::AutogradMeta>();
  return *impl.autograd;
}
}  // namespace

bool Tensor::requires_grad() const {
  auto& a = impl().autograd;
  return a && (a->requires_grad || a->grad_fn);
}
Tensor& Tensor::requires_grad_(bool r) {
  ADNN_CHECK(is_leaf(), "requires_grad_: only leaf tensors can change requires_grad (", desc(),
             " was produced by an op; use detach())");
  ADNN_CHECK(!r || is_floating(dtype()), "requires_grad_: only floating tensors can require grad, got ", desc());
  meta(*this).requires_grad = r;
  return *this;
}
bool Tensor::is_leaf() const {
  auto& a = impl().autograd;
  return !a || !a->grad_fn;
}
Tensor Tensor::grad() const {
  auto& a = impl().autograd;
  if (!a || !a->grad) return Tensor();
  return Tensor(a->grad);
}
void Tensor::set_grad(const Tensor& g) const {
  if (g.defined())
    ADNN_CHECK(g.sizes() == sizes(), "set_grad: gradient ", g.desc(), " does not match ", desc());
  meta(*this).grad = g.impl_ptr();
}
std::shared_ptr<autograd::Node> Tensor::grad_fn() const {
  auto& a = impl().autograd;
  return a ? a->grad_fn : nullptr;
}
void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  autograd::backward({*this}, {grad}, retain_graph);
}
Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = this->impl().storage;
  impl->offset = storage_offset();
  impl->sizes = sizes();
  impl->strides = strides();
  impl->dtype = dtype();
  return Tensor(impl);
}
void Tensor::retain_grad() const {
  ADNN_CHECK(requires_grad(), "retain_grad: tensor does not require grad (", desc(), ")");
  if (is_leaf()) return;
  auto& m = meta(*this);
  if (m.retains_grad) return;
  m.retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_;
  register_hook([weak](const Tensor& g) {
    if (auto p = weak.lock()) {
      Tensor self(p);
      Tensor old = self.grad();
      self.set_grad(old.defined() ? add(old, g) : g.clone());
    }
    return Tensor();
  });
}

namespace {
int next_hook_id() {
  static std::atomic<int> id{0};
  return ++id;
}
}  // namespace

int Tensor::register_hook(TensorHook hook) const {
  ADNN_CHECK(requires_grad(), "register_hook: tensor does not require grad (", desc(), ")");
  int id = next_hook_id();
  auto& m = meta(*this);
  if (m.grad_fn)
    m.grad_fn->pre_hooks[m.output_nr].push_back({id, std::move(hook)});
  else
    m.leaf_hooks.push_back({id, std::move(hook)});
  return id;
}
int Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
  ADNN_CHECK(requires_grad(), "register_post_accumulate_grad_hook: tensor does not require grad (", desc(), ")");
  auto& m = meta(*this);
  ADNN_CHECK(!m.grad_fn, "register_post_accumulate_grad_hook: only a leaf tensor accumulates a gradient; ", desc(),
             " is the output of '", m.grad_fn->name(), "'");
  int id = next_hook_id();
  m.post_accumulate_hooks.push_back({id, std::move(hook)});
  return id;
}
void Tensor::remove_hook(int handle) const {
  auto& m = meta(*this);
  auto drop = [handle](auto& v) {
    v.erase(std::remove_if(v.begin(), v.end(), [&](auto& p) { return p.first == handle; }), v.end());
  };
  drop(m.leaf_hooks);
  drop(m.post_accumulate_hooks);
  if (m.grad_fn)
    for (auto& [k, v] : m.grad_fn->pre_hooks) drop(v);
}

Tensor Tensor::sum(std::vector<int64_t> dims, bool keepdim) const { return adnn::sum(*this, dims, keepdim); }
Tensor Tensor::mean(std::vector<int64_t> dims, bool keepdim) const { return adnn::mean(*this, dims, keepdim); }
Tensor Tensor::exp() const { return adnn::exp(*this); }
Tensor Tensor::log() const { return adnn::log(*this); }
Tensor Tensor::pow(double p) const { return adnn::pow(*this, p); }
Tensor Tensor::matmul(const Tensor& o) const { return adnn::matmul(*this, o); }
Tensor Tensor::operator-() const { return adnn::neg(*this); }

// ---------------------------------------------------------------- factories
Tensor empty(Shape shape, TensorOptions opts) {
  for (auto v : shape) ADNN_CHECK(v >= 0, "empty: negative size in ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(shape_numel(shape)) * dtype_size(opts.dtype_), opts.device_);
  impl->strides = contiguous_strides(shape);
  impl->sizes = std::move(shape);
  impl->dtype = opts.dtype_;
  Tensor t(impl);
  if (opts.requires_grad_) t.requires_grad_(true);
  return t;
}
Tensor empty_strided(Shape shape, Shape strides, TensorOptions opts) {
  ADNN_CHECK(shape.size() == strides.size(), "empty_strided: shape ", shape_str(shape), " and strides ",
             shape_str(strides), " differ in rank");
  int64_t extent = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    ADNN_CHECK(shape[i] >= 0 && strides[i] >= 0, "empty_strided: negative size or stride");
    if (shape[i] == 0) extent = 0;
  }
  if (extent) {
    extent = 1;
    for (size_t i = 0; i < shape.size(); ++i) extent += (shape[i] - 1) * strides[i];
  }
  Tensor base = empty({extent}, opts.requires_grad(false));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->sizes = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = opts.dtype_;
  Tensor t(impl);
  if (opts.requires_grad_) t.requires_grad_(true);
  return t;
}
Tensor full(Shape shape, double value, TensorOptions opts) {
  bool rg = opts.requires_grad_;
  Tensor t = empty(std::move(shape), opts.requires_grad(false));
  backend::fill(t, value);
  if (rg) t.requires_grad_(true);
  return t;
}
Tensor zeros(Shape shape, TensorOptions opts) { return full(std::move(shape), 0.0, opts); }
Tensor ones(Shape shape, TensorOptions opts) { return full(std::move(shape), 1.0, opts); }
Tensor scalar_tensor(double value, TensorOptions opts) { return full({}, value, opts); }
Tensor empty_like(const Tensor& t) { return empty(t.sizes(), TensorOptions(t.dtype(), t.device())); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), TensorOptions(t.dtype(), t.device())); }
Tensor ones_like(const Tensor& t) { return ones(t.sizes(), TensorOptions(t.dtype(), t.device())); }

Tensor from_vector(const std::vector<double>& v, Shape shape, TensorOptions opts) {
  ADNN_CHECK(int64_t(v.size()) == shape_numel(shape), "from_vector: ", v.size(), " values for shape ",
             shape_str(shape));
  Tensor t = empty(shape, TensorOptions(DType::f64));
  if (!v.empty()) std::memcpy(t.data_ptr(), v.data(), v.size() * sizeof(double));
  Tensor r = t.to(opts.dtype_);
  if (opts.device_ != kCPU) r = r.to(opts.device_);
  if (opts.requires_grad_) r.requires_grad_(true);
  return r;
}
Tensor from_vector(const std::vector<float>& v, Shape shape, TensorOptions opts) {
  return from_vector(std::vector<double>(v.begin(), v.end()), std::move(shape), opts);
}
Tensor from_vector(const std::vector<int64_t>& v, Shape shape, TensorOptions opts) {
  ADNN_CHECK(int64_t(v.size()) == shape_numel(shape), "from_vector: ", v.size(), " values for shape ",
             shape_str(shape));
  Tensor t = empty(shape, TensorOptions(DType::i64));
  if (!v.empty()) std::memcpy(t.data_ptr(), v.data(), v.size() * sizeof(int64_t));
  Tensor r = t.to(opts.dtype_);
  if (opts.device_ != kCPU) r = r.to(opts.device_);
  if (opts.requires_grad_) r.requires_grad_(true);
  return r;
}

Tensor arange(double start, double end, double step, TensorOptions opts) {
  ADNN_CHECK(step != 0, "arange: step must be non-zero");
  int64_t n = std::max<int64_t>(0, int64_t(std::ceil((end - start) / step)));
  Tensor out = empty({n}, TensorOptions(opts.dtype_, opts.device_));
  backend::arange_fill(out, start, step);  // computed where it lives: no host copy on cuda
  if (opts.requires_grad_) out.requires_grad_(true);
  return out;
}
Tensor linspace(double start, double end, int64_t steps, TensorOptions opts) {
  ADNN_CHECK(steps >= 0, "linspace: negative steps");
  std::vector<double> v(steps);
  for (int64_t i = 0; i < steps; ++i) v[i] = steps == 1 ? start : start + (end - start) * double(i) / double(steps - 1);
  return from_vector(v, {steps}, opts);
}

}  // namespace adnn
