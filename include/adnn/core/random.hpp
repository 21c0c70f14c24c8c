#pragma once
// Capture and restore of the global random stream (the generator behind rand, randn,
// dropout, initialisation …), e.g. to checkpoint a training run and resume it exactly.
#include <adnn/core/tensor.hpp>

#include <array>
#include <cstdint>

namespace adnn {

// The four words of a xoshiro256** state; all zero is not a valid state.
using RngState = std::array<uint64_t, 4>;

RngState get_rng_state();  // of default_generator()
// Makes default_generator() continue exactly where `s` was captured; refuses the all-zero state.
void set_rng_state(const RngState& s);

}  // namespace adnn
