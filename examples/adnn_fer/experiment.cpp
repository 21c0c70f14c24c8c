// adnn-fer experiment and compare: runs over seeds with their statistics (fer.hpp).
//   experiment seeds     one train + eval per seed, then mean ± std (n − 1) of accuracy,
//                        macro-F1 and macro AUC
//   experiment ablation  the paper's Table 4 ladder at the CPU scale (--ladder nano: its
//                        ingredients on adnn_fer_nano's VGG backbone), each rung over the seeds,
//                        each rung against the one above it by a paired t-test (Bonferroni)
//   compare A B [C...]   run sets: paired t-test over the seeds they share, Bonferroni over the
//                        comparisons; single runs: McNemar's test on their per-sample predictions
// The statistics are the library's (include/adnn/metrics/statistics.hpp, Boost.Math).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kMetrics{"accuracy", "macro_f1", "macro_auc"};

std::vector<uint8_t> bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// --seeds: comma-separated integers >= 0, no repeats.
std::vector<int64_t> parse_seeds(const Args& a) {
  const std::string s = a.get("seeds", "42,123,256,789,1024");
  std::vector<int64_t> seeds;
  std::stringstream ss(s);
  std::string w;
  while (std::getline(ss, w, ',')) {
    try {
      seeds.push_back(parse_int64(w, a.cmd + " --seeds", 0));
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    if (std::count(seeds.begin(), seeds.end(), seeds.back()) > 1)
      throw UsageError(a.cmd + " --seeds: seed " + w + " is given twice");
  }
  if (seeds.empty() || s.back() == ',') throw UsageError(a.cmd + " --seeds: '" + s + "' is not a list of seeds");
  return seeds;
}

// One run's numbers: the seed directory's result.json (a flat JSON object of strings).
struct SeedResult {
  int64_t seed = 0;
  std::map<std::string, double> m;  // kMetrics
  bool reused = false;              // --resume: trained by an earlier session of the experiment
};

// A rung of the ablation (or the one run set of `seeds`): train flags set for all its runs.
struct RunSet {
  std::string name, label;
  std::map<std::string, std::string> flags;
  std::vector<SeedResult> results;
};

// The ablation ladders: each rung adds one component to the one above. "paper": the paper's
// Table 4 at the CPU scale (ResNet baseline, + EfficientNet, + CBAM, + Transformer, + compound
// loss); "nano": the same ingredients on adnn_fer_nano's own VGG backbone, whose last rung is
// adnn_fer_nano itself.
std::vector<RunSet> ablation_rungs(const std::string& ladder) {
  const bool nano = ladder == "nano";
  const std::map<std::string, std::string> base{
      {"backbone", nano ? nn::fer_config("adnn_fer_nano").backbone : std::string("resnet_nano")},
      {"cbam", "off"},
      {"transformer", "off"},
      {"loss", "ce"}};
  std::vector<RunSet> r;
  auto add = [&](std::string name, std::string label, std::string k, std::string v) {
    std::map<std::string, std::string> f = r.empty() ? base : r.back().flags;
    if (!k.empty()) f[k] = v;
    r.push_back({std::move(name), std::move(label), std::move(f), {}});
  };
  if (nano) {
    add("vgg", "VGG baseline", "", "");
  } else {
    add("resnet", "ResNet baseline", "", "");
    add("efficientnet", "+ EfficientNet", "backbone", "efficientnet_nano");
  }
  add("cbam", "+ CBAM", "cbam", "on");
  add("transformer", "+ Transformer", "transformer", "on");
  add("compound_loss", "+ compound loss", "loss", "compound");
  return r;
}

// The train command of seed `seed` in `dir`: the experiment's train flags and `set`'s.
Args train_args(const Args& a, const RunSet& set, int64_t seed, const std::string& dir, bool force) {
  Args t;
  t.cmd = "train";
  for (auto& [k, v] : a.kv)
    if (k != "seeds" && k != "out" && k != "force" && k != "resume" && k != "tta" && k != "ladder") t.kv[k] = v;
  for (auto& [k, v] : set.flags) t.kv[k] = v;
  t.kv["seed"] = std::to_string(seed);
  t.kv["out"] = dir;
  if (force) t.kv["force"] = "";
  t.words.push_back("train");
  for (auto& [k, v] : t.kv) {
    t.words.push_back("--" + k);
    if (!v.empty() || k != "force") t.words.push_back(v);
  }
  return t;
}

// --resume: whether seed `seed`'s run in `dir` finished and is kept. Its result.json is
// written after its evaluation, so a run without one was interrupted: it is trained again
// from the start. A finished run is kept only if its config.json holds the settings this
// experiment's train command would store (the model, the recipe with this binary's defaults,
// run.*); another recipe is refused rather than mixed into the statistics.
bool finished_run(const Args& a, const RunSet& set, int64_t seed, const std::string& dir) {
  if (!fs::exists(dir + "/result.json")) {
    if (fs::exists(dir))
      std::printf("== %s: %s has no result.json (its run did not finish): training seed %lld again\n",
                  set.label.c_str(), dir.c_str(), (long long)seed);
    return false;
  }
  for (const char* f : {"config.json", "best.safetensors"})
    ADNN_CHECK(fs::is_regular_file(dir + "/" + f), "experiment --resume: ", dir, " has result.json but no ", f);
  const std::string cj = dir + "/config.json";
  const auto was = read_run_config(cj);
  std::string diff;
  for (const auto& [k, v] : fresh_run_settings(train_args(a, set, seed, dir, false))) {
    const auto it = was.find(k);
    const std::string w = it == was.end() ? "(absent)" : it->second;
    if (w != v) diff += "; " + k + " " + w + " there, " + v + " here";
  }
  if (!diff.empty())
    throw UsageError("experiment --resume: " + cj + " is not the run this experiment trains for seed " +
                     std::to_string(seed) + ": " + diff.substr(2) + " (give the same train flags, or a new --out)");
  std::printf("== %s: seed %lld finished in an earlier session (%s): evaluated again, not retrained\n",
              set.label.c_str(), (long long)seed, dir.c_str());
  return true;
}

// Trains seed `seed` into `dir` (unless `trained`) with the experiment's train flags and
// `set`'s, evaluates its best checkpoint on the fixed val slice (eval --limit = --val-limit,
// the same images for every seed) and writes dir/result.json.
SeedResult run_seed(const Args& a, const RunSet& set, int64_t seed, const std::string& dir, bool trained) {
  if (!trained) {
    fs::remove(dir + "/result.json");  // an old run's, until this one is evaluated
    // an unfinished run of --resume is replaced
    const Args t = train_args(a, set, seed, dir, a.has("force") || (a.has("resume") && fs::exists(dir)));
    std::printf("\n== %s: %s\n", set.label.c_str(), t.command().c_str());
    std::fflush(stdout);
    const int rc = cmd_train(t);
    ADNN_CHECK(rc == 0, "experiment: the run for seed ", seed, " in ", dir, " stopped with status ", rc);
  }
  Args e;
  e.cmd = "eval";
  e.kv["checkpoint"] = dir + "/best.safetensors";
  e.kv["out"] = dir;
  for (const char* k : {"data", "device", "workers", "tta"})
    if (a.has(k)) e.kv[k] = a.get(k);
  if (a.num("val-limit", 0) > 0) e.kv["limit"] = a.get("val-limit");
  const EvalReport r = run_eval(e);
  SeedResult s{seed, {{"accuracy", r.accuracy}, {"macro_f1", r.macro_f1}, {"macro_auc", r.macro_auc}}, trained};
  std::map<std::string, std::string> j{{"seed", std::to_string(seed)},
                                       {"samples", std::to_string(r.samples)},
                                       {"checkpoint", e.kv["checkpoint"]},
                                       {"predictions", "eval_val_predictions.csv"},
                                       {"tta", nn::tta_name(r.tta)}};
  for (auto& [k, v] : s.m) j[k] = fmt("%.17g", v);
  io::write_file_atomic(dir + "/result.json", bytes(io::write_json_object(j)));
  return s;
}

// mean ± std over the runs of a set; NaN when a run has none (an undefined AUC).
metrics::MeanStd summarise(const std::vector<SeedResult>& rs, const std::string& metric) {
  std::vector<double> v;
  for (auto& r : rs) v.push_back(r.m.at(metric));
  for (double x : v)
    if (!std::isfinite(x)) return {int64_t(v.size()), std::nan(""), std::nan("")};
  return metrics::mean_std(v);
}

std::string pm(const metrics::MeanStd& s) {
  if (std::isnan(s.mean)) return "n/a";
  return fmt("%.4f", s.mean) + " ± " + fmt("%.4f", s.std);
}

// Values of `metric` over the seeds both sets have, in seed order: (a, b).
std::pair<std::vector<double>, std::vector<double>> paired(const std::vector<SeedResult>& a,
                                                           const std::vector<SeedResult>& b, const std::string& metric,
                                                           std::vector<int64_t>& seeds) {
  std::map<int64_t, double> mb;
  for (auto& r : b) mb[r.seed] = r.m.at(metric);
  std::map<int64_t, double> ma;
  for (auto& r : a) ma[r.seed] = r.m.at(metric);
  std::pair<std::vector<double>, std::vector<double>> out;
  for (auto& [seed, v] : ma)
    if (mb.count(seed)) {
      seeds.push_back(seed);
      out.first.push_back(v);
      out.second.push_back(mb[seed]);
    }
  return out;
}

struct TTestRow {
  std::string a, b;  // b is compared against a: differences b − a
  std::vector<int64_t> seeds;
  metrics::PairedTTest t;
  double p_bonferroni = 1;
};

std::string ttest_json(const TTestRow& r, const std::string& metric, int64_t comparisons) {
  std::ostringstream o;
  o << "{\"a\": " << json_quote(r.a) << ", \"b\": " << json_quote(r.b) << ", \"metric\": " << json_quote(metric)
    << ", \"seeds\": [";
  for (size_t i = 0; i < r.seeds.size(); ++i) o << (i ? ", " : "") << r.seeds[i];
  o << "], \"mean_diff\": " << json_number(r.t.mean_diff) << ", \"sd_diff\": " << json_number(r.t.sd_diff)
    << ", \"t\": " << (std::isfinite(r.t.t) ? json_number(r.t.t) : std::string("null"))  // ±inf: sd 0
    << ", \"df\": " << json_number(r.t.df) << ", \"p\": " << json_number(r.t.p_value)
    << ", \"comparisons\": " << comparisons << ", \"p_bonferroni\": " << json_number(r.p_bonferroni) << "}";
  return o.str();
}

std::string ttest_text(const TTestRow& r) {
  return fmt("%+.4f", r.t.mean_diff) + " | " +
         (std::isinf(r.t.t) ? std::string(r.t.t > 0 ? "+inf" : "-inf") : fmt("%.3f", r.t.t)) + " | " +
         fmt("%.0f", r.t.df) + " | " + fmt("%.4g", r.t.p_value) + " | " + fmt("%.4g", r.p_bonferroni);
}

// Paired t-tests of sets[i] against sets[i − 1] (ladder) or against sets[0], over their common
// seeds, Bonferroni-corrected over the comparisons made (those with ≥ 2 common seeds).
std::vector<TTestRow> ttests(const std::vector<RunSet>& sets, const std::string& metric, bool ladder) {
  std::vector<TTestRow> rows;
  for (size_t i = 1; i < sets.size(); ++i) {
    const RunSet& a = ladder ? sets[i - 1] : sets[0];
    TTestRow r{a.name, sets[i].name, {}, {}, 1};
    auto [va, vb] = paired(a.results, sets[i].results, metric, r.seeds);
    if (va.size() < 2) continue;  // no test with fewer than 2 pairs
    r.t = metrics::paired_t_test(vb, va);
    rows.push_back(r);
  }
  for (auto& r : rows) r.p_bonferroni = metrics::bonferroni(r.t.p_value, int64_t(rows.size()));
  return rows;
}

// The seeds of `s` an earlier session trained (--resume), as "42, 123" ("" if none).
std::string reused_seeds(const RunSet& s) {
  std::string seeds;
  for (auto& r : s.results)
    if (r.reused) seeds += (seeds.empty() ? "" : ", ") + std::to_string(r.seed);
  return seeds;
}

// experiment.json and experiment.md in `out`, and the table printed.
void write_experiment(const Args& a, const std::string& kind, const std::string& out, const std::vector<RunSet>& sets,
                      const std::vector<int64_t>& seeds) {
  const std::vector<TTestRow> tests = kind == "ablation" ? ttests(sets, "accuracy", true) : std::vector<TTestRow>{};
  std::ostringstream j, md;
  j << "{\n  \"kind\": " << json_quote(kind)
    << (kind == "ablation" ? ",\n  \"ladder\": " + json_quote(a.get("ladder", "paper")) : std::string())
    << ",\n  \"command\": " << json_quote(a.command()) << ",\n  \"seeds\": [";
  for (size_t i = 0; i < seeds.size(); ++i) j << (i ? ", " : "") << seeds[i];
  j << "],\n  \"std_is\": \"the sample standard deviation (n - 1)\",\n  \"runs\": [\n";
  md << "| run | seeds | accuracy | macro-F1 | macro AUC |"
     << (kind == "ablation" ? " Δ accuracy vs row above | t | df | p | p (Bonferroni) |" : "")
     << "\n|---|---|---|---|---|" << (kind == "ablation" ? "---|---|---|---|---|" : "") << "\n";
  for (size_t i = 0; i < sets.size(); ++i) {
    const RunSet& s = sets[i];
    j << "    {\"name\": " << json_quote(s.name) << ", \"label\": " << json_quote(s.label)
      << ", \"dir\": " << json_quote(kind == "ablation" ? out + "/" + s.name : out) << ", \"flags\": {";
    size_t n = 0;
    for (auto& [k, v] : s.flags) j << (n++ ? ", " : "") << json_quote(k) << ": " << json_quote(v);
    j << "},\n     \"per_seed\": {";
    for (size_t r = 0; r < s.results.size(); ++r) {
      j << (r ? ", " : "") << "\"" << s.results[r].seed << "\": {";
      for (size_t m = 0; m < kMetrics.size(); ++m)
        j << (m ? ", " : "") << json_quote(kMetrics[m]) << ": " << json_number(s.results[r].m.at(kMetrics[m]));
      j << "}";
    }
    j << "},\n     \"reused\": [" << reused_seeds(s) << "]";  // --resume: trained by an earlier session
    md << "| " << s.label << " | " << s.results.size();
    for (const std::string& m : kMetrics) {
      const metrics::MeanStd ms = summarise(s.results, m);
      j << ",\n     " << json_quote(m) << ": {\"mean\": " << json_number(ms.mean)
        << ", \"std\": " << json_number(ms.std) << ", \"n\": " << ms.n << "}";
      md << " | " << pm(ms);
    }
    if (kind == "ablation") {
      const TTestRow* t = nullptr;
      for (auto& r : tests)
        if (r.b == s.name) t = &r;
      if (t) j << ",\n     \"vs_previous\": " << ttest_json(*t, "accuracy", int64_t(tests.size()));
      md << " | " << (t ? ttest_text(*t) : std::string(i == 0 ? "(baseline) | | | |" : "(fewer than 2 seeds) | | | |"));
    }
    j << "}" << (i + 1 < sets.size() ? "," : "") << "\n";
    md << " |\n";
  }
  j << "  ]\n}\n";
  md << "\nmean ± sample standard deviation (n − 1) over the seeds ";
  for (size_t i = 0; i < seeds.size(); ++i) md << (i ? ", " : "") << seeds[i];
  md << "; each run's best checkpoint evaluated on "
     << (a.num("val-limit", 0) > 0 ? "a fixed class-stratified slice of " + a.get("val-limit") + " val images"
                                   : std::string("all of val"))
     << (a.get("tta", "none") != "none" ? ", " + a.get("tta") + " TTA" : std::string()) << ".\n";
  for (const RunSet& s : sets) {
    const std::string reused = reused_seeds(s);
    if (!reused.empty())
      md << s.label << ": seed" << (reused.find(',') != std::string::npos ? "s " : " ") << reused
         << " trained by an earlier session of this experiment (`--resume`), evaluated again by this one.\n";
  }
  if (kind == "ablation")
    md << "Each rung against the one above it: two-sided paired t-test over the seeds on accuracy, "
          "p Bonferroni-corrected over the "
       << tests.size() << " comparisons.\n";
  md << "\nCommand: `" << a.command() << "`\n";
  io::write_file_atomic(out + "/experiment.json", bytes(j.str()));
  io::write_file_atomic(out + "/experiment.md", bytes(md.str()));
  std::printf("\n%s\nwrote %s/experiment.json and %s/experiment.md\n", md.str().c_str(), out.c_str(), out.c_str());
}

// ---------------------------------------------------------------- compare's inputs
// A run set: DIR/seed_<N>/result.json for each seed run.
std::vector<SeedResult> read_run_set(const std::string& dir) {
  std::vector<SeedResult> rs;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (!e.is_directory() || n.rfind("seed_", 0) != 0 || !fs::exists(e.path() / "result.json")) continue;
    const std::string path = (e.path() / "result.json").string();
    const auto j = io::read_json_object(path);
    SeedResult s;
    for (const std::string& k : {std::string("seed"), kMetrics[0], kMetrics[1], kMetrics[2]})
      ADNN_CHECK(j.count(k), "compare: ", path, " has no \"", k, "\"");
    s.seed = parse_int64(j.at("seed"), path + ": seed");
    for (const std::string& k : kMetrics) s.m[k] = parse_double(j.at(k), path + ": " + k, NonFinite::allow);
    rs.push_back(s);
  }
  std::sort(rs.begin(), rs.end(), [](auto& x, auto& y) { return x.seed < y.seed; });
  return rs;
}

// A single run: eval's predictions CSV, image -> correct.
std::map<std::string, bool> read_predictions(const std::string& path) {
  std::ifstream f(path);
  ADNN_CHECK(f, "compare: cannot read ", path);
  std::string line;
  std::getline(f, line);
  ADNN_CHECK(line.rfind("image,label,predicted,correct", 0) == 0, "compare: ", path,
             " is not eval's predictions CSV (header image,label,predicted,correct,...)");
  std::map<std::string, bool> m;
  int64_t ln = 1;
  while (std::getline(f, line)) {
    ++ln;
    std::string image;
    size_t at = 0;
    if (!line.empty() && line[0] == '"') {  // RFC 4180 quoting
      for (at = 1; at < line.size(); ++at) {
        if (line[at] == '"' && at + 1 < line.size() && line[at + 1] == '"') {
          image += '"';
          ++at;
        } else if (line[at] == '"') {
          break;
        } else {
          image += line[at];
        }
      }
      at += 1;
    } else {
      at = line.find(',');
      image = line.substr(0, at);
    }
    std::vector<std::string> cells;
    std::stringstream ss(at < line.size() ? line.substr(at + 1) : std::string());
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    ADNN_CHECK(cells.size() >= 3 && (cells[2] == "0" || cells[2] == "1"), "compare: ", path, ":", ln,
               ": expected image,label,predicted,correct(0|1),...");
    ADNN_CHECK(!m.count(image), "compare: ", path, ":", ln, ": image ", image, " appears twice");
    m[image] = cells[2] == "1";
  }
  ADNN_CHECK(!m.empty(), "compare: ", path, " has no predictions");
  return m;
}

}  // namespace

int cmd_experiment(const Args& a) {
  if (a.positional.size() != 1 || (a.positional[0] != "seeds" && a.positional[0] != "ablation"))
    throw UsageError("experiment: give one KIND, seeds or ablation");
  const std::string kind = a.positional[0];
  const std::vector<int64_t> seeds = parse_seeds(a);
  std::vector<RunSet> sets;
  if (kind == "ablation") {
    for (const char* k : {"backbone", "cbam", "transformer", "loss"})
      if (a.has(k)) throw UsageError(std::string("experiment ablation: --") + k + " is set by each rung of the ladder");
    sets = ablation_rungs(a.get("ladder", "paper"));
  } else {
    if (a.has("ladder")) throw UsageError("experiment seeds: --ladder is a flag of experiment ablation");
    sets.push_back({a.get("config", "adnn_fer_nano"), a.get("config", "adnn_fer_nano"), {}, {}});
  }
  const std::string out = a.get("out", "runs/experiment_" + kind);
  if (a.has("resume") && a.has("force"))
    throw UsageError("experiment: --resume keeps the finished runs in --out, --force replaces them: give one");
  if (a.has("resume") && (!fs::is_directory(out) || fs::is_empty(out)))
    throw UsageError("experiment --resume: --out " + out + " holds no experiment to continue");
  if (fs::exists(out) && !fs::is_empty(out) && !a.has("force") && !a.has("resume"))
    throw UsageError("experiment: --out " + out +
                     " is not empty (give a new directory, --resume to continue its experiment, or --force to "
                     "replace its runs)");
  std::error_code ec;
  fs::create_directories(out, ec);
  ADNN_CHECK(!ec && fs::is_directory(out), "experiment: --out '", out, "' cannot be created",
             ec ? " (" + ec.message() + ")" : std::string());
  auto seed_dir = [&](const RunSet& s, int64_t seed) {
    return (kind == "ablation" ? out + "/" + s.name : out) + "/seed_" + std::to_string(seed);
  };
  // --resume: every finished run is checked before anything trains (a refusal costs no run)
  std::vector<std::vector<char>> finished(sets.size(), std::vector<char>(seeds.size(), 0));
  if (a.has("resume"))
    for (size_t i = 0; i < sets.size(); ++i)
      for (size_t k = 0; k < seeds.size(); ++k)
        finished[i][k] = finished_run(a, sets[i], seeds[k], seed_dir(sets[i], seeds[k]));
  for (size_t i = 0; i < sets.size(); ++i)
    for (size_t k = 0; k < seeds.size(); ++k)
      sets[i].results.push_back(run_seed(a, sets[i], seeds[k], seed_dir(sets[i], seeds[k]), finished[i][k]));
  write_experiment(a, kind, out, sets, seeds);
  return 0;
}

int cmd_compare(const Args& a) {
  if (a.positional.size() < 2) throw UsageError("compare: give at least two run sets or two predictions CSVs");
  std::vector<RunSet> sets;
  std::vector<std::pair<std::string, std::map<std::string, bool>>> singles;
  for (const std::string& p : a.positional) {
    if (fs::is_directory(p)) {
      RunSet s{p, p, {}, read_run_set(p)};
      ADNN_CHECK(!s.results.empty(), "compare: ", p,
                 " holds no seed_<N>/result.json (run sets are written by adnn-fer experiment)");
      sets.push_back(std::move(s));
    } else {
      require_regular_file("compare: predictions", p);
      singles.emplace_back(p, read_predictions(p));
    }
  }
  ADNN_CHECK(sets.empty() || singles.empty(),
             "compare: give run sets (directories) or single runs' predictions "
             "(CSV files), not both");
  const int64_t m = int64_t(a.positional.size()) - 1;  // the first against each other
  std::ostringstream j, md;
  j << "{\n  \"command\": " << json_quote(a.command()) << ",\n";
  if (!sets.empty()) {
    const std::string metric = a.get("metric", "accuracy");
    const std::vector<TTestRow> rows = ttests(sets, metric, false);
    for (size_t i = 1; i < sets.size(); ++i) {
      bool tested = false;
      for (auto& r : rows) tested = tested || r.b == sets[i].name;
      ADNN_CHECK(tested, "compare: ", sets[0].name, " and ", sets[i].name,
                 " share fewer than 2 seeds: a paired t-test needs at least 2");
    }
    j << "  \"test\": \"paired t-test (two-sided) over common seeds, Bonferroni over " << rows.size()
      << " comparisons\",\n  \"tests\": [\n";
    md << "| A | B | " << metric << " A | " << metric
       << " B | mean diff (B − A) | t | df | p | p (Bonferroni, m = " << rows.size()
       << ") |\n|---|---|---|---|---|---|---|---|---|\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const RunSet* b = nullptr;
      for (auto& s : sets)
        if (s.name == rows[i].b) b = &s;
      j << "    " << ttest_json(rows[i], metric, int64_t(rows.size())) << (i + 1 < rows.size() ? "," : "") << "\n";
      md << "| " << rows[i].a << " | " << rows[i].b << " | " << pm(summarise(sets[0].results, metric)) << " | "
         << pm(summarise(b->results, metric)) << " | " << ttest_text(rows[i]) << " |\n";
    }
  } else {
    j << "  \"test\": \"McNemar (continuity-corrected chi-square, 1 df; exact binomial), Bonferroni over " << m
      << " comparisons\",\n  \"tests\": [\n";
    md << "| A | B | images | only A right | only B right | chi2 | p | p exact | p (Bonferroni, m = " << m
       << ") | p exact (Bonferroni) |\n|---|---|---|---|---|---|---|---|---|---|\n";
    const auto& [na, pa] = singles[0];
    for (size_t i = 1; i < singles.size(); ++i) {
      const auto& [nb, pb] = singles[i];
      std::vector<bool> ca, cb;
      for (auto& [img, ok] : pa) {
        const auto it = pb.find(img);
        ADNN_CHECK(it != pb.end(), "compare: ", img, " is in ", na, " but not in ", nb,
                   " (McNemar needs the same images: evaluate both on the same split and --limit)");
        ca.push_back(ok);
        cb.push_back(it->second);
      }
      ADNN_CHECK(pb.size() == pa.size(), "compare: ", nb, " has ", pb.size(), " images, ", na, " ", pa.size(),
                 " (McNemar needs the same images)");
      const metrics::McNemar t = metrics::mcnemar(ca, cb);
      const double pb_ = metrics::bonferroni(t.p_value, m), pe = metrics::bonferroni(t.exact_p_value, m);
      j << "    {\"a\": " << json_quote(na) << ", \"b\": " << json_quote(nb) << ", \"images\": " << t.n
        << ", \"both_right\": " << t.both_right << ", \"only_a\": " << t.only_a << ", \"only_b\": " << t.only_b
        << ", \"both_wrong\": " << t.both_wrong << ", \"chi2\": " << json_number(t.chi2)
        << ", \"p\": " << json_number(t.p_value) << ", \"p_exact\": " << json_number(t.exact_p_value)
        << ", \"comparisons\": " << m << ", \"p_bonferroni\": " << json_number(pb_)
        << ", \"p_exact_bonferroni\": " << json_number(pe) << "}" << (i + 1 < singles.size() ? "," : "") << "\n";
      md << "| " << na << " | " << nb << " | " << t.n << " | " << t.only_a << " | " << t.only_b << " | "
         << fmt("%.4f", t.chi2) << " | " << fmt("%.4g", t.p_value) << " | " << fmt("%.4g", t.exact_p_value) << " | "
         << fmt("%.4g", pb_) << " | " << fmt("%.4g", pe) << " |\n";
    }
  }
  j << "  ]\n}\n";
  std::printf("%s", md.str().c_str());
  if (a.has("out")) {
    const std::string out = a.get("out");
    std::error_code ec;
    fs::create_directories(out, ec);
    ADNN_CHECK(!ec && fs::is_directory(out), "compare: --out '", out, "' cannot be created");
    io::write_file_atomic(out + "/compare.json", bytes(j.str()));
    io::write_file_atomic(out + "/compare.md", bytes(md.str() + "\nCommand: `" + a.command() + "`\n"));
    std::printf("wrote %s/compare.json and %s/compare.md\n", out.c_str(), out.c_str());
  }
  return 0;
}

}  // namespace adnn_fer
