#pragma once
// Test-time augmentation: class probabilities averaged over transformed copies of the input.
#include <adnn/nn/module.hpp>

#include <string>
#include <vector>

namespace adnn::nn {

enum class Tta {
  none,  // softmax(model(x))
  flip,  // (softmax(model(x)) + softmax(model(mirror(x)))) / 2, mirror = left-right flip
  // the mean over ten views: the four corner crops and the centre crop of side S - 2·floor(S/24)
  // (44 of 48: 84 % of the area), each resized back to S (bilinear, as training's random
  // resized crop, whose scales 0.8-1.0 it lies in for S >= 24), and the mirror of each
  tencrop,
};
// "none", "flip" or "tencrop"; anything else is an adnn::Error naming `what` (the flag) and the value.
Tta parse_tta(const std::string& s, const std::string& what);
const char* tta_name(Tta t);

// x (N, H, W, C) mirrored left to right (the W axis reversed), on x's device, with no host copy.
Tensor hflip_nhwc(const Tensor& x);

// The five crops of Tta::tencrop, each (N, H, W, C) on x's device, in the order top-left,
// top-right, bottom-left, bottom-right, centre: windows of (H - dH) x (W - dW) pixels,
// dS = 2·floor(S/24) but at least 2 (0 for S < 3), resized back to H x W bilinearly.
// Nothing is copied from the host (a CUDA graph can capture it).
std::vector<Tensor> five_crops_nhwc(const Tensor& x);

// Class probabilities (N, K) of a classifier of NHWC images x (N, H, W, C) under `tta`, on
// x's device. The model is run as it is (call eval() first for inference).
Tensor predict_probabilities(Module& model, const Tensor& x, Tta tta);

}  // namespace adnn::nn
