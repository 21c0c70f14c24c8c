#pragma once
// Statistics for comparing training runs (docs/results.md, "Statistics"): mean and sample
// standard deviation over seeds, the paired t-test over seeds with a Bonferroni correction,
// and McNemar's test on the per-sample predictions of two runs. The t, χ² and binomial
// distributions are Boost.Math's.
#include <cstdint>
#include <span>
#include <vector>

namespace adnn::metrics {

struct MeanStd {
  int64_t n = 0;
  double mean = 0;
  double std = 0;  // sample standard deviation (n − 1 in the denominator); 0 when n == 1
};
// n ≥ 1 finite values, else an adnn::Error.
MeanStd mean_std(std::span<const double> x);

// Two-sided paired t-test of a against b (same length n ≥ 2, pair i from the same seed):
// d = a − b, t = mean(d) / (sd(d) / √n) with n − 1 degrees of freedom. When every difference
// is the same, t is ±∞ (p 0) or, when they are all 0, t is 0 (p 1).
struct PairedTTest {
  int64_t n = 0;
  double mean_diff = 0, sd_diff = 0;
  double t = 0, df = 0;
  double p_value = 1;
};
PairedTTest paired_t_test(std::span<const double> a, std::span<const double> b);

// Bonferroni's correction of one p-value out of `comparisons` ≥ 1 made: min(1, p · m).
double bonferroni(double p, int64_t comparisons);

// McNemar's test on two classifiers' per-sample correctness (same samples, same order):
// b = samples only A gets right, c = only B. chi2 = (|b − c| − 1)² / (b + c) (Edwards'
// continuity correction; 0 when |b − c| ≤ 1), p from χ² with 1 degree of freedom; the exact
// variant's p is the two-sided binomial min(1, 2 · P(X ≤ min(b, c))), X ~ Bin(b + c, 1/2).
// b + c == 0: chi2 0, both p 1.
struct McNemar {
  int64_t n = 0, both_right = 0, only_a = 0, only_b = 0, both_wrong = 0;
  double chi2 = 0, p_value = 1, exact_p_value = 1;
};
McNemar mcnemar(const std::vector<bool>& a_correct, const std::vector<bool>& b_correct);

}  // namespace adnn::metrics
