// adnn-fer: the command line (CLI11) and the --device choice (fer.hpp).
// Every flag of every subcommand is declared once below with its kind and range; CLI11
// handles the structure (subcommands, unknown flags, missing values, -h/--help), and every
// value then goes through adnn's checked number parser (include/adnn/core/parse.hpp), so
// the command line, checkpoint metadata and the run's files share one way to read numbers.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <limits>
#include <sstream>
#include <tuple>

#include "fer.hpp"

#include <adnn/cuda/runtime.hpp>

namespace adnn_fer {

using namespace adnn;

namespace {

constexpr int64_t kMaxI = std::numeric_limits<int64_t>::max();

enum class Kind { text, integer, real, on_off, choice, flag };

struct Flag {
  std::string name;  // without "--"
  Kind kind;
  std::string help;
  int64_t imin = 0, imax = kMaxI;  // integer: inclusive range
  double dmin = 0, dmax = 0;       // real: [dmin, dmax], or (dmin, dmax] when positive
  bool positive = false;
  std::vector<std::string> choices;  // choice
  bool required = false;
};

Flag text(std::string n, std::string help, bool required = false) {
  return {.name = std::move(n), .kind = Kind::text, .help = std::move(help), .required = required};
}
Flag integer(std::string n, std::string help, int64_t lo, int64_t hi = kMaxI) {
  return {.name = std::move(n), .kind = Kind::integer, .help = std::move(help), .imin = lo, .imax = hi};
}
Flag real(std::string n, std::string help, double lo, double hi, bool positive = false) {
  return {.name = std::move(n), .kind = Kind::real, .help = std::move(help), .dmin = lo, .dmax = hi,
          .positive = positive};
}
Flag on_off(std::string n, std::string help) { return {.name = std::move(n), .kind = Kind::on_off, .help = std::move(help)}; }
Flag choice(std::string n, std::string help, std::vector<std::string> cs) {
  return {.name = std::move(n), .kind = Kind::choice, .help = std::move(help), .choices = std::move(cs)};
}
Flag flag(std::string n, std::string help) { return {.name = std::move(n), .kind = Kind::flag, .help = std::move(help)}; }

// The limits, also in docs/adnn_fer.md.
constexpr int64_t kMaxBatch = 65536, kMaxEpochs = 100000, kMaxWorkers = 64, kMaxClasses = 100000;

Flag device_flag() {
  return text("device", "auto (a real GPU if there is one, else the CPU; never the emulator), cpu or cuda (the SIMT "
                        "emulator where there is no GPU: said at start)");
}
Flag detector_flag() {
  return text("detector", "RetinaFace weights (.safetensors; default ../shared/data/retinaface/mobilenet0.25.safetensors)");
}
Flag threshold_flag() { return real("threshold", "the detector's display threshold (score)", 0, 1); }
Flag max_side_flag() {
  return integer("max-side", "shrink photos whose longest side exceeds N pixels before detecting (0: never)", 0, 16384);
}
Flag workers_flag() { return integer("workers", "data-loading threads (0: load on the main thread)", 0, kMaxWorkers); }
Flag tta_flag() {
  return choice("tta",
                "test-time augmentation: none (default), flip (mean of the image's and its mirror's "
                "probabilities) or tencrop (mean over the four corner and the centre 11/12 crops, each "
                "resized back, and their mirrors)",
                {"none", "flip", "tencrop"});
}

struct Command {
  std::string name, help;
  std::vector<Flag> flags;
  std::string positional;  // name of the positional arguments, if the command takes any
  std::string positional_help = "face images (at least one)";
};

std::vector<Command> commands() {
  const Flag image_size = integer("image-size", "input size S (S x S pixels)", nn::kFerMinImageSize,
                                  nn::kFerMaxImageSize);
  const Flag classes = integer("classes", "number of classes", 2, kMaxClasses);
  const Flag in_chans = integer("in-chans", "input channels (non-ADNN-FER models)", 1, 64);
  const Flag fer_backbone = text("backbone", "ADNN-FER configurations: another backbone (as train's --backbone)");
  return {
      {"summary",
       "Print a model's layers (output shape, parameters, MACs for one image), totals and configuration",
       {text("model", "a backbone name or an ADNN-FER configuration", true), classes, in_chans, image_size,
        fer_backbone,
        integer("depth", "show modules down to nesting depth N (deeper ones fold into their parent; 0: the model only)",
                0, 64)}},
      {"bench",
       "Time forward passes or AdamW training steps on random data: ms/step (median, spread), img/s, GMACs/s, "
       "peak memory",
       {text("model", "a backbone name or an ADNN-FER configuration", true), classes, in_chans, image_size,
        fer_backbone,
        integer("batch", "images per step", 1, kMaxBatch), integer("iters", "timed iterations", 1, 1000000000),
        flag("train", "time training steps (default: forward passes)"),
        flag("graph", "cuda: also time the step replayed from a CUDA graph (eager vs graph)"),
        choice("precision",
               "f32 (default), tf32 (TF32 GEMMs on a GPU), bf16 or f16 (the forward and the loss under autocast, f32 "
               "master weights, as train --precision; f16 with a gradient scaler)",
               {"f32", "tf32", "bf16", "f16"}),
        integer("threads", "OpenMP threads (default: OMP_NUM_THREADS if set, else the cores the load average leaves "
                           "idle, at least 1)", 1, 1024),
        text("json", "also write the results to this JSON file"),
        text("device", "cpu (default), cuda, or auto (a real GPU if there is one, else the CPU)")}},
      {"profile",
       "One step on the emulated cuda device, traced: per-kernel launches, memory traffic, coalescing, bank "
       "conflicts and the roofline time they imply on an H200 (docs/kernels.md)",
       {text("model", "a backbone name or an ADNN-FER configuration", true), classes, in_chans, image_size,
        fer_backbone,
        integer("batch", "images per step", 1, kMaxBatch),
        flag("train", "a training step: forward, loss (compound for ADNN-FER), backward, AdamW (default: forward)"),
        integer("warmup", "untraced steps before the traced one (allocator, AdamW state)", 0, 100),
        text("out", "also write the report as Markdown to FILE.md")}},
      {"train",
       "Train ADNN-FER (a fresh run, or --resume one)",
       {text("config", "adnn_fer_nano (default) or adnn_fer_paper"),
        text("data", "directory with train/<class>/ and val/<class>/ images (default ../shared/data/fer2013)"),
        integer("epochs", "epochs (the cosine schedule's length)", 1, kMaxEpochs),
        integer("batch", "batch size", 2, kMaxBatch),
        real("lr", "peak learning rate", 0, nn::kFerMaxLr, true),
        real("layer-decay", "layer-wise learning-rate decay", 0, 1, true),
        real("weight-decay", "AdamW weight decay", 0, 10),
        integer("warmup-epochs", "linear warm-up epochs", 0, kMaxEpochs),
        integer("patience", "early stopping: epochs without a val improvement", 1, kMaxEpochs),
        integer("seed", "seed of the initialisation, data order and augmentation", 0),
        device_flag(),
        text("out", "the run directory (default runs/<config>)"),
        flag("resume", "continue the run in --out from its last.safetensors"),
        flag("force", "start a fresh run in a non-empty --out, replacing its run files"),
        real("time-budget", "minutes of training before validating, checkpointing and stopping (0: none)", 0, 1e7),
        choice("schedule",
               "the cosine's clock: steps (over --epochs; default) or time (over --time-budget, as the PyTorch "
               "peer's: trains until the budget, --epochs then only caps)",
               {"steps", "time"}),
        text("backbone", "resnet_nano, vgg_nano, vgg_nano_wide, efficientnet_nano, efficientnet_b0..b7 or resnet50 "
                         "(default: the configuration's; adnn_fer_nano: vgg_nano_wide)"),
        on_off("cbam", "CBAM attention"),
        on_off("transformer", "the Transformer encoder"),
        choice("loss", "loss", {"ce", "compound"}),
        on_off("mixup", "mixup"),
        real("dropout", "dropout of the Transformer's attention, FFN and residuals", 0, 0.99),
        real("head-dropout", "dropout before the classifier", 0, 0.99),
        real("drop-path", "stochastic depth of the backbone's blocks", 0, 0.99),
        real("ema", "decay of the weights' exponential moving average, which is validated and saved as best "
                    "(0: none; e.g. 0.998)", 0, 0.99999),
        on_off("augment", "the augmentation chain"),
        choice("augment-level", "full (flip, crop, jitter, rotation, noise, cutout) or light (without noise and cutout)",
               {"full", "light"}),
        choice("precision",
               "f32, tf32 (f32 weights, TF32 GEMMs on a GPU), bf16 or f16 (autocast with f32 master weights; f16 "
               "with a gradient scaler), or auto (bf16 where its products are native: a GPU with tensor cores or a "
               "CPU with AVX512-BF16; else f32; on --resume: the run's own); default bf16 on a GPU with tensor "
               "cores, else f32",
               {"f32", "tf32", "bf16", "f16", "auto"}),
        integer("train-limit", "train on a class-stratified slice of N images (0: all)", 0),
        integer("val-limit", "validate on a class-stratified slice of N images (0: all)", 0),
        workers_flag(),
        integer("log-every", "a progress line every N steps", 1),
        integer("stop-after", "testing aid: checkpoint and exit with status 3 after step N", 1),
        integer("nproc", "data-parallel: start N processes on this host, each with its shard of every epoch and "
                         "--batch images per step (Gloo on the CPU, NCCL with a GPU each; docs/distributed.md)",
                1, 1024),
        real("dist-timeout", "data-parallel: seconds a collective may wait for a peer before the run stops with an "
                             "error naming it (default 600)",
             0, 1e6, true),
        on_off("sync-bn", "data-parallel: batch-norm statistics over every process's batch (SyncBatchNorm; default "
                          "off: each process its own)"),
        real("bucket-mb", "data-parallel: gradient bucket size in MiB (default: the model's gradient bytes / 8, "
                          "between 1 and 25; the first bucket 1)",
             0, 1e4, true)}},
      {"eval",
       "Evaluate a checkpoint on a split: report JSON and confusion PNG",
       {text("checkpoint", "weights written by adnn-fer train (.safetensors)", true),
        text("data", "data directory (default ../shared/data/fer2013)"),
        text("split", "split folder of --data (default val), or a path to a directory of class folders"),
        text("out", "directory for the report (created; default: the checkpoint's directory when it is a train "
                    "run's, else runs/eval/<checkpoint name>)"),
        integer("limit", "evaluate a class-stratified slice of exactly N images", 1),
        integer("batch", "images per forward pass", 1, kMaxBatch), workers_flag(), device_flag(),
        tta_flag(),
        text("label-map", "evaluate another dataset's class folders: ck+ (anger->angry, sadness->sad) or a JSON "
                          "file {\"folder\": \"model class\"}; folders the model lacks are skipped")}},
      {"predict",
       "Classify face crops, or detect, align and classify every face of photos",
       {text("checkpoint", "weights written by adnn-fer train (.safetensors)", true),
        integer("top", "classes to print per image (at most the model's classes)", 1, kMaxClasses), device_flag(),
        flag("crop", "the images are ready face crops (default: a small square grayscale image is one)"),
        flag("eager", "cuda: run the forward eagerly (default: replay a CUDA graph per batch size)"),
        text("out", "directory for the annotated pictures of photos (created; default .)"), detector_flag(),
        threshold_flag(), max_side_flag(), tta_flag()},
       "IMAGE"},
      {"explain",
       "Explain predictions: Grad-CAM, Grad-CAM++, SHAP (expected gradients) or integrated gradients as heat-map "
       "PNGs; --summary: the mean Grad-CAM per class over a data set and its share per facial region",
       {text("checkpoint", "weights written by adnn-fer train (.safetensors)", true),
        choice("method", "explanation method (default gradcam; all: the four)", {"gradcam", "gradcam++", "shap", "ig", "all"}),
        integer("class", "explain this class (default: the predicted one; --summary: the true label)", 0, kMaxClasses),
        text("out", "directory for the PNGs (and the summary's table); created", false),
        text("layers", "comma-separated module names for Grad-CAM (default cbam_stage5,cbam_head)"),
        integer("samples", "shap: (background, alpha) samples per image", 1, 100000),
        integer("background", "shap: background images drawn from the training split", 1, 100000),
        integer("steps", "ig: path steps (midpoint rule) from the black image", 1, 100000),
        integer("seed", "shap: seed of the background draw and the samples", 0),
        integer("zoom", "enlarge the face N times in the pictures", 1, 16),
        integer("repeat", "explain each face N times and print the median time", 1, 100000),
        flag("summary", "mean Grad-CAM per class and facial-region shares over --data/--split"),
        text("data", "data directory (default ../shared/data/fer2013): --summary's split, shap's train/ background"),
        text("split", "--summary: split folder (default val)"),
        integer("limit", "--summary: a class-stratified slice of exactly N images", 1),
        flag("crop", "the images are ready face crops (default: a small square grayscale image is one)"),
        detector_flag(), threshold_flag(), max_side_flag(), device_flag()},
       "IMAGE"},
      {"detect",
       "Detect faces and 5 landmarks (RetinaFace): JSON and an annotated PNG per image",
       {text("out", "directory for the JSON and PNG files (created; default .)"), detector_flag(), threshold_flag(),
        max_side_flag(), integer("repeat", "run the detector N times and print the mean time", 1, 100000),
        device_flag()},
       "IMAGE"},
      {"preprocess",
       "Turn class folders of photos into aligned face crops for training",
       {text("data", "RAW_DIR with one folder of photos per class", true),
        text("out", "output directory (class folders of aligned crops)", true),
        text("checkpoint", "take the crop size and channels from this classifier checkpoint"),
        integer("size", "crop size S (without --checkpoint)", nn::kFerMinImageSize, nn::kFerMaxImageSize),
        integer("channels", "crop channels, 1 or 3 (without --checkpoint)", 1, 3), detector_flag(), threshold_flag(),
        max_side_flag(), device_flag()}},
      {"export",
       "Write a checkpoint as a PyTorch state dict (.safetensors, torch layouts): the whole model for the torch twin, "
       "or the backbone under timm's names",
       {text("checkpoint", "weights written by adnn-fer train (.safetensors)", true),
        [] {
          Flag to = choice("to", "pytorch (the model, examples/adnn_fer/torch_twin.py) or timm (the backbone, "
                                 "num_classes=0)", {"pytorch", "timm"});
          to.required = true;
          return to;
        }()},
       "OUT", "the file to write"},
  };
}

// experiment (seeds, ablation) takes train's flags, less those it sets per run, and compare
// reads what experiment and eval write (docs/adnn_fer.md, "Experiments").
std::vector<Command> experiment_commands(const std::vector<Command>& cmds) {
  std::vector<Flag> flags;
  for (const Command& c : cmds)
    if (c.name == "train")
      for (const Flag& f : c.flags)
        if (f.name != "out" && f.name != "seed" && f.name != "resume" && f.name != "force" && f.name != "stop-after" &&
            f.name != "nproc" && f.name != "dist-timeout" && f.name != "sync-bn" && f.name != "bucket-mb")
          flags.push_back(f);
  flags.push_back(text("seeds", "comma-separated seeds, one run each (default 42,123,256,789,1024)"));
  flags.push_back(text("out", "the experiment directory (default runs/experiment_<kind>); must be new or empty (or --resume)", false));
  flags.push_back(flag("force", "reuse a non-empty --out, replacing its runs"));
  flags.push_back(flag("resume",
                       "continue the experiment in a non-empty --out (e.g. spread over sessions): a seed whose run "
                       "finished (seed_<N>/result.json) under the same train flags is evaluated again, not retrained; "
                       "an unfinished one is trained again from the start"));
  flags.push_back(tta_flag());
  flags.push_back(choice("ladder",
                         "ablation: paper (default: ResNet baseline, + EfficientNet, + CBAM, + Transformer, + compound "
                         "loss) or nano (VGG baseline, + CBAM, + Transformer, + compound loss: adnn_fer_nano's own)",
                         {"paper", "nano"}));
  return {
      {"experiment",
       "Train one run per seed (seeds) or the ablation ladder over the seeds (ablation); mean +- std of "
       "accuracy, macro-F1 and AUC as Markdown and JSON",
       flags, "KIND", "seeds or ablation"},
      {"compare",
       "Paired t-tests over seeds (run sets, Bonferroni-corrected) or McNemar's test (two or more "
       "single runs' predictions): the first argument against each other",
       {choice("metric", "run sets: the metric compared (default accuracy)", {"accuracy", "macro_f1", "macro_auc"}),
        text("out", "directory for compare.json and compare.md (created; default: print only)")},
       "RUNS",
       "run sets (directories of seed_<N>/result.json: an experiment, or an ablation rung) or single runs "
       "(eval's *_predictions.csv)"},
  };
}

std::string range_text(const Flag& f) {
  switch (f.kind) {
    case Kind::integer:
      return f.imax == kMaxI ? " (>= " + std::to_string(f.imin) + ")"
                             : " (" + std::to_string(f.imin) + ".." + std::to_string(f.imax) + ")";
    case Kind::real: {
      std::ostringstream o;
      o << " (" << (f.positive ? "> " : ">= ") << f.dmin << ", <= " << f.dmax << ")";
      return o.str();
    }
    default:
      return "";
  }
}

std::string type_name(const Flag& f) {
  switch (f.kind) {
    case Kind::integer: return "N";
    case Kind::real: return "X";
    case Kind::on_off: return "on|off";
    case Kind::choice: {
      std::string s;
      for (auto& c : f.choices) s += (s.empty() ? "" : "|") + c;
      return s;
    }
    default: return f.name == "out" || f.name == "data" ? "DIR" : f.name == "checkpoint" ? "CKPT" : "TEXT";
  }
}

// A value checked against its flag: a UsageError naming the command and the flag.
void check_value(const std::string& cmd, const Flag& f, const std::string& v) {
  const std::string what = cmd + " --" + f.name;
  try {
    switch (f.kind) {
      case Kind::integer:
        parse_int64(v, what, f.imin, f.imax);
        break;
      case Kind::real: {
        const double x = parse_double(v, what, NonFinite::refuse, f.dmin, f.dmax);
        ADNN_CHECK(!f.positive || x > f.dmin, what, ": ", v, " must be greater than ", f.dmin);
        break;
      }
      case Kind::on_off:
        ADNN_CHECK(v == "on" || v == "off", what, " takes on|off, got '", v, "'");
        break;
      case Kind::choice: {
        bool ok = false;
        for (auto& c : f.choices) ok = ok || v == c;
        ADNN_CHECK(ok, what, " takes ", type_name(f), ", got '", v, "'");
        break;
      }
      case Kind::text:
        ADNN_CHECK(!v.empty(), what, ": empty value");
        break;
      case Kind::flag:
        break;
    }
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

// A word as a POSIX shell reads it back.
std::string shell_quote(const std::string& w) {
  bool plain = !w.empty();
  for (char c : w)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || std::string_view("-_./=:,+@%").find(c) !=
                                                                          std::string_view::npos);
  if (plain) return w;
  std::string q = "'";
  for (char c : w) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

std::string Args::get(const std::string& k, const std::string& d) const {
  auto it = kv.find(k);
  return it == kv.end() ? d : it->second;
}
int64_t Args::num(const std::string& k, int64_t d) const { return has(k) ? parse_int64(get(k), cmd + " --" + k) : d; }
double Args::real(const std::string& k, double d) const { return has(k) ? parse_double(get(k), cmd + " --" + k) : d; }
bool Args::on(const std::string& k, bool d) const { return has(k) ? get(k) == "on" : d; }

std::string Args::command() const {
  std::string s = "adnn-fer";
  for (const std::string& w : words) s += " " + shell_quote(w);
  return s;
}

int parse_command_line(int argc, char** argv, Args& out) {
  CLI::App app{"adnn-fer: train, evaluate and run ADNN-FER, the facial expression recognizer (docs/adnn_fer.md)",
               "adnn-fer"};
  app.require_subcommand(1);
  std::vector<Command> cmds = commands();
  for (Command& c : experiment_commands(cmds)) cmds.push_back(std::move(c));
  std::map<std::string, std::map<std::string, std::string>> values;  // command -> flag -> value
  std::map<std::string, std::vector<std::string>> positional;
  std::vector<std::pair<CLI::App*, const Command*>> subs;
  std::vector<std::tuple<CLI::Option*, const Flag*, CLI::App*>> opts;
  for (const Command& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    std::string footer = "models:";
    if (c.name == "summary" || c.name == "bench" || c.name == "profile") {
      for (auto& n : nn::model_names()) footer += " " + n;
      for (auto& n : nn::fer_config_names()) footer += " " + n;
      sub->footer(footer);
    }
    subs.emplace_back(sub, &c);
    for (const Flag& f : c.flags) {
      CLI::Option* o = f.kind == Kind::flag
                           ? sub->add_flag("--" + f.name, f.help)
                           : sub->add_option("--" + f.name, values[c.name][f.name], f.help + range_text(f))
                                 ->type_name(type_name(f));
      if (f.required) o->required();
      // a repeated flag takes its last value, as argparse does (scripts/run.sh appends the
      // user's flags after its defaults)
      if (f.kind != Kind::flag) o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
      opts.emplace_back(o, &f, sub);
    }
    if (!c.positional.empty()) {
      CLI::Option* po = sub->add_option(c.positional, positional[c.name], c.positional_help);
      if (c.name != "explain") po->required();  // explain --summary takes none (checked by the command)
      if (c.positional == "OUT") po->expected(1);
    }
  }
  if (argc > 1 && argv[1][0] != '-') {  // CLI11 would only say that a subcommand is required
    std::string names;
    bool known = false;
    for (const Command& c : cmds) {
      names += (names.empty() ? "" : ", ") + c.name;
      known = known || c.name == argv[1];
    }
    if (!known) {
      std::fprintf(stderr, "adnn-fer: unknown command '%s' (commands: %s; see adnn-fer --help)\n", argv[1],
                   names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // prints the help of the subcommand asked about; 0
  } catch (const CLI::ParseError& e) {
    std::string cmd;
    for (auto& [sub, c] : subs)
      if (sub->parsed()) cmd = " " + c->name;
    std::fprintf(stderr, "adnn-fer%s: %s\nrun 'adnn-fer%s --help' for usage\n", cmd.c_str(), e.what(), cmd.c_str());
    return 2;
  }
  for (auto& [sub, c] : subs) {
    if (!sub->parsed()) continue;
    out.cmd = c->name;
    for (auto& [o, f, owner] : opts) {
      if (owner != sub || o->count() == 0) continue;
      const std::string v = f->kind == Kind::flag ? std::string() : values[c->name][f->name];
      check_value(c->name, *f, v);
      out.kv[f->name] = v;
    }
    out.positional = positional[c->name];
  }
  for (int i = 1; i < argc; ++i) out.words.emplace_back(argv[i]);
  return -1;
}

Device pick_device(const Args& a) {
  const std::string d = a.get("device", "auto");
  Device dev = kCPU;
  if (d != "auto") {
    try {
      dev = Device(d);
    } catch (const Error& e) {
      throw UsageError(a.cmd + " --device: " + e.what());
    }
  }
#if ADNN_WITH_CUDA_BACKEND
  else if (cuda_is_available() && !cuda_is_emulated())
    dev = Device("cuda");  // a real GPU, never the emulator
#endif
  // said at the start of the command, once: an emulated run must not pass for a GPU one
  static bool said = false;
  if (dev.is_cuda() && cuda_is_emulated() && !said) {
    said = true;
    std::fprintf(stderr,
                 "adnn-fer %s: device %s: no GPU, the SIMT emulator runs the CUDA kernels on the host "
                 "(for testing kernels; far slower than --device cpu)\n",
                 a.cmd.c_str(), dev.str().c_str());
  }
  return dev;
}

}  // namespace adnn_fer
