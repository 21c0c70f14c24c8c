// adnn-fer train: the paper's recipe (AdamW with layer-wise decay, warm-up + cosine, early
// stopping on val accuracy, compound loss, CLAHE and the augmentation chain) with a progress
// line, one CSV row per epoch, best/last checkpoints, config.json and exact --resume.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
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
  std::snprintf(b, sizeof b, "%02lld:%02lld:%02lld", (long long)(t / 3600), (long long)(t / 60 % 60), (long long)(t % 60));
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

}  // namespace

int cmd_train(const Args& a) {
  const bool resume = a.has("resume");
  FerConfig c;
  std::map<std::string, std::string> run;  // run settings stored beside the model config
  std::string out;
  if (resume) {
    ADNN_CHECK(a.has("out"), "train --resume: --out RUN_DIR is required");
    out = a.get("out");
    const std::string last = out + "/last.safetensors";
    ADNN_CHECK(fs::exists(last), "train --resume: ", last, " does not exist");
    io::SafeTensors st = io::load_safetensors(io::state_path(last));
    c = FerConfig::from_map(st.metadata);
    for (auto& [k, v] : st.metadata)
      if (k.rfind("run.", 0) == 0) run[k] = v;
  } else {
    c = fer_config(a.get("config", "adnn_fer_nano"));
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
    out = a.get("out", "runs/" + c.name);
    run["run.data"] = resolve_data_dir(a);
    run["run.seed"] = std::to_string(a.num("seed", 0));
    run["run.train_limit"] = std::to_string(a.num("train-limit", 0));
    run["run.val_limit"] = std::to_string(a.num("val-limit", 0));
    run["run.time_budget_min"] = a.get("time-budget", "0");
    run["run.workers"] = std::to_string(a.num("workers", 2));
    run["run.augment"] = on_off(a, "augment", true) ? "1" : "0";
  }
  if (a.has("data")) run["run.data"] = a.get("data");
  const double budget_s = std::stod(run["run.time_budget_min"]) * 60.0;
  const uint64_t seed = std::stoull(run["run.seed"]);
  const int workers = int(std::stoll(run["run.workers"]));
  const int64_t stop_after = a.num("stop-after", 0);  // testing aid: checkpoint and exit after this step
  const Device dev = pick_device(a);
  fs::create_directories(out);

  // ---- data
  const std::string dir = run["run.data"];
  std::shared_ptr<const data::Dataset> train_ds = std::make_shared<data::FolderDataset>(dir + "/train");
  std::shared_ptr<const data::Dataset> val_ds = std::make_shared<data::FolderDataset>(dir + "/val");
  train_ds = stratified_slice(train_ds, std::stoll(run["run.train_limit"]), seed + 1);
  val_ds = stratified_slice(val_ds, std::stoll(run["run.val_limit"]), seed + 2);
  data::AugmentOptions aug;
  aug.mixup = c.mixup;
  data::LoaderOptions lo;
  lo.batch_size = c.batch;
  lo.shuffle = true;
  lo.drop_last = true;
  lo.workers = workers;
  lo.seed = seed;
  lo.augment = run["run.augment"] != "0";
  data::DataLoader loader(train_ds, preprocess_options(c), aug, lo);
  const int64_t spe = loader.batches_per_epoch();
  ADNN_CHECK(spe > 0, "train: ", train_ds->size(), " training images give no batch of ", c.batch);

  // ---- model, optimizer, schedule, loss state
  manual_seed(seed);
  AdnnFer model(c);
  model.to(dev);
  optim::AdamW opt(optim::layer_decay_groups(model, c.weight_decay, c.layer_decay, head_depths()), {.lr = c.lr});
  const int64_t total = c.epochs * spe;
  optim::WarmupCosine sched{.base_lr = c.lr, .min_lr = c.lr * 0.01, .warmup = std::min(c.warmup_epochs * spe, total),
                            .total = total};
  const int64_t K = c.num_classes;
  Tensor centers = zeros({K, model.feature_dim()}).to(dev);
  const double feat_scale = 1.0 / std::sqrt(double(model.feature_dim()));
  std::vector<double> prior_v = nn::dls_prior(train_ds->class_counts());
  Tensor prior = from_vector(prior_v, {K}, DType::f32).to(dev);

  io::TrainState state;
  state.best_metric = NAN;
  if (resume) {
    std::vector<std::pair<std::string, Tensor>> extra{{"centers", centers}};
    state = io::load_checkpoint(out + "/last.safetensors", model, opt, &extra);
    std::copy(state.rng.begin(), state.rng.end(), default_generator().state);
    std::printf("resuming %s at step %lld (epoch %lld), best val accuracy so far %.4f\n", out.c_str(),
                (long long)state.step, (long long)state.epoch, state.best_metric);
  }
  state.config = c.to_map();
  state.config.insert(run.begin(), run.end());
  if (!resume) {
    std::map<std::string, std::string> cj = state.config;
    std::string cmdline;
    cmdline = "adnn-fer train";
    for (auto& [k, v] : a.kv) cmdline += " --" + k + (v == "1" ? "" : " " + v);
    cj["run.command"] = cmdline;
    cj["run.device"] = dev.str();
    cj["run.train_images"] = std::to_string(train_ds->size());
    cj["run.val_images"] = std::to_string(val_ds->size());
    write_text(out + "/config.json", json_object(cj));
  }
  const std::string csv = out + "/log.csv";
  if (!fs::exists(csv))
    write_text(csv, "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,val_macro_auc,epoch_s,img_per_s,"
                    "elapsed_s\n");

  std::printf("adnn-fer train: %s (%lld parameters) on %s, %lld train / %lld val images, batch %lld, %lld epochs x %lld "
              "steps, loss %s, out %s\n",
              c.name.c_str(), (long long)model.num_parameters(), dev.str().c_str(), (long long)train_ds->size(),
              (long long)val_ds->size(), (long long)c.batch, (long long)c.epochs, (long long)spe, c.loss.c_str(),
              out.c_str());
  const bool tty = isatty(fileno(stderr));
  const int64_t log_every = a.num("log-every", 50);
  const auto t_start = Clock::now();
  double elapsed_before = 0;  // training seconds of earlier sessions of this run
  if (resume && state.config.count("run.elapsed_s")) elapsed_before = std::stod(state.config["run.elapsed_s"]);
  auto elapsed = [&] { return elapsed_before + std::chrono::duration<double>(Clock::now() - t_start).count(); };
  auto save = [&](const std::string& name) {
    std::copy(default_generator().state, default_generator().state + 4, state.rng.begin());
    state.config["run.elapsed_s"] = std::to_string(elapsed());
    io::save_checkpoint(out + "/" + name + ".safetensors", model, opt, state, {{"centers", centers}});
  };

  bool stop = false;
  std::string stop_reason = "all epochs done";
  while (!stop && state.step < total) {
    const int64_t epoch = state.step / spe;
    int64_t skip = state.step % spe;  // resuming inside an epoch: its first batches are done
    loader.start_epoch(epoch);
    model.train();
    double loss_sum = 0, correct = 0, seen = 0;
    const auto t_epoch = Clock::now();
    while (auto b = loader.next()) {
      if (skip > 0) {
        --skip;
        continue;
      }
      const double lr = sched.lr(state.step);
      opt.set_lr(lr);
      Tensor x = b->images.to(dev), soft = b->soft.to(dev), labels = b->labels.to(dev);
      auto [logits, pooled] = model.forward_with_features(x);  // (B, K), (B, d)
      // The center loss sees the features scaled by 1/√d: ½‖f − c‖²/d is the per-dimension
      // mean, about 0.5 at initialisation whatever d is (unscaled, the paper's weight 0.25
      // would make it ~d/8 and swamp the cross-entropy).
      Tensor feats = pooled * feat_scale;
      Tensor loss;
      if (c.loss == "compound") {
        nn::CompoundLossOptions lo_opts;
        lo_opts.dls_eps = c.dls_eps;
        nn::CompoundLoss cl = nn::compound_loss(logits, feats, soft, labels, centers, prior, {}, lo_opts);
        loss = cl.total;
      } else {
        loss = nn::soft_cross_entropy(logits, soft);
      }
      opt.zero_grad();
      loss.backward();
      optim::clip_grad_norm(opt.parameters(), 5.0);
      opt.step();
      if (c.loss == "compound") nn::update_centers(centers, feats.detach(), labels, 0.5);
      ++state.step;
      const double l = loss.item<double>();
      const int64_t B = b->labels.numel();
      loss_sum += l * double(B);
      {
        const std::vector<double> pred = argmax(logits.detach(), 1).to(kCPU).to_vector();
        const std::vector<double> truth = b->labels.to_vector();
        for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == truth[i];
      }
      seen += double(B);
      const int64_t in_epoch = state.step - epoch * spe;
      const double es = std::chrono::duration<double>(Clock::now() - t_epoch).count();
      const double ips = seen / std::max(es, 1e-9);
      const double eta = double(total - state.step) * c.batch / std::max(ips, 1e-9);
      if (tty || in_epoch % log_every == 0 || in_epoch == spe) {
        std::fprintf(stderr, "%sepoch %lld/%lld  step %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  lr %.2e  ETA %s%s",
                     tty ? "\r" : "", (long long)(epoch + 1), (long long)c.epochs, (long long)in_epoch, (long long)spe,
                     loss_sum / seen, correct / seen, ips, lr, hms(eta).c_str(), tty ? "   " : "\n");
        std::fflush(stderr);
      }
      if (stop_after > 0 && state.step == stop_after) {
        save("last");
        std::fprintf(stderr, "\nstopped after step %lld (--stop-after): resume with --resume --out %s\n",
                     (long long)state.step, out.c_str());
        return 3;
      }
      if (budget_s > 0 && elapsed() >= budget_s) {
        stop = true;
        stop_reason = "time budget reached";
        break;
      }
    }
    if (tty) std::fprintf(stderr, "\n");
    // ---- validation, CSV, checkpoints, early stopping
    const double epoch_s = std::chrono::duration<double>(Clock::now() - t_epoch).count();
    EvalReport v = evaluate(model, val_ds, dev, 256, workers);
    state.epoch = epoch + 1;
    const bool improved = std::isnan(state.best_metric) || v.accuracy > state.best_metric;
    if (improved) {
      state.best_metric = v.accuracy;
      state.bad_epochs = 0;
    } else {
      ++state.bad_epochs;
    }
    char row[512];
    std::snprintf(row, sizeof row, "%lld,%lld,%.6g,%.5f,%.5f,%.5f,%.5f,%.5f,%.5f,%.1f,%.1f,%.1f\n",
                  (long long)(epoch + 1), (long long)state.step, opt.lr(), seen ? loss_sum / seen : 0.0,
                  seen ? correct / seen : 0.0, v.loss, v.accuracy, v.macro_f1, v.macro_auc, epoch_s,
                  seen / std::max(epoch_s, 1e-9), elapsed());
    {
      std::string text;
      auto bytes = io::read_file(csv);
      text.assign(bytes.begin(), bytes.end());
      write_text(csv, text + row);
    }
    std::printf("epoch %lld: train loss %.4f acc %.4f | val loss %.4f acc %.4f macro-F1 %.4f AUC %.4f%s | %.0f s, "
                "elapsed %s\n",
                (long long)(epoch + 1), seen ? loss_sum / seen : 0.0, seen ? correct / seen : 0.0, v.loss, v.accuracy,
                v.macro_f1, v.macro_auc, improved ? " (best)" : "", epoch_s, hms(elapsed()).c_str());
    std::fflush(stdout);
    if (improved) save("best");
    save("last");
    if (state.bad_epochs >= c.patience) {
      stop = true;
      stop_reason = "early stopping (no val improvement in " + std::to_string(c.patience) + " epochs)";
    }
  }
  std::printf("done: %s; best val accuracy %.4f; %lld steps in %s; checkpoints in %s (best.safetensors, "
              "last.safetensors)\n",
              stop_reason.c_str(), state.best_metric, (long long)state.step, hms(elapsed()).c_str(), out.c_str());
  return 0;
}

}  // namespace adnn_fer
