// adnn-fer eval: the model over a dataset (optionally with flip or ten-crop TTA, optionally through a
// label map onto another dataset's folder names), the library's metrics, the report files
// (fer.hpp).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <cstdio>
#include <filesystem>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

namespace {

// A dataset seen through a label map: the kept samples of `base`, relabelled to the model's
// classes.
class Relabelled : public data::Dataset {
 public:
  Relabelled(std::shared_ptr<const data::Dataset> base, std::vector<std::pair<int64_t, int64_t>> kept,
             std::vector<std::string> classes)
      : base_(std::move(base)), kept_(std::move(kept)), classes_(std::move(classes)) {}
  int64_t size() const override { return int64_t(kept_.size()); }
  int64_t label(int64_t i) const override { return kept_.at(size_t(i)).second; }
  data::Image load(int64_t i) const override { return base_->load(kept_.at(size_t(i)).first); }
  std::string name(int64_t i) const override { return base_->name(kept_.at(size_t(i)).first); }
  const std::vector<std::string>& classes() const override { return classes_; }

 private:
  std::shared_ptr<const data::Dataset> base_;
  std::vector<std::pair<int64_t, int64_t>> kept_;  // (base index, model class)
  std::vector<std::string> classes_;
};

// --label-map: "ck+" or a JSON file of one flat object.
std::map<std::string, std::string> load_label_map(const std::string& map) {
  if (map == "ck+" || map == "ckplus") return {{"anger", "angry"}, {"sadness", "sad"}};
  require_regular_file("eval: --label-map", map);
  try {
    return io::read_json_object(map);
  } catch (const Error& e) {
    ADNN_FAIL("eval: --label-map: ", e.what());
  }
}

// --split: a folder of --data (default val), or a directory holding class folders itself.
std::string split_dir(const Args& a) {
  const std::string split = a.get("split", "val");
  const bool is_path = split.find('/') != std::string::npos || split == "." || split == "..";
  if (is_path && fs::is_directory(split)) return split;
  const std::string dir = resolve_data_dir(a);
  if (!is_path || fs::is_directory(dir + "/" + split)) return dir + "/" + split;
  ADNN_FAIL("eval: --split '", split, "' is neither a folder of --data ", dir, " nor a directory");
}

// The report's directory: --out, else the checkpoint's directory when it is a training run's
// (it holds config.json), else runs/eval/<checkpoint name> (never next to a checkpoint such as
// models/adnn_fer_nano.safetensors inside the repository).
std::string out_dir(const Args& a, const std::string& ckpt) {
  if (a.has("out")) return a.get("out");
  const fs::path dir = fs::path(ckpt).parent_path();
  if (fs::exists((dir.empty() ? fs::path(".") : dir) / "config.json")) return dir.string();
  return "runs/eval/" + fs::path(ckpt).stem().string();
}

}  // namespace

MappedData map_labels(const std::string& dir, const std::string& map) {
  MappedData m;
  m.renames = load_label_map(map);
  const std::vector<std::string>& model = data::fer2013_classes();
  std::vector<std::string> folders;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) folders.push_back(e.path().filename().string());
  ADNN_CHECK(!ec, "eval: cannot list ", dir, " (", ec.message(), ")");
  ADNN_CHECK(!folders.empty(), "eval: ", dir, " has no class folders");
  std::sort(folders.begin(), folders.end());
  for (auto& [from, to] : m.renames)
    ADNN_CHECK(std::find(folders.begin(), folders.end(), from) != folders.end(), "eval: --label-map ", map,
               " renames '", from, "', which is not a class folder of ", dir);
  data::FolderOptions fo;
  fo.classes = folders;  // labels: folder indices
  auto base = std::make_shared<data::FolderDataset>(dir, fo);
  std::vector<int64_t> target(folders.size(), -1);  // folder -> model class, -1: skipped
  for (size_t f = 0; f < folders.size(); ++f) {
    const auto it = m.renames.find(folders[f]);
    const std::string to = it == m.renames.end() ? folders[f] : it->second;
    const auto at = std::find(model.begin(), model.end(), to);
    if (at != model.end()) target[f] = int64_t(at - model.begin());
  }
  std::vector<std::pair<int64_t, int64_t>> kept;
  std::vector<int64_t> per_class(model.size(), 0);
  for (int64_t i = 0; i < base->size(); ++i) {
    const int64_t t = target[size_t(base->label(i))];
    if (t < 0) {
      ++m.skipped[folders[size_t(base->label(i))]];
      continue;
    }
    kept.emplace_back(i, t);
    ++per_class[size_t(t)];
  }
  ADNN_CHECK(!kept.empty(), "eval: --label-map ", map, " maps no image of ", dir, " onto the model's classes");
  for (size_t c = 0; c < model.size(); ++c)
    if (per_class[c] == 0) m.absent.push_back(model[c]);
  m.ds = std::make_shared<Relabelled>(base, std::move(kept), model);
  return m;
}

EvalReport evaluate(AdnnFer& model, std::shared_ptr<const data::Dataset> ds, Device device, int64_t batch, int workers,
                    const std::string& source, nn::Tta tta,
                    const std::function<void(int64_t done, int64_t total)>& progress) {
  data::LoaderOptions lo;
  lo.batch_size = batch;
  lo.shuffle = false;
  lo.augment = false;
  lo.workers = workers;
  data::DataLoader loader(ds, preprocess_options(model.config()), data::AugmentOptions::none(), lo);
  loader.start_epoch(0);
  const bool was_training = model.is_training();
  model.eval();
  EvalReport r;
  {
    NoGradGuard ng;
    while (auto b = loader.next()) {
      Tensor p = nn::predict_probabilities(model, b->images.to(device), tta).to(kCPU).contiguous();  // (B, K)
      const float* pp = p.data_ptr<float>();
      for (int64_t i = 0; i < p.numel(); ++i)
        ADNN_CHECK(std::isfinite(pp[i]), source, " gives a non-finite probability (", pp[i], ") for image ",
                   ds->name(b->indices.at(size_t(i / p.size(1)))), ": are its weights finite?");
      r.probs.insert(r.probs.end(), pp, pp + p.numel());
      for (int64_t v : b->labels.to_vector()) r.labels.push_back(v);
      for (int64_t idx : b->indices) r.images.push_back(ds->name(idx));
      if (progress) progress(int64_t(r.labels.size()), ds->size());
    }
  }
  model.train(was_training);
  static_cast<metrics::ClassificationReport&>(r) =
      metrics::classification_report(r.probs, r.labels, int64_t(ds->classes().size()));  // (N, K), (N)
  r.classes = ds->classes();
  r.tta = tta;
  return r;
}

std::function<void(int64_t, int64_t)> eval_progress(const std::string& label) {
  const bool tty = isatty(fileno(stderr));
  auto last = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
  const auto start = *last;
  return [=](int64_t done, int64_t total) {
    const auto now = std::chrono::steady_clock::now();
    const bool end = done >= total;
    if (!end && now - *last < (tty ? std::chrono::milliseconds(250) : std::chrono::milliseconds(10000))) return;
    *last = now;
    const double s = std::chrono::duration<double>(now - start).count();
    std::fprintf(stderr, "%s%s %lld/%lld images  %.0f img/s%s", tty ? "\r" : "", label.c_str(), (long long)done,
                 (long long)total, double(done) / std::max(s, 1e-9), tty && !end ? "   " : "\n");
    std::fflush(stderr);
  };
}

EvalReport run_eval(const Args& a) {
  const std::string ckpt = a.get("checkpoint");
  require_regular_file("eval: --checkpoint", ckpt);
  const nn::Tta tta = nn::parse_tta(a.get("tta", "none"), "eval --tta");
  const std::string data_dir = split_dir(a);
  fs::path split_path = fs::path(data_dir).lexically_normal();
  if (split_path.filename().empty()) split_path = split_path.parent_path();  // "DIR/"
  const std::string split = split_path.filename().string();
  // the report's directory first: a bad --out costs no evaluation
  const std::string out = out_dir(a, ckpt);
  if (!out.empty()) {
    std::error_code ec;
    fs::create_directories(out, ec);
    ADNN_CHECK(!ec && fs::is_directory(out), "eval: --out '", out, "' cannot be created",
               ec ? " (" + ec.message() + ")" : std::string(" (not a directory)"));
  }
  const Device dev = pick_device(a);
  auto model = load_model(ckpt, dev);
  std::shared_ptr<const data::Dataset> ds;
  std::map<std::string, std::string> extra_json;
  if (a.has("label-map")) {
    MappedData m = map_labels(data_dir, a.get("label-map"));
    ds = m.ds;
    std::string skipped = "{", absent = "[", renames = "{";
    for (auto& [k, n] : m.skipped) {
      std::printf("skipped %lld images of '%s': not a class of the model\n", (long long)n, k.c_str());
      skipped += (skipped.size() > 1 ? ", " : "") + json_quote(k) + ": " + std::to_string(n);
    }
    for (auto& c : m.absent) absent += (absent.size() > 1 ? ", " : "") + json_quote(c);
    for (auto& [k, v] : m.renames) renames += (renames.size() > 1 ? ", " : "") + json_quote(k) + ": " + json_quote(v);
    if (!m.absent.empty())
      std::printf("classes of the model without images (left out of the macro averages): %s\n",
                  absent.substr(1).c_str());
    extra_json = {{"label_map", renames + "}"}, {"skipped", skipped + "}"}, {"classes_absent", absent + "]"}};
  } else {
    ds = std::make_shared<data::FolderDataset>(data_dir);
  }
  ds = stratified_slice(ds, a.num("limit", 0), 0);
  std::printf("evaluating %s on %s (%lld images, device %s, TTA %s)\n", ckpt.c_str(), data_dir.c_str(),
              (long long)ds->size(), dev.str().c_str(), nn::tta_name(tta));
  EvalReport r = evaluate(*model, ds, dev, a.num("batch", 128), int(a.num("workers", 2)), "checkpoint " + ckpt, tta,
                          eval_progress("eval " + split + ":"));
  print_report(r);
  const std::string stem = (out.empty() ? "" : out + "/") + "eval_" + split;
  const std::string preds = stem + "_predictions.csv";
  auto bytes = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  io::write_file_atomic(preds, bytes(predictions_csv(r)));
  io::write_file_atomic(
      stem + ".json",
      bytes(report_json(
          r, {{"checkpoint", ckpt}, {"data", data_dir}, {"predictions", fs::path(preds).filename().string()}},
          extra_json)));
  char title[64];
  std::snprintf(title, sizeof title, "  %s  ACC %.2f%%%s", split.c_str(), 100 * r.accuracy,
                tta == nn::Tta::flip      ? "  TTA FLIP"
                : tta == nn::Tta::tencrop ? "  TTA TENCROP"
                                          : "");
  write_confusion_png(stem + "_confusion.png", r, fs::path(ckpt).stem().string() + title);
  std::printf("wrote %s.json, %s and %s_confusion.png\n", stem.c_str(), preds.c_str(), stem.c_str());
  return r;
}

int cmd_eval(const Args& a) {
  run_eval(a);
  return 0;
}

}  // namespace adnn_fer
