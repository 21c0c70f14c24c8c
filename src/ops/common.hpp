#pragma once
// Shared argument checks and helpers for op implementations.
#include <adnn/autograd/autograd.hpp>
#include <adnn/ops/ops.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "dispatch/dispatch.hpp"

namespace adnn::ops_detail {

inline void check_defined(const char* op, const Tensor& t, const char* what) {
  ADNN_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

// "f32[2] cpu, f64[2] cpu" for the defined tensors of a list.
inline std::string describe(std::initializer_list<const Tensor*> ts) {
  std::string list;
  for (auto* u : ts)
    if (u->defined()) list += (list.empty() ? "" : ", ") + u->desc();
  return list;
}

// The first defined tensor whose `key` differs from the first defined one's, or null.
template <class Key>
const Tensor* first_mismatch(std::initializer_list<const Tensor*> ts, Key key) {
  const Tensor* first = nullptr;
  for (auto* t : ts) {
    if (!t->defined()) continue;
    if (!first) first = t;
    else if (!(key(*t) == key(*first))) return t;
  }
  return nullptr;
}

// All defined tensors on one device; that device must have a backend in this build.
inline void check_devices(const char* op, std::initializer_list<const Tensor*> ts) {
  if (first_mismatch(ts, [](const Tensor& t) { return t.device(); }))
    ADNN_FAIL(op, ": expected all tensors on one device, got ", describe(ts));
  for (auto* t : ts)
    if (t->defined()) {
      if (!t->device().is_cpu()) detail::check_device_available(t->device());
      break;
    }
}

inline void check_same_dtype(const char* op, std::initializer_list<const Tensor*> ts) {
  if (first_mismatch(ts, [](const Tensor& t) { return t.dtype(); }))
    ADNN_FAIL(op, ": expected one dtype, got ", describe(ts), " (convert with .to(dtype))");
}

inline void check_floating(const char* op, const Tensor& t) {
  ADNN_CHECK(is_floating(t.dtype()), op, ": expected a floating tensor, got ", t.desc());
}

inline bool is_reduced(DType t) { return t == DType::f16 || t == DType::bf16; }
// The dtype a 16-bit tensor's sums, statistics and gradient accumulators are kept in: f32 for
// f16/bf16, the dtype itself otherwise.
inline DType acc_dtype(DType t) {
  return is_reduced(t) ? DType::f32 : t;
}

inline Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape r(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    ADNN_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
               " cannot be broadcast together");
    r[i] = da == 1 ? db : da;
  }
  return r;
}

inline std::vector<int64_t> normalize_dims(const char* op, std::vector<int64_t> dims, int64_t rank) {
  if (dims.empty()) {
    dims.resize(size_t(rank));
    for (int64_t i = 0; i < rank; ++i) dims[i] = i;
    return dims;
  }
  for (auto& d : dims) d = detail::wrap_dim(d, rank, op);
  std::sort(dims.begin(), dims.end());
  ADNN_CHECK(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), op, ": repeated dim in reduction");
  return dims;
}

// A device-side check's flag: one i64 on the cuda device per `key` for the life of the process,
// zeroed and watched by the runtime (cuda::watch_flag), which raises adnn::Error(message(value))
// at the next point the host waits after a kernel stored a nonzero value in it; no allocation,
// copy or synchronisation per call. Made on the first call for its key, which may not be inside
// a CUDA graph capture (the zero-fill would only be recorded): that is an error naming `key`.
// CUDA backend builds only (src/ops/shape_ops.cpp).
Tensor& watched_device_flag(const std::string& key, std::function<std::string(int64_t)> message);

inline Tensor new_like(const Tensor& t, Shape shape) { return empty(std::move(shape), TensorOptions(t.dtype(), t.device())); }

}  // namespace adnn::ops_detail
