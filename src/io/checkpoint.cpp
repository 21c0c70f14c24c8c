// Checkpoints (include/adnn/io/checkpoint.hpp).
#include <adnn/core/parse.hpp>
#include <adnn/io/checkpoint.hpp>

#include <cstdio>
#include <limits>
#include <random>
#include <sstream>

namespace adnn::io {

std::string state_path(const std::string& w) {
  const std::string ext = ".safetensors";
  ADNN_CHECK(w.size() > ext.size() && w.compare(w.size() - ext.size(), ext.size(), ext) == 0,
             "checkpoint: path must end in .safetensors, got ", w);
  return w.substr(0, w.size() - ext.size()) + ".state.safetensors";
}

namespace {
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
std::string meta(const SafeTensors& st, const std::string& k, const std::string& file) {
  auto it = st.metadata.find(k);
  ADNN_CHECK(it != st.metadata.end(), "checkpoint: ", file, " lacks '", k, "'");
  return it->second;
}
}  // namespace

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer& opt,
                     const TrainState& s, const std::vector<std::pair<std::string, Tensor>>& extra) {
  std::random_device rd;
  char id[40];
  std::snprintf(id, sizeof id, "%08x%08x%08x", rd(), rd(), unsigned(s.step));
  std::map<std::string, std::string> m = s.config;
  m["checkpoint.id"] = id;
  m["train.step"] = std::to_string(s.step);
  m["train.epoch"] = std::to_string(s.epoch);
  m["train.best_metric"] = num(s.best_metric);
  m["train.bad_epochs"] = std::to_string(s.bad_epochs);
  for (int i = 0; i < 4; ++i) m["rng." + std::to_string(i)] = std::to_string(s.rng[size_t(i)]);
  m["optimizer.steps"] = std::to_string(opt.steps());
  m["optimizer.lr"] = num(opt.lr());
  auto tensors = opt.state_tensors();
  for (auto& [n, t] : extra) tensors.push_back({"extra." + n, t});
  // state first, weights last: the weights file (what predict reads) is never ahead of a
  // state that could resume it
  save_safetensors(state_path(path), tensors, m);
  std::map<std::string, std::string> wm = s.config;  // the config rebuilds the model from the weights alone
  wm["checkpoint.id"] = id;
  wm["format"] = "adnn";
  save_safetensors(path, model.state_dict(), wm);
}

TrainState load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer& opt,
                           std::vector<std::pair<std::string, Tensor>>* extra) {
  SafeTensors w = load_safetensors(path);
  const std::string sp = state_path(path);
  SafeTensors st = load_safetensors(sp);
  ADNN_CHECK(meta(w, "checkpoint.id", path) == meta(st, "checkpoint.id", sp), "checkpoint: ", path, " and ", sp,
             " come from different saves (interrupted write?); use the previous checkpoint");
  model.load_state_dict(w.tensors, true);
  opt.load_state_tensors(st);
  auto key = [&](const std::string& k) { return "checkpoint " + sp + ": '" + k + "'"; };
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  opt.set_lr(parse_double(meta(st, "optimizer.lr", sp), key("optimizer.lr"), NonFinite::refuse, 0.0));
  TrainState s;
  s.step = parse_int64(meta(st, "train.step", sp), key("train.step"), 0, kMax);
  s.epoch = parse_int64(meta(st, "train.epoch", sp), key("train.epoch"), 0, kMax);
  // NaN until a first evaluation
  s.best_metric = parse_double(meta(st, "train.best_metric", sp), key("train.best_metric"), NonFinite::allow);
  s.bad_epochs = parse_int64(meta(st, "train.bad_epochs", sp), key("train.bad_epochs"), 0, kMax);
  for (int i = 0; i < 4; ++i) {
    const std::string k = "rng." + std::to_string(i);
    s.rng[size_t(i)] = parse_uint64(meta(st, k, sp), key(k));
  }
  for (auto& [k, v] : st.metadata)
    if (k.rfind("train.", 0) && k.rfind("rng.", 0) && k.rfind("optimizer.", 0) && k != "checkpoint.id")
      s.config[k] = v;
  if (extra)
    for (auto& [n, t] : *extra) {
      const Tensor* src = st.find("extra." + n);
      ADNN_CHECK(src, "checkpoint: ", sp, " lacks extra tensor '", n, "'");
      ADNN_CHECK(src->sizes() == t.sizes(), "checkpoint: extra tensor '", n, "' has shape ", shape_str(src->sizes()),
                 ", expected ", shape_str(t.sizes()));
      NoGradGuard ng;
      t.copy_(src->to(t.device()).to(t.dtype()));
    }
  return s;
}

}  // namespace adnn::io
