#pragma once
// Gather/scatter geometry, shared by the CPU twin (src/cpu/index.cpp) and kernels/index.cuh.
#include "common/hd.hpp"

namespace adnn::common {

constexpr int kGatherMaxDims = 8;
struct GatherGeom {
  int ndim, dim;
  int64_t size[kGatherMaxDims];     // index / out sizes
  int64_t xstride[kGatherMaxDims];  // x strides (contiguous x)
  int64_t xsize_dim;                // x's size along dim (an index outside it reads 0, adds nothing)
};

}  // namespace adnn::common
