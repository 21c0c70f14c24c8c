#pragma once
// The CPU backend: one function per op-table entry (src/dispatch/op_table.def), declared
// here from the table, defined in src/cpu/<family>.cpp — each the CPU twin of
// kernels/<family>.cuh. Entries compute only: the ops (src/ops) validated the inputs and
// allocated the outputs (contiguous unless stated otherwise; inputs may have any strides).
#include "dispatch/args.hpp"

namespace adnn::cpu {

#define ADNN_OP(family, name, device, params, args) void name params;
#include "dispatch/op_table.def"
#undef ADNN_OP

}  // namespace adnn::cpu
