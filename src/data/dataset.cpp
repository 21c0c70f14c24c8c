// Class-folder and FER2013 CSV datasets.
#include <adnn/data/dataset.hpp>

#include <adnn/core/parse.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <string_view>

namespace fs = std::filesystem;

namespace adnn::data {

const std::vector<std::string>& fer2013_classes() {
  static const std::vector<std::string> c{"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
  return c;
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> c(size_t(num_classes()), 0);
  for (int64_t i = 0; i < size(); ++i) c.at(size_t(label(i)))++;
  return c;
}

FolderDataset::FolderDataset(const std::string& root, FolderOptions opts)
    : classes_(opts.classes.empty() ? fer2013_classes() : opts.classes), channels_(opts.channels) {
  std::error_code ec;
  ADNN_CHECK(fs::is_directory(root, ec), "FolderDataset: ", root, " is not a directory");
  std::vector<std::string> dirs;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory()) dirs.push_back(e.path().filename().string());
  std::sort(dirs.begin(), dirs.end());
  ADNN_CHECK(!dirs.empty(), "FolderDataset: ", root, " has no class folders (expected ", root, "/<class>/*.jpg)");
  for (auto& d : dirs) {
    auto it = std::find(classes_.begin(), classes_.end(), d);
    if (it == classes_.end()) {
      std::string known;
      for (auto& c : classes_) known += (known.empty() ? "" : ", ") + c;
      ADNN_FAIL("FolderDataset: unknown class folder '", d, "' in ", root, " (known classes: ", known, ")");
    }
    const int64_t label = it - classes_.begin();
    std::vector<std::string> files;
    for (auto& e : fs::directory_iterator(fs::path(root) / d)) {
      if (!e.is_regular_file()) continue;
      std::string ext = e.path().extension().string();
      std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
      if (std::find(opts.extensions.begin(), opts.extensions.end(), ext) != opts.extensions.end())
        files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) items_.push_back({f, label});
  }
  ADNN_CHECK(!items_.empty(), "FolderDataset: no images under ", root);
}

Image FolderDataset::load(int64_t i) const { return read_image(items_.at(size_t(i)).first, channels_); }

namespace {
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find(sep, b);
    out.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) return out;
    b = e + 1;
  }
}
const std::vector<std::string>& fer2013_usages() {
  static const std::vector<std::string> u{"Training", "PublicTest", "PrivateTest"};
  return u;
}
}  // namespace

Fer2013Csv::Fer2013Csv(const std::string& path, const std::string& usage) : path_(path) {
  const auto& usages = fer2013_usages();
  ADNN_CHECK(usage.empty() || std::find(usages.begin(), usages.end(), usage) != usages.end(), "Fer2013Csv: usage '",
             usage, "' is not one of Training, PublicTest, PrivateTest (or empty for all rows)");
  std::ifstream f(path);
  ADNN_CHECK(f && !fs::is_directory(path), "Fer2013Csv: cannot open ", path, " as a file");
  std::string line;
  ADNN_CHECK(std::getline(f, line), "Fer2013Csv: ", path, " is empty");
  if (!line.empty() && line.back() == '\r') line.pop_back();
  // header: emotion,pixels,Usage (Usage optional); every row has as many columns
  const size_t columns = split(line, ',').size();
  ADNN_CHECK(line == "emotion,pixels,Usage" || line == "emotion,pixels", "Fer2013Csv: ", path,
             ": expected the header 'emotion,pixels,Usage' or 'emotion,pixels', got '", line.substr(0, 60), "'");
  ADNN_CHECK(usage.empty() || columns == 3, "Fer2013Csv: ", path, " has no Usage column, so cannot select '", usage,
             "' rows");
  int64_t row = 1;
  std::vector<uint8_t> px(48 * 48);
  while (std::getline(f, line)) {
    ++row;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(row);
    const auto fields = split(line, ',');
    ADNN_CHECK(fields.size() == columns, "Fer2013Csv: ", where, ": ", fields.size(), " columns, expected ", columns,
               " (", columns == 3 ? "emotion,pixels,Usage" : "emotion,pixels", ")");
    // every row is checked, also those of other usages: a damaged file is an error, never a
    // silently smaller split
    const int64_t emotion = parse_int64(fields[0], "Fer2013Csv: " + where + ": emotion", 0, 6);
    if (columns == 3)
      ADNN_CHECK(std::find(usages.begin(), usages.end(), fields[2]) != usages.end(), "Fer2013Csv: ", where,
                 ": Usage '", std::string(fields[2].substr(0, 40)),
                 "' is not one of Training, PublicTest, PrivateTest");
    // pixels: 2,304 integers in 0..255 separated by single spaces
    const std::string_view pix = fields[1];
    size_t n = 0, b = 0;
    while (b <= pix.size()) {
      size_t e = pix.find(' ', b);
      if (e == std::string_view::npos) e = pix.size();
      const std::string_view tok = pix.substr(b, e - b);
      int v = -1;
      const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
      if (ec != std::errc() || end != tok.data() + tok.size() || tok.empty() || v < 0 || v > 255)
        parse_int64(tok, "Fer2013Csv: " + where + ": pixel " + std::to_string(n + 1), 0, 255);  // throws
      if (n < px.size()) px[n] = uint8_t(v);
      ++n;
      b = e + 1;
    }
    ADNN_CHECK(n == 48 * 48, "Fer2013Csv: ", where, ": ", n, " pixels, expected 2304 (48x48)");
    if (!usage.empty() && fields[2] != usage) continue;
    pixels_.insert(pixels_.end(), px.begin(), px.end());
    labels_.push_back(emotion);
    rows_.push_back(row);
  }
  ADNN_CHECK(f.eof(), "Fer2013Csv: reading ", path, " failed after line ", row);
  ADNN_CHECK(!labels_.empty(), "Fer2013Csv: no rows with Usage '", usage, "' in ", path);
}

Image Fer2013Csv::load(int64_t i) const {
  Image img(48, 48, 1);
  const uint8_t* p = pixels_.data() + size_t(i) * 48 * 48;
  for (size_t k = 0; k < img.pixels.size(); ++k) img.pixels[k] = float(p[k]);
  return img;
}

std::string Fer2013Csv::name(int64_t i) const { return path_ + ":" + std::to_string(rows_.at(size_t(i))); }

}  // namespace adnn::data
