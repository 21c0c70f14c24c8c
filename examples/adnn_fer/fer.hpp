#pragma once
// ADNN-FER training, evaluation and prediction: the adnn-fer command line. The model lives
// in the library (include/adnn/nn/adnn_fer.hpp), the metrics too
// (include/adnn/metrics/classification.hpp). docs/adnn_fer.md describes the model, the
// recipe and the files a run writes.
//   args.cpp      command-line arguments, --device
//   data.cpp      preprocessing options, stratified slices, --data
//   evaluate.cpp  evaluation and the eval command
//   report.cpp    the report as JSON, as text, and the confusion-matrix PNG
//   predict.cpp   loading a checkpoint and the predict command (crops, or photos: detect + align)
//   detect.cpp    the detect and preprocess commands (RetinaFace, alignment)
//   explain.cpp   the explain command (Grad-CAM, Grad-CAM++, SHAP, integrated gradients; --summary)
//   train.cpp     the train command
//   experiment.cpp  the experiment (seeds, ablation) and compare commands: statistics over runs
//   export.cpp    the export command (PyTorch / timm state dicts)
//   profile.cpp   the profile command (per-kernel memory report of one step, emulated)
#include <adnn/adnn.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace adnn_fer {

using adnn::nn::AdnnFer;
using adnn::nn::FerConfig;

// ---------------------------------------------------------------- command-line arguments (args.cpp)
// A command line that cannot be run as given (unknown flag, missing or out-of-range value,
// a --resume flag that contradicts the run): exit status 2. Other errors exit with 1.
struct UsageError : adnn::Error {
  using adnn::Error::Error;
};

// The parsed command line: the subcommand, the flags given (name without "--" -> value;
// "" for a switch such as --resume), the positional arguments, and argv as typed.
// parse_command_line has already checked every value against its flag's kind and range
// (docs/adnn_fer.md lists them), so num/real/get only convert.
struct Args {
  std::string cmd;
  std::map<std::string, std::string> kv;
  std::vector<std::string> positional;
  std::vector<std::string> words;  // argv[1..], exactly as given
  bool has(const std::string& k) const { return kv.count(k) > 0; }
  std::string get(const std::string& k, const std::string& d = "") const;
  int64_t num(const std::string& k, int64_t d) const;
  double real(const std::string& k, double d) const;
  // on|off flags
  bool on(const std::string& k, bool d) const;
  // "adnn-fer WORD..." with each word shell-quoted where needed
  std::string command() const;
};
// Parses argv into `out` and returns -1, or prints help (returns 0) or a usage error
// (returns 2). Unknown flags, a flag without its value, a value of the wrong kind or out of
// its range are usage errors; -h/--help works on every subcommand.
int parse_command_line(int argc, char** argv, Args& out);
// --device: cpu, cuda, or auto (default): a real GPU when there is one, else the CPU (the
// SIMT emulator is never picked automatically).
adnn::Device pick_device(const Args& a);

// ---------------------------------------------------------------- data-parallel (launch.cpp)
// train --nproc N: starts N ranks of this command on this host (RANK, WORLD_SIZE, LOCAL_RANK,
// MASTER_ADDR/PORT and a fresh rendezvous directory in their environment; OMP_NUM_THREADS
// split between them unless set), waits for them and returns their exit status; when one
// fails, the others are stopped (they also fail on their own within --dist-timeout).
int launch_local_ranks(const Args& a, int nproc);
// In a rank started by launch_local_ranks: end with the launcher (PR_SET_PDEATHSIG).
void die_with_launcher();

// ---------------------------------------------------------------- models (main.cpp)
// --model NAME: an ADNN-FER configuration (adnn_fer*) or a torchvision/timm-style backbone, with
// --classes, --in-chans and --image-size over its defaults (ADNN-FER configurations carry their own).
struct ModelArgs {
  std::string name;
  std::string backbone;  // ADNN-FER only: the configuration's backbone replaced (empty: its own)
  int64_t classes, in_chans, size;
  // the name, with the replaced backbone: for reports
  std::string label() const { return backbone.empty() ? name : name + " (backbone " + backbone + ")"; }
};
bool is_fer(const std::string& name);
ModelArgs model_args(const Args& a);
std::shared_ptr<adnn::nn::Module> make_model(const ModelArgs& m);

// ---------------------------------------------------------------- data (data.cpp)
// The preprocessing a configuration trains and predicts with (CLAHE, size, channels).
adnn::data::PreprocessOptions preprocess_options(const FerConfig& c);
// A class-stratified slice of exactly n samples (n <= 0 or >= the size: all of them): every
// class its share rounded down, the largest remainders one more; fixed order for a seed.
std::shared_ptr<const adnn::data::Dataset> stratified_slice(std::shared_ptr<const adnn::data::Dataset> ds, int64_t n,
                                                            uint64_t seed);
// --data: the given directory, else ../shared/data/fer2013 from the working directory or
// from the source tree, when present.
std::string resolve_data_dir(const Args& a);
// A file the command reads (a checkpoint, an image): an adnn::Error naming `what` and the
// path when it is missing or not a regular file (a directory, /dev/zero, a FIFO).
void require_regular_file(const std::string& what, const std::string& path);

// ---------------------------------------------------------------- evaluation (evaluate.cpp)
// The library's metrics with the class names they refer to, and the per-sample predictions
// they were computed from.
struct EvalReport : adnn::metrics::ClassificationReport {
  std::vector<std::string> classes;
  std::vector<std::string> images;  // (N) the dataset's sample names, in evaluation order
  std::vector<int64_t> labels;      // (N) true class
  std::vector<float> probs;         // (N, K) row-major, under `tta`
  adnn::nn::Tta tta = adnn::nn::Tta::none;
  int64_t predicted(size_t i) const;  // the first index of sample i's largest probability
};
// Evaluates the model (eval mode, no augmentation; `tta` flip: each image's probabilities are
// the mean of the image's and its mirror's; tencrop: over ten views, nn::Tta) on a dataset. A non-finite probability is
// an adnn::Error naming `source` (the checkpoint, or the training step) and the image. `progress(done, total)` (images)
// runs after each batch when given.
EvalReport evaluate(AdnnFer& model, std::shared_ptr<const adnn::data::Dataset> ds, adnn::Device device, int64_t batch,
                    int workers, const std::string& source, adnn::nn::Tta tta = adnn::nn::Tta::none,
                    const std::function<void(int64_t done, int64_t total)>& progress = {});
// A progress callback for evaluate: "LABEL 1024/3589 images" on stderr, redrawn in place at
// most 4 times a second on a terminal, a line every 10 s otherwise; a final line at the end.
std::function<void(int64_t, int64_t)> eval_progress(const std::string& label);

// Cross-dataset evaluation (--label-map): each class folder of `split_dir` is mapped onto one
// of the model's classes (the FER2013 names) by name, after the map's renames. A folder whose
// class the model lacks (CK+'s contempt) is skipped and counted in `skipped`; the model's
// classes with no images in the data are listed in `absent` (and left out of the macro
// averages by the metrics). `map` is "ck+" (built in: anger -> angry, sadness -> sad), or a
// JSON file of one flat object {"folder": "model class", ...}.
struct MappedData {
  std::shared_ptr<const adnn::data::Dataset> ds;  // labels are the model's class indices
  std::map<std::string, int64_t> skipped;         // folder -> images skipped
  std::vector<std::string> absent;                // model classes without images
  std::map<std::string, std::string> renames;     // the map as applied: folder -> model class
};
MappedData map_labels(const std::string& split_dir, const std::string& map);

// ---------------------------------------------------------------- reports (report.cpp)
// `extra`: string fields first; `extra_json`: fields whose values are JSON already.
std::string report_json(const EvalReport& r, const std::map<std::string, std::string>& extra = {},
                        const std::map<std::string, std::string>& extra_json = {});
void print_report(const EvalReport& r);
// image,label,predicted,correct,p_<class>... one row per sample (the input of compare's McNemar test).
std::string predictions_csv(const EvalReport& r);
// The confusion matrix as a PNG: rows true, columns predicted, each cell its row percentage
// and its count; `title` (checkpoint, split, accuracy) above it.
void write_confusion_png(const std::string& path, const EvalReport& r, const std::string& title = "");
std::string json_quote(const std::string& s);
std::string json_number(double v);  // %.6g; NaN as null
// The training curves (loss and accuracy, train and val, per epoch) as a PNG: log.csv's
// rows, redrawn after every epoch (train.cpp).
struct CurvePoint {
  int64_t epoch;
  double train_loss, train_acc, val_loss, val_acc;
};
void write_curves_png(const std::string& path, const std::vector<CurvePoint>& points);
// Text in 3×5 glyphs (digits, letters, '.', '%', ' ') at (x, y), scale s, grey level `shade`.
void text(adnn::data::Image& im, int x, int y, const std::string& s, int scale, float shade);

// ---------------------------------------------------------------- commands
int cmd_train(const Args& a);    // train.cpp
// The model configuration (model.*, recipe.*) and run.* settings a fresh `train` with these
// flags would store in config.json (experiment --resume compares them with a finished run's).
std::map<std::string, std::string> fresh_run_settings(const Args& a);
// A run directory's config.json (adnn::io::read_json_object); an error names the file (and,
// for a parse error, the byte offset) and what to do ("remove the run or fix the file").
std::map<std::string, std::string> read_run_config(const std::string& path);
// A --precision (docs/training.md, "Mixed precision"; train and bench): switches the f32
// GEMMs to TF32 for tf32 (off otherwise) and returns the autocast dtype of bf16/f16 (none for
// f32/tf32); f16 also trains through a GradScaler, which the caller owns. `what` names the
// setting in the error for any other value.
std::optional<adnn::DType> apply_precision(const std::string& p, const char* what);
int cmd_eval(const Args& a);     // evaluate.cpp
// eval's work (report printed, files written) returning the report: experiment calls it per run.
EvalReport run_eval(const Args& a);
int cmd_experiment(const Args& a);  // experiment.cpp: seeds, ablation (mean ± std over seeds)
int cmd_compare(const Args& a);     // experiment.cpp: paired t-test (Bonferroni) or McNemar
int cmd_predict(const Args& a);  // predict.cpp
int cmd_detect(const Args& a);      // detect.cpp: faces, landmarks -> JSON + annotated PNG
int cmd_preprocess(const Args& a);  // detect.cpp: raw class folders -> aligned face crops
int cmd_explain(const Args& a);     // explain.cpp: Grad-CAM / SHAP pictures, --summary per class
int cmd_export(const Args& a);      // export.cpp: a checkpoint as a PyTorch / timm state dict
int cmd_profile(const Args& a);     // profile.cpp: one traced step on the emulated cuda device

// ---------------------------------------------------------------- faces (detect.cpp)
// --detector PATH, else ../shared/data/retinaface/mobilenet0.25.safetensors (from the working
// directory or the source tree).
std::shared_ptr<adnn::nn::RetinaFace> load_detector(const Args& a, adnn::Device device);
// --threshold, --max-side over the defaults.
adnn::vision::DetectOptions detect_options(const Args& a);

// Loads a model saved by `train` (weights file with the config in its metadata).
std::shared_ptr<AdnnFer> load_model(const std::string& weights_path, adnn::Device device);

}  // namespace adnn_fer
