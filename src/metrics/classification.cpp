// Classification metrics (include/adnn/metrics/classification.hpp).
#include <adnn/metrics/classification.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace adnn::metrics {

namespace {

// Mann–Whitney AUC of scores already checked to be finite: sort, give tied runs their mean
// rank, and compare the positives' rank sum with its minimum.
double auc_by_ranks(std::vector<std::pair<float, bool>>& s) {
  const size_t n = s.size();
  std::sort(s.begin(), s.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double rank_sum = 0;
  int64_t pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && s[j].first == s[i].first) ++j;  // the tied run [i, j)
    const double mean_rank = (double(i + 1) + double(j)) / 2;
    for (size_t t = i; t < j; ++t)
      if (s[t].second) {
        rank_sum += mean_rank;
        ++pos;
      }
    i = j;
  }
  const int64_t neg = int64_t(n) - pos;
  if (pos == 0 || neg == 0) return std::nan("");
  return (rank_sum - double(pos) * double(pos + 1) / 2) / (double(pos) * double(neg));
}

}  // namespace

double roc_auc(std::span<const float> scores, const std::vector<bool>& positive) {
  ADNN_CHECK(scores.size() == positive.size(), "roc_auc: ", scores.size(), " scores for ", positive.size(), " labels");
  std::vector<std::pair<float, bool>> s(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    ADNN_CHECK(std::isfinite(scores[i]), "roc_auc: score ", i, " is ", scores[i], " (scores must be finite)");
    s[i] = {scores[i], positive[i]};
  }
  return auc_by_ranks(s);
}

ClassificationReport classification_report(std::span<const float> probs, std::span<const int64_t> labels,
                                           int64_t num_classes) {
  ADNN_CHECK(num_classes >= 1, "classification_report: num_classes is ", num_classes, " (needs at least 1)");
  const size_t K = size_t(num_classes), N = labels.size();
  ADNN_CHECK(N >= 1, "classification_report: no samples");
  ADNN_CHECK(probs.size() == N * K, "classification_report: ", probs.size(), " probabilities for ", N, " samples of ",
             K, " classes (expected (N, K) = ", N * K, ")");
  for (size_t i = 0; i < N; ++i) {
    ADNN_CHECK(labels[i] >= 0 && labels[i] < num_classes, "classification_report: label ", labels[i], " of sample ", i,
               " is out of range for ", K, " classes");
    for (size_t c = 0; c < K; ++c)
      ADNN_CHECK(std::isfinite(probs[i * K + c]), "classification_report: probability of sample ", i, ", class ", c,
                 " is ", probs[i * K + c], " (probabilities must be finite: a diverged model?)");
  }

  ClassificationReport r;
  r.samples = int64_t(N);
  r.num_classes = num_classes;
  r.confusion.assign(K, std::vector<int64_t>(K, 0));
  double nll = 0;
  int64_t correct = 0;
  for (size_t i = 0; i < N; ++i) {
    const float* p = probs.data() + i * K;
    const size_t pred = size_t(std::max_element(p, p + K) - p);
    const size_t y = size_t(labels[i]);
    r.confusion[y][pred]++;
    correct += pred == y;
    nll -= std::log(std::max(double(p[y]), 1e-12));
  }
  r.log_loss = nll / double(N);
  r.accuracy = double(correct) / double(N);

  int64_t f1_classes = 0, auc_classes = 0;
  double f1_sum = 0, auc_sum = 0, prec_sum = 0, rec_sum = 0;
  std::vector<std::pair<float, bool>> s(N);
  for (size_t c = 0; c < K; ++c) {
    int64_t tp = r.confusion[c][c], fp = 0, fn = 0;
    for (size_t o = 0; o < K; ++o)
      if (o != c) {
        fp += r.confusion[o][c];
        fn += r.confusion[c][o];
      }
    r.support.push_back(tp + fn);
    const double prec = tp + fp ? double(tp) / double(tp + fp) : 0.0;
    const double rec = tp + fn ? double(tp) / double(tp + fn) : 0.0;
    r.precision.push_back(prec);
    r.recall.push_back(rec);
    r.f1.push_back(prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0.0);
    if (tp + fn > 0) {  // an absent class has no recall to average
      f1_sum += r.f1.back();
      prec_sum += prec;
      rec_sum += rec;
      ++f1_classes;
      const double w = double(tp + fn) / double(N);  // the class's share of the samples
      r.weighted_precision += w * prec;
      r.weighted_recall += w * rec;
      r.weighted_f1 += w * r.f1.back();
    }
    for (size_t i = 0; i < N; ++i) s[i] = {probs[i * K + c], size_t(labels[i]) == c};
    const double auc = auc_by_ranks(s);
    r.auc.push_back(auc);
    if (!std::isnan(auc)) {
      auc_sum += auc;
      ++auc_classes;
    }
  }
  r.macro_f1 = f1_classes ? f1_sum / double(f1_classes) : 0.0;  // N ≥ 1: some class occurs
  r.macro_precision = f1_classes ? prec_sum / double(f1_classes) : 0.0;
  r.macro_recall = f1_classes ? rec_sum / double(f1_classes) : 0.0;
  r.macro_auc = auc_classes ? auc_sum / double(auc_classes) : std::nan("");
  return r;
}

ClassificationReport classification_report(const Tensor& probs, const Tensor& labels) {
  ADNN_CHECK(probs.defined() && labels.defined(), "classification_report: undefined tensor");
  ADNN_CHECK(probs.dim() == 2 && probs.is_floating_point(),
             "classification_report: probs must be a (N, K) floating "
             "tensor, got ",
             dtype_name(probs.dtype()), shape_str(probs.sizes()));
  ADNN_CHECK(labels.dim() == 1 && !labels.is_floating_point() && labels.size(0) == probs.size(0),
             "classification_report: labels must be a (N) integer tensor matching probs ", shape_str(probs.sizes()),
             ", got ", dtype_name(labels.dtype()), shape_str(labels.sizes()));
  std::vector<float> p = probs.to_vector<float>();       // (N, K)
  std::vector<int64_t> y = labels.to_vector<int64_t>();  // (N)
  return classification_report(p, y, probs.size(1));
}

}  // namespace adnn::metrics
