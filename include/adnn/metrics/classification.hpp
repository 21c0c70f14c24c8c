#pragma once
// Classification metrics from predicted class probabilities: accuracy, mean NLL, per-class
// precision / recall / F1 / one-vs-rest ROC AUC / support, their macro averages, and the
// confusion matrix.
//
// Conventions (documented in docs/architecture.md):
// - the predicted class of a sample is the first index of its largest probability;
// - probabilities must be finite (NaN or ±Inf is an adnn::Error naming the sample and class);
//   they need not sum to 1 (any scores work for AUC, but `log_loss` assumes probabilities);
// - a class with no samples (support 0) has recall, F1 and AUC undefined: its recall and F1
//   are reported as 0 and its AUC as NaN, and it is left out of `macro_f1` and `macro_auc`,
//   which average only the classes that occur in `labels`;
// - one-vs-rest AUC is the Mann–Whitney statistic: tied scores share their mean rank (a tie
//   between a positive and a negative counts 1/2). A class whose samples are all the labels
//   (no negatives) also has AUC NaN and is left out of `macro_auc`; `macro_auc` is NaN only
//   when no class has both positives and negatives.
// - weighted averages (scikit-learn's "weighted avg") weight each class by its support / N,
//   so absent classes weigh nothing; macro precision and recall, like `macro_f1`, average
//   the classes with support > 0.
#include <adnn/core/tensor.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace adnn::metrics {

struct ClassificationReport {
  int64_t samples = 0, num_classes = 0;
  double accuracy = 0;
  double log_loss = 0;                             // mean −log p[label], p clamped below at 1e-12
  double macro_f1 = 0;                             // over the classes with support > 0
  double macro_auc = 0;                            // over the classes with a defined AUC; NaN when none has one
  double macro_precision = 0, macro_recall = 0;    // over the classes with support > 0
  double weighted_precision = 0, weighted_recall = 0, weighted_f1 = 0;  // weights support / N
  std::vector<double> precision, recall, f1, auc;  // (K); auc NaN where undefined
  std::vector<int64_t> support;                    // (K) samples per true class
  std::vector<std::vector<int64_t>> confusion;     // (K, K) [true][predicted]
};

// probs (N, K) row-major, labels (N) in [0, K). N ≥ 1, K ≥ 1.
ClassificationReport classification_report(std::span<const float> probs, std::span<const int64_t> labels,
                                           int64_t num_classes);
// probs: a (N, K) floating tensor, labels: a (N) integer tensor, on any device.
ClassificationReport classification_report(const Tensor& probs, const Tensor& labels);

// Binary ROC AUC of `scores` (N) for `positive` (N) by ranks (ties share their mean rank);
// NaN when there are no positives or no negatives. Scores must be finite.
double roc_auc(std::span<const float> scores, const std::vector<bool>& positive);

}  // namespace adnn::metrics
