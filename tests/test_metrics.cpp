// adnn::metrics: classification metrics against values computed by hand, AUC ties, absent
// classes, and non-finite probabilities (refused: before the library took these metrics over
// from the example, a NaN made the AUC tie loop spin forever).
#include <adnn/metrics/classification.hpp>

#include <cmath>
#include <limits>

#include "testing.hpp"

using namespace adnn;
using adnn::metrics::classification_report;
using adnn::metrics::roc_auc;

TEST_SUITE("metrics") {
  TEST_CASE("classification_report: accuracy, P/R/F1, AUC, confusion and log loss computed by hand") {
    // 6 samples, 3 classes                     label  predicted (argmax)
    const std::vector<float> probs{0.8f, 0.1f, 0.1f,   // 0      0
                                   0.5f, 0.3f, 0.2f,   // 0      0
                                   0.3f, 0.4f, 0.3f,   // 0      1
                                   0.2f, 0.7f, 0.1f,   // 1      1
                                   0.1f, 0.3f, 0.6f,   // 1      2
                                   0.2f, 0.2f, 0.6f};  // 2     2
    const std::vector<int64_t> labels{0, 0, 0, 1, 1, 2};
    const auto r = classification_report(probs, labels, 3);
    CHECK(r.samples == 6);
    CHECK(r.num_classes == 3);
    CHECK(r.accuracy == doctest::Approx(4.0 / 6));  // samples 0, 1, 3, 5 right
    CHECK(r.confusion == std::vector<std::vector<int64_t>>{{2, 1, 0}, {0, 1, 1}, {0, 0, 1}});
    CHECK(r.support == std::vector<int64_t>{3, 2, 1});
    // class 0: tp 2, fp 0, fn 1 -> P 1, R 2/3, F1 2·(2/3)/(5/3) = 0.8
    // class 1: tp 1, fp 1, fn 1 -> P 1/2, R 1/2, F1 1/2
    // class 2: tp 1, fp 1, fn 0 -> P 1/2, R 1, F1 2·(1/2)/(3/2) = 2/3
    CHECK(r.precision[0] == doctest::Approx(1.0));
    CHECK(r.recall[0] == doctest::Approx(2.0 / 3));
    CHECK(r.f1[0] == doctest::Approx(0.8));
    CHECK(r.precision[1] == doctest::Approx(0.5));
    CHECK(r.recall[1] == doctest::Approx(0.5));
    CHECK(r.f1[1] == doctest::Approx(0.5));
    CHECK(r.precision[2] == doctest::Approx(0.5));
    CHECK(r.recall[2] == doctest::Approx(1.0));
    CHECK(r.f1[2] == doctest::Approx(2.0 / 3));
    CHECK(r.macro_f1 == doctest::Approx((0.8 + 0.5 + 2.0 / 3) / 3));
    // one-vs-rest AUC = share of (positive, negative) pairs ordered right, ties counting 1/2:
    // class 0: positives .8 .5 .3 vs negatives .2 .1 .2: all 9 pairs right -> 1
    // class 1: positives .7 .3 vs negatives .1 .3 .4 .2: .7 beats 4; .3 beats .1 and .2,
    //          ties .3 (1/2), loses to .4 -> 6.5 / 8 = 0.8125
    // class 2: positive .6 vs negatives .1 .2 .3 .1 .6: 4 wins + 1 tie -> 4.5 / 5 = 0.9
    CHECK(r.auc[0] == doctest::Approx(1.0));
    CHECK(r.auc[1] == doctest::Approx(0.8125));
    CHECK(r.auc[2] == doctest::Approx(0.9));
    CHECK(r.macro_auc == doctest::Approx((1.0 + 0.8125 + 0.9) / 3));
    // mean −log p[label]: p[label] = .8 .5 .3 .7 .3 .6
    const double nll = -(std::log(0.8) + std::log(0.5) + std::log(0.3) + std::log(0.7) + std::log(0.3) + std::log(0.6));
    CHECK(r.log_loss == doctest::Approx(nll / 6).epsilon(1e-6));

    // the tensor overload gives the same report
    const auto t = classification_report(from_vector(std::vector<double>(probs.begin(), probs.end()), {6, 3}),
                                         from_vector(std::vector<double>{0, 0, 0, 1, 1, 2}, {6}, DType::i64));
    CHECK(t.confusion == r.confusion);
    CHECK(t.auc == r.auc);
    CHECK(t.macro_f1 == r.macro_f1);
  }

  TEST_CASE("roc_auc: ties share their mean rank") {
    // the classic example: positives .35 .8, negatives .1 .4 -> pairs right: 3 of 4
    CHECK(roc_auc(std::vector<float>{0.1f, 0.4f, 0.35f, 0.8f}, {false, false, true, true}) == doctest::Approx(0.75));
    // everything tied: every pair counts 1/2
    CHECK(roc_auc(std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}, {true, false, true, false}) == doctest::Approx(0.5));
    // a tied run in the middle: positives .2 .5 .9, negatives .5 .5 .1
    // .2: beats .1 (1); .5: ties .5 .5 (1/2 + 1/2), beats .1 (1); .9: beats 3 -> 6 / 9
    CHECK(roc_auc(std::vector<float>{0.2f, 0.5f, 0.9f, 0.5f, 0.5f, 0.1f}, {true, true, true, false, false, false}) ==
          doctest::Approx(6.0 / 9));
    // undefined without positives or without negatives
    CHECK(std::isnan(roc_auc(std::vector<float>{0.1f, 0.2f}, {false, false})));
    CHECK(std::isnan(roc_auc(std::vector<float>{0.1f, 0.2f}, {true, true})));
  }

  TEST_CASE("a class with no samples is left out of the macro averages instead of making them NaN") {
    // 4 samples, 3 classes, class 2 never the label (but predicted once)
    const std::vector<float> probs{0.6f, 0.3f,  0.1f,    // label 0, predicted 0
                                   0.2f, 0.7f,  0.1f,    // label 1, predicted 1
                                   0.3f, 0.2f,  0.5f,    // label 1, predicted 2
                                   0.9f, 0.05f, 0.05f};  // label 0, predicted 0
    const auto r = classification_report(probs, std::vector<int64_t>{0, 1, 1, 0}, 3);
    CHECK(r.support == std::vector<int64_t>{2, 2, 0});
    // class 0: P 1, R 1, F1 1; class 1: tp 1, fp 0, fn 1 -> F1 2/3; class 2: tp 0, fp 1 -> 0
    CHECK(r.f1[0] == doctest::Approx(1.0));
    CHECK(r.f1[1] == doctest::Approx(2.0 / 3));
    CHECK(r.precision[2] == 0.0);
    CHECK(r.recall[2] == 0.0);
    CHECK(r.f1[2] == 0.0);
    CHECK(r.macro_f1 == doctest::Approx((1.0 + 2.0 / 3) / 2));  // not (1 + 2/3 + 0) / 3
    // AUC: class 0: positives .6 .9 above negatives .2 .3 -> 1; class 1: positives .7 .2 vs
    // negatives .3 .05 -> 3 of 4; class 2: no positive -> NaN, not averaged
    CHECK(r.auc[0] == doctest::Approx(1.0));
    CHECK(r.auc[1] == doctest::Approx(0.75));
    CHECK(std::isnan(r.auc[2]));
    CHECK(r.macro_auc == doctest::Approx(0.875));
    // only one class present: no class has both positives and negatives, AUC is undefined
    const auto one = classification_report(std::vector<float>{0.9f, 0.1f, 0.6f, 0.4f}, std::vector<int64_t>{0, 0}, 2);
    CHECK(one.accuracy == 1.0);
    CHECK(one.macro_f1 == doctest::Approx(1.0));
    CHECK(std::isnan(one.macro_auc));
  }

  TEST_CASE("non-finite probabilities and bad shapes or labels are refused with the culprit named") {
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    // a diverged model: NaN everywhere (this used to hang in the AUC's tie loop)
    const std::vector<float> all_nan(6 * 3, nan);
    CHECK_THROWS_WITH_AS(classification_report(all_nan, std::vector<int64_t>{0, 1, 2, 0, 1, 2}, 3),
                         doctest::Contains("probability of sample 0, class 0 is nan"), Error);
    std::vector<float> one_bad{0.5f, 0.5f, 0.2f, 0.8f, 0.9f, 0.1f};
    one_bad[3] = inf;
    CHECK_THROWS_WITH_AS(classification_report(one_bad, std::vector<int64_t>{0, 1, 0}, 2),
                         doctest::Contains("probability of sample 1, class 1 is inf"), Error);
    one_bad[3] = -inf;
    CHECK_THROWS_AS(classification_report(one_bad, std::vector<int64_t>{0, 1, 0}, 2), Error);
    CHECK_THROWS_WITH_AS(roc_auc(std::vector<float>{0.1f, nan, 0.3f}, {true, false, true}),
                         doctest::Contains("roc_auc: score 1 is nan"), Error);
    // the tensor overload checks too
    Tensor p = from_vector(std::vector<double>{0.5, NAN, 0.2, 0.8}, {2, 2});
    CHECK_THROWS_WITH_AS(classification_report(p, from_vector(std::vector<double>{0, 1}, {2}, DType::i64)),
                         doctest::Contains("is nan"), Error);
    CHECK_THROWS_WITH_AS(classification_report(p, from_vector(std::vector<double>{0, 1, 1}, {3}, DType::i64)),
                         doctest::Contains("labels must be a (N) integer tensor"), Error);
    // labels out of range, wrong sizes, no samples
    const std::vector<float> ok{0.5f, 0.5f, 0.2f, 0.8f};
    CHECK_THROWS_WITH_AS(classification_report(ok, std::vector<int64_t>{0, 2}, 2),
                         doctest::Contains("label 2 of sample 1 is out of range for 2 classes"), Error);
    CHECK_THROWS_WITH_AS(classification_report(ok, std::vector<int64_t>{0, -1}, 2), doctest::Contains("label -1"),
                         Error);
    CHECK_THROWS_WITH_AS(classification_report(ok, std::vector<int64_t>{0, 1, 1}, 2),
                         doctest::Contains("4 probabilities for 3 samples of 2 classes"), Error);
    CHECK_THROWS_WITH_AS(classification_report(std::vector<float>{}, std::vector<int64_t>{}, 2),
                         doctest::Contains("no samples"), Error);
  }
}
