// ADNN-FER: configurations, metrics, and the trainer end to end on a slice of the real
// FER2013 (../shared/data/fer2013): the loss falls, accuracy beats the majority class, an
// interrupted run resumes to the same weights bit for bit, eval writes its report and PNG,
// predict runs, and the committed nano checkpoint is a real model.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fer.hpp"
#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

std::string fer_dir() { return std::string(ADNN_SOURCE_DIR) + "/../shared/data/fer2013"; }
bool have_fer() { return fs::is_directory(fer_dir() + "/train") && fs::is_directory(fer_dir() + "/val"); }

adnn_fer::Args args(std::string cmd, std::vector<std::string> words) {
  std::vector<std::string> all{"adnn-fer", std::move(cmd)};
  all.insert(all.end(), words.begin(), words.end());
  std::vector<char*> argv;
  for (auto& w : all) argv.push_back(w.data());
  return adnn_fer::parse_args(int(argv.size()), argv.data());
}

std::vector<std::vector<double>> read_csv(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  std::vector<std::vector<double>> rows;
  while (std::getline(f, line)) {
    std::vector<double> r;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) r.push_back(std::stod(cell));
    rows.push_back(r);
  }
  return rows;
}

std::string digest(const std::string& weights) {
  io::SafeTensors st = io::load_safetensors(weights);
  uint64_t h = 1469598103934665603ull;
  for (auto& [n, t] : st.tensors) {
    Tensor c = t.contiguous();
    const unsigned char* b = static_cast<const unsigned char*>(c.data_ptr());
    for (size_t i = 0; i < size_t(c.numel()) * c.element_size(); ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  return std::to_string(h);
}

std::string temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("adnn_fer_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

}  // namespace

TEST_SUITE("fer") {
  TEST_CASE("configurations: nano keeps a 6x6 token grid, paper matches the stated architecture") {
    adnn_fer::AdnnFer nano(adnn_fer::fer_config("adnn_fer_nano"));
    CHECK(nano.token_grid() == std::pair<int64_t, int64_t>{6, 6});
    nano.eval();
    NoGradGuard ng;
    CHECK(nano(zeros({2, 48, 48, 1})).sizes() == Shape{2, 7});
    adnn_fer::FerConfig p = adnn_fer::fer_config("adnn_fer_paper");
    CHECK(p.backbone == "efficientnet_b5");
    CHECK(p.layers == 6);
    CHECK(p.d_model == 2048);
    CHECK(p.heads == 8);
    CHECK(p.d_ff == 4096);
    // the config round-trips through checkpoint metadata
    CHECK(adnn_fer::FerConfig::from_map(p.to_map()).to_map() == p.to_map());
    CHECK_THROWS_WITH_AS(adnn_fer::fer_config("adnn_fer_huge"), doctest::Contains("unknown configuration 'adnn_fer_huge'"),
                         Error);
  }

  TEST_CASE("ablation switches change the model") {
    adnn_fer::FerConfig c = adnn_fer::fer_config("adnn_fer_nano");
    const int64_t full = adnn_fer::AdnnFer(c).num_parameters();
    c.cbam = false;
    const int64_t no_cbam = adnn_fer::AdnnFer(c).num_parameters();
    c.transformer = false;
    adnn_fer::AdnnFer plain(c);
    CHECK(no_cbam < full);
    CHECK(plain.num_parameters() < no_cbam);
    NoGradGuard ng;
    plain.eval();
    CHECK(plain(zeros({1, 48, 48, 1})).sizes() == Shape{1, 7});
  }

  TEST_CASE("metrics: accuracy, macro-F1, one-vs-rest AUC and the confusion matrix") {
    // 4 samples, 2 classes: labels 0 0 1 1; predictions 0 1 1 1
    std::vector<float> probs{0.9f, 0.1f, 0.4f, 0.6f, 0.2f, 0.8f, 0.3f, 0.7f};
    auto r = adnn_fer::make_report(probs, {0, 0, 1, 1}, {"a", "b"});
    CHECK(r.accuracy == doctest::Approx(0.75));
    CHECK(r.confusion == std::vector<std::vector<int64_t>>{{1, 1}, {0, 2}});
    CHECK(r.precision[1] == doctest::Approx(2.0 / 3));
    CHECK(r.recall[0] == doctest::Approx(0.5));
    CHECK(r.f1[0] == doctest::Approx(2.0 / 3));
    CHECK(r.f1[1] == doctest::Approx(0.8));
    CHECK(r.macro_f1 == doctest::Approx((2.0 / 3 + 0.8) / 2));
    CHECK(r.auc[1] == doctest::Approx(1.0));  // every positive scores above every negative
    CHECK(r.macro_auc == doctest::Approx(1.0));
    const std::string j = adnn_fer::report_json(r);
    CHECK(j.find("\"confusion_matrix\"") != std::string::npos);
  }

  TEST_CASE("the paper configuration runs forward and backward on the emulated device (reduced batch and size)") {
#if ADNN_WITH_CUDA_EMULATION && !defined(__SANITIZE_ADDRESS__)
    adnn_fer::FerConfig c = adnn_fer::fer_config("adnn_fer_paper");
    c.image_size = 64;  // 2x2 tokens: the full B5 + 6 x 2048-wide encoder, on a small input
    adnn_fer::AdnnFer m(c);
    m.to(Device("cuda"));
    m.train();
    Tensor x = randn({1, 64, 64, 3}).to(Device("cuda"));
    Tensor logits = m(x);
    CHECK(logits.sizes() == Shape{1, 7});
    cross_entropy(logits, zeros({1}, DType::i64).to(Device("cuda"))).backward();
    CHECK(m.head->weight.grad().defined());
    CHECK(m.effnet->conv_stem->weight.grad().defined());
#else
    MESSAGE("emulated device not built (or ASan build): skipped");
#endif
  }

  TEST_CASE("train: a few hundred steps on a slice of FER2013 learn (loss falls, accuracy beats the majority class)") {
#if defined(__SANITIZE_ADDRESS__)
    MESSAGE("ASan build: skipped (the release suite trains)");
    return;
#endif
    if (!have_fer()) {
      FAIL("FER2013 not found at " << fer_dir());
      return;
    }
    const std::string out = temp_dir("learn");
    REQUIRE(adnn_fer::cmd_train(args("train", {"--data", fer_dir(), "--out", out, "--device", "cpu", "--train-limit",
                                                "6400", "--val-limit", "700", "--epochs", "3", "--batch", "64",
                                                "--log-every", "1000"})) == 0);
    auto rows = read_csv(out + "/log.csv");
    REQUIRE(rows.size() == 3);
    // columns: epoch, step, lr, train_loss, train_acc, val_loss, val_acc, val_macro_f1, ...
    CHECK(rows[2][1] == 300);              // 3 epochs x 100 steps
    CHECK(rows[2][3] < rows[0][3]);        // training loss falls
    // the majority class (happy) is about 25% of FER2013 val
    auto val = adnn_fer::stratified_slice(std::make_shared<data::FolderDataset>(fer_dir() + "/val"), 700, 2);
    auto counts = val->class_counts();
    const double majority = double(*std::max_element(counts.begin(), counts.end())) / double(val->size());
    double best = 0;
    for (auto& r : rows) best = std::max(best, r[6]);
    INFO("best val accuracy " << best << ", majority class share " << majority);
    CHECK(best > majority + 0.05);
    CHECK(fs::exists(out + "/best.safetensors"));
    CHECK(fs::exists(out + "/config.json"));
    // eval writes the JSON report and the confusion-matrix PNG; predict runs on a real face
    REQUIRE(adnn_fer::cmd_eval(args("eval", {"--checkpoint", out + "/best.safetensors", "--data", fer_dir(),
                                              "--limit", "300", "--device", "cpu"})) == 0);
    CHECK(fs::file_size(out + "/eval_val.json") > 100);
    CHECK(fs::file_size(out + "/eval_val_confusion.png") > 1000);
    const std::string face = val->name(0);
    CHECK(adnn_fer::cmd_predict(args("predict", {"--checkpoint", out + "/best.safetensors", face})) == 0);
    fs::remove_all(out);
  }

  TEST_CASE("train --resume after an interruption gives bit-identical weights") {
#if defined(__SANITIZE_ADDRESS__)
    MESSAGE("ASan build: skipped (the release suite runs it)");
    return;
#endif
    if (!have_fer()) {
      FAIL("FER2013 not found at " << fer_dir());
      return;
    }
    const std::vector<std::string> common{"--data", fer_dir(), "--device", "cpu", "--train-limit", "320",
                                          "--val-limit", "64", "--epochs", "2", "--batch", "32", "--log-every", "1000"};
    const std::string a = temp_dir("straight"), b = temp_dir("resumed");
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> w = common;
      w.insert(w.end(), extra.begin(), extra.end());
      return w;
    };
    REQUIRE(adnn_fer::cmd_train(args("train", with({"--out", a}))) == 0);
    // interrupted in the middle of epoch 2 (step 14 of 20), then resumed
    REQUIRE(adnn_fer::cmd_train(args("train", with({"--out", b, "--stop-after", "14"}))) == 3);
    REQUIRE(adnn_fer::cmd_train(args("train", {"--resume", "--out", b, "--device", "cpu"})) == 0);
    CHECK(digest(a + "/last.safetensors") == digest(b + "/last.safetensors"));
    CHECK(digest(a + "/best.safetensors") == digest(b + "/best.safetensors"));
    fs::remove_all(a);
    fs::remove_all(b);
  }

  TEST_CASE("the committed adnn_fer_nano checkpoint loads and classifies FER2013 val well above chance") {
    const std::string ckpt = std::string(ADNN_SOURCE_DIR) + "/models/adnn_fer_nano.safetensors";
    REQUIRE(fs::exists(ckpt));
    auto model = adnn_fer::load_model(ckpt, kCPU);
    CHECK(model->config().name == "adnn_fer_nano");
    if (!have_fer()) {
      FAIL("FER2013 not found at " << fer_dir());
      return;
    }
    auto val = adnn_fer::stratified_slice(std::make_shared<data::FolderDataset>(fer_dir() + "/val"), 500, 7);
    auto r = adnn_fer::evaluate(*model, val, kCPU, 100);
    INFO("accuracy on 500 val images: " << r.accuracy);
    CHECK(r.accuracy > 0.45);
  }
}
