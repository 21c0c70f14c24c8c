// adnn-fer train: the paper's recipe (AdamW with layer-wise decay, warm-up + cosine, early
// stopping on val accuracy, compound loss, CLAHE and the augmentation chain) with a progress
// line, one CSV row per epoch, best/last checkpoints, config.json and exact --resume.
#include <adnn/cuda/runtime.hpp>
#include <adnn/optim/ema.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>
#include <sstream>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::string hms(double s) {
  const int64_t t = int64_t(std::max(0.0, s));
  char b[32];
  std::snprintf(b, sizeof b, "%02lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60),
                (long long)(t % 60));
  return b;
}

// The run directory's lock: adnn-fer.lock in --out, held (flock) for the life of the process
// and holding its pid. The kernel drops the lock when the process ends, however it ends, so
// a lock file left behind is never stale.
class RunLock {
 public:
  explicit RunLock(const std::string& dir) : path_(dir + "/adnn-fer.lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    ADNN_CHECK(fd_ >= 0, "train: cannot open the lock file ", path_, ": ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      char buf[32] = {};
      const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      ::close(fd_);
      std::string pid(buf, size_t(std::max<ssize_t>(n, 0)));
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      ADNN_CHECK(err != EWOULDBLOCK, "train: ", dir, " is in use by another adnn-fer train (pid ",
                 pid.empty() ? "unknown" : pid, ", lock ", path_, ")");
      ADNN_FAIL("train: cannot lock ", path_, ": ", std::strerror(err));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    ADNN_CHECK(::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) == ssize_t(pid.size()),
               "train: cannot write the lock file ", path_, ": ", std::strerror(errno));
  }
  ~RunLock() { ::close(fd_); }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  static constexpr const char* kName = "adnn-fer.lock";

 private:
  std::string path_;
  int fd_ = -1;
};

void write_text(const std::string& path, const std::string& s) {
  io::write_file_atomic(path, std::vector<uint8_t>(s.begin(), s.end()));
}

// Layer-wise decay: the backbone decays from its top (depth 0) to the stem; the CBAM,
// projection, positional embedding, encoder, norm and classifier train at the full rate.
std::map<std::string, int> head_depths() {
  std::map<std::string, int> m;
  for (const char* p : {"cbam_stage5.", "cbam_head.", "proj.", "pos_embed.", "encoder.", "norm.", "head."}) m[p] = 0;
  return m;
}

// ---------------------------------------------------------------- the steps of a run
// Settings of a run: the model configuration and recipe, the run.* settings stored beside
// it in checkpoints and config.json, and what this session was asked for.
struct RunSettings {
  bool resume = false;
  FerConfig c;
  std::map<std::string, std::string> run;  // run settings stored beside the model config
  std::string out;                         // the run directory
  std::unique_ptr<RunLock> lock;           // held for the whole command
  std::map<std::string, std::string> config_json;  // resuming: config.json as found
  struct Change {
    std::string key, from, to;
  };
  std::vector<Change> changes;  // resuming: settings this session changes (docs/adnn_fer.md)
  double budget_s = 0;
  bool time_schedule = false;  // run.schedule = time: the cosine follows elapsed / budget_s
  uint64_t seed = 0;
  int workers = 2;
  double ema = 0;  // run.ema: decay of the weights' moving average (0: none)
  int64_t stop_after = 0;  // testing aid: checkpoint and exit after this step
  int64_t log_every = 50;
  Device dev = kCPU;
  // data-parallel (docs/distributed.md): this process's rank among `world` (1: alone)
  int rank = 0, world = 1;
  std::shared_ptr<distributed::ProcessGroup> pg;
};

// The files a run writes (all replaced by a fresh run with --force).
std::vector<std::string> run_files(const std::string& out) {
  std::vector<std::string> f{out + "/config.json", out + "/log.csv", out + "/curves.png"};
  for (const char* n : {"best", "last"}) {
    f.push_back(out + "/" + n + ".safetensors");
    f.push_back(io::state_path(f.back()));
  }
  return f;
}

// How a train flag maps onto the run's stored settings; `may_change` flags are the ones a
// --resume may give with a new value (recorded in config.json and printed).
struct StoredFlag {
  const char* flag;
  const char* key;
  enum { integer, real, text, on_off } kind;
  bool may_change;
};
// The epochs cap of a time-scheduled run without --epochs: the budget ends it first.
constexpr int64_t kTimeScheduleEpochs = 10000;

constexpr StoredFlag kStoredFlags[] = {
    {"config", "model.name", StoredFlag::text, false},
    {"backbone", "model.backbone", StoredFlag::text, false},
    {"cbam", "model.cbam", StoredFlag::on_off, false},
    {"transformer", "model.transformer", StoredFlag::on_off, false},
    {"epochs", "recipe.epochs", StoredFlag::integer, true},
    {"batch", "recipe.batch", StoredFlag::integer, false},
    {"lr", "recipe.lr", StoredFlag::real, false},
    {"layer-decay", "recipe.layer_decay", StoredFlag::real, false},
    {"weight-decay", "recipe.weight_decay", StoredFlag::real, false},
    {"warmup-epochs", "recipe.warmup_epochs", StoredFlag::integer, false},
    {"patience", "recipe.patience", StoredFlag::integer, false},
    {"loss", "recipe.loss", StoredFlag::text, false},
    {"mixup", "recipe.mixup", StoredFlag::on_off, false},
    {"augment-level", "recipe.augment", StoredFlag::text, false},
    {"dropout", "model.dropout", StoredFlag::real, false},
    {"head-dropout", "model.head_dropout", StoredFlag::real, false},
    {"drop-path", "model.drop_path", StoredFlag::real, false},
    {"ema", "run.ema", StoredFlag::real, false},
    {"augment", "run.augment", StoredFlag::on_off, false},
    {"seed", "run.seed", StoredFlag::integer, false},
    {"train-limit", "run.train_limit", StoredFlag::integer, false},
    {"val-limit", "run.val_limit", StoredFlag::integer, false},
    {"data", "run.data", StoredFlag::text, true},
    {"time-budget", "run.time_budget_min", StoredFlag::real, true},
    {"workers", "run.workers", StoredFlag::integer, true},
    {"precision", "run.precision", StoredFlag::text, false},
    {"schedule", "run.schedule", StoredFlag::text, false},
};
// Session-only flags (never stored): --out, --resume, --device, --log-every, --stop-after.

// Run settings as text, read back with the checked parser (an adnn::Error names the key).
void read_run_numbers(RunSettings& r) {
  r.budget_s = parse_double(r.run.at("run.time_budget_min"), "run.time_budget_min", NonFinite::refuse, 0, 1e7) * 60.0;
  r.seed = parse_uint64(r.run.at("run.seed"), "run.seed");
  r.workers = int(parse_int64(r.run.at("run.workers"), "run.workers", 0, 64));
  r.ema = parse_double(r.run.at("run.ema"), "run.ema", NonFinite::refuse, 0, 0.99999);
  parse_int64(r.run.at("run.train_limit"), "run.train_limit", 0);
  parse_int64(r.run.at("run.val_limit"), "run.val_limit", 0);
  ADNN_CHECK(r.run.at("run.augment") == "0" || r.run.at("run.augment") == "1", "run.augment: expected 0 or 1, got '",
             r.run.at("run.augment"), "'");
  const std::string& s = r.run.at("run.schedule");
  ADNN_CHECK(s == "steps" || s == "time", "run.schedule: expected steps or time, got '", s, "'");
  r.time_schedule = s == "time";
  ADNN_CHECK(!r.time_schedule || r.budget_s > 0, "run.schedule = time needs a time budget (run.time_budget_min > 0)");
}

// The run directory exists (created) and is locked by this process.
std::unique_ptr<RunLock> open_run_dir(const std::string& out, bool create) {
  std::error_code ec;
  if (create) fs::create_directories(out, ec);
  ADNN_CHECK(!ec && fs::is_directory(out), "train: --out '", out, "' ",
             create ? "cannot be created" : "is not a run directory", ec ? " (" + ec.message() + ")" : std::string());
  return std::make_unique<RunLock>(out);
}

// A fresh run's model configuration and run.* settings from train's flags (setup_run; and
// experiment --resume, which compares them with a finished run's config.json).
void fresh_settings(const Args& a, FerConfig& c, std::map<std::string, std::string>& run) {
  c = nn::fer_config(a.get("config", "adnn_fer_nano"));
  run["run.schedule"] = a.get("schedule", "steps");
  if (run["run.schedule"] == "time" && a.real("time-budget", 0) <= 0)
    throw UsageError("train: --schedule time needs --time-budget MINUTES (the cosine runs over the budget)");
  // a time schedule trains until the budget: --epochs, if given, is only a cap
  if (run["run.schedule"] == "time") c.epochs = kTimeScheduleEpochs;
  c.epochs = a.num("epochs", c.epochs);
  c.batch = a.num("batch", c.batch);
  c.lr = a.real("lr", c.lr);
  c.layer_decay = a.real("layer-decay", c.layer_decay);
  c.weight_decay = a.real("weight-decay", c.weight_decay);
  c.warmup_epochs = a.num("warmup-epochs", c.warmup_epochs);
  c.patience = a.num("patience", c.patience);
  c.backbone = a.get("backbone", c.backbone);
  c.cbam = a.on("cbam", c.cbam);
  c.transformer = a.on("transformer", c.transformer);
  c.mixup = a.on("mixup", c.mixup);
  c.augment = a.get("augment-level", c.augment);
  c.dropout = a.real("dropout", c.dropout);
  c.head_dropout = a.real("head-dropout", c.head_dropout);
  c.drop_path = a.real("drop-path", c.drop_path);
  c.loss = a.get("loss", c.loss);
  c.validate();
  run["run.data"] = resolve_data_dir(a);
  run["run.seed"] = std::to_string(a.num("seed", 0));
  run["run.train_limit"] = std::to_string(a.num("train-limit", 0));
  run["run.val_limit"] = std::to_string(a.num("val-limit", 0));
  run["run.time_budget_min"] = a.get("time-budget", "0");
  run["run.workers"] = std::to_string(a.num("workers", 2));
  run["run.augment"] = a.on("augment", true) ? "1" : "0";
  run["run.ema"] = a.get("ema", "0");
  run["run.sync_bn"] = a.on("sync-bn", false) ? "1" : "0";
}

// A fresh run's precision, as stored in run.precision: --precision as given; auto: bf16 where
// its products are native (amp::bf16_pays: a real GPU with tensor cores, a CPU with AVX512-BF16),
// else f32; without the flag: bf16 on such a GPU, f32 on every CPU and the emulator (so a CPU
// run's default does not depend on which CPU it meets).
std::string fresh_precision(const Args& a, Device dev) {
  const std::string p = a.get("precision", dev.is_cuda() ? "auto" : "f32");
  if (p != "auto") return p;
  return amp::bf16_pays(dev) ? "bf16" : "f32";
}

// Step 1: settings from the command line, or from last.safetensors when resuming; creates
// and locks the run directory.
RunSettings setup_run(const Args& a, std::shared_ptr<distributed::ProcessGroup> pg) {
  RunSettings r;
  r.pg = std::move(pg);
  r.rank = r.pg ? r.pg->rank() : 0;
  r.world = r.pg ? r.pg->world_size() : 1;
  const bool lead = r.rank == 0;  // rank 0 locks, checks and writes the run directory
  r.resume = a.has("resume");
  FerConfig& c = r.c;
  if (r.resume) {
    if (!a.has("out")) throw UsageError("train --resume: --out RUN_DIR is required");
    if (a.has("force")) throw UsageError("train: --resume and --force contradict (--force starts a fresh run)");
    r.out = a.get("out");
    if (lead) r.lock = open_run_dir(r.out, false);
    const std::string last = r.out + "/last.safetensors";
    require_regular_file("train --resume:", last);
    io::SafeTensors st = io::load_safetensors(io::state_path(last));
    c = FerConfig::from_map(st.metadata);
    for (auto& [k, v] : st.metadata)
      if (k.rfind("run.", 0) == 0) r.run[k] = v;
    for (const char* k : {"run.data", "run.seed", "run.train_limit", "run.val_limit", "run.time_budget_min",
                          "run.workers", "run.augment"})
      ADNN_CHECK(r.run.count(k), "train --resume: ", io::state_path(last), " has no '", k, "'");
    if (!r.run.count("run.precision")) r.run["run.precision"] = "f32";  // runs made before --precision
    if (!r.run.count("run.schedule")) r.run["run.schedule"] = "steps";  // runs made before --schedule
    if (!r.run.count("run.ema")) r.run["run.ema"] = "0";  // runs made before --ema
    // a run continues with as many processes as it was trained with (each its own shard)
    const std::string was_world = r.run.count("run.world_size") ? r.run["run.world_size"] : "1";
    if (parse_int64(was_world, "run.world_size", 1) != r.world)
      throw UsageError(detail::cat("train --resume: the run was trained with ", was_world, " process",
                                   was_world == "1" ? "" : "es", ", this session has ", r.world,
                                   " (resume with --nproc ", was_world, ")"));
    const std::string sync_bn = r.run.count("run.sync_bn") ? r.run["run.sync_bn"] : "0";
    if (a.has("sync-bn") && (a.on("sync-bn", false) ? "1" : "0") != sync_bn)
      throw UsageError(detail::cat("train --resume: --sync-bn ", a.get("sync-bn"), " contradicts the run's run.sync_bn = ",
                                   sync_bn));
    r.run["run.sync_bn"] = sync_bn;
    const std::string cj = r.out + "/config.json";
    require_regular_file("train --resume:", cj);
    r.config_json = read_run_config(cj);
    const int64_t epochs_done =
        st.metadata.count("train.epoch") ? parse_int64(st.metadata.at("train.epoch"), "train.epoch", 0) : 0;
    // every flag given: the same as stored, or one that may change
    std::map<std::string, std::string> stored = c.to_map();
    stored.insert(r.run.begin(), r.run.end());
    for (const StoredFlag& f : kStoredFlags) {
      if (!a.has(f.flag)) continue;
      const std::string given = a.get(f.flag), was = stored.at(f.key);
      std::string now = given;
      bool same = false;
      switch (f.kind) {
        case StoredFlag::integer:
          same = parse_int64(given, f.flag) == parse_int64(was, f.key);
          break;
        case StoredFlag::real:
          same = parse_double(given, f.flag) == parse_double(was, f.key);
          break;
        case StoredFlag::on_off:
          now = given == "on" ? "1" : "0";
          same = now == was;
          break;
        case StoredFlag::text:
          // --precision auto on --resume keeps what the run resolved it to when it began
          same = given == was || (f.key == std::string("run.precision") && given == "auto");
          break;
      }
      if (same) continue;
      if (!f.may_change)
        throw UsageError(detail::cat("train --resume: --", f.flag, " ", given, " contradicts the run's ", f.key, " = ",
                                     was, " (only --epochs, --data, --time-budget, --workers, --device, --log-every "
                                     "and --stop-after may change on --resume)"));
      r.changes.push_back({f.key, was, now});
    }
    for (const auto& ch : r.changes) {
      if (ch.key == "recipe.epochs") {
        c.epochs = parse_int64(ch.to, "train --epochs");
        if (c.epochs < epochs_done)
          throw UsageError(detail::cat("train --resume: --epochs ", c.epochs, " is fewer than the ", epochs_done,
                                       " epochs already done"));
      } else {
        r.run[ch.key] = ch.to;
      }
    }
  } else {
    fresh_settings(a, c, r.run);
    r.out = a.get("out", "runs/" + c.name);
    if (r.world > 1) r.run["run.world_size"] = std::to_string(r.world);
  }
  if (!r.resume && lead) {
    r.lock = open_run_dir(r.out, true);
    // a fresh run starts in an empty directory, or replaces an old run's files with --force
    std::vector<std::string> present;
    for (const auto& e : fs::directory_iterator(r.out))
      if (e.path().filename() != RunLock::kName) present.push_back(e.path().filename().string());
    if (!present.empty() && !a.has("force")) {
      std::sort(present.begin(), present.end());
      std::string list;
      for (size_t i = 0; i < present.size() && i < 4; ++i) list += (i ? ", " : "") + present[i];
      if (present.size() > 4) list += ", ...";
      ADNN_FAIL("train: --out ", r.out, " is not empty (", list,
                "): continue that run with --resume, or replace its run files with --force");
    }
    if (a.has("force"))
      for (const std::string& f : run_files(r.out)) fs::remove(f);
  }
  if (r.pg) r.pg->barrier();  // the other ranks go on once rank 0 has prepared the directory
  read_run_numbers(r);
  r.stop_after = a.num("stop-after", 0);
  r.log_every = a.num("log-every", 50);
  r.dev = pick_device(a);
  if (!r.resume) {
    r.run["run.precision"] = fresh_precision(a, r.dev);
    if (r.world > 1) {  // each process resolved auto (or the GPU default) on its own device: they must agree
      const std::vector<std::string> kinds{"f32", "tf32", "bf16", "f16"};
      const int64_t mine = std::find(kinds.begin(), kinds.end(), r.run["run.precision"]) - kinds.begin();
      const Tensor all = r.pg->all_gather(from_vector(std::vector<int64_t>{mine}, {1}));  // (world) i64, host
      const int64_t* p = all.data_ptr<int64_t>();
      for (int i = 1; i < r.world; ++i)
        ADNN_CHECK(p[i] == p[0], "train: the precision differs between processes: ", kinds.at(size_t(p[0])),
                   " on rank 0, ", kinds.at(size_t(p[i])), " on rank ", i,
                   " (their devices resolve --precision auto differently; pass --precision f32 or bf16)");
    }
  }
  return r;
}

// The training and validation sets (class-stratified slices when asked) and the loader.
struct TrainData {
  std::shared_ptr<const data::Dataset> train_ds, val_ds;
  std::unique_ptr<data::DataLoader> loader;
  int64_t steps_per_epoch = 0;
};

// Step 2: the data.
TrainData load_data(RunSettings& r) {
  TrainData d;
  const std::string dir = r.run["run.data"];
  d.train_ds = std::make_shared<data::FolderDataset>(dir + "/train");
  d.val_ds = std::make_shared<data::FolderDataset>(dir + "/val");
  d.train_ds = stratified_slice(d.train_ds, parse_int64(r.run["run.train_limit"], "run.train_limit"), r.seed + 1);
  d.val_ds = stratified_slice(d.val_ds, parse_int64(r.run["run.val_limit"], "run.val_limit"), r.seed + 2);
  if (r.resume) {  // the same images as when the run started (a moved --data is fine, other data is not)
    for (auto [key, n] : {std::pair{"run.train_images", d.train_ds->size()}, std::pair{"run.val_images", d.val_ds->size()}}) {
      auto it = r.config_json.find(key);
      if (it == r.config_json.end()) continue;
      ADNN_CHECK(parse_int64(it->second, r.out + "/config.json: " + key, 0) == n, "train --resume: ", dir, " gives ", n,
                 " ", key == std::string("run.train_images") ? "training" : "validation", " images, the run started with ",
                 it->second, " (", key, " in ", r.out, "/config.json)");
    }
  }
  data::AugmentOptions aug;
  aug.mixup = r.c.mixup;
  if (r.c.augment == "light") aug.noise = aug.cutout = false;
  data::LoaderOptions lo;
  lo.batch_size = r.c.batch;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.workers = r.workers;
  lo.seed = r.seed;
  lo.augment = r.run["run.augment"] != "0";
  lo.rank = r.rank;  // each rank its shard of every epoch (docs/distributed.md)
  lo.world_size = r.world;
  d.loader = std::make_unique<data::DataLoader>(d.train_ds, preprocess_options(r.c), aug, lo);
  d.steps_per_epoch = d.loader->batches_per_epoch();
  ADNN_CHECK(d.steps_per_epoch > 0, "train: ", d.train_ds->size(), " training images give no batch of ", r.c.batch);
  return d;
}

// The model, its optimizer and schedule, and the compound loss's state.
struct Trainee {
  std::shared_ptr<AdnnFer> model;
  std::unique_ptr<distributed::DistributedDataParallel> ddp;  // data-parallel runs
  std::unique_ptr<optim::AdamW> opt;
  // run.ema > 0: the weights' moving average (validated, saved as best; its tensors ride in
  // last.safetensors as extras "ema.<name>" so that --resume continues it)
  std::unique_ptr<optim::ModelEma> ema;
  optim::WarmupCosine sched;
  int64_t total_steps = 0;
  Tensor centers;  // (K, d) center-loss class centers
  Tensor prior;    // (K) DLS prior: inverse training-class frequency
  double feat_scale = 1;
};

// Step 3: model and optimizer, initialised from the run's seed.
Trainee build_model(const RunSettings& r, const TrainData& d) {
  const FerConfig& c = r.c;
  Trainee t;
  manual_seed(r.seed);
  t.model = std::make_shared<AdnnFer>(c);
  t.model->to(r.dev);
  if (r.ema > 0)  // (ModelEma gives the draws of the average's initialisation back: an --ema run
                  // trains the same weights as the run without it)
    t.ema = std::make_unique<optim::ModelEma>(
        [&] {
          auto avg = std::make_shared<AdnnFer>(c);
          avg->to(r.dev);
          return std::static_pointer_cast<nn::Module>(avg);
        },
        *t.model, r.ema);
  t.opt =
      std::make_unique<optim::AdamW>(optim::layer_decay_groups(*t.model, c.weight_decay, c.layer_decay, head_depths()),
                                     optim::AdamWOptions{.lr = c.lr});
  t.total_steps = c.epochs * d.steps_per_epoch;
  t.sched = optim::WarmupCosine{.base_lr = c.lr,
                                .min_lr = c.lr * 0.01,
                                .warmup = std::min(c.warmup_epochs * d.steps_per_epoch, t.total_steps),
                                .total = t.total_steps};
  const int64_t K = c.num_classes;
  t.centers = zeros({K, t.model->feature_dim()}).to(r.dev);
  t.feat_scale = 1.0 / std::sqrt(double(t.model->feature_dim()));
  std::vector<double> prior_v = nn::dls_prior(d.train_ds->class_counts());
  t.prior = from_vector(prior_v, {K}, DType::f32).to(r.dev);
  // every rank initialises the same weights (DDP broadcasts rank 0's anyway); dropout and
  // drop-path then draw a stream of their own on each rank (rank 0: the one-process stream)
  if (r.rank > 0) manual_seed(r.seed ^ (0x9E3779B97F4A7C15ull * uint64_t(r.rank)));
  return t;
}

// The tensors a checkpoint keeps beside the weights and AdamW: the centers, and the moving
// average's (named "ema.<parameter>") when there is one and the weights are not the average
// itself (`best` of an --ema run holds the average as its weights: not stored twice).
std::vector<std::pair<std::string, Tensor>> checkpoint_extras(const Trainee& t, bool weights_are_average = false) {
  std::vector<std::pair<std::string, Tensor>> extra{{"centers", t.centers}};
  if (t.ema && !weights_are_average)
    for (auto& [n, v] : t.ema->module().state_dict()) extra.push_back({"ema." + n, v});
  return extra;
}

// The checkpoint keys of rank r's generator state (data-parallel runs).
std::string rank_rng_key(int r, int i) { return "dist.rng." + std::to_string(r) + "." + std::to_string(i); }

// Step 4: the training state: restored from last.safetensors (weights, AdamW, centers, RNG,
// early stopping), or a fresh one with config.json written; log.csv gets its header.
io::TrainState start_or_resume(const Args& a, const RunSettings& r, const TrainData& d, Trainee& t,
                               optim::EarlyStopping& stopper) {
  io::TrainState state;
  state.best_metric = NAN;
  if (r.resume) {
    std::vector<std::pair<std::string, Tensor>> extra = checkpoint_extras(t);
    state = io::load_checkpoint(r.out + "/last.safetensors", *t.model, *t.opt, &extra);
    if (t.ema) {
      ADNN_CHECK(state.config.count("ema.updates"), "train --resume: ", io::state_path(r.out + "/last.safetensors"),
                 " has no 'ema.updates'");
      t.ema->set_updates(parse_int64(state.config.at("ema.updates"), "ema.updates", 0));
    }
    if (r.rank > 0) {  // this rank's own stream, saved beside rank 0's
      for (int i = 0; i < 4; ++i) {
        const std::string k = rank_rng_key(r.rank, i);
        ADNN_CHECK(state.config.count(k), "train --resume: ", r.out, "/last.safetensors has no '", k, "'");
        state.rng[size_t(i)] = parse_uint64(state.config.at(k), k);
      }
    }
    set_rng_state(state.rng);
    if (r.rank == 0)
      std::printf("resuming %s at step %lld (epoch %lld), best val accuracy so far %.4f\n", r.out.c_str(),
                (long long)state.step, (long long)state.epoch, state.best_metric);
  }
  stopper.load_state_dict({.best = state.best_metric, .bad = state.bad_epochs});
  const std::string elapsed = state.config.count("run.elapsed_s") ? state.config["run.elapsed_s"] : "";
  std::map<std::string, std::string> scaler;  // the f16 gradient scaler's state
  for (const auto& [k, v] : state.config)
    if (k.rfind("scaler.", 0) == 0) scaler[k] = v;
  state.config = r.c.to_map();
  state.config.insert(r.run.begin(), r.run.end());  // the run settings, with this session's changes
  state.config.insert(scaler.begin(), scaler.end());
  if (!elapsed.empty()) state.config["run.elapsed_s"] = elapsed;
  if (r.rank > 0) return state;  // rank 0 writes the run's files
  if (!r.resume) {
    std::map<std::string, std::string> cj = state.config;
    cj["run.command"] = a.command();
    cj["run.device"] = r.dev.str();
    cj["run.train_images"] = std::to_string(d.train_ds->size());
    cj["run.val_images"] = std::to_string(d.val_ds->size());
    write_text(r.out + "/config.json", io::write_json_object(cj));
  } else if (!r.changes.empty()) {  // every change: printed, applied and listed in config.json
    std::map<std::string, std::string> cj = r.config_json;
    std::string record = "at step " + std::to_string(state.step) + ", " + a.command() + ":";
    for (const auto& ch : r.changes) {
      std::printf("resume: %s %s -> %s\n", ch.key.c_str(), ch.from.c_str(), ch.to.c_str());
      record += " " + ch.key + " " + ch.from + " -> " + ch.to + ";";
      cj[ch.key] = ch.to;
    }
    record.pop_back();
    std::string& history = cj["run.changes"];
    history += (history.empty() ? "" : " | ") + record;
    write_text(r.out + "/config.json", io::write_json_object(cj));
  }
  const std::string csv = r.out + "/log.csv";
  if (!r.resume || !fs::exists(csv))
    write_text(csv,
               "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,val_macro_auc,epoch_s,img_per_s,"
               "elapsed_s\n");
  return state;
}

// What one pass over the training batches gave.
struct EpochStats {
  double loss_sum = 0, correct = 0, seen = 0, seconds = 0;
  bool interrupted = false;  // --stop-after reached: the command exits with 3 once checkpointed
  bool out_of_time = false;  // --time-budget reached: validate, checkpoint, stop
};

// log.csv's epochs as curve points (epoch, train_loss, train_acc, val_loss, val_acc: columns
// 1, 4, 5, 6, 7); an adnn::Error naming the file and line for a row that does not parse.
std::vector<CurvePoint> curve_points(const std::string& csv_text, const std::string& path) {
  std::vector<CurvePoint> out;
  std::istringstream in(csv_text);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    if (++n == 1 || line.empty()) continue;  // the header
    std::vector<std::string> cells;
    std::istringstream ls(line);
    for (std::string c; std::getline(ls, c, ',');) cells.push_back(c);
    ADNN_CHECK(cells.size() >= 7, path, ":", n, ": expected 12 columns, got ", cells.size());
    const std::string at = path + ":" + std::to_string(n);
    out.push_back({parse_int64(cells[0], at + " epoch"), parse_double(cells[3], at + " train_loss", NonFinite::allow),
                   parse_double(cells[4], at + " train_acc", NonFinite::allow), parse_double(cells[5], at + " val_loss", NonFinite::allow),
                   parse_double(cells[6], at + " val_acc", NonFinite::allow)});
  }
  return out;
}

// The epoch loop's shared state and steps 5–7.
class Session {
 public:
  Session(const RunSettings& r, TrainData& d, Trainee& t, io::TrainState& state, optim::EarlyStopping& stopper)
      : r_(r), d_(d), t_(t), state_(state), stopper_(stopper) {
    if (r.resume && state.config.count("run.elapsed_s"))
      elapsed_before_ = parse_double(state.config["run.elapsed_s"], "run.elapsed_s", NonFinite::refuse, 0);
    clock_s_ = elapsed_before_;
    // --precision (docs/training.md): tf32 switches the f32 GEMMs; bf16/f16 run the forward and
    // the loss under autocast (f32 master weights and AdamW state); f16 scales the loss
    const std::string& p = r.run.at("run.precision");
    autocast_ = apply_precision(p, "run.precision");
    if (p == "f16") {
      scaler_ = std::make_unique<amp::GradScaler>();
      if (state.config.count("scaler.scale")) scaler_->load_state(state.config);
    }
  }

  // Training seconds of this run, earlier sessions included.
  double elapsed() const { return elapsed_before_ + std::chrono::duration<double>(Clock::now() - t_start_).count(); }

  // Whether the time budget is spent, by a clock every rank agrees on (the slowest one's):
  // each stops at the same step, and a time schedule sets the same lr.
  bool out_of_time() {
    if (r_.budget_s <= 0) return false;
    clock_s_ = elapsed();
    if (r_.world > 1) {
      Tensor t = full({1}, clock_s_, TensorOptions(DType::f64, kCPU));
      r_.pg->all_reduce(t, distributed::ReduceOp::max);
      clock_s_ = t.item<double>();
    }
    return clock_s_ >= r_.budget_s;
  }
  // Step 5: one epoch of training steps (skipping the batches done before a resume).
  EpochStats train_epoch(int64_t epoch);
  // Step 6: validation, the CSV row and the console line, early stopping; true when it stops training.
  bool validate(int64_t epoch, const EpochStats& e);
  // Step 7: a checkpoint (weights, AdamW, centers, RNG, early stopping, elapsed time).
  void checkpoint(const std::string& name);

 private:
  void train_step(const data::Batch& b, double lr, EpochStats& e);
  // Reads the losses and correct counts of the steps not read yet (one host wait for all of
  // them) into e; a non-finite loss among them stops the run naming its step.
  void flush(EpochStats& e);

  const RunSettings& r_;
  TrainData& d_;
  Trainee& t_;
  io::TrainState& state_;
  optim::EarlyStopping& stopper_;
  const bool tty_ = isatty(fileno(stderr));
  const Clock::time_point t_start_ = Clock::now();
  std::optional<DType> autocast_;           // bf16 / f16 training
  std::unique_ptr<amp::GradScaler> scaler_;  // f16 training
  double elapsed_before_ = 0;  // training seconds of earlier sessions of this run
  double clock_s_ = 0;         // elapsed() after the last step, the same on every rank (time schedule)
  double last_loss_ = NAN;     // the last finite training loss of this session, and its step
  int64_t last_loss_step_ = -1;
  // Steps whose loss (a device scalar) and correct count were not read yet. On the host they
  // are read at once (free there), so a non-finite loss stops the run before the update; on
  // cuda a step does not wait for the device: they are read when a progress line, the end of
  // an epoch or a checkpoint needs them (no checkpoint is written from unread steps).
  struct Pending {
    int64_t step, batch;
    Tensor loss, correct;  // () each
  };
  std::vector<Pending> pending_;
  Clock::time_point last_draw_{};
};

void Session::train_step(const data::Batch& b, double lr, EpochStats& e) {
  const FerConfig& c = r_.c;
  AdnnFer& model = *t_.model;
  optim::AdamW& opt = *t_.opt;
  opt.set_lr(lr);
  Tensor x = b.images.to(r_.dev), soft = b.soft.to(r_.dev), labels = b.labels.to(r_.dev);
  std::optional<amp::Autocast> autocast;
  if (autocast_) autocast.emplace(*autocast_);  // the forward and the loss (backward outside, as torch)
  auto [logits, pooled] = model.forward_with_features(x);  // (B, K), (B, d)
  // The center loss sees the features scaled by 1/√d: ½‖f − c‖²/d is the per-dimension
  // mean, about 0.5 at initialisation whatever d is (unscaled, the paper's weight 0.25
  // would make it ~d/8 and swamp the cross-entropy).
  Tensor feats = pooled * t_.feat_scale;
  Tensor loss;
  if (c.loss == "compound") {
    nn::CompoundLossOptions lo_opts;
    lo_opts.dls_eps = c.dls_eps;
    nn::CompoundLoss cl = nn::compound_loss(logits, feats, soft, labels, t_.centers, t_.prior, {}, lo_opts);
    loss = cl.total;
  } else {
    loss = nn::soft_cross_entropy(logits, soft);
  }
  autocast.reset();
  const int64_t B = b.labels.numel();
  pending_.push_back({state_.step + 1, B, loss.detach(), sum(eq(argmax(logits.detach(), 1), labels))});
  // on the host a non-finite loss stops the run before it reaches the weights
  if (r_.dev.is_cpu()) flush(e);
  opt.zero_grad();
  if (scaler_) {  // f16: scaled loss; unscale before clipping; a step with inf/NaN gradients is skipped
    scaler_->scale(loss).backward();
    scaler_->unscale_(opt);
    optim::clip_grad_norm_(opt.parameters(), 5.0);
    scaler_->step(opt);
    scaler_->update();
  } else {
    loss.backward();
    optim::clip_grad_norm_(opt.parameters(), 5.0);  // the norm stays on the device
    opt.step();
  }
  if (t_.ema) t_.ema->update(model);  // (a step the f16 scaler skips moves it too, as timm's)
  if (c.loss == "compound") {
    Tensor f = feats.detach().to(DType::f32), l = labels;  // (B, d), (B)
    if (r_.world > 1) {  // the centers move with every rank's batch, the same on each rank
      f = r_.pg->all_gather(f.contiguous()).reshape({-1, f.size(1)});
      l = r_.pg->all_gather(l.contiguous()).reshape({-1});
    }
    nn::update_centers(t_.centers, f, l, 0.5);
  }
  ++state_.step;
}

void Session::flush(EpochStats& e) {
  if (pending_.empty()) return;
  std::vector<Tensor> losses, corrects;
  for (const Pending& p : pending_) {
    losses.push_back(p.loss.to(DType::f64));
    corrects.push_back(p.correct.to(DType::f64));
  }
  const std::vector<double> l = stack(losses, 0).to(kCPU).to_vector(), k = stack(corrects, 0).to(kCPU).to_vector();
  std::vector<Pending> steps = std::move(pending_);
  pending_.clear();
  for (size_t i = 0; i < steps.size(); ++i) {
    if (!std::isfinite(l[i])) {
      const std::string last = last_loss_step_ < 0 ? std::string("no finite loss before it in this session")
                                                    : detail::cat("the last finite loss was ", last_loss_, " at step ",
                                                                  last_loss_step_);
      ADNN_FAIL("train: the loss is ", std::isnan(l[i]) ? "nan" : (l[i] > 0 ? "inf" : "-inf"), " at step ",
                steps[i].step, " (", last, "); stopped",
                r_.dev.is_cpu() ? " without updating the weights" : " without saving the weights updated since",
                " (the last checkpoint is unchanged); lower --lr or check the data");
    }
    last_loss_ = l[i];
    last_loss_step_ = steps[i].step;
    e.loss_sum += l[i] * double(steps[i].batch);
    e.correct += k[i];
    e.seen += double(steps[i].batch);
  }
}

EpochStats Session::train_epoch(int64_t epoch) {
  const int64_t spe = d_.steps_per_epoch;
  int64_t skip = state_.step % spe;  // resuming inside an epoch: its first batches are done
  d_.loader->start_epoch(epoch);
  t_.model->train();
  EpochStats e;
  const auto t_epoch = Clock::now();
  while (auto b = d_.loader->next()) {
    if (skip > 0) {
      --skip;
      continue;
    }
    // the time schedule reads the clock all ranks agreed on after the previous step
    const double lr = r_.time_schedule ? t_.sched.lr_at_fraction(state_.step, clock_s_ / r_.budget_s)
                                       : t_.sched.lr(state_.step);
    train_step(*b, lr, e);
    const int64_t in_epoch = state_.step - epoch * spe;
    // a terminal's line is redrawn at most 4 times a second (each draw reads the device)
    const bool draw = tty_ && Clock::now() - last_draw_ >= std::chrono::milliseconds(250);
    if (r_.rank == 0 && (draw || in_epoch % r_.log_every == 0 || in_epoch == spe)) {
      flush(e);
      last_draw_ = Clock::now();
      const double es = std::chrono::duration<double>(Clock::now() - t_epoch).count();
      const double ips = e.seen / std::max(es, 1e-9);
      double eta = double(t_.total_steps - state_.step) * r_.c.batch / std::max(ips, 1e-9);
      if (r_.budget_s > 0) eta = std::min(eta, std::max(r_.budget_s - elapsed(), 0.0));
      // a time-scheduled run has no epoch count, only its budget
      const std::string of = r_.time_schedule ? "" : "/" + std::to_string(r_.c.epochs);
      std::fprintf(stderr, "%sepoch %lld%s  step %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  lr %.2e  ETA %s%s",
                   tty_ ? "\r" : "", (long long)(epoch + 1), of.c_str(), (long long)in_epoch, (long long)spe,
                   e.loss_sum / e.seen, e.correct / e.seen, ips, lr, hms(eta).c_str(), tty_ ? "   " : "\n");
      std::fflush(stderr);
    }
    if (r_.stop_after > 0 && state_.step == r_.stop_after) {
      flush(e);
      e.interrupted = true;
      if (in_epoch == spe) break;  // the epoch is complete: validated and checkpointed as usual first
      checkpoint("last");
      if (r_.rank == 0)
        std::fprintf(stderr, "\nstopped after step %lld (--stop-after): resume with --resume --out %s\n",
                     (long long)state_.step, r_.out.c_str());
      return e;
    }
    if (r_.budget_s > 0) {
      if (out_of_time()) {
        e.out_of_time = true;
        break;
      }
    }
  }
  flush(e);  // the epoch's last steps: read before validation and any checkpoint
  if (tty_ && r_.rank == 0) std::fprintf(stderr, "\n");
  e.seconds = std::chrono::duration<double>(Clock::now() - t_epoch).count();
  return e;
}

bool Session::validate(int64_t epoch, const EpochStats& local) {
  EpochStats e = local;
  if (r_.world > 1) {  // the epoch's loss and accuracy over every rank's batches
    Tensor sums = from_vector(std::vector<double>{e.loss_sum, e.correct, e.seen}, {3}, DType::f64);
    r_.pg->all_reduce(sums, distributed::ReduceOp::sum);
    const std::vector<double> v = sums.to_vector();
    e.loss_sum = v[0];
    e.correct = v[1];
    e.seen = v[2];
  }
  state_.epoch = epoch + 1;
  if (r_.rank > 0) {
    // rank 0 validates (the others wait in the broadcast, within the group's timeout) and
    // shares what decides the run: stop, best and bad epochs, improved
    Tensor d = zeros({4}, TensorOptions(DType::f64, kCPU));
    // rank 0 validates meanwhile: this wait may be longer than a training collective's (a
    // rank 0 that dies is still seen at once, by its closed connections)
    const auto usual = r_.pg->timeout();
    r_.pg->set_timeout(std::max(usual, std::chrono::milliseconds(std::chrono::hours(2))));
    r_.pg->broadcast(d, 0);
    r_.pg->set_timeout(usual);
    const std::vector<double> v = d.to_vector();
    stopper_.load_state_dict({.best = v[1], .bad = int64_t(v[2])});
    state_.best_metric = v[1];
    state_.bad_epochs = int64_t(v[2]);
    if (v[3] > 0) checkpoint("best");
    checkpoint("last");
    return v[0] > 0;
  }
  // Validation allocates other sizes than a training step: the host cache's training blocks
  // would sit unused beside them (peak RSS), and its validation blocks after them.
  host_empty_cache();
  // the moving average when there is one (what best.safetensors keeps), else the model
  AdnnFer& judged = t_.ema ? static_cast<AdnnFer&>(t_.ema->module()) : *t_.model;
  EvalReport v = evaluate(judged, d_.val_ds, r_.dev, 256, r_.workers,
                          "train: the model at step " + std::to_string(state_.step), nn::Tta::none,
                          eval_progress("validation, epoch " + std::to_string(epoch + 1) + ":"));
  host_empty_cache();
  const bool stop = stopper_.update(v.accuracy);
  const bool improved = stopper_.improved;
  state_.best_metric = stopper_.state_dict().best;
  state_.bad_epochs = stopper_.state_dict().bad;
  if (r_.world > 1) {
    Tensor d = from_vector(std::vector<double>{stop ? 1.0 : 0.0, state_.best_metric, double(state_.bad_epochs),
                                               improved ? 1.0 : 0.0},
                           {4}, DType::f64);
    const auto usual = r_.pg->timeout();
    r_.pg->set_timeout(std::max(usual, std::chrono::milliseconds(std::chrono::hours(2))));
    r_.pg->broadcast(d, 0);
    r_.pg->set_timeout(usual);
  }
  const double train_loss = e.seen ? e.loss_sum / e.seen : 0.0, train_acc = e.seen ? e.correct / e.seen : 0.0;
  char row[512];
  std::snprintf(row, sizeof row, "%lld,%lld,%.6g,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.1f,%.1f,%.1f\n",
                (long long)(epoch + 1), (long long)state_.step, t_.opt->lr(), train_loss, train_acc, v.log_loss,
                v.accuracy, v.macro_f1, v.macro_auc, e.seconds, e.seen / std::max(e.seconds, 1e-9), elapsed());
  const std::string csv = r_.out + "/log.csv";
  auto bytes = io::read_file(csv);
  const std::string rows = std::string(bytes.begin(), bytes.end()) + row;
  write_text(csv, rows);
  write_curves_png(r_.out + "/curves.png", curve_points(rows, csv));
  std::printf(
      "epoch %lld: train loss %.4f acc %.4f | val loss %.4f acc %.4f macro-F1 %.4f AUC %.4f%s | %.0f s, "
      "elapsed %s\n",
      (long long)(epoch + 1), train_loss, train_acc, v.log_loss, v.accuracy, v.macro_f1, v.macro_auc,
      improved ? " (best)" : "", e.seconds, hms(elapsed()).c_str());
  std::fflush(stdout);
  if (improved) checkpoint("best");
  checkpoint("last");
  return stop;
}

void Session::checkpoint(const std::string& name) {
  state_.rng = get_rng_state();
  if (r_.world > 1) {  // every rank's generator, so that --resume continues each stream
    std::vector<int64_t> w(4);
    for (int i = 0; i < 4; ++i) w[size_t(i)] = int64_t(state_.rng[size_t(i)]);
    const Tensor all = r_.pg->all_gather(from_vector(w, {4}));  // (world, 4) i64 on the host
    const int64_t* a = all.data_ptr<int64_t>();
    for (int r = 0; r < r_.world; ++r)
      for (int i = 0; i < 4; ++i) state_.config[rank_rng_key(r, i)] = std::to_string(uint64_t(a[r * 4 + i]));
    if (r_.rank > 0) return;  // rank 0 writes the checkpoint (atomically)
  }
  state_.config["run.elapsed_s"] = std::to_string(elapsed());
  if (scaler_)
    for (const auto& [k, v] : scaler_->state()) state_.config[k] = v;
  if (t_.ema) state_.config["ema.updates"] = std::to_string(t_.ema->updates());
  // best: the moving average's weights when there is one (what was validated); last: the
  // trained weights, with the average among the extras
  const bool average = t_.ema && name == "best";
  const nn::Module& weights = average ? t_.ema->module() : static_cast<const nn::Module&>(*t_.model);
  io::save_checkpoint(r_.out + "/" + name + ".safetensors", weights, *t_.opt, state_, checkpoint_extras(t_, average));
}

}  // namespace

std::optional<DType> apply_precision(const std::string& p, const char* what) {
  ADNN_CHECK(p == "f32" || p == "tf32" || p == "bf16" || p == "f16", what, ": expected f32, tf32, bf16 or f16, got '",
             p, "'");
  set_allow_tf32(p == "tf32");
  if (p == "bf16") return DType::bf16;
  if (p == "f16") return DType::f16;
  return std::nullopt;
}

std::map<std::string, std::string> read_run_config(const std::string& path) {
  try {
    return io::read_json_object(path);
  } catch (const Error& e) {
    ADNN_FAIL(e.what(), "; remove the run or fix the file");
  }
}

std::map<std::string, std::string> fresh_run_settings(const Args& a) {
  FerConfig c;
  std::map<std::string, std::string> run;
  fresh_settings(a, c, run);
  run["run.precision"] = fresh_precision(a, pick_device(a));
  std::map<std::string, std::string> m = c.to_map();
  m.insert(run.begin(), run.end());
  return m;
}

int cmd_train(const Args& a) {
  const int64_t nproc = a.num("nproc", 1);
  // --nproc N: this process starts N ranks of itself and waits for them (launch.cpp)
  if (nproc > 1 && !distributed::launched_by_env()) return launch_local_ranks(a, int(nproc));
  struct GroupScope {  // the default group ends with the command (after the run's objects)
    ~GroupScope() { distributed::destroy_process_group(); }
  } group_scope;
  std::shared_ptr<distributed::ProcessGroup> pg;
  if (distributed::launched_by_env()) {  // a rank, started by --nproc, torchrun, mpirun or srun
    die_with_launcher();
    const Device dev = pick_device(a);
    const bool nccl = dev.is_cuda() && !cuda::is_emulated() && distributed::has_nccl();
    distributed::InitOptions o = distributed::options_from_env(nccl ? distributed::Backend::nccl : distributed::Backend::gloo);
    if (a.has("dist-timeout"))
      o.timeout = std::chrono::milliseconds(int64_t(a.real("dist-timeout", 600) * 1000));
    if (a.has("nproc") && nproc != o.world_size)
      throw UsageError(detail::cat("train: --nproc ", nproc, " but the launcher set WORLD_SIZE=", o.world_size));
    pg = distributed::init_process_group(o);
  }
  RunSettings r = setup_run(a, pg);
  TrainData d = load_data(r);
  Trainee t = build_model(r, d);
  optim::EarlyStopping stopper{.patience = r.c.patience, .maximize = true};
  io::TrainState state = start_or_resume(a, r, d, t, stopper);
  if (r.world > 1) {
    if (r.run.at("run.sync_bn") == "1") distributed::convert_sync_batchnorm(*t.model, r.pg);
    distributed::DdpOptions o;
    // buckets: --bucket-mb, else about 8 per step for a small model (so that all but the last
    // go out during the backward pass), at most torch's 25 MiB for a large one
    const double model_mb = double(t.model->num_parameters()) * 4.0 / (1024.0 * 1024.0);
    o.bucket_cap_mb = a.has("bucket-mb") ? a.real("bucket-mb", 25) : std::clamp(model_mb / 8.0, 1.0, 25.0);
    t.ddp = std::make_unique<distributed::DistributedDataParallel>(t.model, r.pg, o);
  }
  if (r.rank == 0)
    std::printf(
      "adnn-fer train: %s (%lld parameters) on %s, %lld train / %lld val images, batch %lld, %s x %lld "
      "steps, loss %s, out %s\n",
      r.c.name.c_str(), (long long)t.model->num_parameters(), r.dev.str().c_str(), (long long)d.train_ds->size(),
      (long long)d.val_ds->size(), (long long)r.c.batch,
      r.time_schedule ? detail::cat("cosine over the ", r.budget_s / 60, "-minute budget: epochs").c_str()
                      : detail::cat(r.c.epochs, " epochs").c_str(),
      (long long)d.steps_per_epoch, r.c.loss.c_str(), r.out.c_str());

  Session session(r, d, t, state, stopper);
  std::string stop_reason = "all epochs done";
  const bool stopped_early = stopper.should_stop();  // before an interruption: nothing left to train
  if (stopped_early)
    stop_reason = "early stopping (no val improvement in " + std::to_string(r.c.patience) + " epochs)";
  while (!stopped_early && state.step < t.total_steps) {
    const int64_t epoch = state.step / d.steps_per_epoch;
    const EpochStats e = session.train_epoch(epoch);
    if (e.interrupted && state.step % d.steps_per_epoch != 0) return 3;  // mid-epoch: checkpointed
    const bool early_stop = session.validate(epoch, e);
    if (e.interrupted && !early_stop && state.step < t.total_steps) {
      if (r.rank == 0)
        std::fprintf(stderr, "stopped after step %lld (--stop-after), epoch %lld validated: resume with --resume --out %s\n",
                   (long long)state.step, (long long)(epoch + 1), r.out.c_str());
      return 3;
    }
    if (early_stop) {  // named before the time budget when both end the run
      stop_reason = "early stopping (no val improvement in " + std::to_string(r.c.patience) + " epochs)";
      break;
    }
    // validation counts against the budget: no epoch is started that could take only a step
    if (e.out_of_time || session.out_of_time()) {
      stop_reason = "time budget reached";
      break;
    }
  }
  if (r.rank == 0)
    std::printf(
      "done: %s; best val accuracy %.4f; %lld steps in %s; checkpoints in %s (best.safetensors, "
      "last.safetensors)\n",
      stop_reason.c_str(), state.best_metric, (long long)state.step, hms(session.elapsed()).c_str(), r.out.c_str());
  return 0;
}

}  // namespace adnn_fer
