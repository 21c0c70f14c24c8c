// adnn::metrics: classification metrics against values computed by hand, AUC ties, absent
// classes, and non-finite probabilities (refused: before the library took these metrics over
// from the example, a NaN made the AUC tie loop spin forever).
#include <adnn/data/image.hpp>
#include <adnn/data/transforms.hpp>
#include <adnn/metrics/classification.hpp>
#include <adnn/metrics/statistics.hpp>
#include <adnn/nn/module.hpp>
#include <adnn/nn/tta.hpp>
#include <adnn/ops/ops.hpp>

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
    CHECK(r.macro_precision == doctest::Approx((1.0 + 0.5 + 0.5) / 3));
    CHECK(r.macro_recall == doctest::Approx((2.0 / 3 + 0.5 + 1.0) / 3));
    // weighted by support 3, 2, 1 of 6
    CHECK(r.weighted_precision == doctest::Approx((3 * 1.0 + 2 * 0.5 + 1 * 0.5) / 6));  // 0.75
    CHECK(r.weighted_recall == doctest::Approx((3 * 2.0 / 3 + 2 * 0.5 + 1 * 1.0) / 6));  // = accuracy 2/3
    CHECK(r.weighted_recall == doctest::Approx(r.accuracy));
    CHECK(r.weighted_f1 == doctest::Approx((3 * 0.8 + 2 * 0.5 + 1 * 2.0 / 3) / 6));
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

  TEST_CASE("statistics: mean ± std (n − 1), paired t-test, Bonferroni and McNemar against hand-computed values") {
    using namespace adnn::metrics;
    const std::vector<double> x{1, 2, 3, 4};
    const MeanStd ms = mean_std(x);
    CHECK(ms.n == 4);
    CHECK(ms.mean == doctest::Approx(2.5));
    CHECK(ms.std == doctest::Approx(std::sqrt(5.0 / 3)));  // squares 2.25+0.25+0.25+2.25 = 5, over n − 1 = 3
    const std::vector<double> one{0.7};
    CHECK(mean_std(one).std == 0.0);
    // five seeds: d = a − b = .02 .03 .01 .01 .03, mean .02, sd .01 (squares sum 4e-4 over 4),
    // t = .02 / (.01 / √5) = 2√5 = 4.4721, df 4; two-sided p from the t(4) CDF's closed form
    // F(t) = 1/2 + 3/8 · u · (1 − u²/12 ... ) with u = t / √(1 + t²/4): p = 0.0110565
    const std::vector<double> a{0.70, 0.72, 0.68, 0.71, 0.69}, b{0.68, 0.69, 0.67, 0.70, 0.66};
    const PairedTTest t = paired_t_test(a, b);
    CHECK(t.n == 5);
    CHECK(t.df == 4);
    CHECK(t.mean_diff == doctest::Approx(0.02));
    CHECK(t.sd_diff == doctest::Approx(0.01));
    CHECK(t.t == doctest::Approx(2 * std::sqrt(5.0)));
    CHECK(t.p_value == doctest::Approx(0.0110565).epsilon(1e-5));
    const PairedTTest rev = paired_t_test(b, a);  // symmetric: the same p, t negated
    CHECK(rev.t == doctest::Approx(-t.t));
    CHECK(rev.p_value == doctest::Approx(t.p_value));
    CHECK(paired_t_test(a, a).p_value == 1.0);  // no difference at all
    CHECK(paired_t_test(a, a).t == 0.0);
    const std::vector<double> a_plus{0.71, 0.73, 0.69, 0.72, 0.70};  // a + .01 exactly: sd 0
    CHECK(paired_t_test(a_plus, a).p_value == 0.0);
    CHECK_THROWS_WITH_AS(paired_t_test(std::vector<double>{0.5}, std::vector<double>{0.4}),
                         doctest::Contains("at least 2 pairs"), Error);
    CHECK_THROWS_WITH_AS(paired_t_test(a, one), doctest::Contains("5 values against 1"), Error);
    // Bonferroni: p · m, capped at 1
    CHECK(bonferroni(0.02, 3) == doctest::Approx(0.06));
    CHECK(bonferroni(0.5, 3) == 1.0);
    CHECK(bonferroni(t.p_value, 4) == doctest::Approx(4 * 0.0110565).epsilon(1e-5));
    CHECK_THROWS_AS(bonferroni(0.1, 0), Error);
    // McNemar: 20 samples, both right 5, only A 10, only B 3, both wrong 2.
    // chi2 = (|10 − 3| − 1)² / 13 = 36/13 = 2.76923; p = P(χ²₁ > 2.769) = erfc(√(chi2/2)) = 0.0960923;
    // exact: 2 · P(Bin(13, 1/2) ≤ 3) = 2 · (1 + 13 + 78 + 286) / 8192 = 0.0922852
    std::vector<bool> ra, rb;
    auto add = [&](int n, bool x, bool y) {
      for (int i = 0; i < n; ++i) ra.push_back(x), rb.push_back(y);
    };
    add(5, true, true);
    add(10, true, false);
    add(3, false, true);
    add(2, false, false);
    const McNemar m = mcnemar(ra, rb);
    CHECK(m.n == 20);
    CHECK(m.both_right == 5);
    CHECK(m.only_a == 10);
    CHECK(m.only_b == 3);
    CHECK(m.both_wrong == 2);
    CHECK(m.chi2 == doctest::Approx(36.0 / 13));
    CHECK(m.p_value == doctest::Approx(std::erfc(std::sqrt(36.0 / 13 / 2))));
    CHECK(m.p_value == doctest::Approx(0.0960923).epsilon(1e-5));
    CHECK(m.exact_p_value == doctest::Approx(2.0 * 378 / 8192));
    const McNemar same = mcnemar(ra, ra);  // no discordant pair
    CHECK(same.chi2 == 0.0);
    CHECK(same.p_value == 1.0);
    CHECK(same.exact_p_value == 1.0);
    CHECK_THROWS_WITH_AS(mcnemar(ra, std::vector<bool>{true}), doctest::Contains("20 predictions against 1"), Error);
  }

  TEST_CASE("TTA flip: the probabilities are the mean of the image's and its mirror's forward passes") {
    // a tiny classifier that sees where things are: (N, 2, 3, 1) -> flatten -> Linear(6, 3)
    struct Tiny : nn::Module {
      std::shared_ptr<nn::Linear> fc = register_module("fc", std::make_shared<nn::Linear>(6, 3));
      Tensor forward(const Tensor& x) override { return (*fc)(x.reshape({x.size(0), 6})); }  // (N, 3)
    };
    manual_seed(3);
    Tiny m;
    const Tensor x = randn({2, 2, 3, 1});  // (N, H, W, C)
    const Tensor mirrored = nn::hflip_nhwc(x);  // (N, H, W, C)
    const std::vector<double> xv = x.to_vector(), mv = mirrored.to_vector();
    for (int64_t i = 0; i < 2 * 2; ++i)  // each (n, h) row reversed along W
      for (int64_t w = 0; w < 3; ++w) CHECK(mv[size_t(i * 3 + w)] == xv[size_t(i * 3 + 2 - w)]);
    NoGradGuard ng;
    const std::vector<double> p0 = softmax(m(x), 1).to_vector(), p1 = softmax(m(mirrored), 1).to_vector();
    const std::vector<double> none = nn::predict_probabilities(m, x, nn::Tta::none).to_vector();
    const std::vector<double> flip = nn::predict_probabilities(m, x, nn::Tta::flip).to_vector();
    REQUIRE(flip.size() == 6);
    bool differs = false;
    for (size_t i = 0; i < 6; ++i) {
      CHECK(none[i] == doctest::Approx(p0[i]));
      CHECK(flip[i] == doctest::Approx((p0[i] + p1[i]) / 2));
      differs = differs || std::fabs(p0[i] - p1[i]) > 1e-4;
    }
    CHECK(differs);  // the mirror is a different input to this model: the test can fail
    CHECK(nn::parse_tta("flip", "eval --tta") == nn::Tta::flip);
    CHECK_THROWS_WITH_AS(nn::parse_tta("rot90", "eval --tta"),
                         doctest::Contains("eval --tta takes none|flip|tencrop, got 'rot90'"), Error);
  }

  TEST_CASE("TTA tencrop: the mean over the views training's crop_resize makes (five crops, their mirrors)") {
    // a classifier that records what it is shown: (N, 26, 25, 1) -> flatten -> Linear(650, 3);
    // not square, so a window's height and width cannot be mixed up unseen
    constexpr int64_t H = 26, W = 25;
    struct Recorder : nn::Module {
      std::vector<Tensor> seen;  // each (N, H, W, 1)
      std::shared_ptr<nn::Linear> fc = register_module("fc", std::make_shared<nn::Linear>(H* W, 3));
      Tensor forward(const Tensor& x) override {
        seen.push_back(x.clone());
        return (*fc)(x.reshape({x.size(0), H * W}));  // (N, 3)
      }
    };
    manual_seed(5);
    Recorder m;
    const Tensor x = rand({2, H, W, 1}) * 255.0;  // (N, H, W, C), pixel values
    NoGradGuard ng;
    const std::vector<double> p = nn::predict_probabilities(m, x, nn::Tta::tencrop).to_vector();  // (N, K)
    REQUIRE(m.seen.size() == 10);
    // the reference views from the loader's own transforms: crop_resize (24 x 23 windows: 2·floor(S/24)
    // = 2 pixels off each side) and hflip on data::Image, the order top-left, top-right,
    // bottom-left, bottom-right, centre
    const int windows[5][2] = {{0, 0}, {0, 2}, {2, 0}, {2, 2}, {1, 1}};
    std::vector<double> ref(6, 0.0);
    for (int64_t n = 0; n < 2; ++n) {
      const data::Image img = data::from_tensor(x.select(0, n));
      for (int k = 0; k < 5; ++k) {
        const data::Image crop = data::crop_resize(img, windows[k][0], windows[k][1], H - 2, W - 2, H, W);
        for (int mirrored = 0; mirrored < 2; ++mirrored) {
          const data::Image view = mirrored ? data::hflip(crop) : crop;
          const std::vector<double> got = m.seen[size_t(2 * k + mirrored)].select(0, n).to_vector();
          REQUIRE(got.size() == view.pixels.size());
          double worst = 0;
          for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - view.pixels[i]));
          CHECK_MESSAGE(worst < 1e-3, "view ", 2 * k + mirrored, " of image ", n, " differs by ", worst);
          const std::vector<double> q =
              softmax((*m.fc)(data::to_tensor(view).reshape({1, H * W})), 1).to_vector();  // (1, K)
          for (size_t j = 0; j < 3; ++j) ref[size_t(n) * 3 + j] += q[j] / 10;
        }
      }
    }
    const std::vector<double> flip = nn::predict_probabilities(m, x, nn::Tta::flip).to_vector();
    bool differs = false;
    for (size_t i = 0; i < 6; ++i) {
      CHECK(p[i] == doctest::Approx(ref[i]).epsilon(1e-5));
      differs = differs || std::fabs(p[i] - flip[i]) > 1e-4;
    }
    CHECK(differs);  // the crops are other inputs than the image and its mirror: the test can fail
    // small sides lose 2 pixels (7 x 5 -> windows 5 x 3), sides below 3 keep theirs; the
    // output keeps the input's size
    for (const auto& [h, w] : {std::pair<int64_t, int64_t>{7, 5}, {1, 3}, {48, 48}}) {
      const std::vector<Tensor> crops = nn::five_crops_nhwc(randn({1, h, w, 2}));
      REQUIRE(crops.size() == 5);
      for (const Tensor& c : crops) CHECK(c.sizes() == std::vector<int64_t>{1, h, w, 2});
    }
    {  // at 48 (the models' size) the windows are 44 x 44: the bottom-left one at (4, 0)
      const Tensor y = rand({1, 48, 48, 1}) * 255.0;  // (1, H, W, C)
      const std::vector<double> got = nn::five_crops_nhwc(y)[2].to_vector();
      const data::Image want = data::crop_resize(data::from_tensor(y.select(0, 0)), 4, 0, 44, 44, 48, 48);
      double worst = 0;
      for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(got[i] - want.pixels[i]));
      CHECK(worst < 1e-3);
    }
    CHECK(nn::parse_tta("tencrop", "eval --tta") == nn::Tta::tencrop);
    CHECK(std::string(nn::tta_name(nn::Tta::tencrop)) == "tencrop");
    CHECK_THROWS_WITH_AS(nn::five_crops_nhwc(randn({3, 4})),
                         doctest::Contains("five_crops_nhwc: x must be a (N, H, W, C)"), Error);
  }
}
