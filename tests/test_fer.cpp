// ADNN-FER: the model's configurations (library: include/adnn/nn/adnn_fer.hpp), and the
// adnn-fer command line run as a subprocess end to end on a slice of the real FER2013
// (../shared/data/fer2013): the loss falls, accuracy beats the majority class, an
// interrupted run resumes to the same weights bit for bit, eval writes its report and PNG,
// predict runs, and the committed nano checkpoint is a real model.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

std::string fer_dir() { return std::string(ADNN_SOURCE_DIR) + "/../shared/data/fer2013"; }
bool have_fer() { return fs::is_directory(fer_dir() + "/train") && fs::is_directory(fer_dir() + "/val"); }

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

#ifdef ADNN_FER_BIN
// Runs `adnn-fer WORDS...` (stdout and stderr to `log`); returns the exit status and the output.
std::pair<int, std::string> adnn_fer(const std::vector<std::string>& words, const std::string& log) {
  std::string cmd = ADNN_FER_BIN;
  for (const std::string& w : words) cmd += " '" + w + "'";
  const int rc = std::system((cmd + " > '" + log + "' 2>&1").c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc), slurp(log)};
}
#endif

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

// The number after `"key": ` in a JSON text.
double json_number(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\": ");
  REQUIRE_MESSAGE(at != std::string::npos, "no " << key << " in " << json);
  return std::stod(json.substr(at + key.size() + 4));
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
    nn::AdnnFer nano(nn::fer_config("adnn_fer_nano"));
    CHECK(nano.token_grid() == std::pair<int64_t, int64_t>{6, 6});
    nano.eval();
    NoGradGuard ng;
    CHECK(nano(zeros({2, 48, 48, 1})).sizes() == Shape{2, 7});
    nn::FerConfig p = nn::fer_config("adnn_fer_paper");
    CHECK(p.backbone == "efficientnet_b5");
    CHECK(p.layers == 6);
    CHECK(p.d_model == 2048);
    CHECK(p.heads == 8);
    CHECK(p.d_ff == 4096);
    // the config round-trips through checkpoint metadata
    CHECK(nn::FerConfig::from_map(p.to_map()).to_map() == p.to_map());
    CHECK_THROWS_WITH_AS(nn::fer_config("adnn_fer_huge"), doctest::Contains("unknown configuration 'adnn_fer_huge'"),
                         Error);
  }

  TEST_CASE("ablation switches change the model") {
    nn::FerConfig c = nn::fer_config("adnn_fer_nano");
    const int64_t full = nn::AdnnFer(c).num_parameters();
    c.cbam = false;
    const int64_t no_cbam = nn::AdnnFer(c).num_parameters();
    c.transformer = false;
    nn::AdnnFer plain(c);
    CHECK(no_cbam < full);
    CHECK(plain.num_parameters() < no_cbam);
    NoGradGuard ng;
    plain.eval();
    CHECK(plain(zeros({1, 48, 48, 1})).sizes() == Shape{1, 7});
  }

  TEST_CASE("the paper configuration runs forward and backward on the emulated device (reduced batch and size)") {
#if ADNN_WITH_CUDA_EMULATION && !defined(__SANITIZE_ADDRESS__)
    nn::FerConfig c = nn::fer_config("adnn_fer_paper");
    c.image_size = 64;  // 2x2 tokens: the full B5 + 6 x 2048-wide encoder, on a small input
    nn::AdnnFer m(c);
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

#ifdef ADNN_FER_BIN
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
    auto [rc, log] = adnn_fer({"train", "--data", fer_dir(), "--out", out, "--device", "cpu", "--train-limit", "6400",
                               "--val-limit", "700", "--epochs", "3", "--batch", "64", "--log-every", "1000"},
                              out + "/train.out");
    INFO(log);
    REQUIRE(rc == 0);
    auto rows = read_csv(out + "/log.csv");
    REQUIRE(rows.size() == 3);
    // columns: epoch, step, lr, train_loss, train_acc, val_loss, val_acc, val_macro_f1, ...
    CHECK(rows[2][1] == 300);        // 3 epochs x 100 steps
    CHECK(rows[2][3] < rows[0][3]);  // training loss falls
    // the majority class (happy) is about 25% of FER2013 val (the 700-image slice is
    // stratified, so it has the same shares up to rounding)
    auto counts = data::FolderDataset(fer_dir() + "/val").class_counts();
    int64_t total = 0;
    for (int64_t n : counts) total += n;
    const double majority = double(*std::max_element(counts.begin(), counts.end())) / double(total);
    double best = 0;
    for (auto& r : rows) best = std::max(best, r[6]);
    INFO("best val accuracy " << best << ", majority class share " << majority);
    CHECK(best > majority + 0.05);
    CHECK(fs::exists(out + "/best.safetensors"));
    CHECK(fs::exists(out + "/config.json"));
    // eval writes the JSON report and the confusion-matrix PNG
    auto [erc, elog] = adnn_fer({"eval", "--checkpoint", out + "/best.safetensors", "--data", fer_dir(), "--limit",
                                 "300", "--device", "cpu"},
                                out + "/eval.out");
    INFO(elog);
    REQUIRE(erc == 0);
    const std::string json = slurp(out + "/eval_val.json");
    CHECK(json.find("\"confusion_matrix\"") != std::string::npos);
    // the report covers the images eval says it evaluated (the stratified slice rounds per
    // class, so that can be a few more or fewer than --limit)
    const size_t images_at = elog.find(" images, device");
    REQUIRE(images_at != std::string::npos);
    const size_t open_at = elog.rfind('(', images_at);
    CHECK(json_number(json, "samples") == std::stod(elog.substr(open_at + 1)));
    CHECK(std::abs(json_number(json, "samples") - 300) <= 7);  // within one image per class
    CHECK(json_number(json, "accuracy") > majority);
    CHECK(fs::file_size(out + "/eval_val_confusion.png") > 1000);
    // predict runs on a real face and prints its top classes
    const std::string face = data::FolderDataset(fer_dir() + "/val").name(0);
    auto [prc, plog] = adnn_fer({"predict", "--checkpoint", out + "/best.safetensors", face}, out + "/predict.out");
    INFO(plog);
    CHECK(prc == 0);
    CHECK(plog.find(face + ":") != std::string::npos);
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
    const std::vector<std::string> common{"train", "--data", fer_dir(), "--device", "cpu", "--train-limit", "320",
                                          "--val-limit", "64", "--epochs", "2", "--batch", "32", "--log-every", "1000"};
    const std::string a = temp_dir("straight"), b = temp_dir("resumed"), logs = temp_dir("resume_logs");
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> w = common;
      w.insert(w.end(), extra.begin(), extra.end());
      return w;
    };
    auto straight = adnn_fer(with({"--out", a}), logs + "/straight.out");
    INFO(straight.second);
    REQUIRE(straight.first == 0);
    // interrupted in the middle of epoch 2 (step 14 of 20): exit status 3, then resumed
    auto stopped = adnn_fer(with({"--out", b, "--stop-after", "14"}), logs + "/stopped.out");
    INFO(stopped.second);
    REQUIRE(stopped.first == 3);
    CHECK(stopped.second.find("stopped after step 14") != std::string::npos);
    auto resumed = adnn_fer({"train", "--resume", "--out", b, "--device", "cpu"}, logs + "/resumed.out");
    INFO(resumed.second);
    REQUIRE(resumed.first == 0);
    CHECK(resumed.second.find("resuming " + b + " at step 14") != std::string::npos);
    CHECK(digest(a + "/last.safetensors") == digest(b + "/last.safetensors"));
    CHECK(digest(a + "/best.safetensors") == digest(b + "/best.safetensors"));
    fs::remove_all(a);
    fs::remove_all(b);
    fs::remove_all(logs);
  }
#endif  // ADNN_FER_BIN

  TEST_CASE("the committed adnn_fer_nano checkpoint loads and classifies FER2013 val well above chance") {
    const std::string ckpt = std::string(ADNN_SOURCE_DIR) + "/models/adnn_fer_nano.safetensors";
    REQUIRE(fs::exists(ckpt));
    auto model = nn::load_adnn_fer(ckpt, kCPU);
    CHECK(model->config().name == "adnn_fer_nano");
    CHECK(model->num_parameters() == 1650319);
    CHECK_THROWS_WITH_AS(nn::load_adnn_fer(std::string(ADNN_SOURCE_DIR) + "/tests/fixtures/does_not_exist.safetensors",
                                           kCPU),
                         doctest::Contains("does_not_exist"), Error);
#ifdef ADNN_FER_BIN
    if (!have_fer()) {
      FAIL("FER2013 not found at " << fer_dir());
      return;
    }
    const std::string out = temp_dir("committed");
    auto [rc, log] = adnn_fer({"eval", "--checkpoint", ckpt, "--data", fer_dir(), "--limit", "500", "--batch", "100",
                               "--device", "cpu", "--out", out},
                              out + "/eval.out");
    INFO(log);
    REQUIRE(rc == 0);
    const double accuracy = json_number(slurp(out + "/eval_val.json"), "accuracy");
    INFO("accuracy on 500 val images: " << accuracy);
    CHECK(accuracy > 0.45);
    fs::remove_all(out);
#endif
  }
}
