// adnn-fer: an evaluation report as JSON, as a printed table, and the confusion matrix as a
// PNG (fer.hpp).
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

#include <adnn/explain/render.hpp>

#include "fer.hpp"

namespace adnn_fer {

using namespace adnn;

std::string json_number(double v) {
  if (std::isnan(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}
std::string json_quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

namespace {
const auto& jnum = json_number;
const auto& jstr = json_quote;
}  // namespace

int64_t EvalReport::predicted(size_t i) const {
  const size_t K = classes.size();
  size_t best = 0;
  for (size_t c = 1; c < K; ++c)
    if (probs[i * K + c] > probs[i * K + best]) best = c;
  return int64_t(best);
}

std::string report_json(const EvalReport& r, const std::map<std::string, std::string>& extra,
                        const std::map<std::string, std::string>& extra_json) {
  std::ostringstream o;
  o << "{\n";
  for (auto& [k, v] : extra) o << "  " << jstr(k) << ": " << jstr(v) << ",\n";
  for (auto& [k, v] : extra_json) o << "  " << jstr(k) << ": " << v << ",\n";
  o << "  \"tta\": " << jstr(nn::tta_name(r.tta)) << ",\n  \"samples\": " << r.samples
    << ",\n  \"accuracy\": " << jnum(r.accuracy) << ",\n  \"macro_f1\": " << jnum(r.macro_f1)
    << ",\n  \"macro_auc_ovr\": " << jnum(r.macro_auc) << ",\n  \"macro_precision\": " << jnum(r.macro_precision)
    << ",\n  \"macro_recall\": " << jnum(r.macro_recall) << ",\n  \"weighted_precision\": "
    << jnum(r.weighted_precision) << ",\n  \"weighted_recall\": " << jnum(r.weighted_recall)
    << ",\n  \"weighted_f1\": " << jnum(r.weighted_f1) << ",\n  \"support_total\": " << r.samples
    << ",\n  \"loss\": " << jnum(r.log_loss) << ",\n  \"per_class\": {\n";
  for (size_t c = 0; c < r.classes.size(); ++c)
    o << "    " << jstr(r.classes[c]) << ": {\"precision\": " << jnum(r.precision[c])
      << ", \"recall\": " << jnum(r.recall[c]) << ", \"f1\": " << jnum(r.f1[c]) << ", \"auc\": " << jnum(r.auc[c])
      << ", \"support\": " << r.support[c] << "}" << (c + 1 < r.classes.size() ? "," : "") << "\n";
  o << "  },\n  \"classes\": [";
  for (size_t c = 0; c < r.classes.size(); ++c) o << (c ? ", " : "") << jstr(r.classes[c]);
  o << "],\n  \"confusion_matrix\": [\n";
  for (size_t i = 0; i < r.confusion.size(); ++i) {
    o << "    [";
    for (size_t j = 0; j < r.confusion[i].size(); ++j) o << (j ? ", " : "") << r.confusion[i][j];
    o << "]" << (i + 1 < r.confusion.size() ? "," : "") << "\n";
  }
  o << "  ]\n}\n";
  return o.str();
}

void print_report(const EvalReport& r) {
  std::printf("samples %lld  accuracy %.4f  macro-F1 %.4f  macro AUC (one-vs-rest) %.4f  loss %.4f  TTA %s\n",
              (long long)r.samples, r.accuracy, r.macro_f1, r.macro_auc, r.log_loss, nn::tta_name(r.tta));
  std::printf("%-12s %9s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "auc", "support");
  for (size_t c = 0; c < r.classes.size(); ++c)
    std::printf("%-12s %9.4f %9.4f %9.4f %9.4f %8lld\n", r.classes[c].c_str(), r.precision[c], r.recall[c], r.f1[c],
                r.auc[c], (long long)r.support[c]);
  // as scikit-learn's classification_report: macro over the classes present, weighted by support
  std::printf("%-12s %9.4f %9.4f %9.4f %9.4f %8lld\n", "macro avg", r.macro_precision, r.macro_recall, r.macro_f1,
              r.macro_auc, (long long)r.samples);
  std::printf("%-12s %9.4f %9.4f %9.4f %9s %8lld\n", "weighted avg", r.weighted_precision, r.weighted_recall,
              r.weighted_f1, "", (long long)r.samples);
  std::printf("confusion matrix (rows true, columns predicted):\n%-10s", "");
  for (auto& c : r.classes) std::printf(" %8.8s", c.c_str());
  std::printf("\n");
  for (size_t i = 0; i < r.confusion.size(); ++i) {
    std::printf("%-10s", r.classes[i].c_str());
    for (int64_t v : r.confusion[i]) std::printf(" %8lld", (long long)v);
    std::printf("\n");
  }
}

std::string predictions_csv(const EvalReport& r) {
  std::ostringstream o;
  o << "image,label,predicted,correct";
  for (auto& c : r.classes) o << ",p_" << c;
  o << "\n";
  const size_t K = r.classes.size();
  char b[32];
  for (size_t i = 0; i < r.images.size(); ++i) {
    const int64_t p = r.predicted(i);
    std::string name = r.images[i];  // quoted when it holds a comma or a quote (RFC 4180)
    if (name.find_first_of(",\"\n") != std::string::npos) {
      std::string q = "\"";
      for (char ch : name) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      name = q + "\"";
    }
    o << name << "," << r.classes[size_t(r.labels[i])] << "," << r.classes[size_t(p)] << ","
      << (p == r.labels[i] ? 1 : 0);
    for (size_t c = 0; c < K; ++c) {
      std::snprintf(b, sizeof b, ",%.6g", double(r.probs[i * K + c]));
      o << b;
    }
    o << "\n";
  }
  return o.str();
}

// ---------------------------------------------------------------- confusion-matrix PNG
// Text in adnn::explain's 3×5 bitmap font, gray level `shade` (fer.hpp).
void text(data::Image& im, int x, int y, const std::string& s, int scale, float shade) {
  explain::draw_text(im, x, y, s, scale, {shade, shade, shade});
}

void write_confusion_png(const std::string& path, const EvalReport& r, const std::string& title) {
  const int K = int(r.classes.size()), cell = 64, left = 90, s = 2;
  const int title_h = title.empty() ? 0 : 22, top = 50 + title_h;
  data::Image im(top + K * cell + 30, left + K * cell + 10, 3, 255.f);
  if (!title.empty()) {  // scale 2 when it fits, else 1 (long checkpoint names)
    const int ts = explain::text_width(title, 2) + 8 <= im.width ? 2 : 1;
    text(im, 4, 6, title, ts, 0);
  }
  text(im, left, 6 + title_h, "PREDICTED", s, 0);
  for (int j = 0; j < K; ++j) text(im, left + j * cell + 8, 28 + title_h, r.classes[size_t(j)].substr(0, 3), s, 0);
  for (int i = 0; i < K; ++i) {
    text(im, 4, top + i * cell + cell / 2 - 5, r.classes[size_t(i)].substr(0, 8), s, 0);
    int64_t row = 0;
    for (int64_t v : r.confusion[size_t(i)]) row += v;
    for (int j = 0; j < K; ++j) {
      const double pct = row ? 100.0 * double(r.confusion[size_t(i)][size_t(j)]) / double(row) : 0.0;
      const float v = float(pct / 100.0);
      for (int y = 1; y < cell - 1; ++y)
        for (int x = 1; x < cell - 1; ++x)
        {
          im.at(top + i * cell + y, left + j * cell + x, 0) = 255.f * (1 - 0.9f * v);
          im.at(top + i * cell + y, left + j * cell + x, 1) = 255.f * (1 - 0.65f * v);
          im.at(top + i * cell + y, left + j * cell + x, 2) = 255.f * (1 - 0.25f * v);
        }
      char buf[16];
      std::snprintf(buf, sizeof buf, "%.1f%%", pct);
      const float shade = v > 0.5f ? 255.f : 0.f;
      int w = int(std::strlen(buf)) * 4 * s;
      text(im, left + j * cell + (cell - w) / 2, top + i * cell + cell / 2 - 12, buf, s, shade);
      std::snprintf(buf, sizeof buf, "%lld", (long long)r.confusion[size_t(i)][size_t(j)]);  // the count below
      w = int(std::strlen(buf)) * 4 * s;
      text(im, left + j * cell + (cell - w) / 2, top + i * cell + cell / 2 + 4, buf, s, shade);
    }
  }
  text(im, left, top + K * cell + 8, "ROWS TRUE  COLUMNS PREDICTED", s, 0);
  data::write_png(path, im);
}

// ---------------------------------------------------------------- training curves PNG
namespace {
constexpr std::array<float, 3> kTrainColour{31.f, 119.f, 180.f}, kValColour{255.f, 127.f, 14.f};  // matplotlib C0, C1

void dot(data::Image& im, int x, int y, std::array<float, 3> rgb, int r = 1) {
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx)
      if (y + dy >= 0 && y + dy < im.height && x + dx >= 0 && x + dx < im.width)
        for (int c = 0; c < 3; ++c) im.at(y + dy, x + dx, c) = rgb[size_t(c)];
}

void line(data::Image& im, int x0, int y0, int x1, int y1, std::array<float, 3> rgb) {
  const int n = std::max({std::abs(x1 - x0), std::abs(y1 - y0), 1});
  for (int i = 0; i <= n; ++i)
    dot(im, x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, rgb, 1);
}

std::string tick(double v) {
  char b[32];
  std::snprintf(b, sizeof b, std::abs(v) >= 10 ? "%.0f" : "%.2f", v);
  return b;
}

// One panel: x = epoch (1..E), the train and val series, y from the data's range.
void panel(data::Image& im, int x0, int y0, int w, int h, const std::string& title, const std::vector<double>& epochs,
           const std::vector<double>& train, const std::vector<double>& val) {
  const std::array<float, 3> black{0, 0, 0}, grey{200, 200, 200};
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* s : {&train, &val})
    for (double v : *s)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  const double e_max = std::max(2.0, epochs.empty() ? 2.0 : epochs.back());
  auto px = [&](double e) { return x0 + int(std::lround((e - 1) / (e_max - 1) * (w - 1))); };
  auto py = [&](double v) { return y0 + h - 1 - int(std::lround((v - lo) / (hi - lo) * (h - 1))); };
  explain::draw_text(im, x0, y0 - 22, title, 2, black);
  for (int i = 0; i <= 4; ++i) {  // horizontal grid lines with their values
    const double v = lo + (hi - lo) * i / 4;
    for (int x = x0; x < x0 + w; ++x) im.at(py(v), x, 0) = im.at(py(v), x, 1) = im.at(py(v), x, 2) = grey[0];
    explain::draw_text(im, x0 - explain::text_width(tick(v), 2) - 6, py(v) - 5, tick(v), 2, black);
  }
  line(im, x0, y0, x0, y0 + h - 1, black);
  line(im, x0, y0 + h - 1, x0 + w - 1, y0 + h - 1, black);
  const int step = std::max(1, int(e_max) / 8);
  for (int e = 1; e <= int(e_max); e += step)
    explain::draw_text(im, px(e) - explain::text_width(std::to_string(e), 2) / 2, y0 + h + 6, std::to_string(e), 2,
                       black);
  explain::draw_text(im, x0 + w / 2 - explain::text_width("EPOCH", 2) / 2, y0 + h + 24, "EPOCH", 2, black);
  for (auto [series, rgb] : {std::pair{&train, kTrainColour}, std::pair{&val, kValColour}}) {
    for (size_t i = 0; i < series->size(); ++i) {
      if (!std::isfinite((*series)[i])) continue;
      dot(im, px(epochs[i]), py((*series)[i]), rgb, 3);
      if (i > 0 && std::isfinite((*series)[i - 1]))
        line(im, px(epochs[i - 1]), py((*series)[i - 1]), px(epochs[i]), py((*series)[i]), rgb);
    }
  }
}
}  // namespace

void write_curves_png(const std::string& path, const std::vector<CurvePoint>& points) {
  std::vector<double> epochs, train_loss, val_loss, train_acc, val_acc;
  for (const CurvePoint& p : points) {
    epochs.push_back(double(p.epoch));
    train_loss.push_back(p.train_loss);
    val_loss.push_back(p.val_loss);
    train_acc.push_back(p.train_acc);
    val_acc.push_back(p.val_acc);
  }
  const int w = 420, h = 260, left = 80, top = 60, gap = 110;
  data::Image im(top + h + 70, left + w + gap + w + 30, 3, 255.f);
  panel(im, left, top, w, h, "LOSS", epochs, train_loss, val_loss);
  panel(im, left + w + gap, top, w, h, "ACCURACY", epochs, train_acc, val_acc);
  // legend
  const int lx = left + w - 200;
  dot(im, lx, 14, kTrainColour, 4);
  explain::draw_text(im, lx + 10, 9, "TRAIN", 2, kTrainColour);
  dot(im, lx + 90, 14, kValColour, 4);
  explain::draw_text(im, lx + 100, 9, "VAL", 2, kValColour);
  data::write_png(path, im);
}

}  // namespace adnn_fer
