// ADNN-FER: the model's configurations (library: include/adnn/nn/adnn_fer.hpp), and the
// adnn-fer command line run as a subprocess end to end on a slice of the real FER2013
// (../shared/data/fer2013): the loss falls, accuracy beats the majority class, an
// interrupted run resumes to the same weights bit for bit, eval writes its report and PNG,
// predict runs, and the committed nano checkpoint is a real model.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include <adnn/amp/amp.hpp>
#include <adnn/cuda/kernel_report.hpp>

#include "testing.hpp"

using namespace adnn;
using namespace adnn::testing;
namespace fs = std::filesystem;

namespace {

std::string fer_dir() { return std::string(ADNN_SOURCE_DIR) + "/../shared/data/fer2013"; }
bool have_fer() { return fs::is_directory(fer_dir() + "/train") && fs::is_directory(fer_dir() + "/val"); }
// The data is part of the checkout's setting (../shared): its absence fails the case, naming the path.
#define REQUIRE_FER_DATA()                                  \
  do {                                                      \
    if (!have_fer()) FAIL("FER2013 not found at " << fer_dir()); \
  } while (0)

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

#ifdef ADNN_FER_BIN
// Runs `adnn-fer WORDS...` (stdout and stderr to `log`); returns the exit status and the output.
// `threads`: OMP_NUM_THREADS for the run (0: inherited). The tiny runs of the hardening tests
// use 1: on a loaded 2-core machine OpenMP's spinning threads make them 10x slower.
std::pair<int, std::string> adnn_fer(const std::vector<std::string>& words, const std::string& log, int threads = 0) {
  std::string cmd = (threads > 0 ? "OMP_NUM_THREADS=" + std::to_string(threads) + " " : std::string()) + ADNN_FER_BIN;
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

// FNV-1a over a tensor's bytes, continuing from h.
uint64_t fnv_bytes(uint64_t h, const Tensor& t) {
  Tensor c = t.contiguous();
  const unsigned char* b = static_cast<const unsigned char*>(c.data_ptr());
  for (size_t i = 0; i < size_t(c.numel()) * c.element_size(); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
constexpr uint64_t kFnvBasis = 1469598103934665603ull;

// A weights file's tensors, hashed in order.
std::string digest(const std::string& weights) {
  io::SafeTensors st = io::load_safetensors(weights);
  uint64_t h = kFnvBasis;
  for (auto& [n, t] : st.tensors) h = fnv_bytes(h, t);
  return std::to_string(h);
}
std::string digest_tensor(const Tensor& t) {
  return std::to_string(fnv_bytes(kFnvBasis, t));
}

std::string temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("adnn_fer_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string committed_checkpoint() { return std::string(ADNN_SOURCE_DIR) + "/models/adnn_fer_nano.safetensors"; }

// A copy of a weights file with one metadata value replaced (or, with value == nullptr and
// nan == true, the classifier's first bias NaN).
void rewrite_checkpoint(const std::string& from, const std::string& to, const std::string& key, const char* value,
                        bool nan = false) {
  io::SafeTensors st = io::load_safetensors(from);
  if (value) st.metadata[key] = value;
  if (nan) {
    for (auto& [n, t] : st.tensors) {
      if (n != "head.bias") continue;  // one NaN logit: every probability NaN
      Tensor c = t.contiguous().clone();
      c.data_ptr<float>()[0] = std::nanf("");
      t = c;
      break;
    }
  }
  io::save_safetensors(to, st.tensors, st.metadata);
}

// A tiny FER2013: the first n_train (n_val) images of every class, as symlinks in a temp dir.
std::string tiny_fer(const std::string& name, int n_train, int n_val) {
  const std::string dir = temp_dir(name);
  for (auto [split, n] : {std::pair{"train", n_train}, std::pair{"val", n_val}}) {
    for (const auto& cls : fs::directory_iterator(fer_dir() + "/" + split)) {
      std::vector<fs::path> files;
      for (const auto& f : fs::directory_iterator(cls.path())) files.push_back(f.path());
      std::sort(files.begin(), files.end());
      const fs::path to = fs::path(dir) / split / cls.path().filename();
      fs::create_directories(to);
      for (int i = 0; i < n && i < int(files.size()); ++i) fs::create_symlink(files[size_t(i)], to / files[size_t(i)].filename());
    }
  }
  return dir;
}

// A CSV's rows after the header, as text cells (no quoted cells).
std::vector<std::vector<std::string>> read_csv_text(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);  // header
  std::vector<std::vector<std::string>> rows;
  while (std::getline(f, line)) {
    std::vector<std::string> r;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) r.push_back(cell);
    rows.push_back(r);
  }
  return rows;
}

size_t count_lines(const std::string& path) {
  const std::string t = slurp(path);
  return size_t(std::count(t.begin(), t.end(), '\n'));
}

#ifdef ADNN_FER_BIN
// Resumes the interrupted run b and checks it against the uninterrupted run a: the same
// log rows (up to the timings; the train loss and accuracy only when b stopped on an epoch
// boundary, as a resumed epoch's row counts only the steps run after the resume) and, bit
// for bit, the same weights (last, best) and training state.
void resume_matches(const std::string& a, const std::string& b, const std::string& log, size_t epochs,
                    bool on_boundary) {
  auto resumed = adnn_fer({"train", "--resume", "--out", b, "--device", "cpu"}, log, 1);
  INFO(resumed.second);
  REQUIRE(resumed.first == 0);
  auto ra = read_csv(a + "/log.csv"), rb = read_csv(b + "/log.csv");
  REQUIRE(ra.size() == epochs);
  REQUIRE(rb.size() == epochs);
  for (size_t i = 0; i < epochs; ++i)
    for (size_t j = 0; j < 9; ++j)
      if (on_boundary || (j != 3 && j != 4)) CHECK(ra[i][j] == rb[i][j]);
  for (const char* f : {"/last.safetensors", "/best.safetensors", "/last.state.safetensors"}) {
    INFO(f);
    CHECK(digest(a + f) == digest(b + f));
  }
}
#endif

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

  TEST_CASE("checkpoint metadata: numbers are read whole and within documented limits") {
    const std::map<std::string, std::string> good = nn::fer_config("adnn_fer_nano").to_map();
    auto with = [&](const std::string& k, const std::string& v) {
      auto m = good;
      m[k] = v;
      return m;
    };
    CHECK(nn::FerConfig::from_map(good).to_map() == good);
    const std::vector<std::pair<std::string, std::string>> bad{
        {"model.image_size", "abc"},  {"model.image_size", "48abc"}, {"recipe.epochs", "1e3"},
        {"model.image_size", "100000"}, {"recipe.lr", "x"},          {"recipe.lr", "inf"},
        {"model.dropout", "1.5"},      {"model.cbam", "yes"},         {"model.num_classes", "-7"},
        {"model.d_model", "130"}};  // 130 is not a multiple of 4 heads
    for (auto& [k, v] : bad) {
      INFO(k << " = " << v);
      CHECK_THROWS_WITH_AS(nn::FerConfig::from_map(with(k, v)), doctest::Contains(k.c_str()), Error);
    }
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
    ADNN_SKIP("emulated device not built (or ASan build)");
#endif
  }

#ifdef ADNN_FER_BIN
  TEST_CASE("train: a few hundred steps on a slice of FER2013 learn (loss falls, accuracy beats the majority class)") {
#if defined(__SANITIZE_ADDRESS__)
    ADNN_SKIP("ASan build (the release suite trains)");
#endif
    REQUIRE_FER_DATA();
    const std::string out = temp_dir("learn"), logs = temp_dir("learn_logs");
    auto [rc, log] = adnn_fer({"train", "--data", fer_dir(), "--out", out, "--device", "cpu", "--train-limit", "6400",
                               "--val-limit", "700", "--epochs", "3", "--batch", "64", "--log-every", "1000"},
                              logs + "/train.out");
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
                                logs + "/eval.out");
    INFO(elog);
    REQUIRE(erc == 0);
    const std::string json = slurp(out + "/eval_val.json");
    CHECK(json.find("\"confusion_matrix\"") != std::string::npos);
    // the report covers exactly --limit images, the number eval says it evaluated
    CHECK(elog.find("(300 images, device") != std::string::npos);
    CHECK(json_number(json, "samples") == 300);
    CHECK(json_number(json, "accuracy") > majority);
    CHECK(fs::file_size(out + "/eval_val_confusion.png") > 1000);
    // predict runs on a real face and prints its top classes
    const std::string face = data::FolderDataset(fer_dir() + "/val").name(0);
    auto [prc, plog] = adnn_fer({"predict", "--checkpoint", out + "/best.safetensors", face}, logs + "/predict.out");
    INFO(plog);
    CHECK(prc == 0);
    CHECK(plog.find(face + ":") != std::string::npos);
    fs::remove_all(out);
    fs::remove_all(logs);
  }

  TEST_CASE("train --resume after an interruption gives bit-identical weights") {
#if defined(__SANITIZE_ADDRESS__)
    ADNN_SKIP("ASan build (the release suite runs it)");
#endif
    REQUIRE_FER_DATA();
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

  TEST_CASE("train --schedule time: trains until the budget, the cosine over elapsed/budget") {
#if defined(__SANITIZE_ADDRESS__)
    ADNN_SKIP("ASan build (timing; the release suite runs it)");
#endif
    REQUIRE_FER_DATA();
    // --patience 100000: a fast machine runs many one-second epochs on 21 val images, and early
    // stopping (patience 6) would end the run before the budget does (CI did, stop 29).
    const std::string out = temp_dir("time_schedule"), logs = temp_dir("time_schedule_logs");
    auto [rc, log] = adnn_fer({"train", "--data", fer_dir(), "--device", "cpu", "--train-limit", "96", "--val-limit",
                               "21", "--batch", "32", "--log-every", "1000", "--time-budget", "0.1", "--schedule",
                               "time", "--lr", "0.001", "--patience", "100000", "--out", out},
                              logs + "/train.out");
    INFO(log);
    REQUIRE(rc == 0);
    CHECK(log.find("cosine over the 0.1-minute budget") != std::string::npos);
    CHECK(log.find("done: time budget reached") != std::string::npos);
    const std::string cj = slurp(out + "/config.json");
    CHECK(cj.find("\"run.schedule\": \"time\"") != std::string::npos);
    // log.csv: the lr column falls epoch by epoch towards min_lr (1e-5) as the budget runs
    // out; each epoch's elapsed_s column below the budget but the last
    std::istringstream csv(slurp(out + "/log.csv"));
    std::string line;
    std::getline(csv, line);  // header
    std::vector<double> lrs, elapsed;
    while (std::getline(csv, line)) {
      std::vector<std::string> cells;
      std::istringstream ls(line);
      for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
      REQUIRE(cells.size() == 12);
      lrs.push_back(std::stod(cells[2]));
      elapsed.push_back(std::stod(cells[11]));
    }
    REQUIRE(!lrs.empty());
    for (size_t i = 1; i < lrs.size(); ++i) CHECK(lrs[i] < lrs[i - 1]);
    for (size_t i = 0; i + 1 < elapsed.size(); ++i) CHECK(elapsed[i] < 6.0);
    CHECK(elapsed.back() >= 5.5);  // stopped by the budget (checked a checkpoint after the row)
    // the last step ran within a step of the budget's end: the cosine is near its floor
    CHECK(lrs.back() < 0.3e-3);
    fs::remove_all(out);
    fs::remove_all(logs);
  }

  TEST_CASE("train --precision f16: an interrupted mixed-precision run resumes bit for bit, gradient scaler included") {
#if defined(__SANITIZE_ADDRESS__)
    ADNN_SKIP("ASan build (the release suite runs it)");
#endif
    REQUIRE_FER_DATA();
    const std::vector<std::string> common{"train", "--data", fer_dir(), "--device", "cpu", "--train-limit", "192",
                                          "--val-limit", "35", "--epochs", "2", "--batch", "32", "--log-every", "1000",
                                          "--precision", "f16"};
    const std::string a = temp_dir("f16_straight"), b = temp_dir("f16_resumed"), logs = temp_dir("f16_logs");
    auto with = [&](std::vector<std::string> extra) {
      std::vector<std::string> w = common;
      w.insert(w.end(), extra.begin(), extra.end());
      return w;
    };
    auto straight = adnn_fer(with({"--out", a}), logs + "/straight.out");
    INFO(straight.second);
    REQUIRE(straight.first == 0);
    auto stopped = adnn_fer(with({"--out", b, "--stop-after", "8"}), logs + "/stopped.out");
    REQUIRE(stopped.first == 3);
    // the precision is part of the run: a different one is refused on --resume
    auto contradict = adnn_fer({"train", "--resume", "--out", b, "--device", "cpu", "--precision", "bf16"},
                               logs + "/contradict.out");
    CHECK(contradict.first == 2);
    CHECK(contradict.second.find("--precision bf16 contradicts the run's run.precision = f16") != std::string::npos);
    auto resumed = adnn_fer({"train", "--resume", "--out", b, "--device", "cpu"}, logs + "/resumed.out");
    INFO(resumed.second);
    REQUIRE(resumed.first == 0);
    CHECK(digest(a + "/last.safetensors") == digest(b + "/last.safetensors"));
    const std::string sa = slurp(a + "/last.state.safetensors"), sb = slurp(b + "/last.state.safetensors");
    auto meta = [](const std::string& st, const std::string& key) {
      const size_t at = st.find("\"" + key + "\":\"");
      REQUIRE(at != std::string::npos);
      const size_t from = at + key.size() + 4;
      return st.substr(from, st.find('"', from) - from);
    };
    CHECK(meta(sa, "scaler.scale") == meta(sb, "scaler.scale"));
    CHECK(meta(sa, "scaler.growth_tracker") == meta(sb, "scaler.growth_tracker"));
    CHECK(slurp(a + "/config.json").find("\"run.precision\": \"f16\"") != std::string::npos);
    fs::remove_all(a);
    fs::remove_all(b);
    fs::remove_all(logs);
  }

  TEST_CASE("train --precision auto: bf16 where the device multiplies bf16 natively, else f32; --resume keeps it") {
    REQUIRE_FER_DATA();
    const std::string out = temp_dir("auto_precision"), logs = temp_dir("auto_precision_logs");
    const std::vector<std::string> fresh{"train", "--data", fer_dir(), "--device", "cpu", "--train-limit", "64",
                                         "--val-limit", "14", "--epochs", "1", "--batch", "16", "--log-every", "1000",
                                         "--precision", "auto", "--stop-after", "2", "--out", out};
    auto stopped = adnn_fer(fresh, logs + "/stopped.out");
    INFO(stopped.second);
    REQUIRE(stopped.first == 3);
    // this process and the child see the same CPU (and the same ADNN_CPU_BF16_DOT)
    const std::string want = amp::bf16_pays(kCPU) ? "bf16" : "f32";
    CHECK(slurp(out + "/config.json").find("\"run.precision\": \"" + want + "\"") != std::string::npos);
    // auto again on --resume is the run's own precision, not a contradiction; the other one is
    const std::string other = want == "bf16" ? "f32" : "bf16";
    auto contradict = adnn_fer({"train", "--resume", "--out", out, "--device", "cpu", "--precision", other},
                               logs + "/contradict.out");
    CHECK(contradict.first == 2);
    CHECK(contradict.second.find("--precision " + other + " contradicts the run's run.precision = " + want) !=
          std::string::npos);
    auto resumed = adnn_fer({"train", "--resume", "--out", out, "--device", "cpu", "--precision", "auto"},
                            logs + "/resumed.out");
    INFO(resumed.second);
    CHECK(resumed.first == 0);
    CHECK(slurp(out + "/config.json").find("\"run.precision\": \"" + want + "\"") != std::string::npos);
    // without the bf16 dot product (as on a CPU without AVX512-BF16) auto is f32
    fs::remove_all(out);
    const char* before = std::getenv("ADNN_CPU_BF16_DOT");
    const std::string saved = before ? before : "";
    ::setenv("ADNN_CPU_BF16_DOT", "0", 1);
    auto widened = adnn_fer(fresh, logs + "/widened.out");  // the same fresh run, in the child's environment
    if (before) ::setenv("ADNN_CPU_BF16_DOT", saved.c_str(), 1);
    else ::unsetenv("ADNN_CPU_BF16_DOT");
    INFO(widened.second);
    REQUIRE(widened.first == 3);
    CHECK(slurp(out + "/config.json").find("\"run.precision\": \"f32\"") != std::string::npos);
    fs::remove_all(out);
    fs::remove_all(logs);
  }

  // The loss curve of a bf16 run against the f32 run with the same seed and batches. On the CPU
  // 300 steps (10 epochs of 30 batches of 32 on 960 images): the first 3 epochs (90 steps) within
  // 2 % of f32's mean training loss; after that the two runs separate as any perturbation of SGD
  // would (measured: up to 4 % apart, bf16 lower), so later epochs are held within 6 % and the
  // last epoch's bf16 loss no more than 3 % above f32's. On the emulated device (the kernels' bf16
  // paths, about 2 images/s) 2 epochs of 4 batches of 16, within 3 %.
  TEST_CASE("train --precision bf16 follows the f32 run's loss curve on a FER2013 slice, cpu and emulated cuda") {
#if defined(__SANITIZE_ADDRESS__)
    ADNN_SKIP("ASan build (the release suite runs it)");
#endif
    REQUIRE_FER_DATA();
    const std::string logs = temp_dir("amp_logs");
    struct Leg {
      const char* device;
      const char* images;
      const char* val_images;
      const char* epochs;
      const char* batch;
      size_t close_epochs;  // epochs held within tol_close; the rest within tol_far
      double tol_close, tol_far, tol_last;
    };
    std::vector<Leg> legs{{"cpu", "960", "70", "10", "32", 3, 0.02, 0.06, 0.03}};
    if (cuda_is_available()) legs.push_back({"cuda", "64", "16", "2", "16", 2, 0.03, 0.03, 0.03});
    for (const Leg& leg : legs) {
      std::vector<std::vector<double>> rows[2];
      const char* precisions[] = {"f32", "bf16"};
      for (int i = 0; i < 2; ++i) {
        const std::string out = temp_dir(std::string("amp_") + leg.device + precisions[i]);
        auto r = adnn_fer({"train",    "--data",      fer_dir(),      "--device", leg.device, "--train-limit",
                           leg.images, "--val-limit", leg.val_images, "--epochs", leg.epochs, "--warmup-epochs",
                           "1",        "--batch",     leg.batch,      "--seed",   "5",        "--log-every",
                           "1000",     "--precision", precisions[i],  "--out",    out},
                          logs + "/" + leg.device + precisions[i] + ".out");
        INFO(r.second);
        REQUIRE(r.first == 0);
        rows[i] = read_csv(out + "/log.csv");
        fs::remove_all(out);
      }
      INFO(leg.device);
      REQUIRE(rows[0].size() == size_t(std::stoi(leg.epochs)));
      REQUIRE(rows[1].size() == rows[0].size());
      for (size_t e = 0; e < rows[0].size(); ++e) {
        const double l32 = rows[0][e][3], l16 = rows[1][e][3];  // the epoch's mean training loss
        std::printf("amp %s: epoch %zu, mean train loss f32 %.5f, bf16 %.5f (%+.2f%%)\n", leg.device, e + 1, l32, l16,
                    100.0 * (l16 - l32) / l32);
        CAPTURE(e);
        CHECK(std::isfinite(l16));
        CHECK(std::fabs(l16 - l32) <= (e < leg.close_epochs ? leg.tol_close : leg.tol_far) * l32);
      }
      CHECK(rows[1].back()[3] <= (1 + leg.tol_last) * rows[0].back()[3]);
      CHECK(rows[0].back()[3] < rows[0].front()[3]);  // the runs learn: the curve falls
      CHECK(rows[1].back()[3] < rows[1].front()[3]);
    }
    fs::remove_all(logs);
  }

  TEST_CASE("command line: unknown flags, missing and out-of-range values exit 2; --help works on every subcommand") {
    const std::string logs = temp_dir("cli");
    const std::vector<std::pair<std::vector<std::string>, std::string>> usage{
        {{"train", "--data", "/nonexistent", "--bogus", "3"}, "--bogus"},
        {{"train", "--data", "/nonexistent", "--epochs"}, "--epochs"},
        {{"train", "--data", "/nonexistent", "--train-limit", "-5"}, "--train-limit"},
        {{"bench", "--model", "adnn_fer_nano", "--iters", "-1"}, "--iters"},
        {{"train", "--data", "/nonexistent", "--workers", "100000"}, "--workers"},
        {{"train", "--data", "/nonexistent", "--time-budget", "abc"}, "--time-budget"},
        {{"train", "--data", "/nonexistent", "--schedule", "time"}, "--schedule time needs --time-budget"},
        {{"train", "--data", "/nonexistent", "--schedule", "time", "--time-budget", "0"}, "--time-budget"},
        {{"train", "--data", "/nonexistent", "--schedule", "hours"}, "--schedule"},
        {{"train", "--data", "/nonexistent", "--lr", "inf"}, "--lr"},
        {{"train", "--data", "/nonexistent", "--lr", "nan"}, "--lr"},
        {{"train", "--data", "/nonexistent", "--lr", "0"}, "--lr"},
        {{"train", "--data", "/nonexistent", "--epochs", "3x"}, "--epochs"},
        {{"eval", "--checkpoint", "x.safetensors", "--limit", "0"}, "--limit"},
        {{"predict", "--checkpoint", "x.safetensors"}, "IMAGE"},
        {{"summary", "--model", "adnn_fer_nano", "--image-size", "100000"}, "--image-size"},
        {{"frobnicate"}, "frobnicate"},
    };
    for (auto& [words, flag] : usage) {
      auto [rc, out] = adnn_fer(words, logs + "/usage.out", 1);
      INFO(out);
      CHECK(rc == 2);
      CHECK(out.find(flag) != std::string::npos);
    }
    for (const char* cmd : {"summary", "bench", "train", "eval", "predict", "profile"}) {
      for (const char* h : {"--help", "-h"}) {
        // --data and --out point nowhere: a --help that started a run would fail, not train
        std::vector<std::string> words{cmd, h};
        if (std::string(cmd) == "train") words = {cmd, "--data", logs + "/none", "--out", logs + "/run", h};
        auto [rc, out] = adnn_fer(words, logs + "/help.out", 1);
        INFO(cmd << " " << h << ": " << out);
        CHECK(rc == 0);
        CHECK(out.find(std::string("Usage: adnn-fer ") + cmd) != std::string::npos);
      }
    }
    CHECK(!fs::exists(logs + "/run"));
    fs::remove_all(logs);
  }

  TEST_CASE("profile: one traced training step prints the per-kernel table; --out writes it as Markdown") {
    const std::string dir = temp_dir("profile");
    const std::string md = dir + "/report.md";
    auto [rc, out] = adnn_fer({"profile", "--model", "adnn_fer_nano", "--train", "--batch", "2", "--image-size", "16",
                               "--warmup", "0", "--out", md},
                              dir + "/profile.out", 1);
    INFO(out);
    if (!cuda::kernel_trace_available()) {  // CPU-only, sanitizer or ADNN_SIM_TRACE=OFF builds
      CHECK(rc == 1);
      CHECK(out.find("ADNN_SIM_TRACE") != std::string::npos);
      fs::remove_all(dir);
      return;
    }
    REQUIRE(rc == 0);
    CHECK(out.find("training step (forward, loss, backward, AdamW), batch 2, 16x16") != std::string::npos);
    CHECK(out.find("| kernel | launches | threads/block | ld sectors/req |") != std::string::npos);
    CHECK(out.find("| compound_loss_kernel<kt<SZ>, kt<SF>, T> | 1 |") != std::string::npos);  // one fused loss per step
    CHECK(out.find("adamw_multi_tensor_kernel") != std::string::npos);
    CHECK(out.find("cuBLAS gemm f32 (library, not traced)") != std::string::npos);
    CHECK(out.find("- kernel launches: ") != std::string::npos);
    const std::string report = slurp(md);
    CHECK(report.rfind("# Kernel report: adnn_fer_nano training step", 0) == 0);
    CHECK(report.find("Command: `adnn-fer profile --model adnn_fer_nano --train") != std::string::npos);
    CHECK(report.find("| compound_loss_kernel<kt<SZ>, kt<SF>, T> | 1 |") != std::string::npos);
    fs::remove_all(dir);
  }

  TEST_CASE("bad checkpoints and images: exit 1 with a message naming them, never an abort") {
    const std::string dir = temp_dir("badckpt");
    const std::string face = dir + "/face.png";
    data::write_png(face, data::Image(48, 48, 1, 128.f));
    struct Case {
      std::vector<std::string> words;
      std::string needle;
    };
    std::vector<Case> cases{
        {{"predict", "--checkpoint", dir, face}, dir},                      // a directory
        {{"predict", "--checkpoint", "/dev/zero", face}, "/dev/zero"},     // would read without bound
        {{"predict", "--checkpoint", committed_checkpoint(), dir}, dir},    // a directory as the image
        {{"eval", "--checkpoint", dir, "--data", dir}, dir},
    };
    for (auto [key, value] : {std::pair{"model.image_size", "abc"}, std::pair{"model.image_size", "48abc"},
                              std::pair{"model.image_size", "100000"}, std::pair{"recipe.epochs", "1e3"}}) {
      const std::string ck = dir + "/bad_" + std::to_string(cases.size()) + ".safetensors";
      rewrite_checkpoint(committed_checkpoint(), ck, key, value);
      cases.push_back({{"predict", "--checkpoint", ck, face}, key});
    }
    for (auto& c : cases) {
      auto [rc, out] = adnn_fer(c.words, dir + "/out.txt", 1);
      INFO(c.words[0] << " " << c.words[2] << ": " << out);
      CHECK(rc == 1);
      CHECK(out.find(c.needle) != std::string::npos);
      CHECK(out.rfind("adnn-fer: ", 0) == 0);
    }
    fs::remove_all(dir);
  }

  TEST_CASE("NaN weights: predict and eval refuse, naming the checkpoint") {
    REQUIRE_FER_DATA();
    const std::string data = tiny_fer("nan_data", 0, 2), dir = temp_dir("nan");
    const std::string ck = dir + "/nan.safetensors";
    rewrite_checkpoint(committed_checkpoint(), ck, "", nullptr, true);
    const std::string face = data::FolderDataset(data + "/val").name(0);
    auto [prc, pout] = adnn_fer({"predict", "--checkpoint", ck, face}, dir + "/predict.out", 1);
    INFO(pout);
    CHECK(prc == 1);
    CHECK(pout.find("checkpoint " + ck) != std::string::npos);
    CHECK(pout.find(face + ":  ") == std::string::npos);  // no "face.jpg:  angry nan ..." line
    auto [erc, eout] = adnn_fer({"eval", "--checkpoint", ck, "--data", data, "--device", "cpu"}, dir + "/eval.out", 1);
    INFO(eout);
    CHECK(erc == 1);
    CHECK(eout.find("checkpoint " + ck) != std::string::npos);
    CHECK(!fs::exists(dir + "/eval_val.json"));
    fs::remove_all(dir);
    fs::remove_all(data);
  }

  TEST_CASE("eval: --limit is exact, --out is created first, a bad --out costs no evaluation") {
    REQUIRE_FER_DATA();
    const std::string data = tiny_fer("limit_data", 0, 4), dir = temp_dir("limit");  // 28 val images
    for (int limit : {1, 20, 27}) {
      const std::string out = dir + "/new/" + std::to_string(limit);  // does not exist yet
      auto [rc, log] = adnn_fer({"eval", "--checkpoint", committed_checkpoint(), "--data", data, "--limit",
                                 std::to_string(limit), "--device", "cpu", "--out", out},
                                dir + "/eval.out", 1);
      INFO(log);
      REQUIRE(rc == 0);
      CHECK(json_number(slurp(out + "/eval_val.json"), "samples") == limit);
    }
    std::ofstream(dir + "/file") << "x";
    auto [rc, log] = adnn_fer({"eval", "--checkpoint", committed_checkpoint(), "--data", data, "--device", "cpu",
                               "--out", dir + "/file/sub"},
                              dir + "/eval.out", 1);
    INFO(log);
    CHECK(rc == 1);
    CHECK(log.find(dir + "/file/sub") != std::string::npos);
    CHECK(log.find("evaluating") == std::string::npos);
    fs::remove_all(dir);
    fs::remove_all(data);
  }

  TEST_CASE("train: a non-finite loss stops the run naming the step and the last finite loss") {
    REQUIRE_FER_DATA();
    const std::string data = tiny_fer("nanloss_data", 8, 1), logs = temp_dir("nanloss_logs");
    // (on cuda the same code reads the losses lazily, at progress lines and epoch ends; the
    // emulated device is too slow to reach a non-finite loss within a test's time)
    const std::string out = temp_dir("nanloss");
    // lr 1000 (the limit): the weights blow up within the first epoch
    auto [rc, log] = adnn_fer({"train", "--data", data, "--out", out, "--device", "cpu", "--batch", "8", "--epochs",
                               "2", "--lr", "1000", "--workers", "0", "--log-every", "1000"},
                              logs + "/train.out", 1);
    INFO(log);
    CHECK(rc == 1);
    CHECK(log.find("the loss is nan at step ") != std::string::npos);
    CHECK(log.find("the last finite loss was ") != std::string::npos);
    CHECK(log.find("stopped without updating the weights (the last checkpoint is unchanged)") != std::string::npos);
    for (const char* ck : {"/last.safetensors", "/best.safetensors"})  // a checkpoint of an earlier epoch is sound
      if (fs::exists(out + ck))
        for (auto& [name, t] : io::load_safetensors(out + ck).tensors)
          if (is_floating(t.dtype())) CHECK_MESSAGE(std::isfinite(sum(abs(t)).item<double>()), ck << " " << name);
    fs::remove_all(out);
    fs::remove_all(logs);
    fs::remove_all(data);
  }

  TEST_CASE("run directories: lock, no silent reuse, --force, --resume refuses contradictions and records changes") {
    REQUIRE_FER_DATA();
    const std::string data = tiny_fer("rundir_data", 2, 1), out = temp_dir("rundir"), logs = temp_dir("rundir_logs");
    const std::vector<std::string> fresh{"train", "--data", data, "--out", out, "--device", "cpu", "--batch", "4",
                                         "--epochs", "1", "--workers", "0", "--log-every", "1000"};
    auto [rc, log] = adnn_fer(fresh, logs + "/1.out", 1);
    INFO(log);
    REQUIRE(rc == 0);
    const std::string config = slurp(out + "/config.json");
    // run.command is argv as given ("--epochs 1" used to lose its value)
    CHECK(config.find("\"run.command\": \"adnn-fer train --data " + data + " --out " + out +
                      " --device cpu --batch 4 --epochs 1 --workers 0 --log-every 1000\"") != std::string::npos);
    const std::string csv = slurp(out + "/log.csv");
    CHECK(count_lines(out + "/log.csv") == 2);
    {  // a second fresh run into the same --out
      auto [rc2, log2] = adnn_fer(fresh, logs + "/2.out", 1);
      INFO(log2);
      CHECK(rc2 == 1);
      CHECK(log2.find("is not empty") != std::string::npos);
      CHECK(slurp(out + "/log.csv") == csv);
    }
    {  // a run holding the lock
      const int fd = ::open((out + "/adnn-fer.lock").c_str(), O_RDWR);
      REQUIRE(fd >= 0);
      REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
      const std::string pid = std::to_string(::getpid()) + "\n";
      REQUIRE(::ftruncate(fd, 0) == 0);
      REQUIRE(::pwrite(fd, pid.data(), pid.size(), 0) == ssize_t(pid.size()));
      auto [rc3, log3] = adnn_fer({"train", "--resume", "--out", out, "--epochs", "2"}, logs + "/3.out", 1);
      ::close(fd);
      INFO(log3);
      CHECK(rc3 == 1);
      CHECK(log3.find("in use by another adnn-fer train (pid " + std::to_string(::getpid())) != std::string::npos);
      CHECK(slurp(out + "/log.csv") == csv);
    }
    {  // --resume with a flag that contradicts the run
      auto [rc4, log4] = adnn_fer({"train", "--resume", "--out", out, "--lr", "0.5"}, logs + "/4.out", 1);
      INFO(log4);
      CHECK(rc4 == 2);
      CHECK(log4.find("--lr 0.5 contradicts the run's recipe.lr") != std::string::npos);
      // other data (different image counts) is refused
      const std::string other = tiny_fer("rundir_other", 3, 1);
      auto [rc5, log5] = adnn_fer({"train", "--resume", "--out", out, "--data", other}, logs + "/5.out", 1);
      INFO(log5);
      CHECK(rc5 == 1);
      CHECK(log5.find("the run started with 14") != std::string::npos);
      fs::remove_all(other);
    }
    {  // --epochs extends the run: printed, recorded in config.json, one more CSV row
      auto [rc6, log6] = adnn_fer({"train", "--resume", "--out", out, "--epochs", "2", "--device", "cpu"},
                                  logs + "/6.out", 1);
      INFO(log6);
      CHECK(rc6 == 0);
      CHECK(log6.find("resume: recipe.epochs 1 -> 2") != std::string::npos);
      const std::string cj = slurp(out + "/config.json");
      CHECK(cj.find("\"recipe.epochs\": \"2\"") != std::string::npos);
      CHECK(cj.find("recipe.epochs 1 -> 2") != std::string::npos);
      CHECK(count_lines(out + "/log.csv") == 3);
    }
    {  // a garbage config.json stops a resume
      const std::string cj = slurp(out + "/config.json");
      std::ofstream(out + "/config.json") << cj.substr(0, cj.size() / 2);
      auto [rc7, log7] = adnn_fer({"train", "--resume", "--out", out, "--epochs", "3"}, logs + "/7.out", 1);
      INFO(log7);
      CHECK(rc7 == 1);
      CHECK(log7.find(out + "/config.json: not a flat JSON object") != std::string::npos);
      CHECK(log7.find("remove the run or fix the file") != std::string::npos);
      CHECK(count_lines(out + "/log.csv") == 3);
    }
    {  // --force starts afresh
      auto with_force = fresh;
      with_force.push_back("--force");
      auto [rc8, log8] = adnn_fer(with_force, logs + "/8.out", 1);
      INFO(log8);
      CHECK(rc8 == 0);
      CHECK(count_lines(out + "/log.csv") == 2);
    }
    fs::remove_all(out);
    fs::remove_all(logs);
    fs::remove_all(data);
  }

  TEST_CASE("train --stop-after on an epoch boundary keeps that epoch's CSV row and resumes bit for bit") {
    REQUIRE_FER_DATA();
    const std::string data = tiny_fer("boundary_data", 2, 1), a = temp_dir("boundary_a"), b = temp_dir("boundary_b"),
                      logs = temp_dir("boundary_logs");
    auto run = [&](const std::string& out, std::vector<std::string> extra, const std::string& log) {
      std::vector<std::string> w{"train", "--data", data, "--out", out, "--device", "cpu", "--batch", "4",
                                 "--epochs", "2", "--workers", "0", "--log-every", "1000"};
      w.insert(w.end(), extra.begin(), extra.end());
      return adnn_fer(w, log, 1);
    };
    auto straight = run(a, {}, logs + "/a.out");
    INFO(straight.second);
    REQUIRE(straight.first == 0);
    auto stopped = run(b, {"--stop-after", "3"}, logs + "/b.out");  // 14 images: 3 steps of 4 per epoch
    INFO(stopped.second);
    CHECK(stopped.first == 3);
    CHECK(count_lines(b + "/log.csv") == 2);  // header + epoch 1
    resume_matches(a, b, logs + "/b2.out", 2, true);
    for (auto& d : {a, b, logs, data}) fs::remove_all(d);
  }
  TEST_CASE("train --ema: validates and saves the weights' average as best, keeps it in last, resumes bit for bit") {
    REQUIRE_FER_DATA();
    const std::string data = tiny_fer("ema_data", 2, 1), a = temp_dir("ema_a"), b = temp_dir("ema_b"),
                      c = temp_dir("ema_c"), logs = temp_dir("ema_logs");
    auto run = [&](const std::string& out, std::vector<std::string> extra, const std::string& log) {
      std::vector<std::string> w{"train", "--data",    data, "--out",       out,    "--device", "cpu", "--batch",
                                 "4",     "--workers", "0",  "--log-every", "1000", "--ema",    "0.9"};
      w.insert(w.end(), extra.begin(), extra.end());
      return adnn_fer(w, log, 1);
    };
    {  // one epoch (3 steps of 4 of the 14 images): best is the average after the last step
      auto one = run(c, {"--epochs", "1"}, logs + "/c.out");
      INFO(one.second);
      REQUIRE(one.first == 0);
      CHECK(slurp(c + "/config.json").find("\"run.ema\": \"0.9\"") != std::string::npos);
      io::SafeTensors best = io::load_safetensors(c + "/best.safetensors"),
                      last = io::load_safetensors(c + "/last.safetensors"),
                      state = io::load_safetensors(c + "/last.state.safetensors");
      CHECK(state.metadata.at("ema.updates") == "3");
      std::map<std::string, Tensor> extras;
      for (auto& [n, t] : state.tensors) extras[n] = t;
      size_t differ = 0;
      for (size_t i = 0; i < best.tensors.size(); ++i) {
        const auto& [n, t] = best.tensors[i];
        REQUIRE(extras.count("extra.ema." + n));
        CHECK(digest_tensor(t) == digest_tensor(extras.at("extra.ema." + n)));
        REQUIRE(last.tensors[i].first == n);
        differ += digest_tensor(t) != digest_tensor(last.tensors[i].second);
      }
      CHECK(differ > best.tensors.size() / 2);  // the average is not the trained weights
      // best's state file does not repeat the average that is best's weights
      io::SafeTensors best_state = io::load_safetensors(c + "/best.state.safetensors");
      size_t averaged = 0, centers = 0;
      for (auto& [n, t] : best_state.tensors) {
        averaged += n.rfind("extra.ema.", 0) == 0;
        centers += n == "extra.centers";
      }
      CHECK(averaged == 0);
      CHECK(centers == 1);
      // the logged validation accuracy is the average's: eval of best.safetensors gives it
      auto ev = adnn_fer({"eval", "--checkpoint", c + "/best.safetensors", "--data", data, "--device", "cpu", "--tta",
                          "none", "--out", c + "/eval"},
                         logs + "/eval.out", 1);
      INFO(ev.second);
      REQUIRE(ev.first == 0);
      CHECK(json_number(slurp(c + "/eval/eval_val.json"), "accuracy") ==
            doctest::Approx(std::stod(read_csv_text(c + "/log.csv").at(0).at(6))).epsilon(1e-4));
      // --resume may not change the decay
      auto changed =
          adnn_fer({"train", "--resume", "--out", c, "--device", "cpu", "--ema", "0.5"}, logs + "/c2.out", 1);
      CHECK(changed.first != 0);
      CHECK(changed.second.find("--ema 0.5 contradicts the run's run.ema = 0.9") != std::string::npos);
    }
    auto straight = run(a, {"--epochs", "2"}, logs + "/a.out");
    INFO(straight.second);
    REQUIRE(straight.first == 0);
    auto stopped = run(b, {"--epochs", "2", "--stop-after", "4"}, logs + "/b.out");  // inside epoch 2
    INFO(stopped.second);
    CHECK(stopped.first == 3);
    resume_matches(a, b, logs + "/b2.out", 2, false);
    {  // the average does not change the training: the trained weights of the run without it
      const std::string plain = temp_dir("ema_plain");
      auto p = adnn_fer({"train", "--data", data, "--out", plain, "--device", "cpu", "--batch", "4", "--workers", "0",
                         "--log-every", "1000", "--epochs", "2"},
                        logs + "/plain.out", 1);
      INFO(p.second);
      REQUIRE(p.first == 0);
      CHECK(digest(plain + "/last.safetensors") == digest(a + "/last.safetensors"));
      CHECK(digest(plain + "/best.safetensors") != digest(a + "/best.safetensors"));
      fs::remove_all(plain);
    }
    for (auto& d : {a, b, c, logs, data}) fs::remove_all(d);
  }
  TEST_CASE("eval: --label-map skips and reports classes the model lacks, --split DIR, --tta flip|tencrop, weighted averages") {
    REQUIRE_FER_DATA();
    // a CK+-like set: anger (FER angry), sadness (FER sad), happy, and contempt (no class of the
    // model; FER neutral faces stand in), 3 images each; disgust, fear, surprise, neutral absent
    const std::string ck = temp_dir("ckplus"), dir = temp_dir("ckplus_out");
    for (auto [from, to] : {std::pair{"angry", "anger"}, std::pair{"sad", "sadness"}, std::pair{"happy", "happy"},
                            std::pair{"neutral", "contempt"}}) {
      std::vector<fs::path> files;
      for (const auto& f : fs::directory_iterator(fer_dir() + "/val/" + from)) files.push_back(f.path());
      std::sort(files.begin(), files.end());
      fs::create_directories(ck + "/" + to);
      for (size_t i = 0; i < 3; ++i) fs::create_symlink(files[i], fs::path(ck) / to / files[i].filename());
    }
    std::map<std::string, double> loss;  // tta -> NLL
    for (const char* tta : {"none", "flip", "tencrop"}) {
      const std::string out = dir + "/" + tta;
      auto [rc, log] = adnn_fer({"eval", "--checkpoint", committed_checkpoint(), "--split", ck + "/", "--label-map",
                                 "ck+", "--tta", tta, "--device", "cpu", "--out", out},
                                dir + "/eval.out", 1);
      INFO(log);
      REQUIRE(rc == 0);
      CHECK(log.find("skipped 3 images of 'contempt': not a class of the model") != std::string::npos);
      const std::string stem = out + "/eval_" + fs::path(ck).filename().string();
      const std::string json = slurp(stem + ".json");
      INFO(json);
      CHECK(json.find(std::string("\"tta\": \"") + tta + "\"") != std::string::npos);
      CHECK(json.find("\"skipped\": {\"contempt\": 3}") != std::string::npos);
      CHECK(json.find("\"classes_absent\": [\"disgust\", \"fear\", \"surprise\", \"neutral\"]") != std::string::npos);
      CHECK(json.find("\"label_map\": {\"anger\": \"angry\", \"sadness\": \"sad\"}") != std::string::npos);
      CHECK(json_number(json, "samples") == 9);
      CHECK(json_number(json, "support_total") == 9);
      // the macro averages are over the 3 classes present, not the model's 7
      double f1_sum = 0, prec_sum = 0;
      for (const char* c : {"angry", "happy", "sad"}) {
        const std::string row = json.substr(json.find(std::string("\"") + c + "\": {\"precision\""));
        f1_sum += json_number(row, "f1");
        prec_sum += json_number(row, "precision");
      }
      CHECK(json_number(json, "macro_f1") == doctest::Approx(f1_sum / 3).epsilon(1e-5));
      CHECK(json_number(json, "macro_precision") == doctest::Approx(prec_sum / 3).epsilon(1e-5));
      // 3 images per class present: weighted = macro, and weighted recall is the accuracy
      CHECK(json_number(json, "weighted_f1") == doctest::Approx(f1_sum / 3).epsilon(1e-5));
      CHECK(json_number(json, "weighted_recall") == doctest::Approx(json_number(json, "accuracy")).epsilon(1e-5));
      // one predictions row per evaluated image, none from contempt
      const std::string csv = slurp(stem + "_predictions.csv");
      CHECK(count_lines(stem + "_predictions.csv") == 10);
      CHECK(csv.rfind("image,label,predicted,correct,p_angry,", 0) == 0);
      CHECK(csv.find("/contempt/") == std::string::npos);
      CHECK(csv.find("/anger/") != std::string::npos);
      // the PNG's IHDR height: the 7x7 grid (50 + 7·64 + 30 = 528 rows) plus the 22-row title
      const std::string png = slurp(stem + "_confusion.png");
      REQUIRE(png.size() > 24);
      CHECK(((uint8_t(png[20]) << 24) | (uint8_t(png[21]) << 16) | (uint8_t(png[22]) << 8) | uint8_t(png[23])) == 550);
      loss[tta] = json_number(json, "loss");
    }
    CHECK(loss["flip"] != loss["none"]);  // the mirror's probabilities were averaged in
    CHECK(loss["tencrop"] != loss["flip"]);  // and the crops' (the views: tests/test_metrics.cpp)
    // a map naming a folder that is not there is an error naming it
    std::ofstream(dir + "/map.json") << "{\"angery\": \"angry\"}";
    auto [rc, log] = adnn_fer({"eval", "--checkpoint", committed_checkpoint(), "--split", ck, "--label-map",
                               dir + "/map.json", "--device", "cpu", "--out", dir + "/bad"},
                              dir + "/eval.out", 1);
    CHECK(rc == 1);
    CHECK(log.find("'angery'") != std::string::npos);
    // a map that is not a flat JSON object of strings names the flag, the file and the byte
    std::ofstream(dir + "/map2.json") << "{\"anger\": 1}";
    auto [rc2, log2] = adnn_fer({"eval", "--checkpoint", committed_checkpoint(), "--split", ck, "--label-map",
                                 dir + "/map2.json", "--device", "cpu", "--out", dir + "/bad2"},
                                dir + "/eval2.out", 1);
    CHECK(rc2 == 1);
    CHECK(log2.find("eval: --label-map: " + dir +
                    "/map2.json: not a flat JSON object of strings (expected a string at byte") != std::string::npos);
    // without --out, a checkpoint outside a run directory gets its report in runs/eval/<name>
    // under the working directory, not beside the checkpoint
    const std::string cwd = temp_dir("eval_cwd");
    const std::string cmd = "cd '" + cwd + "' && OMP_NUM_THREADS=1 " + ADNN_FER_BIN + " eval --checkpoint '" +
                            committed_checkpoint() + "' --split '" + ck + "' --label-map ck+ --device cpu > eval.out 2>&1";
    CHECK(std::system(cmd.c_str()) == 0);
    CHECK(fs::exists(cwd + "/runs/eval/adnn_fer_nano/eval_" + fs::path(ck).filename().string() + ".json"));
    CHECK(!fs::exists(fs::path(committed_checkpoint()).parent_path() / ("eval_" + fs::path(ck).filename().string() + ".json")));
    fs::remove_all(cwd);
    fs::remove_all(dir);
    fs::remove_all(ck);
  }

  TEST_CASE("experiment seeds, ablation and compare on a small slice: statistics match hand-computed values") {
#if defined(__SANITIZE_ADDRESS__)
    ADNN_SKIP("ASan build (the release suite runs the experiments)");
#endif
    REQUIRE_FER_DATA();
    const std::string dir = temp_dir("experiment");
    // 4 steps of 32 images per run, 35 val images: the statistics, not the accuracy, are tested
    const std::vector<std::string> small{"--data", fer_dir(), "--seeds", "1,2", "--train-limit", "128", "--val-limit",
                                         "35", "--epochs", "1", "--batch", "32", "--device", "cpu", "--log-every",
                                         "100", "--workers", "1"};
    auto run = [&](std::vector<std::string> words, const std::string& name) {
      for (auto& w : small) words.push_back(w);
      auto r = adnn_fer(words, dir + "/" + name + ".out");
      INFO(r.second);
      REQUIRE(r.first == 0);
    };
    // a string value of result.json (a flat object of strings) as a number
    auto result = [](const std::string& path, const std::string& key) {
      const std::vector<uint8_t> b = io::read_file(path);
      return std::stod(io::parse_json_object(std::string(b.begin(), b.end()), path).at(key));
    };
    run({"experiment", "seeds", "--out", dir + "/seeds"}, "seeds");
    const double a1 = result(dir + "/seeds/seed_1/result.json", "accuracy"),
                 a2 = result(dir + "/seeds/seed_2/result.json", "accuracy");
    const std::string ej = slurp(dir + "/seeds/experiment.json");
    INFO(ej);
    // mean and sample std (n − 1) of two values: (a + b) / 2 and |a − b| / √2
    CHECK(json_number(ej, "mean") == doctest::Approx((a1 + a2) / 2).epsilon(1e-5));
    CHECK(json_number(ej, "std") == doctest::Approx(std::fabs(a1 - a2) / std::sqrt(2.0)).epsilon(1e-5));
    CHECK(slurp(dir + "/seeds/experiment.md").find("| adnn_fer_nano | 2 | ") != std::string::npos);

    run({"experiment", "ablation", "--out", dir + "/ablation"}, "ablation");
    const std::string md = slurp(dir + "/ablation/experiment.md");
    INFO(md);
    for (const char* rung : {"ResNet baseline", "+ EfficientNet", "+ CBAM", "+ Transformer", "+ compound loss"})
      CHECK(md.find(std::string("| ") + rung + " | 2 | ") != std::string::npos);
    const std::string cfg = slurp(dir + "/ablation/cbam/seed_1/config.json");
    CHECK(cfg.find("\"model.backbone\": \"efficientnet_nano\"") != std::string::npos);
    CHECK(cfg.find("\"model.cbam\": \"1\"") != std::string::npos);
    CHECK(cfg.find("\"model.transformer\": \"0\"") != std::string::npos);
    // --ladder nano: the same ingredients on the VGG backbone, three comparisons
    run({"experiment", "ablation", "--ladder", "nano", "--out", dir + "/nano_ladder"}, "nano_ladder");
    const std::string nmd = slurp(dir + "/nano_ladder/experiment.md");
    INFO(nmd);
    for (const char* rung : {"VGG baseline", "+ CBAM", "+ Transformer", "+ compound loss"})
      CHECK(nmd.find(std::string("| ") + rung + " | 2 | ") != std::string::npos);
    CHECK(nmd.find("EfficientNet") == std::string::npos);
    CHECK(nmd.find("over the 3 comparisons") != std::string::npos);
    CHECK(slurp(dir + "/nano_ladder/experiment.json").find("\"ladder\": \"nano\"") != std::string::npos);
    CHECK(slurp(dir + "/ablation/experiment.json").find("\"ladder\": \"paper\"") != std::string::npos);
    CHECK(!fs::exists(dir + "/nano_ladder/efficientnet"));
    for (auto [rung, cbam, transformer, loss] : {std::tuple{"vgg", "0", "0", "ce"}, std::tuple{"transformer", "1", "1", "ce"},
                                                std::tuple{"compound_loss", "1", "1", "compound"}}) {
      const std::string ncfg = slurp(dir + "/nano_ladder/" + rung + "/seed_2/config.json");
      INFO(rung, ": ", ncfg);
      CHECK(ncfg.find("\"model.backbone\": \"" + nn::fer_config("adnn_fer_nano").backbone + "\"") != std::string::npos);
      CHECK(ncfg.find(std::string("\"model.cbam\": \"") + cbam + "\"") != std::string::npos);
      CHECK(ncfg.find(std::string("\"model.transformer\": \"") + transformer + "\"") != std::string::npos);
      CHECK(ncfg.find(std::string("\"recipe.loss\": \"") + loss + "\"") != std::string::npos);
    }

    // compare two rungs against the baseline: paired t over seeds 1, 2 (df 1, where the t
    // distribution is Cauchy's: p = 1 − 2·atan(|t|)/π), Bonferroni over m = 2 comparisons
    auto [crc, clog] = adnn_fer({"compare", dir + "/ablation/resnet", dir + "/ablation/efficientnet",
                                 dir + "/ablation/cbam", "--out", dir + "/cmp"},
                                dir + "/compare.out");
    INFO(clog);
    REQUIRE(crc == 0);
    const std::string cj = slurp(dir + "/cmp/compare.json");
    INFO(cj);
    const double d1 = result(dir + "/ablation/efficientnet/seed_1/result.json", "accuracy") -
                      result(dir + "/ablation/resnet/seed_1/result.json", "accuracy");
    const double d2 = result(dir + "/ablation/efficientnet/seed_2/result.json", "accuracy") -
                      result(dir + "/ablation/resnet/seed_2/result.json", "accuracy");
    const double mean = (d1 + d2) / 2, sd = std::fabs(d1 - d2) / std::sqrt(2.0);
    CHECK(json_number(cj, "mean_diff") == doctest::Approx(mean).epsilon(1e-5));
    CHECK(json_number(cj, "df") == 1);
    CHECK(json_number(cj, "comparisons") == 2);
    double p = mean == 0 ? 1.0 : 0.0;  // equal differences: t ±∞ (or 0)
    if (sd > 1e-9) {
      const double t = mean / (sd / std::sqrt(2.0));
      CHECK(json_number(cj, "t") == doctest::Approx(t).epsilon(1e-4));
      p = 1 - 2 * std::atan(std::fabs(t)) / M_PI;
    }
    CHECK(json_number(cj, "p") == doctest::Approx(p).epsilon(1e-4));
    CHECK(json_number(cj, "p_bonferroni") == doctest::Approx(std::min(1.0, 2 * p)).epsilon(1e-4));

    // McNemar on two single runs' predictions (the same 35 images)
    const std::string pa = dir + "/seeds/seed_1/eval_val_predictions.csv", pb = dir + "/seeds/seed_2/eval_val_predictions.csv";
    auto correct = [&](const std::string& path) {
      std::map<std::string, bool> m;
      for (auto& row : read_csv_text(path)) m[row.at(0)] = row.at(3) == "1";
      return m;
    };
    const auto ca = correct(pa), cb = correct(pb);
    REQUIRE(ca.size() == 35);
    int only_a = 0, only_b = 0;
    for (auto& [img, ok] : ca) {
      only_a += ok && !cb.at(img);
      only_b += !ok && cb.at(img);
    }
    auto [mrc, mlog] = adnn_fer({"compare", pa, pb, "--out", dir + "/mcnemar"}, dir + "/mcnemar.out");
    INFO(mlog);
    REQUIRE(mrc == 0);
    const std::string mj = slurp(dir + "/mcnemar/compare.json");
    INFO(mj);
    CHECK(json_number(mj, "images") == 35);
    CHECK(json_number(mj, "only_a") == only_a);
    CHECK(json_number(mj, "only_b") == only_b);
    const int n = only_a + only_b;
    const double diff = std::max(0.0, std::fabs(double(only_a - only_b)) - 1);
    const double chi2 = n ? diff * diff / n : 0.0;
    CHECK(json_number(mj, "chi2") == doctest::Approx(chi2).epsilon(1e-5));
    CHECK(json_number(mj, "p") == doctest::Approx(n ? std::erfc(std::sqrt(chi2 / 2)) : 1.0).epsilon(1e-5));
    double tail = 0;  // P(Bin(n, 1/2) <= min(b, c))
    for (int k = 0; k <= std::min(only_a, only_b); ++k) tail += std::exp(std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1) - n * std::log(2.0));
    CHECK(json_number(mj, "p_exact") == doctest::Approx(std::min(1.0, 2 * tail)).epsilon(1e-5));

    // usage errors: exit 2 naming what is wrong
    const std::vector<std::pair<std::vector<std::string>, std::string>> usage{
        {{"experiment", "sweep"}, "seeds or ablation"},
        {{"experiment", "seeds", "--seeds", "1,1", "--out", dir + "/x"}, "twice"},
        {{"experiment", "seeds", "--seeds", "1,a", "--out", dir + "/x"}, "--seeds"},
        {{"experiment", "ablation", "--cbam", "on", "--out", dir + "/x"}, "--cbam"},
        {{"experiment", "ablation", "--ladder", "resnet", "--out", dir + "/x"}, "--ladder"},
        {{"experiment", "seeds", "--ladder", "nano", "--out", dir + "/x"}, "--ladder is a flag of experiment ablation"},
        {{"experiment", "seeds", "--out", dir + "/seeds"}, "not empty"},
        {{"compare", pa}, "at least two"},
        {{"compare", pa, pb, "--metric", "loss"}, "--metric"},
    };
    for (auto& [words, what] : usage) {
      auto [rc, out] = adnn_fer(words, dir + "/usage.out", 1);
      INFO(out);
      CHECK(rc == 2);
      CHECK(out.find(what) != std::string::npos);
    }
    CHECK(!fs::exists(dir + "/x"));

    // --resume (an experiment spread over sessions): seed 1 finished and is kept (evaluated
    // again, not retrained), seed 2's run is made unfinished (no result.json) and is trained
    // again from the start, seed 3 is new; the statistics cover all three
    const std::string log1 = slurp(dir + "/seeds/seed_1/log.csv");
    fs::remove(dir + "/seeds/seed_2/result.json");
    std::vector<std::string> resume{"experiment", "seeds", "--out", dir + "/seeds", "--resume"};
    for (const std::string& w : small) resume.push_back(w == "1,2" ? "1,2,3" : w);
    {
      auto [rc, out] = adnn_fer(resume, dir + "/resume.out");
      INFO(out);
      REQUIRE(rc == 0);
      CHECK(out.find("seed 1 finished in an earlier session") != std::string::npos);
      CHECK(out.find("seed_2 has no result.json (its run did not finish)") != std::string::npos);
      CHECK(out.find("--seed 1 ") == std::string::npos);  // no train command for seed 1
      CHECK(out.find("--seed 2 ") != std::string::npos);
      CHECK(slurp(dir + "/seeds/seed_1/log.csv") == log1);
      double acc[3], mean = 0, ss = 0;
      for (int i = 0; i < 3; ++i)
        mean += (acc[i] = result(dir + "/seeds/seed_" + std::to_string(i + 1) + "/result.json", "accuracy")) / 3;
      for (double x : acc) ss += (x - mean) * (x - mean);
      const std::string j3 = slurp(dir + "/seeds/experiment.json"), md3 = slurp(dir + "/seeds/experiment.md");
      INFO(j3, md3);
      CHECK(json_number(j3, "mean") == doctest::Approx(mean).epsilon(1e-5));
      CHECK(json_number(j3, "std") == doctest::Approx(std::sqrt(ss / 2)).epsilon(1e-5));
      CHECK(json_number(j3, "n") == 3);
      CHECK(j3.find("\"reused\": [1]") != std::string::npos);
      CHECK(md3.find("| adnn_fer_nano | 3 | ") != std::string::npos);
      CHECK(md3.find("adnn_fer_nano: seed 1 trained by an earlier session") != std::string::npos);
    }
    // a finished run of another recipe is refused, naming the setting, before anything
    // trains (seed 1 is made unfinished: it would train first); so is --resume with --force,
    // or with nothing to resume
    fs::remove(dir + "/seeds/seed_1/result.json");
    resume.push_back("--lr");
    resume.push_back("0.01");
    for (auto& [words, what] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {resume, "seed_2/config.json is not the run this experiment trains for seed 2: recipe.lr "},
             {{"experiment", "seeds", "--out", dir + "/seeds", "--resume", "--force"}, "give one"},
             {{"experiment", "seeds", "--out", dir + "/none", "--resume"}, "holds no experiment to continue"}}) {
      auto [rc, out] = adnn_fer(words, dir + "/usage.out", 1);
      INFO(out);
      CHECK(rc == 2);
      CHECK(out.find(what) != std::string::npos);
    }
    CHECK(slurp(dir + "/seeds/seed_1/log.csv") == log1);
    CHECK(!fs::exists(dir + "/none"));
    {  // a finished seed whose config.json is damaged stops the experiment, naming the file
      std::ofstream(dir + "/seeds/seed_2/config.json") << "{\"model.name\": ";
      resume.resize(resume.size() - 2);  // without --lr
      auto [rc, out] = adnn_fer(resume, dir + "/damaged.out", 1);
      INFO(out);
      CHECK(rc == 1);
      CHECK(out.find("seed_2/config.json: not a flat JSON object") != std::string::npos);
      CHECK(out.find("remove the run or fix the file") != std::string::npos);
      CHECK(slurp(dir + "/seeds/seed_1/log.csv") == log1);
    }
    for (const char* cmd : {"experiment", "compare"}) {
      auto [rc, out] = adnn_fer({cmd, "--help"}, dir + "/help.out", 1);
      INFO(out);
      CHECK(rc == 0);
      CHECK(out.find(std::string("Usage: adnn-fer ") + cmd) != std::string::npos);
    }
    fs::remove_all(dir);
  }
  TEST_CASE("train: run.command in config.json re-runs the same run (quoted words, values of 1); curves.png drawn") {
    REQUIRE_FER_DATA();
    const std::string data = tiny_fer("command_data", 2, 1), base = temp_dir("command");
    const std::string link = base + "/fer data 1";  // a space: the recorded command must quote it
    fs::create_directory_symlink(data, link);
    const std::string out = base + "/run 1", first = base + "/first";
    auto [rc, log] = adnn_fer({"train", "--data", link, "--out", out, "--device", "cpu", "--batch", "4", "--epochs", "1",
                               "--workers", "0", "--log-every", "1", "--seed", "1", "--cbam", "on", "--patience", "1"},
                              base + "/1.out", 1);
    INFO(log);
    REQUIRE(rc == 0);
    // the header comes before the first progress line (stdout is line-buffered when piped)
    CHECK(log.find("adnn-fer train: ") < log.find("epoch 1/1  step 1/"));
    CHECK(log.find("validation, epoch 1: 7/7 images") != std::string::npos);
    const std::string cj_text = slurp(out + "/config.json");
    const auto cj = io::parse_json_object(cj_text, out + "/config.json");
    const std::string recorded = cj.at("run.command");
    CHECK(recorded == "adnn-fer train --data '" + link + "' --out '" + out +
                          "' --device cpu --batch 4 --epochs 1 --workers 0 --log-every 1 --seed 1 --cbam on "
                          "--patience 1");
    {  // curves.png: a picture, redrawn each epoch
      const data::Image curves = data::read_image(out + "/curves.png");
      CHECK(curves.width > 400);
      CHECK(curves.channels == 3);
    }
    // the recorded command, run by a shell as written, with adnn-fer on the PATH, reproduces the run
    fs::rename(out, first);
    const std::string bin_dir = fs::path(ADNN_FER_BIN).parent_path().string();
    const int src = std::system(("cd '" + base + "' && PATH='" + bin_dir + "':\"$PATH\" OMP_NUM_THREADS=1 " + recorded +
                                 " > '" + base + "/2.out' 2>&1")
                                    .c_str());
    INFO(slurp(base + "/2.out"));
    REQUIRE(WIFEXITED(src));
    REQUIRE(WEXITSTATUS(src) == 0);
    CHECK(digest(out + "/last.safetensors") == digest(first + "/last.safetensors"));
    auto ra = read_csv(first + "/log.csv"), rb = read_csv(out + "/log.csv");
    REQUIRE(ra.size() == 1);
    REQUIRE(rb.size() == 1);
    for (size_t j = 0; j < 9; ++j) CHECK(ra[0][j] == rb[0][j]);  // up to the timings
    CHECK(io::parse_json_object(slurp(out + "/config.json"), "config.json") == cj);
    fs::remove_all(base);
    fs::remove_all(data);
  }

  TEST_CASE("summary: torchinfo-style table, --depth folds, the MAC total is the library's") {
    const std::string logs = temp_dir("summary_logs");
    auto [rc, log] = adnn_fer({"summary", "--model", "adnn_fer_nano", "--depth", "1"}, logs + "/1.out", 1);
    INFO(log);
    REQUIRE(rc == 0);
    nn::AdnnFer model(nn::fer_config("adnn_fer_nano"));
    const int64_t S = model.config().image_size;
    const nn::ModelSummary s = nn::summarize(model, {1, S, S, model.config().in_chans});
    CHECK(log.find("Total MACs: " + nn::thousands(s.macs) + " ") != std::string::npos);
    CHECK(log.find("Total params: " + nn::thousands(model.num_parameters()) + "\n") != std::string::npos);
    CHECK(log.find("Non-trainable params: 0\n") != std::string::npos);
    CHECK(log.find("└─block1 (VggBlock)") != std::string::npos);
    CHECK(log.find("  └─") == std::string::npos);  // nothing below depth 1
    CHECK(log.find("Forward/backward pass size (MB): ") != std::string::npos);
    auto [rc2, deep] = adnn_fer({"summary", "--model", "adnn_fer_nano"}, logs + "/2.out", 1);
    CHECK(rc2 == 0);
    CHECK(deep.find("  └─conv1 (Conv2d)") != std::string::npos);  // block1.conv1 at the default depth 3

    // --backbone: the configuration with another backbone. The default, vgg_nano_wide, buys its
    // width with pooling inside blocks 2 and 3, at about vgg_nano's multiply-adds (docs/adnn_fer.md)
    REQUIRE(model.config().backbone == "vgg_nano_wide");
    auto [rc3, other] =
        adnn_fer({"summary", "--model", "adnn_fer_nano", "--backbone", "vgg_nano", "--depth", "1"}, logs + "/3.out", 1);
    INFO(other);
    REQUIRE(rc3 == 0);
    CHECK(other.rfind("adnn_fer_nano (backbone vgg_nano): input", 0) == 0);
    nn::FerConfig vc = nn::fer_config("adnn_fer_nano");
    vc.backbone = "vgg_nano";
    nn::AdnnFer vmodel(vc);
    const nn::ModelSummary vs = nn::summarize(vmodel, {1, S, S, vc.in_chans});
    CHECK(other.find("Total MACs: " + nn::thousands(vs.macs) + " ") != std::string::npos);
    CHECK(other.find("Total params: " + nn::thousands(vmodel.num_parameters()) + "\n") != std::string::npos);
    CHECK(model.num_parameters() > vmodel.num_parameters());
    CHECK(double(s.macs) < 1.1 * double(vs.macs));
    CHECK(vmodel.token_grid() == model.token_grid());
    for (auto [words, needle] :
         {std::pair{std::vector<std::string>{"summary", "--model", "resnet50", "--backbone", "vgg_nano"},
                    "applies to ADNN-FER configurations only"},
          std::pair{std::vector<std::string>{"summary", "--model", "adnn_fer_nano", "--backbone", "vgg_giant"},
                    "unknown backbone 'vgg_giant' (resnet_nano, vgg_nano, vgg_nano_wide, efficientnet_nano"}}) {
      auto [rc4, err] = adnn_fer(words, logs + "/4.out", 1);
      INFO(err);
      CHECK(rc4 != 0);
      CHECK(err.find(needle) != std::string::npos);
    }
    fs::remove_all(logs);
  }

  TEST_CASE("bench --precision: the step under autocast, recorded; f16 with --graph refused before anything runs") {
    const std::string logs = temp_dir("bench_precision_logs");
    auto [rc, log] = adnn_fer({"bench", "--model", "adnn_fer_nano", "--train", "--batch", "2", "--iters", "1",
                               "--precision", "bf16", "--json", logs + "/b.json"},
                              logs + "/1.out", 1);
    INFO(log);
    REQUIRE(rc == 0);
    CHECK(log.find(", train step (AdamW), bf16 autocast (f32 master weights), batch 2,") != std::string::npos);
    const std::string j = slurp(logs + "/b.json");
    CHECK(j.find("\"precision\": \"bf16\"") != std::string::npos);
    auto [rc2, log2] =
        adnn_fer({"bench", "--model", "adnn_fer_nano", "--train", "--batch", "2", "--iters", "1", "--precision", "f16"},
                 logs + "/2.out", 1);
    INFO(log2);
    CHECK(rc2 == 0);
    CHECK(log2.find("f16 autocast (f32 master weights, gradient scaler)") != std::string::npos);
    auto [rc3, log3] =
        adnn_fer({"bench", "--model", "adnn_fer_nano", "--train", "--precision", "f16", "--graph"}, logs + "/3.out", 1);
    INFO(log3);
    CHECK(rc3 != 0);
    CHECK(log3.find("--graph with --train --precision f16") != std::string::npos);
    CHECK(log3.find("img/s") == std::string::npos);  // nothing was timed
    auto [rc4, log4] = adnn_fer({"bench", "--model", "adnn_fer_nano", "--precision", "f8"}, logs + "/4.out", 1);
    CHECK(rc4 != 0);
    CHECK(log4.find("--precision") != std::string::npos);
    fs::remove_all(logs);
  }

#if ADNN_WITH_CUDA_EMULATION
  TEST_CASE("--device cuda under the emulator says so; --device auto never picks it") {
    const std::string logs = temp_dir("emulated_logs");
    auto [rc, log] = adnn_fer({"bench", "--model", "adnn_fer_nano", "--device", "cuda", "--batch", "1", "--iters", "1",
                               "--json", logs + "/b.json"},
                              logs + "/1.out", 1);
    INFO(log);
    REQUIRE(rc == 0);
    CHECK(log.rfind("adnn-fer bench: device cuda:0 (emulated): no GPU, the SIMT emulator", 0) == 0);  // first line
    CHECK(log.find(", device cuda:0 (emulated), ") != std::string::npos);
    CHECK(slurp(logs + "/b.json").find("\"emulated\": true") != std::string::npos);
    auto [rc2, log2] = adnn_fer({"bench", "--model", "adnn_fer_nano", "--device", "auto", "--batch", "1", "--iters",
                                 "1"},
                                logs + "/2.out", 1);
    INFO(log2);
    CHECK(rc2 == 0);
    CHECK(log2.find(", device cpu, ") != std::string::npos);
    CHECK(log2.find("emulat") == std::string::npos);
    fs::remove_all(logs);
  }
#endif
#endif  // ADNN_FER_BIN

  TEST_CASE("the committed adnn_fer_nano checkpoint loads and classifies FER2013 val well above chance") {
    const std::string ckpt = std::string(ADNN_SOURCE_DIR) + "/models/adnn_fer_nano.safetensors";
    REQUIRE(fs::exists(ckpt));
    auto model = nn::load_adnn_fer(ckpt, kCPU);
    CHECK(model->config().name == "adnn_fer_nano");
    CHECK(model->num_parameters() == 1968879);
    CHECK(model->config().backbone == "vgg_nano_wide");
    CHECK_THROWS_WITH_AS(nn::load_adnn_fer(std::string(ADNN_SOURCE_DIR) + "/tests/fixtures/does_not_exist.safetensors",
                                           kCPU),
                         doctest::Contains("does_not_exist"), Error);
#ifdef ADNN_FER_BIN
    REQUIRE_FER_DATA();
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
