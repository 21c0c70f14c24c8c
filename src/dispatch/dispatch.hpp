#pragma once
// The dispatcher: one inline function per op-table entry (op_table.def) that runs the CPU
// backend (src/cpu) or the CUDA backend (src/cuda) by the device of the entry's `device`
// tensor, and counts the call (op_calls: the test registry's coverage check reads it).
#include <adnn/config.hpp>

#include "cpu/backend.hpp"
#if ADNN_WITH_CUDA_BACKEND
#include <adnn/cuda/runtime.hpp>

#include "cuda/backend.hpp"
#endif

namespace adnn::backend {

enum class OpId : int {
#define ADNN_OP(family, name, device, params, args) name,
#include "dispatch/op_table.def"
#undef ADNN_OP
  count
};
constexpr int kOpCount = int(OpId::count);
// Name and family of each entry, in table order.
extern const char* const op_names[kOpCount];
extern const char* const op_families[kOpCount];

// Calls of entry `id` on the CPU (cuda = false) or the CUDA device since the last reset.
uint64_t op_calls(OpId id, bool cuda);
void reset_op_calls();
void note_call(OpId id, bool cuda);

#if ADNN_WITH_CUDA_BACKEND
#define ADNN_DISPATCH_CUDA(name, args) \
  if (on_cuda) return cuda::name args;
#else
#define ADNN_DISPATCH_CUDA(name, args)
#endif
#define ADNN_OP(family, name, dev, params, args)                        \
  inline void name params {                                             \
    const Tensor& dev_ = dev;                                           \
    const bool on_cuda = dev_.defined() && dev_.device().is_cuda();     \
    note_call(OpId::name, on_cuda);                                     \
    ADNN_DISPATCH_CUDA(name, args)                                      \
    cpu::name args;                                                     \
  }
#include "dispatch/op_table.def"
#undef ADNN_OP
#undef ADNN_DISPATCH_CUDA

// Whether f16/bf16 attention on q's device runs the tensor-core kernel (kernels/attention_mma.cuh).
inline bool attention_tensor_cores(const Tensor& q) {
#if ADNN_WITH_CUDA_BACKEND
  return q.device().is_cuda() && cuda::has_tensor_cores();
#else
  (void)q;
  return false;
#endif
}

// Whether q's device is a real GPU (not the emulator): the attention op's automatic choice
// between the fused kernels and the GEMM composition is by speed measured on one.
inline bool on_real_gpu(const Tensor& q) {
#if ADNN_WITH_CUDA_BACKEND
  return q.device().is_cuda() && !cuda::is_emulated();
#else
  (void)q;
  return false;
#endif
}

}  // namespace adnn::backend
