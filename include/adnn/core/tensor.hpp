#pragma once
// Tensor: a strided view of a Storage, plus autograd metadata.
//
// A Tensor is a cheap handle (shared_ptr) to a TensorImpl. Views (reshape, permute,
// transpose, slice, narrow, expand, squeeze, unsqueeze) share the storage and only change
// sizes/strides/offset. Strides and offsets are counted in elements.
#include <adnn/core/device.hpp>
#include <adnn/core/dtype.hpp>
#include <adnn/core/error.hpp>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace adnn {
namespace cuda {
struct Stream;
}

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// A block of device memory. CPU memory is 64-byte aligned.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device;
  Storage(size_t nbytes, Device device);
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();
};

namespace autograd {
class Node;
struct AutogradMeta;
}  // namespace autograd

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape sizes;
  Shape strides;  // in elements
  DType dtype = DType::f32;
  std::unique_ptr<autograd::AutogradMeta> autograd;
  TensorImpl();
  ~TensorImpl();
};

class Tensor;
using TensorHook = std::function<Tensor(const Tensor& grad)>;  // return {} to keep grad

struct TensorOptions {
  DType dtype_ = DType::f32;
  Device device_ = kCPU;
  bool requires_grad_ = false;
  TensorOptions() = default;
  TensorOptions(DType t) : dtype_(t) {}
  TensorOptions(Device d) : device_(d) {}
  TensorOptions(DType t, Device d) : dtype_(t), device_(d) {}
  TensorOptions dtype(DType t) const { auto o = *this; o.dtype_ = t; return o; }
  TensorOptions device(Device d) const { auto o = *this; o.device_ = d; return o; }
  TensorOptions requires_grad(bool r = true) const { auto o = *this; o.requires_grad_ = r; return o; }
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata
  bool defined() const { return impl_ != nullptr; }
  int64_t dim() const { return int64_t(impl().sizes.size()); }
  const Shape& sizes() const { return impl().sizes; }
  const Shape& shape() const { return impl().sizes; }
  const Shape& strides() const { return impl().strides; }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().sizes); }
  DType dtype() const { return impl().dtype; }
  Device device() const;
  int64_t storage_offset() const { return impl().offset; }
  size_t element_size() const { return dtype_size(dtype()); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  // "f32[2, 3] cpu" — used in error messages.
  std::string desc() const;

  // ---- data access (CPU tensors)
  void* data_ptr() const;
  // cuda: marks this tensor's memory as used by work queued on `stream` (PyTorch's
  // Tensor.record_stream). When the storage is freed, the caching allocator records an event on
  // `stream` and hands the block out again only once that event has completed. No-op on cpu.
  void record_stream(const cuda::Stream& stream) const;
  template <class T> T* data_ptr() const {
    ADNN_CHECK(dtype_of<T>::value == dtype(), "data_ptr<", dtype_name(dtype_of<T>::value),
               ">: tensor is ", desc());
    return static_cast<T*>(data_ptr());
  }
  template <class T> T item() const { return static_cast<T>(item_double()); }
  double item_double() const;
  // All elements as doubles in row-major order (copies; any device or dtype).
  std::vector<double> to_vector() const;
  template <class T> std::vector<T> to_vector() const {
    auto v = to_vector();
    return std::vector<T>(v.begin(), v.end());
  }

  // ---- views (share storage; differentiable)
  Tensor reshape(Shape shape) const;   // view when possible, else copy
  Tensor view(Shape shape) const;      // must be a view
  Tensor permute(std::vector<int64_t> dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(0, 1); }
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(Shape shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  // A view with explicit sizes, strides and offset (elements) over this tensor's storage.
  // Bounds are checked against the storage; not differentiable.
  Tensor as_strided(Shape sizes, Shape strides, int64_t offset) const;
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(Device d) const;
  Tensor to(DType t) const;
  Tensor to(Device d, DType t) const { return to(d).to(t); }

  // ---- in-place (not recorded by autograd; refused on tensors that need grad)
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double s);
  Tensor& mul_(const Tensor& other);  // other broadcast to this shape (e.g. a device scalar)

  // ---- autograd
  bool requires_grad() const;
  Tensor& requires_grad_(bool r = true);
  bool is_leaf() const;
  Tensor grad() const;
  void set_grad(const Tensor& g) const;
  std::shared_ptr<autograd::Node> grad_fn() const;
  void backward(const Tensor& grad = {}, bool retain_graph = false) const;
  Tensor detach() const;
  void retain_grad() const;
  // Called with the gradient w.r.t. this tensor during backward; may return a replacement.
  int register_hook(TensorHook hook) const;
  // Leaves only (torch's register_post_accumulate_grad_hook): called with the tensor after a
  // backward pass has accumulated its gradient into grad(); remove with remove_hook.
  int register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const;
  void remove_hook(int handle) const;

  // ---- method forms of common ops
  Tensor sum(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor mean(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor exp() const;
  Tensor log() const;
  Tensor pow(double p) const;
  Tensor matmul(const Tensor& o) const;
  Tensor operator-() const;

  TensorImpl& impl() const {
    ADNN_CHECK(impl_, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);
std::string to_string(const Tensor& t);

// ---- factories
Tensor empty(Shape shape, TensorOptions opts = {});
Tensor empty_strided(Shape shape, Shape strides, TensorOptions opts = {});
Tensor zeros(Shape shape, TensorOptions opts = {});
Tensor ones(Shape shape, TensorOptions opts = {});
Tensor full(Shape shape, double value, TensorOptions opts = {});
Tensor scalar_tensor(double value, TensorOptions opts = {});
Tensor arange(double start, double end, double step = 1.0, TensorOptions opts = {});
Tensor linspace(double start, double end, int64_t steps, TensorOptions opts = {});
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// From host values (converted to opts.dtype).
Tensor from_vector(const std::vector<double>& values, Shape shape, TensorOptions opts = {});
Tensor from_vector(const std::vector<float>& values, Shape shape, TensorOptions opts = {});
Tensor from_vector(const std::vector<int64_t>& values, Shape shape, TensorOptions opts = DType::i64);
inline Tensor tensor(std::initializer_list<double> v, Shape shape, TensorOptions opts = {}) {
  return from_vector(std::vector<double>(v), std::move(shape), opts);
}

// ---- random numbers: one global, seedable generator (per-thread streams are not used)
void manual_seed(uint64_t seed);
struct Generator {
  uint64_t state[4];
  explicit Generator(uint64_t seed = 0x5eed);
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();
};
Generator& default_generator();
Tensor rand(Shape shape, TensorOptions opts = {});               // U[0, 1)
Tensor randn(Shape shape, TensorOptions opts = {});              // N(0, 1)
Tensor uniform(Shape shape, double lo, double hi, TensorOptions opts = {});
Tensor randint(int64_t lo, int64_t hi, Shape shape, TensorOptions opts = DType::i64);
// `value` with probability p, else 0. Floating tensors are drawn on their own device from a
// counter-based generator (Philox4x32-10, seeded by one draw of the default generator): the
// same values on cpu and cuda, and no host work or copy on cuda.
Tensor bernoulli(Shape shape, double p, TensorOptions opts = {}, double value = 1.0);
std::vector<int64_t> randperm(int64_t n);

// The host allocator's cache (src/core/tensor.cpp). CPU blocks of 1 MiB or more (sizes rounded
// up to 64 KiB) are mapped with mmap and, when freed, kept and handed to the next allocation
// of the same rounded size, so a training loop, which frees and allocates the same large
// activations every step, neither page-faults them in again nor leaves glibc's heap
// fragmented (which grew the main job's RSS past 1 GB). At most `limit` bytes are cached
// (ADNN_HOST_CACHE_MB, default 512; 0: none); beyond it the oldest cached blocks are unmapped,
// returned to the system at once; host_empty_cache() unmaps them all (adnn-fer train does
// around each validation, whose sizes differ from a training step's). Off in AddressSanitizer builds (every block through
// malloc/free, so that a use after free is still caught).
struct HostCacheStats {
  size_t cached_bytes = 0, cached_blocks = 0, limit = 0;
  uint64_t hits = 0, misses = 0;  // allocations of a cacheable size served from / not from the cache
};
HostCacheStats host_cache_stats();
void host_empty_cache();  // frees every cached block
// Sets the limit in bytes (0: cache nothing) and unmaps what exceeds it; no effect in ASan builds.
void set_host_cache_limit(size_t bytes);

namespace detail {
// Normalises a possibly negative dim against rank; names `op` in the error.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op);
// Test/diagnostic hook: a tensor whose storage claims `device` but owns no memory.
Tensor placeholder_on(Device device, Shape shape, DType dtype);
void check_device_available(Device d);
// Testing aid: fill every new CPU allocation with 0xFF bytes (NaN for floats, -1 for
// integers) so a kernel that leaves part of its output unwritten is caught.
void set_allocation_sentinel(bool on);
}  // namespace detail

}  // namespace adnn
