#pragma once
// Strided N-ary elementwise iteration used by the CPU kernels.
// Dims are coalesced where every operand is contiguous across them; the innermost dim is
// handed to the callback as (pointers, byte strides, count) so it can be a tight loop.
#include <adnn/core/tensor.hpp>

#include "common/hd.hpp"
#include "dispatch/dtypes.hpp"

#include <omp.h>

#include <array>

namespace adnn::cpu {

// Calls f(float{}) or f(double{}) for the floating dtypes the CPU kernels compute in.
template <class F>
void float_dispatch(DType dt, const char* op, F&& f) {
  if (dt == DType::f32)
    f(float{});
  else if (dt == DType::f64)
    f(double{});
  else
    ADNN_FAIL(op, ": unsupported dtype ", dtype_name(dt));
}

// Calls f(T{}) for the storage types of the kernels that take f16/bf16 natively (widened on
// load, math in acc_t<T>, rounded once on store): float, double, half, bfloat16.
template <class F>
void storage_dispatch(DType dt, const char* op, F&& f) {
  dispatch::storage_types(dt, op, "cpu", f);
}

// The same as a statement macro: the body sees `T` (float or double).
#define ADNN_FLOAT_TYPES(dtype, op, ...)                                 \
  do {                                                                   \
    if ((dtype) == DType::f32) {                                         \
      using T = float;                                                   \
      __VA_ARGS__;                                                       \
    } else if ((dtype) == DType::f64) {                                  \
      using T = double;                                                  \
      __VA_ARGS__;                                                       \
    } else {                                                             \
      ADNN_FAIL(op, ": unsupported dtype ", dtype_name(dtype));          \
    }                                                                    \
  } while (0)

// The data of an optional tensor, or null.
template <class T>
const T* opt_ptr(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}
// The same for an optional output.
template <class T>
T* opt_out(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

template <size_t N>
struct LoopPlan {
  Shape sizes;                              // coalesced
  std::array<std::vector<int64_t>, N> strides;  // bytes, coalesced
  std::array<char*, N> base;
  int64_t numel = 1;
};

template <size_t N>
LoopPlan<N> make_plan(const std::array<const Tensor*, N>& ts) {
  LoopPlan<N> p;
  const Shape& shape = ts[0]->sizes();
  for (size_t k = 0; k < N; ++k) {
    p.base[k] = static_cast<char*>(ts[k]->impl().storage->data) +
                ts[k]->storage_offset() * int64_t(ts[k]->element_size());
  }
  // drop size-1 dims, then merge adjacent dims
  Shape sz;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    sz.push_back(shape[d]);
    for (size_t k = 0; k < N; ++k) st[k].push_back(ts[k]->strides()[d] * int64_t(ts[k]->element_size()));
  }
  p.numel = shape_numel(shape);
  if (sz.empty()) {
    sz.push_back(1);
    for (size_t k = 0; k < N; ++k) st[k].push_back(int64_t(ts[k]->element_size()));
  }
  Shape msz{sz[0]};
  std::array<std::vector<int64_t>, N> mst;
  for (size_t k = 0; k < N; ++k) mst[k].push_back(st[k][0]);
  for (size_t d = 1; d < sz.size(); ++d) {
    bool can = true;
    for (size_t k = 0; k < N; ++k)
      if (mst[k].back() != st[k][d] * sz[d]) can = false;
    if (can) {
      msz.back() *= sz[d];
      for (size_t k = 0; k < N; ++k) mst[k].back() = st[k][d];
    } else {
      msz.push_back(sz[d]);
      for (size_t k = 0; k < N; ++k) mst[k].push_back(st[k][d]);
    }
  }
  p.sizes = msz;
  p.strides = mst;
  return p;
}

// f(std::array<char*, N> ptrs, std::array<int64_t, N> byte_strides, int64_t n)
template <size_t N, class F>
void for_each_strided(const std::array<const Tensor*, N>& ts, F&& f, int64_t grain = 32768) {
  LoopPlan<N> p = make_plan<N>(ts);
  if (p.numel == 0) return;
  const int64_t D = int64_t(p.sizes.size());
  const int64_t inner = p.sizes[D - 1];
  const int64_t outer = p.numel / inner;
  std::array<int64_t, N> inner_st;
  for (size_t k = 0; k < N; ++k) inner_st[k] = p.strides[k][D - 1];
  auto run_rows = [&](int64_t r0, int64_t r1) {
    // multi-index of row r0 over dims [0, D-1)
    std::vector<int64_t> idx(D > 1 ? D - 1 : 1, 0);
    int64_t rem = r0;
    for (int64_t d = D - 2; d >= 0; --d) {
      idx[d] = rem % p.sizes[d];
      rem /= p.sizes[d];
    }
    std::array<char*, N> ptr;
    for (size_t k = 0; k < N; ++k) {
      ptr[k] = p.base[k];
      for (int64_t d = 0; d < D - 1; ++d) ptr[k] += idx[d] * p.strides[k][d];
    }
    for (int64_t r = r0; r < r1; ++r) {
      f(ptr, inner_st, inner);
      for (int64_t d = D - 2; d >= 0; --d) {  // odometer
        ++idx[d];
        for (size_t k = 0; k < N; ++k) ptr[k] += p.strides[k][d];
        if (idx[d] < p.sizes[d]) break;
        for (size_t k = 0; k < N; ++k) ptr[k] -= idx[d] * p.strides[k][d];
        idx[d] = 0;
      }
    }
  };
  if (p.numel < grain || outer == 1) {
    if (outer == 1 && p.numel >= grain) {
      // one long row: split it
      int64_t nt = omp_get_max_threads();
      int64_t chunk = (inner + nt - 1) / nt;
#pragma omp parallel for schedule(static)
      for (int64_t t = 0; t < nt; ++t) {
        int64_t s = t * chunk, e = std::min(inner, s + chunk);
        if (s >= e) continue;
        std::array<char*, N> ptr;
        for (size_t k = 0; k < N; ++k) ptr[k] = p.base[k] + s * inner_st[k];
        f(ptr, inner_st, e - s);
      }
      return;
    }
    run_rows(0, outer);
    return;
  }
  int64_t nt = omp_get_max_threads();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < nt; ++t) {
    int64_t s = outer * t / nt, e = outer * (t + 1) / nt;
    if (s < e) run_rows(s, e);
  }
}

using common::acc_t;

}  // namespace adnn::cpu
