// ADNN-FER evaluation, prediction and shared helpers (fer.hpp).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "fer.hpp"

#include <adnn/cuda/runtime.hpp>

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- arguments
std::string Args::get(const std::string& k, const std::string& d) const {
  auto it = kv.find(k);
  return it == kv.end() ? d : it->second;
}
int64_t Args::num(const std::string& k, int64_t d) const {
  if (!has(k)) return d;
  try {
    size_t used = 0;
    const int64_t v = std::stoll(get(k), &used);
    if (used == get(k).size()) return v;
  } catch (const std::exception&) {
  }
  ADNN_FAIL(cmd, ": --", k, " expects an integer, got '", get(k), "'");
}
double Args::real(const std::string& k, double d) const {
  if (!has(k)) return d;
  try {
    size_t used = 0;
    const double v = std::stod(get(k), &used);
    if (used == get(k).size()) return v;
  } catch (const std::exception&) {
  }
  ADNN_FAIL(cmd, ": --", k, " expects a number, got '", get(k), "'");
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc > 1) a.cmd = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) {
      a.positional.push_back(s);
      continue;
    }
    s = s.substr(2);
    if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0 && s != "train" && s != "resume")
      a.kv[s] = argv[++i];
    else
      a.kv[s] = "1";
  }
  return a;
}

// ---------------------------------------------------------------- data helpers
data::PreprocessOptions preprocess_options(const FerConfig& c) {
  data::PreprocessOptions p;
  p.size = int(c.image_size);
  p.channels = int(c.in_chans);
  p.clahe = true;
  return p;
}

namespace {
class Subset : public data::Dataset {
 public:
  Subset(std::shared_ptr<const data::Dataset> base, std::vector<int64_t> idx) : base_(std::move(base)), idx_(std::move(idx)) {}
  int64_t size() const override { return int64_t(idx_.size()); }
  int64_t label(int64_t i) const override { return base_->label(idx_.at(size_t(i))); }
  data::Image load(int64_t i) const override { return base_->load(idx_.at(size_t(i))); }
  std::string name(int64_t i) const override { return base_->name(idx_.at(size_t(i))); }
  const std::vector<std::string>& classes() const override { return base_->classes(); }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::vector<int64_t> idx_;
};
}  // namespace

std::shared_ptr<const data::Dataset> stratified_slice(std::shared_ptr<const data::Dataset> ds, int64_t n,
                                                      uint64_t seed) {
  if (n <= 0 || n >= ds->size()) return ds;
  // shuffle each class's indices, then take them round-robin in proportion to class size
  Generator g(seed);
  std::vector<std::vector<int64_t>> by(size_t(ds->num_classes()));
  for (int64_t i = 0; i < ds->size(); ++i) by[size_t(ds->label(i))].push_back(i);
  std::vector<int64_t> idx;
  for (auto& v : by) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[g.next_u64() % i]);
    const int64_t take = int64_t(std::llround(double(v.size()) * double(n) / double(ds->size())));
    idx.insert(idx.end(), v.begin(), v.begin() + std::min<int64_t>(take, int64_t(v.size())));
  }
  std::sort(idx.begin(), idx.end());
  return std::make_shared<Subset>(ds, idx);
}

std::string resolve_data_dir(const Args& a) {
  if (a.has("data")) return a.get("data");
  for (const std::string& p : {std::string("../shared/data/fer2013"), std::string(ADNN_FER_SOURCE_DIR) + "/../shared/data/fer2013"})
    if (fs::is_directory(p + "/train") || fs::is_directory(p + "/val")) return p;
  ADNN_FAIL(a.cmd, ": no --data given and ../shared/data/fer2013 is not there");
}

// ---------------------------------------------------------------- metrics
EvalReport make_report(const std::vector<float>& probs, const std::vector<int64_t>& labels,
                       const std::vector<std::string>& classes) {
  const size_t K = classes.size(), N = labels.size();
  ADNN_CHECK(probs.size() == N * K, "evaluate: ", probs.size(), " probabilities for ", N, " samples of ", K, " classes");
  EvalReport r;
  r.classes = classes;
  r.samples = int64_t(N);
  r.confusion.assign(K, std::vector<int64_t>(K, 0));
  double nll = 0;
  int64_t correct = 0;
  for (size_t i = 0; i < N; ++i) {
    const float* p = probs.data() + i * K;
    const size_t pred = size_t(std::max_element(p, p + K) - p);
    const size_t y = size_t(labels[i]);
    ADNN_CHECK(y < K, "evaluate: label ", labels[i], " out of range for ", K, " classes");
    r.confusion[y][pred]++;
    correct += pred == y;
    nll -= std::log(std::max(double(p[y]), 1e-12));
  }
  r.loss = N ? nll / double(N) : 0;
  r.accuracy = N ? double(correct) / double(N) : 0;
  int64_t f1_classes = 0, auc_classes = 0;
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
    if (tp + fn > 0) {
      r.macro_f1 += r.f1.back();
      ++f1_classes;
    }
    // one-vs-rest AUC by ranks (Mann–Whitney U, ties share their mean rank)
    std::vector<std::pair<float, bool>> s(N);
    for (size_t i = 0; i < N; ++i) s[i] = {probs[i * K + c], size_t(labels[i]) == c};
    std::sort(s.begin(), s.end(), [](auto& a, auto& b) { return a.first < b.first; });
    double rank_sum = 0;
    int64_t pos = 0;
    for (size_t i = 0; i < N;) {
      size_t j = i;
      while (j < N && s[j].first == s[i].first) ++j;
      const double mean_rank = (double(i + 1) + double(j)) / 2;
      for (size_t t = i; t < j; ++t)
        if (s[t].second) {
          rank_sum += mean_rank;
          ++pos;
        }
      i = j;
    }
    const int64_t neg = int64_t(N) - pos;
    const double auc = pos && neg ? (rank_sum - double(pos) * double(pos + 1) / 2) / (double(pos) * double(neg)) : NAN;
    r.auc.push_back(auc);
    if (!std::isnan(auc)) {
      r.macro_auc += auc;
      ++auc_classes;
    }
  }
  r.macro_f1 = f1_classes ? r.macro_f1 / double(f1_classes) : 0;
  r.macro_auc = auc_classes ? r.macro_auc / double(auc_classes) : NAN;
  return r;
}

EvalReport evaluate(AdnnFer& model, std::shared_ptr<const data::Dataset> ds, Device device, int64_t batch,
                    int workers) {
  data::LoaderOptions lo;
  lo.batch_size = batch;
  lo.shuffle = false;
  lo.augment = false;
  lo.workers = workers;
  data::DataLoader loader(ds, preprocess_options(model.config()), data::AugmentOptions::none(), lo);
  loader.start_epoch(0);
  const bool was_training = model.is_training();
  model.eval();
  std::vector<float> probs;
  std::vector<int64_t> labels;
  {
    NoGradGuard ng;
    while (auto b = loader.next()) {
      Tensor p = softmax(model(b->images.to(device)), 1).to(kCPU).contiguous();  // (B, K)
      const float* pp = p.data_ptr<float>();
      probs.insert(probs.end(), pp, pp + p.numel());
      for (int64_t v : b->labels.to_vector()) labels.push_back(v);
    }
  }
  model.train(was_training);
  return make_report(probs, labels, ds->classes());
}

namespace {
std::string jnum(double v) {
  if (std::isnan(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}
std::string jstr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}
}  // namespace

std::string report_json(const EvalReport& r, const std::map<std::string, std::string>& extra) {
  std::ostringstream o;
  o << "{\n";
  for (auto& [k, v] : extra) o << "  " << jstr(k) << ": " << jstr(v) << ",\n";
  o << "  \"samples\": " << r.samples << ",\n  \"accuracy\": " << jnum(r.accuracy) << ",\n  \"macro_f1\": "
    << jnum(r.macro_f1) << ",\n  \"macro_auc_ovr\": " << jnum(r.macro_auc) << ",\n  \"loss\": " << jnum(r.loss)
    << ",\n  \"per_class\": {\n";
  for (size_t c = 0; c < r.classes.size(); ++c)
    o << "    " << jstr(r.classes[c]) << ": {\"precision\": " << jnum(r.precision[c]) << ", \"recall\": "
      << jnum(r.recall[c]) << ", \"f1\": " << jnum(r.f1[c]) << ", \"auc\": " << jnum(r.auc[c])
      << ", \"support\": " << r.support[c] << "}" << (c + 1 < r.classes.size() ? "," : "") << "\n";
  o << "  },\n  \"classes\": [";
  for (size_t c = 0; c < r.classes.size(); ++c) o << (c ? ", " : "") << jstr(r.classes[c]);
  o << "],\n  \"confusion_matrix\": [\n";
  for (size_t i = 0; i < r.confusion.size(); ++i) {
    o << "    [";
    for (size_t j = 0; j < r.confusion[i].size(); ++j) o << (j ? ", " : "") << r.confusion[i][j];
    o << "]" << (i + 1 < r.confusion.size() ? "," : "") << "\n";
  }
  o << "  ]\n}\n";
  return o.str();
}

void print_report(const EvalReport& r) {
  std::printf("samples %lld  accuracy %.4f  macro-F1 %.4f  macro AUC (one-vs-rest) %.4f  loss %.4f\n",
              (long long)r.samples, r.accuracy, r.macro_f1, r.macro_auc, r.loss);
  std::printf("%-10s %9s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "auc", "support");
  for (size_t c = 0; c < r.classes.size(); ++c)
    std::printf("%-10s %9.4f %9.4f %9.4f %9.4f %8lld\n", r.classes[c].c_str(), r.precision[c], r.recall[c], r.f1[c],
                r.auc[c], (long long)r.support[c]);
  std::printf("confusion matrix (rows true, columns predicted):\n%-10s", "");
  for (auto& c : r.classes) std::printf(" %8.8s", c.c_str());
  std::printf("\n");
  for (size_t i = 0; i < r.confusion.size(); ++i) {
    std::printf("%-10s", r.classes[i].c_str());
    for (int64_t v : r.confusion[i]) std::printf(" %8lld", (long long)v);
    std::printf("\n");
  }
}

// ---------------------------------------------------------------- confusion-matrix PNG
namespace {
// 3×5 glyphs, one 3-bit row each (bit 2 = left column)
const std::map<char, std::array<uint8_t, 5>>& glyphs() {
  static const std::map<char, std::array<uint8_t, 5>> g = {
      {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
      {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
      {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'%', {5, 1, 2, 4, 5}},
      {'A', {2, 5, 7, 5, 5}}, {'B', {6, 5, 6, 5, 6}}, {'C', {3, 4, 4, 4, 3}}, {'D', {6, 5, 5, 5, 6}},
      {'E', {7, 4, 6, 4, 7}}, {'F', {7, 4, 6, 4, 4}}, {'G', {3, 4, 5, 5, 3}}, {'H', {5, 5, 7, 5, 5}},
      {'I', {7, 2, 2, 2, 7}}, {'J', {1, 1, 1, 5, 2}}, {'K', {5, 5, 6, 5, 5}}, {'L', {4, 4, 4, 4, 7}},
      {'M', {5, 7, 7, 5, 5}}, {'N', {6, 5, 5, 5, 5}}, {'O', {2, 5, 5, 5, 2}}, {'P', {6, 5, 6, 4, 4}},
      {'Q', {2, 5, 5, 6, 3}}, {'R', {6, 5, 6, 5, 5}}, {'S', {3, 4, 2, 1, 6}}, {'T', {7, 2, 2, 2, 2}},
      {'U', {5, 5, 5, 5, 7}}, {'V', {5, 5, 5, 5, 2}}, {'W', {5, 5, 7, 7, 5}}, {'X', {5, 5, 2, 5, 5}},
      {'Y', {5, 5, 2, 2, 2}}, {'Z', {7, 1, 2, 4, 7}}, {' ', {0, 0, 0, 0, 0}}};
  return g;
}

void put(data::Image& im, int x, int y, float r, float g, float b) {
  if (x < 0 || y < 0 || x >= im.width || y >= im.height) return;
  im.at(y, x, 0) = r;
  im.at(y, x, 1) = g;
  im.at(y, x, 2) = b;
}

// Text at (x, y), scale s (each glyph 3s × 5s, advance 4s).
void text(data::Image& im, int x, int y, const std::string& s, int scale, float shade) {
  for (char ch : s) {
    const char c = char(std::toupper(static_cast<unsigned char>(ch)));
    auto it = glyphs().find(c);
    if (it != glyphs().end())
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (it->second[size_t(row)] & (4 >> col))
            for (int dy = 0; dy < scale; ++dy)
              for (int dx = 0; dx < scale; ++dx) put(im, x + col * scale + dx, y + row * scale + dy, shade, shade, shade);
    x += 4 * scale;
  }
}
}  // namespace

void write_confusion_png(const std::string& path, const EvalReport& r) {
  const int K = int(r.classes.size()), cell = 64, left = 90, top = 50, s = 2;
  data::Image im(top + K * cell + 30, left + K * cell + 10, 3, 255.f);
  text(im, left, 6, "PREDICTED", s, 0);
  for (int j = 0; j < K; ++j) text(im, left + j * cell + 8, 28, r.classes[size_t(j)].substr(0, 3), s, 0);
  for (int i = 0; i < K; ++i) {
    text(im, 4, top + i * cell + cell / 2 - 5, r.classes[size_t(i)].substr(0, 8), s, 0);
    int64_t row = 0;
    for (int64_t v : r.confusion[size_t(i)]) row += v;
    for (int j = 0; j < K; ++j) {
      const double pct = row ? 100.0 * double(r.confusion[size_t(i)][size_t(j)]) / double(row) : 0.0;
      const float v = float(pct / 100.0);
      for (int y = 1; y < cell - 1; ++y)
        for (int x = 1; x < cell - 1; ++x)
          put(im, left + j * cell + x, top + i * cell + y, 255.f * (1 - 0.9f * v), 255.f * (1 - 0.65f * v),
              255.f * (1 - 0.25f * v));
      char buf[16];
      std::snprintf(buf, sizeof buf, "%.1f%%", pct);
      const int w = int(std::strlen(buf)) * 4 * s;
      text(im, left + j * cell + (cell - w) / 2, top + i * cell + cell / 2 - 5, buf, s, v > 0.5f ? 255.f : 0.f);
    }
  }
  text(im, left, top + K * cell + 8, "ROWS TRUE  COLUMNS PREDICTED", s, 0);
  data::write_png(path, im);
}

// ---------------------------------------------------------------- eval / predict commands
std::shared_ptr<AdnnFer> load_model(const std::string& path, Device device) {
  io::SafeTensors st = io::load_safetensors(path);
  ADNN_CHECK(st.metadata.count("model.name"), "adnn-fer: ", path,
             " has no ADNN-FER config in its metadata (was it written by adnn-fer train?)");
  auto model = std::make_shared<AdnnFer>(FerConfig::from_map(st.metadata));
  model->load_state_dict(st.tensors, true);
  model->eval();
  model->to(device);
  return model;
}

Device pick_device(const Args& a) {
  const std::string d = a.get("device", "auto");
  if (d != "auto") return Device(d);
#if ADNN_WITH_CUDA_BACKEND
  if (cuda_is_available() && !cuda::is_emulated()) return Device("cuda");  // a real GPU, not the emulator
#endif
  return kCPU;
}

int cmd_eval(const Args& a) {
  ADNN_CHECK(a.has("checkpoint"), "eval: --checkpoint is required");
  const Device dev = pick_device(a);
  auto model = load_model(a.get("checkpoint"), dev);
  const std::string dir = resolve_data_dir(a);
  const std::string split = a.get("split", "val");
  std::shared_ptr<const data::Dataset> ds = std::make_shared<data::FolderDataset>(dir + "/" + split);
  ds = stratified_slice(ds, a.num("limit", 0), 0);
  std::printf("evaluating %s on %s/%s (%lld images, device %s)\n", a.get("checkpoint").c_str(), dir.c_str(),
              split.c_str(), (long long)ds->size(), dev.str().c_str());
  EvalReport r = evaluate(*model, ds, dev, a.num("batch", 128));
  print_report(r);
  const std::string out = a.get("out", fs::path(a.get("checkpoint")).parent_path().string());
  const std::string stem = out.empty() ? "eval_" + split : out + "/eval_" + split;
  io::write_file_atomic(stem + ".json", [&] {
    std::string j = report_json(r, {{"checkpoint", a.get("checkpoint")}, {"data", dir + "/" + split}});
    return std::vector<uint8_t>(j.begin(), j.end());
  }());
  write_confusion_png(stem + "_confusion.png", r);
  std::printf("wrote %s.json and %s_confusion.png\n", stem.c_str(), stem.c_str());
  return 0;
}

int cmd_predict(const Args& a) {
  ADNN_CHECK(a.has("checkpoint"), "predict: --checkpoint is required");
  ADNN_CHECK(!a.positional.empty(), "predict: give one or more face images");
  const Device dev = pick_device(a);
  auto model = load_model(a.get("checkpoint"), dev);
  const FerConfig& c = model->config();
  const auto& classes = data::fer2013_classes();
  const int64_t top = std::clamp<int64_t>(a.num("top", 3), 1, c.num_classes);
  const data::PreprocessOptions pre = preprocess_options(c);
  for (const std::string& path : a.positional) {
    data::Image img = data::preprocess(data::read_image(path), pre);  // CLAHE, resize, channels
    Tensor x = data::to_tensor(img);                                   // (S, S, C), pixels 0..255
    x = ((x / 255.0) - 0.5) / 0.5;                                     // as the loader
    NoGradGuard ng;
    Tensor p = softmax((*model)(x.unsqueeze(0).to(dev)), 1).to(kCPU);  // (1, K)
    std::vector<double> pv = p.to_vector();
    std::vector<size_t> order(pv.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return pv[i] > pv[j]; });
    std::printf("%s:", path.c_str());
    for (int64_t k = 0; k < top; ++k) {
      const size_t ci = order[size_t(k)];
      std::printf("  %s %.3f", ci < classes.size() ? classes[ci].c_str() : std::to_string(ci).c_str(), pv[ci]);
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace adnn_fer
