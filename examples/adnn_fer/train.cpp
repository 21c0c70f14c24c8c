// adnn-fer train: the paper's recipe (AdamW with layer-wise decay, warm-up + cosine, early
// stopping on val accuracy, compound loss, CLAHE and the augmentation chain) with a progress
// line, one CSV row per epoch, best/last checkpoints, config.json and exact --resume.
#include <unistd.h>

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

bool on_off(const Args& a, const std::string& k, bool d) {
  if (!a.has(k)) return d;
  const std::string v = a.get(k);
  ADNN_CHECK(v == "on" || v == "off" || v == "1" || v == "0", "train: --", k, " takes on|off, got '", v, "'");
  return v == "on" || v == "1";
}

std::string hms(double s) {
  const int64_t t = int64_t(std::max(0.0, s));
  char b[32];
  std::snprintf(b, sizeof b, "%02lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60),
                (long long)(t % 60));
  return b;
}

std::string json_object(const std::map<std::string, std::string>& m) {
  std::ostringstream o;
  o << "{\n";
  size_t i = 0;
  for (auto& [k, v] : m) {
    o << "  \"" << k << "\": \"";
    for (char c : v) o << (c == '"' || c == '\\' ? "\\" : "") << c;
    o << "\"" << (++i < m.size() ? "," : "") << "\n";
  }
  o << "}\n";
  return o.str();
}

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
  double budget_s = 0;
  uint64_t seed = 0;
  int workers = 2;
  int64_t stop_after = 0;  // testing aid: checkpoint and exit after this step
  int64_t log_every = 50;
  Device dev = kCPU;
};

// Step 1: settings from the command line, or from last.safetensors when resuming; creates
// the run directory.
RunSettings setup_run(const Args& a) {
  RunSettings r;
  r.resume = a.has("resume");
  FerConfig& c = r.c;
  if (r.resume) {
    ADNN_CHECK(a.has("out"), "train --resume: --out RUN_DIR is required");
    r.out = a.get("out");
    const std::string last = r.out + "/last.safetensors";
    ADNN_CHECK(fs::exists(last), "train --resume: ", last, " does not exist");
    io::SafeTensors st = io::load_safetensors(io::state_path(last));
    c = FerConfig::from_map(st.metadata);
    for (auto& [k, v] : st.metadata)
      if (k.rfind("run.", 0) == 0) r.run[k] = v;
  } else {
    c = nn::fer_config(a.get("config", "adnn_fer_nano"));
    c.epochs = a.num("epochs", c.epochs);
    c.batch = a.num("batch", c.batch);
    c.lr = a.real("lr", c.lr);
    c.layer_decay = a.real("layer-decay", c.layer_decay);
    c.weight_decay = a.real("weight-decay", c.weight_decay);
    c.warmup_epochs = a.num("warmup-epochs", c.warmup_epochs);
    c.patience = a.num("patience", c.patience);
    c.backbone = a.get("backbone", c.backbone);
    c.cbam = on_off(a, "cbam", c.cbam);
    c.transformer = on_off(a, "transformer", c.transformer);
    c.mixup = on_off(a, "mixup", c.mixup);
    c.loss = a.get("loss", c.loss);
    ADNN_CHECK(c.loss == "ce" || c.loss == "compound", "train: --loss takes ce|compound, got '", c.loss, "'");
    ADNN_CHECK(c.epochs > 0 && c.batch > 1 && c.lr > 0, "train: bad --epochs/--batch/--lr");
    r.out = a.get("out", "runs/" + c.name);
    r.run["run.data"] = resolve_data_dir(a);
    r.run["run.seed"] = std::to_string(a.num("seed", 0));
    r.run["run.train_limit"] = std::to_string(a.num("train-limit", 0));
    r.run["run.val_limit"] = std::to_string(a.num("val-limit", 0));
    r.run["run.time_budget_min"] = a.get("time-budget", "0");
    r.run["run.workers"] = std::to_string(a.num("workers", 2));
    r.run["run.augment"] = on_off(a, "augment", true) ? "1" : "0";
  }
  if (a.has("data")) r.run["run.data"] = a.get("data");
  r.budget_s = std::stod(r.run["run.time_budget_min"]) * 60.0;
  r.seed = std::stoull(r.run["run.seed"]);
  r.workers = int(std::stoll(r.run["run.workers"]));
  r.stop_after = a.num("stop-after", 0);
  r.log_every = a.num("log-every", 50);
  r.dev = pick_device(a);
  fs::create_directories(r.out);
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
  d.train_ds = stratified_slice(d.train_ds, std::stoll(r.run["run.train_limit"]), r.seed + 1);
  d.val_ds = stratified_slice(d.val_ds, std::stoll(r.run["run.val_limit"]), r.seed + 2);
  data::AugmentOptions aug;
  aug.mixup = r.c.mixup;
  data::LoaderOptions lo;
  lo.batch_size = r.c.batch;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.workers = r.workers;
  lo.seed = r.seed;
  lo.augment = r.run["run.augment"] != "0";
  d.loader = std::make_unique<data::DataLoader>(d.train_ds, preprocess_options(r.c), aug, lo);
  d.steps_per_epoch = d.loader->batches_per_epoch();
  ADNN_CHECK(d.steps_per_epoch > 0, "train: ", d.train_ds->size(), " training images give no batch of ", r.c.batch);
  return d;
}

// The model, its optimizer and schedule, and the compound loss's state.
struct Trainee {
  std::unique_ptr<AdnnFer> model;
  std::unique_ptr<optim::AdamW> opt;
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
  t.model = std::make_unique<AdnnFer>(c);
  t.model->to(r.dev);
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
  return t;
}

// Step 4: the training state: restored from last.safetensors (weights, AdamW, centers, RNG,
// early stopping), or a fresh one with config.json written; log.csv gets its header.
io::TrainState start_or_resume(const Args& a, const RunSettings& r, const TrainData& d, Trainee& t,
                               optim::EarlyStopping& stopper) {
  io::TrainState state;
  state.best_metric = NAN;
  if (r.resume) {
    std::vector<std::pair<std::string, Tensor>> extra{{"centers", t.centers}};
    state = io::load_checkpoint(r.out + "/last.safetensors", *t.model, *t.opt, &extra);
    set_rng_state(state.rng);
    std::printf("resuming %s at step %lld (epoch %lld), best val accuracy so far %.4f\n", r.out.c_str(),
                (long long)state.step, (long long)state.epoch, state.best_metric);
  }
  stopper.load_state_dict({.best = state.best_metric, .bad = state.bad_epochs});
  state.config = r.c.to_map();
  state.config.insert(r.run.begin(), r.run.end());
  if (!r.resume) {
    std::map<std::string, std::string> cj = state.config;
    std::string cmdline = "adnn-fer train";
    for (auto& [k, v] : a.kv) cmdline += " --" + k + (v == "1" ? "" : " " + v);
    cj["run.command"] = cmdline;
    cj["run.device"] = r.dev.str();
    cj["run.train_images"] = std::to_string(d.train_ds->size());
    cj["run.val_images"] = std::to_string(d.val_ds->size());
    write_text(r.out + "/config.json", json_object(cj));
  }
  const std::string csv = r.out + "/log.csv";
  if (!fs::exists(csv))
    write_text(csv,
               "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,val_macro_auc,epoch_s,img_per_s,"
               "elapsed_s\n");
  return state;
}

// What one pass over the training batches gave.
struct EpochStats {
  double loss_sum = 0, correct = 0, seen = 0, seconds = 0;
  bool interrupted = false;  // --stop-after reached: checkpointed, the command exits
  bool out_of_time = false;  // --time-budget reached: validate, checkpoint, stop
};

// The epoch loop's shared state and steps 5–7.
class Session {
 public:
  Session(const RunSettings& r, TrainData& d, Trainee& t, io::TrainState& state, optim::EarlyStopping& stopper)
      : r_(r), d_(d), t_(t), state_(state), stopper_(stopper) {
    if (r.resume && state.config.count("run.elapsed_s")) elapsed_before_ = std::stod(state.config["run.elapsed_s"]);
  }

  // Training seconds of this run, earlier sessions included.
  double elapsed() const { return elapsed_before_ + std::chrono::duration<double>(Clock::now() - t_start_).count(); }

  // Step 5: one epoch of training steps (skipping the batches done before a resume).
  EpochStats train_epoch(int64_t epoch);
  // Step 6: validation, the CSV row and the console line, early stopping; true when it stops training.
  bool validate(int64_t epoch, const EpochStats& e);
  // Step 7: a checkpoint (weights, AdamW, centers, RNG, early stopping, elapsed time).
  void checkpoint(const std::string& name);

 private:
  double train_step(const data::Batch& b, double lr, EpochStats& e);

  const RunSettings& r_;
  TrainData& d_;
  Trainee& t_;
  io::TrainState& state_;
  optim::EarlyStopping& stopper_;
  const bool tty_ = isatty(fileno(stderr));
  const Clock::time_point t_start_ = Clock::now();
  double elapsed_before_ = 0;  // training seconds of earlier sessions of this run
};

double Session::train_step(const data::Batch& b, double lr, EpochStats& e) {
  const FerConfig& c = r_.c;
  AdnnFer& model = *t_.model;
  optim::AdamW& opt = *t_.opt;
  opt.set_lr(lr);
  Tensor x = b.images.to(r_.dev), soft = b.soft.to(r_.dev), labels = b.labels.to(r_.dev);
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
  opt.zero_grad();
  loss.backward();
  optim::clip_grad_norm(opt.parameters(), 5.0);
  opt.step();
  if (c.loss == "compound") nn::update_centers(t_.centers, feats.detach(), labels, 0.5);
  ++state_.step;
  const double l = loss.item<double>();
  const int64_t B = b.labels.numel();
  e.loss_sum += l * double(B);
  const std::vector<double> pred = argmax(logits.detach(), 1).to(kCPU).to_vector();
  const std::vector<double> truth = b.labels.to_vector();
  for (size_t i = 0; i < pred.size(); ++i) e.correct += pred[i] == truth[i];
  e.seen += double(B);
  return l;
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
    const double lr = t_.sched.lr(state_.step);
    train_step(*b, lr, e);
    const int64_t in_epoch = state_.step - epoch * spe;
    const double es = std::chrono::duration<double>(Clock::now() - t_epoch).count();
    const double ips = e.seen / std::max(es, 1e-9);
    const double eta = double(t_.total_steps - state_.step) * r_.c.batch / std::max(ips, 1e-9);
    if (tty_ || in_epoch % r_.log_every == 0 || in_epoch == spe) {
      std::fprintf(stderr, "%sepoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  lr %.2e  ETA %s%s",
                   tty_ ? "\r" : "", (long long)(epoch + 1), (long long)r_.c.epochs, (long long)in_epoch,
                   (long long)spe, e.loss_sum / e.seen, e.correct / e.seen, ips, lr, hms(eta).c_str(),
                   tty_ ? "   " : "\n");
      std::fflush(stderr);
    }
    if (r_.stop_after > 0 && state_.step == r_.stop_after) {
      checkpoint("last");
      std::fprintf(stderr, "\nstopped after step %lld (--stop-after): resume with --resume --out %s\n",
                   (long long)state_.step, r_.out.c_str());
      e.interrupted = true;
      return e;
    }
    if (r_.budget_s > 0 && elapsed() >= r_.budget_s) {
      e.out_of_time = true;
      break;
    }
  }
  if (tty_) std::fprintf(stderr, "\n");
  e.seconds = std::chrono::duration<double>(Clock::now() - t_epoch).count();
  return e;
}

bool Session::validate(int64_t epoch, const EpochStats& e) {
  EvalReport v = evaluate(*t_.model, d_.val_ds, r_.dev, 256, r_.workers);
  state_.epoch = epoch + 1;
  const bool stop = stopper_.update(v.accuracy);
  const bool improved = stopper_.improved;
  state_.best_metric = stopper_.state_dict().best;
  state_.bad_epochs = stopper_.state_dict().bad;
  const double train_loss = e.seen ? e.loss_sum / e.seen : 0.0, train_acc = e.seen ? e.correct / e.seen : 0.0;
  char row[512];
  std::snprintf(row, sizeof row, "%lld,%lld,%.6g,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.1f,%.1f,%.1f\n",
                (long long)(epoch + 1), (long long)state_.step, t_.opt->lr(), train_loss, train_acc, v.log_loss,
                v.accuracy, v.macro_f1, v.macro_auc, e.seconds, e.seen / std::max(e.seconds, 1e-9), elapsed());
  const std::string csv = r_.out + "/log.csv";
  auto bytes = io::read_file(csv);
  write_text(csv, std::string(bytes.begin(), bytes.end()) + row);
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
  state_.config["run.elapsed_s"] = std::to_string(elapsed());
  io::save_checkpoint(r_.out + "/" + name + ".safetensors", *t_.model, *t_.opt, state_, {{"centers", t_.centers}});
}

}  // namespace

int cmd_train(const Args& a) {
  RunSettings r = setup_run(a);
  TrainData d = load_data(r);
  Trainee t = build_model(r, d);
  optim::EarlyStopping stopper{.patience = r.c.patience, .maximize = true};
  io::TrainState state = start_or_resume(a, r, d, t, stopper);
  std::printf(
      "adnn-fer train: %s (%lld parameters) on %s, %lld train / %lld val images, batch %lld, %lld epochs x %lld "
      "steps, loss %s, out %s\n",
      r.c.name.c_str(), (long long)t.model->num_parameters(), r.dev.str().c_str(), (long long)d.train_ds->size(),
      (long long)d.val_ds->size(), (long long)r.c.batch, (long long)r.c.epochs, (long long)d.steps_per_epoch,
      r.c.loss.c_str(), r.out.c_str());

  Session session(r, d, t, state, stopper);
  std::string stop_reason = "all epochs done";
  while (state.step < t.total_steps) {
    const int64_t epoch = state.step / d.steps_per_epoch;
    const EpochStats e = session.train_epoch(epoch);
    if (e.interrupted) return 3;
    const bool early_stop = session.validate(epoch, e);
    if (early_stop) {  // named before the time budget when both end the run
      stop_reason = "early stopping (no val improvement in " + std::to_string(r.c.patience) + " epochs)";
      break;
    }
    if (e.out_of_time) {
      stop_reason = "time budget reached";
      break;
    }
  }
  std::printf(
      "done: %s; best val accuracy %.4f; %lld steps in %s; checkpoints in %s (best.safetensors, "
      "last.safetensors)\n",
      stop_reason.c_str(), state.best_metric, (long long)state.step, hms(session.elapsed()).c_str(), r.out.c_str());
  return 0;
}

}  // namespace adnn_fer
