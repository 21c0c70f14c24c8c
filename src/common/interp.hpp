#pragma once
// Separable resampling geometry: the taps (index, weight) of every output row and column,
// computed once on the host (the plan of the interp family) and used by the CPU twin
// (src/cpu/interp.cpp) and the kernels (kernels/interp.cuh, uploaded to the device).
// Layout: x (N, H, W, C), y (N, OH, OW, C).
#include <adnn/ops/enums.hpp>

#include <vector>

#include "common/hd.hpp"

namespace adnn::common {

struct InterpGeom {
  int64_t N, H, W, C, OH, OW, ty, tx;  // ty, tx: taps per output row / column
};

// For each output row/col: `taps` (index, weight) pairs into the input.
struct InterpTaps {
  int64_t taps;                  // 1, 2 or 4
  std::vector<int64_t> index;    // out · taps
  std::vector<double> weight;    // out · taps
};
// Nearest (torch's floor rule), bilinear and bicubic (A = −0.75, border-clamped) taps.
InterpTaps interp_taps(int64_t in, int64_t out, InterpMode mode, bool align_corners);

}  // namespace adnn::common
