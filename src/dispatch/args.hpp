#pragma once
// The types the op table's entry points take: tensors, the shared argument structs of
// src/common, and the host-side tables some entries carry.
#include <adnn/core/tensor.hpp>
#include <adnn/ops/enums.hpp>

#include <vector>

#include "common/attention.hpp"
#include "common/conv.hpp"
#include "common/gemm.hpp"
#include "common/interp.hpp"
#include "common/loss.hpp"
#include "common/nms.hpp"
#include "common/optim.hpp"
#include "common/pool.hpp"

namespace adnn {

using common::AdamWStep;
using common::AttnGeom;
using common::BmmEpilogue;
using common::CompoundParams;
using common::ConvGeom;
using common::InterpGeom;
using common::PoolGeom;
using common::WarpGeom;

// One tensor of a multi-tensor AdamW step: parameter, gradient, the two moments (all
// contiguous f32 on one device), and its group's learning rate and weight decay.
struct AdamWTensor {
  Tensor p, g, m, v;
  float lr, wd;
};

}  // namespace adnn
