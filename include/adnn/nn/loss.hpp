#pragma once
// Losses for ADNN-FER: cross-entropy from logits with soft targets and class weights, focal
// loss, distribution-aware label smoothing (DLS), center loss, and the paper's compound
// loss L = λ1·CE + λ2·center + λ3·DLS computed by one fused kernel.
#include <adnn/ops/ops.hpp>

#include <array>
#include <vector>

namespace adnn::nn {

// One-hot (B, K) f32 targets from int64 labels (B).
Tensor one_hot(const Tensor& labels, int64_t num_classes, DType dtype = DType::f32);

// logits (B, K), targets (B, K) a distribution per row (one-hot, smoothed or mixed),
// class_weights (K) or undefined. loss = Σ_i Σ_c w_c t_ic (−log p_ic) / Σ_i Σ_c w_c t_ic:
// with one-hot targets this is torch's weighted mean; unweighted, the plain batch mean.
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& class_weights = {});
// Focal loss (Lin et al.): Σ_c t_c (1 − p_c)^γ (−log p_c), weighted and normalised as above.
Tensor focal_loss(const Tensor& logits, const Tensor& targets, double gamma = 2.0, const Tensor& class_weights = {});

// DLS prior: π_c ∝ 1 / n_c from the training set's class counts, normalised to sum 1.
std::vector<double> dls_prior(const std::vector<int64_t>& class_counts);
// Smoothed targets q = (1 − ε) t + ε π.
Tensor dls_targets(const Tensor& targets, const Tensor& prior, double eps);
// DLS loss: cross-entropy of the logits against q (batch mean).
Tensor dls_loss(const Tensor& logits, const Tensor& targets, const Tensor& prior, double eps);

// Center loss (Wen et al. 2016): ½ mean_i ‖f_i − c_{y_i}‖², features (B, D), centers (K, D).
// Centers are not learned by the optimizer: update_centers moves them with rate α,
// c_j ← c_j − α Σ_{i: y_i = j} (c_j − f_i) / (1 + n_j), as in the paper.
Tensor center_loss(const Tensor& features, const Tensor& labels, const Tensor& centers);
void update_centers(Tensor& centers, const Tensor& features, const Tensor& labels, double alpha);

struct CompoundLossOptions {
  std::array<double, 3> lambda{0.60, 0.25, 0.15};  // CE, center, DLS
  double dls_eps = 0.1;
};
struct CompoundLoss {
  Tensor total;  // scalar, differentiable w.r.t. logits and features
  Tensor terms;  // (3): CE, center, DLS (detached, for logging)
};
// The fused compound loss: softmax, the three terms and their gradients in one pass over
// the logits and features (kernels/loss.cuh on cuda; the CPU twin on cpu). labels (B) int64
// are the classes whose centers the features are pulled to (the dominant class under mixup).
CompoundLoss compound_loss(const Tensor& logits, const Tensor& features, const Tensor& targets, const Tensor& labels,
                           const Tensor& centers, const Tensor& prior, const Tensor& class_weights,
                           const CompoundLossOptions& o = {});
// The same quantity from the unfused ops above (reference for tests and benchmarks).
CompoundLoss compound_loss_unfused(const Tensor& logits, const Tensor& features, const Tensor& targets,
                                   const Tensor& labels, const Tensor& centers, const Tensor& prior,
                                   const Tensor& class_weights, const CompoundLossOptions& o = {});

}  // namespace adnn::nn
