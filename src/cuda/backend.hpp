#pragma once
// The CUDA backend: one function per op-table entry (src/dispatch/op_table.def), declared
// here from the table, defined in src/cuda/<family>.cpp, each launching the kernels of
// kernels/<family>.cuh on the current stream (a real GPU, or the SIMT emulator).
#include "dispatch/args.hpp"

namespace adnn::cuda {

#define ADNN_OP(family, name, device, params, args) void name params;
#include "dispatch/op_table.def"
#undef ADNN_OP

}  // namespace adnn::cuda
