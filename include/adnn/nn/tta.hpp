#pragma once
// Test-time augmentation: class probabilities averaged over transformed copies of the input.
#include <adnn/nn/module.hpp>

#include <string>

namespace adnn::nn {

enum class Tta {
  none,  // softmax(model(x))
  flip,  // (softmax(model(x)) + softmax(model(mirror(x)))) / 2, mirror = left-right flip
};
// "none" or "flip"; anything else is an adnn::Error naming `what` (the flag) and the value.
Tta parse_tta(const std::string& s, const std::string& what);
const char* tta_name(Tta t);

// x (N, H, W, C) mirrored left to right (the W axis reversed), on x's device.
Tensor hflip_nhwc(const Tensor& x);

// Class probabilities (N, K) of a classifier of NHWC images x (N, H, W, C) under `tta`, on
// x's device. The model is run as it is (call eval() first for inference).
Tensor predict_probabilities(Module& model, const Tensor& x, Tta tta);

}  // namespace adnn::nn
