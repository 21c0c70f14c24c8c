// Mean ± std, paired t-test, Bonferroni, McNemar (include/adnn/metrics/statistics.hpp).
#include <adnn/core/error.hpp>
#include <adnn/metrics/statistics.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

#include <boost/math/distributions/binomial.hpp>
#include <boost/math/distributions/chi_squared.hpp>
#include <boost/math/distributions/students_t.hpp>

namespace adnn::metrics {

MeanStd mean_std(std::span<const double> x) {
  ADNN_CHECK(!x.empty(), "mean_std: no values");
  MeanStd r;
  r.n = int64_t(x.size());
  for (double v : x) {
    ADNN_CHECK(std::isfinite(v), "mean_std: non-finite value ", v);
    r.mean += v;
  }
  r.mean /= double(r.n);
  if (r.n > 1) {
    double ss = 0;
    for (double v : x) ss += (v - r.mean) * (v - r.mean);
    r.std = std::sqrt(ss / double(r.n - 1));
  }
  return r;
}

PairedTTest paired_t_test(std::span<const double> a, std::span<const double> b) {
  ADNN_CHECK(a.size() == b.size(), "paired_t_test: ", a.size(), " values against ", b.size(),
             " (a pair per seed is needed)");
  ADNN_CHECK(a.size() >= 2, "paired_t_test: needs at least 2 pairs, got ", a.size());
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  const MeanStd ms = mean_std(d);
  PairedTTest r;
  r.n = ms.n;
  r.mean_diff = ms.mean;
  r.sd_diff = ms.std;
  r.df = double(r.n - 1);
  // differences equal up to rounding: no spread to test against
  const double scale = std::max(1.0, std::fabs(ms.mean));
  if (ms.std <= 1e-12 * scale) {
    const bool zero = std::fabs(ms.mean) <= 1e-12;
    r.t = zero ? 0.0 : std::copysign(std::numeric_limits<double>::infinity(), ms.mean);
    r.p_value = zero ? 1.0 : 0.0;
    return r;
  }
  r.t = ms.mean / (ms.std / std::sqrt(double(r.n)));
  const boost::math::students_t dist(r.df);
  r.p_value = std::min(1.0, 2.0 * boost::math::cdf(boost::math::complement(dist, std::fabs(r.t))));
  return r;
}

double bonferroni(double p, int64_t comparisons) {
  ADNN_CHECK(comparisons >= 1, "bonferroni: comparisons must be >= 1, got ", comparisons);
  ADNN_CHECK(p >= 0 && p <= 1, "bonferroni: p-value ", p, " is not in [0, 1]");
  return std::min(1.0, p * double(comparisons));
}

McNemar mcnemar(const std::vector<bool>& a_correct, const std::vector<bool>& b_correct) {
  ADNN_CHECK(a_correct.size() == b_correct.size(), "mcnemar: ", a_correct.size(), " predictions against ",
             b_correct.size(), " (the same samples are needed)");
  McNemar r;
  r.n = int64_t(a_correct.size());
  for (size_t i = 0; i < a_correct.size(); ++i) {
    if (a_correct[i] && b_correct[i])
      ++r.both_right;
    else if (a_correct[i])
      ++r.only_a;
    else if (b_correct[i])
      ++r.only_b;
    else
      ++r.both_wrong;
  }
  const int64_t m = r.only_a + r.only_b;
  if (m == 0) return r;
  const double diff = std::max(0.0, std::fabs(double(r.only_a - r.only_b)) - 1.0);
  r.chi2 = diff * diff / double(m);
  r.p_value = boost::math::cdf(boost::math::complement(boost::math::chi_squared(1.0), r.chi2));
  const boost::math::binomial bin(double(m), 0.5);
  r.exact_p_value = std::min(1.0, 2.0 * boost::math::cdf(bin, double(std::min(r.only_a, r.only_b))));
  return r;
}

}  // namespace adnn::metrics
