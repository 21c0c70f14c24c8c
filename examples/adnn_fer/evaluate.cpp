// adnn-fer eval: the model over a dataset, the library's metrics, the report files (fer.hpp).
#include <cstdio>
#include <filesystem>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

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
  EvalReport r;
  static_cast<metrics::ClassificationReport&>(r) =
      metrics::classification_report(probs, labels, int64_t(ds->classes().size()));  // (N, K), (N)
  r.classes = ds->classes();
  return r;
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

}  // namespace adnn_fer
