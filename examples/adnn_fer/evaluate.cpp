// adnn-fer eval: the model over a dataset, the library's metrics, the report files (fer.hpp).
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

EvalReport evaluate(AdnnFer& model, std::shared_ptr<const data::Dataset> ds, Device device, int64_t batch,
                    int workers, const std::string& source,
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
  std::vector<float> probs;
  std::vector<int64_t> labels;
  {
    NoGradGuard ng;
    while (auto b = loader.next()) {
      Tensor p = softmax(model(b->images.to(device)), 1).to(kCPU).contiguous();  // (B, K)
      const float* pp = p.data_ptr<float>();
      for (int64_t i = 0; i < p.numel(); ++i)
        ADNN_CHECK(std::isfinite(pp[i]), source, " gives a non-finite probability (", pp[i], ") for image ",
                   ds->name(b->indices.at(size_t(i / p.size(1)))), ": are its weights finite?");
      probs.insert(probs.end(), pp, pp + p.numel());
      for (int64_t v : b->labels.to_vector()) labels.push_back(v);
      if (progress) progress(int64_t(labels.size()), ds->size());
    }
  }
  model.train(was_training);
  EvalReport r;
  static_cast<metrics::ClassificationReport&>(r) =
      metrics::classification_report(probs, labels, int64_t(ds->classes().size()));  // (N, K), (N)
  r.classes = ds->classes();
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

int cmd_eval(const Args& a) {
  const std::string ckpt = a.get("checkpoint");
  require_regular_file("eval: --checkpoint", ckpt);
  const std::string dir = resolve_data_dir(a);
  const std::string split = a.get("split", "val");
  // the report's directory first: a bad --out costs no evaluation
  const std::string out = a.get("out", fs::path(ckpt).parent_path().string());
  if (!out.empty()) {
    std::error_code ec;
    fs::create_directories(out, ec);
    ADNN_CHECK(!ec && fs::is_directory(out), "eval: --out '", out, "' cannot be created",
               ec ? " (" + ec.message() + ")" : std::string(" (not a directory)"));
  }
  const Device dev = pick_device(a);
  auto model = load_model(ckpt, dev);
  std::shared_ptr<const data::Dataset> ds = std::make_shared<data::FolderDataset>(dir + "/" + split);
  ds = stratified_slice(ds, a.num("limit", 0), 0);
  std::printf("evaluating %s on %s/%s (%lld images, device %s)\n", ckpt.c_str(), dir.c_str(), split.c_str(),
              (long long)ds->size(), dev.str().c_str());
  EvalReport r = evaluate(*model, ds, dev, a.num("batch", 128), int(a.num("workers", 2)), "checkpoint " + ckpt,
                          eval_progress("eval " + split + ":"));
  print_report(r);
  const std::string stem = (out.empty() ? "" : out + "/") + "eval_" + split;
  io::write_file_atomic(stem + ".json", [&] {
    std::string j = report_json(r, {{"checkpoint", ckpt}, {"data", dir + "/" + split}});
    return std::vector<uint8_t>(j.begin(), j.end());
  }());
  write_confusion_png(stem + "_confusion.png", r);
  std::printf("wrote %s.json and %s_confusion.png\n", stem.c_str(), stem.c_str());
  return 0;
}

}  // namespace adnn_fer
