#pragma once
// Indexing kernels: index_select / index_add along one dim, gather / scatter_add (torch
// semantics).
//
// index_select: out[o, i, k] = x[o, idx[i], k] over x viewed (outer, D, inner).
// index_add: gx[o, idx[i], k] += g[o, i, k] (atomicAdd: indices may repeat).
// gather: out[p] = x[p with coordinate `dim` replaced by idx[p]], index and out of the same
//   shape (up to 8 dims), x contiguous with its own strides; scatter_add is its adjoint
//   (atomicAdd).
// index_check: flag = an index outside [0, size) (atomicCAS: the first to arrive), the op's
//   range check without a host read; the data kernels below also skip an index outside the
//   dim (index_select/gather write 0, the adds add nothing), so a bad index reads and writes
//   nothing out of bounds before the flag is raised.
// Layout: contiguous; int64 indices.
// Dtypes: index_select and gather any storage type (f16/bf16 copied natively); index_add and
//   scatter_add add a gradient into its accumulator type (a 16-bit one into f32: the op rounds
//   the sums once).
// Threads: one thread per output (or gradient) element, innermost dim fastest.
// Cost: one read and one write (or atomic add) per element, plus the index read.
#include "common.cuh"
#include "loops.cuh"
#include "common/index.hpp"

namespace adnn::kernels {

__global__ void index_check_kernel(const int64_t* __restrict__ idx, int64_t n, int64_t size, int64_t* flag) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = idx[i];
    if (t < 0 || t >= size) atomicCAS(reinterpret_cast<unsigned long long*>(flag), 0ull, (unsigned long long)t);
  }
}

template <class T>
__global__ void index_select_kernel(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ out,
                                    int64_t D, int64_t inner, Index3d ix) {
  for_each_3d(ix, [&](int64_t i, int64_t o, int64_t j, int64_t k) {
    const int64_t t = idx[j];
    out[i] = t >= 0 && t < D ? x[(o * D + t) * inner + k] : T(0);
  });
}

// gx[o, idx[j], k] += g[o, j, k] in the accumulator type A (f32 for a 16-bit g: the op
// rounds the sums once).
template <class G, class A>
__global__ void index_add_kernel(const G* __restrict__ g, const int64_t* __restrict__ idx, A* __restrict__ gx,
                                 int64_t D, int64_t inner, Index3d ix) {
  for_each_3d(ix, [&](int64_t i, int64_t o, int64_t j, int64_t k) {
    const int64_t t = idx[j];
    if (t >= 0 && t < D) atomicAdd(gx + (o * D + t) * inner + k, A(g[i]));
  });
}

// The offset into x of element i of out / index (coordinate `dim` replaced by idx[i]); -1 for
// an index outside x's dim.
__device__ __forceinline__ int64_t gather_offset(int64_t i, const int64_t* __restrict__ idx, const GatherGeom& g) {
  const int64_t t = idx[i];
  if (t < 0 || t >= g.xsize_dim) return -1;
  int64_t rem = i, off = 0;
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t c = rem % g.size[d];
    rem /= g.size[d];
    off += (d == g.dim ? t : c) * g.xstride[d];
  }
  return off;
}

// out[i] = x[offset(i)]: any storage type (f16/bf16 copied natively).
template <class T>
__global__ void gather_kernel(const T* __restrict__ x, const int64_t* __restrict__ idx, T* __restrict__ out, int64_t n,
                              GatherGeom g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t off = gather_offset(i, idx, g);
    out[i] = off >= 0 ? x[off] : T(0);
  }
}

// gx[offset(i)] += g[i]: the gradient g in G, the accumulator gx in A = acc_t<G> (f32 for a
// 16-bit g: the op rounds it once).
template <class G, class A>
__global__ void scatter_add_kernel(const G* __restrict__ gr, const int64_t* __restrict__ idx, A* __restrict__ gx,
                                   int64_t n, GatherGeom g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    if (const int64_t off = gather_offset(i, idx, g); off >= 0) atomicAdd(gx + off, A(gr[i]));
}

}  // namespace adnn::kernels
