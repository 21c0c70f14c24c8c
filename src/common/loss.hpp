#pragma once
// Parameters of the fused compound loss, shared by the CPU twin (src/cpu/loss.cpp) and
// kernels/loss.cuh. Layout: logits, targets (B, K); features (B, D); centers (K, D).
#include "common/hd.hpp"

namespace adnn::common {

struct CompoundParams {
  int64_t B, K, D;
  double l_ce, l_center, l_dls, eps;  // the weights λ of CE, center and DLS terms; DLS ε
};

}  // namespace adnn::common
