#pragma once
// Explanations of a classifier's decision (docs/explain.md):
//   - Grad-CAM and Grad-CAM++ on the outputs of any modules chosen by dotted name
//     (Module::get_submodule), captured with forward hooks and gradient (tensor) hooks, as
//     pytorch-grad-cam computes them: per layer, channel weights from the gradients, the
//     weighted sum of the activation maps, ReLU, min-max normalisation, bilinear upsampling
//     to the input (half-pixel centres, as cv2.resize / F.interpolate align_corners=False);
//     over layers, ReLU, mean and min-max normalisation again.
//   - Expected gradients (GradientSHAP without input noise by default): SHAP values as the
//     expectation over background images b and α ~ U(0, 1) of (x − b) · ∂f/∂x(b + α(x − b)).
//   - Integrated gradients from a baseline, midpoint Riemann sum over `steps` points.
// The explained quantity f is the class's logit (pytorch-grad-cam's ClassifierOutputTarget,
// captum's target). Images are NHWC (N, H, W, C) on the model's device; results are on the
// CPU. The model should be in eval mode. Its parameters are frozen (requires_grad off) for
// the duration of a call and restored after, so no parameter gradient is computed or left.
#include <adnn/nn/module.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace adnn::explain {

enum class CamMethod { gradcam, gradcam_pp };
const char* cam_method_name(CamMethod m);  // "gradcam", "gradcam++"

struct CamOptions {
  CamMethod method = CamMethod::gradcam;
  // Dotted module names whose outputs (N, h, w, c) are explained; at least one. For ADNN-FER
  // default_cam_layers() gives the CBAM-gated stage-5 map and the head map.
  std::vector<std::string> layers;
  // The explained class per image (N entries, or one for all); empty: the predicted class.
  std::vector<int64_t> classes;
};

struct CamResult {
  Tensor cam;                      // (N, H, W) f32 cpu: the aggregated map in [0, 1], input size
  std::vector<Tensor> layer_cams;  // per layer (N, H, W) f32 cpu: normalised and upsampled
  std::vector<Tensor> layer_maps;  // per layer (N, h, w) f32 cpu: ReLU(Σ_c w_c A_c), raw
  Tensor logits;                   // (N, K) f32 cpu
  Tensor probs;                    // (N, K) f32 cpu: softmax of the logits
  std::vector<int64_t> classes;    // the explained class of each image
};

// Grad-CAM / Grad-CAM++ of `model` for images x (N, H, W, C). One forward and one backward
// pass for the whole batch (the seed gradient is the one-hot of each image's class).
CamResult grad_cam(nn::Module& model, const Tensor& x, const CamOptions& o);

// The layers the ADNN-FER command line explains by default: "cbam_stage5" and "cbam_head"
// when the model has them (CBAM on), else the backbone's matching outputs.
std::vector<std::string> default_cam_layers(nn::Module& model);

// ---------------------------------------------------------------- attributions
struct Attribution {
  Tensor attr;                   // (N, H, W, C) f32 cpu: attribution of each input element
  Tensor pixel;                  // (N, H, W) f32 cpu: attr summed over channels
  Tensor logits;                 // (N, K) f32 cpu: at the explained images
  Tensor probs;                  // (N, K) f32 cpu
  std::vector<int64_t> classes;  // the explained class of each image
  std::vector<double> f_x;       // the explained logit at x, per image
  std::vector<double> f_ref;     // its mean over the background / its value at the baseline
};

struct ShapOptions {
  int64_t samples = 64;   // (b, α) draws per image
  uint64_t seed = 0;      // of the draws (a local generator: the global one is not touched)
  int64_t batch = 64;     // interpolated images per forward/backward pass
  double noise_std = 0;   // GradientSHAP's Gaussian input noise (0: expected gradients)
  // false: b uniform over the background and α ~ U(0, 1) (expected gradients, unbiased: the
  // attributions sum to f(x) − E_b[f(b)] in expectation). true: samples must be a multiple
  // of the background size; each background image gets samples / B points at the midpoints
  // α = (k + ½)/m — a deterministic quadrature whose sum converges to f(x) − mean_b f(b).
  bool stratified = false;
  // The background's logits (B, K), when already known (a caller explaining many images with
  // one background): f_ref then needs no forward pass over the background.
  Tensor background_logits;
};

// Logits (M, K) f32 cpu of images (M, H, W, C), `batch` at a time, without recording.
Tensor batch_logits(nn::Module& model, const Tensor& x, int64_t batch = 64);

// Expected gradients for images x (N, H, W, C) against background (B, H, W, C).
// classes: one per image, one for all, or empty for the predicted class.
Attribution expected_gradients(nn::Module& model, const Tensor& x, const Tensor& background,
                               const std::vector<int64_t>& classes, const ShapOptions& o = {});

// Integrated gradients (Sundararajan et al.) from `baseline` (1 or N, H, W, C) with `steps`
// midpoint-rule points: attr = (x − x') · mean_k ∂f/∂x(x' + (k + ½)/steps · (x − x')).
Attribution integrated_gradients(nn::Module& model, const Tensor& x, const Tensor& baseline,
                                 const std::vector<int64_t>& classes, int64_t steps = 64, int64_t batch = 64);

// ---------------------------------------------------------------- maps and facial regions
// Bilinear resize of a (h, w) map to (H, W), half-pixel centres, edges clamped (as
// F.interpolate(mode="bilinear", align_corners=False) and cv2.resize(INTER_LINEAR) when
// enlarging).
std::vector<double> upsample_bilinear(const std::vector<double>& map, int64_t h, int64_t w, int64_t H, int64_t W);
// pytorch-grad-cam's scale_cam_image without the resize: x − min, then / (1e-7 + max).
void normalize_min_max(std::vector<double>& map);

// Five landmarks (x, y) × 5: left eye, right eye, nose, mouth left, mouth right (pixels).
using Landmarks = std::array<double, 10>;
// The canonical landmarks of an S×S FER2013-style crop (these crops are roughly aligned but
// framed tighter than an ArcFace crop): the ArcFace 112×112 template moved by the similarity
// that puts its eyes where the mean FER2013 val face has them, (0.325 S, 0.375 S) and
// (0.675 S, 0.375 S). For S = 48: eyes (15.6, 18.0) (32.4, 18.0), nose (24.0, 27.6), mouth
// corners (17.0, 37.4) (31.0, 37.4). Coordinates are continuous (pixel i spans [i, i + 1)).
Landmarks canonical_landmarks(int64_t size);

enum class Region : int { eyes_brows = 0, nose = 1, mouth = 2, other = 3 };
inline constexpr int kRegions = 4;
const char* region_name(Region r);  // "eyes/brows", "nose", "mouth", "other"

// The region of each pixel of an H×W image (H·W entries, row-major) from five landmarks,
// with d the distance between the eyes and y_e their mean height:
//   eyes/brows: x in [left eye − 0.45 d, right eye + 0.45 d], y in [y_e − 0.55 d, y_e + 0.25 d)
//   nose:       x in [nose − 0.3 d, nose + 0.3 d],            y in [y_e + 0.25 d, nose + 0.2 d)
//   mouth:      x in [mouth left − 0.25 d, mouth right + 0.25 d], y in [y_m − 0.25 d, y_m + 0.35 d)
// (eyes first, then nose, then mouth win where they would overlap); everything else "other".
std::vector<Region> region_mask(const Landmarks& lm, int64_t H, int64_t W);
// The share of a non-negative map's total mass in each region (kRegions entries, summing to
// 1; all zero for an all-zero map). map: H·W values.
std::array<double, kRegions> region_fractions(const std::vector<double>& map, const std::vector<Region>& mask);

}  // namespace adnn::explain
