// adnn-fer: an evaluation report as JSON, as a printed table, and the confusion matrix as a
// PNG (fer.hpp).
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

namespace {
std::string jnum(double v) {
  if (std::isnan(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}
std::string jstr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}
}  // namespace

std::string report_json(const EvalReport& r, const std::map<std::string, std::string>& extra) {
  std::ostringstream o;
  o << "{\n";
  for (auto& [k, v] : extra) o << "  " << jstr(k) << ": " << jstr(v) << ",\n";
  o << "  \"samples\": " << r.samples << ",\n  \"accuracy\": " << jnum(r.accuracy)
    << ",\n  \"macro_f1\": " << jnum(r.macro_f1) << ",\n  \"macro_auc_ovr\": " << jnum(r.macro_auc)
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
  std::printf("samples %lld  accuracy %.4f  macro-F1 %.4f  macro AUC (one-vs-rest) %.4f  loss %.4f\n",
              (long long)r.samples, r.accuracy, r.macro_f1, r.macro_auc, r.log_loss);
  std::printf("%-10s %9s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "auc", "support");
  for (size_t c = 0; c < r.classes.size(); ++c)
    std::printf("%-10s %9.4f %9.4f %9.4f %9.4f %8lld\n", r.classes[c].c_str(), r.precision[c], r.recall[c], r.f1[c],
                r.auc[c], (long long)r.support[c]);
  std::printf("confusion matrix (rows true, columns predicted):\n%-10s", "");
  for (auto& c : r.classes) std::printf(" %8.8s", c.c_str());
  std::printf("\n");
  for (size_t i = 0; i < r.confusion.size(); ++i) {
    std::printf("%-10s", r.classes[i].c_str());
    for (int64_t v : r.confusion[i]) std::printf(" %8lld", (long long)v);
    std::printf("\n");
  }
}

// ---------------------------------------------------------------- confusion-matrix PNG
// Text in adnn::explain's 3×5 bitmap font, gray level `shade` (fer.hpp).
void text(data::Image& im, int x, int y, const std::string& s, int scale, float shade) {
  explain::draw_text(im, x, y, s, scale, {shade, shade, shade});
}

void write_confusion_png(const std::string& path, const EvalReport& r) {
  const int K = int(r.classes.size()), cell = 64, left = 90, top = 50, s = 2;
  data::Image im(top + K * cell + 30, left + K * cell + 10, 3, 255.f);
  text(im, left, 6, "PREDICTED", s, 0);
  for (int j = 0; j < K; ++j) text(im, left + j * cell + 8, 28, r.classes[size_t(j)].substr(0, 3), s, 0);
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
      const int w = int(std::strlen(buf)) * 4 * s;
      text(im, left + j * cell + (cell - w) / 2, top + i * cell + cell / 2 - 5, buf, s, v > 0.5f ? 255.f : 0.f);
    }
  }
  text(im, left, top + K * cell + 8, "ROWS TRUE  COLUMNS PREDICTED", s, 0);
  data::write_png(path, im);
}

}  // namespace adnn_fer
