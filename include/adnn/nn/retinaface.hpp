#pragma once
// RetinaFace with a MobileNetV1-0.25 body (Pytorch_Retinaface's "mobilenet0.25"), with the
// checkpoint's parameter names. NHWC activations: input (N, H, W, 3) BGR minus the mean
// (104, 117, 123), any H and W.
//   body     stage1 (stride 8, 64 ch), stage2 (stride 16, 128 ch), stage3 (stride 32, 256 ch):
//            a 3×3/2 conv + BN + LeakyReLU 0.1 stem, then depthwise-separable blocks (3×3
//            depthwise + BN + LeakyReLU 0.1, 1×1 + BN + LeakyReLU 0.1)
//   fpn      1×1 laterals to 64 ch (BN + LeakyReLU 0.1); the coarser map upsampled (nearest) and
//            added, then a 3×3 merge (BN + LeakyReLU 0.1), top-down over the three levels
//   ssh1..3  context modules: 3×3 (32 ch) | 3×3→3×3 (16) | 3×3→3×3→3×3 (16), concatenated, ReLU
//   heads    per level a 1×1 conv with bias: ClassHead 2·2, BboxHead 2·4, LandmarkHead 2·10
//            outputs (2 anchors per position)
// Anchors are ordered level by level, row by row, column by column, anchor size innermost
// (vision::prior_boxes).
#include <adnn/nn/layers.hpp>

#include <string>

namespace adnn::nn {

// One conv (no bias, symmetric padding) + BatchNorm2d + LeakyReLU(slope) when slope >= 0, the
// modules owned by the Module that names them. After fold() an eval-mode run is one conv
// with the BN folded into its weight and bias.
struct ConvBNAct {
  std::shared_ptr<Conv2d> conv;
  std::shared_ptr<BatchNorm2d> bn;
  double slope = -1;
  Tensor folded_w, folded_b;
  ConvBNAct(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, double slope);
  Tensor run(const Tensor& x, bool training);  // (N, H, W, in) -> (N, OH, OW, out)
  void fold();
};

// torch's nn.Sequential(Conv2d, BatchNorm2d[, LeakyReLU]): children "0" and "1".
class ConvBN : public Module {
 public:
  ConvBN(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, double slope);
  Tensor forward(const Tensor& x) override { return c_.run(x, training_); }
  void fold_batch_norm() { c_.fold(); }

 private:
  ConvBNAct c_;
};

// MobileNetV1's depthwise-separable block: children "0", "1" (3×3 depthwise + BN) and "3",
// "4" (1×1 + BN); torch's 2 and 5 are the LeakyReLU 0.1 activations.
class MobileNetBlock : public Module {
 public:
  MobileNetBlock(int64_t in, int64_t out, int64_t stride);
  Tensor forward(const Tensor& x) override { return pw_.run(dw_.run(x, training_), training_); }
  void fold_batch_norm() {
    dw_.fold();
    pw_.fold();
  }

 private:
  ConvBNAct dw_, pw_;
};

class SSH : public Module {
 public:
  SSH(int64_t in, int64_t out);
  Tensor forward(const Tensor& x) override;  // (N, H, W, in) -> (N, H, W, out)
  std::shared_ptr<ConvBN> conv3X3, conv5X5_1, conv5X5_2, conv7X7_2, conv7x7_3;
};

struct RetinaFaceOutput {
  Tensor loc;    // (N, A, 4) box regressions
  Tensor conf;   // (N, A, 2) class probabilities (background, face)
  Tensor landm;  // (N, A, 10) landmark regressions
};

class RetinaFace : public Module {
 public:
  RetinaFace();
  RetinaFaceOutput forward_heads(const Tensor& x);  // x (N, H, W, 3)
  // (N, A, 16): loc (4), conf (2), landm (10) concatenated.
  Tensor forward(const Tensor& x) override;
  // Folds every BatchNorm into its conv (eval-mode inference; the parameters stay as loaded).
  void fold_batch_norm();

  std::shared_ptr<Module> body, fpn;
  std::shared_ptr<SSH> ssh1, ssh2, ssh3;
  std::shared_ptr<ModuleList> ClassHead, BboxHead, LandmarkHead;

 private:
  std::vector<std::shared_ptr<Module>> class_heads_, bbox_heads_, landmark_heads_;
};

// Builds the model and loads a Pytorch_Retinaface state dict (.safetensors, OIHW weights,
// the `module.` prefix removed) strictly: every tensor used, every shape checked. The model
// is returned in eval mode with its BatchNorms folded, on `device`.
std::shared_ptr<RetinaFace> load_retinaface(const std::string& path, Device device = kCPU);

}  // namespace adnn::nn
