// adnn-fer: an evaluation report as JSON, as a printed table, and the confusion matrix as a
// PNG (fer.hpp).
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

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
namespace {
// 3×5 glyphs, one 3-bit row each (bit 2 = left column)
const std::map<char, std::array<uint8_t, 5>>& glyphs() {
  static const std::map<char, std::array<uint8_t, 5>> g = {
      {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
      {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
      {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'%', {5, 1, 2, 4, 5}},
      {'A', {2, 5, 7, 5, 5}}, {'B', {6, 5, 6, 5, 6}}, {'C', {3, 4, 4, 4, 3}}, {'D', {6, 5, 5, 5, 6}},
      {'E', {7, 4, 6, 4, 7}}, {'F', {7, 4, 6, 4, 4}}, {'G', {3, 4, 5, 5, 3}}, {'H', {5, 5, 7, 5, 5}},
      {'I', {7, 2, 2, 2, 7}}, {'J', {1, 1, 1, 5, 2}}, {'K', {5, 5, 6, 5, 5}}, {'L', {4, 4, 4, 4, 7}},
      {'M', {5, 7, 7, 5, 5}}, {'N', {6, 5, 5, 5, 5}}, {'O', {2, 5, 5, 5, 2}}, {'P', {6, 5, 6, 4, 4}},
      {'Q', {2, 5, 5, 6, 3}}, {'R', {6, 5, 6, 5, 5}}, {'S', {3, 4, 2, 1, 6}}, {'T', {7, 2, 2, 2, 2}},
      {'U', {5, 5, 5, 5, 7}}, {'V', {5, 5, 5, 5, 2}}, {'W', {5, 5, 7, 7, 5}}, {'X', {5, 5, 2, 5, 5}},
      {'Y', {5, 5, 2, 2, 2}}, {'Z', {7, 1, 2, 4, 7}}, {' ', {0, 0, 0, 0, 0}}};
  return g;
}

void put(data::Image& im, int x, int y, float r, float g, float b) {
  if (x < 0 || y < 0 || x >= im.width || y >= im.height) return;
  im.at(y, x, 0) = r;
  im.at(y, x, 1) = g;
  im.at(y, x, 2) = b;
}

}  // namespace

// Text at (x, y), scale s (each glyph 3s × 5s, advance 4s).
void text(data::Image& im, int x, int y, const std::string& s, int scale, float shade) {
  for (char ch : s) {
    const char c = char(std::toupper(static_cast<unsigned char>(ch)));
    auto it = glyphs().find(c);
    if (it != glyphs().end())
      for (int row = 0; row < 5; ++row)
        for (int col = 0; col < 3; ++col)
          if (it->second[size_t(row)] & (4 >> col))
            for (int dy = 0; dy < scale; ++dy)
              for (int dx = 0; dx < scale; ++dx)
                put(im, x + col * scale + dx, y + row * scale + dy, shade, shade, shade);
    x += 4 * scale;
  }
}

namespace {
}  // namespace

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
          put(im, left + j * cell + x, top + i * cell + y, 255.f * (1 - 0.9f * v), 255.f * (1 - 0.65f * v),
              255.f * (1 - 0.25f * v));
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
