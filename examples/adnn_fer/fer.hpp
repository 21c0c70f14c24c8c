#pragma once
// ADNN-FER training, evaluation and prediction (used by the adnn-fer command line and the
// tests). docs/adnn_fer.md describes the model, the recipe and the files a run writes.
#include <adnn/adnn.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model.hpp"

namespace adnn_fer {

// ---------------------------------------------------------------- command-line arguments
struct Args {
  std::string cmd;
  std::map<std::string, std::string> kv;
  std::vector<std::string> positional;
  bool has(const std::string& k) const { return kv.count(k) > 0; }
  std::string get(const std::string& k, const std::string& d = "") const;
  int64_t num(const std::string& k, int64_t d) const;
  double real(const std::string& k, double d) const;
};
// `--key value` pairs, `--flag` (value "1") and positional arguments after the command.
Args parse_args(int argc, char** argv);

// ---------------------------------------------------------------- evaluation
struct EvalReport {
  std::vector<std::string> classes;
  int64_t samples = 0;
  double loss = 0, accuracy = 0, macro_f1 = 0, macro_auc = 0;
  std::vector<double> precision, recall, f1, auc;
  std::vector<int64_t> support;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
};
// Metrics from class probabilities (N, K) row-major and labels (N).
EvalReport make_report(const std::vector<float>& probs, const std::vector<int64_t>& labels,
                       const std::vector<std::string>& classes);
// Evaluates the model (eval mode, no augmentation) on a dataset; `limit` > 0 takes the
// first `limit` samples of a fixed class-stratified order.
EvalReport evaluate(AdnnFer& model, std::shared_ptr<const adnn::data::Dataset> ds, adnn::Device device,
                    int64_t batch, int workers = 2);
std::string report_json(const EvalReport& r, const std::map<std::string, std::string>& extra = {});
void print_report(const EvalReport& r);
// The confusion matrix as a PNG: rows true, columns predicted, each cell its row percentage.
void write_confusion_png(const std::string& path, const EvalReport& r);

// ---------------------------------------------------------------- data
// The preprocessing a configuration trains and predicts with (CLAHE, size, channels).
adnn::data::PreprocessOptions preprocess_options(const FerConfig& c);
// A class-stratified slice of at most n samples (every class in proportion, fixed order).
std::shared_ptr<const adnn::data::Dataset> stratified_slice(std::shared_ptr<const adnn::data::Dataset> ds, int64_t n,
                                                            uint64_t seed);
// --data: the given directory, else ../shared/data/fer2013 from the working directory or
// from the source tree, when present.
std::string resolve_data_dir(const Args& a);
// --device: cpu, cuda, or auto (default): a real GPU when there is one, else the CPU (the
// SIMT emulator is never picked automatically).
adnn::Device pick_device(const Args& a);

// ---------------------------------------------------------------- commands
int cmd_train(const Args& a);
int cmd_eval(const Args& a);
int cmd_predict(const Args& a);

// Loads a model saved by `train` (weights file with the config in its metadata).
std::shared_ptr<AdnnFer> load_model(const std::string& weights_path, adnn::Device device);

}  // namespace adnn_fer
